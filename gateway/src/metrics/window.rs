//! Sliding windows of one-second buckets, read by the scale-signal loop.
//!
//! Each upstream service has a [`Window`]: a ring of one-second slots, each with
//! a request count, an error count (5xx, including failed attempts) and a
//! log-scale latency histogram. Writers never lock: a slot carries the second it
//! holds, and the first writer of a new second resets the stale slot it finds.
//! Writes that race that reset within the same few nanoseconds may be lost;
//! nothing else is. Readers merge the slots of the seconds they ask for.
//!
//! Time is passed in (`now: Instant`), so the window is tested with a fake clock;
//! [`Clock`] lets the owners of windows inject one too.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

/// Where the metrics take the time from; tests inject a fake one.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

/// [`Instant::now`].
#[derive(Debug, Default, Clone, Copy)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Geometric latency buckets per slot, from [`LATENCY_MIN`] to [`LATENCY_MAX`].
pub const LATENCY_SLOTS: usize = 64;
/// Upper bound of the first latency bucket; faster answers count in it.
pub const LATENCY_MIN: Duration = Duration::from_micros(50);
/// Upper bound of the last latency bucket; slower answers count in it.
pub const LATENCY_MAX: Duration = Duration::from_secs(60);

/// Bucket upper bounds in nanoseconds: `MIN * r^i`, `r = (MAX/MIN)^(1/63)` (~1.25,
/// so an estimate is within about 12 % of the truth once interpolated).
static BOUNDS_NS: LazyLock<[u64; LATENCY_SLOTS]> = LazyLock::new(|| {
    let (min, max) = (LATENCY_MIN.as_nanos() as f64, LATENCY_MAX.as_nanos() as f64);
    let ratio = (max / min).powf(1.0 / (LATENCY_SLOTS - 1) as f64);
    let mut b = [0u64; LATENCY_SLOTS];
    for (i, v) in b.iter_mut().enumerate() {
        *v = (min * ratio.powi(i as i32)).round() as u64;
    }
    b[LATENCY_SLOTS - 1] = LATENCY_MAX.as_nanos() as u64;
    b
});

fn latency_index(d: Duration) -> usize {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    BOUNDS_NS
        .partition_point(|b| *b < ns)
        .min(LATENCY_SLOTS - 1)
}

/// Marks a slot while its first writer of a new second zeroes it.
const RESETTING: u64 = u64::MAX;

struct Slot {
    /// The second (since the window's epoch) this slot holds, plus one; 0 = never used.
    stamp: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    latency: [AtomicU32; LATENCY_SLOTS],
}

impl Slot {
    fn new() -> Self {
        Self {
            stamp: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

/// Per-second request, error and latency counts over the last `capacity` seconds.
pub struct Window {
    epoch: Instant,
    /// `capacity + 1` slots: the second being written plus `capacity` complete ones.
    slots: Box<[Slot]>,
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("capacity_secs", &(self.slots.len() - 1))
            .finish_non_exhaustive()
    }
}

/// What a window saw over the complete seconds asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowSnapshot {
    /// Whole seconds covered (fewer than asked for when the window is younger).
    pub seconds: u64,
    /// Requests (upstream attempts) finished in those seconds.
    pub requests: u64,
    /// Of those, 5xx answers, including attempts that failed (502, 504).
    pub errors: u64,
    /// `requests / seconds`; 0 when no second is covered.
    pub rate_per_sec: f64,
    /// `errors / requests`, a fraction in 0..=1; 0 when there were no requests.
    pub error_rate: f64,
    /// Latency percentiles of those requests; `None` without any.
    pub p50: Option<Duration>,
    pub p95: Option<Duration>,
    pub p99: Option<Duration>,
    latency: [u64; LATENCY_SLOTS],
}

impl Window {
    /// A window keeping `capacity` complete seconds (rounded down, at least 1),
    /// counting seconds from `epoch`.
    pub fn new(epoch: Instant, capacity: Duration) -> Self {
        let secs = capacity.as_secs().max(1) as usize;
        Self {
            epoch,
            slots: (0..=secs).map(|_| Slot::new()).collect(),
        }
    }

    /// Complete seconds this window can report.
    pub fn capacity(&self) -> Duration {
        Duration::from_secs(self.slots.len() as u64 - 1)
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// The slot for `now`'s second, reset first if it still holds an older second;
    /// `None` if it already holds a newer one (`now` is older than the ring).
    fn slot(&self, now: Instant) -> Option<&Slot> {
        let sec = self.second(now);
        let stamp = sec + 1;
        let slot = &self.slots[(sec % self.slots.len() as u64) as usize];
        let mut seen = slot.stamp.load(Ordering::Acquire);
        loop {
            if seen == stamp || seen == RESETTING {
                // RESETTING: another writer is zeroing it for (almost surely) this
                // second; an addition made before its zeroing ends is the tolerated loss.
                return Some(slot);
            }
            if seen > stamp {
                return None;
            }
            if seen == 0 {
                // Never used: already zero, so publish the second without a reset.
                match slot.stamp.compare_exchange_weak(
                    0,
                    stamp,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Some(slot),
                    Err(actual) => {
                        seen = actual;
                        continue;
                    }
                }
            }
            match slot.stamp.compare_exchange_weak(
                seen,
                RESETTING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    slot.requests.store(0, Ordering::Relaxed);
                    slot.errors.store(0, Ordering::Relaxed);
                    for l in &slot.latency {
                        l.store(0, Ordering::Relaxed);
                    }
                    slot.stamp.store(stamp, Ordering::Release);
                    return Some(slot);
                }
                Err(actual) => seen = actual,
            }
        }
    }

    /// Counts one request: its latency, and an error if `error` (a 5xx).
    pub fn record(&self, now: Instant, latency: Duration, error: bool) {
        let Some(slot) = self.slot(now) else { return };
        slot.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
        slot.latency[latency_index(latency)].fetch_add(1, Ordering::Relaxed);
    }

    /// Merges the `last` complete seconds before `now`'s (rounded down to whole
    /// seconds, at least 1, at most [`Window::capacity`]). The second `now` is in
    /// is still filling and is left out, so a rate is never diluted by it.
    pub fn snapshot(&self, now: Instant, last: Duration) -> WindowSnapshot {
        let cur = self.second(now);
        let want = last
            .as_secs()
            .clamp(1, self.slots.len() as u64 - 1)
            .min(cur);
        let (mut requests, mut errors) = (0u64, 0u64);
        let mut latency = [0u64; LATENCY_SLOTS];
        let mut one = [0u64; LATENCY_SLOTS];
        for sec in cur - want..cur {
            let slot = &self.slots[(sec % self.slots.len() as u64) as usize];
            if slot.stamp.load(Ordering::Acquire) != sec + 1 {
                continue; // never written in that second (or already recycled)
            }
            let r = slot.requests.load(Ordering::Relaxed);
            let e = slot.errors.load(Ordering::Relaxed);
            for (o, l) in one.iter_mut().zip(&slot.latency) {
                *o = u64::from(l.load(Ordering::Relaxed));
            }
            fence(Ordering::Acquire);
            if slot.stamp.load(Ordering::Relaxed) != sec + 1 {
                continue; // recycled while read
            }
            requests += r;
            errors += e;
            for (m, o) in latency.iter_mut().zip(&one) {
                *m += o;
            }
        }
        let mut s = WindowSnapshot {
            seconds: want,
            requests,
            errors,
            rate_per_sec: if want == 0 {
                0.0
            } else {
                requests as f64 / want as f64
            },
            error_rate: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
            p50: None,
            p95: None,
            p99: None,
            latency,
        };
        s.p50 = s.quantile(0.50);
        s.p95 = s.quantile(0.95);
        s.p99 = s.quantile(0.99);
        s
    }
}

impl WindowSnapshot {
    /// The `q`-quantile (0..=1) of the requests' latency, interpolated
    /// geometrically inside its bucket; `None` without any request.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut before = 0u64;
        for (i, &n) in self.latency.iter().enumerate() {
            if n == 0 || ((before + n) as f64) < rank {
                before += n;
                continue;
            }
            let frac = ((rank - before as f64) / n as f64).clamp(0.0, 1.0);
            let hi = BOUNDS_NS[i] as f64;
            let ns = if i == 0 {
                hi * frac
            } else {
                let lo = BOUNDS_NS[i - 1] as f64;
                lo * (hi / lo).powf(frac)
            };
            return Some(Duration::from_nanos(ns.round() as u64));
        }
        Some(LATENCY_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    fn at(t0: Instant, secs: f64) -> Instant {
        t0 + Duration::from_secs_f64(secs)
    }

    #[test]
    fn buckets_span_50us_to_60s_geometrically() {
        assert_eq!(BOUNDS_NS[0], 50_000);
        assert_eq!(BOUNDS_NS[LATENCY_SLOTS - 1], 60_000_000_000);
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(latency_index(Duration::ZERO), 0);
        assert_eq!(latency_index(LATENCY_MIN), 0);
        assert_eq!(latency_index(LATENCY_MIN + Duration::from_nanos(1)), 1);
        assert_eq!(latency_index(Duration::from_secs(3600)), LATENCY_SLOTS - 1);
    }

    #[test]
    fn rate_and_error_rate_over_complete_seconds() {
        let t0 = Instant::now();
        let w = Window::new(t0, Duration::from_secs(300));
        for sec in 0..10 {
            for i in 0..10 {
                // one 5xx per second
                w.record(at(t0, sec as f64 + 0.05 * i as f64), 10 * MS, i == 0);
            }
        }
        // The current second (10) is still filling and is not counted.
        w.record(at(t0, 10.2), 10 * MS, true);
        let s = w.snapshot(at(t0, 10.5), 5 * S);
        assert_eq!((s.seconds, s.requests, s.errors), (5, 50, 5));
        assert_eq!(s.rate_per_sec, 10.0);
        assert!((s.error_rate - 0.1).abs() < 1e-12);
        // Asking for more than exists covers only the seconds since the epoch.
        let s = w.snapshot(at(t0, 10.5), 60 * S);
        assert_eq!((s.seconds, s.requests), (10, 100));
        assert_eq!(s.rate_per_sec, 10.0);
    }

    #[test]
    fn empty_window_reports_zeroes_and_no_percentiles() {
        let t0 = Instant::now();
        let w = Window::new(t0, Duration::from_secs(60));
        let s = w.snapshot(t0, 10 * S);
        assert_eq!((s.seconds, s.requests, s.errors), (0, 0, 0));
        assert_eq!((s.rate_per_sec, s.error_rate), (0.0, 0.0));
        assert_eq!((s.p50, s.p95, s.p99), (None, None, None));
    }

    #[test]
    fn percentiles_are_close_to_the_truth() {
        let t0 = Instant::now();
        let w = Window::new(t0, Duration::from_secs(60));
        // 1 ms .. 1000 ms uniformly: p50 ≈ 500 ms, p95 ≈ 950 ms, p99 ≈ 990 ms.
        for i in 1..=1000u64 {
            w.record(at(t0, (i % 10) as f64), Duration::from_millis(i), false);
        }
        let s = w.snapshot(at(t0, 10.0), 10 * S);
        let near = |got: Option<Duration>, want_ms: f64| {
            let got = got.unwrap().as_secs_f64() * 1e3;
            assert!(
                (got - want_ms).abs() / want_ms < 0.13,
                "{got} ms vs {want_ms} ms"
            );
        };
        near(s.p50, 500.0);
        near(s.p95, 950.0);
        near(s.p99, 990.0);
        near(s.quantile(0.10), 100.0);
        assert!(s.p50 < s.p95 && s.p95 <= s.p99);
    }

    #[test]
    fn one_sample_percentile_stays_inside_its_bucket() {
        let t0 = Instant::now();
        let w = Window::new(t0, Duration::from_secs(60));
        w.record(t0, Duration::from_micros(20), false);
        let s = w.snapshot(at(t0, 1.0), S);
        assert!(s.p50.unwrap() <= LATENCY_MIN);
        let w = Window::new(t0, Duration::from_secs(60));
        w.record(t0, Duration::from_secs(600), false);
        let s = w.snapshot(at(t0, 1.0), S);
        assert!(s.p99.unwrap() <= LATENCY_MAX);
    }

    #[test]
    fn ring_wraps_and_stale_seconds_are_reset_or_ignored() {
        let t0 = Instant::now();
        let w = Window::new(t0, Duration::from_secs(10)); // 11 slots
        assert_eq!(w.capacity(), 10 * S);
        // Seconds 0..25: second n gets n requests.
        for sec in 0..25u64 {
            for _ in 0..sec {
                w.record(at(t0, sec as f64 + 0.5), MS, false);
            }
        }
        // Last 10 complete seconds before 25: 15..=24.
        let s = w.snapshot(at(t0, 25.0), 10 * S);
        assert_eq!((s.seconds, s.requests), (10, (15..25).sum::<u64>()));
        // More than the capacity is clamped to it.
        let s = w.snapshot(at(t0, 25.0), 100 * S);
        assert_eq!(s.seconds, 10);
        // Much later, slots still hold seconds of an older lap: none is counted.
        let s = w.snapshot(at(t0, 100.0), 10 * S);
        assert_eq!((s.seconds, s.requests), (10, 0));
        // Writing into a slot of an older lap resets it first.
        w.record(at(t0, 100.5), MS, true);
        let s = w.snapshot(at(t0, 101.0), S);
        assert_eq!((s.requests, s.errors), (1, 1));
        // A write older than the ring (its slot holds a newer second) is dropped.
        w.record(at(t0, 89.5), MS, true);
        let s = w.snapshot(at(t0, 101.0), S);
        assert_eq!((s.requests, s.errors), (1, 1));
    }

    #[test]
    fn concurrent_writers_in_one_second_lose_nothing() {
        let t0 = Instant::now();
        let w = std::sync::Arc::new(Window::new(t0, Duration::from_secs(60)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u32 {
                        w.record(at(t0, 3.5), Duration::from_micros(u64::from(i)), i % 4 == 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = w.snapshot(at(t0, 4.0), S);
        assert_eq!((s.requests, s.errors), (40_000, 10_000));
    }
}
