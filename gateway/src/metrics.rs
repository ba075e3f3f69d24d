//! Interim metrics with the shape of the prometheus-client based module that
//! replaces it (same API): route and upstream handles resolved once per
//! generation, node-wide counters, text rendering.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;

#[derive(Default)]
struct RouteInner {
    by_class: [AtomicU64; 5],
    in_flight: AtomicI64,
}

#[derive(Clone, Default)]
pub struct RouteMetrics(Arc<RouteInner>);

/// Decrements an in-flight gauge when dropped.
pub struct InFlight(Arc<dyn Fn() + Send + Sync>);

impl Drop for InFlight {
    fn drop(&mut self) {
        (self.0)()
    }
}

impl RouteMetrics {
    pub fn start(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        let me = self.0.clone();
        InFlight(Arc::new(move || {
            me.in_flight.fetch_sub(1, Ordering::Relaxed);
        }))
    }

    pub fn finish(&self, status: StatusCode, _elapsed: Duration, _in: u64, _out: u64) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.0.by_class[class].fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct UpstreamMetrics {
    connect_errors: AtomicU64,
    timeouts: AtomicU64,
    retries: AtomicU64,
    in_flight: Arc<AtomicI64>,
}

impl UpstreamMetrics {
    pub fn start(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let g = self.in_flight.clone();
        InFlight(Arc::new(move || {
            g.fetch_sub(1, Ordering::Relaxed);
        }))
    }
    pub fn first_byte(&self, _ttfb: Duration) {}
    pub fn finish(&self, _status: StatusCode, _elapsed: Duration, _in: u64, _out: u64) {}
    pub fn connect_error(&self) {
        self.connect_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn timeout(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }
    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct NodeMetrics {
    node: String,
    region: String,
    routes: Mutex<HashMap<String, RouteMetrics>>,
    upstreams: Mutex<HashMap<String, Arc<UpstreamMetrics>>>,
    pub no_route: AtomicU64,
    pub bad_requests: AtomicU64,
    pub client_aborted: AtomicU64,
    pub internal_errors: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub plugin_failures: AtomicU64,
    pub no_endpoint: AtomicU64,
    by_protocol: [AtomicU64; 3],
    generation: AtomicU64,
    reloads: [AtomicU64; 2],
}

const PROTOCOLS: [&str; 3] = ["http1", "h2", "h3"];

impl NodeMetrics {
    pub fn new(node: &str, region: &str) -> Self {
        Self {
            node: node.to_owned(),
            region: region.to_owned(),
            routes: Mutex::default(),
            upstreams: Mutex::default(),
            no_route: AtomicU64::new(0),
            bad_requests: AtomicU64::new(0),
            client_aborted: AtomicU64::new(0),
            internal_errors: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
            plugin_failures: AtomicU64::new(0),
            no_endpoint: AtomicU64::new(0),
            by_protocol: Default::default(),
            generation: AtomicU64::new(0),
            reloads: Default::default(),
        }
    }

    pub fn route(&self, name: &str) -> RouteMetrics {
        let mut m = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(name.to_owned()).or_default().clone()
    }

    pub fn upstream(&self, name: &str) -> Arc<UpstreamMetrics> {
        let mut m = self.upstreams.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(name.to_owned()).or_default().clone()
    }

    pub fn requests_by_protocol(&self, version: http::Version) {
        let i = match version {
            http::Version::HTTP_2 => 1,
            http::Version::HTTP_3 => 2,
            _ => 0,
        };
        self.by_protocol[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_generation(&self, n: u64) {
        self.generation.store(n, Ordering::Relaxed);
    }

    pub fn reloaded(&self, ok: bool) {
        self.reloads[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let labels = format!("node=\"{}\",region=\"{}\"", self.node, self.region);
        let mut out = String::new();
        out.push_str("# TYPE edgeward_requests_total counter\n");
        for (name, c) in self.routes.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            for (i, n) in c.0.by_class.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "edgeward_requests_total{{{labels},route=\"{name}\",class=\"{}xx\"}} {}",
                    i + 1,
                    n.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# TYPE edgeward_requests_by_protocol_total counter\n");
        for (p, n) in PROTOCOLS.iter().zip(&self.by_protocol) {
            let _ = writeln!(
                out,
                "edgeward_requests_by_protocol_total{{{labels},protocol=\"{p}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        for (metric, v) in [
            ("edgeward_no_route_total", &self.no_route),
            ("edgeward_bad_requests_total", &self.bad_requests),
            ("edgeward_client_aborted_total", &self.client_aborted),
            ("edgeward_internal_errors_total", &self.internal_errors),
            ("edgeward_upstream_errors_total", &self.upstream_errors),
            ("edgeward_plugin_failures_total", &self.plugin_failures),
            ("edgeward_no_endpoint_total", &self.no_endpoint),
        ] {
            let _ = writeln!(
                out,
                "# TYPE {metric} counter\n{metric}{{{labels}}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        for (name, u) in self
            .upstreams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            for (metric, v) in [
                ("edgeward_upstream_connect_errors_total", &u.connect_errors),
                ("edgeward_upstream_timeouts_total", &u.timeouts),
                ("edgeward_upstream_retries_total", &u.retries),
            ] {
                let _ = writeln!(
                    out,
                    "{metric}{{{labels},upstream=\"{name}\"}} {}",
                    v.load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# TYPE edgeward_generation gauge\nedgeward_generation{{{labels}}} {}",
            self.generation.load(Ordering::Relaxed)
        );
        for (result, v) in ["ok", "error"].iter().zip(&self.reloads) {
            let _ = writeln!(
                out,
                "edgeward_reloads_total{{{labels},result=\"{result}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        out
    }
}
