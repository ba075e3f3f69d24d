//! `scale-step`: bands of a metric to replica counts, as in AWS step
//! scaling: "CPU 0–50 % → 2 instances, 50–70 % → 4, 70–85 % → 8, 85 %+ → 16".
//!
//! ```yaml
//! plugins:
//!   cpu-steps:
//!     builtin: scale-step
//!     config:
//!       metric: gateway-cpu                 # as in scale-target-tracking
//!       steps: "0:2, 50:4, 70:8, 85:16"     # lower bound : replicas, ascending
//!       scale-out-after: 2m                 # sustain windows, cooldowns, panic-hold:
//!       scale-in-after: 10m                 #   as in scale-target-tracking
//! ```
//!
//! The band whose lower bound is the highest one at or below the value
//! gives the count; below the first bound, the first band's count.

use edgeward_sdk::{Config, ScaleDecision, ScaleSnapshot, Scaler};
use scale_common::{GATE_KEYS, Gate, Metric, num};

/// The step scaler.
pub struct Step {
    metric: Metric,
    /// `(lower bound, replicas)`, bounds ascending.
    steps: Vec<(f64, u32)>,
    gate: Gate,
}

fn parse_steps(text: &str) -> Result<Vec<(f64, u32)>, String> {
    let mut out: Vec<(f64, u32)> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (bound, count) = part
            .split_once(':')
            .ok_or_else(|| format!("config `steps`: `{part}` is not `bound:replicas`"))?;
        let bound: f64 = bound
            .trim()
            .parse()
            .map_err(|_| format!("config `steps`: `{}` is not a number", bound.trim()))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("config `steps`: `{}` is not a replica count", count.trim()))?;
        if let Some(&(prev, _)) = out.last()
            && bound <= prev
        {
            return Err(format!(
                "config `steps`: bounds must ascend ({} after {})",
                num(bound),
                num(prev)
            ));
        }
        out.push((bound, count));
    }
    if out.is_empty() {
        return Err("config `steps` is required, e.g. `steps: \"0:2, 50:4, 70:8\"`".into());
    }
    Ok(out)
}

impl Scaler for Step {
    fn init(config: &Config) -> Result<Self, String> {
        let mut known = vec!["metric", "steps"];
        known.extend_from_slice(GATE_KEYS);
        config.allow_only(&known)?;
        Ok(Self {
            metric: Metric::from_config(config)?,
            steps: parse_steps(config.get_or("steps", ""))?,
            gate: Gate::from_config(config)?,
        })
    }

    fn evaluate(&self, s: &ScaleSnapshot) -> ScaleDecision {
        let value = self.metric.value(s);
        let i = self
            .steps
            .iter()
            .rposition(|&(b, _)| value >= b)
            .unwrap_or(0);
        let (bound, count) = self.steps[i];
        let unit = self.metric.unit();
        let upper = self
            .steps
            .get(i + 1)
            .map_or_else(|| "+".to_owned(), |&(b, _)| format!("–{}{unit}", num(b)));
        let why = format!(
            "{} {}{unit} in band {}{unit}{upper} → {count}",
            self.metric,
            num(value),
            num(bound)
        );
        self.gate.decide(s, count, &why, false)
    }
}

edgeward_sdk::export!(scaler: Step);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::FakeHost;
    use scale_common::snapshot_at;

    fn cpu(host: &FakeHost, at_s: u64, current: u32, percent: f64) -> ScaleSnapshot {
        let mut s = snapshot_at(host, "api", at_s, current);
        s.gateway_cpu = percent / 100.0;
        s
    }

    #[test]
    fn bands_map_to_counts() {
        let host = FakeHost::new();
        let st: Step = host
            .scaler(&[
                ("metric", "gateway-cpu"),
                ("steps", "0:2, 50:4, 70:8, 85:16"),
                ("scale-in-after", "0s"),
                ("scale-in-cooldown", "0s"),
            ])
            .unwrap();
        let got: Vec<u32> = [10.0, 50.0, 69.9, 70.0, 99.0, 30.0]
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                host.evaluate(&st, &cpu(&host, i as u64, 4, p))
                    .desired_replicas
            })
            .collect();
        assert_eq!(got, [2, 4, 4, 8, 16, 2]);
        let d = host.evaluate(&st, &cpu(&host, 10, 4, 75.0));
        assert_eq!(d.reason, "gateway-cpu 75% in band 70%–85% → 8");
        let d = host.evaluate(&st, &cpu(&host, 11, 16, 90.0));
        assert_eq!(d.reason, "gateway-cpu 90% in band 85%+ → 16");
    }

    #[test]
    fn sustain_windows_as_in_the_seed() {
        // "CPU > 70 % for 2 minutes" out, "< 30 % for 10 minutes" in.
        let host = FakeHost::new();
        let st: Step = host
            .scaler(&[
                ("metric", "gateway-cpu"),
                ("steps", "0:2, 30:4, 70:8"),
                ("scale-out-after", "2m"),
                ("scale-in-after", "10m"),
                ("scale-in-cooldown", "0s"),
            ])
            .unwrap();
        let seq: Vec<u32> = [
            (0, 75.0),
            (60, 80.0),
            (120, 80.0),
            (200, 20.0),
            (799, 20.0),
            (800, 20.0),
        ]
        .iter()
        .map(|&(t, p)| host.evaluate(&st, &cpu(&host, t, 4, p)).desired_replicas)
        .collect();
        assert_eq!(seq, [4, 4, 8, 4, 4, 2]);
    }

    #[test]
    fn steps_are_checked() {
        let host = FakeHost::new();
        let err = |steps: &str| {
            host.scaler::<Step>(&[("metric", "gateway-cpu"), ("steps", steps)])
                .err()
                .unwrap()
        };
        assert!(err("").contains("`steps` is required"));
        assert!(err("0:2, 50").contains("not `bound:replicas`"));
        assert!(err("0:2, 50:x").contains("not a replica count"));
        assert!(err("50:2, 10:4").contains("must ascend"));
    }
}
