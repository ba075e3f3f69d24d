//! Whether a shared cache may store a response at all (RFC 9111 §3).

use std::time::Duration;

use http::header::{self, HeaderMap};
use http::{Method, StatusCode};

use super::{CacheControl, heuristically_cacheable, vary_names};

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

/// Status codes whose caching semantics this cache implements (for
/// `must-understand`).
fn understood(status: StatusCode) -> bool {
    heuristically_cacheable(status) || matches!(status.as_u16(), 302 | 303 | 307)
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
    // must-understand (RFC 9111 §5.2.2.3): store only responses whose status
    // this cache implements, and then ignore no-store.
    if resp_cc.must_understand && !understood(status) {
        return Err(NotStored::Status);
    }
    if req_cc.no_store || (resp_cc.no_store && !resp_cc.must_understand) {
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
        || (resp_headers.contains_key(header::EXPIRES) && !resp_cc.targeted);
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

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::cache::policy::{cc, freshness_lifetime, h};

    fn store(req: &HeaderMap, resp: &HeaderMap, status: u16) -> Result<(), NotStored> {
        let status = StatusCode::from_u16(status).unwrap();
        let rcc = CacheControl::parse_response(resp);
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
        let mu = h(&[("cache-control", "max-age=60, must-understand, no-store")]);
        assert_eq!(store(&none, &mu, 200), Ok(()));
        assert_eq!(store(&none, &mu, 299), Err(NotStored::Status));
        let gz = h(&[
            ("cache-control", "max-age=60"),
            ("content-encoding", "gzip"),
        ]);
        // Storable: a coding nobody asked for is undone before storing
        // (`cache::decode`), or the body is refused there.
        assert_eq!(store(&none, &gz, 200), Ok(()));
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
}
