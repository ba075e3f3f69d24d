//! The wasmtime host: plugins are WASI p2 components (see `wit/`), compiled
//! once per load (cached on disk), pre-linked, and run from warm pools of
//! instances with a deadline and a memory cap per call. A faulting plugin costs
//! its instance and the request's plugin decision, never the gateway.

mod bindings;
pub use crate::builtins as builtin;
mod custom_metrics;
mod engine;
mod fault;
mod filter;
mod host;
mod host_api;
pub mod limit;
mod metrics;
mod pool;
mod resources;
mod router;
mod scaler;
mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker};

use crate::config::{Config, OnError, PluginSource, PluginSpec};
pub use custom_metrics::CustomMetrics;
pub use filter::{FilterAction, FilterPlugin};
pub use host::UpstreamInfo;
use host::{HostState, PluginShared};
pub use metrics::PluginMetrics;
pub use pool::Fault;
use pool::{Pool, PoolLimits, World};
pub use router::{CallContext, Candidate, Decision, HeaderEdit};
// For `crate::fuzz` only: the decision check and the records it reads.
pub(crate) use bindings::types as wit_types;
pub(crate) use resources::find_cookie;
pub(crate) use router::convert as check_decision;
pub use scaler::{
    CustomMetric, MetricKind, ScaleDecision, ScaleDirection, ScaleSnapshot, ScalerPlugin,
};

/// Guest log lines per second per plugin, and the burst allowed.
const LOG_RATE: (u32, u32) = (20, 50);
/// A plugin that faults again within this window is counted, not logged.
const FAULT_LOG_WINDOW: Duration = Duration::from_secs(10);

/// A plugin that could not be loaded: which one, from where, and why.
#[derive(Debug, thiserror::Error)]
#[error("{defined_at}: plugins.{plugin} ({source_desc}): {reason}")]
pub struct LoadError {
    pub plugin: String,
    pub source_desc: String,
    pub defined_at: String,
    pub reason: String,
}

/// A loaded router plugin.
pub struct RouterPlugin {
    pool: Pool<bindings::router::Router>,
    pub on_error: OnError,
    /// What `on-error: fallback-tagged` falls back to.
    pub fallback_tags: Vec<String>,
    metrics: Arc<PluginMetrics>,
}

impl RouterPlugin {
    /// Asks the plugin where `parts` goes. `parts` is lent to the call and is
    /// back in place when this returns, whatever the outcome. On `Err` the
    /// instance is already discarded and the fault counted and logged; the
    /// caller applies [`RouterPlugin::on_error`].
    pub fn choose(
        &self,
        parts: &mut http::request::Parts,
        ctx: &CallContext,
        upstream: &Arc<UpstreamInfo>,
        candidates: &[Candidate],
    ) -> Result<Decision, Fault> {
        let r = router::choose(&self.pool, parts, ctx, upstream, candidates);
        self.metrics
            .record(&r.as_ref().map(|_| ()).map_err(Clone::clone));
        r
    }

    pub fn name(&self) -> &str {
        &self.metrics.name
    }

    /// Counts that `on-error` was applied after a fault.
    pub fn count_policy(&self) {
        self.metrics.policy(self.on_error);
    }
}

/// What plugins carry across a reload, by plugin name: `state` (a round-robin
/// cursor, an affinity table) and the counters `/metrics` shows, which must
/// stay monotonic. Instances, pools and the engine are rebuilt.
#[derive(Default)]
pub struct Carry {
    states: HashMap<String, Arc<state::SharedState>>,
    metrics: HashMap<String, Arc<PluginMetrics>>,
    custom: HashMap<String, Arc<CustomMetrics>>,
}

impl Carry {
    fn custom(&mut self, name: &str) -> Arc<CustomMetrics> {
        self.custom
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(CustomMetrics::new(name)))
            .clone()
    }

    fn state(&mut self, name: &str) -> Arc<state::SharedState> {
        self.states.entry(name.to_owned()).or_default().clone()
    }

    fn metrics(&mut self, name: &str) -> Arc<PluginMetrics> {
        self.metrics
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(PluginMetrics::new(name)))
            .clone()
    }

    /// Forgets plugins `loaded` no longer has (their state ends with them).
    pub fn retain(&mut self, loaded: &Plugins) {
        let keep = |n: &String| {
            loaded.routers.contains_key(n)
                || loaded.filters.contains_key(n)
                || loaded.scalers.contains_key(n)
        };
        self.states.retain(|n, _| keep(n));
        self.metrics.retain(|n, _| keep(n));
        self.custom.retain(|n, _| keep(n));
    }
}

/// Every loaded plugin, by name.
#[derive(Default)]
pub struct Plugins {
    routers: HashMap<String, Arc<RouterPlugin>>,
    filters: HashMap<String, Arc<FilterPlugin>>,
    scalers: HashMap<String, Arc<ScalerPlugin>>,
    metrics: Vec<Arc<PluginMetrics>>,
    custom: Vec<Arc<CustomMetrics>>,
}

impl Plugins {
    pub fn router(&self, name: &str) -> Option<&Arc<RouterPlugin>> {
        self.routers.get(name)
    }

    pub fn filter(&self, name: &str) -> Option<&Arc<FilterPlugin>> {
        self.filters.get(name)
    }

    pub fn scaler(&self, name: &str) -> Option<&Arc<ScalerPlugin>> {
        self.scalers.get(name)
    }

    /// Loads every plugin the config uses: reads, compiles (or hits the disk
    /// cache), checks each against the world its use requires, and creates
    /// each pool's warm instances, running their `init` (see `pool.rs` for how
    /// pools are kept warm afterwards, off the request path). Any failure
    /// names the plugin and the reason.
    pub fn load(config: &Config) -> Result<Self, LoadError> {
        Self::load_carrying(config, &mut Carry::default())
    }

    /// [`Plugins::load`], reusing the state and counters of plugins `carry`
    /// already knows by name.
    pub fn load_carrying(config: &Config, carry: &mut Carry) -> Result<Self, LoadError> {
        let roles = roles(config);
        let specs: Vec<&PluginSpec> = config
            .plugins
            .iter()
            .filter(|s| roles.contains_key(s.name.as_str()))
            .collect();
        let Some(first) = config.plugins.first() else {
            return Ok(Self::default());
        };
        let fail = |spec: &PluginSpec, reason: String| LoadError {
            plugin: spec.name.clone(),
            source_desc: spec.source.to_string(),
            defined_at: spec.defined_at.clone(),
            reason,
        };
        let probe = engine::probe_engine().map_err(|r| fail(first, r))?;
        // A plugin nothing uses is not instantiated, but a broken file is
        // still reported now rather than when someone starts using it.
        for spec in config
            .plugins
            .iter()
            .filter(|s| !roles.contains_key(s.name.as_str()))
        {
            let b = read(spec).map_err(|r| fail(spec, r))?;
            engine::compile(&probe, &b)
                .map_err(|r| fail(spec, format!("not a valid Wasm component: {r}")))?;
            tracing::info!(plugin = %spec.name, "plugin is defined but no upstream or route uses it");
        }
        if specs.is_empty() {
            return Ok(Self::default());
        }
        let mut demands = Vec::with_capacity(specs.len());
        let mut bytes = Vec::with_capacity(specs.len());
        for spec in &specs {
            let b = read(spec).map_err(|r| fail(spec, r))?;
            let component = engine::compile(&probe, &b)
                .map_err(|r| fail(spec, format!("not a valid Wasm component: {r}")))?;
            let resources = component.resources_required().ok_or_else(|| {
                fail(
                    spec,
                    "the component imports core modules; its size cannot be known".into(),
                )
            })?;
            demands.push(engine::Demand {
                resources,
                instances: spec.instances,
                memory: spec.memory,
            });
            bytes.push(b);
        }
        drop(probe);
        let engine = engine::pooled_engine(&demands).map_err(|r| fail(specs[0], r))?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| {
                bindings::router::Router::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
                    &mut linker,
                    |s| s,
                )
            })
            .map_err(|e| fail(specs[0], format!("cannot link the host interfaces: {e:#}")))?;

        let route_upstreams: Arc<HashMap<Arc<str>, Arc<str>>> = Arc::new(
            config
                .routes
                .iter()
                .filter_map(|r| {
                    let u = config.upstreams.get(r.upstream)?;
                    Some((Arc::from(r.name.as_str()), Arc::from(u.name.as_str())))
                })
                .collect(),
        );
        let mut out = Self::default();
        for (spec, b) in specs.iter().zip(&bytes) {
            let component = engine::compile(&engine, b)
                .map_err(|r| fail(spec, format!("not a valid Wasm component: {r}")))?;
            let metrics = carry.metrics(&spec.name);
            let custom = carry.custom(&spec.name);
            let shared = Arc::new(PluginShared {
                name: spec.name.clone(),
                state: carry.state(&spec.name),
                log: limit::LogLimiter::new(LOG_RATE.0, LOG_RATE.1),
                metrics: metrics.clone(),
                custom: custom.clone(),
                route_upstreams: route_upstreams.clone(),
            });
            let limits = PoolLimits::new(
                spec.deadline,
                spec.init_deadline,
                spec.memory,
                spec.instances,
            );
            let role = roles[spec.name.as_str()];
            if role.router {
                let pool = new_pool::<bindings::router::Router>(
                    &engine,
                    &linker,
                    &component,
                    spec,
                    shared.clone(),
                    limits.clone(),
                    "router",
                )
                .map_err(|r| fail(spec, r))?;
                out.routers.insert(
                    spec.name.clone(),
                    Arc::new(RouterPlugin {
                        pool,
                        on_error: spec.on_error,
                        fallback_tags: spec.fallback_tags.clone(),
                        metrics: metrics.clone(),
                    }),
                );
            }
            if role.filter {
                let pool = new_pool::<bindings::filter::Filter>(
                    &engine,
                    &linker,
                    &component,
                    spec,
                    shared.clone(),
                    limits.clone(),
                    "filter",
                )
                .map_err(|r| fail(spec, r))?;
                out.filters.insert(
                    spec.name.clone(),
                    Arc::new(FilterPlugin::new(pool, spec.on_error, metrics.clone())),
                );
            }
            if role.scaler {
                let pool = new_pool::<scaler::bindings::Scaler>(
                    &engine, &linker, &component, spec, shared, limits, "scaler",
                )
                .map_err(|r| fail(spec, r))?;
                out.scalers.insert(
                    spec.name.clone(),
                    Arc::new(ScalerPlugin::new(pool, metrics.clone())),
                );
            }
            out.metrics.push(metrics);
            out.custom.push(custom);
        }
        Ok(out)
    }
}

fn new_pool<W: World>(
    engine: &wasmtime::Engine,
    linker: &Linker<HostState>,
    component: &Component,
    spec: &PluginSpec,
    shared: Arc<PluginShared>,
    limits: PoolLimits,
    world: &str,
) -> Result<Pool<W>, String> {
    let pre = W::pre(linker, component).map_err(|e| {
        format!("not a component of the `{world}` world (edgeward:plugin@0.1.0): {e:#}")
    })?;
    Pool::start(engine.clone(), pre, shared, spec.config.clone(), limits)
}

fn read(spec: &PluginSpec) -> Result<Vec<u8>, String> {
    match &spec.source {
        PluginSource::Builtin(name) => builtin::bytes(name)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| format!("no built-in plugin \"{name}\" in this build")),
        PluginSource::Path(p) => {
            std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Role {
    router: bool,
    filter: bool,
    scaler: bool,
}

/// What each plugin is used as; a plugin nothing uses is not loaded.
fn roles(config: &Config) -> HashMap<&str, Role> {
    let mut roles: HashMap<&str, Role> = HashMap::new();
    for u in &config.upstreams {
        if let Some(b) = &u.balancer {
            roles.entry(b.as_str()).or_default().router = true;
        }
    }
    for r in &config.routes {
        for f in &r.filters {
            roles.entry(f.as_str()).or_default().filter = true;
        }
    }
    for s in &config.scaling.services {
        for p in &s.policies {
            roles.entry(p.as_str()).or_default().scaler = true;
        }
    }
    roles
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::Path;

    use super::*;
    use crate::upstream::{Pick, UpstreamPool};

    fn config(plugin: &str) -> Config {
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:0\"}}]\n\
             plugins:\n  p:\n{plugin}\n    deadline: 1s\n\
             upstreams:\n  svc:\n    balancer: p\n    endpoints: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\"]\n\
             routes:\n  - upstream: svc\n"
        );
        crate::config::load_str(&yaml, Path::new("t.yaml")).expect("valid config")
    }

    fn picks(pool: &UpstreamPool, n: usize, tried: &[usize]) -> Vec<usize> {
        let ctx = CallContext {
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            scheme: "http",
            route: Arc::from("r"),
        };
        let mut parts = http::Request::new(()).into_parts().0;
        (0..n)
            .map(|_| match pool.choose(&mut parts, &ctx, tried) {
                Pick::Endpoint { idx, .. } => idx,
                other => panic!("expected an endpoint, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn builtin_round_robin_rotates_and_skips_tried_endpoints() {
        let cfg = config("    builtin: round-robin");
        let plugins = Plugins::load(&cfg).expect("the built-in loads");
        let router = plugins.router("p").cloned();
        assert!(router.is_some());
        let pool = UpstreamPool::with_router(&cfg.upstreams[0], router, None);
        let got = picks(&pool, 6, &[]);
        assert_eq!(got[0..3], got[3..6], "{got:?}");
        let mut first: Vec<usize> = got[0..3].to_vec();
        first.sort_unstable();
        assert_eq!(first, [0, 1, 2]);
        assert!(picks(&pool, 6, &[1]).iter().all(|&i| i != 1));
        let calls: Vec<_> = plugins
            .metrics_samples()
            .into_iter()
            .map(|s| (s.plugin, s.calls))
            .collect();
        assert_eq!(calls, [("p".to_owned(), 12)]);
    }

    #[test]
    fn unknown_builtin_is_refused_by_validation() {
        let yaml =
            "listeners: [{address: \"127.0.0.1:0\"}]\nplugins:\n  p:\n    builtin: round-robbin\n";
        let err = crate::config::load_str(yaml, Path::new("t.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.yaml:4:14"), "{err}");
        assert!(err.contains("did you mean \"round-robin\""), "{err}");
    }

    #[test]
    fn native_balancer_needs_no_plugin() {
        let yaml = "listeners: [{address: \"127.0.0.1:0\"}]\nupstreams:\n  svc:\n    balancer: native\n    endpoints: [\"10.0.0.1:80\"]\nroutes:\n  - upstream: svc\n";
        let cfg = crate::config::load_str(yaml, Path::new("t.yaml")).expect("valid");
        assert_eq!(cfg.upstreams[0].balancer, None);
        assert!(cfg.plugins.is_empty());
    }

    #[test]
    fn demo_uses_the_builtin_routers() {
        let cfg = crate::demo::config().expect("demo config");
        let b: Vec<_> = cfg
            .upstreams
            .iter()
            .map(|u| (u.name.as_str(), u.balancer.as_deref()))
            .collect();
        assert!(b.contains(&("product", Some("least-connections"))), "{b:?}");
        assert!(b.contains(&("order", Some("round-robin"))), "{b:?}");
        assert!(b.contains(&("auth", Some("ip-hash"))), "{b:?}");
        Plugins::load(&cfg).expect("the demo's plugins load");
    }
}
