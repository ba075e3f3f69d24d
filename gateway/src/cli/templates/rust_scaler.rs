//! {{name}}: an Edgeward scaler. One replica per `target` requests per
//! second (default 50), at least one.

use edgeward_sdk::{Config, ScaleDecision, ScaleSnapshot, Scaler};

pub struct Plugin {
    target: f64,
}

impl Scaler for Plugin {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&["target"])?;
        let target: f64 = config.parse_or("target", 50.0)?;
        if !(target > 0.0) {
            return Err(format!("config `target`: {target} must be positive"));
        }
        Ok(Plugin { target })
    }

    fn evaluate(&self, s: &ScaleSnapshot) -> ScaleDecision {
        let desired = ((s.request_rate / self.target).ceil() as u32).max(1);
        ScaleDecision::new(s.current_replicas, desired, format!("{:.0} rps / {} per replica", s.request_rate, self.target))
    }
}

edgeward_sdk::export!(scaler: Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::ScaleDirection;
    use edgeward_sdk::testing::FakeHost;

    #[test]
    fn one_replica_per_target_rps() {
        let host = FakeHost::new();
        let p: Plugin = host.scaler(&[("target", "100")]).unwrap();
        let s = ScaleSnapshot { request_rate: 250.0, current_replicas: 2, ..Default::default() };
        let d = host.evaluate(&p, &s);
        assert_eq!((d.desired_replicas, d.direction), (3, ScaleDirection::Up));
        assert!(host.scaler::<Plugin>(&[("target", "0")]).is_err());
    }
}
