//! Upstream services: their endpoints, the native endpoint choice, and a pooled
//! keep-alive client per service.

mod balance;
mod choose;
pub mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use balance::SmoothSchedule;
pub use choose::Pick;

use crate::body::Body;
use crate::config::{self, Endpoint, UpstreamProtocol};
use crate::plugin::{RouterPlugin, UpstreamInfo};
use stats::{Clock, EndpointStats};

/// One upstream service as the request path sees it.
pub struct UpstreamPool {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    schedule: SmoothSchedule,
    cursor: AtomicUsize,
    client: Client<HttpConnector, Body>,
    /// Per endpoint, in `endpoints` order.
    pub stats: Vec<EndpointStats>,
    clock: Clock,
    /// The `balancer:` plugin; `None` means the native round robin.
    router: Option<Arc<RouterPlugin>>,
    /// What a router may ask about this upstream, built once.
    info: Arc<UpstreamInfo>,
    keys: Vec<u64>,
    zones: Vec<u32>,
}

impl UpstreamPool {
    pub fn new(cfg: &config::Upstream) -> Self {
        Self::with_router(cfg, None, None)
    }

    /// A pool whose endpoint choice goes through `router`.
    pub fn with_router(
        cfg: &config::Upstream,
        router: Option<Arc<RouterPlugin>>,
        local_zone: Option<&str>,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cfg.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(cfg.idle_timeout)
            .pool_max_idle_per_host(cfg.max_idle_per_endpoint)
            // The gateway forwards the client's Host; hyper must not replace it.
            .set_host(false);
        if cfg.protocol == UpstreamProtocol::H2c {
            builder.http2_only(true);
        }
        let weights: Vec<u32> = cfg.endpoints.iter().map(|e| e.weight).collect();
        let (info, zones) = choose::upstream_info(cfg, local_zone);
        Self {
            name: cfg.name.clone(),
            endpoints: cfg.endpoints.clone(),
            schedule: SmoothSchedule::new(&weights),
            cursor: AtomicUsize::new(0),
            client: builder.build(connector),
            stats: cfg
                .endpoints
                .iter()
                .map(|_| EndpointStats::default())
                .collect(),
            clock: Clock::default(),
            router,
            keys: info.addresses.iter().map(|a| stats::fnv1a(a)).collect(),
            info: Arc::new(info),
            zones,
        }
    }

    /// The native choice: smooth weighted round robin (plain round robin when all
    /// weights are equal). `attempt` > 0 walks on to the next endpoint for a retry.
    pub fn pick(&self, attempt: usize) -> usize {
        if attempt == 0 {
            let n = self.cursor.fetch_add(1, Ordering::Relaxed);
            self.schedule.at(n)
        } else {
            let last = self.cursor.load(Ordering::Relaxed).wrapping_sub(1);
            (self.schedule.at(last) + attempt) % self.endpoints.len()
        }
    }

    pub fn client(&self) -> &Client<HttpConnector, Body> {
        &self.client
    }
}
