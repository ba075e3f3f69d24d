//! Plugins' own metrics (host `metrics`) in a service's snapshot: the series
//! recorded for the service's upstream, read at each evaluation and turned
//! into one number each — a counter's increase per second and a histogram's
//! mean over the window (from the readings the loop kept), a gauge as it is.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::metrics::{DefinedKind, DefinedSample, DefinedValue};

/// A custom metric as `/admin/scale` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomValue {
    pub kind: &'static str,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reading {
    Counter(u64),
    Gauge(f64),
    Histogram { sum: f64, count: u64 },
}

/// One service's earlier readings, oldest first.
#[derive(Debug, Default)]
pub struct History {
    readings: VecDeque<(Instant, BTreeMap<String, Reading>)>,
}

fn kind_name(k: DefinedKind) -> &'static str {
    match k {
        DefinedKind::Counter => "counter",
        DefinedKind::Gauge => "gauge",
        DefinedKind::Histogram => "histogram",
    }
}

impl History {
    /// Reads `upstream`'s series from `samples` at `now` and returns each
    /// metric's value over `window`, by `<plugin>/<name>`.
    pub fn update(
        &mut self,
        samples: &[DefinedSample],
        upstream: &str,
        now: Instant,
        window: Duration,
    ) -> BTreeMap<String, CustomValue> {
        let mut current = BTreeMap::new();
        let mut kinds = BTreeMap::new();
        for s in samples {
            for m in &s.metrics {
                let Some(series) = m.series.iter().find(|x| x.upstream == upstream) else {
                    continue;
                };
                let name = format!("{}/{}", s.plugin, m.name);
                let r = match &series.value {
                    DefinedValue::Counter(n) => Reading::Counter(*n),
                    DefinedValue::Gauge(v) => Reading::Gauge(*v),
                    DefinedValue::Histogram { sum, count, .. } => Reading::Histogram {
                        sum: *sum,
                        count: *count,
                    },
                };
                kinds.insert(name.clone(), kind_name(m.kind));
                current.insert(name, r);
            }
        }
        // The oldest reading still inside the window is the base; one just
        // outside it stays so that a window of exactly one interval has one.
        while self.readings.len() > 1 && self.readings[1].0 + window <= now {
            self.readings.pop_front();
        }
        let base = self.readings.front();
        let out = current
            .iter()
            .map(|(name, r)| {
                // A metric the base reading lacks was created since, at 0.
                let before = base.map(|(t, m)| (*t, m.get(name).copied().unwrap_or(zero(*r))));
                let value = value(*r, before, now);
                (
                    name.clone(),
                    CustomValue {
                        kind: kinds[name],
                        value,
                    },
                )
            })
            .collect();
        self.readings.push_back((now, current));
        out
    }
}

fn zero(like: Reading) -> Reading {
    match like {
        Reading::Counter(_) => Reading::Counter(0),
        Reading::Gauge(_) => Reading::Gauge(0.0),
        Reading::Histogram { .. } => Reading::Histogram { sum: 0.0, count: 0 },
    }
}

/// What `now`'s reading says against the base reading `before`.
fn value(now_r: Reading, before: Option<(Instant, Reading)>, now: Instant) -> f64 {
    match (now_r, before) {
        (Reading::Gauge(v), _) => v,
        (Reading::Counter(n), Some((t, Reading::Counter(b)))) => {
            let secs = now.saturating_duration_since(t).as_secs_f64();
            // A smaller count is a reset (the plugin was reloaded away and back).
            let delta = if n >= b { n - b } else { n };
            if secs > 0.0 { delta as f64 / secs } else { 0.0 }
        }
        (
            Reading::Histogram { sum, count },
            Some((_, Reading::Histogram { sum: s0, count: c0 })),
        ) if count > c0 => (sum - s0) / (count - c0) as f64,
        // No earlier reading: a histogram's mean so far, a counter's rate unknown.
        (Reading::Histogram { sum, count }, None) if count > 0 => sum / count as f64,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{DefinedMetric, DefinedSeries};

    fn sample(orders: u64, gauge: f64, hist: (f64, u64)) -> Vec<DefinedSample> {
        let series = |value| {
            vec![
                DefinedSeries {
                    upstream: "other".into(),
                    value: DefinedValue::Counter(999),
                },
                DefinedSeries {
                    upstream: "svc".into(),
                    value,
                },
            ]
        };
        vec![DefinedSample {
            plugin: "shop".into(),
            errors: 0,
            metrics: vec![
                DefinedMetric {
                    name: "orders".into(),
                    kind: DefinedKind::Counter,
                    series: series(DefinedValue::Counter(orders)),
                },
                DefinedMetric {
                    name: "basket".into(),
                    kind: DefinedKind::Gauge,
                    series: series(DefinedValue::Gauge(gauge)),
                },
                DefinedMetric {
                    name: "amount".into(),
                    kind: DefinedKind::Histogram,
                    series: series(DefinedValue::Histogram {
                        buckets: Vec::new(),
                        sum: hist.0,
                        count: hist.1,
                    }),
                },
            ],
        }]
    }

    #[test]
    fn counters_become_rates_over_the_window() {
        let mut h = History::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(5);
        let v = h.update(&sample(100, 3.0, (10.0, 2)), "svc", t0, w);
        assert_eq!(v["shop/orders"].value, 0.0, "no rate from one reading");
        assert_eq!(v["shop/basket"].value, 3.0);
        assert_eq!(v["shop/amount"].value, 5.0);
        let v = h.update(
            &sample(140, 4.0, (40.0, 4)),
            "svc",
            t0 + Duration::from_secs(2),
            w,
        );
        assert_eq!(v["shop/orders"].value, 20.0);
        assert_eq!(v["shop/orders"].kind, "counter");
        assert_eq!(
            v["shop/amount"].value, 15.0,
            "mean of the two new observations"
        );
        // Later readings drop the ones that left the window.
        let v = h.update(
            &sample(200, 4.0, (40.0, 4)),
            "svc",
            t0 + Duration::from_secs(8),
            w,
        );
        assert_eq!(v["shop/orders"].value, 10.0, "(200 - 140) / 6 s");
        assert_eq!(v["shop/amount"].value, 0.0, "no observation in the window");
        let v = h.update(
            &sample(5, 4.0, (40.0, 4)),
            "svc",
            t0 + Duration::from_secs(9),
            w,
        );
        let reset = v["shop/orders"].value;
        assert!(
            (reset - 5.0 / 7.0).abs() < 1e-9,
            "a reset counts from zero: {reset}"
        );
        assert!(
            h.update(&sample(5, 1.0, (0.0, 0)), "nope", t0, w)
                .is_empty()
        );
    }
}
