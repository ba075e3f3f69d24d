//! Circuit breaking per upstream (Envoy's thresholds): at most
//! `max-connections` open, `max-pending-requests` waiting for a new
//! connection, `max-requests` in progress. Over a limit the request is
//! answered 503 at once and counted, instead of joining a queue that grows.
//! Lives in the node's registry, so a reload keeps the counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::config::resilience::BreakerLimits;

/// Which limit a request ran into (the `limit` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Connections,
    Pending,
    Requests,
}

impl Limit {
    pub const ALL: [Limit; 3] = [Limit::Connections, Limit::Pending, Limit::Requests];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connections => "max-connections",
            Self::Pending => "max-pending-requests",
            Self::Requests => "max-requests",
        }
    }
}

/// The error a connection attempt over a limit fails with, so the request
/// path can tell it from the endpoint's own failures.
#[derive(Debug, thiserror::Error)]
#[error("circuit breaker: {} reached", .0.as_str())]
pub struct Overflow(pub Limit);

#[derive(Debug)]
pub struct Breaker {
    max: [AtomicU32; 3],
    open: [AtomicU32; 3],
    overflows: [AtomicU64; 3],
}

impl Breaker {
    pub fn new(limits: BreakerLimits) -> Self {
        let b = Self {
            max: Default::default(),
            open: Default::default(),
            overflows: Default::default(),
        };
        b.set_limits(limits);
        b
    }

    /// Applies a new generation's limits; what is open stays counted.
    pub fn set_limits(&self, l: BreakerLimits) {
        for (limit, n) in
            Limit::ALL
                .into_iter()
                .zip([l.max_connections, l.max_pending, l.max_requests])
        {
            self.max[limit as usize].store(n, Relaxed);
        }
    }

    /// A slot under `limit`, released when the permit drops; `None` (and an
    /// overflow counted) when the limit is reached.
    pub fn acquire(self: &Arc<Self>, limit: Limit) -> Option<Permit> {
        let i = limit as usize;
        let max = self.max[i].load(Relaxed);
        let taken = self.open[i]
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok();
        if taken {
            Some(Permit {
                breaker: self.clone(),
                limit,
            })
        } else {
            self.overflows[i].fetch_add(1, Relaxed);
            None
        }
    }

    pub fn open(&self, limit: Limit) -> u32 {
        self.open[limit as usize].load(Relaxed)
    }

    /// Requests refused at each limit so far.
    pub fn overflows(&self) -> [(Limit, u64); 3] {
        Limit::ALL.map(|l| (l, self.overflows[l as usize].load(Relaxed)))
    }
}

/// One slot of a [`Breaker`] limit.
#[derive(Debug)]
pub struct Permit {
    breaker: Arc<Breaker>,
    limit: Limit,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.breaker.open[self.limit as usize].fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_and_release() {
        let b = Arc::new(Breaker::new(BreakerLimits {
            max_connections: 1,
            max_pending: 2,
            max_requests: 2,
        }));
        let a = b.acquire(Limit::Requests).unwrap();
        let _c = b.acquire(Limit::Requests).unwrap();
        assert!(b.acquire(Limit::Requests).is_none());
        assert_eq!(b.overflows()[2], (Limit::Requests, 1));
        drop(a);
        assert!(b.acquire(Limit::Requests).is_some());
        let _conn = b.acquire(Limit::Connections).unwrap();
        assert!(b.acquire(Limit::Connections).is_none());
        assert_eq!(b.open(Limit::Connections), 1);
    }
}
