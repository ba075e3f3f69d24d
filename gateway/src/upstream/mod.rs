//! Upstream services: their endpoints, the native endpoint choice, and a pooled
//! keep-alive client per service. A [`Registry`] lives for the whole process and
//! hands each generation the clients and endpoint stats it carries across.

mod balance;
pub mod breaker;
mod choose;
mod connector;
pub mod discovery;
mod health;
pub mod hold;
pub mod load_report;
pub mod outlier;
mod passive;
mod registry;
pub mod retry_budget;
pub mod stats;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use hyper_util::client::legacy::Client;

pub use balance::SmoothSchedule;
pub use choose::Pick;
pub use registry::Registry;

use crate::body::Body;
use crate::config::{self, Endpoint};
use crate::plugin::{RouterPlugin, UpstreamInfo};
use stats::EndpointStats;

/// The pooled client of one upstream service.
pub type UpstreamClient = Client<connector::Connector, Body>;

/// What a pool shares with the node's registry (and so with the generations
/// before and after it): the client, its breaker and the retry budget.
struct Shared {
    clients: Arc<[UpstreamClient]>,
    breaker: Arc<breaker::Breaker>,
    budget: Arc<retry_budget::RetryBudget>,
}

/// One upstream service as one generation's request path sees it.
pub struct UpstreamPool {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    schedule: SmoothSchedule,
    cursor: AtomicUsize,
    /// One per worker ([`crate::workers`]).
    clients: Arc<[UpstreamClient]>,
    pub breaker: Arc<breaker::Breaker>,
    pub budget: Arc<retry_budget::RetryBudget>,
    /// Health checks, outlier detection, retries and limits, as configured.
    pub resilience: config::resilience::Resilience,
    /// How long a refused connection keeps an endpoint out.
    cool_down: std::time::Duration,
    /// Per endpoint, in `endpoints` order; shared with the generations before
    /// and after this one for endpoints whose address stays.
    pub stats: Vec<Arc<EndpointStats>>,
    /// The `balancer:` plugin; `None` means the native round robin.
    router: Option<Arc<RouterPlugin>>,
    /// What a router may ask about this upstream, built once.
    info: Arc<UpstreamInfo>,
    keys: Vec<u64>,
    zones: Vec<u32>,
}

impl UpstreamPool {
    /// A pool on its own (tests, benchmarks): nothing carried from elsewhere.
    pub fn new(cfg: &config::Upstream) -> Self {
        Registry::default().pool(cfg, None, None)
    }

    /// A pool on its own whose endpoint choice goes through `router`.
    pub fn with_router(
        cfg: &config::Upstream,
        router: Option<Arc<RouterPlugin>>,
        local_zone: Option<&str>,
    ) -> Self {
        Registry::default().pool(cfg, router, local_zone)
    }

    fn assemble(
        cfg: &config::Upstream,
        shared: Shared,
        stats: Vec<Arc<EndpointStats>>,
        router: Option<Arc<RouterPlugin>>,
        local_zone: Option<&str>,
    ) -> Self {
        let weights: Vec<u32> = cfg.endpoints.iter().map(|e| e.weight).collect();
        let (info, zones) = choose::upstream_info(cfg, local_zone);
        Self {
            name: cfg.name.clone(),
            endpoints: cfg.endpoints.clone(),
            schedule: SmoothSchedule::new(&weights),
            cursor: AtomicUsize::new(0),
            clients: shared.clients,
            breaker: shared.breaker,
            budget: shared.budget,
            resilience: cfg.resilience.clone(),
            cool_down: cfg.unhealthy_cool_down,
            stats,
            router,
            keys: info.addresses.iter().map(|a| stats::fnv1a(a)).collect(),
            info: Arc::new(info),
            zones,
        }
    }

    /// This worker's client.
    pub fn client(&self) -> &UpstreamClient {
        &self.clients[crate::workers::index() % self.clients.len()]
    }
}
