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
    #[error("request body larger than the route's limit of {limit} bytes")]
    TooLarge { limit: u64 },
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
    #[error("plugin {plugin} {fault}")]
    Plugin {
        plugin: String,
        fault: crate::plugin::Fault,
    },
    #[error("upstream {upstream}: no endpoint can take the request")]
    Unavailable { upstream: String },
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
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Connect { .. } | Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            // Too slow or too busy is a capacity problem; a trap is a broken plugin.
            Self::Plugin { fault, .. } => match fault {
                crate::plugin::Fault::Deadline | crate::plugin::Fault::Busy => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// Short, plain-text and free of internal addresses: the details go to the log.
    pub fn into_response(&self) -> Response<Body> {
        let text: &'static str = match self {
            Self::NoRoute => "no route for this request\n",
            Self::BadRequest(why) => why,
            Self::TooLarge { .. } => "request body too large\n",
            Self::Connect { .. } => "upstream unavailable\n",
            Self::Upstream { .. } => "upstream failed\n",
            Self::Timeout { .. } => "upstream timed out\n",
            Self::Unavailable { .. } => "no upstream endpoint available\n",
            Self::Plugin { .. } => "plugin failed\n",
        };
        body::local_response(self.status(), "text/plain; charset=utf-8", text)
    }
}
