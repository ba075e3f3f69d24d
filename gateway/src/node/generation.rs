//! One generation: everything the request path reads, built from one
//! validated config and never changed afterwards.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{Config, Listener};
use crate::metrics::{EndpointSample, NodeMetrics, RouteMetrics, UpstreamMetrics};
use crate::plugin::{self, FilterPlugin, LoadError, Plugins};
use crate::upstream::hold::HoldQueue;
use crate::upstream::{self, UpstreamPool};

/// What a route needs at request time besides its config.
pub struct RouteRt {
    /// As handed to plugins, allocated once.
    pub name: Arc<str>,
    /// Filter plugins, in order.
    pub filters: Vec<Arc<FilterPlugin>>,
    pub metrics: RouteMetrics,
}

pub struct Generation {
    /// 1 for the config the node started with, +1 per successful reload.
    pub number: u64,
    pub config: Arc<Config>,
    /// In `config.routes` order.
    pub routes: Vec<RouteRt>,
    /// In `config.upstreams` order.
    pub upstreams: Vec<UpstreamPool>,
    pub upstream_metrics: Vec<Arc<UpstreamMetrics>>,
    /// Per upstream, in `config.upstreams` order: the scale-from-zero hold of
    /// the `min: 0` service that measures it.
    pub holds: Vec<Option<Arc<HoldQueue>>>,
    /// Shared with a generation that only changed discovered endpoints.
    pub plugins: Arc<Plugins>,
}

impl Generation {
    pub(super) fn build(
        number: u64,
        config: Config,
        registry: &upstream::Registry,
        carry: &mut plugin::Carry,
        metrics: &NodeMetrics,
    ) -> Result<Self, LoadError> {
        let plugins = Arc::new(Plugins::load_carrying(&config, carry)?);
        Ok(Self::assemble(
            number, config, plugins, None, registry, metrics,
        ))
    }

    /// The same generation with `config`'s endpoints, which differ from this
    /// one's only where DNS discovery found others: plugins are shared, pools
    /// rebuilt through the registry (so an endpoint that stays keeps its stats).
    /// Holds are shared too: a request held for a scaled-to-zero service must
    /// see the replica DNS brings back, and count against the same queue.
    pub(super) fn with_endpoints(
        &self,
        config: Config,
        registry: &upstream::Registry,
        metrics: &NodeMetrics,
    ) -> Self {
        let holds = Some(self.holds.clone());
        Self::assemble(
            self.number,
            config,
            self.plugins.clone(),
            holds,
            registry,
            metrics,
        )
    }

    /// Whether `other` differs from this generation only in discovered
    /// endpoints (same config otherwise, same plugins, same route indices).
    pub fn same_but_endpoints(&self, other: &Generation) -> bool {
        Arc::ptr_eq(&self.plugins, &other.plugins)
    }

    fn assemble(
        number: u64,
        config: Config,
        plugins: Arc<Plugins>,
        holds: Option<Vec<Option<Arc<HoldQueue>>>>,
        registry: &upstream::Registry,
        metrics: &NodeMetrics,
    ) -> Self {
        let zone = config.node.zone.as_deref();
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                let router = u
                    .balancer
                    .as_deref()
                    .and_then(|b| plugins.router(b))
                    .cloned();
                registry.pool(u, router, zone)
            })
            .collect();
        let upstream_metrics = config
            .upstreams
            .iter()
            .map(|u| metrics.upstream(&u.name))
            .collect();
        let holds = holds.unwrap_or_else(|| Self::holds(&config, metrics));
        let routes = config
            .routes
            .iter()
            .map(|r| RouteRt {
                name: Arc::from(r.name.as_str()),
                filters: r
                    .filters
                    .iter()
                    .filter_map(|f| plugins.filter(f).cloned())
                    .collect(),
                metrics: metrics.route(&r.name),
            })
            .collect();
        Self {
            number,
            config: Arc::new(config),
            routes,
            upstreams,
            upstream_metrics,
            holds,
            plugins,
        }
    }

    /// Per upstream, the hold of the `min: 0` scaled service that measures it.
    fn holds(config: &Config, metrics: &NodeMetrics) -> Vec<Option<Arc<HoldQueue>>> {
        config
            .upstreams
            .iter()
            .map(|u| {
                let s = config
                    .scaling
                    .services
                    .iter()
                    .find(|s| s.upstream == u.name)?;
                let hold = s.hold?;
                Some(Arc::new(HoldQueue::new(
                    &s.name,
                    hold,
                    metrics.scale.hold_handles(&s.name),
                )))
            })
            .collect()
    }

    /// Each endpoint's in-flight count, health and latency, for `/metrics`.
    pub fn endpoint_samples(&self) -> Vec<EndpointSample> {
        let now = crate::upstream::stats::now_ms();
        self.upstreams
            .iter()
            .flat_map(|u| {
                u.endpoints
                    .iter()
                    .zip(&u.stats)
                    .map(move |(e, s)| EndpointSample {
                        upstream: u.name.clone(),
                        endpoint: e.authority.to_string(),
                        in_flight: s.in_flight(),
                        healthy: s.healthy(now),
                        latency_ewma: std::time::Duration::from_micros(u64::from(
                            s.latency_ewma_us(),
                        )),
                        ejected: s.outlier.ejection(now).map(|r| r.as_str()),
                        ejections: s
                            .outlier
                            .ejections()
                            .iter()
                            .map(|(r, n)| (r.as_str(), *n))
                            .collect(),
                        check_failing: s.check_failing(),
                    })
            })
            .collect()
    }

    /// The listener configured at `addr` (as written, so `:0` stays itself).
    pub fn listener(&self, addr: SocketAddr) -> Option<&Listener> {
        self.config.listeners.iter().find(|l| l.addr == addr)
    }
}
