//! The per-route and per-upstream handles the request path records into.
//!
//! Every handle is resolved from its metric family once, at setup; recording is
//! then a few relaxed atomic operations with no lock and no label lookup.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::histogram::Histogram;
use super::window::{Clock, Window};

/// Label values of the `class` label, indexed by [`class_index`].
pub(super) const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// 0..5 for 1xx..5xx (out-of-range codes clamp to the nearest class).
pub(super) fn class_index(status: StatusCode) -> usize {
    usize::from(status.as_u16() / 100).clamp(1, 5) - 1
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RouteClass {
    pub route: String,
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct UpstreamLabel {
    pub upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct UpstreamLimit {
    pub upstream: String,
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct UpstreamClass {
    pub upstream: String,
    pub class: &'static str,
}

/// Counts a request as in flight until dropped. Hold it until the response
/// body has ended (or the exchange was abandoned).
#[must_use = "the request counts as in flight only while this guard lives"]
#[derive(Debug)]
pub struct InFlight(Gauge);

impl InFlight {
    fn enter(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The route families, registered once in the node's registry.
pub(super) struct RouteFamilies {
    requests: Family<RouteClass, Counter>,
    duration: Family<RouteLabel, Histogram>,
    request_bytes: Family<RouteLabel, Counter>,
    response_bytes: Family<RouteLabel, Counter>,
    in_flight: Family<RouteLabel, Gauge>,
}

impl RouteFamilies {
    pub(super) fn register(r: &mut Registry) -> Self {
        let f = Self {
            requests: Family::default(),
            duration: Family::default(),
            request_bytes: Family::default(),
            response_bytes: Family::default(),
            in_flight: Family::default(),
        };
        r.register(
            "edgeward_requests",
            "Requests answered, by route and status class",
            f.requests.clone(),
        );
        r.register(
            "edgeward_request_duration_seconds",
            "Time from a request's arrival to the end of its response body, by route",
            f.duration.clone(),
        );
        r.register(
            "edgeward_request_bytes",
            "Request body bytes received from clients, by route",
            f.request_bytes.clone(),
        );
        r.register(
            "edgeward_response_bytes",
            "Response body bytes sent to clients, by route",
            f.response_bytes.clone(),
        );
        r.register(
            "edgeward_in_flight_requests",
            "Requests being served (until the response body ends), by route",
            f.in_flight.clone(),
        );
        f
    }

    pub(super) fn handles(&self, route: &str) -> RouteMetrics {
        let label = RouteLabel {
            route: route.to_owned(),
        };
        RouteMetrics(Arc::new(RouteHandles {
            by_class: CLASSES.map(|class| {
                self.requests.get_or_create_owned(&RouteClass {
                    route: route.to_owned(),
                    class,
                })
            }),
            duration: self.duration.get_or_create_owned(&label),
            request_bytes: self.request_bytes.get_or_create_owned(&label),
            response_bytes: self.response_bytes.get_or_create_owned(&label),
            in_flight: self.in_flight.get_or_create_owned(&label),
        }))
    }
}

/// One route's counters. Handles for the same route name share their atomics,
/// so a route kept across a reload keeps counting where it was.
#[derive(Clone, Debug)]
pub struct RouteMetrics(Arc<RouteHandles>);

#[derive(Debug)]
struct RouteHandles {
    by_class: [Counter; 5],
    duration: Histogram,
    request_bytes: Counter,
    response_bytes: Counter,
    in_flight: Gauge,
}

impl RouteMetrics {
    /// Counts the request in `edgeward_in_flight_requests` until the guard drops.
    pub fn start(&self) -> InFlight {
        InFlight::enter(&self.0.in_flight)
    }

    /// Records a request whose response body has ended: its status class, the
    /// time since it arrived, the body bytes received from the client and sent
    /// back to it.
    pub fn finish(
        &self,
        status: StatusCode,
        elapsed: Duration,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let h = &self.0;
        h.by_class[class_index(status)].inc();
        h.duration.observe(elapsed);
        if request_bytes > 0 {
            h.request_bytes.inc_by(request_bytes);
        }
        if response_bytes > 0 {
            h.response_bytes.inc_by(response_bytes);
        }
    }
}

/// The upstream families, registered once in the node's registry.
pub(super) struct UpstreamFamilies {
    requests: Family<UpstreamClass, Counter>,
    duration: Family<UpstreamLabel, Histogram>,
    ttfb: Family<UpstreamLabel, Histogram>,
    request_bytes: Family<UpstreamLabel, Counter>,
    response_bytes: Family<UpstreamLabel, Counter>,
    in_flight: Family<UpstreamLabel, Gauge>,
    connect_errors: Family<UpstreamLabel, Counter>,
    timeouts: Family<UpstreamLabel, Counter>,
    retries: Family<UpstreamLabel, Counter>,
    overflows: Family<UpstreamLimit, Counter>,
    retry_budget_exhausted: Family<UpstreamLabel, Counter>,
}

impl UpstreamFamilies {
    pub(super) fn register(r: &mut Registry) -> Self {
        let f = Self {
            requests: Family::default(),
            duration: Family::default(),
            ttfb: Family::default(),
            request_bytes: Family::default(),
            response_bytes: Family::default(),
            in_flight: Family::default(),
            connect_errors: Family::default(),
            timeouts: Family::default(),
            retries: Family::default(),
            overflows: Family::default(),
            retry_budget_exhausted: Family::default(),
        };
        r.register(
            "edgeward_upstream_requests",
            "Answers received from upstream services, by upstream and status class",
            f.requests.clone(),
        );
        r.register(
            "edgeward_upstream_request_duration_seconds",
            "Time from sending a request upstream to the end of the upstream's response body",
            f.duration.clone(),
        );
        r.register(
            "edgeward_upstream_ttfb_seconds",
            "Time from sending a request upstream to the upstream's response head",
            f.ttfb.clone(),
        );
        r.register(
            "edgeward_upstream_request_bytes",
            "Request body bytes sent to upstream services",
            f.request_bytes.clone(),
        );
        r.register(
            "edgeward_upstream_response_bytes",
            "Response body bytes received from upstream services",
            f.response_bytes.clone(),
        );
        r.register(
            "edgeward_upstream_in_flight_requests",
            "Exchanges with an upstream service in progress",
            f.in_flight.clone(),
        );
        r.register(
            "edgeward_upstream_connect_errors",
            "Failed connections to upstream endpoints",
            f.connect_errors.clone(),
        );
        r.register(
            "edgeward_upstream_timeouts",
            "Upstream answers that exceeded the route timeout",
            f.timeouts.clone(),
        );
        r.register(
            "edgeward_upstream_retries",
            "Requests sent again to another endpoint",
            f.retries.clone(),
        );
        r.register(
            "edgeward_upstream_overflows",
            "Requests answered 503 at once because a circuit-breaker limit was reached, by limit",
            f.overflows.clone(),
        );
        r.register(
            "edgeward_upstream_retry_budget_exhausted",
            "Retries not made because the upstream's retry budget was spent",
            f.retry_budget_exhausted.clone(),
        );
        f
    }

    pub(super) fn handles(
        &self,
        upstream: &str,
        window: Window,
        clock: Arc<dyn Clock>,
    ) -> UpstreamMetrics {
        let label = UpstreamLabel {
            upstream: upstream.to_owned(),
        };
        UpstreamMetrics {
            name: upstream.to_owned(),
            by_class: CLASSES.map(|class| {
                self.requests.get_or_create_owned(&UpstreamClass {
                    upstream: upstream.to_owned(),
                    class,
                })
            }),
            duration: self.duration.get_or_create_owned(&label),
            ttfb: self.ttfb.get_or_create_owned(&label),
            request_bytes: self.request_bytes.get_or_create_owned(&label),
            response_bytes: self.response_bytes.get_or_create_owned(&label),
            in_flight: self.in_flight.get_or_create_owned(&label),
            connect_errors: self.connect_errors.get_or_create_owned(&label),
            timeouts: self.timeouts.get_or_create_owned(&label),
            retries: self.retries.get_or_create_owned(&label),
            overflows: ["max-connections", "max-pending-requests", "max-requests"].map(|limit| {
                self.overflows.get_or_create_owned(&UpstreamLimit {
                    upstream: upstream.to_owned(),
                    limit,
                })
            }),
            retry_budget_exhausted: self.retry_budget_exhausted.get_or_create_owned(&label),
            window,
            clock,
        }
    }
}

/// One upstream service's counters and its sliding [`Window`]. The node hands
/// out one `Arc` per name, so it outlives configuration generations.
pub struct UpstreamMetrics {
    name: String,
    by_class: [Counter; 5],
    duration: Histogram,
    ttfb: Histogram,
    request_bytes: Counter,
    response_bytes: Counter,
    in_flight: Gauge,
    connect_errors: Counter,
    timeouts: Counter,
    retries: Counter,
    /// By limit: max-connections, max-pending-requests, max-requests.
    overflows: [Counter; 3],
    retry_budget_exhausted: Counter,
    window: Window,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for UpstreamMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamMetrics")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl UpstreamMetrics {
    /// The upstream's name (its `upstream` label value).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counts an exchange in `edgeward_upstream_in_flight_requests` until the
    /// guard drops (hold it until the upstream's response body ends).
    pub fn start(&self) -> InFlight {
        InFlight::enter(&self.in_flight)
    }

    /// Records the time from sending the request to the upstream's response head.
    pub fn first_byte(&self, ttfb: Duration) {
        self.ttfb.observe(ttfb);
    }

    /// Records one attempt once the upstream's body has ended (or the attempt
    /// failed): the status the upstream sent — or, for a failed attempt, the one
    /// the gateway answers for it (502, 504) — the time since the request was
    /// sent, body bytes sent to and received from the upstream. Also counts it
    /// in the window, a 5xx as an error.
    pub fn finish(
        &self,
        status: StatusCode,
        elapsed: Duration,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        self.by_class[class_index(status)].inc();
        self.duration.observe(elapsed);
        if request_bytes > 0 {
            self.request_bytes.inc_by(request_bytes);
        }
        if response_bytes > 0 {
            self.response_bytes.inc_by(response_bytes);
        }
        self.window
            .record(self.clock.now(), elapsed, status.is_server_error());
    }

    /// A connection to one of the upstream's endpoints failed. (The attempt
    /// reaches the window through [`UpstreamMetrics::finish`].)
    pub fn connect_error(&self) {
        self.connect_errors.inc();
    }

    /// The upstream did not answer within the route timeout. (The attempt
    /// reaches the window through [`UpstreamMetrics::finish`].)
    pub fn timeout(&self) {
        self.timeouts.inc();
    }

    /// The request is sent again to another endpoint.
    pub fn retry(&self) {
        self.retries.inc();
    }

    /// A request was refused at once by circuit-breaker limit `limit`
    /// (0: max-connections, 1: max-pending-requests, 2: max-requests).
    pub fn overflow(&self, limit: usize) {
        if let Some(c) = self.overflows.get(limit) {
            c.inc();
        }
    }

    /// A retry was not made: the retry budget was spent.
    pub fn retry_budget_exhausted(&self) {
        self.retry_budget_exhausted.inc();
    }

    /// The per-second window the scale-signal loop reads.
    pub fn window(&self) -> &Window {
        &self.window
    }

    /// Now, by the clock the window is written with (for [`Window::snapshot`]).
    pub fn now(&self) -> std::time::Instant {
        self.clock.now()
    }
}
