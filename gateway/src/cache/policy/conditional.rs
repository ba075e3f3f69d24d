//! Validators both ways: a client's conditional GET answered from a stored
//! response, and a stored response updated by an upstream 304.

use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderName};

use super::date;

/// Weak comparison of entity tags (RFC 9110 §8.8.3.2).
pub fn etag_weak_eq(a: &str, b: &str) -> bool {
    let opaque = |t: &str| t.trim().strip_prefix("W/").unwrap_or(t.trim()).to_owned();
    opaque(a) == opaque(b)
}

/// Would the stored response, with this `etag`/`last_modified`, answer the
/// client's GET/HEAD with 304? (RFC 9110 §13.1.2, §13.1.3, §13.2.2.)
pub fn not_modified(
    req: &HeaderMap,
    etag: Option<&str>,
    last_modified: Option<SystemTime>,
) -> bool {
    let inm: Vec<&str> = req
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !inm.is_empty() {
        return inm.iter().flat_map(|v| v.split(',')).any(|t| {
            let t = t.trim();
            t == "*" || etag.is_some_and(|e| etag_weak_eq(t, e))
        });
    }
    let ims = date(req, header::IF_MODIFIED_SINCE);
    matches!((ims, last_modified), (Some(ims), Some(lm)) if lm <= ims)
}

/// Fields a 304 carries from the stored response (RFC 9110 §15.4.5).
pub const NOT_MODIFIED_FIELDS: [HeaderName; 6] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
];

/// Updates stored fields from a 304 (RFC 9111 §4.3.4): every field the 304
/// carries replaces the stored one, except those describing the body.
pub fn freshen(stored: &mut HeaderMap, not_modified: &HeaderMap) {
    for name in not_modified.keys() {
        if matches!(
            *name,
            header::CONTENT_LENGTH
                | header::CONTENT_ENCODING
                | header::CONTENT_TYPE
                | header::CONTENT_RANGE
                | header::TRANSFER_ENCODING
        ) {
            continue;
        }
        stored.remove(name);
        for v in not_modified.get_all(name) {
            stored.append(name.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cache::policy::h;

    #[test]
    fn conditionals() {
        let lm = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let e = Some("\"v1\"");
        assert!(not_modified(&h(&[("if-none-match", "W/\"v1\"")]), e, None));
        assert!(not_modified(
            &h(&[("if-none-match", "\"x\", \"v1\"")]),
            e,
            None
        ));
        assert!(not_modified(&h(&[("if-none-match", "*")]), e, None));
        assert!(!not_modified(
            &h(&[("if-none-match", "\"v2\"")]),
            e,
            Some(lm)
        ));
        // If-None-Match wins over If-Modified-Since.
        let both = h(&[
            ("if-none-match", "\"v2\""),
            ("if-modified-since", &httpdate::fmt_http_date(lm)),
        ]);
        assert!(!not_modified(&both, e, Some(lm)));
        assert!(not_modified(
            &h(&[("if-modified-since", &httpdate::fmt_http_date(lm))]),
            None,
            Some(lm)
        ));
        let earlier = httpdate::fmt_http_date(lm - Duration::from_secs(1));
        assert!(!not_modified(
            &h(&[("if-modified-since", &earlier)]),
            None,
            Some(lm)
        ));
        assert!(!not_modified(
            &h(&[("if-modified-since", "garbage")]),
            None,
            Some(lm)
        ));
    }

    #[test]
    fn freshen_keeps_body_fields() {
        let mut stored = h(&[
            ("content-type", "application/json"),
            ("etag", "\"a\""),
            ("cache-control", "max-age=1"),
        ]);
        freshen(
            &mut stored,
            &h(&[
                ("cache-control", "max-age=60"),
                ("content-type", "text/plain"),
            ]),
        );
        assert_eq!(stored.get("cache-control").unwrap(), "max-age=60");
        assert_eq!(stored.get("content-type").unwrap(), "application/json");
        assert_eq!(stored.get("etag").unwrap(), "\"a\"");
    }
}
