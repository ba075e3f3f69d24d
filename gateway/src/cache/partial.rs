//! Stored partial content (RFC 9111 §3.3–3.4): the 206 parts of responses
//! too big to keep whole, so a later range inside a stored part is a hit,
//! and parts of one representation combine into one.
//!
//! A part is an [`Entry`] with status 206 whose `Content-Range` says which
//! bytes of how many it holds. It lives under its own primary key (see
//! [`primary`]), so a lookup of the complete response never finds it, and a
//! purge of its path removes it with the rest (the index is by path).

use std::sync::Arc;

use bytes::BytesMut;
use http::HeaderMap;
use http::header::{self, HeaderValue};

use super::range::Validators;
use super::store::Entry;

/// The primary key a resource's stored part lives under.
pub fn primary(complete: &str) -> Arc<str> {
    format!("{complete}\u{0}partial").into()
}

/// Which bytes of how many a 206 holds: `Content-Range: bytes A-B/N`.
/// `None` for anything else (`*` lengths, other units, several parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub start: u64,
    pub end: u64,
    pub complete: u64,
}

impl Piece {
    pub fn of(h: &HeaderMap) -> Option<Self> {
        let v = h.get(header::CONTENT_RANGE)?.to_str().ok()?.trim();
        let (unit, rest) = v.split_once(' ')?;
        if !unit.eq_ignore_ascii_case("bytes") {
            return None;
        }
        let (range, complete) = rest.trim().split_once('/')?;
        let (start, end) = range.split_once('-')?;
        let piece = Self {
            start: start.trim().parse().ok()?,
            end: end.trim().parse().ok()?,
            complete: complete.trim().parse().ok()?,
        };
        (piece.start <= piece.end && piece.end < piece.complete).then_some(piece)
    }

    pub fn bytes(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Whether bytes `start..=end` are all in this piece.
    pub fn holds(&self, start: u64, end: u64) -> bool {
        self.start <= start && end <= self.end
    }

    pub fn is_whole(&self) -> bool {
        self.start == 0 && self.end + 1 == self.complete
    }

    pub fn content_range(&self) -> HeaderValue {
        let v = format!("bytes {}-{}/{}", self.start, self.end, self.complete);
        HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("bytes */0"))
    }
}

/// Whether two responses are known to carry the same representation: the
/// same strong ETag, or without ETags the same strong Last-Modified (RFC
/// 9111 §3.4 combines only on a strong validator; RFC 9110 §8.8.2.2 makes
/// a Last-Modified strong when the Date is at least a second later).
pub fn same_representation(a: &Validators<'_>, b: &Validators<'_>) -> bool {
    let strong_etag = |e: &str| !e.trim().starts_with("W/");
    match (a.etag, b.etag) {
        (Some(x), Some(y)) => strong_etag(x) && strong_etag(y) && x.trim() == y.trim(),
        (None, None) => {
            let strong = |v: &Validators<'_>| match (v.last_modified, v.date) {
                (Some(lm), Some(date)) => date
                    .duration_since(lm)
                    .is_ok_and(|s| s.as_secs() >= 1)
                    .then_some(lm),
                _ => None,
            };
            strong(a).is_some_and(|lm| strong(b) == Some(lm))
        }
        _ => false,
    }
}

/// `new` (a fresh part, its body in) combined with what was stored: one
/// piece covering both when they are of the same representation and touch
/// or overlap, else `new` alone (RFC 9111 §3.4: the newer fields win, and
/// where the two overlap the newer bytes do). A combination longer than
/// `limit` bytes is not kept: `new` alone is.
pub fn combine(stored: Option<&Entry>, new: Entry, limit: u64) -> Entry {
    let Some(old) = stored else { return new };
    let (Some(a), Some(b)) = (Piece::of(&old.headers), Piece::of(&new.headers)) else {
        return new;
    };
    let touch = a.start <= b.end.saturating_add(1) && b.start <= a.end.saturating_add(1);
    if a.complete != b.complete
        || !touch
        || !same_representation(&Validators::of_entry(old), &Validators::of_entry(&new))
    {
        return new;
    }
    let merged = Piece {
        start: a.start.min(b.start),
        end: a.end.max(b.end),
        complete: b.complete,
    };
    if merged.bytes() > limit || old.body.len() as u64 != a.bytes() {
        return new;
    }
    let mut body = BytesMut::with_capacity(merged.bytes() as usize);
    if a.start < b.start {
        body.extend_from_slice(&old.body[..(b.start - a.start) as usize]);
    }
    body.extend_from_slice(&new.body);
    if a.end > b.end {
        body.extend_from_slice(&old.body[(b.end + 1 - a.start) as usize..]);
    }
    let mut out = new;
    out.body = body.freeze();
    out.headers
        .insert(header::CONTENT_RANGE, merged.content_range());
    out
}

/// A part that covers its whole representation, made the complete 200 it
/// now is (RFC 9111 §3.4: a combined response that is complete).
pub fn completed(mut e: Entry) -> Entry {
    e.status = http::StatusCode::OK;
    e.headers.remove(header::CONTENT_RANGE);
    e
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, SystemTime};

    use bytes::Bytes;
    use http::StatusCode;

    use super::*;
    use crate::cache::policy::CacheControl;

    fn part(start: u64, body: &[u8], complete: u64, etag: &str) -> Entry {
        let mut headers = HeaderMap::new();
        let piece = Piece {
            start,
            end: start + body.len() as u64 - 1,
            complete,
        };
        headers.insert(header::CONTENT_RANGE, piece.content_range());
        headers.insert(header::ETAG, HeaderValue::from_str(etag).unwrap());
        Entry {
            status: StatusCode::PARTIAL_CONTENT,
            headers,
            body: Bytes::copy_from_slice(body),
            variants: Vec::new(),
            stored_at: Instant::now(),
            initial_age: Duration::ZERO,
            lifetime: Duration::from_secs(60),
            cc: CacheControl::default(),
            etag: Some(etag.to_owned()),
            last_modified: None,
            tags: Vec::new(),
            vary: Vec::new(),
            host: "h".into(),
            path: "/p".into(),
            keep_stale: Duration::ZERO,
        }
    }

    fn range_of(e: &Entry) -> Piece {
        Piece::of(&e.headers).unwrap()
    }

    #[test]
    fn content_range_is_read_strictly() {
        let mut h = HeaderMap::new();
        for (v, want) in [
            ("bytes 0-9/100", Some((0, 9, 100))),
            ("Bytes  5-5/6", Some((5, 5, 6))),
            ("bytes 0-9/*", None),
            ("bytes */100", None),
            ("bytes 9-0/100", None),
            ("bytes 0-100/100", None),
            ("items 0-9/100", None),
        ] {
            h.insert(header::CONTENT_RANGE, HeaderValue::from_static(v));
            let got = Piece::of(&h).map(|p| (p.start, p.end, p.complete));
            assert_eq!(got, want, "{v}");
        }
    }

    #[test]
    fn touching_parts_of_one_representation_combine_and_newer_bytes_win() {
        let old = part(10, b"abcde", 100, "\"v1\""); // 10..=14
        let new = part(13, b"XYZW", 100, "\"v1\""); // 13..=16
        let c = combine(Some(&old), new, 1000);
        assert_eq!(
            range_of(&c),
            Piece {
                start: 10,
                end: 16,
                complete: 100
            }
        );
        assert_eq!(&c.body[..], b"abcXYZW");
        // Adjacent on the left, and one inside the other.
        let c = combine(Some(&c), part(5, b"01234", 100, "\"v1\""), 1000);
        assert_eq!((range_of(&c).start, &c.body[..]), (5, &b"01234abcXYZW"[..]));
        let c = combine(Some(&c), part(7, b"--", 100, "\"v1\""), 1000);
        assert_eq!(&c.body[..], b"01--4abcXYZW");
        assert_eq!(
            range_of(&c),
            Piece {
                start: 5,
                end: 16,
                complete: 100
            }
        );
    }

    #[test]
    fn parts_that_cannot_be_combined_leave_the_newer_alone() {
        let old = part(0, b"abcde", 100, "\"v1\"");
        // A gap between them.
        let c = combine(Some(&old), part(6, b"xy", 100, "\"v1\""), 1000);
        assert_eq!(range_of(&c).start, 6);
        // Another representation, a weak ETag, another length, over the limit.
        for new in [part(5, b"xy", 100, "\"v2\""), part(5, b"xy", 101, "\"v1\"")] {
            assert_eq!(range_of(&combine(Some(&old), new, 1000)).start, 5);
        }
        let weak = part(0, b"abcde", 100, "W/\"v1\"");
        let c = combine(Some(&weak), part(5, b"xy", 100, "W/\"v1\""), 1000);
        assert_eq!(range_of(&c).start, 5);
        let c = combine(Some(&old), part(5, b"xy", 100, "\"v1\""), 6);
        assert_eq!(range_of(&c).start, 5);
    }

    #[test]
    fn last_modified_combines_only_when_strong() {
        let lm = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let v = |date: u64| Validators {
            etag: None,
            last_modified: Some(lm),
            date: Some(lm + Duration::from_secs(date)),
        };
        assert!(same_representation(&v(5), &v(1)));
        assert!(!same_representation(&v(0), &v(5)));
        assert!(!same_representation(
            &Validators::default(),
            &Validators::default()
        ));
    }

    #[test]
    fn a_part_covering_everything_is_complete() {
        let old = part(0, b"abc", 6, "\"v1\"");
        let c = combine(Some(&old), part(3, b"def", 6, "\"v1\""), 1000);
        assert!(range_of(&c).is_whole());
        let whole = completed(c);
        assert_eq!(whole.status, StatusCode::OK);
        assert!(!whole.headers.contains_key(header::CONTENT_RANGE));
        assert_eq!(&whole.body[..], b"abcdef");
        let p = Piece {
            start: 2,
            end: 4,
            complete: 6,
        };
        assert!(p.holds(2, 4) && !p.holds(1, 3) && !p.holds(3, 5));
    }
}
