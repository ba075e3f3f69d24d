//! How long a stored response stays fresh, and how old it already was when it
//! arrived (RFC 9111 §4.2).

use std::time::{Duration, SystemTime};

use http::StatusCode;
use http::header::{self, HeaderMap};

use super::cache_control::delta;
use super::{CacheControl, date};

/// Status codes whose responses may be given heuristic freshness (RFC 9110 §15.1),
/// minus 206: a 206 is stored only as a part of a response too big to keep
/// whole, and is judged as its 200 would be (`cache::partial`).
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// What a stored response needs from the request and response to decide freshness.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    /// When the request was sent upstream.
    pub request_time: SystemTime,
    /// When the response head arrived.
    pub response_time: SystemTime,
}

pub fn last_modified(headers: &HeaderMap) -> Option<SystemTime> {
    date(headers, header::LAST_MODIFIED)
}

/// Freshness lifetime for a shared cache (RFC 9111 §4.2.1): `s-maxage`, then
/// `max-age`, then `Expires − Date`, then a heuristic. The heuristic is the
/// route's `default_ttl` when set, else 10 % of the time since `Last-Modified`
/// (capped at a day); it applies only where §4.2.2 allows one.
pub fn freshness_lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    cc: &CacheControl,
    default_ttl: Option<Duration>,
    response_time: SystemTime,
) -> Duration {
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return Duration::from_secs(s);
    }
    // A targeted field (RFC 9213) replaces Expires as well as Cache-Control.
    if let Some(v) = headers.get(header::EXPIRES).filter(|_| !cc.targeted) {
        let expires = v.to_str().ok().and_then(super::date::parse);
        // An invalid Expires (e.g. "0") means already expired (§5.3).
        let Some(expires) = expires else {
            return Duration::ZERO;
        };
        let date = date(headers, header::DATE).unwrap_or(response_time);
        return expires.duration_since(date).unwrap_or(Duration::ZERO);
    }
    if !(heuristically_cacheable(status) || cc.public) {
        return Duration::ZERO;
    }
    if let Some(ttl) = default_ttl {
        return ttl;
    }
    let date = date(headers, header::DATE).unwrap_or(response_time);
    match last_modified(headers).and_then(|lm| date.duration_since(lm).ok()) {
        Some(since) => (since / 10).min(Duration::from_secs(86_400)),
        None => Duration::ZERO,
    }
}

/// The `Age` field's value in seconds. A list (`Age: 7200, 0`) counts as its
/// first member (RFC 9111 §5.1); a value that is not delta-seconds as 0.
pub fn age_value(headers: &HeaderMap) -> u64 {
    let first = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.split(',').next());
    delta(first)
}

/// Age of the response when it arrived (RFC 9111 §4.2.3 `corrected_initial_age`).
pub fn initial_age(headers: &HeaderMap, times: Times) -> Duration {
    let date = date(headers, header::DATE).unwrap_or(times.response_time);
    let apparent = times
        .response_time
        .duration_since(date)
        .unwrap_or(Duration::ZERO);
    let age_value = Duration::from_secs(age_value(headers));
    let delay = times
        .response_time
        .duration_since(times.request_time)
        .unwrap_or(Duration::ZERO);
    apparent.max(age_value + delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::h;

    fn lifetime(headers: &HeaderMap, ttl: Option<u64>) -> u64 {
        freshness_lifetime(
            StatusCode::OK,
            headers,
            &CacheControl::parse(headers),
            ttl.map(Duration::from_secs),
            SystemTime::now(),
        )
        .as_secs()
    }

    #[test]
    fn freshness_order() {
        assert_eq!(
            lifetime(&h(&[("cache-control", "max-age=10, s-maxage=100")]), None),
            100
        );
        assert_eq!(
            lifetime(&h(&[("cache-control", "max-age=10")]), Some(5)),
            10
        );
        let d = SystemTime::now();
        let e = d + Duration::from_secs(300);
        let ex = h(&[
            ("date", &httpdate::fmt_http_date(d)),
            ("expires", &httpdate::fmt_http_date(e)),
        ]);
        assert_eq!(lifetime(&ex, Some(5)), 300);
        assert_eq!(lifetime(&h(&[("expires", "0")]), Some(5)), 0);
        assert_eq!(lifetime(&HeaderMap::new(), Some(7)), 7);
        assert_eq!(lifetime(&HeaderMap::new(), None), 0);
        let lm = h(&[
            ("date", &httpdate::fmt_http_date(d)),
            (
                "last-modified",
                &httpdate::fmt_http_date(d - Duration::from_secs(1000)),
            ),
        ]);
        assert_eq!(lifetime(&lm, None), 100);
        // Heuristics only for heuristically cacheable statuses.
        assert_eq!(
            freshness_lifetime(
                StatusCode::CREATED,
                &HeaderMap::new(),
                &CacheControl::default(),
                Some(Duration::from_secs(9)),
                d
            ),
            Duration::ZERO
        );
    }

    #[test]
    fn ages() {
        let now = SystemTime::now();
        let t = Times {
            request_time: now - Duration::from_secs(1),
            response_time: now,
        };
        let resp = h(&[("age", "5"), ("date", &httpdate::fmt_http_date(now))]);
        assert_eq!(initial_age(&resp, t).as_secs(), 6);
        let old = h(&[(
            "date",
            &httpdate::fmt_http_date(now - Duration::from_secs(100)),
        )]);
        assert_eq!(initial_age(&old, t).as_secs(), 100);
        let list = h(&[("age", "7200, 0"), ("date", &httpdate::fmt_http_date(now))]);
        assert_eq!(initial_age(&list, t).as_secs(), 7201);
        assert_eq!(age_value(&h(&[("age", " 30 ,5")])), 30);
        assert_eq!(age_value(&h(&[("age", "x")])), 0);
    }
}
