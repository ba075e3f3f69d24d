//! The node's metrics: one prometheus-client [`Registry`] that lives for the
//! whole process (across configuration reloads), the handles the request path
//! records into, and the sliding windows the scale-signal loop reads.
//!
//! Setup resolves every label set once — [`NodeMetrics::route`] and
//! [`NodeMetrics::upstream`] return handles — so recording a request is a few
//! relaxed atomic operations: no lock, no map lookup, no allocation. Values
//! other modules own (endpoint state, cache and plugin counters) are read only
//! at scrape time through the `set_*_source` functions.
//!
//! Every series carries the node's `node` and `region` labels. Names follow
//! Prometheus conventions: counters end in `_total`, durations are in seconds.
//!
//! ```text
//! edgeward_requests_total{route,class}            edgeward_upstream_requests_total{upstream,class}
//! edgeward_request_duration_seconds{route}        edgeward_upstream_request_duration_seconds{upstream}
//! edgeward_request_bytes_total{route}             edgeward_upstream_ttfb_seconds{upstream}
//! edgeward_response_bytes_total{route}            edgeward_upstream_{request,response}_bytes_total{upstream}
//! edgeward_in_flight_requests{route}              edgeward_upstream_in_flight_requests{upstream}
//!                                                 edgeward_upstream_{connect_errors,timeouts,retries}_total{upstream}
//! edgeward_endpoint_{in_flight_requests,healthy,latency_ewma_seconds}{upstream,endpoint}
//! edgeward_requests_by_protocol_total{protocol}   edgeward_{no_route,bad_requests,client_aborted,internal_errors,
//! edgeward_generation, edgeward_reloads_total{result}   upstream_errors,plugin_failures,no_endpoint,
//!                                                 rate_limited,upgrades,
//!                                                 connections_refused}_total
//! edgeward_cache_*, edgeward_plugin_*             (from the sources)
//! edgeward_plugin_<plugin>_<name>{upstream}       (defined by plugins, host `metrics`)
//! ```

mod discovery;
mod handles;
pub mod histogram;
mod plugin_defined;
mod scale_gauges;
mod sources;
pub mod window;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use discovery::DiscoveryMetrics;
pub use handles::{InFlight, RouteMetrics, UpstreamMetrics};
pub use histogram::{Histogram, LATENCY_BUCKETS};
pub use plugin_defined::{
    DefinedKind, DefinedMetric, DefinedSample, DefinedSeries, DefinedValue, exposition_name,
};
pub use scale_gauges::{HoldHandles, ScaleGauges};
pub use sources::{CacheSample, EndpointSample, PluginSample, Source};
pub use window::{Clock, MonotonicClock, Window, WindowSnapshot};

/// The `Content-Type` of [`NodeMetrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Seconds of history each upstream's [`Window`] keeps.
pub const WINDOW_CAPACITY: Duration = crate::config::scaling::MAX_WINDOW;

/// Protocol label values of `edgeward_requests_by_protocol_total`.
const PROTOCOLS: [&str; 3] = ["http1", "h2", "h3"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// The node's registry and every node-wide counter. Create one per process and
/// keep it across reloads; hand [`RouteMetrics`] / [`UpstreamMetrics`] to each
/// configuration generation.
pub struct NodeMetrics {
    registry: Registry,
    clock: Arc<dyn Clock>,
    window_epoch: std::time::Instant,
    routes: handles::RouteFamilies,
    upstreams: handles::UpstreamFamilies,
    upstream_handles: Mutex<HashMap<String, Arc<UpstreamMetrics>>>,
    by_protocol: [Counter; 3],
    reloads: [Counter; 2],
    generation: Gauge,
    endpoint_source: Arc<sources::Slot<Vec<EndpointSample>>>,
    cache_source: Arc<sources::Slot<CacheSample>>,
    plugin_source: Arc<sources::Slot<Vec<PluginSample>>>,
    defined_source: Arc<sources::Slot<Vec<DefinedSample>>>,
    /// Requests no route matched (answered 404).
    pub no_route: Counter,
    /// Requests refused as malformed or too large (client errors).
    pub bad_requests: Counter,
    /// Requests the client abandoned before the response ended.
    pub client_aborted: Counter,
    /// Requests that failed because of a bug or resource limit of the gateway.
    pub internal_errors: Counter,
    /// Requests whose upstream exchange failed after connecting (reset,
    /// protocol error); connect errors and timeouts count per upstream.
    pub upstream_errors: Counter,
    /// Requests answered 502/503 because a plugin failed under `on-error: fail`.
    pub plugin_failures: Counter,
    /// Requests answered 503 because no endpoint could take them.
    pub no_endpoint: Counter,
    /// Requests answered 429 by a route's `rate-limit`.
    pub rate_limited: Counter,
    /// Upgrades (WebSocket and others) tunnelled to an upstream.
    pub upgrades: Counter,
    /// Connections closed at accept: over a listener's `max-connections` or
    /// `max-connections-per-ip`.
    pub connections_refused: Counter,
    /// `edgeward_scale_*`, set by the scale loop.
    pub scale: ScaleGauges,
    /// `edgeward_discovery_*`, set by the discovery loop.
    pub discovery: DiscoveryMetrics,
}

impl NodeMetrics {
    /// A registry whose every series carries `node` and `region` labels.
    pub fn new(node: &str, region: &str) -> Self {
        Self::with_clock(node, region, Arc::new(MonotonicClock))
    }

    /// As [`NodeMetrics::new`], with the clock the windows are written with.
    pub fn with_clock(node: &str, region: &str, clock: Arc<dyn Clock>) -> Self {
        let mut registry = Registry::with_labels(
            [
                (Cow::Borrowed("node"), Cow::Owned(node.to_owned())),
                (Cow::Borrowed("region"), Cow::Owned(region.to_owned())),
            ]
            .into_iter(),
        );
        let routes = handles::RouteFamilies::register(&mut registry);
        let upstreams = handles::UpstreamFamilies::register(&mut registry);

        let by_protocol_family = Family::<ProtocolLabel, Counter>::default();
        registry.register(
            "edgeward_requests_by_protocol",
            "Requests received, by client protocol",
            by_protocol_family.clone(),
        );
        let by_protocol = PROTOCOLS
            .map(|protocol| by_protocol_family.get_or_create_owned(&ProtocolLabel { protocol }));
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let no_route = counter("edgeward_no_route", "Requests no route matched");
        let bad_requests = counter(
            "edgeward_bad_requests",
            "Requests refused as malformed or too large",
        );
        let client_aborted = counter(
            "edgeward_client_aborted",
            "Requests the client abandoned before the response ended",
        );
        let internal_errors = counter(
            "edgeward_internal_errors",
            "Requests that failed inside the gateway",
        );
        let upstream_errors = counter(
            "edgeward_upstream_errors",
            "Requests whose upstream exchange failed after connecting",
        );
        let plugin_failures = counter(
            "edgeward_plugin_failures",
            "Requests answered 502/503 because a plugin failed under on-error: fail",
        );
        let no_endpoint = counter(
            "edgeward_no_endpoint",
            "Requests answered 503 because no endpoint could take them",
        );
        let rate_limited = counter(
            "edgeward_rate_limited",
            "Requests answered 429 by a route's rate limit",
        );
        let upgrades = counter(
            "edgeward_upgrades",
            "Upgrades (WebSocket and others) tunnelled to an upstream",
        );
        let connections_refused = counter(
            "edgeward_connections_refused",
            "Connections closed at accept by max-connections or max-connections-per-ip",
        );
        let generation = Gauge::default();
        registry.register(
            "edgeward_generation",
            "Number of the configuration generation serving requests",
            generation.clone(),
        );
        let reloads_family = Family::<ResultLabel, Counter>::default();
        registry.register(
            "edgeward_reloads",
            "Configuration reloads, by result",
            reloads_family.clone(),
        );
        let reloads = ["ok", "error"]
            .map(|result| reloads_family.get_or_create_owned(&ResultLabel { result }));

        let scale = ScaleGauges::register(&mut registry);
        let discovery = DiscoveryMetrics::register(&mut registry);
        let endpoint_source = sources::Slot::new();
        let cache_source = sources::Slot::new();
        let plugin_source = sources::Slot::new();
        registry.register_collector(Box::new(sources::Endpoints(endpoint_source.clone())));
        registry.register_collector(Box::new(sources::CacheCounters(cache_source.clone())));
        registry.register_collector(Box::new(sources::PluginCounters(plugin_source.clone())));
        let defined_source = sources::Slot::new();
        registry.register_collector(Box::new(plugin_defined::Defined(defined_source.clone())));

        Self {
            registry,
            window_epoch: clock.now(),
            clock,
            routes,
            upstreams,
            upstream_handles: Mutex::default(),
            by_protocol,
            reloads,
            generation,
            endpoint_source,
            cache_source,
            plugin_source,
            defined_source,
            no_route,
            bad_requests,
            client_aborted,
            internal_errors,
            upstream_errors,
            plugin_failures,
            no_endpoint,
            rate_limited,
            upgrades,
            connections_refused,
            scale,
            discovery,
        }
    }

    /// The handles of route `route`. Call at setup (once per generation and
    /// route), never per request: it looks the label sets up. The same name
    /// always yields the same counters, so they stay monotonic across reloads.
    pub fn route(&self, route: &str) -> RouteMetrics {
        self.routes.handles(route)
    }

    /// The handles and window of upstream `upstream`: the same `Arc` for the
    /// same name for the life of the node. Call at setup, not per request.
    pub fn upstream(&self, upstream: &str) -> Arc<UpstreamMetrics> {
        let mut map = self
            .upstream_handles
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.entry(upstream.to_owned())
            .or_insert_with(|| {
                Arc::new(self.upstreams.handles(
                    upstream,
                    Window::new(self.window_epoch, WINDOW_CAPACITY),
                    self.clock.clone(),
                ))
            })
            .clone()
    }

    /// Every upstream handed out so far (for the scale-signal loop).
    pub fn upstreams(&self) -> Vec<Arc<UpstreamMetrics>> {
        let map = self
            .upstream_handles
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = map.values().cloned().collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }

    /// Counts one request by the protocol the client spoke.
    pub fn requests_by_protocol(&self, version: http::Version) {
        let i = match version {
            http::Version::HTTP_2 => 1,
            http::Version::HTTP_3 => 2,
            _ => 0,
        };
        self.by_protocol[i].inc();
    }

    /// Sets `edgeward_generation` to the generation now serving.
    pub fn set_generation(&self, generation: u64) {
        self.generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    /// Counts one reload attempt in `edgeward_reloads_total{result="ok"|"error"}`.
    pub fn reloaded(&self, ok: bool) {
        self.reloads[usize::from(!ok)].inc();
    }

    /// Installs (or replaces, on reload) the function that lists endpoints for
    /// `edgeward_endpoint_*`; it is called at scrape time only.
    pub fn set_endpoint_source(&self, f: Source<Vec<EndpointSample>>) {
        self.endpoint_source.set(f);
    }

    /// Installs (or replaces) the function that reads the cache's counters for
    /// `edgeward_cache_*`, e.g. `move || cache.metrics_sample()`.
    pub fn set_cache_source(&self, f: Source<CacheSample>) {
        self.cache_source.set(f);
    }

    /// Installs (or replaces, on reload) the function that reads the plugins'
    /// counters for `edgeward_plugin_*`, e.g. `move || plugins.metrics_samples()`.
    pub fn set_plugin_source(&self, f: Source<Vec<PluginSample>>) {
        self.plugin_source.set(f);
    }

    /// Installs (or replaces, on reload) the function that reads the metrics
    /// plugins define, e.g. `move || plugins.defined_samples()`.
    pub fn set_defined_source(&self, f: Source<Vec<DefinedSample>>) {
        self.defined_source.set(f);
    }

    /// Everything in the Prometheus text format, version 0.0.4 ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "metrics encoding failed; the scrape is truncated");
        }
        out
    }
}

#[cfg(test)]
mod tests;
