//! Metrics plugins define through the host `metrics` interface: counters,
//! gauges and histograms named by the plugin, one series per upstream the
//! call was for. A store lives per plugin name and is carried across reloads
//! (counters stay monotonic); `/metrics` reads it at scrape time and the scale
//! loop at every evaluation.
//!
//! Cardinality is bounded by construction: at most [`MAX_METRICS`] names per
//! plugin, and the only label is the upstream, which the config bounds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

use crate::metrics::{DefinedKind, DefinedMetric, DefinedSample, DefinedSeries, DefinedValue};

/// Metrics one plugin may define.
pub const MAX_METRICS: usize = 32;
/// Longest metric name, bytes.
pub const MAX_NAME: usize = 64;
/// Suffixes the exposition adds itself; a name ending in one would clash.
const RESERVED_SUFFIXES: [&str; 4] = ["_total", "_bucket", "_count", "_sum"];

/// Upper bounds of every plugin histogram: 1-2.5-5 steps, 0.001 to 10 000.
pub const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0,
    100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// Why a metric was not recorded (the WIT's `metric-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    #[error("invalid metric name")]
    InvalidName,
    #[error("the name is a metric of another kind")]
    WrongKind,
    #[error("the plugin already has {MAX_METRICS} metrics")]
    TooMany,
    #[error("invalid value")]
    InvalidValue,
}

/// Whether `name` may name a metric: `[a-z][a-z0-9_]*`, at most
/// [`MAX_NAME`] bytes, no reserved suffix.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && !RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s))
}

#[derive(Debug)]
enum Series {
    Counter(AtomicU64),
    /// `f64` bits.
    Gauge(AtomicU64),
    Histogram(Hist),
}

#[derive(Debug)]
struct Hist {
    /// One per bound plus `+Inf`; not cumulative.
    buckets: Box<[AtomicU64]>,
    /// `f64` bits.
    sum: AtomicU64,
}

impl Series {
    fn new(kind: DefinedKind) -> Self {
        match kind {
            DefinedKind::Counter => Self::Counter(AtomicU64::new(0)),
            DefinedKind::Gauge => Self::Gauge(AtomicU64::new(0f64.to_bits())),
            DefinedKind::Histogram => Self::Histogram(Hist {
                buckets: (0..=BUCKETS.len()).map(|_| AtomicU64::new(0)).collect(),
                sum: AtomicU64::new(0f64.to_bits()),
            }),
        }
    }

    fn value(&self) -> DefinedValue {
        match self {
            Self::Counter(n) => DefinedValue::Counter(n.load(Relaxed)),
            Self::Gauge(g) => DefinedValue::Gauge(f64::from_bits(g.load(Relaxed))),
            Self::Histogram(h) => {
                let buckets: Vec<(f64, u64)> = BUCKETS
                    .iter()
                    .copied()
                    .chain([f64::INFINITY])
                    .zip(h.buckets.iter().map(|b| b.load(Relaxed)))
                    .collect();
                DefinedValue::Histogram {
                    count: buckets.iter().map(|(_, n)| n).sum(),
                    buckets,
                    sum: f64::from_bits(h.sum.load(Relaxed)),
                }
            }
        }
    }
}

fn add_f64(cell: &AtomicU64, delta: f64) {
    let _ = cell.fetch_update(Relaxed, Relaxed, |old| {
        Some((f64::from_bits(old) + delta).to_bits())
    });
}

#[derive(Debug)]
struct Metric {
    kind: DefinedKind,
    /// By upstream name; `""` when the call was for no upstream (`init`).
    series: RwLock<BTreeMap<Arc<str>, Arc<Series>>>,
}

/// One plugin's metrics.
#[derive(Debug)]
pub struct CustomMetrics {
    plugin: String,
    metrics: RwLock<BTreeMap<String, Arc<Metric>>>,
    errors: AtomicU64,
}

/// What a call changes.
#[derive(Debug, Clone, Copy)]
pub enum Update {
    CounterAdd(u64),
    GaugeSet(f64),
    GaugeAdd(f64),
    Observe(f64),
}

impl Update {
    fn kind(self) -> DefinedKind {
        match self {
            Self::CounterAdd(_) => DefinedKind::Counter,
            Self::GaugeSet(_) | Self::GaugeAdd(_) => DefinedKind::Gauge,
            Self::Observe(_) => DefinedKind::Histogram,
        }
    }
}

impl CustomMetrics {
    pub fn new(plugin: &str) -> Self {
        Self {
            plugin: plugin.to_owned(),
            metrics: RwLock::default(),
            errors: AtomicU64::new(0),
        }
    }

    /// Applies `update` to metric `name`'s series for `upstream`, creating
    /// them on first use. A refusal changes nothing and is counted.
    pub fn record(
        &self,
        name: &str,
        upstream: &Arc<str>,
        update: Update,
    ) -> Result<(), MetricError> {
        let r = self.apply(name, upstream, update);
        if r.is_err() {
            self.errors.fetch_add(1, Relaxed);
        }
        r
    }

    fn apply(&self, name: &str, upstream: &Arc<str>, update: Update) -> Result<(), MetricError> {
        match update {
            Update::GaugeSet(v) | Update::GaugeAdd(v) | Update::Observe(v) if !v.is_finite() => {
                return Err(MetricError::InvalidValue);
            }
            _ => {}
        }
        let metric = self.metric(name, update.kind())?;
        let series = {
            let found = metric
                .series
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(upstream)
                .cloned();
            match found {
                Some(s) => s,
                None => metric
                    .series
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(upstream.clone())
                    .or_insert_with(|| Arc::new(Series::new(metric.kind)))
                    .clone(),
            }
        };
        match (&*series, update) {
            (Series::Counter(n), Update::CounterAdd(d)) => n
                .fetch_update(Relaxed, Relaxed, |old| old.checked_add(d))
                .map(|_| ())
                .map_err(|_| MetricError::InvalidValue),
            (Series::Gauge(g), Update::GaugeSet(v)) => {
                g.store(v.to_bits(), Relaxed);
                Ok(())
            }
            (Series::Gauge(g), Update::GaugeAdd(d)) => {
                add_f64(g, d);
                Ok(())
            }
            (Series::Histogram(h), Update::Observe(v)) => {
                let i = BUCKETS.partition_point(|b| *b < v);
                h.buckets[i].fetch_add(1, Relaxed);
                add_f64(&h.sum, v);
                Ok(())
            }
            _ => Err(MetricError::WrongKind),
        }
    }

    fn metric(&self, name: &str, kind: DefinedKind) -> Result<Arc<Metric>, MetricError> {
        let found = self
            .metrics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        let metric = match found {
            Some(m) => m,
            None => {
                if !valid_name(name) {
                    return Err(MetricError::InvalidName);
                }
                let mut all = self.metrics.write().unwrap_or_else(|p| p.into_inner());
                if !all.contains_key(name) && all.len() >= MAX_METRICS {
                    return Err(MetricError::TooMany);
                }
                all.entry(name.to_owned())
                    .or_insert_with(|| {
                        Arc::new(Metric {
                            kind,
                            series: RwLock::default(),
                        })
                    })
                    .clone()
            }
        };
        if metric.kind != kind {
            return Err(MetricError::WrongKind);
        }
        Ok(metric)
    }

    /// Everything now, for `/metrics` and the scale loop.
    pub fn sample(&self) -> DefinedSample {
        let metrics = self.metrics.read().unwrap_or_else(|p| p.into_inner());
        DefinedSample {
            plugin: self.plugin.clone(),
            errors: self.errors.load(Relaxed),
            metrics: metrics
                .iter()
                .map(|(name, m)| DefinedMetric {
                    name: name.clone(),
                    kind: m.kind,
                    series: m
                        .series
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                        .map(|(u, s)| DefinedSeries {
                            upstream: u.to_string(),
                            value: s.value(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl super::Plugins {
    /// Every loaded plugin's own metrics, for `NodeMetrics::set_defined_source`
    /// and the scale snapshots.
    pub fn defined_samples(&self) -> Vec<DefinedSample> {
        self.custom.iter().map(|m| m.sample()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    #[test]
    fn names_are_checked() {
        for ok in ["orders", "a", "orders_per_second", "p95_ms2"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "Orders",
            "1x",
            "_x",
            "a-b",
            "a.b",
            "orders_total",
            "x_sum",
            "x_count",
            "x_bucket",
            &"a".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn series_per_upstream_and_kinds_are_kept_apart() {
        let m = CustomMetrics::new("shop");
        let (a, b) = (up("a"), up("b"));
        m.record("orders", &a, Update::CounterAdd(2)).unwrap();
        m.record("orders", &a, Update::CounterAdd(3)).unwrap();
        m.record("orders", &b, Update::CounterAdd(1)).unwrap();
        assert_eq!(
            m.record("orders", &a, Update::GaugeSet(1.0)),
            Err(MetricError::WrongKind)
        );
        assert_eq!(
            m.record("Bad", &a, Update::CounterAdd(1)),
            Err(MetricError::InvalidName)
        );
        assert_eq!(
            m.record("g", &a, Update::GaugeSet(f64::NAN)),
            Err(MetricError::InvalidValue)
        );
        m.record("g", &a, Update::GaugeSet(2.5)).unwrap();
        m.record("g", &a, Update::GaugeAdd(-1.0)).unwrap();
        m.record("lat", &a, Update::Observe(0.001)).unwrap();
        m.record("lat", &a, Update::Observe(7.0)).unwrap();
        m.record("lat", &a, Update::Observe(1e9)).unwrap();
        let s = m.sample();
        assert_eq!(s.errors, 3);
        let get = |name: &str, u: &str| {
            s.metrics
                .iter()
                .find(|x| x.name == name)
                .and_then(|x| x.series.iter().find(|s| s.upstream == u))
                .map(|s| s.value.clone())
        };
        assert_eq!(get("orders", "a"), Some(DefinedValue::Counter(5)));
        assert_eq!(get("orders", "b"), Some(DefinedValue::Counter(1)));
        assert_eq!(get("g", "a"), Some(DefinedValue::Gauge(1.5)));
        let Some(DefinedValue::Histogram {
            buckets,
            sum,
            count,
        }) = get("lat", "a")
        else {
            panic!("no histogram")
        };
        assert_eq!(count, 3);
        assert!((sum - (1e9 + 7.001)).abs() < 1e-3);
        assert_eq!(buckets[0], (0.001, 1), "a bound is inclusive");
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
    }

    #[test]
    fn the_number_of_metrics_is_bounded() {
        let m = CustomMetrics::new("p");
        let u = up("");
        for i in 0..MAX_METRICS {
            m.record(&format!("m{i}"), &u, Update::CounterAdd(1))
                .unwrap();
        }
        assert_eq!(
            m.record("one_more", &u, Update::CounterAdd(1)),
            Err(MetricError::TooMany)
        );
        // An existing one still counts.
        m.record("m0", &u, Update::CounterAdd(1)).unwrap();
        assert_eq!(
            m.record("m0", &u, Update::CounterAdd(u64::MAX)),
            Err(MetricError::InvalidValue)
        );
    }
}
