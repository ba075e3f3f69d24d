//! `Range` requests answered from a complete response, stored or streaming
//! from a fill (RFC 9110 §14): one byte range becomes a 206 with
//! `Content-Range`, several become a 206 `multipart/byteranges`; a failed
//! `If-Range`, a unit other than bytes or a malformed set get the whole
//! response (RFC 9110 §14.2); a set that selects nothing gets a 416.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderMap;
use http::header;
use http_body::Frame;

use super::policy;
use super::store::Entry;
use crate::body::BoxError;

/// At most this many ranges in one request get a multipart answer; more
/// get the whole response (RFC 9110 §14.2 lets a server ignore a range set
/// it finds abusive).
const MAX_RANGES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selected {
    /// Send the whole representation (200).
    Whole,
    /// Send bytes `start..=end` (206).
    Part { start: u64, end: u64 },
    /// Send these ranges, sorted and without overlaps, as
    /// `multipart/byteranges` (206).
    Parts(Vec<(u64, u64)>),
    /// Nothing of `len` bytes matches (416).
    Unsatisfiable,
}

/// What `If-Range` is evaluated against: the validators of the complete
/// response the ranges would be taken from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Validators<'a> {
    pub etag: Option<&'a str>,
    pub last_modified: Option<SystemTime>,
    /// The response's `Date`: it tells whether `Last-Modified` is strong.
    pub date: Option<SystemTime>,
}

impl<'a> Validators<'a> {
    pub fn of_entry(e: &'a Entry) -> Self {
        Self {
            etag: e.etag.as_deref(),
            last_modified: e.last_modified,
            date: policy::date(&e.headers, header::DATE),
        }
    }

    pub fn of_fields(h: &'a HeaderMap) -> Self {
        Self {
            etag: h.get(header::ETAG).and_then(|v| v.to_str().ok()),
            last_modified: policy::last_modified(h),
            date: policy::date(h, header::DATE),
        }
    }
}

/// What to send of a complete body of `len` bytes for the request `req`.
pub fn select(req: &HeaderMap, v: &Validators<'_>, len: u64) -> Selected {
    let Some(range) = req.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Selected::Whole;
    };
    if let Some(cond) = req.get(header::IF_RANGE).and_then(|v| v.to_str().ok())
        && !if_range_holds(cond.trim(), v)
    {
        return Selected::Whole;
    }
    let Some((unit, set)) = range.split_once('=') else {
        return Selected::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Selected::Whole;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.is_empty() || specs.len() > MAX_RANGES {
        return Selected::Whole;
    }
    let mut ranges = Vec::new();
    for spec in specs {
        match one(spec, len) {
            // A malformed member makes the whole field invalid: ignored.
            None => return Selected::Whole,
            Some(None) => {}
            Some(Some(r)) => ranges.push(r),
        }
    }
    ranges.sort_unstable();
    // Overlapping or adjacent ranges are sent as one (RFC 9110 §14.6).
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    match merged.as_slice() {
        [] => Selected::Unsatisfiable,
        [(start, end)] => Selected::Part {
            start: *start,
            end: *end,
        },
        _ => Selected::Parts(merged),
    }
}

/// One range spec: `None` when malformed, `Some(None)` when it selects
/// nothing of `len` bytes.
fn one(spec: &str, len: u64) -> Option<Option<(u64, u64)>> {
    let (a, b) = spec.split_once('-')?;
    let num = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (num(a), num(b), a.trim().is_empty(), b.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (None, Some(n), true, false) => {
            if n == 0 || len == 0 {
                return Some(None);
            }
            Some(Some((len.saturating_sub(n), len - 1)))
        }
        // bytes=A- and bytes=A-B.
        (Some(start), end, false, open) if open || end.is_some() => {
            let end = end.unwrap_or(u64::MAX);
            if end < start {
                return None;
            }
            if start >= len {
                return Some(None);
            }
            Some(Some((start, end.min(len - 1))))
        }
        _ => None,
    }
}

/// A `multipart/byteranges` body (RFC 9110 §14.6) of `ranges` of `body`,
/// each part with the stored `Content-Type`; returns the field value for
/// the response's `Content-Type` and the body.
pub fn multipart(
    body: &bytes::Bytes,
    ranges: &[(u64, u64)],
    content_type: Option<&str>,
) -> (String, bytes::Bytes) {
    multipart_of(body, 0, body.len() as u64, ranges, content_type)
}

/// [`multipart`] of a `body` that holds bytes `first..` of a representation
/// of `len` bytes (a stored part): `ranges` are of the representation and
/// lie within the body.
pub fn multipart_of(
    body: &bytes::Bytes,
    first: u64,
    len: u64,
    ranges: &[(u64, u64)],
    content_type: Option<&str>,
) -> (String, bytes::Bytes) {
    use std::fmt::Write;
    let boundary = boundary(body);
    let mut out = bytes::BytesMut::new();
    for (i, (start, end)) in ranges.iter().enumerate() {
        let mut head = format!("{}--{boundary}\r\n", if i == 0 { "" } else { "\r\n" });
        if let Some(ct) = content_type {
            _ = write!(head, "content-type: {ct}\r\n");
        }
        _ = write!(head, "content-range: bytes {start}-{end}/{len}\r\n\r\n");
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&body[(start - first) as usize..=(end - first) as usize]);
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/byteranges; boundary={boundary}"),
        out.freeze(),
    )
}

/// A boundary that does not occur in `body` (RFC 2046 §5.1.1).
fn boundary(body: &[u8]) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut n = 0u32;
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(n);
        let b = format!("edgeward-{:016x}", h.finish());
        if !body.windows(b.len()).any(|w| w == b.as_bytes()) {
            return b;
        }
        n += 1;
    }
}

/// `If-Range` (RFC 9110 §13.1.5): a strong ETag that matches by strong
/// comparison, or a date exactly equal to a strong Last-Modified. A cache
/// may take a Last-Modified as strong only when the response's Date is at
/// least a second later (RFC 9110 §8.8.2.2): the representation cannot have
/// changed twice within the second it names.
fn if_range_holds(cond: &str, v: &Validators<'_>) -> bool {
    if cond.starts_with('"') || cond.starts_with("W/") {
        return !cond.starts_with("W/")
            && v.etag
                .is_some_and(|e| !e.trim().starts_with("W/") && e.trim() == cond);
    }
    match (policy::date_value(cond), v.last_modified, v.date) {
        (Some(d), Some(lm), Some(date)) => {
            d == lm && date.duration_since(lm).is_ok_and(|s| s.as_secs() >= 1)
        }
        _ => false,
    }
}

/// Bytes `start..=end` of a body that streams the whole representation:
/// what comes before is read and dropped, what comes after is never read.
/// A body that ends before `end` fails, so a client never takes a short
/// part for a whole one.
pub struct Slice<B> {
    inner: B,
    skip: u64,
    left: u64,
}

impl<B> Slice<B> {
    pub fn new(inner: B, start: u64, end: u64) -> Self {
        Self {
            inner,
            skip: start,
            left: end.saturating_sub(start) + 1,
        }
    }
}

impl<B> http_body::Body for Slice<B>
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        while this.left > 0 {
            let Some(frame) = ready!(Pin::new(&mut this.inner).poll_frame(cx)) else {
                return Poll::Ready(Some(Err("the body ended before the range did".into())));
            };
            // Trailers belong to the whole body, not to a part of it.
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            let n = data.len() as u64;
            if this.skip >= n {
                this.skip -= n;
                continue;
            }
            let from = this.skip as usize;
            this.skip = 0;
            let take = (n - from as u64).min(this.left);
            this.left -= take;
            return Poll::Ready(Some(Ok(Frame::data(
                data.slice(from..from + take as usize),
            ))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use http::{HeaderValue, StatusCode};

    use super::*;
    use crate::cache::policy::CacheControl;

    fn entry() -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert(
            "date",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:38 GMT"),
        );
        Entry {
            status: StatusCode::OK,
            headers,
            body: bytes::Bytes::from_static(b"0123456789"),
            variants: Vec::new(),
            stored_at: Instant::now(),
            initial_age: Duration::ZERO,
            lifetime: Duration::from_secs(60),
            cc: CacheControl::default(),
            etag: Some("\"e\"".into()),
            last_modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)),
            tags: Vec::new(),
            vary: Vec::new(),
            host: "h".into(),
            path: "/".into(),
            keep_stale: Duration::ZERO,
        }
    }

    fn fields(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn sel(pairs: &[(&str, &str)]) -> Selected {
        let e = entry();
        select(&fields(pairs), &Validators::of_entry(&e), 10)
    }

    #[test]
    fn multipart_parts_carry_their_range_and_type() {
        let body = bytes::Bytes::from_static(b"0123456789");
        let (ct, out) = multipart(&body, &[(0, 1), (8, 9)], Some("text/plain"));
        let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(
            text,
            format!(
                "--{boundary}\r\ncontent-type: text/plain\r\ncontent-range: bytes 0-1/10\r\n\r\n01\
                 \r\n--{boundary}\r\ncontent-type: text/plain\r\ncontent-range: bytes 8-9/10\r\n\r\n89\
                 \r\n--{boundary}--\r\n"
            )
        );
    }

    #[test]
    fn ranges() {
        let part = |start, end| Selected::Part { start, end };
        assert_eq!(sel(&[]), Selected::Whole);
        assert_eq!(sel(&[("range", "bytes=0-0")]), part(0, 0));
        assert_eq!(sel(&[("range", "bytes=2-")]), part(2, 9));
        assert_eq!(sel(&[("range", "bytes=-3")]), part(7, 9));
        assert_eq!(sel(&[("range", "bytes=-30")]), part(0, 9));
        assert_eq!(sel(&[("range", "bytes=5-99")]), part(5, 9));
        assert_eq!(sel(&[("range", "BYTES = 1-2")]), part(1, 2));
        assert_eq!(sel(&[("range", "bytes=10-")]), Selected::Unsatisfiable);
        assert_eq!(sel(&[("range", "bytes=-0")]), Selected::Unsatisfiable);
        assert_eq!(sel(&[("range", "bytes=3-1")]), Selected::Whole);
        assert_eq!(
            sel(&[("range", "bytes=0-1,3-4")]),
            Selected::Parts(vec![(0, 1), (3, 4)])
        );
        // Sorted, overlapping and adjacent ones merged, unsatisfiable ones dropped.
        assert_eq!(
            sel(&[("range", "bytes=6-7, 0-1, 1-2, 3-3, 50-60")]),
            Selected::Parts(vec![(0, 3), (6, 7)])
        );
        assert_eq!(sel(&[("range", "bytes=0-4,2-9")]), part(0, 9));
        assert_eq!(sel(&[("range", "bytes=20-,30-")]), Selected::Unsatisfiable);
        assert_eq!(sel(&[("range", "bytes=0-1,x")]), Selected::Whole);
        let many = format!(
            "bytes={}",
            (0..17)
                .map(|i| format!("{i}-{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut h = HeaderMap::new();
        h.insert("range", HeaderValue::from_str(&many).unwrap());
        assert_eq!(
            select(&h, &Validators::of_entry(&entry()), 100),
            Selected::Whole
        );
        assert_eq!(sel(&[("range", "items=0-1")]), Selected::Whole);
        assert_eq!(sel(&[("range", "bytes=x-1")]), Selected::Whole);
        let r = ("range", "bytes=0-1");
        assert_eq!(sel(&[r, ("if-range", "\"e\"")]), part(0, 1));
        assert_eq!(sel(&[r, ("if-range", "W/\"e\"")]), Selected::Whole);
        assert_eq!(sel(&[r, ("if-range", "\"other\"")]), Selected::Whole);
        assert_eq!(
            sel(&[r, ("if-range", "Sun, 06 Nov 1994 08:49:37 GMT")]),
            part(0, 1)
        );
        assert_eq!(
            sel(&[r, ("if-range", "Sun, 06 Nov 1994 08:49:38 GMT")]),
            Selected::Whole
        );
        // A Last-Modified within the second of the response's Date is weak:
        // an If-Range date never matches it (RFC 9110 §8.8.2.2).
        let mut e = entry();
        e.headers.insert(
            "date",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        let h = fields(&[r, ("if-range", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(select(&h, &Validators::of_entry(&e), 10), Selected::Whole);
        e.headers.remove("date");
        assert_eq!(select(&h, &Validators::of_entry(&e), 10), Selected::Whole);
        // A weak stored ETag never satisfies If-Range, even with the same tag.
        e.etag = Some("W/\"e\"".into());
        let h = fields(&[r, ("if-range", "\"e\"")]);
        assert_eq!(select(&h, &Validators::of_entry(&e), 10), Selected::Whole);
    }

    #[tokio::test]
    async fn a_slice_of_a_stream_is_exactly_its_range() {
        use http_body_util::BodyExt;
        let chunks = |parts: &[&'static str]| {
            let frames: Vec<Result<Frame<Bytes>, BoxError>> = parts
                .iter()
                .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
                .collect();
            crate::body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
                frames,
            )))
        };
        let all = ["0123", "4567", "89ab", "cdef"];
        for (start, end, want) in [
            (0, 15, "0123456789abcdef"),
            (0, 0, "0"),
            (3, 4, "34"),
            (4, 7, "4567"),
            (5, 13, "56789abcd"),
            (15, 15, "f"),
        ] {
            let got = Slice::new(chunks(&all), start, end)
                .collect()
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(&got[..], want.as_bytes(), "{start}-{end}");
        }
        // Shorter than the range: an error, never a short success.
        assert!(Slice::new(chunks(&all), 10, 20).collect().await.is_err());
    }
}
