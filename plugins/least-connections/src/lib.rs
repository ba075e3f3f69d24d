//! `least-connections`: the healthy endpoint with the fewest requests in
//! flight per unit of weight, from the counts the host passes.
//!
//! Ties (common at low load, when everything is at 0) are broken by a
//! shared rotating start, so an idle upstream is still spread round robin
//! instead of everything landing on the first endpoint. No configuration.

use edgeward_sdk::{Candidate, Config, Decision, Request, Router, Upstream, select, state};

/// The least-connections router.
pub struct LeastConnections;

impl Router for LeastConnections {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&[])?;
        Ok(Self)
    }

    fn choose(
        &self,
        _: &Request<'_>,
        upstream: &Upstream<'_>,
        candidates: &[Candidate],
    ) -> Decision {
        if !candidates.iter().any(|c| c.healthy) {
            return Decision::Unavailable;
        }
        let start = state::next_index(&upstream.state_key("lc", candidates), candidates.len());
        let rotated = select::rotated(candidates, start).filter(|c| c.healthy);
        Decision::forward_or_unavailable(select::least_loaded(rotated))
    }
}

edgeward_sdk::export!(router: LeastConnections);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeEndpoint, FakeHost, FakeRequest, FakeUpstream};

    fn upstream() -> FakeUpstream {
        FakeUpstream::new("app")
            .with_endpoint("10.0.0.1:80")
            .with_endpoint("10.0.0.2:80")
            .with_endpoint("10.0.0.3:80")
    }

    fn pick(host: &FakeHost, r: &LeastConnections, up: &FakeUpstream) -> u32 {
        host.choose(r, &FakeRequest::get("/"), up)
            .endpoint()
            .unwrap()
    }

    #[test]
    fn sends_new_requests_away_from_a_busy_endpoint() {
        let host = FakeHost::new();
        let r: LeastConnections = host.router(&[]).unwrap();
        let mut up = upstream();
        up.set_in_flight(0, 10);
        up.set_in_flight(1, 3);
        up.set_in_flight(2, 4);
        for _ in 0..5 {
            assert_eq!(pick(&host, &r, &up), 1);
        }
        // Simulate the host's accounting: every pick adds one in flight.
        let mut counts = [10, 3, 4];
        for _ in 0..6 {
            let id = pick(&host, &r, &up) as usize;
            counts[id] += 1;
            up.set_in_flight(id as u32, counts[id]);
        }
        assert_eq!(counts[0], 10, "the busy endpoint got new work: {counts:?}");
    }

    #[test]
    fn weights_scale_capacity() {
        let host = FakeHost::new();
        let r: LeastConnections = host.router(&[]).unwrap();
        let up = FakeUpstream::new("app")
            .with(FakeEndpoint::new("10.0.0.1:80").weight(4).in_flight(6))
            .with(FakeEndpoint::new("10.0.0.2:80").weight(1).in_flight(2));
        // 6/4 = 1.5 < 2/1.
        assert_eq!(pick(&host, &r, &up), 0);
    }

    #[test]
    fn idle_upstream_is_spread_evenly() {
        let host = FakeHost::new();
        let r: LeastConnections = host.router(&[]).unwrap();
        let up = upstream();
        let picks: Vec<u32> = (0..6).map(|_| pick(&host, &r, &up)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn skips_unhealthy_even_when_idle() {
        let host = FakeHost::new();
        let r: LeastConnections = host.router(&[]).unwrap();
        let mut up = upstream();
        up.set_in_flight(1, 50);
        up.set_in_flight(2, 50);
        up.set_healthy(0, false);
        for _ in 0..4 {
            assert_ne!(pick(&host, &r, &up), 0);
        }
        up.set_healthy(1, false);
        up.set_healthy(2, false);
        assert_eq!(
            host.choose(&r, &FakeRequest::get("/"), &up),
            Decision::Unavailable
        );
    }
}
