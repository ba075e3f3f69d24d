//! Values other modules own (endpoint state, cache and plugin counters), read
//! only when `/metrics` is scraped, through a function the node installs and
//! replaces on reload.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// One endpoint of an upstream, as the upstream pool sees it at scrape time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointSample {
    /// The upstream's name.
    pub upstream: String,
    /// The endpoint's `host:port`.
    pub endpoint: String,
    /// Requests in flight to it now.
    pub in_flight: u32,
    /// Whether it is offered to routers now.
    pub healthy: bool,
    /// Its recent latency (exponentially weighted moving average).
    pub latency_ewma: Duration,
    /// The reason of the passive ejection in force, if one is.
    pub ejected: Option<&'static str>,
    /// Passive ejections so far, by reason.
    pub ejections: Vec<(&'static str, u64)>,
    /// Whether its active health check is failing (false without one).
    pub check_failing: bool,
}

/// The cache's counters and usage at scrape time (see `Cache::metrics_sample`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheSample {
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
    pub revalidated: u64,
    pub bypass: u64,
    pub stored: u64,
    pub evictions: u64,
    pub expired: u64,
    pub purged: u64,
    pub coalesced: u64,
    pub compressed_variants: u64,
    /// Storable responses refused because of a content coding the cache
    /// did not ask for and could not decode.
    pub refused_coded: u64,
    /// Bytes held by stored responses.
    pub bytes: u64,
    /// The configured bound.
    pub max_bytes: u64,
    /// Stored responses.
    pub entries: u64,
}

/// One plugin's counters at scrape time (see `PluginMetrics::sample`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginSample {
    /// The plugin's name (its `plugin` label value).
    pub plugin: String,
    pub calls: u64,
    /// Faulted calls by kind (`deadline`, `memory`, `trap`…).
    pub faults: Vec<(&'static str, u64)>,
    /// Faults the `on-error: fallback` policy absorbed.
    pub fallbacks: u64,
    /// Faults the `on-error: fail` policy turned into an error response.
    pub failed: u64,
    /// Guest log lines dropped by the rate limit.
    pub log_dropped: u64,
    /// Live instances, idle or serving a call.
    pub instances: u64,
    /// Instances that could not be created to refill the pool.
    pub instance_failures: u64,
}

/// A function called at scrape time.
pub type Source<T> = Arc<dyn Fn() -> T + Send + Sync>;

/// The current source of one kind, replaceable while the registry encodes.
pub(super) struct Slot<T>(RwLock<Option<Source<T>>>);

impl<T> Slot<T> {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self(RwLock::new(None)))
    }

    pub(super) fn set(&self, f: Source<T>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Calls the source outside the lock (it may take locks of its own).
    pub(super) fn sample(&self) -> Option<T> {
        let f = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        f.map(|f| f())
    }
}

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Slot")
    }
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), fmt::Error> {
    ConstCounter::new(value).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), fmt::Error> {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(enc.encode_descriptor(
        name,
        help,
        None,
        MetricType::Gauge,
    )?)
}

/// `edgeward_endpoint_*` from the endpoint source.
#[derive(Debug)]
pub(super) struct Endpoints(pub(super) Arc<Slot<Vec<EndpointSample>>>);

impl Collector for Endpoints {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(samples) = self.0.sample().filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        let labels = |s: &EndpointSample| {
            [
                ("upstream", s.upstream.clone()),
                ("endpoint", s.endpoint.clone()),
            ]
        };
        {
            let mut m = enc.encode_descriptor(
                "edgeward_endpoint_in_flight_requests",
                "Requests in flight to an upstream endpoint.",
                None,
                MetricType::Gauge,
            )?;
            for s in &samples {
                ConstGauge::new(i64::from(s.in_flight)).encode(m.encode_family(&labels(s))?)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "edgeward_endpoint_healthy",
                "1 if the endpoint is offered to routers, 0 while it is marked unhealthy.",
                None,
                MetricType::Gauge,
            )?;
            for s in &samples {
                ConstGauge::new(i64::from(s.healthy)).encode(m.encode_family(&labels(s))?)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "edgeward_endpoint_ejected",
                "1 while passive outlier detection keeps the endpoint out, labelled with the reason.",
                None,
                MetricType::Gauge,
            )?;
            for s in samples.iter() {
                let [u, e] = labels(s);
                let reason = ("reason", s.ejected.unwrap_or("none").to_owned());
                ConstGauge::new(i64::from(s.ejected.is_some()))
                    .encode(m.encode_family(&[u, e, reason])?)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "edgeward_endpoint_ejections",
                "Passive ejections of the endpoint, by reason.",
                None,
                MetricType::Counter,
            )?;
            for s in &samples {
                for (reason, n) in &s.ejections {
                    let [u, e] = labels(s);
                    ConstCounter::new(*n).encode(m.encode_family(&[
                        u,
                        e,
                        ("reason", (*reason).to_owned()),
                    ])?)?;
                }
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "edgeward_endpoint_health_check_failing",
                "1 while the endpoint fails its active health check.",
                None,
                MetricType::Gauge,
            )?;
            for s in &samples {
                ConstGauge::new(i64::from(s.check_failing)).encode(m.encode_family(&labels(s))?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "edgeward_endpoint_latency_ewma_seconds",
            "Recent latency of the endpoint (exponentially weighted moving average).",
            None,
            MetricType::Gauge,
        )?;
        for s in &samples {
            ConstGauge::new(s.latency_ewma.as_secs_f64()).encode(m.encode_family(&labels(s))?)?;
        }
        Ok(())
    }
}

/// `edgeward_cache_*` from the cache source.
#[derive(Debug)]
pub(super) struct CacheCounters(pub(super) Arc<Slot<CacheSample>>);

impl Collector for CacheCounters {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(c) = self.0.sample() else {
            return Ok(());
        };
        {
            let mut m = enc.encode_descriptor(
                "edgeward_cache_requests",
                "Cache lookups by outcome.",
                None,
                MetricType::Counter,
            )?;
            for (result, v) in [
                ("hit", c.hits),
                ("miss", c.misses),
                ("stale", c.stale),
                ("revalidated", c.revalidated),
                ("bypass", c.bypass),
            ] {
                ConstCounter::new(v).encode(m.encode_family(&[("result", result)])?)?;
            }
        }
        {
            // One family for every reason a storable response is not stored;
            // `coded-body` is the only one counted so far.
            let mut m = enc.encode_descriptor(
                "edgeward_cache_refused",
                "Storable responses the cache refused to store, by reason.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(c.refused_coded)
                .encode(m.encode_family(&[("reason", "coded-body")])?)?;
        }
        for (name, help, v) in [
            ("edgeward_cache_stored", "Responses stored.", c.stored),
            (
                "edgeward_cache_evictions",
                "Entries evicted to keep the byte bound.",
                c.evictions,
            ),
            (
                "edgeward_cache_expired",
                "Entries dropped after their retention.",
                c.expired,
            ),
            (
                "edgeward_cache_purged",
                "Entries removed by purge requests or unsafe methods.",
                c.purged,
            ),
            (
                "edgeward_cache_coalesced",
                "Requests that waited for another request's fetch.",
                c.coalesced,
            ),
            (
                "edgeward_cache_compressed_variants",
                "Encoded variants made for stored responses.",
                c.compressed_variants,
            ),
        ] {
            counter(&mut enc, name, help, v)?;
        }
        gauge(
            &mut enc,
            "edgeward_cache_bytes",
            "Bytes held by stored responses.",
            c.bytes,
        )?;
        gauge(
            &mut enc,
            "edgeward_cache_max_bytes",
            "The configured bound.",
            c.max_bytes,
        )?;
        gauge(
            &mut enc,
            "edgeward_cache_entries",
            "Stored responses.",
            c.entries,
        )
    }
}

/// `edgeward_plugin_*` from the plugin source.
#[derive(Debug)]
pub(super) struct PluginCounters(pub(super) Arc<Slot<Vec<PluginSample>>>);

impl Collector for PluginCounters {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(all) = self.0.sample().filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        {
            let mut m = enc.encode_descriptor(
                "edgeward_plugin_calls",
                "Calls into a plugin.",
                None,
                MetricType::Counter,
            )?;
            for p in &all {
                ConstCounter::new(p.calls).encode(m.encode_family(&[("plugin", &p.plugin)])?)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "edgeward_plugin_faults",
                "Plugin calls that faulted (instance discarded), by kind.",
                None,
                MetricType::Counter,
            )?;
            for p in &all {
                for (kind, v) in &p.faults {
                    ConstCounter::new(*v).encode(
                        m.encode_family(&[("plugin", p.plugin.as_str()), ("kind", kind)])?,
                    )?;
                }
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "edgeward_plugin_policy",
                "What on-error did after a fault.",
                None,
                MetricType::Counter,
            )?;
            for p in &all {
                for (policy, v) in [("fallback", p.fallbacks), ("fail", p.failed)] {
                    ConstCounter::new(v).encode(
                        m.encode_family(&[("plugin", p.plugin.as_str()), ("policy", policy)])?,
                    )?;
                }
            }
        }
        let mut m = enc.encode_descriptor(
            "edgeward_plugin_log_dropped",
            "Guest log lines dropped by the rate limit.",
            None,
            MetricType::Counter,
        )?;
        for p in &all {
            ConstCounter::new(p.log_dropped).encode(m.encode_family(&[("plugin", &p.plugin)])?)?;
        }
        let mut m = enc.encode_descriptor(
            "edgeward_plugin_instances",
            "Live instances of a plugin, idle or serving a call.",
            None,
            MetricType::Gauge,
        )?;
        for p in &all {
            ConstGauge::new(p.instances as i64)
                .encode(m.encode_family(&[("plugin", &p.plugin)])?)?;
        }
        let mut m = enc.encode_descriptor(
            "edgeward_plugin_instance_failures",
            "Instances that could not be created to refill a pool (init failed, trapped or overran).",
            None,
            MetricType::Counter,
        )?;
        for p in &all {
            ConstCounter::new(p.instance_failures)
                .encode(m.encode_family(&[("plugin", &p.plugin)])?)?;
        }
        Ok(())
    }
}
