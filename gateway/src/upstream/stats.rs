//! What the gateway knows about each endpoint: requests in flight, an EWMA of
//! response latency, and health — passive (an endpoint that refuses
//! connections is taken out for a cool-down; one that keeps failing is ejected,
//! see [`super::outlier`]) and active (see [`super::health`]).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Consecutive connect failures that take an endpoint out.
pub const FAILURES_TO_DOWN: u32 = 1;
/// Weight of a new latency sample in the moving average, in 1/16ths.
const EWMA_NEW_SIXTEENTHS: u64 = 4;

#[derive(Debug, Default)]
pub struct EndpointStats {
    in_flight: AtomicU32,
    ewma_us: AtomicU32,
    failures: AtomicU32,
    /// Milliseconds since the pool's clock zero until which it is out; 0 = healthy.
    down_until_ms: AtomicU64,
    /// Moving averages of its ORCA `cpu_utilization` / `mem_utilization`
    /// reports, in millionths plus one (0 = never reported).
    cpu_load: AtomicU32,
    mem_load: AtomicU32,
    /// Passive outlier detection's state.
    pub outlier: super::outlier::EndpointOutlier,
    /// Set while active health checks find it failing.
    check_failing: AtomicBool,
}

/// Decrements the endpoint's in-flight count when dropped: held until the
/// response body ends, so least-connections sees streaming responses.
pub struct InFlight(std::sync::Arc<EndpointStats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl EndpointStats {
    /// Offered to routers as healthy: not cooling down after a refused
    /// connection, not ejected, not failing its active checks.
    pub fn healthy(&self, now_ms: u64) -> bool {
        self.down_until_ms.load(Relaxed) <= now_ms
            && !self.outlier.ejected(now_ms)
            && !self.check_failing()
    }

    /// Taken out by passive health (cool-down or ejection), which the
    /// upstream's ejection cap counts.
    pub fn passively_out(&self, now_ms: u64) -> bool {
        self.down_until_ms.load(Relaxed) > now_ms || self.outlier.ejected(now_ms)
    }

    pub fn check_failing(&self) -> bool {
        self.check_failing.load(Relaxed)
    }

    /// Records the active check's verdict; true when it changed.
    pub fn set_check_failing(&self, failing: bool) -> bool {
        self.check_failing.swap(failing, Relaxed) != failing
    }

    /// An active check passed: the connect cool-down ends too.
    pub fn end_cool_down(&self) {
        self.failures.store(0, Relaxed);
        self.down_until_ms.store(0, Relaxed);
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Relaxed)
    }

    pub fn latency_ewma_us(&self) -> u32 {
        self.ewma_us.load(Relaxed)
    }

    pub fn start(self: &std::sync::Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }

    /// An answer arrived after `latency`: the endpoint is healthy.
    pub fn succeeded(&self, latency: Duration) {
        let sample = latency.as_micros().min(u128::from(u32::MAX)) as u64;
        let _ = self.ewma_us.fetch_update(Relaxed, Relaxed, |old| {
            let old = u64::from(old);
            let new = if old == 0 {
                sample
            } else {
                (old * (16 - EWMA_NEW_SIXTEENTHS) + sample * EWMA_NEW_SIXTEENTHS) / 16
            };
            Some(new.max(1) as u32)
        });
        self.failures.store(0, Relaxed);
        self.down_until_ms.store(0, Relaxed);
    }

    /// The endpoint reported its own load (ORCA); averaged like latency.
    pub fn load_reported(&self, cpu: Option<f64>, mem: Option<f64>) {
        for (cell, v) in [(&self.cpu_load, cpu), (&self.mem_load, mem)] {
            let Some(v) = v.filter(|v| v.is_finite() && *v >= 0.0) else {
                continue;
            };
            let sample = (v * 1e6).min(f64::from(u32::MAX - 1)) as u64;
            let _ = cell.fetch_update(Relaxed, Relaxed, |old| {
                let new = match old {
                    0 => sample,
                    old => {
                        let old = u64::from(old - 1);
                        (old * (16 - EWMA_NEW_SIXTEENTHS) + sample * EWMA_NEW_SIXTEENTHS) / 16
                    }
                };
                Some(new as u32 + 1)
            });
        }
    }

    /// The averaged ORCA CPU and memory utilisation, fractions; `None`
    /// until the endpoint reports.
    pub fn load(&self) -> (Option<f32>, Option<f32>) {
        let read = |cell: &AtomicU32| match cell.load(Relaxed) {
            0 => None,
            v => Some((f64::from(v - 1) / 1e6) as f32),
        };
        (read(&self.cpu_load), read(&self.mem_load))
    }

    /// A connection could not be made. Returns true when this takes it out.
    pub fn connect_failed(&self, now_ms: u64, cool_down: Duration) -> bool {
        let n = self.failures.fetch_add(1, Relaxed) + 1;
        if n >= FAILURES_TO_DOWN {
            let until = now_ms.saturating_add(cool_down.as_millis() as u64);
            self.down_until_ms.fetch_max(until, Relaxed) <= now_ms
        } else {
            false
        }
    }
}

/// Milliseconds on the process-wide clock health deadlines are kept on. One
/// clock for the process, so endpoint stats carried across a reload keep
/// meaning the same instants. Never 0, so "down until 0" always means healthy.
pub fn now_ms() -> u64 {
    static ZERO: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ZERO.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// FNV-1a, 64-bit: the stable endpoint key the WIT promises (same address,
/// same key, on every node).
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL_DOWN: Duration = Duration::from_secs(10);

    #[test]
    fn failure_takes_out_and_success_restores() {
        let s = EndpointStats::default();
        assert!(s.healthy(5));
        assert!(s.connect_failed(5, COOL_DOWN));
        assert!(!s.healthy(6));
        assert!(s.healthy(5 + COOL_DOWN.as_millis() as u64));
        s.succeeded(Duration::from_millis(3));
        assert!(s.healthy(6));
        assert_eq!(s.latency_ewma_us(), 3000);
        s.succeeded(Duration::from_millis(7));
        assert_eq!(s.latency_ewma_us(), 4000);
    }

    #[test]
    fn load_reports_are_averaged() {
        let s = EndpointStats::default();
        assert_eq!(s.load(), (None, None));
        s.load_reported(Some(0.8), None);
        assert_eq!(s.load(), (Some(0.8), None));
        s.load_reported(Some(0.4), Some(0.5));
        let (cpu, mem) = s.load();
        assert!((cpu.unwrap() - 0.7).abs() < 1e-6, "{cpu:?}");
        assert_eq!(mem, Some(0.5));
        s.load_reported(Some(f64::NAN), None);
        assert!((s.load().0.unwrap() - 0.7).abs() < 1e-6);
    }

    #[test]
    fn in_flight_is_released_on_drop() {
        let s = std::sync::Arc::new(EndpointStats::default());
        let a = s.start();
        let _b = s.start();
        assert_eq!(s.in_flight(), 2);
        drop(a);
        assert_eq!(s.in_flight(), 1);
    }

    #[test]
    fn fnv1a_matches_the_reference() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
