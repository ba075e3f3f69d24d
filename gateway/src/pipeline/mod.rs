//! The request path. Every protocol adapter hands its requests to
//! [`Gateway::handle`]; the stages run in the order DESIGN.md draws them:
//! route → (filters) → (cache) → choose endpoint → upstream → (compress) → log.

mod cached;
pub mod error;
mod filters;
pub mod headers;
mod inbound;
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
    pub cache: crate::cache::Cache,
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
            cache: crate::cache::Cache::new(config.cache),
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
        // Only the access log needs these after the request moves on; skip the copies otherwise.
        let logged = self
            .config
            .access_log
            .then(|| (Instant::now(), req.method().clone(), req.uri().clone()));
        let version = req.version();
        let checked = inbound::check(&req);
        let route = checked.as_ref().ok().and_then(|()| self.route(&req));
        let (resp, endpoint) = match (checked, route) {
            (Err(e), _) => (Err(e), None),
            (Ok(()), Some(r)) => {
                match inbound::limit_body(req, self.config.routes[r].max_request_body) {
                    Ok(req) => self.filtered(r, req, conn).await,
                    Err(e) => (Err(e), None),
                }
            }
            (Ok(()), None) => (Err(ProxyError::NoRoute), None),
        };
        let resp = match resp {
            Ok(resp) => resp,
            Err(e) => {
                self.count_error(&e);
                let route_name = route.map(|r| self.config.routes[r].name.as_str());
                // Client mistakes are counted, not logged loudly: a hostile client
                // must not be able to flood the operator's logs.
                match e {
                    ProxyError::NoRoute
                    | ProxyError::BadRequest(_)
                    | ProxyError::TooLarge { .. } => {
                        tracing::debug!(route = route_name, error = %e, "request refused")
                    }
                    _ => tracing::warn!(route = route_name, error = %e, "request failed"),
                }
                e.into_response()
            }
        };
        self.metrics.record(route, resp.status());
        self.metrics.record_protocol(version);
        if let Some((started, method, uri)) = logged {
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
            ProxyError::BadRequest(_) | ProxyError::TooLarge { .. } => &self.metrics.bad_requests,
            ProxyError::Connect { .. } => &self.metrics.upstream_connect_errors,
            ProxyError::Timeout { .. } => &self.metrics.upstream_timeouts,
            ProxyError::Upstream { .. } => &self.metrics.upstream_errors,
            ProxyError::Plugin { .. } => &self.metrics.plugin_failures,
            ProxyError::Unavailable { .. } => &self.metrics.no_endpoint,
        };
        counter.fetch_add(1, Relaxed);
    }
}
