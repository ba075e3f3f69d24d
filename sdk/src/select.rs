//! Small building blocks for routers.

use std::cmp::Ordering;

use crate::Candidate;

/// The healthy candidates, in id order.
pub fn healthy(candidates: &[Candidate]) -> impl Iterator<Item = &Candidate> + Clone {
    candidates.iter().filter(|c| c.healthy)
}

/// Compare two candidates by in-flight requests per unit of weight
/// (weight 0 counts as 1). `Less` is less loaded.
pub fn by_in_flight(a: &Candidate, b: &Candidate) -> Ordering {
    // Cross-multiplied to stay in integers: a.in_flight / a.w  vs  b.in_flight / b.w.
    let (wa, wb) = (u64::from(a.weight.max(1)), u64::from(b.weight.max(1)));
    (u64::from(a.in_flight) * wb).cmp(&(u64::from(b.in_flight) * wa))
}

/// [`by_in_flight`], then by latency average.
pub fn by_load(a: &Candidate, b: &Candidate) -> Ordering {
    by_in_flight(a, b).then(a.latency_ewma_us.cmp(&b.latency_ewma_us))
}

/// The candidate with the fewest in-flight requests per unit of weight
/// ([`by_in_flight`]); ties go to the first one met, so [`rotated`] input
/// spreads them.
pub fn least_loaded<'c>(
    candidates: impl IntoIterator<Item = &'c Candidate>,
) -> Option<&'c Candidate> {
    candidates.into_iter().fold(None, |best, c| match best {
        Some(b) if by_in_flight(c, b) != Ordering::Less => Some(b),
        _ => Some(c),
    })
}

/// The candidates starting at position `start` and wrapping around: a
/// shared cursor plus this spreads ties evenly.
pub fn rotated(candidates: &[Candidate], start: usize) -> impl Iterator<Item = &Candidate> + Clone {
    let start = if candidates.is_empty() {
        0
    } else {
        start % candidates.len()
    };
    candidates[start..].iter().chain(candidates[..start].iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u32, weight: u32, in_flight: u32, healthy: bool) -> Candidate {
        Candidate {
            id,
            key: u64::from(id),
            weight,
            healthy,
            in_flight,
            latency_ewma_us: 0,
            zone: 0,
            ..Candidate::default()
        }
    }

    #[test]
    fn least_loaded_weighs_in_flight_and_keeps_the_first_tie() {
        let cs = [c(0, 1, 2, true), c(1, 2, 3, true), c(2, 1, 2, true)];
        // 3 per 2 weight = 1.5 < 2.
        assert_eq!(least_loaded(&cs).unwrap().id, 1);
        let ties = [c(0, 1, 0, true), c(1, 1, 0, true), c(2, 1, 0, true)];
        assert_eq!(least_loaded(rotated(&ties, 2)).unwrap().id, 2);
        assert_eq!(least_loaded(rotated(&ties, 4)).unwrap().id, 1);
        assert!(least_loaded(rotated(&[], 3)).is_none());
        assert_eq!(healthy(&[c(0, 1, 0, false), c(1, 1, 0, true)]).count(), 1);
    }
}
