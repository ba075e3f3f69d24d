//! Per-plugin counters: calls, faults by kind, and what the fault policy did.
//! A fault is logged once per burst; the counters see every one.

use std::fmt::Write;
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
                "plugin {}; instance discarded, on-error policy applied",
                fault
            );
        }
    }

    /// Counts what the `on-error` policy did with a faulted call.
    pub fn policy(&self, p: OnError) {
        match p {
            OnError::Fallback => &self.fallbacks,
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

pub fn render(all: &[std::sync::Arc<PluginMetrics>]) -> String {
    let mut out = String::new();
    if all.is_empty() {
        return out;
    }
    out.push_str("# HELP edgeward_plugin_calls_total Calls into a plugin.\n# TYPE edgeward_plugin_calls_total counter\n");
    for m in all {
        let _ = writeln!(
            out,
            "edgeward_plugin_calls_total{{plugin=\"{}\"}} {}",
            m.name,
            m.calls.load(Relaxed)
        );
    }
    out.push_str("# HELP edgeward_plugin_faults_total Plugin calls that faulted (instance discarded), by kind.\n# TYPE edgeward_plugin_faults_total counter\n");
    for m in all {
        for (k, n) in KINDS.iter().zip(&m.faults) {
            let _ = writeln!(
                out,
                "edgeward_plugin_faults_total{{plugin=\"{}\",kind=\"{k}\"}} {}",
                m.name,
                n.load(Relaxed)
            );
        }
    }
    out.push_str("# HELP edgeward_plugin_policy_total What on-error did after a fault.\n# TYPE edgeward_plugin_policy_total counter\n");
    for m in all {
        for (p, n) in [("fallback", &m.fallbacks), ("fail", &m.failed)] {
            let _ = writeln!(
                out,
                "edgeward_plugin_policy_total{{plugin=\"{}\",policy=\"{p}\"}} {}",
                m.name,
                n.load(Relaxed)
            );
        }
    }
    out.push_str("# HELP edgeward_plugin_log_dropped_total Guest log lines dropped by the rate limit.\n# TYPE edgeward_plugin_log_dropped_total counter\n");
    for m in all {
        let _ = writeln!(
            out,
            "edgeward_plugin_log_dropped_total{{plugin=\"{}\"}} {}",
            m.name,
            m.log_dropped.load(Relaxed)
        );
    }
    out.push_str("# HELP edgeward_plugin_instances Live instances of a plugin, idle or serving a call.\n# TYPE edgeward_plugin_instances gauge\n");
    for m in all {
        let _ = writeln!(
            out,
            "edgeward_plugin_instances{{plugin=\"{}\"}} {}",
            m.name,
            m.instances.load(Relaxed)
        );
    }
    out.push_str("# HELP edgeward_plugin_instance_failures_total Instances that could not be created to refill a pool (init failed, trapped or overran).\n# TYPE edgeward_plugin_instance_failures_total counter\n");
    for m in all {
        let _ = writeln!(
            out,
            "edgeward_plugin_instance_failures_total{{plugin=\"{}\"}} {}",
            m.name,
            m.instance_failures.load(Relaxed)
        );
    }
    out
}
