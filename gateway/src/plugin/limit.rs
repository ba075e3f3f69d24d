//! Rate limits for what plugins make the gateway write: guest log lines, and
//! the gateway's own lines about a faulting plugin (one per burst).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: `burst` lines at once, refilled at `per_second`.
pub struct LogLimiter {
    per_second: f64,
    burst: f64,
    inner: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    dropped: u64,
}

impl LogLimiter {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst),
            inner: Mutex::new(Bucket {
                tokens: f64::from(burst),
                last: Instant::now(),
                dropped: 0,
            }),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being the lines dropped
    /// since the last one written; `None` when this line is dropped.
    pub fn admit(&self) -> Option<u64> {
        let mut b = self.inner.lock().ok()?;
        let now = Instant::now();
        let refill = now.duration_since(b.last).as_secs_f64() * self.per_second;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Some(std::mem::take(&mut b.dropped))
        } else {
            b.dropped += 1;
            None
        }
    }
}

/// Lets one line through per `window`, counting the rest, so a plugin that
/// faults on every request logs once per burst rather than per request.
pub struct BurstLog {
    window: Duration,
    inner: Mutex<(Option<Instant>, u64)>,
}

impl BurstLog {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            inner: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed)` when this event should be logged.
    pub fn admit(&self) -> Option<u64> {
        let mut g = self.inner.lock().ok()?;
        let now = Instant::now();
        match g.0 {
            Some(t) if now.duration_since(t) < self.window => {
                g.1 += 1;
                None
            }
            _ => {
                g.0 = Some(now);
                Some(std::mem::take(&mut g.1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_admits_the_burst_then_counts_drops() {
        let l = LogLimiter::new(1, 3);
        assert_eq!(l.admit(), Some(0));
        assert_eq!(l.admit(), Some(0));
        assert_eq!(l.admit(), Some(0));
        assert_eq!(l.admit(), None);
        assert_eq!(l.admit(), None);
    }

    #[test]
    fn burst_log_lets_the_first_through() {
        let b = BurstLog::new(Duration::from_secs(3600));
        assert_eq!(b.admit(), Some(0));
        assert_eq!(b.admit(), None);
        assert_eq!(b.admit(), None);
    }
}
