//! A stored entry was found: served as it is while fresh (or while stale, where
//! the entry and the client allow it), else revalidated upstream, in this
//! request or in the background.

use std::sync::Arc;
use std::time::Duration;

use super::Did;
use super::fetch::Outcome;
use crate::cache::fill::Head;
use crate::cache::policy::CacheControl;
use crate::cache::{CacheKey, Entry, Join};
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
        // The client's max-age bounds the age (RFC 9111 §5.2.1.1); min-fresh is
        // measured against the response's own lifetime (§5.2.1.3), not that bound.
        let young_enough = req_cc
            .max_age
            .is_none_or(|ma| age <= Duration::from_secs(ma));
        let min_fresh = Duration::from_secs(req_cc.min_fresh.unwrap_or(0));
        let must_validate = entry.cc.no_cache || req_cc.no_cache;
        if !must_validate && young_enough && age + min_fresh < entry.lifetime {
            cache.count(|c| &c.hits);
            return Ok(self.respond(full, entry, head, Did::Hit).await);
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
            return Ok(self.respond(full, entry, head, Did::Stale).await);
        }
        let Some(policy) = &self.route().cache else {
            return Err(crate::session::ProxyError::Internal(
                "a stored entry answered a route without cache",
            ));
        };
        // One conditional request per stale entry: concurrent requests for it
        // wait for the one that is revalidating and take what it stored.
        let flight_key: Arc<str> = format!("revalidate\u{0}{full}").into();
        let flight = if policy.coalesce {
            match cache.join(&flight_key) {
                Join::Lead(f) => Some(f),
                Join::Wait(w) => {
                    cache.count(|c| &c.coalesced);
                    w.done().await;
                    if let Some(now) = cache.store.get(&full).await
                        && !Arc::ptr_eq(&now, &entry)
                    {
                        cache.count(|c| &c.revalidated);
                        return Ok(self.respond(full, now, head, Did::Revalidated).await);
                    }
                    // The revalidation stored nothing: try on our own.
                    None
                }
            }
        } else {
            None
        };
        let outcome = self
            .fetch(policy, key, head, req_cc, Some(&entry), flight)
            .await;
        if let Outcome::Failed(failed) = &outcome {
            let sie = req_cc
                .stale_if_error
                .max(entry.cc.stale_if_error)
                .map_or(Duration::ZERO, Duration::from_secs);
            if stale_allowed && staleness <= sie {
                cache.count(|c| &c.stale);
                return Ok(self
                    .respond(full, entry, head, Did::StaleOnError("stale-if-error"))
                    .await);
            }
            // Upstream could not be reached at all: the route's own bound.
            let unreachable = policy.stale_if_unreachable.unwrap_or(Duration::ZERO);
            if failed.is_err() && stale_allowed && staleness <= unreachable {
                cache.count(|c| &c.stale);
                tracing::info!(key = %key.primary, staleness = staleness.as_secs(), "upstream unreachable: served stale");
                return Ok(self
                    .respond(full, entry, head, Did::StaleOnError("upstream-unreachable"))
                    .await);
            }
        }
        match &outcome {
            Outcome::Revalidated(..) => cache.count(|c| &c.revalidated),
            _ => cache.count(|c| &c.misses),
        }
        let fwd = if must_validate && !stale {
            "request"
        } else {
            "stale"
        };
        self.deliver(outcome, head, fwd).await
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
        let (session, key, entry, mut head) =
            (self.clone(), key.clone(), entry.clone(), head.clone());
        // No client waits for this one: a range is nobody's to forward.
        head.headers.remove(http::header::RANGE);
        head.headers.remove(http::header::IF_RANGE);
        tokio::spawn(async move {
            let Some(policy) = session.route().cache.clone() else {
                return;
            };
            let outcome = session
                .fetch(
                    &policy,
                    &key,
                    &head,
                    &CacheControl::default(),
                    Some(&entry),
                    Some(flight),
                )
                .await;
            // A new response's fill runs on without a reader and stores the body.
            if let Outcome::Revalidated(..) = outcome {
                session.node.cache.count(|c| &c.revalidated);
            }
        });
        true
    }
}
