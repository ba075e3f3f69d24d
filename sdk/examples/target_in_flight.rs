//! A scaler: keep requests in flight per healthy replica near a target
//! (target tracking), scaling up at once and down only after the load has
//! stayed low for a sustain window, remembered in host state.
//!
//! Config: `target` (in-flight per replica, default 10), `min` (default 1),
//! `max` (default 20), `scale-down-after` (default `5m`).
//!
//! `cargo build --release --target wasm32-wasip2 --example target_in_flight`

use std::time::Duration;

use edgeward_sdk::{Config, ScaleDecision, ScaleSnapshot, Scaler, clock, state};

/// The target-tracking scaler.
pub struct TargetInFlight {
    target: f64,
    min: u32,
    max: u32,
    scale_down_after: Duration,
}

impl Scaler for TargetInFlight {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&["target", "min", "max", "scale-down-after"])?;
        let target: f64 = config.parse_or("target", 10.0)?;
        let (min, max) = (config.parse_or("min", 1)?, config.parse_or("max", 20)?);
        if target <= 0.0 || min > max {
            return Err("config: need target > 0 and min <= max".to_owned());
        }
        Ok(Self {
            target,
            min,
            max,
            scale_down_after: config
                .duration("scale-down-after")?
                .unwrap_or(Duration::from_secs(300)),
        })
    }

    fn evaluate(&self, s: &ScaleSnapshot) -> ScaleDecision {
        let current = s.current_replicas.max(1);
        let wanted = (f64::from(s.in_flight) / self.target).ceil() as u32;
        let wanted = wanted.clamp(self.min, self.max);
        let low_since_key = format!("low-since/{}", s.service);
        if wanted >= current {
            state::counter_set(&low_since_key, 0);
            let reason = format!(
                "in-flight {} vs target {} per replica",
                s.in_flight, self.target
            );
            return ScaleDecision::new(s.current_replicas, wanted, reason);
        }
        // Below target: only scale down once it has lasted the sustain window.
        let now = clock::monotonic_now() as i64;
        let since = state::counter_get(&low_since_key);
        if since == 0 {
            state::counter_set(&low_since_key, now);
        }
        let lasted = Duration::from_nanos((now - if since == 0 { now } else { since }) as u64);
        if lasted >= self.scale_down_after {
            ScaleDecision::new(
                s.current_replicas,
                wanted,
                format!("low for {}s", lasted.as_secs()),
            )
        } else {
            ScaleDecision::new(
                s.current_replicas,
                s.current_replicas,
                "low, waiting out the sustain window",
            )
        }
    }
}

edgeward_sdk::export!(scaler: TargetInFlight);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::ScaleDirection;
    use edgeward_sdk::testing::FakeHost;

    fn snapshot(in_flight: u32, replicas: u32) -> ScaleSnapshot {
        ScaleSnapshot {
            service: "product".to_owned(),
            current_replicas: replicas,
            healthy_replicas: replicas,
            in_flight,
            ..ScaleSnapshot::default()
        }
    }

    #[test]
    fn scales_up_at_once_and_down_after_the_window() {
        let host = FakeHost::new();
        let s: TargetInFlight = host
            .scaler(&[("target", "10"), ("scale-down-after", "2m")])
            .unwrap();
        let up = host.evaluate(&s, &snapshot(45, 2));
        assert_eq!((up.desired_replicas, up.direction), (5, ScaleDirection::Up));
        let hold = host.evaluate(&s, &snapshot(5, 5));
        assert_eq!(hold.direction, ScaleDirection::Hold);
        host.advance(Duration::from_secs(121));
        let down = host.evaluate(&s, &snapshot(5, 5));
        assert_eq!(
            (down.desired_replicas, down.direction),
            (1, ScaleDirection::Down)
        );
    }
}
