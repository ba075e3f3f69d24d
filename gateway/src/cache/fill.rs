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
}

/// The request the cache sends upstream: always a GET (a HEAD miss fills the
/// cache too), without the client's own conditionals, asking for identity so
/// the gateway makes every encoding itself; conditional on `stored`'s validators.
pub fn upstream_request(head: &Head, stored: Option<&Entry>) -> Request<Body> {
    let mut req = Request::new(body::empty());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = head.uri.clone();
    *req.version_mut() = head.version;
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

/// Bytes of all fills in progress together, held by [`Tee`]s; a fill that
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

    fn take(&self, n: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.held
            .fetch_update(Relaxed, Relaxed, |h| (h + n <= self.max).then_some(h + n))
            .is_ok()
    }

    fn give(&self, n: u64) {
        self.held.fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Called with the whole body once a [`Tee`] has seen its end; the client
/// gets the end of the body only once the returned future (the store) is done,
/// so a client that asks again at once finds the entry.
pub type OnBody =
    Box<dyn FnOnce(bytes::Bytes) -> futures_util::future::BoxFuture<'static, ()> + Send>;

type Polled = Option<Result<http_body::Frame<bytes::Bytes>, crate::body::BoxError>>;

/// An upstream body on its way to the client that keeps a copy for the
/// cache: every frame goes on as it arrives; the copy is handed to `on_body`
/// at the end. Past `limit`, or past the global [`FillBudget`], it drops the
/// copy and only streams (the response goes uncached, the client never
/// notices). A body that fails, or is dropped early, stores nothing.
pub struct Tee {
    inner: Body,
    kept: Vec<bytes::Bytes>,
    held: u64,
    limit: u64,
    budget: std::sync::Arc<FillBudget>,
    on_body: Option<OnBody>,
    /// The store in progress, and what to hand the client once it is done.
    storing: Option<(futures_util::future::BoxFuture<'static, ()>, Polled)>,
}

impl Tee {
    pub fn new(
        inner: Body,
        limit: u64,
        budget: std::sync::Arc<FillBudget>,
        on_body: OnBody,
    ) -> Self {
        Self {
            inner,
            kept: Vec::new(),
            held: 0,
            limit,
            budget,
            on_body: Some(on_body),
            storing: None,
        }
    }

    fn abandon(&mut self) {
        self.on_body = None;
        self.kept = Vec::new();
        self.budget.give(self.held);
        self.held = 0;
    }

    /// Starts the store; `then` is what the client gets after it.
    fn finish(&mut self, then: Polled) -> Polled {
        let Some(on_body) = self.on_body.take() else {
            return then;
        };
        // One exact copy: the chunks are slices of the read buffers.
        let mut out = bytes::BytesMut::with_capacity(self.held as usize);
        for c in std::mem::take(&mut self.kept) {
            out.extend_from_slice(&c);
        }
        self.budget.give(self.held);
        self.held = 0;
        self.storing = Some((on_body(out.freeze()), then));
        None
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        self.budget.give(self.held);
    }
}

impl http_body::Body for Tee {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Polled> {
        use std::task::Poll;
        let this = &mut *self;
        if this.storing.is_none() {
            let polled = match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(p) => p,
            };
            match &polled {
                Some(Ok(frame)) => {
                    if let (Some(data), Some(_)) = (frame.data_ref(), &this.on_body) {
                        let n = data.len() as u64;
                        if this.held + n > this.limit || !this.budget.take(n) {
                            this.abandon();
                        } else {
                            this.held += n;
                            this.kept.push(data.clone());
                        }
                    }
                    // A server may stop polling once the body says it has ended.
                    if !this.inner.is_end_stream() || this.on_body.is_none() {
                        return Poll::Ready(polled);
                    }
                }
                Some(Err(_)) => {
                    this.abandon();
                    return Poll::Ready(polled);
                }
                None => {}
            }
            if this.on_body.is_none() {
                return Poll::Ready(polled);
            }
            this.finish(polled);
        }
        let Some((store, _)) = &mut this.storing else {
            return Poll::Ready(None);
        };
        match store.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(this.storing.take().and_then(|(_, then)| then)),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.storing.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http_body_util::BodyExt;

    use super::*;

    fn chunks(n: usize, size: usize) -> Body {
        let frames = (0..n).map(move |i| {
            Ok::<_, crate::body::BoxError>(http_body::Frame::data(bytes::Bytes::from(vec![
                b'a' + i as u8;
                size
            ])))
        });
        body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }

    fn tee(inner: Body, limit: u64, budget: &Arc<FillBudget>) -> (Tee, Arc<Mutex<Option<usize>>>) {
        let got = Arc::new(Mutex::new(None));
        let g = got.clone();
        let on_body: OnBody = Box::new(move |b| {
            Box::pin(async move {
                *g.lock().unwrap() = Some(b.len());
            })
        });
        (Tee::new(inner, limit, budget.clone(), on_body), got)
    }

    #[tokio::test]
    async fn a_tee_keeps_what_fits_and_streams_everything() {
        let budget = Arc::new(FillBudget::new(1 << 20));
        let (t, got) = tee(chunks(4, 100), 1000, &budget);
        let all = t.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 400);
        assert_eq!(*got.lock().unwrap(), Some(400));
        assert_eq!(budget.held(), 0);
        // Over the object limit: streamed whole, not kept.
        let (t, got) = tee(chunks(4, 100), 250, &budget);
        assert_eq!(t.collect().await.unwrap().to_bytes().len(), 400);
        assert_eq!(*got.lock().unwrap(), None);
        assert_eq!(budget.held(), 0);
        // Over the shared budget: the same.
        let small = Arc::new(FillBudget::new(150));
        let (t, got) = tee(chunks(4, 100), 1000, &small);
        assert_eq!(t.collect().await.unwrap().to_bytes().len(), 400);
        assert_eq!(*got.lock().unwrap(), None);
        assert_eq!(small.held(), 0);
        // Dropped half way: nothing kept, the budget given back.
        let (mut t, got) = tee(chunks(4, 100), 1000, &budget);
        t.frame().await.unwrap().unwrap();
        assert_eq!(budget.held(), 100);
        drop(t);
        assert_eq!(budget.held(), 0);
        assert_eq!(*got.lock().unwrap(), None);
    }
}
