//! `Range` requests answered from a stored complete response (RFC 9110 §14):
//! one byte range becomes a 206 with `Content-Range`, several become a 206
//! `multipart/byteranges`; a failed `If-Range`, a unit other than bytes or a
//! malformed set get the whole response (RFC 9110 §14.2); a set that selects
//! nothing gets a 416.

use http::HeaderMap;
use http::header;

use super::policy;
use super::store::Entry;

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

/// What to send of a stored body of `len` bytes for the request `req`.
pub fn select(req: &HeaderMap, entry: &Entry, len: u64) -> Selected {
    let Some(range) = req.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Selected::Whole;
    };
    if let Some(cond) = req.get(header::IF_RANGE).and_then(|v| v.to_str().ok())
        && !if_range_holds(cond.trim(), entry)
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
    use std::fmt::Write;
    let boundary = boundary(body);
    let len = body.len();
    let mut out = bytes::BytesMut::new();
    for (i, (start, end)) in ranges.iter().enumerate() {
        let mut head = format!("{}--{boundary}\r\n", if i == 0 { "" } else { "\r\n" });
        if let Some(ct) = content_type {
            _ = write!(head, "content-type: {ct}\r\n");
        }
        _ = write!(head, "content-range: bytes {start}-{end}/{len}\r\n\r\n");
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&body[*start as usize..=*end as usize]);
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

/// `If-Range` (RFC 9110 §13.1.5): a strong ETag that matches, or a date equal
/// to a strong Last-Modified.
fn if_range_holds(cond: &str, entry: &Entry) -> bool {
    if cond.starts_with('"') || cond.starts_with("W/") {
        return !cond.starts_with("W/")
            && entry
                .etag
                .as_deref()
                .is_some_and(|e| !e.starts_with("W/") && e.trim() == cond);
    }
    match (policy::date_value(cond), entry.last_modified) {
        (Some(d), Some(lm)) => d == lm,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, SystemTime};

    use http::{HeaderValue, StatusCode};

    use super::*;
    use crate::cache::policy::CacheControl;

    fn entry() -> Entry {
        Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
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

    fn sel(pairs: &[(&str, &str)]) -> Selected {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        select(&h, &entry(), 10)
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
        assert_eq!(select(&h, &entry(), 100), Selected::Whole);
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
    }
}
