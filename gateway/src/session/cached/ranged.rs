//! `Range` requests the cache answers (RFC 9110 §14, RFC 9111 §3.3–3.4).
//!
//! A range request that misses does not bypass the cache: the cache asks
//! upstream for the complete response (without `Range`), fills the entry as
//! any miss does, and answers the client's range from the fill as it streams
//! (a single range is sliced out of the stream; several are cut from the
//! whole body once it is in). So the next range of the same resource is a
//! hit, whatever part it asks for. What will not be stored (too big for
//! `max-object-size`, or not storable) is asked for again with the client's
//! own `Range`, so a large object is never fetched whole for a small part;
//! a 206 it sends for one that is only too big is kept as a part
//! ([`super::partial`]).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::{self, Body};
use crate::cache::fill::{Head, read_limited};
use crate::cache::range::{self, Selected, Slice, Validators};
use crate::compress::{self, Encoding};
use crate::session::error::ProxyError;
use crate::session::{Answer, Session};

/// Whether the client asked for a range the cache may answer: ranges are
/// defined for GET only (RFC 9110 §14.2).
pub(super) fn wants_range(head: &Head) -> bool {
    head.method == Method::GET && head.headers.contains_key(header::RANGE)
}

/// The status and body of a range answer cut from the whole body `b`, with
/// `h` (the complete response's fields) made the answer's: `Content-Range`
/// for one part, a `multipart/byteranges` type for several, and
/// `Content-Length` left for the caller to set from the body.
pub(super) fn of_bytes(selected: Selected, h: &mut HeaderMap, b: Bytes) -> (StatusCode, Bytes) {
    let len = b.len() as u64;
    of_part(selected, h, b, 0, len)
}

/// [`of_bytes`] for a `b` that holds bytes `first..` of a representation of
/// `len` bytes (a stored part); the selected ranges lie within it.
pub(super) fn of_part(
    selected: Selected,
    h: &mut HeaderMap,
    b: Bytes,
    first: u64,
    len: u64,
) -> (StatusCode, Bytes) {
    match selected {
        Selected::Whole => (StatusCode::OK, b),
        Selected::Parts(ranges) => {
            let ct = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let (ct, body) = range::multipart_of(&b, first, len, &ranges, ct);
            if let Ok(v) = HeaderValue::from_str(&ct) {
                h.insert(header::CONTENT_TYPE, v);
            }
            h.remove(header::CONTENT_RANGE);
            (StatusCode::PARTIAL_CONTENT, body)
        }
        Selected::Part { start, end } => {
            content_range(h, start, end, len);
            (
                StatusCode::PARTIAL_CONTENT,
                b.slice((start - first) as usize..=(end - first) as usize),
            )
        }
        Selected::Unsatisfiable => {
            unsatisfiable(h, len);
            (StatusCode::RANGE_NOT_SATISFIABLE, Bytes::new())
        }
    }
}

fn content_range(h: &mut HeaderMap, start: u64, end: u64, len: u64) {
    if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
        h.insert(header::CONTENT_RANGE, v);
    }
}

fn unsatisfiable(h: &mut HeaderMap, len: u64) {
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
        h.insert(header::CONTENT_RANGE, v);
    }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A range request's answer from a complete response streaming from a fill.
pub(super) enum Ranged {
    Answer(Response<Body>),
    /// The body, of unknown length, turned out longer than the cache keeps:
    /// the range is for upstream to answer ([`Session::pass_range_keeping`]).
    TooBig,
}

impl Session {
    /// The client's own request, `Range` and all, forwarded as it came:
    /// for a response the cache will not store.
    pub(super) async fn pass_range(&self, head: &Head) -> Answer {
        let mut req = Request::new(body::empty());
        *req.method_mut() = head.method.clone();
        *req.uri_mut() = head.uri.clone();
        *req.version_mut() = head.version;
        *req.headers_mut() = head.headers.clone();
        *req.extensions_mut() = head.extensions.clone();
        self.forward(req).await
    }

    /// Whether phase 8 would encode this complete response for this client:
    /// then it gets the whole encoded response, as from the store (a range
    /// of an encoded body is a range of another representation).
    fn would_encode(&self, resp: &Response<Body>) -> bool {
        self.want != Encoding::Identity
            && self.route().compression.as_ref().is_some_and(|c| {
                compress::eligible(
                    &Method::GET,
                    resp.status(),
                    resp.headers(),
                    None,
                    c.min_size,
                    &c.types,
                )
                .is_ok()
            })
    }

    /// The answer to a range request from `resp`, a complete 200 streaming
    /// from a fill (the filling request's or the one a waiter joined). Other
    /// requests and responses are returned as they are.
    pub(super) async fn ranged(
        &self,
        resp: Response<Body>,
        head: &Head,
    ) -> Result<Ranged, ProxyError> {
        if !wants_range(head) || resp.status() != StatusCode::OK || self.would_encode(&resp) {
            return Ok(Ranged::Answer(resp));
        }
        let (mut parts, incoming) = resp.into_parts();
        let h = &mut parts.headers;
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let Some(len) = content_length(h) else {
            // No length to take ranges against until the body is in: read
            // it, as far as the store would keep it.
            let limit = self.node.cache.settings.max_object_size;
            let b = match read_limited(incoming, limit as usize).await {
                Ok(Ok(b)) => b,
                // Longer than any fill keeps: let upstream answer the range.
                Ok(Err(_)) => return Ok(Ranged::TooBig),
                Err(source) => return Err(self.body_error(source)),
            };
            let selected = range::select(&head.headers, &Validators::of_fields(h), b.len() as u64);
            let (status, b) = of_bytes(selected, h, b);
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
            parts.status = status;
            return Ok(Ranged::Answer(Response::from_parts(parts, body::full(b))));
        };
        let selected = range::select(&head.headers, &Validators::of_fields(h), len);
        let (status, out) = match selected {
            Selected::Whole => return Ok(Ranged::Answer(Response::from_parts(parts, incoming))),
            Selected::Part { start, end } => {
                content_range(h, start, end, len);
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start + 1));
                let slice = body::boxed(Slice::new(incoming, start, end));
                (StatusCode::PARTIAL_CONTENT, slice)
            }
            Selected::Unsatisfiable => {
                // The fill goes on without this reader and stores the body.
                unsatisfiable(h, len);
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                (StatusCode::RANGE_NOT_SATISFIABLE, body::empty())
            }
            parts_of @ Selected::Parts(_) => {
                // Each part is preceded by its own head, and the boundary must
                // not occur in the body: cut them once the body is in.
                let b = match incoming.collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(source) => return Err(self.body_error(source)),
                };
                let (status, b) = of_bytes(parts_of, h, b);
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
                (status, body::full(b))
            }
        };
        parts.status = status;
        Ok(Ranged::Answer(Response::from_parts(parts, out)))
    }

    fn body_error(&self, source: body::BoxError) -> ProxyError {
        let endpoint = self.endpoint_name().unwrap_or_default();
        ProxyError::from_body(source, &self.pool().name, &endpoint)
    }
}
