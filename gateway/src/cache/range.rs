//! `Range` requests answered from a stored complete response (RFC 9110 §14):
//! one byte range becomes a 206 with `Content-Range`; several ranges, a failed
//! `If-Range` or a unit other than bytes get the whole response (which
//! RFC 9110 §14.2 allows); a range past the end gets a 416.

use http::HeaderMap;
use http::header;

use super::policy;
use super::store::Entry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// Send the whole representation (200).
    Whole,
    /// Send bytes `start..=end` (206).
    Part { start: u64, end: u64 },
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
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return Selected::Whole;
    }
    let Some((a, b)) = set.trim().split_once('-') else {
        return Selected::Whole;
    };
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
                return Selected::Unsatisfiable;
            }
            Selected::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            }
        }
        // bytes=A- and bytes=A-B.
        (Some(start), end, false, open) if open || end.is_some() => {
            let end = end.unwrap_or(u64::MAX);
            if end < start {
                return Selected::Whole;
            }
            if start >= len {
                return Selected::Unsatisfiable;
            }
            Selected::Part {
                start,
                end: end.min(len - 1),
            }
        }
        _ => Selected::Whole,
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
        assert_eq!(sel(&[("range", "bytes=0-1,3-4")]), Selected::Whole);
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
