//! The request path. Every protocol adapter hands its requests to
//! [`Gateway::handle`]; the stages run in the order DESIGN.md draws them:
//! route → (filters) → (cache) → choose endpoint → upstream → (compress) → log.

pub mod error;
mod filters;
pub mod headers;
mod proxy;
pub mod route;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};

use crate::body::Body;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::plugin::{FilterPlugin, Plugins};
use crate::upstream::UpstreamPool;
use error::ProxyError;

/// What the listener knows about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub client: SocketAddr,
    /// `https` when the connection is TLS or QUIC.
    pub scheme: &'static str,
    pub listener: Arc<str>,
}

/// Everything the request path needs, built once from a validated [`Config`].
pub struct Gateway {
    pub config: Arc<Config>,
    upstreams: Vec<UpstreamPool>,
    pub metrics: Metrics,
    /// Loaded Wasm plugins (routers, filters).
    pub plugins: Arc<Plugins>,
    /// Route names as handed to plugins, allocated once.
    route_names: Vec<Arc<str>>,
    /// Each route's filter plugins, in order.
    route_filters: Vec<Vec<Arc<FilterPlugin>>>,
}

impl Gateway {
    /// A gateway whose upstreams all use the native round robin.
    pub fn new(config: Arc<Config>) -> Self {
        Self::with_plugins(config, Plugins::default())
    }

    /// A gateway whose upstreams choose endpoints through their `balancer:` plugin.
    pub fn with_plugins(config: Arc<Config>, plugins: Plugins) -> Self {
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                let router = u
                    .balancer
                    .as_deref()
                    .and_then(|b| plugins.router(b))
                    .cloned();
                UpstreamPool::with_router(u, router, config.node.zone.as_deref())
            })
            .collect();
        let route_names = config
            .routes
            .iter()
            .map(|r| Arc::from(r.name.as_str()))
            .collect();
        let route_filters = config
            .routes
            .iter()
            .map(|r| {
                r.filters
                    .iter()
                    .filter_map(|f| plugins.filter(f).cloned())
                    .collect()
            })
            .collect();
        let metrics = Metrics::new(
            &config.node.name,
            &config.node.region,
            config.routes.iter().map(|r| r.name.clone()),
        );
        Self {
            config,
            upstreams,
            metrics,
            plugins: Arc::new(plugins),
            route_names,
            route_filters,
        }
    }

    /// Serves one request; never fails: errors become responses here.
    pub async fn handle(&self, req: Request<Body>, conn: &ConnInfo) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let uri = req.uri().clone();
        let version = req.version();
        let route = self.route(&req);
        let (resp, endpoint) = match route {
            Some(r) => self.filtered(r, req, conn).await,
            None => (Err(ProxyError::NoRoute), None),
        };
        let resp = match resp {
            Ok(resp) => resp,
            Err(e) => {
                self.count_error(&e);
                if !matches!(e, ProxyError::NoRoute) {
                    tracing::warn!(route = route.map(|r| self.config.routes[r].name.as_str()), error = %e, "request failed");
                }
                e.into_response()
            }
        };
        self.metrics.record(route, resp.status());
        if self.config.access_log {
            tracing::info!(
                target: "edgeward::access",
                client = %conn.client,
                listener = %conn.listener,
                proto = ?version,
                method = %method,
                uri = %uri,
                status = resp.status().as_u16(),
                route = route.map(|r| self.config.routes[r].name.as_str()),
                endpoint = endpoint.as_deref(),
                micros = started.elapsed().as_micros() as u64,
            );
        }
        resp
    }

    /// First matching route, in configuration order.
    fn route<B>(&self, req: &Request<B>) -> Option<usize> {
        let host = route::request_host(req).unwrap_or("");
        let path = req.uri().path();
        self.config
            .routes
            .iter()
            .position(|r| r.matcher.matches(req.method(), host, path, req.headers()))
    }

    fn count_error(&self, e: &ProxyError) {
        use std::sync::atomic::Ordering::Relaxed;
        let counter = match e {
            ProxyError::NoRoute => &self.metrics.no_route,
            ProxyError::BadRequest(_) => &self.metrics.bad_requests,
            ProxyError::Connect { .. } => &self.metrics.upstream_connect_errors,
            ProxyError::Timeout { .. } => &self.metrics.upstream_timeouts,
            ProxyError::Upstream { .. } => &self.metrics.upstream_errors,
            ProxyError::Plugin { .. } => &self.metrics.plugin_failures,
            ProxyError::Unavailable { .. } => &self.metrics.no_endpoint,
        };
        counter.fetch_add(1, Relaxed);
    }
}
