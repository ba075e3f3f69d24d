//! The one error taxonomy of the request path, mapped to a status code in one
//! place ([`ProxyError::into_response`]). Who failed decides the status and the blame.

use http::{Response, StatusCode};

use crate::body::{self, Body};

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route matches this request")]
    NoRoute,
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("upstream {upstream}: cannot connect to {endpoint}: {source}")]
    Connect {
        upstream: String,
        endpoint: String,
        #[source]
        source: crate::body::BoxError,
    },
    #[error("upstream {upstream}: {endpoint} did not answer within {timeout:?}")]
    Timeout {
        upstream: String,
        endpoint: String,
        timeout: std::time::Duration,
    },
    #[error("upstream {upstream}: {endpoint} failed: {source}")]
    Upstream {
        upstream: String,
        endpoint: String,
        #[source]
        source: crate::body::BoxError,
    },
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Connect { .. } | Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Short, plain-text and free of internal addresses: the details go to the log.
    pub fn into_response(&self) -> Response<Body> {
        let text: &'static str = match self {
            Self::NoRoute => "no route for this request\n",
            Self::BadRequest(why) => why,
            Self::Connect { .. } => "upstream unavailable\n",
            Self::Upstream { .. } => "upstream failed\n",
            Self::Timeout { .. } => "upstream timed out\n",
        };
        body::local_response(self.status(), "text/plain; charset=utf-8", text)
    }
}
