//! Per-plugin counters: calls, faults by kind, and what the fault policy did.
//! A fault is logged once per burst; the counters see every one.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::FAULT_LOG_WINDOW;
use super::limit::BurstLog;
use super::pool::Fault;
use crate::config::OnError;

const KINDS: [&str; 6] = ["deadline", "memory", "trap", "busy", "invalid", "init"];

pub struct PluginMetrics {
    pub name: String,
    calls: AtomicU64,
    faults: [AtomicU64; 6],
    fallbacks: AtomicU64,
    failed: AtomicU64,
    log_dropped: AtomicU64,
    instances: AtomicU64,
    instance_failures: AtomicU64,
    burst: BurstLog,
}

impl PluginMetrics {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            calls: AtomicU64::new(0),
            faults: Default::default(),
            fallbacks: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            log_dropped: AtomicU64::new(0),
            instances: AtomicU64::new(0),
            instance_failures: AtomicU64::new(0),
            burst: BurstLog::new(FAULT_LOG_WINDOW),
        }
    }

    pub fn record(&self, outcome: &Result<(), Fault>) {
        self.calls.fetch_add(1, Relaxed);
        let Err(fault) = outcome else { return };
        let i = KINDS.iter().position(|k| *k == fault.kind()).unwrap_or(2);
        self.faults[i].fetch_add(1, Relaxed);
        if let Some(suppressed) = self.burst.admit() {
            tracing::warn!(
                plugin = %self.name,
                fault = fault.kind(),
                suppressed_since_last = suppressed,
                "plugin {fault}; {}on-error policy applied",
                // A busy call never had an instance to discard.
                if *fault == Fault::Busy { "" } else { "instance discarded, " }
            );
        }
    }

    /// Counts what the `on-error` policy did with a faulted call.
    pub fn policy(&self, p: OnError) {
        match p {
            OnError::Fallback | OnError::FallbackTagged => &self.fallbacks,
            OnError::Fail => &self.failed,
        }
        .fetch_add(1, Relaxed);
    }

    pub fn log_dropped(&self) {
        self.log_dropped.fetch_add(1, Relaxed);
    }

    pub fn instance_created(&self) {
        self.instances.fetch_add(1, Relaxed);
    }

    pub fn instance_discarded(&self) {
        self.instances.fetch_sub(1, Relaxed);
    }

    /// An instance the refill thread could not create (the pool logs it).
    pub fn instance_failed(&self) {
        self.instance_failures.fetch_add(1, Relaxed);
    }

    #[cfg(test)]
    pub fn instance_counts(&self) -> (u64, u64) {
        (
            self.instances.load(Relaxed),
            self.instance_failures.load(Relaxed),
        )
    }
}

impl PluginMetrics {
    /// The counters now, for `NodeMetrics::set_plugin_source`; read at scrape time.
    pub fn sample(&self) -> crate::metrics::PluginSample {
        crate::metrics::PluginSample {
            plugin: self.name.clone(),
            calls: self.calls.load(Relaxed),
            faults: KINDS
                .iter()
                .zip(&self.faults)
                .map(|(k, n)| (*k, n.load(Relaxed)))
                .collect(),
            fallbacks: self.fallbacks.load(Relaxed),
            failed: self.failed.load(Relaxed),
            log_dropped: self.log_dropped.load(Relaxed),
            instances: self.instances.load(Relaxed),
            instance_failures: self.instance_failures.load(Relaxed),
        }
    }
}

impl super::Plugins {
    /// Every loaded plugin's counters, for `NodeMetrics::set_plugin_source`
    /// (e.g. `move || plugins.metrics_samples()`).
    pub fn metrics_samples(&self) -> Vec<crate::metrics::PluginSample> {
        self.metrics.iter().map(|m| m.sample()).collect()
    }
}
