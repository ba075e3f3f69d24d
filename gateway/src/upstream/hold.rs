//! Scale from zero: while a `min: 0` service has no healthy endpoint, its
//! requests wait here — at most `queue` of them, each at most `timeout` —
//! instead of failing, and go on as soon as an endpoint is healthy again.
//! The count of requests held is the service's queue depth, and is what
//! makes the scale loop ask for a replica at once.
//!
//! Held requests look at endpoint health every [`POLL`]: passive health
//! brings an endpoint back when its cool-down ends, with no event to wait
//! for, and polling costs only the requests that are held.

use std::time::{Duration, Instant};

use crate::config::scaling::Hold;
use crate::metrics::HoldHandles;

/// How often a held request looks at endpoint health.
pub const POLL: Duration = Duration::from_millis(25);

/// Why a request was not held to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `queue` requests were held already.
    Full,
    /// No endpoint became healthy within `timeout`.
    Timeout,
}

/// One scale-from-zero service's hold, built per generation; its counts live
/// in the node's metrics, so they carry across a reload.
#[derive(Debug)]
pub struct HoldQueue {
    pub service: String,
    pub settings: Hold,
    m: HoldHandles,
}

/// Counts a request as held until dropped, and its hold time.
struct Held<'a>(&'a HoldQueue, Instant);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.m.held.dec();
        self.0.m.hold_seconds.observe(self.1.elapsed());
    }
}

impl HoldQueue {
    pub fn new(service: &str, settings: Hold, m: HoldHandles) -> Self {
        Self {
            service: service.to_owned(),
            settings,
            m,
        }
    }

    /// Requests held now, across generations.
    pub fn held(&self) -> u32 {
        u32::try_from(self.m.held.get()).unwrap_or(0)
    }

    /// Waits until `ready()` (an endpoint is healthy) or `deadline`. Returns
    /// at once when `ready()` already holds, without counting a hold.
    pub async fn wait(&self, ready: impl Fn() -> bool, deadline: Instant) -> Result<(), Refusal> {
        if ready() {
            return Ok(());
        }
        let before = self.m.held.inc();
        if before >= i64::from(self.settings.queue) {
            self.m.held.dec();
            self.m.refused_full.inc();
            return Err(Refusal::Full);
        }
        let _held = Held(self, Instant::now());
        loop {
            let now = Instant::now();
            if now >= deadline {
                self.m.refused_timeout.inc();
                return Err(Refusal::Timeout);
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
            if ready() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::metrics::NodeMetrics;

    fn queue(m: &NodeMetrics, n: u32) -> Arc<HoldQueue> {
        let settings = Hold {
            queue: n,
            timeout: Duration::from_secs(5),
            retry_after: Duration::from_secs(1),
        };
        Arc::new(HoldQueue::new("svc", settings, m.scale.hold_handles("svc")))
    }

    #[tokio::test]
    async fn holds_until_ready_and_refuses_beyond_the_queue() {
        let m = NodeMetrics::new("n", "r");
        let q = queue(&m, 2);
        let up = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + Duration::from_secs(5);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (q, up) = (q.clone(), up.clone());
                tokio::spawn(async move { q.wait(|| up.load(Ordering::Relaxed), deadline).await })
            })
            .collect();
        while q.held() < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(m.scale.held("svc"), 2);
        assert_eq!(q.wait(|| false, deadline).await, Err(Refusal::Full));
        up.store(true, Ordering::Relaxed);
        for w in waiters {
            assert_eq!(w.await.unwrap(), Ok(()));
        }
        assert_eq!(q.held(), 0);
        // Ready at once: never counted as held.
        assert_eq!(q.wait(|| true, deadline).await, Ok(()));
        let short = Instant::now() + Duration::from_millis(30);
        assert_eq!(q.wait(|| false, short).await, Err(Refusal::Timeout));
        let text = m.render();
        assert!(
            text.contains(
                "edgeward_scale_hold_seconds_count{node=\"n\",region=\"r\",service=\"svc\"} 3"
            ),
            "{text}"
        );
        assert!(
            text.contains("reason=\"full\"} 1") && text.contains("reason=\"timeout\"} 1"),
            "{text}"
        );
    }
}
