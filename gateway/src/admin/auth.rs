//! The admin API's bearer token (`admin.token`): required on everything but
//! the probes (`/healthz`, `/readyz`) and the status page's HTML (`/`, which
//! holds no data: its script sends the token for `/admin/status`) whenever
//! one is configured.

use http::{Request, Response, StatusCode, header};

use crate::body::{Body, local_response};

/// Paths that answer without a token: probes carry no credentials, and a
/// browser cannot send a bearer token when it opens the page.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/")
}

/// `None` when `req` may proceed, or the 401 to answer.
pub fn check<B>(req: &Request<B>, token: Option<&str>) -> Option<Response<Body>> {
    let token = token?;
    if is_public(req.uri().path()) {
        return None;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        return None;
    }
    let mut resp = local_response(
        StatusCode::UNAUTHORIZED,
        "text/plain; charset=utf-8",
        "this admin endpoint needs `Authorization: Bearer <admin.token>`\n",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"edgeward-admin\""),
    );
    Some(resp)
}

/// Compares without stopping at the first difference, so the time taken says
/// nothing about how much of a guess was right (only whether its length was).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, auth: Option<&str>) -> Request<()> {
        let mut b = Request::get(path);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn token_required_except_on_probes() {
        let t = Some("0123456789abcdef");
        assert!(check(&req("/metrics", None), t).is_some());
        assert!(check(&req("/metrics", Some("Bearer wrong")), t).is_some());
        assert!(check(&req("/metrics", Some("Bearer 0123456789abcdef")), t).is_none());
        assert!(check(&req("/metrics", Some("bearer 0123456789abcdef")), t).is_none());
        assert!(check(&req("/healthz", None), t).is_none());
        assert!(check(&req("/readyz", None), t).is_none());
        assert!(check(&req("/", None), t).is_none());
        assert!(check(&req("/admin/status", None), t).is_some());
        assert!(check(&req("/admin/reload", None), None).is_none());
    }
}
