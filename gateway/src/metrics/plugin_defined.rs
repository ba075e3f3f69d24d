//! Metrics plugins define themselves (the host `metrics` interface), read
//! from the plugins at scrape time and encoded by prometheus-client:
//! `edgeward_plugin_<plugin>_<name>` (counters end in `_total`), one series
//! per upstream, plus `edgeward_plugin_metric_errors_total{plugin}`.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::sources::Slot;

/// The host function that made a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinedKind {
    Counter,
    Gauge,
    Histogram,
}

/// One series' value at one moment.
#[derive(Debug, Clone, PartialEq)]
pub enum DefinedValue {
    Counter(u64),
    Gauge(f64),
    /// `buckets` as `(upper bound, observations in that bucket)`, not
    /// cumulative; the last bound is `+Inf`.
    Histogram {
        buckets: Vec<(f64, u64)>,
        sum: f64,
        count: u64,
    },
}

/// One upstream's series of a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinedSeries {
    /// `""` when the call was for no upstream.
    pub upstream: String,
    pub value: DefinedValue,
}

/// One metric of a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinedMetric {
    /// As the plugin named it.
    pub name: String,
    pub kind: DefinedKind,
    pub series: Vec<DefinedSeries>,
}

/// One plugin's metrics at scrape time.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinedSample {
    pub plugin: String,
    /// Calls the host refused (bad name, wrong kind, too many, bad value).
    pub errors: u64,
    pub metrics: Vec<DefinedMetric>,
}

/// The exposition name of `metric` of `plugin`, without `_total`.
pub fn exposition_name(plugin: &str, metric: &str) -> String {
    let plugin: String = plugin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("edgeward_plugin_{plugin}_{metric}")
}

#[derive(Debug)]
pub(super) struct Defined(pub(super) Arc<Slot<Vec<DefinedSample>>>);

impl Collector for Defined {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(samples) = self.0.sample().filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        {
            let mut m = enc.encode_descriptor(
                "edgeward_plugin_metric_errors",
                "Calls of the host metrics interface refused (bad name, wrong kind, too many metrics, bad value).",
                None,
                MetricType::Counter,
            )?;
            for s in &samples {
                ConstCounter::new(s.errors).encode(m.encode_family(&[("plugin", &*s.plugin)])?)?;
            }
        }
        // Two plugin names that differ only in punctuation map to one name;
        // the first keeps it rather than emitting a family twice.
        let mut seen = HashSet::new();
        for s in &samples {
            for metric in &s.metrics {
                let name = exposition_name(&s.plugin, &metric.name);
                if !seen.insert(name.clone()) {
                    continue;
                }
                let help = format!("Defined by plugin {} as `{}`.", s.plugin, metric.name);
                let ty = match metric.kind {
                    DefinedKind::Counter => MetricType::Counter,
                    DefinedKind::Gauge => MetricType::Gauge,
                    DefinedKind::Histogram => MetricType::Histogram,
                };
                let mut m = enc.encode_descriptor(&name, &help, None, ty)?;
                for series in &metric.series {
                    let labels = [("upstream", series.upstream.as_str())];
                    let labels: &[(&str, &str)] = if series.upstream.is_empty() {
                        &[]
                    } else {
                        &labels
                    };
                    let mut e = m.encode_family(&labels)?;
                    match &series.value {
                        DefinedValue::Counter(n) => ConstCounter::new(*n).encode(e)?,
                        DefinedValue::Gauge(v) => ConstGauge::new(*v).encode(e)?,
                        DefinedValue::Histogram {
                            buckets,
                            sum,
                            count,
                        } => e.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?,
                    }
                }
            }
        }
        Ok(())
    }
}
