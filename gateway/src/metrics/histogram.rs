//! A lock-free histogram with fixed bucket bounds, encoded by prometheus-client.
//!
//! `prometheus_client::metrics::histogram::Histogram` takes a write lock on every
//! `observe`; this one costs two relaxed atomic additions (the bucket and the
//! sum). The sum is kept in integer microseconds, which wraps only after
//! 584 000 years of accumulated latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds (seconds) of the latency buckets every duration histogram uses:
/// 0.5 ms to 30 s, 15 bounds, plus the implicit `+Inf`.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A duration histogram. Clones share the same counters (it is an `Arc`), so a
/// handle resolved once at setup is what the request path observes into.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Upper bounds in seconds, as exposed in `le`.
    bounds: &'static [f64],
    /// The same bounds in nanoseconds, for an integer comparison per observation.
    bounds_ns: Box<[u64]>,
    /// One counter per bound plus the overflow (`+Inf`) bucket; not cumulative.
    buckets: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

/// What a histogram held at one moment, with cumulative semantics left to the
/// encoder: `buckets[i]` counts observations in `(bounds[i-1], bounds[i]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations in that bucket)`; the last bound is
    /// `f64::INFINITY`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of all observations, in seconds (microsecond resolution).
    pub sum: f64,
    /// Number of observations: the sum of the buckets, so `_count` always equals
    /// the `+Inf` bucket even while writers race the scrape.
    pub count: u64,
}

impl Histogram {
    /// A histogram over `bounds` (seconds, strictly increasing, finite).
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        debug_assert!(bounds.iter().all(|b| b.is_finite() && *b >= 0.0));
        Self(Arc::new(Inner {
            bounds,
            bounds_ns: bounds.iter().map(|b| (b * 1e9).round() as u64).collect(),
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }))
    }

    /// A histogram over [`LATENCY_BUCKETS`].
    pub fn latency() -> Self {
        Self::new(LATENCY_BUCKETS)
    }

    /// Records one duration: an observation equal to a bound counts in that
    /// bound's bucket (`le` is inclusive).
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = self.0.bounds_ns.partition_point(|b| *b < ns);
        self.0.buckets[i].fetch_add(1, Relaxed);
        self.0
            .sum_us
            .fetch_add(ns.saturating_add(500) / 1000, Relaxed);
    }

    /// Observations so far (reads every bucket; for tests and the scrape).
    pub fn count(&self) -> u64 {
        self.0.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The counters as they are now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let inner = &self.0;
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(inner.buckets.iter().map(|b| b.load(Relaxed)))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().map(|(_, n)| n).sum(),
            sum: inner.sum_us.load(Relaxed) as f64 / 1e6,
            buckets,
        }
    }
}

impl Default for Histogram {
    /// A latency histogram, so `Family<_, Histogram>` can build one per label set.
    fn default() -> Self {
        Self::latency()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let s = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(s.sum, s.count, &s.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::prometheus_text::encode;
    use prometheus_client::registry::Registry;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn observations_land_in_the_right_bucket_inclusive_upper_bound() {
        let h = Histogram::latency();
        h.observe(Duration::ZERO); // le=0.0005
        h.observe(Duration::from_micros(500)); // exactly on a bound: le=0.0005
        h.observe(Duration::from_micros(501)); // le=0.001
        h.observe(7 * MS); // le=0.01
        h.observe(Duration::from_secs(30)); // le=30
        h.observe(Duration::from_secs(31)); // +Inf
        let s = h.snapshot();
        assert_eq!(s.buckets.len(), LATENCY_BUCKETS.len() + 1);
        let at = |le: f64| s.buckets.iter().find(|(b, _)| *b == le).unwrap().1;
        assert_eq!(at(0.0005), 2);
        assert_eq!(at(0.001), 1);
        assert_eq!(at(0.0025), 0);
        assert_eq!(at(0.01), 1);
        assert_eq!(at(30.0), 1);
        assert_eq!(at(f64::INFINITY), 1);
        assert_eq!(s.count, 6);
        assert_eq!(h.count(), 6);
        // 0 + 0.0005 + 0.000501 + 0.007 + 30 + 31
        assert!((s.sum - 61.008001).abs() < 1e-9, "{}", s.sum);
    }

    #[test]
    fn clones_share_counters() {
        let h = Histogram::latency();
        h.clone().observe(MS);
        assert_eq!(h.count(), 1);
    }

    #[test]
    fn exposition_is_cumulative_with_inf_sum_and_count() {
        let h = Histogram::new(&[0.1, 1.0]);
        let mut r = Registry::default();
        r.register("lat_seconds", "Latency", h.clone());
        h.observe(50 * MS);
        h.observe(50 * MS);
        h.observe(500 * MS);
        h.observe(Duration::from_secs(2));
        let mut text = String::new();
        encode(&mut text, &r).unwrap();
        assert_eq!(
            text,
            "# HELP lat_seconds Latency.\n\
             # TYPE lat_seconds histogram\n\
             lat_seconds_bucket{le=\"0.1\"} 2\n\
             lat_seconds_bucket{le=\"1\"} 3\n\
             lat_seconds_bucket{le=\"+Inf\"} 4\n\
             lat_seconds_sum 2.6\n\
             lat_seconds_count 4\n"
        );
    }

    #[test]
    fn huge_durations_saturate_instead_of_panicking() {
        let h = Histogram::latency();
        h.observe(Duration::MAX);
        assert_eq!(h.snapshot().buckets.last().unwrap().1, 1);
    }
}
