//! Small building blocks for routers.

use std::cmp::Ordering;

use crate::Candidate;

/// The healthy candidates, in id order.
pub fn healthy(candidates: &[Candidate]) -> impl Iterator<Item = &Candidate> + Clone {
    candidates.iter().filter(|c| c.healthy)
}

/// Compare two candidates by load: in-flight requests per unit of weight
/// (weight 0 counts as 1), then by latency average. `Less` is less loaded.
pub fn by_load(a: &Candidate, b: &Candidate) -> Ordering {
    // Cross-multiplied to stay in integers: a.in_flight / a.w  vs  b.in_flight / b.w.
    let (wa, wb) = (u64::from(a.weight.max(1)), u64::from(b.weight.max(1)));
    (u64::from(a.in_flight) * wb)
        .cmp(&(u64::from(b.in_flight) * wa))
        .then(a.latency_ewma_us.cmp(&b.latency_ewma_us))
}

/// The least loaded candidate ([`by_load`]); ties go to the first one met,
/// so rotate the input to spread ties.
pub fn least_loaded<'c>(
    candidates: impl IntoIterator<Item = &'c Candidate>,
) -> Option<&'c Candidate> {
    candidates.into_iter().fold(None, |best, c| match best {
        Some(b) if by_load(c, b) != Ordering::Less => Some(b),
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
