//! Rendezvous (highest-random-weight) hashing: every candidate gets a score
//! from `(client key, endpoint key)` and the highest score wins.
//!
//! Removing an endpoint moves only the clients that were on it (everyone
//! else's highest score is unchanged), and adding one takes only its fair
//! share — without a ring to build or keep in shared state.

use crate::Candidate;
use crate::hash::mix64;

fn score(key: u64, endpoint: u64) -> u64 {
    mix64(key ^ mix64(endpoint))
}

/// The candidate with the highest score for `key`, ignoring weights.
/// Ties (practically impossible) go to the lower endpoint key.
pub fn pick<'c>(
    key: u64,
    candidates: impl IntoIterator<Item = &'c Candidate>,
) -> Option<&'c Candidate> {
    candidates
        .into_iter()
        .max_by_key(|c| (score(key, c.key), std::cmp::Reverse(c.key)))
}

/// Weighted rendezvous hashing: each candidate wins a share of keys
/// proportional to its weight. Candidates with weight 0 never win.
pub fn pick_weighted<'c>(
    key: u64,
    candidates: impl IntoIterator<Item = &'c Candidate>,
) -> Option<&'c Candidate> {
    let mut best: Option<(&Candidate, f64)> = None;
    for c in candidates.into_iter().filter(|c| c.weight > 0) {
        // A uniform draw in (0, 1); -w / ln(u) is the standard weighted
        // HRW score (the max of exponentials with rate 1/w).
        let u = ((score(key, c.key) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let s = -f64::from(c.weight) / u.ln();
        if best.is_none_or(|(b, bs)| s > bs || (s == bs && c.key < b.key)) {
            best = Some((c, s));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::fnv1a64;

    fn endpoints(n: u32, weight: impl Fn(u32) -> u32) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                id: i,
                key: fnv1a64(format!("10.0.0.{i}:80").as_bytes()),
                weight: weight(i),
                healthy: true,
                in_flight: 0,
                latency_ewma_us: 0,
                zone: 0,
                ..Candidate::default()
            })
            .collect()
    }

    #[test]
    fn removing_an_endpoint_moves_only_its_clients() {
        let all = endpoints(5, |_| 1);
        let without_2: Vec<Candidate> = all.iter().copied().filter(|c| c.id != 2).collect();
        for client in 0..10_000u64 {
            for f in [pick, pick_weighted] {
                let before = f(client, &all).unwrap().key;
                let after = f(client, &without_2).unwrap().key;
                if before != all[2].key {
                    assert_eq!(before, after, "client {client} moved needlessly");
                }
            }
        }
    }

    #[test]
    fn weights_set_the_share() {
        let eps = endpoints(3, |i| i + 1); // 1:2:3
        let mut counts = [0u32; 3];
        for client in 0..60_000u64 {
            counts[pick_weighted(client, &eps).unwrap().id as usize] += 1;
        }
        // Expected 10k, 20k, 30k; 5 % slack on a fixed, deterministic input.
        for (i, c) in counts.iter().enumerate() {
            let want = 10_000 * (i as u32 + 1);
            assert!(c.abs_diff(want) < want / 20, "{counts:?}");
        }
        assert!(pick_weighted(1, &endpoints(2, |_| 0)).is_none());
    }
}
