//! The one error taxonomy of the request path. Who failed ([`Blame`]) decides
//! the status, the counter, the log level and whether another endpoint may be
//! tried — all of it here, nowhere else.

use http::{Response, StatusCode};

use crate::body::{self, Body, BoxError};

/// Who is at fault for a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The request was malformed, too large, or the client went away.
    Client,
    /// An upstream endpoint refused, failed or was too slow.
    Upstream,
    /// A plugin faulted and its policy is `fail`.
    Plugin,
    /// A state of our own that should not happen.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route matches this request")]
    NoRoute,
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("request body larger than the route's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the client stopped sending its request body: {source}")]
    ClientAborted {
        #[source]
        source: BoxError,
    },
    #[error("the client sent no request body data for {idle:?}")]
    RequestTimeout { idle: std::time::Duration },
    #[error("upstream {upstream}: circuit breaker open ({})", limit.as_str())]
    Overloaded {
        upstream: String,
        limit: crate::upstream::breaker::Limit,
    },
    #[error("the client's request body is malformed: {source}")]
    ClientBody {
        #[source]
        source: BoxError,
    },
    #[error("upstream {upstream}: cannot connect to {endpoint}: {source}")]
    Connect {
        upstream: String,
        endpoint: String,
        #[source]
        source: BoxError,
    },
    #[error("upstream {upstream}: {endpoint} did not answer within {timeout:?}")]
    Timeout {
        upstream: String,
        endpoint: String,
        timeout: std::time::Duration,
    },
    #[error("plugin {plugin} {fault}")]
    Plugin {
        plugin: String,
        fault: crate::plugin::Fault,
    },
    #[error("upstream {upstream}: no endpoint can take the request")]
    Unavailable { upstream: String },
    /// Scale from zero could not hold the request until an endpoint came.
    #[error("scaled service {service}: {}", match .refusal {
        crate::upstream::hold::Refusal::Full => "the hold queue is full",
        crate::upstream::hold::Refusal::Timeout => "no endpoint became healthy within the hold timeout",
    })]
    Held {
        service: String,
        refusal: crate::upstream::hold::Refusal,
        retry_after: std::time::Duration,
    },
    #[error("upstream {upstream}: {endpoint} failed: {source}")]
    Upstream {
        upstream: String,
        endpoint: String,
        #[source]
        source: BoxError,
    },
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl ProxyError {
    pub fn blame(&self) -> Blame {
        match self {
            Self::NoRoute
            | Self::BadRequest(_)
            | Self::TooLarge { .. }
            | Self::ClientAborted { .. }
            | Self::RequestTimeout { .. }
            | Self::ClientBody { .. } => Blame::Client,
            Self::Connect { .. }
            | Self::Overloaded { .. }
            | Self::Timeout { .. }
            | Self::Unavailable { .. }
            | Self::Held { .. }
            | Self::Upstream { .. } => Blame::Upstream,
            Self::Plugin { .. } => Blame::Plugin,
            Self::Internal(_) => Blame::Internal,
        }
    }

    /// Whether the request may go to another endpoint, if its body can be
    /// sent again: only when nothing reached the upstream's application.
    /// Whether another endpoint may be tried; `idempotent` is the request method's
    /// (RFC 9110 §9.2.2).
    pub fn retryable(&self, idempotent: bool) -> bool {
        match self {
            Self::Connect { .. } => true,
            // The upstream closed a kept-alive connection as the request went out
            // (a restart, an idle timeout): no response came, but the request may
            // have been processed, so only an idempotent one goes again
            // (RFC 9112 §9.3.1).
            Self::Upstream { source, .. } if idempotent => {
                let source: &(dyn std::error::Error + 'static) = &**source;
                find::<hyper::Error>(source)
                    .is_some_and(|e| e.is_incomplete_message() || e.is_canceled())
            }
            _ => false,
        }
    }

    /// How a failed try counts against its endpoint's passive health; `None`
    /// when the endpoint is not to blame.
    pub fn endpoint_failure(&self) -> Option<crate::upstream::outlier::Reason> {
        use crate::upstream::outlier::Reason;
        match self {
            Self::Connect { .. } => Some(Reason::ConnectError),
            Self::Timeout { .. } => Some(Reason::Timeout),
            Self::Upstream { .. } => Some(Reason::Reset),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            // An aborted upload rarely sees its answer; if it does, the request was incomplete.
            Self::BadRequest(_) | Self::ClientAborted { .. } | Self::ClientBody { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Connect { .. } | Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable { .. } | Self::Held { .. } => StatusCode::SERVICE_UNAVAILABLE,
            // Too slow or too busy is a capacity problem; a trap is a broken plugin.
            Self::Plugin { fault, .. } => match fault {
                crate::plugin::Fault::Deadline | crate::plugin::Fault::Busy => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::BAD_GATEWAY,
            },
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Short, plain-text and free of internal addresses: the details go to the log.
    pub fn into_response(&self) -> Response<Body> {
        let text: &'static str = match self {
            Self::NoRoute => "no route for this request\n",
            Self::BadRequest(why) => why,
            Self::TooLarge { .. } => "request body too large\n",
            Self::ClientAborted { .. } => "request body incomplete\n",
            Self::ClientBody { .. } => "malformed request body\n",
            Self::RequestTimeout { .. } => "request body timed out\n",
            Self::Overloaded { .. } => "upstream over capacity\n",
            Self::Connect { .. } => "upstream unavailable\n",
            Self::Upstream { .. } => "upstream failed\n",
            Self::Timeout { .. } => "upstream timed out\n",
            Self::Unavailable { .. } => "no upstream endpoint available\n",
            Self::Held { .. } => "service is starting; retry later\n",
            Self::Plugin { .. } => "plugin failed\n",
            Self::Internal(_) => "internal error\n",
        };
        let mut resp = body::local_response(self.status(), "text/plain; charset=utf-8", text);
        // RFC 9110 §10.2.3: when the service should have a replica by then.
        if let Self::Held { retry_after, .. } = self {
            resp.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(retry_after.as_secs().max(1)),
            );
        }
        resp
    }

    /// Classifies a failed upstream exchange. A failure that began in the
    /// client's own request body is the client's, whatever hyper wraps it in.
    pub fn from_exchange(
        e: hyper_util::client::legacy::Error,
        upstream: &str,
        endpoint: &str,
        limit: Option<u64>,
    ) -> Self {
        if let Some(client) = Self::from_request_body(&e, limit) {
            return client;
        }
        if let Some(o) = find::<crate::upstream::breaker::Overflow>(&e) {
            return Self::Overloaded {
                upstream: upstream.to_owned(),
                limit: o.0,
            };
        }
        if e.is_connect() {
            return Self::Connect {
                upstream: upstream.to_owned(),
                endpoint: endpoint.to_owned(),
                source: Box::new(e),
            };
        }
        Self::Upstream {
            upstream: upstream.to_owned(),
            endpoint: endpoint.to_owned(),
            source: Box::new(e),
        }
    }

    /// The client's part in `e`, if the failure began in its request body:
    /// too slow (408), too large, malformed or aborted.
    pub fn from_request_body(
        e: &(dyn std::error::Error + 'static),
        limit: Option<u64>,
    ) -> Option<Self> {
        if let Some(t) = find::<crate::body::BodyTimeout>(e)
            && t.side == crate::body::Side::Request
        {
            return Some(Self::RequestTimeout { idle: t.after });
        }
        find::<super::inbound::ClientBodyError>(e).map(|c| c.classify(limit))
    }

    /// Classifies a failed response body read on the cache's behalf.
    pub fn from_body(e: BoxError, upstream: &str, endpoint: &str) -> Self {
        Self::Upstream {
            upstream: upstream.to_owned(),
            endpoint: endpoint.to_owned(),
            source: e,
        }
    }
}

/// The first error of type `T` in `e`'s source chain.
pub fn find<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blame_decides_status_class() {
        let client = ProxyError::ClientAborted {
            source: "reset".into(),
        };
        assert_eq!(client.blame(), Blame::Client);
        assert!(client.status().is_client_error());
        let internal = ProxyError::Internal("no endpoint was tried");
        assert_eq!(internal.blame(), Blame::Internal);
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!ProxyError::NoRoute.retryable(true));
    }
}
