//! Passive outlier detection: an endpoint whose answers fail `consecutive-errors`
//! times in a row (5xx, connect errors, resets, timeouts) is ejected for the
//! base ejection time × the times it was ejected, capped, as Envoy does; never
//! more than `max-ejected-percent` of an upstream at once.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::config::resilience::Outlier;

/// What the failure that tipped an endpoint into ejection was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// An HTTP 5xx answer.
    Status5xx,
    /// The connection could not be made.
    ConnectError,
    /// The connection failed before a response head.
    Reset,
    /// No response head within the try's timeout.
    Timeout,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Status5xx,
        Reason::ConnectError,
        Reason::Reset,
        Reason::Timeout,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status5xx => "5xx",
            Self::ConnectError => "connect-error",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One endpoint's outlier state; lives in its [`super::stats::EndpointStats`].
#[derive(Debug, Default)]
pub struct EndpointOutlier {
    consecutive: AtomicU32,
    /// Milliseconds on [`super::stats::now_ms`]'s clock until which it is out.
    until_ms: AtomicU64,
    times: AtomicU32,
    /// 1 + the [`Reason`] index of the last ejection; 0 before any.
    last_reason: AtomicU8,
    by_reason: [AtomicU64; 4],
}

impl EndpointOutlier {
    pub fn ejected(&self, now_ms: u64) -> bool {
        self.until_ms.load(Relaxed) > now_ms
    }

    /// The reason of the ejection in force, if one is.
    pub fn ejection(&self, now_ms: u64) -> Option<Reason> {
        if !self.ejected(now_ms) {
            return None;
        }
        let i = usize::from(self.last_reason.load(Relaxed)).checked_sub(1)?;
        Reason::ALL.get(i).copied()
    }

    /// Ejections so far, by reason.
    pub fn ejections(&self) -> [(Reason, u64); 4] {
        Reason::ALL.map(|r| (r, self.by_reason[r.index()].load(Relaxed)))
    }

    /// An answer that was not a failure: the run of errors is broken. An
    /// endpoint that stays well for the longest ejection time is forgiven its
    /// past ejections.
    pub fn succeeded(&self, now_ms: u64, cfg: &Outlier) {
        if self.consecutive.load(Relaxed) != 0 {
            self.consecutive.store(0, Relaxed);
        }
        let until = self.until_ms.load(Relaxed);
        if self.times.load(Relaxed) != 0 && now_ms > until.saturating_add(millis(cfg.max_ejection))
        {
            self.times.store(0, Relaxed);
        }
    }

    /// A failed answer. `may_eject` says whether the upstream's cap allows one
    /// more ejection now. Returns the ejection's length when this ejects it.
    pub fn failed(
        &self,
        now_ms: u64,
        cfg: &Outlier,
        reason: Reason,
        may_eject: impl FnOnce() -> bool,
    ) -> Option<Duration> {
        if !cfg.enabled || self.ejected(now_ms) {
            return None;
        }
        let n = self.consecutive.fetch_add(1, Relaxed) + 1;
        if n < cfg.consecutive_errors || !may_eject() {
            return None;
        }
        // Only the failure that resets the run ejects, however many race here.
        if self
            .consecutive
            .compare_exchange(n, 0, Relaxed, Relaxed)
            .is_err()
        {
            return None;
        }
        let times = self.times.fetch_add(1, Relaxed) + 1;
        let length = cfg
            .base_ejection
            .saturating_mul(times)
            .min(cfg.max_ejection);
        self.last_reason.store(reason.index() as u8 + 1, Relaxed);
        self.by_reason[reason.index()].fetch_add(1, Relaxed);
        self.until_ms
            .store(now_ms.saturating_add(millis(length)), Relaxed);
        Some(length)
    }

    /// An active health check passed: an ejection in force ends (Envoy's
    /// `successful_active_health_check_uneject_host`).
    pub fn uneject(&self) -> bool {
        self.consecutive.store(0, Relaxed);
        self.until_ms.swap(0, Relaxed) != 0
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Most endpoints of a pool of `n` ejected at once: `percent` of them,
/// rounded down, but one of a pool of two or more whenever `percent` is not 0.
/// A pool of one is never ejected from: there is nowhere else to go.
pub fn max_ejected(n: usize, percent: u32) -> usize {
    if n < 2 || percent == 0 {
        return 0;
    }
    (n * percent as usize / 100).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Outlier {
        Outlier::default()
    }

    #[test]
    fn five_in_a_row_eject_with_growing_length() {
        let o = EndpointOutlier::default();
        let c = cfg();
        for _ in 0..4 {
            assert_eq!(o.failed(10, &c, Reason::Status5xx, || true), None);
        }
        assert_eq!(
            o.failed(10, &c, Reason::Status5xx, || true),
            Some(Duration::from_secs(30))
        );
        assert!(o.ejected(11));
        assert_eq!(o.ejection(11), Some(Reason::Status5xx));
        // Failures while ejected are not counted.
        assert_eq!(o.failed(20, &c, Reason::Status5xx, || true), None);
        let back = 10 + 30_000;
        assert!(!o.ejected(back));
        for _ in 0..4 {
            o.failed(back, &c, Reason::ConnectError, || true);
        }
        assert_eq!(
            o.failed(back, &c, Reason::ConnectError, || true),
            Some(Duration::from_secs(60))
        );
        assert_eq!(o.ejections()[1], (Reason::ConnectError, 1));
    }

    #[test]
    fn ejection_length_is_capped_and_forgiven() {
        let o = EndpointOutlier::default();
        let c = Outlier {
            consecutive_errors: 1,
            ..cfg()
        };
        let mut now = 1;
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            last = o.failed(now, &c, Reason::Reset, || true).unwrap();
            now += millis(last);
        }
        assert_eq!(last, Duration::from_secs(300));
        o.succeeded(now + 300_001, &c);
        assert_eq!(
            o.failed(now + 300_002, &c, Reason::Reset, || true),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn success_breaks_the_run_and_the_cap_holds() {
        let o = EndpointOutlier::default();
        let c = cfg();
        for _ in 0..4 {
            o.failed(1, &c, Reason::Timeout, || true);
        }
        o.succeeded(1, &c);
        for _ in 0..4 {
            assert_eq!(o.failed(1, &c, Reason::Timeout, || true), None);
        }
        // Over the cap: counted, but not ejected until the cap allows it.
        assert_eq!(o.failed(1, &c, Reason::Timeout, || false), None);
        assert!(o.failed(1, &c, Reason::Timeout, || true).is_some());
        assert!(o.uneject());
        assert!(!o.ejected(2));
    }

    #[test]
    fn the_cap_for_small_pools() {
        assert_eq!(max_ejected(1, 50), 0);
        assert_eq!(max_ejected(2, 50), 1);
        assert_eq!(max_ejected(3, 50), 1);
        assert_eq!(max_ejected(4, 50), 2);
        assert_eq!(max_ejected(3, 10), 1);
        assert_eq!(max_ejected(3, 0), 0);
        assert_eq!(max_ejected(10, 100), 10);
    }
}
