//! The first stage: requests a conforming server must refuse before anything
//! else looks at them (RFC 9112 §3.2, RFC 9113 §8.3.1).

use http::{Request, Version, header};

use super::error::ProxyError;

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
