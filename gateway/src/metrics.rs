//! Request counters, recorded once per request at the end of the path and
//! rendered in the Prometheus text format by the admin listener.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;

/// Counters for one route; index 0..5 are status classes 1xx..5xx.
#[derive(Default)]
pub struct RouteCounters {
    by_class: [AtomicU64; 5],
}

pub struct Metrics {
    node: String,
    region: String,
    routes: Vec<(String, RouteCounters)>,
    pub no_route: AtomicU64,
    pub upstream_connect_errors: AtomicU64,
    pub upstream_timeouts: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub bad_requests: AtomicU64,
    /// Requests by client protocol, indexed as [`PROTOCOLS`].
    by_protocol: [AtomicU64; 3],
    pub plugin_failures: AtomicU64,
    pub no_endpoint: AtomicU64,
}

/// Protocol label values of `edgeward_requests_by_protocol_total`.
const PROTOCOLS: [&str; 3] = ["http1", "h2", "h3"];

impl Metrics {
    pub fn new(node: &str, region: &str, routes: impl IntoIterator<Item = String>) -> Self {
        Self {
            node: node.to_owned(),
            region: region.to_owned(),
            routes: routes
                .into_iter()
                .map(|r| (r, RouteCounters::default()))
                .collect(),
            no_route: AtomicU64::new(0),
            upstream_connect_errors: AtomicU64::new(0),
            upstream_timeouts: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
            bad_requests: AtomicU64::new(0),
            by_protocol: Default::default(),
            plugin_failures: AtomicU64::new(0),
            no_endpoint: AtomicU64::new(0),
        }
    }

    pub fn record(&self, route: Option<usize>, status: StatusCode) {
        if let Some((_, c)) = route.and_then(|r| self.routes.get(r)) {
            let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
            c.by_class[class].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one request by the protocol the client spoke.
    pub fn record_protocol(&self, version: http::Version) {
        let i = match version {
            http::Version::HTTP_2 => 1,
            http::Version::HTTP_3 => 2,
            _ => 0,
        };
        self.by_protocol[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let labels = format!("node=\"{}\",region=\"{}\"", self.node, self.region);
        let mut out = String::new();
        out.push_str(
            "# HELP edgeward_requests_total Requests answered, by route and status class.\n",
        );
        out.push_str("# TYPE edgeward_requests_total counter\n");
        for (name, c) in &self.routes {
            for (i, n) in c.by_class.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "edgeward_requests_total{{{labels},route=\"{name}\",class=\"{}xx\"}} {}",
                    i + 1,
                    n.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP edgeward_requests_by_protocol_total Requests received, by client protocol.\n# TYPE edgeward_requests_by_protocol_total counter\n");
        for (p, n) in PROTOCOLS.iter().zip(&self.by_protocol) {
            let _ = writeln!(
                out,
                "edgeward_requests_by_protocol_total{{{labels},protocol=\"{p}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        for (metric, help, v) in [
            (
                "edgeward_no_route_total",
                "Requests no route matched.",
                &self.no_route,
            ),
            (
                "edgeward_bad_requests_total",
                "Requests refused as malformed.",
                &self.bad_requests,
            ),
            (
                "edgeward_upstream_connect_errors_total",
                "Failed connections to upstream endpoints.",
                &self.upstream_connect_errors,
            ),
            (
                "edgeward_upstream_timeouts_total",
                "Upstream answers that exceeded the route timeout.",
                &self.upstream_timeouts,
            ),
            (
                "edgeward_upstream_errors_total",
                "Upstream exchanges that failed after connecting.",
                &self.upstream_errors,
            ),
            (
                "edgeward_plugin_failures_total",
                "Requests answered 502/503 because a plugin failed under on-error: fail.",
                &self.plugin_failures,
            ),
            (
                "edgeward_no_endpoint_total",
                "Requests answered 503 because no endpoint could take them.",
                &self.no_endpoint,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {metric} {help}\n# TYPE {metric} counter\n{metric}{{{labels}}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        out
    }
}
