//! `weighted-round-robin`: smooth weighted round robin, as NGINX does it.
//!
//! Weights 5:1:1 give `a a b a c a a` rather than `a a a a a b c`: every
//! endpoint's share is exact over each period of `sum(weights)` requests and
//! spread evenly within it.
//!
//! The only shared state is one host counter per upstream. The sequence for
//! a set of (endpoint, weight) pairs is a pure function of them, so each
//! instance computes it once and caches it; the counter says where in the
//! sequence the next request falls, so all instances together still follow
//! one exact sequence. No configuration.

use std::cell::RefCell;

use edgeward_sdk::{Candidate, Config, Decision, Request, Router, Upstream, state};

/// Longest schedule kept per instance. Larger weight sums are scaled down
/// to fit, which keeps shares within 1/65536 of exact.
const MAX_PERIOD: u64 = 1 << 16;

/// The weighted round-robin router.
pub struct WeightedRoundRobin {
    cache: RefCell<Option<Schedule>>,
}

/// The smooth sequence for one set of healthy endpoints and weights.
struct Schedule {
    /// (id, weight) of the healthy, positively weighted endpoints it was built from.
    members: Vec<(u32, u32)>,
    /// Endpoint ids in serving order; its length is the period.
    order: Vec<u32>,
}

impl Schedule {
    fn build(members: Vec<(u32, u32)>) -> Self {
        let mut weights: Vec<u64> = members.iter().map(|&(_, w)| u64::from(w)).collect();
        let sum: u64 = weights.iter().sum();
        if sum > MAX_PERIOD {
            for w in &mut weights {
                *w = (*w * MAX_PERIOD / sum).max(1);
            }
        }
        let g = weights.iter().copied().fold(0, gcd);
        for w in &mut weights {
            *w /= g.max(1);
        }
        let total: i64 = weights.iter().sum::<u64>() as i64;
        let mut current = vec![0i64; weights.len()];
        let mut order = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = 0;
            for (i, w) in weights.iter().enumerate() {
                current[i] += *w as i64;
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            order.push(members[best].0);
        }
        Self { members, order }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Router for WeightedRoundRobin {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&[])?;
        Ok(Self {
            cache: RefCell::new(None),
        })
    }

    fn choose(
        &self,
        _: &Request<'_>,
        upstream: &Upstream<'_>,
        candidates: &[Candidate],
    ) -> Decision {
        let members = candidates
            .iter()
            .filter(|c| c.healthy && c.weight > 0)
            .map(|c| (c.id, c.weight));
        if members.clone().next().is_none() {
            return Decision::Unavailable;
        }
        let mut cache = self.cache.borrow_mut();
        if !cache
            .as_ref()
            .is_some_and(|s| s.members.iter().copied().eq(members.clone()))
        {
            *cache = Some(Schedule::build(members.collect()));
        }
        let Some(schedule) = cache.as_ref() else {
            return Decision::Unavailable;
        };
        let i = state::next_index(&upstream.state_key("wrr", candidates), schedule.order.len());
        edgeward_sdk::Forward::to(schedule.order[i]).into()
    }
}

edgeward_sdk::export!(router: WeightedRoundRobin);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeEndpoint, FakeHost, FakeRequest, FakeUpstream};

    fn weighted(weights: &[u32]) -> FakeUpstream {
        weights
            .iter()
            .enumerate()
            .fold(FakeUpstream::new("app"), |u, (i, w)| {
                u.with(FakeEndpoint::new(&format!("10.0.0.{i}:80")).weight(*w))
            })
    }

    fn picks(host: &FakeHost, r: &WeightedRoundRobin, up: &FakeUpstream, n: usize) -> Vec<u32> {
        (0..n)
            .map(|_| {
                host.choose(r, &FakeRequest::get("/"), up)
                    .endpoint()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn is_smooth_like_nginx() {
        let host = FakeHost::new();
        let r: WeightedRoundRobin = host.router(&[]).unwrap();
        // NGINX's documented sequence for weights a=5, b=1, c=1.
        assert_eq!(
            picks(&host, &r, &weighted(&[5, 1, 1]), 7),
            [0, 0, 1, 0, 2, 0, 0]
        );
    }

    #[test]
    fn shares_are_exact_per_period() {
        let host = FakeHost::new();
        let r: WeightedRoundRobin = host.router(&[]).unwrap();
        let mut counts = [0u32; 3];
        for id in picks(&host, &r, &weighted(&[50, 30, 20]), 10_000) {
            counts[id as usize] += 1;
        }
        assert_eq!(counts, [5_000, 3_000, 2_000]);
    }

    #[test]
    fn skips_unhealthy_and_zero_weight() {
        let host = FakeHost::new();
        let r: WeightedRoundRobin = host.router(&[]).unwrap();
        let mut up = weighted(&[2, 1, 0]);
        up.set_healthy(0, false);
        assert_eq!(picks(&host, &r, &up, 3), [1, 1, 1]);
        up.set_healthy(1, false);
        assert_eq!(
            host.choose(&r, &FakeRequest::get("/"), &up),
            Decision::Unavailable
        );
    }

    #[test]
    fn instances_follow_one_sequence() {
        let host = FakeHost::new();
        let a: WeightedRoundRobin = host.router(&[]).unwrap();
        let b: WeightedRoundRobin = host.router(&[]).unwrap();
        let up = weighted(&[5, 1, 1]);
        let mut seen = Vec::new();
        for i in 0..7 {
            let r = if i % 2 == 0 { &a } else { &b };
            seen.extend(picks(&host, r, &up, 1));
        }
        assert_eq!(seen, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn huge_weights_are_scaled_to_a_bounded_period() {
        let s = Schedule::build(vec![(0, 3_000_000), (1, 1_000_000)]);
        assert!(s.order.len() as u64 <= MAX_PERIOD);
        let zeros = s.order.iter().filter(|&&id| id == 0).count() as f64;
        assert!((zeros / s.order.len() as f64 - 0.75).abs() < 0.001);
    }
}
