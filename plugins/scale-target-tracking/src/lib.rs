//! `scale-target-tracking`: keep a metric at a target, as the Kubernetes HPA
//! and AWS target tracking do: `desired = ceil(current × value / target)`,
//! holding inside a tolerance band.
//!
//! ```yaml
//! plugins:
//!   rps-target:
//!     builtin: scale-target-tracking
//!     config:
//!       metric: request-rate        # see below
//!       target: "50"                # per replica for request-rate, in-flight, queue-depth
//!       tolerance: "0.1"            # |value/target - 1| within this holds (default 0.1)
//!       scale-out-after: 30s        # the condition must hold this long (default 0s)
//!       scale-in-after: 5m          # (default 5m)
//!       scale-out-cooldown: 0s      # after a scale-out (default 0s)
//!       scale-in-cooldown: 5m       # after any change (default 5m)
//!       panic-threshold: "2"        # value ≥ 2 × target scales out at once (default off)
//!       panic-hold: 60s             # no scale-in this long after a panic (default 60s)
//! ```
//!
//! Metrics: `request-rate` (rps), `in-flight`, `queue-depth` (per replica),
//! `error-rate` (%), `latency-p50` / `latency-p90` / `latency-p99` (ms),
//! `gateway-cpu` (%), `gateway-memory` (MiB), `service-cpu` / `service-memory`
//! (% from ORCA load reports), and `custom:<plugin>/<name>` (or
//! `custom:<name>` when one plugin has it): a plugin's own metric from the
//! host `metrics` interface — a counter's rate per second or a gauge, per
//! replica; a histogram's mean, proportional like latency. Sustain windows
//! and cooldowns live in host state per service and are timed on the host
//! `clock`, so every instance agrees and tests drive a simulated clock.

use edgeward_sdk::{Config, ScaleDecision, ScaleSnapshot, Scaler};
use scale_common::{GATE_KEYS, Gate, Metric, num};

/// The target-tracking scaler.
pub struct TargetTracking {
    metric: Metric,
    target: f64,
    tolerance: f64,
    panic_threshold: Option<f64>,
    gate: Gate,
}

impl Scaler for TargetTracking {
    fn init(config: &Config) -> Result<Self, String> {
        let mut known = vec!["metric", "target", "tolerance", "panic-threshold"];
        known.extend_from_slice(GATE_KEYS);
        config.allow_only(&known)?;
        let metric = Metric::from_config(config)?;
        let target: f64 = config
            .parse("target")?
            .ok_or("config `target` is required, e.g. `target: \"50\"`")?;
        if !(target.is_finite() && target > 0.0) {
            return Err(format!(
                "config `target`: must be a positive number, not {target}"
            ));
        }
        let tolerance: f64 = config.parse_or("tolerance", 0.1)?;
        if !(0.0..1.0).contains(&tolerance) {
            return Err(format!(
                "config `tolerance`: must be in 0 ≤ t < 1, not {tolerance}"
            ));
        }
        let panic_threshold: Option<f64> = config.parse("panic-threshold")?;
        if let Some(p) = panic_threshold
            && !(p.is_finite() && p > 1.0)
        {
            return Err(format!(
                "config `panic-threshold`: must be above 1 (e.g. 2), not {p}"
            ));
        }
        Ok(Self {
            metric,
            target,
            tolerance,
            panic_threshold,
            gate: Gate::from_config(config)?,
        })
    }

    fn evaluate(&self, s: &ScaleSnapshot) -> ScaleDecision {
        let (raw, ratio, why) = self.recommend(s);
        let panic = self.panic_threshold.is_some_and(|p| ratio >= p) && raw > s.current_replicas;
        self.gate.decide(s, raw, &why, panic)
    }
}

impl TargetTracking {
    /// The count the metric asks for now, the value/target ratio, and why.
    fn recommend(&self, s: &ScaleSnapshot) -> (u32, f64, String) {
        let current = s.current_replicas;
        let total = self.metric.value(s);
        let unit = self.metric.unit();
        let (value, per) = if self.metric.per_replica(s) && current > 0 {
            (total / f64::from(current), " per replica")
        } else {
            (total, "")
        };
        let ratio = value / self.target;
        let base = f64::from(current.max(1));
        let exact = if self.metric.per_replica(s) {
            total / self.target
        } else if total > 0.0 {
            base * ratio
        } else {
            0.0
        };
        // A hair under an integer is that integer (0.1 + 0.2 style noise).
        let mut raw = (exact - 1e-9).ceil().max(0.0).min(f64::from(u32::MAX)) as u32;
        let mut why = format!(
            "{} {}{unit}{per} vs target {}{unit}",
            self.metric,
            num(value),
            num(self.target)
        );
        if current > 0 && raw != current && (ratio - 1.0).abs() <= self.tolerance {
            why.push_str(&format!(" (within ±{}%)", num(self.tolerance * 100.0)));
            raw = current;
        }
        (raw, ratio, why)
    }
}

edgeward_sdk::export!(scaler: TargetTracking);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::ScaleDirection;
    use edgeward_sdk::testing::FakeHost;
    use scale_common::snapshot_at;

    /// A snapshot at `at_s` on the host's simulated clock.
    fn rps(host: &FakeHost, at_s: u64, current: u32, rate: f64) -> ScaleSnapshot {
        let mut s = snapshot_at(host, "api", at_s, current);
        s.request_rate = rate;
        s
    }

    fn run(host: &FakeHost, tt: &TargetTracking, steps: &[(u64, u32, f64)]) -> Vec<u32> {
        steps
            .iter()
            .map(|&(t, c, r)| host.evaluate(tt, &rps(host, t, c, r)).desired_replicas)
            .collect()
    }

    #[test]
    fn desired_is_ceil_of_current_times_value_over_target() {
        let host = FakeHost::new();
        let tt: TargetTracking = host
            .scaler(&[
                ("metric", "request-rate"),
                ("target", "50"),
                ("scale-in-after", "0s"),
                ("scale-in-cooldown", "0s"),
            ])
            .unwrap();
        let d = host.evaluate(&tt, &rps(&host, 0, 2, 250.0));
        assert_eq!((d.desired_replicas, d.direction), (5, ScaleDirection::Up));
        assert_eq!(
            d.reason,
            "request-rate 125 rps per replica vs target 50 rps"
        );
        // 4 replicas at 52.5 per replica is within 10 %.
        let d = host.evaluate(&tt, &rps(&host, 15, 4, 210.0));
        assert_eq!(d.desired_replicas, 4, "{}", d.reason);
        assert!(d.reason.ends_with("(within ±10%)"), "{}", d.reason);
        assert_eq!(
            host.evaluate(&tt, &rps(&host, 30, 4, 40.0))
                .desired_replicas,
            1
        );
        // Non-shared metric: proportional to the current count.
        let lat: TargetTracking = host
            .scaler(&[("metric", "latency-p90"), ("target", "250")])
            .unwrap();
        let mut s = host.snapshot("web", 3);
        s.latency_p90_ms = 500.0;
        let d = host.evaluate(&lat, &s);
        assert_eq!(d.desired_replicas, 6);
        assert_eq!(d.reason, "latency-p90 500ms vs target 250ms");
    }

    #[test]
    fn sustain_windows_delay_both_directions() {
        let host = FakeHost::new();
        let tt: TargetTracking = host
            .scaler(&[
                ("metric", "request-rate"),
                ("target", "100"),
                ("scale-out-after", "2m"),
                ("scale-in-after", "10m"),
                ("scale-in-cooldown", "0s"),
            ])
            .unwrap();
        // Over target from t=0: out only at t=120.
        assert_eq!(run(&host, &tt, &[(0, 2, 400.0)]), [2]);
        let d = host.evaluate(&tt, &rps(&host, 60, 2, 400.0));
        assert_eq!(d.desired_replicas, 2);
        assert!(d.reason.contains("out after 2m (held 1m)"), "{}", d.reason);
        let got = run(&host, &tt, &[(119, 2, 400.0), (120, 2, 400.0)]);
        assert_eq!(got, [2, 4]);
        // A dip resets the window.
        let got = run(
            &host,
            &tt,
            &[
                (200, 4, 100.0),
                (300, 4, 100.0),
                (500, 4, 500.0),
                (800, 4, 100.0),
            ],
        );
        assert_eq!(got, [4, 4, 4, 4]);
        // Under target from t=800: in at t=1400, not before.
        let got = run(&host, &tt, &[(1399, 4, 100.0), (1400, 4, 100.0)]);
        assert_eq!(got, [4, 1]);
    }

    #[test]
    fn cooldowns_hold_the_last_change() {
        let host = FakeHost::new();
        let tt: TargetTracking = host
            .scaler(&[
                ("metric", "request-rate"),
                ("target", "100"),
                ("scale-out-cooldown", "60s"),
                ("scale-in-after", "0s"),
                ("scale-in-cooldown", "5m"),
            ])
            .unwrap();
        // Out to 4; the autoscaler has not added pods yet, load rises: the
        // cooldown keeps 4, then 8 once it ends.
        let got = run(&host, &tt, &[(0, 2, 400.0), (30, 2, 800.0), (61, 2, 800.0)]);
        assert_eq!(got, [4, 4, 8]);
        let d = host.evaluate(&tt, &rps(&host, 62, 8, 800.0));
        assert_eq!(d.direction, ScaleDirection::Hold);
        // Load falls: no scale-in until 5m after the last change (t=61).
        assert_eq!(run(&host, &tt, &[(100, 8, 100.0)]), [8]);
        let d = host.evaluate(&tt, &rps(&host, 200, 8, 100.0));
        assert!(
            d.reason.contains("scale-in cooldown, 161s left"),
            "{}",
            d.reason
        );
        assert_eq!(run(&host, &tt, &[(360, 8, 100.0), (361, 8, 100.0)]), [8, 1]);
    }

    #[test]
    fn panic_mode_scales_out_at_once_and_blocks_scale_in() {
        let host = FakeHost::new();
        let tt: TargetTracking = host
            .scaler(&[
                ("metric", "request-rate"),
                ("target", "100"),
                ("scale-out-after", "2m"),
                ("scale-in-after", "0s"),
                ("scale-in-cooldown", "0s"),
                ("panic-threshold", "2"),
                ("panic-hold", "60s"),
            ])
            .unwrap();
        // 1.5× target waits for the sustain window; 3× panics at once.
        let got = run(&host, &tt, &[(0, 2, 300.0), (10, 2, 600.0)]);
        assert_eq!(got, [2, 6]);
        let d = host.evaluate(&tt, &rps(&host, 11, 2, 600.0));
        assert!(d.reason.starts_with("panic: "), "{}", d.reason);
        // Calm again: scale-in waits out the panic hold.
        let got = run(
            &host,
            &tt,
            &[(30, 6, 100.0), (69, 6, 100.0), (72, 6, 100.0)],
        );
        assert_eq!(got, [6, 6, 1]);
    }

    #[test]
    fn services_keep_separate_windows() {
        let host = FakeHost::new();
        let tt: TargetTracking = host
            .scaler(&[
                ("metric", "request-rate"),
                ("target", "100"),
                ("scale-out-after", "60s"),
            ])
            .unwrap();
        host.evaluate(&tt, &rps(&host, 0, 1, 300.0));
        let mut other = rps(&host, 60, 1, 300.0);
        other.service = "other".into();
        assert_eq!(host.evaluate(&tt, &other).desired_replicas, 1);
        assert_eq!(
            host.evaluate(&tt, &rps(&host, 60, 1, 300.0))
                .desired_replicas,
            3
        );
    }

    #[test]
    fn a_plugins_metric_is_a_target() {
        use edgeward_sdk::{CustomMetric, MetricKind};
        let host = FakeHost::new();
        let tt: TargetTracking = host
            .scaler(&[("metric", "custom:orders"), ("target", "10")])
            .unwrap();
        let metric = |name: &str, kind, value| CustomMetric {
            name: name.into(),
            kind,
            value,
        };
        let mut s = rps(&host, 0, 2, 0.0);
        s.custom_metrics = vec![metric("shop/orders", MetricKind::Counter, 45.0)];
        let d = host.evaluate(&tt, &s);
        assert_eq!(d.desired_replicas, 5);
        assert_eq!(d.reason, "custom:orders 22.5 per replica vs target 10");
        // A histogram's mean is not shared load: proportional, as latency.
        let mean: TargetTracking = host
            .scaler(&[("metric", "custom:shop/basket"), ("target", "20")])
            .unwrap();
        s.custom_metrics = vec![
            metric("shop/basket", MetricKind::Histogram, 30.0),
            metric("other/basket", MetricKind::Gauge, 1.0),
        ];
        assert_eq!(host.evaluate(&mean, &s).desired_replicas, 3);
        // A bare name two plugins define is ambiguous and reads as absent.
        let bare: TargetTracking = host
            .scaler(&[("metric", "custom:basket"), ("target", "20")])
            .unwrap();
        assert!(
            host.evaluate(&bare, &s)
                .reason
                .starts_with("custom:basket 0 ")
        );
        let err = host
            .scaler::<TargetTracking>(&[("metric", "custom:Orders"), ("target", "1")])
            .err()
            .unwrap();
        assert!(err.contains("invalid metric name"), "{err}");
    }

    #[test]
    fn bad_config_names_the_key() {
        let host = FakeHost::new();
        let err = |c: &[(&str, &str)]| host.scaler::<TargetTracking>(c).err().unwrap();
        assert!(err(&[("target", "5")]).contains("`metric` is required"));
        assert!(err(&[("metric", "rps"), ("target", "5")]).contains("unknown metric `rps`"));
        assert!(err(&[("metric", "request-rate")]).contains("`target` is required"));
        assert!(err(&[("metric", "request-rate"), ("target", "-1")]).contains("positive"));
        assert!(
            err(&[
                ("metric", "request-rate"),
                ("target", "1"),
                ("scale-in-afer", "1m")
            ])
            .contains("did you mean `scale-in-after`")
        );
    }
}
