//! What upstreams carry across a reload: an upstream whose connection settings
//! stay keeps its client (and so its idle keep-alive connections); an endpoint
//! whose address stays keeps its stats (in-flight count, latency, health).
//! Touched only while a generation is built, never on the request path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::breaker::Breaker;
use super::connector::Connector;
use super::health::Checks;
use super::retry_budget::RetryBudget;
use super::stats::EndpointStats;
use super::{UpstreamClient, UpstreamPool};
use crate::config::{self, UpstreamProtocol};
use crate::plugin::RouterPlugin;

/// The settings a client is built from; a change means a new client.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClientKey {
    protocol: UpstreamProtocol,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle_per_endpoint: usize,
}

impl ClientKey {
    fn of(cfg: &config::Upstream) -> Self {
        Self {
            protocol: cfg.protocol,
            connect_timeout: cfg.connect_timeout,
            idle_timeout: cfg.idle_timeout,
            max_idle_per_endpoint: cfg.max_idle_per_endpoint,
        }
    }

    /// One client (so one pool of idle connections) per worker: a connection
    /// is only ever used by the thread that opened it.
    fn build(&self, breaker: &Arc<Breaker>) -> Arc<[UpstreamClient]> {
        (0..crate::workers::count())
            .map(|_| self.build_one(breaker))
            .collect()
    }

    fn build_one(&self, breaker: &Arc<Breaker>) -> UpstreamClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(self.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.idle_timeout)
            .pool_max_idle_per_host(self.max_idle_per_endpoint)
            // The gateway forwards the client's Host; hyper must not replace it.
            .set_host(false);
        if self.protocol == UpstreamProtocol::H2c {
            builder.http2_only(true);
        }
        builder.build(Connector::new(connector, breaker.clone()))
    }
}

struct Carried {
    key: ClientKey,
    clients: Arc<[UpstreamClient]>,
    /// By endpoint address (`host:port`).
    endpoints: HashMap<String, Arc<EndpointStats>>,
    /// Counts the client's connections, so it lives as long as the client.
    breaker: Arc<Breaker>,
    budget: Arc<RetryBudget>,
    checks: Checks,
}

/// Upstream clients and endpoint stats by upstream name.
#[derive(Default)]
pub struct Registry {
    upstreams: Mutex<HashMap<String, Carried>>,
}

impl Registry {
    /// The pool for `cfg` in a new generation, reusing what the registry holds.
    pub fn pool(
        &self,
        cfg: &config::Upstream,
        router: Option<Arc<RouterPlugin>>,
        local_zone: Option<&str>,
    ) -> UpstreamPool {
        let key = ClientKey::of(cfg);
        let mut all = self.upstreams.lock().unwrap_or_else(|p| p.into_inner());
        let carried = all.entry(cfg.name.clone()).or_insert_with(|| {
            let breaker = Arc::new(Breaker::new(cfg.resilience.breaker));
            Carried {
                clients: key.build(&breaker),
                key: key.clone(),
                endpoints: HashMap::new(),
                breaker,
                budget: Arc::default(),
                checks: Checks::default(),
            }
        });
        carried.breaker.set_limits(cfg.resilience.breaker);
        if carried.key != key {
            carried.clients = key.build(&carried.breaker);
            carried.key = key;
        }
        let named: Vec<(String, Arc<EndpointStats>)> = cfg
            .endpoints
            .iter()
            .map(|e| {
                let addr = e.authority.to_string();
                let stats = carried.endpoints.entry(addr.clone()).or_default().clone();
                (addr, stats)
            })
            .collect();
        carried.checks.sync(
            &cfg.name,
            cfg.resilience.health_check.as_ref(),
            cfg.protocol,
            &named,
        );
        let stats = named.into_iter().map(|(_, s)| s).collect();
        let shared = super::Shared {
            clients: carried.clients.clone(),
            breaker: carried.breaker.clone(),
            budget: carried.budget.clone(),
        };
        UpstreamPool::assemble(cfg, shared, stats, router, local_zone)
    }

    /// Forgets upstreams and endpoints `config` no longer has, once it serves:
    /// their connections close when the last generation using them ends.
    pub fn retain(&self, config: &config::Config) {
        let mut all = self.upstreams.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|name, carried| {
            let Some(u) = config.upstreams.iter().find(|u| &u.name == name) else {
                return false;
            };
            carried
                .endpoints
                .retain(|addr, _| u.endpoints.iter().any(|e| e.authority.as_str() == addr));
            true
        });
    }
}
