//! The first stage: requests a conforming server must refuse before anything
//! else looks at them (RFC 9112 §3.2, RFC 9113 §8.3.1).

use http::{Request, Version, header};
use http_body_util::BodyExt;

use super::error::ProxyError;
use crate::body::Body;

/// Applies a route's `max-request-body`: a declared length over it is refused at
/// once; an undeclared (chunked, h2, h3) body fails when it grows past it, which
/// the proxy stage turns into 413 ([`is_over_limit`]).
pub fn limit_body(req: Request<Body>, limit: Option<u64>) -> Result<Request<Body>, ProxyError> {
    let Some(limit) = limit else { return Ok(req) };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ProxyError::TooLarge { limit });
    }
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    Ok(req.map(|b| http_body_util::Limited::new(b, cap).boxed_unsync()))
}

/// Whether an upstream exchange failed because the request body hit its limit.
pub fn is_over_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

pub fn check<B>(req: &Request<B>) -> Result<(), ProxyError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(ProxyError::BadRequest("more than one Host header\n"));
    }
    if let Some(h) = host {
        let valid = h.to_str().is_ok_and(|s| {
            s.is_empty()
                || s.parse::<http::uri::Authority>()
                    .is_ok_and(|a| !s.contains('@') && a.host() != "")
        });
        if !valid {
            return Err(ProxyError::BadRequest("invalid Host header\n"));
        }
    }
    match req.version() {
        Version::HTTP_11 if host.is_none() => Err(ProxyError::BadRequest(
            "HTTP/1.1 requests need a Host header\n",
        )),
        Version::HTTP_2 | Version::HTTP_3 => match (req.uri().authority(), host) {
            (Some(a), Some(h)) if !a.as_str().eq_ignore_ascii_case(h.to_str().unwrap_or("")) => {
                Err(ProxyError::BadRequest(":authority and Host disagree\n"))
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, uri: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::get(uri).version(version);
        for h in hosts {
            b = b.header("host", *h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn http11_needs_exactly_one_valid_host() {
        assert!(check(&req(Version::HTTP_11, "/", &[])).is_err());
        assert!(check(&req(Version::HTTP_11, "/", &["a", "b"])).is_err());
        assert!(check(&req(Version::HTTP_11, "/", &["bad host"])).is_err());
        assert!(check(&req(Version::HTTP_11, "/", &["a.example:8080"])).is_ok());
        // An empty Host is allowed when the target has no authority (RFC 9112 §3.2).
        assert!(check(&req(Version::HTTP_11, "/", &[""])).is_ok());
        assert!(check(&req(Version::HTTP_10, "/", &[])).is_ok());
    }

    #[test]
    fn h2_authority_and_host_must_agree() {
        assert!(check(&req(Version::HTTP_2, "https://a.example/", &["b.example"])).is_err());
        assert!(check(&req(Version::HTTP_2, "https://a.example/", &["A.example"])).is_ok());
        assert!(check(&req(Version::HTTP_2, "https://a.example/", &[])).is_ok());
    }
}
