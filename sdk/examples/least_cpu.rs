//! A router that sends each request to the healthy endpoint reporting the
//! least CPU use, from the ORCA load reports (`endpoint-load-metrics`) the
//! gateway averages per endpoint. An endpoint that has not reported yet is
//! tried first, so every endpoint gets to report.
//!
//! `cargo build --release --target wasm32-wasip2 --example least_cpu`

use std::cmp::Ordering;

use edgeward_sdk::{Candidate, Config, Decision, Request, Router, Upstream, select};

/// The least-CPU router.
pub struct LeastCpu;

impl Router for LeastCpu {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&[])?;
        Ok(LeastCpu)
    }

    fn choose(&self, _: &Request<'_>, _: &Upstream<'_>, candidates: &[Candidate]) -> Decision {
        let healthy = select::healthy(candidates);
        let pick = healthy
            .clone()
            .find(|c| c.cpu_utilization.is_none())
            .or_else(|| {
                // The first of equals wins, so ties stay on the lower id.
                healthy.min_by(|a, b| {
                    a.cpu_utilization
                        .partial_cmp(&b.cpu_utilization)
                        .unwrap_or(Ordering::Equal)
                })
            });
        Decision::forward_or_unavailable(pick)
    }
}

edgeward_sdk::export!(router: LeastCpu);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeEndpoint, FakeHost, FakeRequest, FakeUpstream};

    #[test]
    fn unknown_first_then_the_least_loaded() {
        let host = FakeHost::new();
        let r: LeastCpu = host.router(&[]).unwrap();
        let pick = |u: &FakeUpstream| host.choose(&r, &FakeRequest::get("/"), u).endpoint();
        let up = FakeUpstream::new("app")
            .with(FakeEndpoint::new("10.0.0.1:80").load(0.9, 0.2))
            .with(FakeEndpoint::new("10.0.0.2:80"))
            .with(FakeEndpoint::new("10.0.0.3:80").load(0.3, 0.9));
        assert_eq!(pick(&up), Some(1));
        let up = FakeUpstream::new("app")
            .with(FakeEndpoint::new("10.0.0.1:80").load(0.9, 0.2))
            .with(FakeEndpoint::new("10.0.0.2:80").load(0.5, 0.1))
            .with(FakeEndpoint::new("10.0.0.3:80").load(0.3, 0.9))
            .with(FakeEndpoint::new("10.0.0.4:80").load(0.1, 0.1).unhealthy());
        assert_eq!(pick(&up), Some(2));
    }
}
