//! The request body as the upstream tries see it, and when a try may be made
//! again. The first frame of a body is awaited before any endpoint is chosen,
//! so a client whose upload never starts holds no upstream connection (one
//! HTTP/2 connection with hundreds of stalled streams opens none), and a body
//! that arrived whole in that frame can be sent again.

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;

use super::error::ProxyError;
use crate::body::{self, Body};
use crate::config::resilience::Retries;

/// The body each try sends.
pub(super) enum Outgoing {
    /// Held whole (or empty): every try sends a copy.
    Replayable(Option<Bytes>),
    /// Streams from the client: sent once.
    Once(Option<Body>),
}

impl Outgoing {
    /// Waits for `body`'s first frame (under its idle timeout, which makes a
    /// stall an error). A body whose first frame is its whole is replayable.
    pub(super) async fn start(mut body: Body, limit: Option<u64>) -> Result<Self, ProxyError> {
        if body.is_end_stream() {
            return Ok(Self::Replayable(None));
        }
        let frame = match body.frame().await {
            None => return Ok(Self::Replayable(None)),
            Some(Err(e)) => {
                return Err(ProxyError::from_request_body(&*e, limit)
                    .unwrap_or(ProxyError::ClientAborted { source: e }));
            }
            Some(Ok(frame)) => frame,
        };
        if body.is_end_stream() {
            match frame.into_data() {
                Ok(data) => return Ok(Self::Replayable(Some(data))),
                Err(trailers) => return Ok(Self::Once(Some(body::prepend(trailers, body)))),
            }
        }
        Ok(Self::Once(Some(body::prepend(frame, body))))
    }

    pub(super) fn replayable(&self) -> bool {
        matches!(self, Self::Replayable(_))
    }

    /// The body of the next try.
    pub(super) fn next(&mut self) -> Body {
        match self {
            Self::Replayable(None) => body::empty(),
            Self::Replayable(Some(b)) => body::full(b.clone()),
            Self::Once(b) => b.take().unwrap_or_else(body::empty),
        }
    }
}

/// Whether a try's outcome is worth another try elsewhere under `policy`.
/// Only a failed connection proves nothing reached the application, so only
/// it retries a method that is not idempotent (RFC 9110 §9.2.2).
pub(super) fn wants_retry(
    policy: &Retries,
    method: &Method,
    outcome: Result<StatusCode, &ProxyError>,
) -> bool {
    let idempotent = method.is_idempotent();
    match outcome {
        Ok(status) => idempotent && policy.on_status.contains(&status.as_u16()),
        Err(ProxyError::Connect { .. }) => policy.on_connect_failure,
        Err(ProxyError::Timeout { .. }) => idempotent && policy.on_timeout,
        Err(ProxyError::Upstream { .. }) => idempotent && policy.on_reset,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect() -> ProxyError {
        ProxyError::Connect {
            upstream: "u".into(),
            endpoint: "e".into(),
            source: "refused".into(),
        }
    }

    #[test]
    fn only_connect_failures_retry_unsafe_methods() {
        let p = Retries::default();
        assert!(wants_retry(&p, &Method::POST, Err(&connect())));
        assert!(!wants_retry(
            &p,
            &Method::POST,
            Ok(StatusCode::SERVICE_UNAVAILABLE)
        ));
        assert!(wants_retry(&p, &Method::PUT, Ok(StatusCode::BAD_GATEWAY)));
        assert!(!wants_retry(
            &p,
            &Method::GET,
            Ok(StatusCode::INTERNAL_SERVER_ERROR)
        ));
        let reset = ProxyError::Upstream {
            upstream: "u".into(),
            endpoint: "e".into(),
            source: "reset".into(),
        };
        assert!(wants_retry(&p, &Method::GET, Err(&reset)));
        assert!(!wants_retry(&p, &Method::PATCH, Err(&reset)));
        let none = Retries {
            on_connect_failure: false,
            ..Retries::default()
        };
        assert!(!wants_retry(&none, &Method::GET, Err(&connect())));
    }

    #[tokio::test]
    async fn a_whole_body_in_one_frame_is_replayable() {
        let mut o = Outgoing::start(body::full("abc"), None).await.unwrap();
        assert!(o.replayable());
        for _ in 0..2 {
            assert_eq!(o.next().collect().await.unwrap().to_bytes(), "abc");
        }
        let mut o = Outgoing::start(body::empty(), None).await.unwrap();
        assert!(o.replayable());
        assert!(o.next().is_end_stream());
    }
}
