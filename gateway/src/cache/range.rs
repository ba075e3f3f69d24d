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
