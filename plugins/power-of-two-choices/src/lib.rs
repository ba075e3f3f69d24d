//! `power-of-two-choices`: pick two healthy endpoints at random and send the
//! request to the one with fewer requests in flight per unit of weight
//! (then lower latency average).
//!
//! Nearly as good as least-connections at spreading load, without every
//! gateway node herding onto the same "least" endpoint. The random pairs
//! come from a shared host counter run through a strong mixer: every
//! instance draws from one sequence, and tests are deterministic. No
//! configuration.

use std::cmp::Ordering;

use edgeward_sdk::{Candidate, Config, Decision, Request, Router, Upstream, hash, select, state};

/// The power-of-two-choices router.
pub struct PowerOfTwoChoices;

impl Router for PowerOfTwoChoices {
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
        let n = healthy.clone().count() as u64;
        if n <= 1 {
            return Decision::forward_or_unavailable(healthy.clone().next());
        }
        let draw =
            hash::mix64(state::counter_add(&upstream.state_key("p2c", candidates), 1) as u64);
        let i = hash::bucket(draw, n);
        // A second, distinct index: draw from the other n-1 and skip over i.
        let mut j = hash::bucket(hash::mix64(draw), n - 1);
        if j >= i {
            j += 1;
        }
        let (Some(a), Some(b)) = (
            healthy.clone().nth(i as usize),
            healthy.clone().nth(j as usize),
        ) else {
            return Decision::Unavailable;
        };
        Decision::forward(if select::by_load(b, a) == Ordering::Less {
            b
        } else {
            a
        })
    }
}

edgeward_sdk::export!(router: PowerOfTwoChoices);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeHost, FakeRequest, FakeUpstream};

    fn upstream(n: u32) -> FakeUpstream {
        (0..n).fold(FakeUpstream::new("app"), |u, i| {
            u.with_endpoint(&format!("10.0.0.{i}:80"))
        })
    }

    fn pick(host: &FakeHost, r: &PowerOfTwoChoices, up: &FakeUpstream) -> u32 {
        host.choose(r, &FakeRequest::get("/"), up)
            .endpoint()
            .unwrap()
    }

    #[test]
    fn never_picks_the_most_loaded_of_many() {
        let host = FakeHost::new();
        let r: PowerOfTwoChoices = host.router(&[]).unwrap();
        let mut up = upstream(4);
        for (id, load) in [(0, 1), (1, 2), (2, 3), (3, 100)] {
            up.set_in_flight(id, load);
        }
        // The busiest endpoint loses every pair it is drawn into.
        for _ in 0..500 {
            assert_ne!(pick(&host, &r, &up), 3);
        }
    }

    #[test]
    fn idle_load_spreads_over_all_endpoints() {
        let host = FakeHost::new();
        let r: PowerOfTwoChoices = host.router(&[]).unwrap();
        let up = upstream(4);
        let mut counts = [0u32; 4];
        for _ in 0..4_000 {
            counts[pick(&host, &r, &up) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 500), "{counts:?}");
    }

    #[test]
    fn keeps_load_balanced_when_the_host_counts_in_flight() {
        let host = FakeHost::new();
        let r: PowerOfTwoChoices = host.router(&[]).unwrap();
        let mut up = upstream(5);
        let mut load = [0u32; 5];
        for _ in 0..1_000 {
            let id = pick(&host, &r, &up) as usize;
            load[id] += 1;
            up.set_in_flight(id as u32, load[id]);
        }
        let (min, max) = (load.iter().min().unwrap(), load.iter().max().unwrap());
        assert!(max - min <= 2, "{load:?}");
    }

    #[test]
    fn skips_unhealthy_and_handles_tiny_upstreams() {
        let host = FakeHost::new();
        let r: PowerOfTwoChoices = host.router(&[]).unwrap();
        let mut up = upstream(3);
        up.set_healthy(0, false);
        up.set_healthy(2, false);
        for _ in 0..10 {
            assert_eq!(pick(&host, &r, &up), 1);
        }
        up.set_healthy(1, false);
        assert_eq!(
            host.choose(&r, &FakeRequest::get("/"), &up),
            Decision::Unavailable
        );
    }
}
