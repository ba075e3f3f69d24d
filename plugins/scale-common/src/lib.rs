//! Shared by the built-in scaler plugins (an ordinary library, not a
//! component): the metrics a policy can name, and the [`Gate`] that turns a
//! raw recommendation into a decision with sustain windows, cooldowns and a
//! panic mode, its memory in host [`state`] so every instance agrees.
//!
//! Time is read only through the host `clock` (monotonic for sustain windows
//! and cooldowns), so a native test drives a simulated clock with
//! `FakeHost::advance`.

use std::fmt;
use std::time::Duration;

use edgeward_sdk::{Config, MetricKind, ScaleDecision, ScaleSnapshot, clock, state};

/// A measurement a policy can act on, in the unit operators write targets in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    /// Requests per second (the whole service).
    RequestRate,
    /// Requests in flight to the service.
    InFlight,
    /// Requests waiting for a connection or an endpoint.
    QueueDepth,
    /// Percent of responses that were 5xx or failed.
    ErrorRate,
    /// Latency percentiles, milliseconds.
    LatencyP50,
    LatencyP90,
    LatencyP99,
    /// The gateway's CPU, percent of its cores.
    GatewayCpu,
    /// The gateway's resident memory, MiB.
    GatewayMemory,
    /// The service's own CPU and memory from its endpoints' ORCA load
    /// reports, percent (0 without reports).
    ServiceCpu,
    ServiceMemory,
    /// A plugin's metric (host `metrics`), `custom:<plugin>/<name>` or
    /// `custom:<name>`: a counter's rate per second, a gauge's value, a
    /// histogram's mean over the window; 0 when the snapshot lacks it.
    Custom(String),
}

const NAMES: &[(&str, Metric)] = &[
    ("request-rate", Metric::RequestRate),
    ("in-flight", Metric::InFlight),
    ("queue-depth", Metric::QueueDepth),
    ("error-rate", Metric::ErrorRate),
    ("latency-p50", Metric::LatencyP50),
    ("latency-p90", Metric::LatencyP90),
    ("latency-p99", Metric::LatencyP99),
    ("gateway-cpu", Metric::GatewayCpu),
    ("gateway-memory", Metric::GatewayMemory),
    ("service-cpu", Metric::ServiceCpu),
    ("service-memory", Metric::ServiceMemory),
];

impl Metric {
    /// Parses a metric name as written in `config:`.
    pub fn parse(name: &str) -> Result<Self, String> {
        if let Some(custom) = name.strip_prefix("custom:") {
            let bare = custom.rsplit_once('/').map_or(custom, |(_, n)| n);
            edgeward_sdk::metrics::check_name(bare)
                .map_err(|e| format!("config `metric`: `{name}`: {e}"))?;
            return Ok(Self::Custom(custom.to_owned()));
        }
        NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| m.clone())
            .ok_or_else(|| {
                let known: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
                format!(
                    "config `metric`: unknown metric `{name}` (known: {}, or \
                     custom:<plugin>/<name> for a plugin's own metric)",
                    known.join(", ")
                )
            })
    }

    /// The `metric` key of `config` (required).
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let name = config
            .get("metric")
            .ok_or("config `metric` is required, e.g. `metric: request-rate`")?;
        Self::parse(name)
    }

    /// The value in `s`, for the whole service.
    pub fn value(&self, s: &ScaleSnapshot) -> f64 {
        match self {
            Self::RequestRate => s.request_rate,
            Self::InFlight => f64::from(s.in_flight),
            Self::QueueDepth => f64::from(s.queue_depth),
            Self::ErrorRate => s.error_rate * 100.0,
            Self::LatencyP50 => s.latency_p50_ms,
            Self::LatencyP90 => s.latency_p90_ms,
            Self::LatencyP99 => s.latency_p99_ms,
            Self::GatewayCpu => s.gateway_cpu * 100.0,
            Self::GatewayMemory => s.gateway_memory_bytes as f64 / (1024.0 * 1024.0),
            Self::ServiceCpu => s.service_cpu.unwrap_or(0.0) * 100.0,
            Self::ServiceMemory => s.service_memory.unwrap_or(0.0) * 100.0,
            Self::Custom(name) => s.custom(name).map_or(0.0, |m| m.value),
        }
    }

    /// Whether replicas share the load: a target is then per replica and
    /// the total is divided by the replica count. A plugin's counter (orders
    /// per second) or gauge is shared load; a histogram's mean is not.
    pub fn per_replica(&self, s: &ScaleSnapshot) -> bool {
        match self {
            Self::RequestRate | Self::InFlight | Self::QueueDepth => true,
            Self::Custom(name) => s
                .custom(name)
                .is_none_or(|m| m.kind != MetricKind::Histogram),
            _ => false,
        }
    }

    /// The unit, for reasons.
    pub fn unit(&self) -> &'static str {
        match self {
            Self::RequestRate => " rps",
            Self::InFlight | Self::QueueDepth | Self::Custom(_) => "",
            Self::ErrorRate | Self::GatewayCpu | Self::ServiceCpu | Self::ServiceMemory => "%",
            Self::LatencyP50 | Self::LatencyP90 | Self::LatencyP99 => "ms",
            Self::GatewayMemory => "MiB",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Self::Custom(name) = self {
            return write!(f, "custom:{name}");
        }
        let name = NAMES
            .iter()
            .find(|(_, m)| m == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

/// A number with at most one decimal, for reasons.
pub fn num(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A duration as people write it (`90s`, `2m`, `1h`).
pub fn dur(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else if s > 0 || d.subsec_millis() == 0 {
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Sustain windows, cooldowns and panic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// Scale out only after the condition held this long. Default: 0s.
    pub scale_out_after: Duration,
    /// Scale in only after the condition held this long. Default: 5m.
    pub scale_in_after: Duration,
    /// After a scale-out, no further scale-out for this long. Default: 0s.
    pub scale_out_cooldown: Duration,
    /// After any change, no scale-in for this long. Default: 5m.
    pub scale_in_cooldown: Duration,
    /// How long a panic blocks scale-in. Default: 60s.
    pub panic_hold: Duration,
}

/// The config keys [`Gate::from_config`] reads.
pub const GATE_KEYS: &[&str] = &[
    "scale-out-after",
    "scale-in-after",
    "scale-out-cooldown",
    "scale-in-cooldown",
    "panic-hold",
];

impl Default for Gate {
    fn default() -> Self {
        Self {
            scale_out_after: Duration::ZERO,
            scale_in_after: Duration::from_secs(300),
            scale_out_cooldown: Duration::ZERO,
            scale_in_cooldown: Duration::from_secs(300),
            panic_hold: Duration::from_secs(60),
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Gate {
    pub fn from_config(config: &Config) -> Result<Self, String> {
        Self::from_config_over(config, Self::default())
    }

    /// No sustain windows, cooldowns or panic hold: what a schedule wants.
    pub fn immediate() -> Self {
        Self {
            scale_out_after: Duration::ZERO,
            scale_in_after: Duration::ZERO,
            scale_out_cooldown: Duration::ZERO,
            scale_in_cooldown: Duration::ZERO,
            panic_hold: Duration::ZERO,
        }
    }

    /// [`Gate::from_config`] with `d` for the keys not given.
    pub fn from_config_over(config: &Config, d: Self) -> Result<Self, String> {
        Ok(Self {
            scale_out_after: config
                .duration("scale-out-after")?
                .unwrap_or(d.scale_out_after),
            scale_in_after: config
                .duration("scale-in-after")?
                .unwrap_or(d.scale_in_after),
            scale_out_cooldown: config
                .duration("scale-out-cooldown")?
                .unwrap_or(d.scale_out_cooldown),
            scale_in_cooldown: config
                .duration("scale-in-cooldown")?
                .unwrap_or(d.scale_in_cooldown),
            panic_hold: config.duration("panic-hold")?.unwrap_or(d.panic_hold),
        })
    }

    /// Turns `raw` (what the metric asks for now, with `why`) into the
    /// decision now (the host's monotonic clock). `panic` skips the out-sustain window and the
    /// out-cooldown, and blocks scale-in for `panic-hold`. Keys live under
    /// `prefix` (the service name), so one plugin can serve several services.
    pub fn decide(&self, s: &ScaleSnapshot, raw: u32, why: &str, panic: bool) -> ScaleDecision {
        let k = |name: &str| format!("{}:{name}", s.service);
        let now = i64::try_from(clock::monotonic_now() / 1_000_000).unwrap_or(i64::MAX);
        let current = s.current_replicas;
        // Times are stored plus one, so 0 means "never".
        let get = |key: &str| match state::counter_get(&k(key)) {
            0 => None,
            v => Some(v - 1),
        };
        let set = |key: &str, t: i64| state::counter_set(&k(key), t.saturating_add(1));
        let since = |key: &str| {
            get(key).unwrap_or_else(|| {
                set(key, now);
                now
            })
        };
        let last = u32::try_from(state::counter_get(&k("last"))).unwrap_or(0);
        let last_up = get("last-up");
        let last_change = get("last-change");
        let panic_until = get("panic-until");
        let emit = |desired: u32, up: bool| {
            state::counter_set(&k("last"), i64::from(desired));
            set("last-change", now);
            if up {
                set("last-up", now);
            }
        };
        if raw > current {
            state::counter_set(&k("in-since"), 0);
            let held = now - since("out-since");
            if panic {
                set("panic-until", now.saturating_add(ms(self.panic_hold)));
                emit(raw, true);
                return ScaleDecision::new(current, raw, format!("panic: {why}"));
            }
            if held < ms(self.scale_out_after) {
                return ScaleDecision::new(
                    current,
                    current.max(last.min(raw)),
                    format!(
                        "{why}; out after {} (held {})",
                        dur(self.scale_out_after),
                        dur(Duration::from_millis(held as u64))
                    ),
                );
            }
            if let Some(up) = last_up
                && (0..ms(self.scale_out_cooldown)).contains(&(now - up))
                && last >= current
            {
                let left = ms(self.scale_out_cooldown) - (now - up);
                return ScaleDecision::new(
                    current,
                    last,
                    format!(
                        "{why}; scale-out cooldown, {} left",
                        dur(Duration::from_millis(left as u64))
                    ),
                );
            }
            emit(raw, true);
            let held = if self.scale_out_after.is_zero() {
                String::new()
            } else {
                format!(" for {}", dur(Duration::from_millis(held as u64)))
            };
            ScaleDecision::new(current, raw, format!("{why}{held}"))
        } else if raw < current {
            state::counter_set(&k("out-since"), 0);
            let held = now - since("in-since");
            if let Some(until) = panic_until
                && until > now
            {
                return ScaleDecision::new(
                    current,
                    current,
                    format!(
                        "{why}; in panic mode for {} more",
                        dur(Duration::from_millis((until - now) as u64))
                    ),
                );
            }
            if held < ms(self.scale_in_after) {
                return ScaleDecision::new(
                    current,
                    current,
                    format!(
                        "{why}; in after {} (held {})",
                        dur(self.scale_in_after),
                        dur(Duration::from_millis(held as u64))
                    ),
                );
            }
            if let Some(changed) = last_change
                && (0..ms(self.scale_in_cooldown)).contains(&(now - changed))
            {
                let left = ms(self.scale_in_cooldown) - (now - changed);
                return ScaleDecision::new(
                    current,
                    current,
                    format!(
                        "{why}; scale-in cooldown, {} left",
                        dur(Duration::from_millis(left as u64))
                    ),
                );
            }
            emit(raw, false);
            let held = if self.scale_in_after.is_zero() {
                String::new()
            } else {
                format!(" for {}", dur(Duration::from_millis(held as u64)))
            };
            ScaleDecision::new(current, raw, format!("{why}{held}"))
        } else {
            state::counter_set(&k("out-since"), 0);
            state::counter_set(&k("in-since"), 0);
            ScaleDecision::new(current, current, why.to_owned())
        }
    }
}

/// Native test support: moves `host`'s simulated clock to `at_s` seconds after
/// the first call (the gateway's interval between evaluations) and returns
/// a snapshot of `service` with `current` replicas, all healthy.
#[cfg(not(target_arch = "wasm32"))]
pub fn snapshot_at(
    host: &edgeward_sdk::testing::FakeHost,
    service: &str,
    at_s: u64,
    current: u32,
) -> ScaleSnapshot {
    host.advance_to(Duration::from_secs(at_s));
    host.snapshot(service, current)
}
