//! The cache phases around the upstream call: cache lookup (4) → choose,
//! upstream, on-response (5–7, [`Session::forward`]) → compress (8) → cache
//! store (9). A route without `cache:` never comes here.
//!
//! In request order: the lookup, coalesced per key (here); requests the cache
//! must not answer ([`bypass`]); a stored entry served or revalidated
//! ([`revalidate`]); the upstream exchange that fills the cache ([`fetch`]);
//! the answer built from a stored entry ([`serve`]).

mod bypass;
mod fetch;
mod revalidate;
mod serve;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;

use super::{Answer, Session};
use crate::body::{self, Body};
use crate::cache::fill::{Head, X_CACHE};
use crate::cache::policy::CacheControl;
use crate::cache::{Join, RouteCache, key};

fn label(resp: &mut Response<Body>, x: &'static str) {
    resp.headers_mut()
        .insert(X_CACHE, HeaderValue::from_static(x));
}

impl Session {
    /// Phase 4, the cache lookup, coalesced per key; a miss runs phases 5–9
    /// on the cache's behalf ([`Session::fetch`]).
    pub(super) async fn cached(&self, policy: &RouteCache, req: Request<Body>) -> Answer {
        let method = req.method().clone();
        let req_cc = CacheControl::parse_request(req.headers());
        let lookup = (method == Method::GET || method == Method::HEAD)
            && !req.headers().contains_key(header::RANGE)
            && req.body().is_end_stream();
        if !lookup {
            return self.bypass(req).await;
        }
        let key = key::build(policy, self.conn.scheme, req.uri(), req.headers());
        let (parts, _) = req.into_parts();
        let head = Head {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
        };
        let cache = &self.node.cache;
        let store = &cache.store;
        let mut coalesce = policy.coalesce;
        loop {
            let full = store.full_key(&key.primary, &head.headers).await;
            if let Some(entry) = store.get(&full).await {
                return self.answer_stored(&key, full, entry, &head, &req_cc).await;
            }
            if req_cc.only_if_cached {
                cache.count(|c| &c.misses);
                let mut resp = Response::new(body::full("not in cache\n"));
                *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
                label(&mut resp, "MISS");
                return Ok(resp);
            }
            let flight = if coalesce {
                match cache.join(&key.primary) {
                    Join::Wait(mut done) => {
                        cache.count(|c| &c.coalesced);
                        let _ = done.changed().await;
                        // Look once more; if the leader stored nothing, fetch alone.
                        coalesce = false;
                        continue;
                    }
                    Join::Lead(f) => {
                        // A leader may have stored it between the lookup and the join.
                        let full = store.full_key(&key.primary, &head.headers).await;
                        if let Some(entry) = store.get(&full).await {
                            drop(f);
                            return self.answer_stored(&key, full, entry, &head, &req_cc).await;
                        }
                        Some(f)
                    }
                }
            } else {
                None
            };
            cache.count(|c| &c.misses);
            let outcome = self.fetch(policy, &key, &head, &req_cc, None).await;
            drop(flight);
            return self.deliver(outcome, &head, "MISS").await;
        }
    }
}
