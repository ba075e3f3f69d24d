//! `edgeward_discovery_*`: how DNS discovery of upstream endpoints fares,
//! set by the node's discovery loop.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabel {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    upstream: String,
    result: &'static str,
}

/// The discovery loop's series.
pub struct DiscoveryMetrics {
    resolutions: Family<ResultLabel, Counter>,
    changes: Family<UpstreamLabel, Counter>,
    endpoints: Family<UpstreamLabel, Gauge>,
}

impl DiscoveryMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            resolutions: Family::default(),
            changes: Family::default(),
            endpoints: Family::default(),
        };
        registry.register(
            "edgeward_discovery_resolutions",
            "DNS resolutions of discovered upstreams, by result (ok, empty, error)",
            m.resolutions.clone(),
        );
        registry.register(
            "edgeward_discovery_changes",
            "Times a discovered upstream's endpoint set changed",
            m.changes.clone(),
        );
        registry.register(
            "edgeward_discovery_endpoints",
            "Endpoints a discovered upstream has now",
            m.endpoints.clone(),
        );
        m
    }

    /// One resolution of `upstream`: `ok`, `empty` (the name has no records)
    /// or `error` (no answer; the last good set stays).
    pub fn resolved(&self, upstream: &str, result: &'static str) {
        self.resolutions
            .get_or_create(&ResultLabel {
                upstream: upstream.to_owned(),
                result,
            })
            .inc();
    }

    pub fn changed(&self, upstream: &str, endpoints: usize) {
        let label = UpstreamLabel {
            upstream: upstream.to_owned(),
        };
        self.changes.get_or_create(&label).inc();
        self.endpoints
            .get_or_create(&label)
            .set(i64::try_from(endpoints).unwrap_or(i64::MAX));
    }
}
