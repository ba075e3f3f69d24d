//! The host interfaces every world imports: `log` (rate-limited, tagged with
//! the plugin), `clock`, `state` (shared per plugin) and `metrics` (named and
//! namespaced per plugin, one series per upstream the call was for).

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use super::bindings::{clock, log, metrics, state, types};
use super::custom_metrics::{MetricError, Update};
use super::host::HostState;
use super::state::StateError;

/// Longest log line a guest may write, bytes.
const MAX_LOG_LINE: usize = 1024;

impl types::Host for HostState {}

impl log::Host for HostState {
    fn enabled(&mut self, level: log::Level) -> wasmtime::Result<bool> {
        Ok(enabled(level))
    }

    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        if !enabled(level) {
            return Ok(());
        }
        let plugin = &self.plugin;
        let Some(dropped) = plugin.log.admit() else {
            plugin.metrics.log_dropped();
            return Ok(());
        };
        if dropped > 0 {
            tracing::warn!(plugin = %plugin.name, dropped, "plugin log lines dropped by the rate limit");
        }
        let mut msg = message.as_str();
        if msg.len() > MAX_LOG_LINE {
            let mut end = MAX_LOG_LINE;
            while !msg.is_char_boundary(end) {
                end -= 1;
            }
            msg = &msg[..end];
        }
        let name = plugin.name.as_str();
        match level {
            log::Level::Trace => {
                tracing::trace!(target: "edgeward::plugin", plugin = name, "{msg}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "edgeward::plugin", plugin = name, "{msg}")
            }
            log::Level::Info => tracing::info!(target: "edgeward::plugin", plugin = name, "{msg}"),
            log::Level::Warn => tracing::warn!(target: "edgeward::plugin", plugin = name, "{msg}"),
            log::Level::Error => {
                tracing::error!(target: "edgeward::plugin", plugin = name, "{msg}")
            }
        }
        Ok(())
    }
}

fn enabled(level: log::Level) -> bool {
    match level {
        log::Level::Trace => tracing::enabled!(target: "edgeward::plugin", tracing::Level::TRACE),
        log::Level::Debug => tracing::enabled!(target: "edgeward::plugin", tracing::Level::DEBUG),
        log::Level::Info => tracing::enabled!(target: "edgeward::plugin", tracing::Level::INFO),
        log::Level::Warn => tracing::enabled!(target: "edgeward::plugin", tracing::Level::WARN),
        log::Level::Error => tracing::enabled!(target: "edgeward::plugin", tracing::Level::ERROR),
    }
}

/// The zero of `monotonic-now`, shared by every instance in the process.
fn process_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl clock::Host for HostState {
    fn monotonic_now(&mut self) -> wasmtime::Result<u64> {
        Ok(process_start().elapsed().as_nanos() as u64)
    }
    fn wall_now(&mut self) -> wasmtime::Result<u64> {
        Ok(SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64))
    }
}

impl state::Host for HostState {
    fn counter_get(&mut self, key: String) -> wasmtime::Result<i64> {
        Ok(self.plugin.state.counter_get(&key))
    }
    fn counter_add(&mut self, key: String, delta: i64) -> wasmtime::Result<i64> {
        Ok(self.plugin.state.counter_add(&key, delta))
    }
    fn counter_set(&mut self, key: String, value: i64) -> wasmtime::Result<()> {
        self.plugin.state.counter_set(&key, value);
        Ok(())
    }
    fn counter_compare_and_swap(
        &mut self,
        key: String,
        expected: i64,
        new: i64,
    ) -> wasmtime::Result<bool> {
        Ok(self.plugin.state.counter_cas(&key, expected, new))
    }
    fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.plugin.state.kv_get(&key))
    }
    fn kv_set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<Result<(), state::StateError>> {
        let ttl = ttl_ms.map(Duration::from_millis);
        Ok(self
            .plugin
            .state
            .kv_set(&key, value, ttl)
            .map_err(|e| match e {
                StateError::TooLarge => state::StateError::TooLarge,
                StateError::Full => state::StateError::Full,
            }))
    }
    fn kv_delete(&mut self, key: String) -> wasmtime::Result<bool> {
        Ok(self.plugin.state.kv_delete(&key))
    }
}

impl HostState {
    fn metric(
        &mut self,
        name: &str,
        update: Update,
    ) -> wasmtime::Result<Result<(), metrics::MetricError>> {
        let scope = self.scope.clone();
        Ok(self
            .plugin
            .custom
            .record(name, &scope, update)
            .map_err(|e| match e {
                MetricError::InvalidName => metrics::MetricError::InvalidName,
                MetricError::WrongKind => metrics::MetricError::WrongKind,
                MetricError::TooMany => metrics::MetricError::TooMany,
                MetricError::InvalidValue => metrics::MetricError::InvalidValue,
            }))
    }
}

impl metrics::Host for HostState {
    fn counter_add(
        &mut self,
        name: String,
        delta: u64,
    ) -> wasmtime::Result<Result<(), metrics::MetricError>> {
        self.metric(&name, Update::CounterAdd(delta))
    }
    fn gauge_set(
        &mut self,
        name: String,
        value: f64,
    ) -> wasmtime::Result<Result<(), metrics::MetricError>> {
        self.metric(&name, Update::GaugeSet(value))
    }
    fn gauge_add(
        &mut self,
        name: String,
        delta: f64,
    ) -> wasmtime::Result<Result<(), metrics::MetricError>> {
        self.metric(&name, Update::GaugeAdd(delta))
    }
    fn histogram_observe(
        &mut self,
        name: String,
        value: f64,
    ) -> wasmtime::Result<Result<(), metrics::MetricError>> {
        self.metric(&name, Update::Observe(value))
    }
}
