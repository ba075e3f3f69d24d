//! A stored entry was found: served as it is while fresh (or while stale, where
//! the entry and the client allow it), else revalidated upstream, in this
//! request or in the background.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Forwarded;
use super::fetch::Outcome;
use crate::cache::fill::Head;
use crate::cache::policy::CacheControl;
use crate::cache::{CacheKey, Entry};
use crate::compress::Encoding;
use crate::pipeline::{ConnInfo, Gateway};

impl Gateway {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn answer_stored(
        &self,
        r: usize,
        key: &CacheKey,
        full: Arc<str>,
        entry: Arc<Entry>,
        head: &Head,
        req_cc: &CacheControl,
        conn: &ConnInfo,
        want: Encoding,
    ) -> Forwarded {
        let age = entry.age();
        let mut lifetime = entry.lifetime;
        if let Some(ma) = req_cc.max_age {
            lifetime = lifetime.min(Duration::from_secs(ma));
        }
        let min_fresh = Duration::from_secs(req_cc.min_fresh.unwrap_or(0));
        let must_validate = entry.cc.no_cache || req_cc.no_cache;
        if !must_validate && age + min_fresh < lifetime {
            self.cache.count(|c| &c.hits);
            return (
                Ok(self.respond(r, full, entry, head, want, "HIT").await),
                None,
            );
        }
        let stale = !entry.is_fresh();
        let staleness = entry.staleness();
        let stale_allowed = stale && !must_validate && !entry.cc.revalidate_when_stale();
        let client_accepts = match req_cc.max_stale {
            Some(None) => true,
            Some(Some(s)) => staleness <= Duration::from_secs(s),
            None => false,
        };
        let swr = Duration::from_secs(entry.cc.stale_while_revalidate.unwrap_or(0));
        if stale_allowed
            && (client_accepts
                || (staleness <= swr && self.refresh_later(r, key, &full, &entry, head, conn)))
        {
            self.cache.count(|c| &c.stale);
            return (
                Ok(self.respond(r, full, entry, head, want, "STALE").await),
                None,
            );
        }
        let policy = self.config.routes[r].cache.as_ref().expect("cached route");
        let (outcome, ep) = self
            .fetch(r, policy, key, head, req_cc, Some(&entry), conn)
            .await;
        if let Outcome::Failed(_) = &outcome {
            let sie = req_cc
                .stale_if_error
                .max(entry.cc.stale_if_error)
                .map_or(Duration::ZERO, Duration::from_secs);
            if stale_allowed && staleness <= sie {
                self.cache.count(|c| &c.stale);
                return (
                    Ok(self.respond(r, full, entry, head, want, "STALE").await),
                    ep,
                );
            }
        }
        match &outcome {
            Outcome::Revalidated(..) => self.cache.count(|c| &c.revalidated),
            _ => self.cache.count(|c| &c.misses),
        }
        (self.deliver(r, outcome, head, want, "MISS").await, ep)
    }

    /// Starts a background refresh for a stale-while-revalidate answer; false
    /// when none can run (then the request revalidates itself).
    fn refresh_later(
        &self,
        r: usize,
        key: &CacheKey,
        full: &Arc<str>,
        entry: &Arc<Entry>,
        head: &Head,
        conn: &ConnInfo,
    ) -> bool {
        let Some(gw) = self.cache.owner.get().and_then(Weak::upgrade) else {
            return false;
        };
        let flight_key: Arc<str> = format!("refresh\u{0}{full}").into();
        let Some(flight) = self.cache.try_lead(&flight_key) else {
            return true;
        };
        let (key, entry, head, conn) = (key.clone(), entry.clone(), head.clone(), conn.clone());
        tokio::spawn(async move {
            let _flight = flight;
            let Some(policy) = gw.config.routes[r].cache.clone() else {
                return;
            };
            let (outcome, _) = gw
                .fetch(
                    r,
                    &policy,
                    &key,
                    &head,
                    &CacheControl::default(),
                    Some(&entry),
                    &conn,
                )
                .await;
            if let Outcome::Revalidated(..) = outcome {
                gw.cache.count(|c| &c.revalidated);
            }
        });
        true
    }
}
