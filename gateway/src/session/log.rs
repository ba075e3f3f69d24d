//! Phase 10, log: the one place a failed request becomes a status, a counter
//! and a log line, and where every request is measured — at the end of its
//! response body, not at its head, so durations and in-flight gauges cover
//! streaming responses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, Uri, Version};

use super::error::{Blame, ProxyError};
use super::{Answer, ConnInfo, Session};
use crate::body::{self, Body};
use crate::metrics::{InFlight, RouteMetrics};
use crate::node::{Generation, Node};
use crate::plugin::limit::LogLimiter;

/// Failure lines per second the request path may write, and the burst: a
/// broken upstream or a hostile client must not be able to flood the log.
const FAILURE_LOG_RATE: (u32, u32) = (10, 50);

/// What the log phase knows about one request.
pub struct Record {
    node: Arc<Node>,
    started: Instant,
    version: Version,
    /// Only the access log needs these after the request moves on.
    access: Option<Box<Access>>,
    route: Option<(Arc<str>, RouteMetrics, InFlight)>,
    /// Request body bytes received, counted as the body streams upstream.
    pub(super) bytes_in: Option<Arc<AtomicU64>>,
}

impl Record {
    pub fn start(
        node: &Arc<Node>,
        generation: &Generation,
        conn: &ConnInfo,
        req: &Request<Body>,
    ) -> Self {
        node.metrics.requests_by_protocol(req.version());
        Self {
            node: node.clone(),
            started: Instant::now(),
            version: req.version(),
            access: generation.config.access_log.as_ref().map(|log| {
                let h = |n: http::header::HeaderName| req.headers().get(n).cloned();
                Box::new(Access {
                    log: log.clone(),
                    method: req.method().clone(),
                    uri: req.uri().clone(),
                    conn: conn.clone(),
                    host: crate::matching::request_host(req).map(str::to_owned),
                    user_agent: h(http::header::USER_AGENT),
                    referer: h(http::header::REFERER),
                    request_id: h(super::request_id::X_REQUEST_ID.clone()),
                    cache: None,
                    endpoint: None,
                    upstream: None,
                    sni: req
                        .extensions()
                        .get::<super::access::Sni>()
                        .map(|s| s.0.clone()),
                })
            }),
            route: None,
            bytes_in: None,
        }
    }

    /// The request matched route `r`: it counts as in flight on it from now
    /// until its response body ends.
    pub fn routed(&mut self, generation: &Generation, r: usize) {
        let rt = &generation.routes[r];
        self.route = Some((rt.name.clone(), rt.metrics.clone(), rt.metrics.start()));
    }

    /// What the session learnt that the log line names.
    pub fn ended(&mut self, s: &Session) {
        if let Some(a) = &mut self.access {
            // Only the access line names it: no string per request without one.
            a.endpoint = s.endpoint_name();
            let us = s.learnt.upstream_us.load(Ordering::Relaxed);
            a.upstream = (us > 0).then(|| Duration::from_micros(us));
        }
    }

    /// Turns the answer into the response the client gets, and measures it
    /// once its body has been sent.
    pub fn finish(mut self, answer: Answer) -> Response<Body> {
        let resp = match answer {
            Ok(resp) => resp,
            Err(e) => {
                self.report(&e);
                e.into_response()
            }
        };
        let status = resp.status();
        if let Some(a) = &mut self.access {
            a.cache = resp.headers().get("x-cache").cloned();
        }
        let (parts, body) = resp.into_parts();
        let body = body::on_end(body, move |bytes_out, _complete| {
            self.measured(status, bytes_out);
        });
        Response::from_parts(parts, body)
    }

    fn measured(self, status: http::StatusCode, bytes_out: u64) {
        let elapsed = self.started.elapsed();
        let bytes_in = self
            .bytes_in
            .as_ref()
            .map_or(0, |b| b.load(Ordering::Relaxed));
        if let Some((_, metrics, _in_flight)) = &self.route {
            metrics.finish(status, elapsed, bytes_in, bytes_out);
        }
        if let Some(a) = &self.access {
            access_line(&self, a, status.as_u16(), elapsed, bytes_in, bytes_out);
        }
    }

    /// Counts and logs a failed request by who failed.
    fn report(&self, e: &ProxyError) {
        let m = &self.node.metrics;
        let route = self.route.as_ref().map(|(n, ..)| &**n);
        let counter = match e {
            ProxyError::NoRoute => Some(&m.no_route),
            ProxyError::BadRequest(_)
            | ProxyError::TooLarge { .. }
            | ProxyError::ClientBody { .. } => Some(&m.bad_requests),
            ProxyError::ClientAborted { .. } | ProxyError::RequestTimeout { .. } => {
                Some(&m.client_aborted)
            }
            ProxyError::Upstream { .. } => Some(&m.upstream_errors),
            ProxyError::Unavailable { .. } | ProxyError::Held { .. } => Some(&m.no_endpoint),
            ProxyError::Plugin { .. } => Some(&m.plugin_failures),
            ProxyError::Internal(_) => Some(&m.internal_errors),
            // Per upstream, counted where the attempt failed.
            ProxyError::Connect { .. }
            | ProxyError::Timeout { .. }
            | ProxyError::Overloaded { .. } => None,
        };
        if let Some(c) = counter {
            c.inc();
        }
        match e.blame() {
            // Client mistakes are counted, not logged loudly: a hostile client
            // must not be able to flood the operator's logs.
            Blame::Client => tracing::debug!(route, error = %e, "request refused"),
            // The plugin's fault has its own line, once per burst with the
            // cause (plugin/metrics.rs); a line per failed request on top
            // would be one per request while a plugin fails them all.
            Blame::Plugin => tracing::debug!(route, error = %e, "request failed"),
            Blame::Upstream => {
                if let Some(suppressed) = limiter().admit() {
                    tracing::warn!(route, error = %e, suppressed, "request failed");
                }
            }
            Blame::Internal => {
                if let Some(suppressed) = limiter().admit() {
                    tracing::error!(route, error = %e, suppressed, "request failed: internal error");
                }
            }
        }
    }
}

fn limiter() -> &'static LogLimiter {
    static L: std::sync::OnceLock<LogLimiter> = std::sync::OnceLock::new();
    L.get_or_init(|| LogLimiter::new(FAILURE_LOG_RATE.0, FAILURE_LOG_RATE.1))
}

/// What the access log line needs from the request head.
struct Access {
    log: crate::config::access_log::AccessLog,
    method: Method,
    uri: Uri,
    conn: ConnInfo,
    host: Option<String>,
    user_agent: Option<http::HeaderValue>,
    referer: Option<http::HeaderValue>,
    request_id: Option<http::HeaderValue>,
    cache: Option<http::HeaderValue>,
    endpoint: Option<String>,
    /// Until the upstream's response head (proxied requests only).
    upstream: Option<Duration>,
    sni: Option<Arc<str>>,
}

fn access_line(
    r: &Record,
    a: &Access,
    status: u16,
    elapsed: Duration,
    bytes_in: u64,
    bytes_out: u64,
) {
    fn text(v: &Option<http::HeaderValue>) -> Option<&str> {
        v.as_ref().and_then(|v| v.to_str().ok())
    }
    let uri = a.uri.to_string();
    super::access::write(
        &a.log,
        &super::access::Entry {
            client: a.conn.client,
            listener: &a.conn.listener,
            protocol: match r.version {
                Version::HTTP_09 => "HTTP/0.9",
                Version::HTTP_10 => "HTTP/1.0",
                Version::HTTP_2 => "HTTP/2",
                Version::HTTP_3 => "HTTP/3",
                _ => "HTTP/1.1",
            },
            method: a.method.as_str(),
            uri: &uri,
            host: a.host.as_deref(),
            user_agent: text(&a.user_agent),
            referer: text(&a.referer),
            status,
            route: r.route.as_ref().map(|(n, ..)| &**n),
            endpoint: a.endpoint.as_deref(),
            cache: text(&a.cache),
            request_id: text(&a.request_id),
            bytes_in,
            bytes_out,
            duration: elapsed,
            upstream: a.upstream,
            sni: a.sni.as_deref(),
        },
    );
}
