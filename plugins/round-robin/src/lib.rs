//! `round-robin`: each healthy endpoint in turn.
//!
//! The cursor is a host counter per upstream, so every instance of the
//! plugin shares one sequence and N requests over N healthy endpoints hit
//! each exactly once. The key comes from `Upstream::state_key`, so the
//! upstream's name costs a host call only once per instance and endpoint set;
//! upstreams listing exactly the same endpoints share a cursor. No
//! configuration.

use edgeward_sdk::{Candidate, Config, Decision, Request, Router, Upstream, select, state};

/// The round-robin router.
pub struct RoundRobin;

impl Router for RoundRobin {
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
        let healthy = select::healthy(candidates);
        let n = healthy.clone().count();
        if n == 0 {
            return Decision::Unavailable;
        }
        let i = state::next_index(&upstream.state_key("rr", candidates), n);
        Decision::forward_or_unavailable(healthy.clone().nth(i))
    }
}

edgeward_sdk::export!(router: RoundRobin);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeEndpoint, FakeHost, FakeRequest, FakeUpstream};

    fn upstream(n: usize) -> FakeUpstream {
        (0..n).fold(FakeUpstream::new("app"), |u, i| {
            u.with_endpoint(&format!("10.0.0.{i}:80"))
        })
    }

    fn picks(host: &FakeHost, rr: &RoundRobin, up: &FakeUpstream, n: usize) -> Vec<u32> {
        (0..n)
            .map(|_| {
                host.choose(rr, &FakeRequest::get("/"), up)
                    .endpoint()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn cycles_exactly_through_every_endpoint() {
        let host = FakeHost::new();
        let rr: RoundRobin = host.router(&[]).unwrap();
        assert_eq!(picks(&host, &rr, &upstream(3), 7), [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn instances_share_one_cursor() {
        let host = FakeHost::new();
        let a: RoundRobin = host.router(&[]).unwrap();
        let b: RoundRobin = host.router(&[]).unwrap();
        let up = upstream(2);
        let mut seen = picks(&host, &a, &up, 1);
        seen.extend(picks(&host, &b, &up, 1));
        seen.extend(picks(&host, &a, &up, 2));
        assert_eq!(seen, [0, 1, 0, 1]);
    }

    #[test]
    fn skips_unhealthy_and_reports_none_left() {
        let host = FakeHost::new();
        let rr: RoundRobin = host.router(&[]).unwrap();
        let mut up = upstream(3);
        up.set_healthy(1, false);
        assert_eq!(picks(&host, &rr, &up, 4), [0, 2, 0, 2]);
        let dead = FakeUpstream::new("dead").with(FakeEndpoint::new("10.9.9.9:80").unhealthy());
        assert_eq!(
            host.choose(&rr, &FakeRequest::get("/"), &dead),
            Decision::Unavailable
        );
        assert_eq!(
            host.choose(&rr, &FakeRequest::get("/"), &FakeUpstream::new("empty")),
            Decision::Unavailable
        );
    }

    #[test]
    fn upstreams_have_separate_cursors_and_survive_wraparound() {
        let host = FakeHost::new();
        let rr: RoundRobin = host.router(&[]).unwrap();
        let other = FakeUpstream::new("other")
            .with_endpoint("10.1.0.1:80")
            .with_endpoint("10.1.0.2:80");
        assert_eq!(picks(&host, &rr, &upstream(2), 1), [0]);
        assert_eq!(picks(&host, &rr, &other, 1), [0]);
        host.set_counter("rr/app", i64::MAX);
        let after = picks(&host, &rr, &upstream(2), 4);
        assert!(after.windows(2).all(|w| w[0] != w[1]), "{after:?}");
    }

    #[test]
    fn rejects_configuration() {
        let host = FakeHost::new();
        let err = host.router::<RoundRobin>(&[("weight", "2")]).err().unwrap();
        assert!(err.contains("unknown key `weight`"), "{err}");
    }
}
