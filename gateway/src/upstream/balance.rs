//! Smooth weighted round robin (the NGINX algorithm), precomputed once into a
//! schedule so each pick is one atomic increment and an index.

/// The schedule is at most this long; larger weight sums are scaled down.
const MAX_SCHEDULE: u64 = 4096;

#[derive(Debug, Clone)]
pub struct SmoothSchedule {
    order: Vec<u16>,
}

impl SmoothSchedule {
    pub fn new(weights: &[u32]) -> Self {
        let total: u64 = weights.iter().map(|&w| u64::from(w.max(1))).sum();
        let scale = total.div_ceil(MAX_SCHEDULE).max(1);
        let weights: Vec<i64> = weights
            .iter()
            .map(|&w| (u64::from(w.max(1)) / scale).max(1) as i64)
            .collect();
        let total: i64 = weights.iter().sum();
        let mut current = vec![0i64; weights.len()];
        let mut order = Vec::with_capacity(total as usize);
        for _ in 0..total {
            for (c, w) in current.iter_mut().zip(&weights) {
                *c += w;
            }
            let best = (0..current.len())
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            current[best] -= total;
            order.push(best as u16);
        }
        Self { order }
    }

    /// Picks in one full cycle of the schedule.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn at(&self, n: usize) -> usize {
        if self.order.is_empty() {
            return 0;
        }
        usize::from(self.order[n % self.order.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_are_plain_round_robin() {
        let s = SmoothSchedule::new(&[1, 1, 1]);
        let picks: Vec<usize> = (0..6).map(|n| s.at(n)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weights_are_smooth_and_exact() {
        let s = SmoothSchedule::new(&[5, 1, 1]);
        let picks: Vec<usize> = (0..7).map(|n| s.at(n)).collect();
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
    }
}
