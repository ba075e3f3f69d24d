//! Calling a scaler plugin: a service's snapshot goes in as one record, the
//! decision comes back. Called from the scale loop, never on the request path.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use super::host::HostState;
use super::metrics::PluginMetrics;
use super::pool::{Fault, Pool, World};

/// The `scaler` world, reusing the router's generated interfaces so one host
/// implementation serves every world.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "scaler",
        with: {
            "edgeward:plugin/types": crate::plugin::bindings::router::edgeward::plugin::types,
            "edgeward:plugin/log": crate::plugin::bindings::router::edgeward::plugin::log,
            "edgeward:plugin/clock": crate::plugin::bindings::router::edgeward::plugin::clock,
            "edgeward:plugin/state": crate::plugin::bindings::router::edgeward::plugin::state,
            "edgeward:plugin/metrics": crate::plugin::bindings::router::edgeward::plugin::metrics,
        },
    });
}

pub use super::bindings::types::{
    CustomMetric, MetricKind, ScaleDecision, ScaleDirection, ScaleSnapshot,
};
use bindings::{Scaler, ScalerPre};

impl World for Scaler {
    type Pre = ScalerPre<HostState>;

    fn pre(linker: &Linker<HostState>, component: &Component) -> wasmtime::Result<Self::Pre> {
        ScalerPre::new(linker.instantiate_pre(component)?)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }

    fn init(
        &self,
        store: &mut Store<HostState>,
        config: &[(String, String)],
    ) -> wasmtime::Result<Result<(), String>> {
        self.call_init(store, config)
    }
}

/// A loaded scaler plugin.
pub struct ScalerPlugin {
    pool: Pool<Scaler>,
    metrics: Arc<PluginMetrics>,
}

/// Longest reason kept from a plugin, bytes.
const MAX_REASON: usize = 256;

impl ScalerPlugin {
    pub(super) fn new(pool: Pool<Scaler>, metrics: Arc<PluginMetrics>) -> Self {
        Self { pool, metrics }
    }

    pub fn name(&self) -> &str {
        &self.metrics.name
    }

    /// Asks the plugin for a replica count. On `Err` the instance is discarded
    /// and the fault counted (and logged once per burst); the caller keeps
    /// the plugin's last answer.
    /// Metrics the plugin records during the call are `upstream`'s.
    pub fn evaluate(
        &self,
        snapshot: &ScaleSnapshot,
        upstream: &Arc<str>,
    ) -> Result<ScaleDecision, Fault> {
        let r = self.call(snapshot, upstream);
        self.metrics
            .record(&r.as_ref().map(|_| ()).map_err(Clone::clone));
        r
    }

    fn call(&self, snapshot: &ScaleSnapshot, upstream: &Arc<str>) -> Result<ScaleDecision, Fault> {
        let mut lease = self.pool.checkout()?;
        let inst = lease.get();
        inst.store.data_mut().set_scope(upstream);
        let mut d = inst.run(|guest, store| guest.call_evaluate(store, snapshot))?;
        lease.release();
        if d.reason.len() > MAX_REASON {
            let mut end = MAX_REASON;
            while !d.reason.is_char_boundary(end) {
                end -= 1;
            }
            d.reason.truncate(end);
        }
        Ok(d)
    }
}
