//! See Cargo.toml: a router that panics or recurses on cue.

use edgeward_sdk::{Candidate, Config, Decision, Request, Router, Upstream, select};

pub struct FaultRouter {
    mode: String,
}

impl Router for FaultRouter {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&["mode"])?;
        Ok(Self {
            mode: config.get_or("mode", "ok").to_owned(),
        })
    }

    fn choose(&self, req: &Request<'_>, _up: &Upstream<'_>, candidates: &[Candidate]) -> Decision {
        match self.mode.as_str() {
            "panic" => panic!("sdk-fault-router refuses {}", req.path()),
            "recurse" => Decision::forward_or_unavailable(
                candidates.get(runaway_recursion(std::hint::black_box(1)) as usize),
            ),
            _ => Decision::forward_or_unavailable(select::healthy(candidates).next()),
        }
    }
}

/// Recursion with no base case the input can reach; its name is what the
/// host's backtrace should show.
#[inline(never)]
fn runaway_recursion(n: u32) -> u32 {
    if n == u32::MAX {
        return 0;
    }
    runaway_recursion(n.wrapping_add(1))
        .wrapping_mul(3)
        .wrapping_add(n)
}

edgeward_sdk::export!(router: FaultRouter);
