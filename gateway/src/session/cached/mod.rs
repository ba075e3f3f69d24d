//! The cache phases around the upstream call: cache lookup (4) → choose,
//! upstream, on-response (5–7, [`Session::forward`]) → compress (8) → cache
//! store (9). A route without `cache:` never comes here.
//!
//! In request order: the lookup, coalesced per key (here); requests the cache
//! must not answer ([`bypass`]); a stored entry served or revalidated
//! ([`revalidate`]); the upstream exchange that fills the cache ([`fetch`]);
//! the answer built from a stored entry ([`serve`]).

mod bypass;
mod coded;
mod fetch;
mod partial;
mod ranged;
mod revalidate;
mod serve;

use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;

use super::{Answer, Session};
use crate::body::{self, Body};
use crate::cache::fill::{Head, X_CACHE};
use crate::cache::policy::{self, CacheControl, EDGEWARD_CACHE_CONTROL};
use crate::cache::{Entry, Join, RouteCache, key};

/// `Cache-Status` (RFC 9211): on every response of a cached route.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
/// This cache's name in `Cache-Status`.
const CACHE_NAME: &str = "Edgeward";

/// What `Cache-Status` says about the entry a response came from (or is
/// being stored as).
pub(super) struct About<'a> {
    pub status: StatusCode,
    pub lifetime: std::time::Duration,
    pub age: std::time::Duration,
    pub host: &'a str,
    pub path: &'a str,
}

impl<'a> From<&'a Entry> for About<'a> {
    fn from(e: &'a Entry) -> Self {
        Self {
            status: e.status,
            lifetime: e.lifetime,
            age: e.age(),
            host: &e.host,
            path: &e.path,
        }
    }
}

/// What the cache did for one response, told by `Cache-Status` and its
/// older alias `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Did {
    /// Fresh from the store.
    Hit,
    /// Stale from the store, as the entry and the client allow.
    Stale,
    /// Stale from the store because upstream failed (`detail` says how).
    StaleOnError(&'static str),
    /// Validated upstream with a 304 (or by the concurrent request it joined).
    Revalidated,
    /// Forwarded for the reason `fwd` (RFC 9211 §2.4), not stored.
    Miss(&'static str),
    /// Forwarded for the reason `fwd` and stored.
    Stored(&'static str),
    /// Streamed from another request's fill for the reason `fwd`.
    Collapsed(&'static str),
    /// Not looked up: `fwd=bypass` or `fwd=method`.
    Bypass(&'static str),
    /// `only-if-cached` and nothing stored: answered 504 without forwarding.
    OnlyIfCached,
    /// Answered before the lookup (a rate limit, a filter's own answer).
    NotLookedUp,
}

impl Did {
    fn x_cache(self) -> &'static str {
        match self {
            Did::Hit => "HIT",
            Did::Stale | Did::StaleOnError(_) => "STALE",
            Did::Revalidated => "REVALIDATED",
            Did::Miss(_) | Did::Stored(_) | Did::Collapsed(_) | Did::OnlyIfCached => "MISS",
            Did::Bypass(_) | Did::NotLookedUp => "BYPASS",
        }
    }
}

impl Session {
    /// Marks a response of a cached route with `Cache-Status` (appended to any
    /// an upstream cache set) and, unless the route turned it off, `X-Cache`;
    /// removes `Edgeward-Cache-Control`, which is for this cache only.
    fn label(&self, resp: &mut Response<Body>, did: Did, entry: Option<About<'_>>) {
        use std::fmt::Write;
        let policy = self.route().cache.as_ref();
        let fwd_status = entry.as_ref().map_or(resp.status(), |e| e.status).as_u16();
        let mut v = String::from(CACHE_NAME);
        match did {
            Did::Hit | Did::Stale => v.push_str("; hit"),
            Did::StaleOnError(detail) => _ = write!(v, "; fwd=stale; detail={detail}"),
            Did::Revalidated => v.push_str("; fwd=stale; fwd-status=304"),
            Did::Miss(fwd) | Did::Bypass(fwd) => {
                _ = write!(v, "; fwd={fwd}; fwd-status={fwd_status}")
            }
            Did::Stored(fwd) => _ = write!(v, "; fwd={fwd}; fwd-status={fwd_status}; stored"),
            Did::Collapsed(fwd) => _ = write!(v, "; fwd={fwd}; fwd-status={fwd_status}; collapsed"),
            Did::OnlyIfCached => v.push_str("; detail=only-if-cached"),
            Did::NotLookedUp => v.push_str("; detail=not-looked-up"),
        }
        if let Some(e) = &entry {
            let ttl = i128::from(e.lifetime.as_secs()) - i128::from(e.age.as_secs());
            _ = write!(v, "; ttl={}", ttl.clamp(-(1 << 31), 1 << 31));
        }
        if let Some(k) = entry.filter(|_| policy.is_some_and(|p| p.status_key)) {
            v.push_str("; key=\"");
            for c in k.host.chars().chain(k.path.chars()) {
                match c {
                    '"' | '\\' => {
                        v.push('\\');
                        v.push(c);
                    }
                    ' '..='~' => v.push(c),
                    _ => {}
                }
            }
            v.push('"');
        }
        let h = resp.headers_mut();
        h.remove(EDGEWARD_CACHE_CONTROL);
        let upstream: Vec<&str> = h
            .get_all(&CACHE_STATUS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !upstream.is_empty() {
            v = format!("{}, {v}", upstream.join(", "));
        }
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(CACHE_STATUS, v);
        }
        if policy.is_none_or(|p| p.x_cache) {
            h.insert(X_CACHE, HeaderValue::from_static(did.x_cache()));
        } else {
            h.remove(X_CACHE);
        }
    }
}

impl Session {
    /// `Cache-Status` (and `X-Cache`) for an answer of a cached route that the
    /// cache stage did not label: a gateway error (502, 504...), labelled with
    /// why the cache forwarded, and answers made before the lookup (a rate
    /// limit, a filter's own answer), which it never saw. An error's fields
    /// are returned, to go on the response the error becomes.
    pub(in crate::session) fn label_rest(
        &self,
        answer: &mut Answer,
    ) -> Option<(HeaderValue, Option<HeaderValue>)> {
        let policy = self.route().cache.as_ref()?;
        let x_cache = |v: &'static str| policy.x_cache.then(|| HeaderValue::from_static(v));
        match answer {
            Ok(resp) => {
                let ours = resp
                    .headers()
                    .get_all(&CACHE_STATUS)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| v.contains(CACHE_NAME));
                if !ours {
                    self.label(resp, Did::NotLookedUp, None);
                }
                None
            }
            Err(e) => {
                let detail = match e {
                    crate::session::ProxyError::Connect { .. } => "connect-failed",
                    crate::session::ProxyError::Upstream { .. } => "upstream-failed",
                    crate::session::ProxyError::Timeout { .. } => "upstream-timeout",
                    crate::session::ProxyError::Unavailable { .. } => "no-endpoint",
                    _ => "error",
                };
                let v = match self.learnt.cache_fwd.get() {
                    Some(fwd) => format!("{CACHE_NAME}; fwd={fwd}; detail={detail}"),
                    None => format!("{CACHE_NAME}; detail={detail}"),
                };
                let x = if self
                    .learnt
                    .cache_fwd
                    .get()
                    .is_some_and(|f| *f == "bypass" || *f == "method")
                {
                    "BYPASS"
                } else {
                    "MISS"
                };
                Some((HeaderValue::from_str(&v).ok()?, x_cache(x)))
            }
        }
    }

    /// Phase 4, the cache lookup, coalesced per key; a miss runs phases 5–9
    /// on the cache's behalf ([`Session::fetch`]).
    pub(super) async fn cached(&self, policy: &RouteCache, req: Request<Body>) -> Answer {
        let method = req.method().clone();
        let req_cc = CacheControl::parse_request(req.headers());
        let lookup =
            (method == Method::GET || method == Method::HEAD) && req.body().is_end_stream();
        if !lookup {
            return self.bypass(req).await;
        }
        let key = key::build(policy, self.conn.scheme, req.uri(), req.headers());
        // A range is answered from the complete response: stored, or filled
        // now and answered as it streams ([`ranged`]).
        let (parts, _) = req.into_parts();
        let head = Head {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
            extensions: parts.extensions,
        };
        let cache = &self.node.cache;
        let store = &cache.store;
        let mut coalesce = policy.coalesce;
        loop {
            let full = store.full_key(&key.primary, &head.headers).await;
            if let Some(entry) = store.get(&full).await {
                return self.answer_stored(&key, full, entry, &head, &req_cc).await;
            }
            match self.answer_from_part(&key, &head).await {
                partial::FromPart::Hit(resp) => return Ok(resp),
                partial::FromPart::Elsewhere if !req_cc.only_if_cached => {
                    cache.count(|c| &c.misses);
                    let outcome = self.pass_range_keeping(&head).await;
                    return self.deliver(outcome, &head, "uri-miss").await;
                }
                _ => {}
            }
            if req_cc.only_if_cached {
                cache.count(|c| &c.misses);
                let mut resp = Response::new(body::full("not in cache\n"));
                *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
                self.label(&mut resp, Did::OnlyIfCached, None);
                return Ok(resp);
            }
            let flight = if coalesce {
                match cache.join(&key.primary) {
                    Join::Wait(w) => {
                        cache.count(|c| &c.coalesced);
                        if head.method == Method::GET && !fetch::conditional(&head.headers) {
                            // Stream the fill as it arrives, if it is this variant.
                            if let Some(s) = w.streaming().await
                                && s.secondary == policy::secondary_key(&s.vary, &head.headers)
                                && let Some(reader) = s.fan.attach()
                            {
                                return self.collapsed(&s, reader, &head, &key).await;
                            }
                        } else {
                            w.done().await;
                        }
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
            let outcome = self.fetch(policy, &key, &head, &req_cc, None, flight).await;
            return self.deliver(outcome, &head, "uri-miss").await;
        }
    }
}
