//! Answers 6 on its first call, then traps (`mode: trap`) or spins past its
//! deadline (`mode: spin`) on every later one.

use edgeward_sdk::{Config, ScaleDecision, ScaleSnapshot, Scaler, state};

pub struct Hostile {
    spin: bool,
}

impl Scaler for Hostile {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&["mode"])?;
        match config.get_or("mode", "trap") {
            "trap" => Ok(Self { spin: false }),
            "spin" => Ok(Self { spin: true }),
            other => Err(format!("unknown mode {other}")),
        }
    }

    fn evaluate(&self, s: &ScaleSnapshot) -> ScaleDecision {
        if state::counter_add("calls", 1) == 1 {
            return ScaleDecision::new(s.current_replicas, 6, "first answer");
        }
        if self.spin {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        panic!("hostile scaler traps");
    }
}

edgeward_sdk::export!(scaler: Hostile);
