//! RFC 9111 as pure functions: `Cache-Control` parsing, whether a response may
//! be stored by a shared cache, how long it stays fresh, how old it is, and
//! whether a client's conditional request is satisfied by a stored response.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};

/// Directives from the `Cache-Control` lines of a request or a response.
/// Invalid or out-of-range delta-seconds count as 0 (stale), as RFC 9111 §1.2.2
/// tells a cache to treat them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub no_transform: bool,
    pub only_if_cached: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    /// `max-stale` (request): `Some(None)` accepts any staleness.
    pub max_stale: Option<Option<u64>>,
    pub min_fresh: Option<u64>,
}

/// Delta-seconds beyond 2^31 are capped there (RFC 9111 §1.2.2).
const DELTA_MAX: u64 = 1 << 31;

fn delta(v: Option<&str>) -> u64 {
    v.and_then(|s| {
        let s = s.trim().trim_matches('"');
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().unwrap_or(DELTA_MAX).min(DELTA_MAX))
    })
    .unwrap_or(0)
}

/// Splits a directive list on commas outside quoted strings.
fn directives(line: &str) -> impl Iterator<Item = (String, Option<&str>)> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&line[start..]);
    items.into_iter().filter_map(|item| {
        let item = item.trim();
        if item.is_empty() {
            return None;
        }
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (item, None),
        };
        Some((name.to_ascii_lowercase(), value))
    })
}

impl CacheControl {
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut cc = Self::default();
        for line in headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            for (name, value) in directives(line) {
                // The first occurrence of a repeated directive wins (RFC 9111 §4.2.1).
                match name.as_str() {
                    "max-age" => _ = cc.max_age.get_or_insert(delta(value)),
                    "s-maxage" => _ = cc.s_maxage.get_or_insert(delta(value)),
                    "no-store" => cc.no_store = true,
                    // The qualified form `no-cache="field"` is treated as the
                    // unqualified one, which RFC 9111 §5.2.2.4 allows.
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "must-revalidate" => cc.must_revalidate = true,
                    "proxy-revalidate" => cc.proxy_revalidate = true,
                    "no-transform" => cc.no_transform = true,
                    "only-if-cached" => cc.only_if_cached = true,
                    "stale-while-revalidate" => {
                        _ = cc.stale_while_revalidate.get_or_insert(delta(value))
                    }
                    "stale-if-error" => _ = cc.stale_if_error.get_or_insert(delta(value)),
                    "max-stale" => _ = cc.max_stale.get_or_insert(value.map(|v| delta(Some(v)))),
                    "min-fresh" => _ = cc.min_fresh.get_or_insert(delta(value)),
                    _ => {}
                }
            }
        }
        cc
    }

    /// Request directives, with `Pragma: no-cache` honoured when the request has
    /// no `Cache-Control` (RFC 9111 §5.4).
    pub fn parse_request(headers: &HeaderMap) -> Self {
        let mut cc = Self::parse(headers);
        if !headers.contains_key(header::CACHE_CONTROL)
            && headers
                .get_all(header::PRAGMA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| {
                    v.split(',')
                        .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
                })
        {
            cc.no_cache = true;
        }
        cc
    }

    /// A shared cache must revalidate once stale: no stale answers at all.
    pub fn revalidate_when_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some()
    }
}

/// Why a response is not stored (logged and tested; the client sees `X-Cache: MISS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    Method,
    Status,
    NoStore,
    Private,
    Authorization,
    SetCookie,
    VaryStar,
    /// Neither fresh for any time nor revalidatable: storing it would be useless.
    Useless,
}

/// Status codes whose responses may be given heuristic freshness (RFC 9110 §15.1),
/// minus 206: this cache does not combine partial content.
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

/// RFC 9111 §3: may a shared cache store this response to a `method` request?
/// `default_ttl` is the route's heuristic; it makes status-cacheable responses
/// without explicit freshness storable.
pub fn storable(
    method: &Method,
    req_headers: &HeaderMap,
    req_cc: &CacheControl,
    status: StatusCode,
    resp_headers: &HeaderMap,
    resp_cc: &CacheControl,
    lifetime: Duration,
) -> Result<(), NotStored> {
    if method != Method::GET {
        return Err(NotStored::Method);
    }
    if status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || !(200..600).contains(&status.as_u16())
    {
        return Err(NotStored::Status);
    }
    if req_cc.no_store || resp_cc.no_store {
        return Err(NotStored::NoStore);
    }
    if resp_cc.private {
        return Err(NotStored::Private);
    }
    // RFC 9111 §3.5.
    if req_headers.contains_key(header::AUTHORIZATION)
        && !(resp_cc.public || resp_cc.s_maxage.is_some() || resp_cc.must_revalidate)
    {
        return Err(NotStored::Authorization);
    }
    // RFC 9111 §7.3 lets a cache store these, but then one client's session
    // cookie could reach another: shared caches in the field refuse them.
    if resp_headers.contains_key(header::SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    if vary_names(resp_headers).is_none() {
        return Err(NotStored::VaryStar);
    }
    let explicit = resp_cc.public
        || resp_cc.max_age.is_some()
        || resp_cc.s_maxage.is_some()
        || resp_headers.contains_key(header::EXPIRES);
    if !explicit && !heuristically_cacheable(status) {
        return Err(NotStored::Status);
    }
    let validator =
        resp_headers.contains_key(header::ETAG) || resp_headers.contains_key(header::LAST_MODIFIED);
    let stale_use = resp_cc.stale_if_error.is_some_and(|s| s > 0)
        || resp_cc.stale_while_revalidate.is_some_and(|s| s > 0);
    if lifetime.is_zero() && !validator && !stale_use {
        return Err(NotStored::Useless);
    }
    Ok(())
}

fn date(headers: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
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
    if let Some(v) = headers.get(header::EXPIRES) {
        let expires = v
            .to_str()
            .ok()
            .and_then(|s| httpdate::parse_http_date(s.trim()).ok());
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

/// Age of the response when it arrived (RFC 9111 §4.2.3 `corrected_initial_age`).
pub fn initial_age(headers: &HeaderMap, times: Times) -> Duration {
    let date = date(headers, header::DATE).unwrap_or(times.response_time);
    let apparent = times
        .response_time
        .duration_since(date)
        .unwrap_or(Duration::ZERO);
    let age_value = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .map(|s| Duration::from_secs(delta(Some(s))))
        .unwrap_or(Duration::ZERO);
    let delay = times
        .response_time
        .duration_since(times.request_time)
        .unwrap_or(Duration::ZERO);
    apparent.max(age_value + delay)
}

/// The field names a response varies on, lower-case, sorted, without
/// `Accept-Encoding` (the gateway negotiates codings itself and keeps every
/// encoding of one stored response). `None` for `Vary: *`.
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for n in headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let n = n.trim();
        if n == "*" {
            return None;
        }
        if let Ok(name) = HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes())
            && name != header::ACCEPT_ENCODING
        {
            names.push(name);
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Some(names)
}

/// The secondary key: the request's values of the varied-on fields, with
/// whitespace around list members normalised (RFC 9111 §4.1 allows that).
pub fn secondary_key(names: &[HeaderName], req: &HeaderMap) -> String {
    let mut key = String::new();
    for name in names {
        key.push_str(name.as_str());
        key.push(':');
        let values: Vec<String> = req
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .collect();
        key.push_str(&values.join(","));
        key.push('\n');
    }
    key
}

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
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    fn cc(v: &str) -> CacheControl {
        CacheControl::parse(&h(&[("cache-control", v)]))
    }

    #[test]
    fn parses_directives() {
        let c = cc(
            "public, max-age=60, s-maxage=\"120\", stale-while-revalidate=30, no-cache=\"set-cookie, x\"",
        );
        assert!(c.public && c.no_cache);
        assert_eq!((c.max_age, c.s_maxage), (Some(60), Some(120)));
        assert_eq!(c.stale_while_revalidate, Some(30));
        assert_eq!(cc("max-age=abc").max_age, Some(0));
        assert_eq!(cc("max-age=10, max-age=20").max_age, Some(10));
        assert_eq!(cc("max-age=99999999999999999999").max_age, Some(DELTA_MAX));
        assert_eq!(cc("max-stale").max_stale, Some(None));
        assert_eq!(cc("MAX-AGE=5,PRIVATE").max_age, Some(5));
        assert!(cc("MAX-AGE=5,PRIVATE").private);
        let mut req = h(&[("pragma", "no-cache")]);
        assert!(CacheControl::parse_request(&req).no_cache);
        req.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        assert!(!CacheControl::parse_request(&req).no_cache);
    }

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

    fn store(req: &HeaderMap, resp: &HeaderMap, status: u16) -> Result<(), NotStored> {
        let status = StatusCode::from_u16(status).unwrap();
        let rcc = CacheControl::parse(resp);
        let life = freshness_lifetime(status, resp, &rcc, None, SystemTime::now());
        storable(
            &Method::GET,
            req,
            &CacheControl::parse_request(req),
            status,
            resp,
            &rcc,
            life,
        )
    }

    #[test]
    fn storability() {
        let none = HeaderMap::new();
        let fresh = h(&[("cache-control", "max-age=60")]);
        assert_eq!(store(&none, &fresh, 200), Ok(()));
        assert_eq!(
            store(&none, &h(&[("cache-control", "no-store")]), 200),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            store(&h(&[("cache-control", "no-store")]), &fresh, 200),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            store(&none, &h(&[("cache-control", "private, max-age=60")]), 200),
            Err(NotStored::Private)
        );
        let auth = h(&[("authorization", "Bearer x")]);
        assert_eq!(store(&auth, &fresh, 200), Err(NotStored::Authorization));
        assert_eq!(
            store(&auth, &h(&[("cache-control", "s-maxage=60")]), 200),
            Ok(())
        );
        assert_eq!(
            store(&auth, &h(&[("cache-control", "public, max-age=60")]), 200),
            Ok(())
        );
        let cookie = h(&[("cache-control", "max-age=60"), ("set-cookie", "a=b")]);
        assert_eq!(store(&none, &cookie, 200), Err(NotStored::SetCookie));
        let star = h(&[("cache-control", "max-age=60"), ("vary", "Origin, *")]);
        assert_eq!(store(&none, &star, 200), Err(NotStored::VaryStar));
        assert_eq!(store(&none, &fresh, 206), Err(NotStored::Status));
        assert_eq!(store(&none, &none, 201), Err(NotStored::Status));
        assert_eq!(store(&none, &fresh, 201), Ok(()));
        assert_eq!(store(&none, &none, 200), Err(NotStored::Useless));
        assert_eq!(
            store(
                &none,
                &h(&[("etag", "\"a\""), ("cache-control", "no-cache")]),
                200
            ),
            Ok(())
        );
        assert_eq!(
            storable(
                &Method::POST,
                &none,
                &CacheControl::default(),
                StatusCode::OK,
                &fresh,
                &cc("max-age=60"),
                Duration::from_secs(60)
            ),
            Err(NotStored::Method)
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
    }

    #[test]
    fn vary_keys() {
        let resp = h(&[
            ("vary", "Accept-Language, accept-encoding"),
            ("vary", "Origin"),
        ]);
        let names = vary_names(&resp).unwrap();
        assert_eq!(names, vec![header::ACCEPT_LANGUAGE, header::ORIGIN]);
        let a = secondary_key(&names, &h(&[("accept-language", "en,  fr")]));
        let b = secondary_key(&names, &h(&[("accept-language", "en, fr")]));
        let c = secondary_key(&names, &h(&[("accept-language", "de")]));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

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
