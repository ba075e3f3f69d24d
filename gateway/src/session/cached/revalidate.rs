//! A stored entry was found: served as it is while fresh (or while stale, where
//! the entry and the client allow it), else revalidated upstream, in this
//! request or in the background.

use std::sync::Arc;
use std::time::Duration;

use super::fetch::Outcome;
use crate::cache::fill::Head;
use crate::cache::policy::CacheControl;
use crate::cache::{CacheKey, Entry};
use crate::session::{Answer, Session};

impl Session {
    pub(super) async fn answer_stored(
        &self,
        key: &CacheKey,
        full: Arc<str>,
        entry: Arc<Entry>,
        head: &Head,
        req_cc: &CacheControl,
    ) -> Answer {
        let cache = &self.node.cache;
        let age = entry.age();
        let mut lifetime = entry.lifetime;
        if let Some(ma) = req_cc.max_age {
            lifetime = lifetime.min(Duration::from_secs(ma));
        }
        let min_fresh = Duration::from_secs(req_cc.min_fresh.unwrap_or(0));
        let must_validate = entry.cc.no_cache || req_cc.no_cache;
        if !must_validate && age + min_fresh < lifetime {
            cache.count(|c| &c.hits);
            return Ok(self.respond(full, entry, head, "HIT").await);
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
                || (staleness <= swr && self.refresh_later(key, &full, &entry, head)))
        {
            cache.count(|c| &c.stale);
            return Ok(self.respond(full, entry, head, "STALE").await);
        }
        let Some(policy) = &self.route().cache else {
            return Err(crate::session::ProxyError::Internal(
                "a stored entry answered a route without cache",
            ));
        };
        let outcome = self.fetch(policy, key, head, req_cc, Some(&entry)).await;
        if let Outcome::Failed(_) = &outcome {
            let sie = req_cc
                .stale_if_error
                .max(entry.cc.stale_if_error)
                .map_or(Duration::ZERO, Duration::from_secs);
            if stale_allowed && staleness <= sie {
                cache.count(|c| &c.stale);
                return Ok(self.respond(full, entry, head, "STALE").await);
            }
        }
        match &outcome {
            Outcome::Revalidated(..) => cache.count(|c| &c.revalidated),
            _ => cache.count(|c| &c.misses),
        }
        self.deliver(outcome, head, "MISS").await
    }

    /// Starts a background refresh for a stale-while-revalidate answer. It
    /// runs on this request's generation, whatever is current by then.
    fn refresh_later(
        &self,
        key: &CacheKey,
        full: &Arc<str>,
        entry: &Arc<Entry>,
        head: &Head,
    ) -> bool {
        let flight_key: Arc<str> = format!("refresh\u{0}{full}").into();
        let Some(flight) = self.node.cache.try_lead(&flight_key) else {
            return true;
        };
        let (session, key, entry, head) = (self.clone(), key.clone(), entry.clone(), head.clone());
        tokio::spawn(async move {
            let _flight = flight;
            let Some(policy) = session.route().cache.clone() else {
                return;
            };
            let outcome = session
                .fetch(&policy, &key, &head, &CacheControl::default(), Some(&entry))
                .await;
            if let Outcome::Revalidated(..) = outcome {
                session.node.cache.count(|c| &c.revalidated);
            }
        });
        true
    }
}
