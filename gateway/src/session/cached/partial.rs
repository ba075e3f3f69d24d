//! Range requests for responses too big to keep whole: the 206 upstream
//! sends is stored as a part and combined with the parts stored before it
//! (RFC 9111 §3.3–3.4, [`crate::cache::partial`]), and a later range that
//! lies inside a fresh stored part is answered from it. This is what NGINX's
//! `slice` module does for large objects, without a fixed slice size.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::fetch::Outcome;
use super::{About, Did, ranged};
use crate::body::{self, Body};
use crate::cache::fanout::{self, Fanout};
use crate::cache::fill::{Head, OnBody, X_CACHE, etag, stored_since, take_tags};
use crate::cache::partial::{self, Piece};
use crate::cache::policy::{self, CacheControl, Times};
use crate::cache::range::{self, Selected, Validators};
use crate::cache::{CacheKey, Entry, key};
use crate::session::Session;
use crate::session::error::ProxyError;

/// What a stored part says about a range request.
pub(super) enum FromPart {
    /// Answered from the stored part.
    Hit(Response<Body>),
    /// A fresh part says the response is too big to keep whole, but it does
    /// not hold what was asked: the range goes upstream as it came, without
    /// first asking for the complete response.
    Elsewhere,
    /// No fresh part: look the usual way.
    Nothing,
}

impl Session {
    /// The answer a fresh stored part gives a range request, if any.
    pub(super) async fn answer_from_part(&self, key: &CacheKey, head: &Head) -> FromPart {
        if !ranged::wants_range(head) {
            return FromPart::Nothing;
        }
        let store = &self.node.cache.store;
        let full = store
            .full_key(&partial::primary(&key.primary), &head.headers)
            .await;
        let Some(e) = store.get(&full).await.filter(|e| e.is_fresh()) else {
            return FromPart::Nothing;
        };
        let Some(p) = Piece::of(&e.headers) else {
            return FromPart::Nothing;
        };
        let selected = range::select(&head.headers, &Validators::of_entry(&e), p.complete);
        let inside = match &selected {
            Selected::Part { start, end } => p.holds(*start, *end),
            Selected::Parts(ranges) => ranges.iter().all(|&(s, e)| p.holds(s, e)),
            Selected::Unsatisfiable => true,
            // The whole (a failed If-Range, a malformed set).
            Selected::Whole => false,
        };
        if !inside {
            return FromPart::Elsewhere;
        }
        let mut h = e.headers.clone();
        let (status, b) = ranged::of_part(selected, &mut h, e.body.clone(), p.start, p.complete);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(
            header::AGE,
            HeaderValue::from(e.age().as_secs().min(1 << 31)),
        );
        let mut resp = Response::new(body::full(b));
        *resp.status_mut() = status;
        *resp.headers_mut() = h;
        *resp.version_mut() = head.version;
        self.node.cache.count(|c| &c.hits);
        self.label(&mut resp, Did::Hit, Some(About::from(&*e)));
        FromPart::Hit(resp)
    }

    /// The client's range forwarded as it came, for a response too big to
    /// keep whole; a single-part 206 that may be stored streams to the client
    /// and is stored as a part, combined with the part stored before.
    pub(super) async fn pass_range_keeping(&self, head: &Head) -> Outcome {
        let request_time = SystemTime::now();
        let resp = match self.pass_range(head).await {
            Ok(resp) => resp,
            Err(e) => return Outcome::Failed(Err(e)),
        };
        let times = Times {
            request_time,
            response_time: SystemTime::now(),
        };
        let Some(policy) = self.route().cache.as_ref() else {
            return Outcome::Passed(resp);
        };
        let key = key::build(policy, self.conn.scheme, &head.uri, &head.headers);
        let req_cc = CacheControl::parse_request(&head.headers);
        let limit = self.node.cache.settings.max_object_size;
        let Some(mut entry) = part_to_keep(&resp, head, &req_cc, policy, limit, times) else {
            return Outcome::Passed(resp);
        };
        entry.host = key.host.as_str().into();
        entry.path = key.path.as_str().into();
        let (mut client, incoming) = resp.into_parts();
        client.headers.remove(X_CACHE);
        client.headers.insert(
            header::AGE,
            HeaderValue::from(entry.initial_age.as_secs().min(1 << 31)),
        );
        let lifetime = entry.lifetime;
        let (node, req) = (self.node.clone(), head.headers.clone());
        let on_body: OnBody = Box::new(move |body| {
            Box::pin(async move {
                let store = &node.cache.store;
                let primary = partial::primary(&key.primary);
                let full = store.full_key(&primary, &req).await;
                let stored = store.get(&full).await;
                let entry = partial::combine(stored.as_deref(), Entry { body, ..entry }, limit);
                if Piece::of(&entry.headers).is_some_and(|p| p.is_whole()) {
                    store.remove(&full).await;
                    store
                        .insert(&key.primary, &req, partial::completed(entry))
                        .await;
                } else {
                    store.insert(&primary, &req, entry).await;
                }
                node.cache.count(|c| &c.stored);
            })
        });
        let fan = Fanout::new();
        let Some(reader) = fan.attach() else {
            return Outcome::Failed(Err(ProxyError::Internal("a new fill refused its reader")));
        };
        tokio::spawn(fanout::run(
            fan,
            incoming,
            limit,
            self.node.cache.fills.clone(),
            on_body,
            None,
        ));
        Outcome::Streaming(Response::from_parts(client, body::boxed(reader)), lifetime)
    }
}

/// The entry (its body still to come) a 206 is stored as, if it may be: one
/// part with a known place in a known length, no larger than `limit`, not
/// coded, without `Set-Cookie`, and storable as its complete response would
/// be (a 206 is heuristically cacheable, RFC 9110 §15.3.7).
fn part_to_keep(
    resp: &Response<Body>,
    head: &Head,
    req_cc: &CacheControl,
    policy: &crate::cache::RouteCache,
    limit: u64,
    times: Times,
) -> Option<Entry> {
    let h = resp.headers();
    if resp.status() != StatusCode::PARTIAL_CONTENT
        || h.contains_key(header::SET_COOKIE)
        || !crate::cache::decode::codings(h).is_empty()
    {
        return None;
    }
    let piece = Piece::of(h)?;
    let length = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if piece.bytes() > limit || length.is_some_and(|n| n != piece.bytes()) {
        return None;
    }
    let cc = CacheControl::parse_response(h);
    let lifetime =
        policy::freshness_lifetime(StatusCode::OK, h, &cc, policy.ttl, times.response_time);
    policy::storable(
        &Method::GET,
        &head.headers,
        req_cc,
        StatusCode::OK,
        h,
        &cc,
        lifetime,
    )
    .ok()?;
    let mut headers = h.clone();
    let tags = take_tags(&mut headers);
    for name in [header::CONTENT_LENGTH, header::AGE, X_CACHE] {
        headers.remove(name);
    }
    if !headers.contains_key(header::DATE)
        && let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(times.response_time))
    {
        headers.insert(header::DATE, v);
    }
    Some(Entry {
        status: StatusCode::PARTIAL_CONTENT,
        etag: etag(&headers),
        last_modified: policy::last_modified(&headers),
        vary: policy::vary_names(&headers).unwrap_or_default(),
        initial_age: policy::initial_age(h, times),
        stored_at: Instant::now() - stored_since(times.response_time),
        lifetime,
        cc,
        tags,
        headers,
        body: bytes::Bytes::new(),
        variants: Vec::new(),
        host: Arc::from(""),
        path: Arc::from(""),
        keep_stale: policy.stale_if_unreachable.unwrap_or_default(),
    })
}
