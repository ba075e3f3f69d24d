//! What upstreams carry across a reload: an upstream whose connection settings
//! stay keeps its client (and so its idle keep-alive connections); an endpoint
//! whose address stays keeps its stats (in-flight count, latency, health).
//! Touched only while a generation is built, never on the request path.

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connect::CountingConnector;
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

    fn build(&self, connecting: &Arc<AtomicU32>) -> UpstreamClient {
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
        builder.build(CountingConnector::new(connector, connecting.clone()))
    }
}

struct Carried {
    key: ClientKey,
    client: UpstreamClient,
    connecting: Arc<AtomicU32>,
    /// By endpoint address (`host:port`).
    endpoints: HashMap<String, Arc<EndpointStats>>,
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
            let connecting = Arc::default();
            Carried {
                client: key.build(&connecting),
                connecting,
                key: key.clone(),
                endpoints: HashMap::new(),
            }
        });
        if carried.key != key {
            carried.client = key.build(&carried.connecting);
            carried.key = key;
        }
        let stats = cfg
            .endpoints
            .iter()
            .map(|e| {
                carried
                    .endpoints
                    .entry(e.authority.to_string())
                    .or_default()
                    .clone()
            })
            .collect();
        let client = (carried.client.clone(), carried.connecting.clone());
        UpstreamPool::assemble(cfg, client, stats, router, local_zone)
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
