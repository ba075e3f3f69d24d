//! The edge stages around the upstream call: cache lookup → upstream →
//! compress → cache store. A route with neither cache nor compression goes
//! straight to [`Gateway::forward`].

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body as _;

use super::error::ProxyError;
use super::{ConnInfo, Gateway};
use crate::body::{self, Body};
use crate::cache::fill::{
    Head, X_CACHE, etag, freshened, read_limited, stored_since, take_tags, upstream_request,
};
use crate::cache::policy::{self, CacheControl, Times};
use crate::cache::{CacheKey, Entry, Join, Purge, RouteCache, key};
use crate::compress::{self, Encoding};

type Forwarded = (Result<Response<Body>, ProxyError>, Option<String>);

/// What fetching from upstream for the cache produced.
enum Outcome {
    /// The response was stored (or an entry freshened by a 304).
    Stored(Arc<str>, Arc<Entry>),
    Revalidated(Arc<str>, Arc<Entry>),
    /// Not storable: sent on as it came.
    Passed(Response<Body>),
    /// Upstream failed (an error, or a 5xx when revalidating).
    Failed(Result<Response<Body>, ProxyError>),
}

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

    /// Unsafe methods, ranges and requests with bodies skip the cache; a
    /// successful unsafe request invalidates what it may have changed (RFC 9111 §4.4).
    async fn bypass(
        &self,
        r: usize,
        req: Request<Body>,
        conn: &ConnInfo,
        want: Encoding,
    ) -> Forwarded {
        self.cache.count(|c| &c.bypass);
        let method = req.method().clone();
        let host = key::request_host(req.uri(), req.headers());
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let (resp, ep) = self.forward(r, req, conn).await;
        let resp = resp.map(|mut resp| {
            label(&mut resp, "BYPASS");
            resp
        });
        if let Ok(resp) = &resp
            && !method.is_safe()
            && (resp.status().is_success() || resp.status().is_redirection())
        {
            self.invalidate(&host, &path, resp.headers()).await;
        }
        (resp.map(|resp| self.compressed(r, resp, &method, want)), ep)
    }

    async fn invalidate(&self, host: &str, path: &str, headers: &HeaderMap) {
        let mut targets = vec![path.to_owned()];
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let Some(uri) = headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.parse::<Uri>().ok())
            else {
                continue;
            };
            // Only the same origin: another host's cache entries are not this response's to clear.
            let same = uri
                .authority()
                .is_none_or(|a| a.as_str().eq_ignore_ascii_case(host));
            if let Some(pq) = uri
                .path_and_query()
                .filter(|pq| same && pq.as_str().starts_with('/'))
            {
                targets.push(pq.as_str().to_owned());
            }
        }
        for path in targets {
            let n = self
                .cache
                .store
                .purge(&Purge::Url {
                    host: Some(host.to_owned()),
                    path,
                })
                .await;
            self.cache
                .counters
                .purged
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn answer_stored(
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

    /// One upstream exchange on the cache's behalf: a full GET, or a
    /// conditional one when `stored` has validators.
    #[allow(clippy::too_many_arguments)]
    async fn fetch(
        &self,
        r: usize,
        policy: &RouteCache,
        key: &CacheKey,
        head: &Head,
        req_cc: &CacheControl,
        stored: Option<&Arc<Entry>>,
        conn: &ConnInfo,
    ) -> (Outcome, Option<String>) {
        let request_time = SystemTime::now();
        let (resp, ep) = self
            .forward(r, upstream_request(head, stored.map(|e| &**e)), conn)
            .await;
        let times = Times {
            request_time,
            response_time: SystemTime::now(),
        };
        let resp = match resp {
            Ok(resp) if stored.is_some() && resp.status().is_server_error() => {
                return (Outcome::Failed(Ok(resp)), ep);
            }
            Ok(resp) => resp,
            Err(e) => return (Outcome::Failed(Err(e)), ep),
        };
        if let Some(entry) = stored.filter(|_| resp.status() == StatusCode::NOT_MODIFIED) {
            let fresh = Arc::new(freshened(entry, policy, resp.headers(), times));
            let full = self.cache.store.full_key(&key.primary, &head.headers).await;
            self.cache.store.put(full.clone(), fresh.clone()).await;
            return (Outcome::Revalidated(full, fresh), ep);
        }
        let status = resp.status();
        let resp_cc = CacheControl::parse(resp.headers());
        let lifetime = policy::freshness_lifetime(
            status,
            resp.headers(),
            &resp_cc,
            policy.ttl,
            times.response_time,
        );
        if let Err(why) = policy::storable(
            &Method::GET,
            &head.headers,
            req_cc,
            status,
            resp.headers(),
            &resp_cc,
            lifetime,
        ) {
            tracing::debug!(?why, key = %key.primary, "response not stored");
            return (Outcome::Passed(resp), ep);
        }
        let (mut parts, incoming) = resp.into_parts();
        let limit = self.cache.settings.max_object_size as usize;
        let body = match read_limited(incoming, limit).await {
            Ok(Ok(b)) => b,
            Ok(Err(prefixed)) => {
                return (Outcome::Passed(Response::from_parts(parts, prefixed)), ep);
            }
            Err(source) => {
                let upstream = self.config.upstreams[self.config.routes[r].upstream]
                    .name
                    .clone();
                let endpoint = ep.clone().unwrap_or_default();
                return (
                    Outcome::Failed(Err(ProxyError::Upstream {
                        upstream,
                        endpoint,
                        source,
                    })),
                    ep,
                );
            }
        };
        let initial_age = policy::initial_age(&parts.headers, times);
        let h = &mut parts.headers;
        let tags = take_tags(h);
        h.remove(header::CONTENT_LENGTH);
        h.remove(header::AGE);
        h.remove(X_CACHE);
        if !h.contains_key(header::DATE)
            && let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(times.response_time))
        {
            h.insert(header::DATE, v);
        }
        let entry = Entry {
            status,
            etag: etag(h),
            last_modified: policy::last_modified(h),
            vary: policy::vary_names(h).unwrap_or_default(),
            headers: parts.headers,
            body,
            variants: Vec::new(),
            stored_at: Instant::now() - stored_since(times.response_time),
            initial_age,
            lifetime,
            cc: resp_cc,
            tags,
            host: key.host.clone(),
            path: key.path.clone(),
        };
        let (full, entry) = self
            .cache
            .store
            .insert(&key.primary, &head.headers, entry)
            .await;
        self.cache.count(|c| &c.stored);
        (Outcome::Stored(full, entry), ep)
    }

    async fn deliver(
        &self,
        r: usize,
        outcome: Outcome,
        head: &Head,
        want: Encoding,
        x: &'static str,
    ) -> Result<Response<Body>, ProxyError> {
        match outcome {
            Outcome::Stored(full, e) => Ok(self.respond(r, full, e, head, want, x).await),
            Outcome::Revalidated(full, e) => {
                Ok(self.respond(r, full, e, head, want, "REVALIDATED").await)
            }
            Outcome::Passed(mut resp) | Outcome::Failed(Ok(mut resp)) => {
                label(&mut resp, x);
                if head.method == Method::HEAD {
                    // The cache fetched a GET for this HEAD: keep the head, drop
                    // the body (HTTP/2 treats DATA on a HEAD as a protocol error).
                    *resp.body_mut() = body::empty();
                    return Ok(resp);
                }
                Ok(self.compressed(r, resp, &head.method, want))
            }
            Outcome::Failed(Err(e)) => Err(e),
        }
    }

    /// Answers from a stored entry: 304 for a satisfied conditional request,
    /// else the negotiated variant, made once and kept.
    async fn respond(
        &self,
        r: usize,
        full: Arc<str>,
        entry: Arc<Entry>,
        head: &Head,
        want: Encoding,
        x: &'static str,
    ) -> Response<Body> {
        let mut enc = Encoding::Identity;
        let mut varies = false;
        let compression = self.config.routes[r].compression.as_ref();
        if let Some(c) = compression
            && compress::eligible(
                &Method::GET,
                entry.status,
                &entry.headers,
                Some(entry.body.len() as u64),
                c.min_size,
                &c.types,
            )
            .is_ok()
        {
            varies = true;
            enc = want;
        }
        let conditional = entry.status == StatusCode::OK
            && (head.headers.contains_key(header::IF_NONE_MATCH)
                || head.headers.contains_key(header::IF_MODIFIED_SINCE))
            && policy::not_modified(&head.headers, entry.etag.as_deref(), entry.last_modified);
        let mut bytes = None;
        if !conditional {
            let b = match (entry.variant(enc), compression) {
                (Some(b), _) => b,
                (None, Some(c)) => match self
                    .encode_variant(&full, &entry, enc, c.cached_level(enc, entry.body.len()))
                    .await
                {
                    Some(b) => b,
                    None => {
                        enc = Encoding::Identity;
                        entry.body.clone()
                    }
                },
                (None, None) => entry.body.clone(),
            };
            bytes = Some(b);
        }
        let mut h = entry.headers.clone();
        if varies {
            compress::negotiate::add_vary_accept_encoding(&mut h);
        }
        if enc != Encoding::Identity {
            compress::mark_encoded(&mut h, enc);
        }
        let age = entry.age().as_secs().min(1 << 31);
        let mut resp = match bytes {
            None => {
                let mut resp = Response::new(body::empty());
                *resp.status_mut() = StatusCode::NOT_MODIFIED;
                for name in policy::NOT_MODIFIED_FIELDS {
                    for v in h.get_all(&name) {
                        resp.headers_mut().append(name.clone(), v.clone());
                    }
                }
                resp
            }
            Some(b) => {
                // RFC 9110 §8.6: a 204 carries no Content-Length.
                if entry.status != StatusCode::NO_CONTENT {
                    h.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
                }
                let body = if head.method == Method::HEAD {
                    body::empty()
                } else {
                    body::full(b)
                };
                let mut resp = Response::new(body);
                *resp.status_mut() = entry.status;
                *resp.headers_mut() = h;
                resp
            }
        };
        resp.headers_mut()
            .insert(header::AGE, HeaderValue::from(age));
        label(&mut resp, x);
        *resp.version_mut() = head.version;
        resp
    }

    /// Encodes a stored body once (off the async threads: high levels are slow)
    /// and keeps the result in the entry.
    async fn encode_variant(
        &self,
        full: &Arc<str>,
        entry: &Arc<Entry>,
        enc: Encoding,
        level: u32,
    ) -> Option<bytes::Bytes> {
        // Concurrent first requests for one variant make it once; the others
        // wait and take the stored result.
        let flight_key: Arc<str> = format!("encode\u{0}{}\u{0}{full}", enc.token()).into();
        let _flight = match self.cache.join(&flight_key) {
            Join::Lead(f) => f,
            Join::Wait(mut done) => {
                let _ = done.changed().await;
                if let Some(b) = self
                    .cache
                    .store
                    .get(full)
                    .await
                    .and_then(|e| e.variant(enc))
                {
                    return Some(b);
                }
                return Box::pin(self.encode_variant(full, entry, enc, level)).await;
            }
        };
        let body = entry.body.clone();
        let out = tokio::task::spawn_blocking(move || compress::encode_all(enc, level, &body))
            .await
            .ok()?
            .ok()?;
        // Add the variant to whatever is stored now, if it is still this body
        // (a 304 keeps the body; a new response replaces it).
        let current = self.cache.store.get(full).await;
        let mut e = match current {
            Some(c) if c.body.as_ptr() == entry.body.as_ptr() => (*c).clone(),
            Some(_) => return Some(out),
            None => (**entry).clone(),
        };
        if e.variant(enc).is_none() {
            e.variants.push((enc, out.clone()));
            self.cache.store.put(full.clone(), Arc::new(e)).await;
            self.cache.count(|c| &c.compressed_variants);
        }
        Some(out)
    }
}
