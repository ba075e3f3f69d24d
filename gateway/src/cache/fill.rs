//! Filling the cache from upstream: the request the cache sends, entries
//! freshened by a 304, purge tags, and reading a body up to the object limit.

use std::time::{Duration, Instant, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};

use super::RouteCache;
use super::policy::{self, CacheControl, Times};
use super::store::Entry;
use crate::body::{self, Body};

/// Set on every response from a cached route; never stored.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The parts of a GET/HEAD the cache needs to (re)build upstream requests.
#[derive(Debug, Clone)]
pub struct Head {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    /// The client request's extensions (where its connection takes 1xx
    /// interim responses, for one), carried to the upstream request.
    pub extensions: http::Extensions,
}

/// The request the cache sends upstream: always a GET (a HEAD miss fills the
/// cache too), without the client's own conditionals, asking for identity so
/// the gateway makes every encoding itself; conditional on `stored`'s validators.
pub fn upstream_request(head: &Head, stored: Option<&Entry>) -> Request<Body> {
    let mut req = Request::new(body::empty());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = head.uri.clone();
    *req.version_mut() = head.version;
    *req.extensions_mut() = head.extensions.clone();
    let mut h = head.headers.clone();
    for name in [
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
        header::RANGE,
    ] {
        h.remove(name);
    }
    h.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    if let Some(e) = stored {
        if let Some(v) = e
            .etag
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            h.insert(header::IF_NONE_MATCH, v);
        }
        if let Some(v) = e.headers.get(header::LAST_MODIFIED) {
            h.insert(header::IF_MODIFIED_SINCE, v.clone());
        }
    }
    *req.headers_mut() = h;
    req
}

/// The stored entry updated by a 304 (RFC 9111 §4.3.4).
pub fn freshened(
    entry: &Entry,
    policy: &RouteCache,
    not_modified: &HeaderMap,
    times: Times,
) -> Entry {
    let mut e = entry.clone();
    let mut nm = not_modified.clone();
    nm.remove(header::AGE);
    nm.remove(X_CACHE);
    // One client's cookie must never reach another through the stored entry.
    nm.remove(header::SET_COOKIE);
    let tags = take_tags(&mut nm);
    policy::freshen(&mut e.headers, &nm);
    if !tags.is_empty() {
        e.tags = tags;
    }
    e.cc = CacheControl::parse_response(&e.headers);
    e.lifetime =
        policy::freshness_lifetime(e.status, &e.headers, &e.cc, policy.ttl, times.response_time);
    e.initial_age = policy::initial_age(not_modified, times);
    e.stored_at = Instant::now() - stored_since(times.response_time);
    e.etag = etag(&e.headers);
    e.last_modified = policy::last_modified(&e.headers);
    e
}

pub fn stored_since(response_time: SystemTime) -> Duration {
    SystemTime::now()
        .duration_since(response_time)
        .unwrap_or(Duration::ZERO)
}

pub fn etag(h: &HeaderMap) -> Option<String> {
    h.get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Purge tags from `Cache-Tag` (comma-separated) and `Surrogate-Key`
/// (space-separated); both are for this cache, so they are removed.
pub fn take_tags(h: &mut HeaderMap) -> Vec<String> {
    let mut tags = Vec::new();
    for (name, sep) in [("cache-tag", ','), ("surrogate-key", ' ')] {
        for v in h.get_all(name).iter().filter_map(|v| v.to_str().ok()) {
            tags.extend(
                v.split(sep)
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
            );
        }
        h.remove(name);
    }
    tags.sort();
    tags.dedup();
    tags
}

/// The whole body when it fits `limit`; else a body that replays what was read
/// and streams the rest (the response then goes uncached).
pub async fn read_limited(
    mut body: Body,
    limit: usize,
) -> Result<Result<bytes::Bytes, Body>, crate::body::BoxError> {
    use http_body_util::BodyExt;
    let mut chunks: Vec<bytes::Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        total += data.len();
        chunks.push(data);
        if total > limit {
            let prefix = futures_util::stream::iter(
                chunks.into_iter().map(|b| Ok(http_body::Frame::data(b))),
            );
            let rest = futures_util::stream::unfold(body, |mut b| async move {
                b.frame().await.map(|f| (f, b))
            });
            use futures_util::StreamExt;
            let stream = prefix.chain(rest);
            return Ok(Err(body::boxed(http_body_util::StreamBody::new(stream))));
        }
    }
    let mut out = bytes::BytesMut::with_capacity(total);
    for c in chunks {
        out.extend_from_slice(&c);
    }
    Ok(Ok(out.freeze()))
}

/// Bytes of all fills in progress together; a fill that
/// would go over it stops keeping its body and streams on uncached.
#[derive(Debug)]
pub struct FillBudget {
    max: u64,
    held: std::sync::atomic::AtomicU64,
}

impl FillBudget {
    pub fn new(max: u64) -> Self {
        Self {
            max,
            held: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Bytes held by fills now.
    pub fn held(&self) -> u64 {
        self.held.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn take(&self, n: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.held
            .fetch_update(Relaxed, Relaxed, |h| (h + n <= self.max).then_some(h + n))
            .is_ok()
    }

    pub(super) fn give(&self, n: u64) {
        self.held.fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Called with the whole body at the end of a fill
/// ([`super::fanout::run`]); the readers get the end of the body only once
/// the returned future (the store) is done.
pub type OnBody =
    Box<dyn FnOnce(bytes::Bytes) -> futures_util::future::BoxFuture<'static, ()> + Send>;
