//! The edge stages around the upstream call: cache lookup → upstream →
//! compress → cache store. A route with neither cache nor compression goes
//! straight to [`Gateway::forward`].
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

use super::error::ProxyError;
use super::{ConnInfo, Gateway};
use crate::body::{self, Body};
use crate::cache::fill::{Head, X_CACHE};
use crate::cache::policy::CacheControl;
use crate::cache::{Join, RouteCache, key};
use crate::compress::{self, Encoding};

type Forwarded = (Result<Response<Body>, ProxyError>, Option<String>);

fn label(resp: &mut Response<Body>, x: &'static str) {
    resp.headers_mut()
        .insert(X_CACHE, HeaderValue::from_static(x));
}

impl Gateway {
    /// The route's stages; the only call the request path makes for a matched route.
    pub(super) async fn edge(&self, r: usize, req: Request<Body>, conn: &ConnInfo) -> Forwarded {
        let route = &self.config.routes[r];
        let want = match &route.compression {
            Some(_) => compress::negotiate(req.headers()),
            None => Encoding::Identity,
        };
        match &route.cache {
            Some(policy) => self.cached(r, policy, req, conn, want).await,
            None => {
                let method = req.method().clone();
                let (resp, ep) = self.forward(r, req, conn).await;
                (resp.map(|resp| self.compressed(r, resp, &method, want)), ep)
            }
        }
    }

    fn compressed(
        &self,
        r: usize,
        resp: Response<Body>,
        method: &Method,
        want: Encoding,
    ) -> Response<Body> {
        match &self.config.routes[r].compression {
            Some(c) => compress::stream(resp, method, want, c),
            None => resp,
        }
    }

    async fn cached(
        &self,
        r: usize,
        policy: &RouteCache,
        req: Request<Body>,
        conn: &ConnInfo,
        want: Encoding,
    ) -> Forwarded {
        let method = req.method().clone();
        let req_cc = CacheControl::parse_request(req.headers());
        let lookup = (method == Method::GET || method == Method::HEAD)
            && !req.headers().contains_key(header::RANGE)
            && req.body().is_end_stream();
        if !lookup {
            return self.bypass(r, req, conn, want).await;
        }
        let key = key::build(policy, conn.scheme, req.uri(), req.headers());
        let (parts, _) = req.into_parts();
        let head = Head {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
        };
        let store = &self.cache.store;
        let mut coalesce = policy.coalesce;
        loop {
            let full = store.full_key(&key.primary, &head.headers).await;
            if let Some(entry) = store.get(&full).await {
                return self
                    .answer_stored(r, &key, full, entry, &head, &req_cc, conn, want)
                    .await;
            }
            if req_cc.only_if_cached {
                self.cache.count(|c| &c.misses);
                let mut resp = Response::new(body::full("not in cache\n"));
                *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
                label(&mut resp, "MISS");
                return (Ok(resp), None);
            }
            let flight = if coalesce {
                match self.cache.join(&key.primary) {
                    Join::Wait(mut done) => {
                        self.cache.count(|c| &c.coalesced);
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
                            return self
                                .answer_stored(r, &key, full, entry, &head, &req_cc, conn, want)
                                .await;
                        }
                        Some(f)
                    }
                }
            } else {
                None
            };
            self.cache.count(|c| &c.misses);
            let (outcome, ep) = self
                .fetch(r, policy, &key, &head, &req_cc, None, conn)
                .await;
            drop(flight);
            return (self.deliver(r, outcome, &head, want, "MISS").await, ep);
        }
    }
}
