//! The first stage: requests a conforming server must refuse before anything
//! else looks at them (RFC 9112 §3.2, RFC 9113 §8.3.1).

use http::{Request, Version, header};
use http_body_util::BodyExt;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http_body::Body as _;

use super::error::{ProxyError, find};
use crate::body::{Body, BoxError};

/// An error that came out of the client's request body (a reset, a malformed
/// chunk, the route's size limit), tagged so that a failed upstream exchange
/// can tell it from the upstream's own failures.
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
pub struct ClientBodyError(BoxError);

impl ClientBodyError {
    pub fn classify(&self, limit: Option<u64>) -> ProxyError {
        let inner: &(dyn std::error::Error + 'static) = &*self.0;
        if find::<http_body_util::LengthLimitError>(inner).is_some() {
            return ProxyError::TooLarge {
                limit: limit.unwrap_or_default(),
            };
        }
        let malformed = find::<hyper::Error>(inner).is_some_and(hyper::Error::is_parse)
            // hyper's chunked decoder reports a bad size line or a missing CRLF
            // as InvalidInput; an early end of the stream is UnexpectedEof (an abort).
            || find::<std::io::Error>(inner).is_some_and(|e| {
                matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
                )
            });
        let source: BoxError = self.0.to_string().into();
        if malformed {
            ProxyError::ClientBody { source }
        } else {
            ProxyError::ClientAborted { source }
        }
    }
}

/// Applies a route's `max-request-body` and tags the body's errors as the
/// client's. A declared length over the limit is refused at once; an
/// undeclared (chunked, h2, h3) body fails when it grows past it. An empty
/// body is passed through untouched: it cannot fail.
pub fn client_body(
    req: Request<Body>,
    limit: Option<u64>,
    record: &mut super::log::Record,
) -> Result<Request<Body>, ProxyError> {
    if req.body().is_end_stream() {
        return Ok(req);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(limit) = limit
        && declared.is_some_and(|n| n > limit)
    {
        return Err(ProxyError::TooLarge { limit });
    }
    let counted = Arc::new(AtomicU64::new(0));
    record.bytes_in = Some(counted.clone());
    Ok(req.map(|b| match limit {
        Some(limit) => {
            let cap = usize::try_from(limit).unwrap_or(usize::MAX);
            tag(http_body_util::Limited::new(b, cap), counted)
        }
        None => tag(b, counted),
    }))
}

fn tag<B>(b: B, counted: Arc<AtomicU64>) -> Body
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_frame(move |f| {
        if let Some(d) = f.data_ref() {
            counted.fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        f
    })
    .map_err(|e| Box::new(ClientBodyError(e.into())) as BoxError)
    .boxed_unsync()
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

/// Routes, filters, the cache key and the upstream all see the normalised path
/// ([`crate::matching::normalize_path`]), so `/%61dmin` or `/x/../admin` cannot
/// slip past a route that guards `/admin`; an ambiguous path is refused.
pub fn normalize<B>(req: &mut Request<B>) -> Result<(), ProxyError> {
    match crate::matching::normalize_uri(req.uri()) {
        Ok(Some(uri)) => {
            *req.uri_mut() = uri;
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(crate::matching::PathError::BadPercent) => Err(ProxyError::BadRequest(
            "the path has a '%' not followed by two hex digits\n",
        )),
        Err(crate::matching::PathError::Ambiguous) => Err(ProxyError::BadRequest(
            "the path holds an encoded '/' (%2F), a '\\' or a NUL\n",
        )),
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
