//! The retry budget of one upstream (Envoy's `retry_budget`, Linkerd's
//! ratio): retries in progress may be `budget-percent` of the requests in
//! their first try, and `min-concurrent` whatever the traffic. Since every
//! retry in progress stands beside at least 100/percent first tries, the
//! upstream never sees more than that share of extra requests (plus the
//! floor), however hard every endpoint fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct RetryBudget {
    /// Requests to the upstream in progress, retrying or not.
    active: AtomicU32,
    retrying: AtomicU32,
    exhausted: AtomicU64,
}

impl RetryBudget {
    /// Counts a request as active until the guard drops.
    pub fn request(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Relaxed);
        Active(self.clone())
    }

    /// A retry slot, or `None` (and counted) when the budget is spent.
    pub fn retry(self: &Arc<Self>, percent: u32, min_concurrent: u32) -> Option<Retrying> {
        let active = self.active.load(Relaxed);
        let taken = self
            .retrying
            .fetch_update(Relaxed, Relaxed, |r| {
                let first_tries = u64::from(active.saturating_sub(r));
                let allowed = (u64::from(r) + 1) * 100 <= u64::from(percent) * first_tries;
                (allowed || r < min_concurrent).then_some(r + 1)
            })
            .is_ok();
        if taken {
            Some(Retrying(self.clone()))
        } else {
            self.exhausted.fetch_add(1, Relaxed);
            None
        }
    }

    /// Retries refused for want of budget so far.
    pub fn exhausted(&self) -> u64 {
        self.exhausted.load(Relaxed)
    }
}

#[derive(Debug)]
pub struct Active(Arc<RetryBudget>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

/// A retry in progress; held until that try has its answer.
#[derive(Debug)]
pub struct Retrying(Arc<RetryBudget>);

impl Drop for Retrying {
    fn drop(&mut self) {
        self.0.retrying.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_then_the_share() {
        let b = Arc::new(RetryBudget::default());
        let active: Vec<_> = (0..4).map(|_| b.request()).collect();
        let floor: Vec<_> = (0..3).map(|_| b.retry(20, 3).unwrap()).collect();
        assert!(b.retry(20, 3).is_none());
        assert_eq!(b.exhausted(), 1);
        drop(floor);
        drop(active);
        // 60 active: 20 % of the first tries may retry at once.
        let _active: Vec<_> = (0..60).map(|_| b.request()).collect();
        let retries: Vec<_> = (0..10).map_while(|_| b.retry(20, 3)).collect();
        // r retries leave 60 - r first tries: (r) * 100 <= 20 * (60 - r) → r = 10.
        assert_eq!(retries.len(), 10);
        assert!(b.retry(20, 3).is_none());
    }
}
