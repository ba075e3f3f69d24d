//! The values that cross the plugin boundary, as plain Rust types.
//!
//! They mirror `wit/types.wit` one to one; the WIT comments are the contract,
//! these are the same words for Rust readers.

use std::fmt;

/// One endpoint of the upstream, as the host saw it when it called `choose`.
///
/// Only numbers: text about an endpoint (address, zone name, tags) is fetched
/// through [`Upstream`](crate::Upstream) when a plugin needs it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Candidate {
    /// Index in the upstream's endpoint list; what a [`Decision`] names.
    /// Stable only while the configuration is unchanged.
    pub id: u32,
    /// Stable identity: FNV-1a 64 of the address text
    /// ([`hash::fnv1a64`](crate::hash::fnv1a64)). Same on every node and across
    /// reloads, so affinity is built on it.
    pub key: u64,
    /// Configured weight (default 1); 0 means "never by weight".
    pub weight: u32,
    /// False when health checks have taken the endpoint out.
    pub healthy: bool,
    /// Requests this gateway has in flight to the endpoint.
    pub in_flight: u32,
    /// Moving average of response latency in microseconds; 0 before the first response.
    pub latency_ewma_us: u32,
    /// Zone number (0 = unknown); equal numbers mean the same zone.
    pub zone: u32,
    /// The endpoint's own CPU use from its ORCA load reports
    /// (`endpoint-load-metrics` `cpu_utilization`, a fraction of its
    /// allocation that may exceed 1.0), averaged over its recent reports;
    /// `None` until it sends one.
    pub cpu_utilization: Option<f32>,
    /// The same for memory (`mem_utilization`), a fraction.
    pub mem_utilization: Option<f32>,
}

/// The HTTP version the client spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
    /// HTTP/2
    Http2,
    /// HTTP/3
    Http3,
}

/// One header field. Names are lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Lowercase field name.
    pub name: String,
    /// Field value.
    pub value: String,
}

impl Header {
    /// A header; the name is lowercased.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        let mut name = name.into();
        name.make_ascii_lowercase();
        Self {
            name,
            value: value.into(),
        }
    }
}

/// One edit to a header map; edits apply in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Replace every field of this name with this one.
    Set(Header),
    /// Add a field, keeping existing ones (use for `set-cookie`).
    Append(Header),
    /// Remove every field of this (lowercase) name.
    Remove(String),
}

impl HeaderEdit {
    /// `Set` with a lowercased name.
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Set(Header::new(name, value))
    }

    /// `Append` with a lowercased name.
    pub fn append(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Append(Header::new(name, value))
    }

    /// `Remove` with a lowercased name.
    pub fn remove(name: impl Into<String>) -> Self {
        let mut name = name.into();
        name.make_ascii_lowercase();
        Self::Remove(name)
    }
}

/// A response the plugin answers with instead of the upstream's.
///
/// The host adds `content-length` and `date`, and treats a status outside
/// 200..=599, a hop-by-hop header or a body over [`Self::MAX_BODY`] bytes as a
/// plugin error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponse {
    /// Status code, 200..=599.
    pub status: u16,
    /// Header fields.
    pub headers: Vec<Header>,
    /// Body, sent as is.
    pub body: Vec<u8>,
}

impl DirectResponse {
    /// The largest body the host accepts (64 KiB).
    pub const MAX_BODY: usize = 64 * 1024;

    /// A response with this status, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Add a header field.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Set a `text/plain; charset=utf-8` body.
    pub fn text(mut self, body: impl Into<String>) -> Self {
        self.headers
            .push(Header::new("content-type", "text/plain; charset=utf-8"));
        self.body = body.into().into_bytes();
        self
    }

    /// Set the body, leaving headers alone.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Why the host would reject this response, if it would.
    pub fn check(&self) -> Result<(), String> {
        if !(200..=599).contains(&self.status) {
            return Err(format!("status {} is outside 200..=599", self.status));
        }
        if self.body.len() > Self::MAX_BODY {
            return Err(format!(
                "body of {} bytes exceeds {} bytes",
                self.body.len(),
                Self::MAX_BODY
            ));
        }
        if let Some(h) = self.headers.iter().find(|h| is_hop_by_hop(&h.name)) {
            return Err(format!("hop-by-hop header `{}` is not allowed", h.name));
        }
        Ok(())
    }
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
    )
}

/// Forward the request to one endpoint, optionally editing headers.
///
/// Build one with [`Forward::to`] and turn it into a [`Decision`] with `.into()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The chosen candidate's [`Candidate::id`].
    pub endpoint: u32,
    /// Edits to the request before it goes upstream.
    pub request_headers: Vec<HeaderEdit>,
    /// Edits to the response before it goes to the client.
    pub response_headers: Vec<HeaderEdit>,
}

impl Forward {
    /// Forward to the endpoint with this id, no edits (the cheap case).
    pub fn to(endpoint: u32) -> Self {
        Self {
            endpoint,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
        }
    }

    /// Add an edit to the request that goes upstream.
    pub fn request_header(mut self, edit: HeaderEdit) -> Self {
        self.request_headers.push(edit);
        self
    }

    /// Add an edit to the response that goes to the client.
    pub fn response_header(mut self, edit: HeaderEdit) -> Self {
        self.response_headers.push(edit);
        self
    }
}

/// What a router decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send the request to an endpoint.
    Forward(Forward),
    /// Answer the client directly.
    Respond(DirectResponse),
    /// No endpoint can take the request; the host answers 503.
    Unavailable,
}

impl Decision {
    /// Forward to this candidate with no header edits.
    pub fn forward(candidate: &Candidate) -> Self {
        Self::Forward(Forward::to(candidate.id))
    }

    /// `Forward` to the candidate if there is one, else `Unavailable`.
    pub fn forward_or_unavailable(candidate: Option<&Candidate>) -> Self {
        candidate.map_or(Self::Unavailable, Self::forward)
    }

    /// The endpoint id when this forwards.
    pub fn endpoint(&self) -> Option<u32> {
        match self {
            Self::Forward(f) => Some(f.endpoint),
            _ => None,
        }
    }
}

impl From<Forward> for Decision {
    fn from(f: Forward) -> Self {
        Self::Forward(f)
    }
}

impl From<DirectResponse> for Decision {
    fn from(r: DirectResponse) -> Self {
        Self::Respond(r)
    }
}

/// What a filter decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Carry on after these edits (empty: the cheap no-op).
    Continue(Vec<HeaderEdit>),
    /// Answer with this response instead.
    Respond(DirectResponse),
}

impl Action {
    /// Carry on with no edits.
    pub fn pass() -> Self {
        Self::Continue(Vec::new())
    }
}

impl From<DirectResponse> for Action {
    fn from(r: DirectResponse) -> Self {
        Self::Respond(r)
    }
}

/// Which way a scaler wants the service to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScaleDirection {
    /// Add replicas.
    Up,
    /// Remove replicas.
    Down,
    /// Keep the count.
    Hold,
}

impl fmt::Display for ScaleDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Hold => "hold",
        })
    }
}

/// Which host [`metrics`](crate::metrics) function made a custom metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// [`metrics::Counter`](crate::metrics::Counter).
    Counter,
    /// [`metrics::Gauge`](crate::metrics::Gauge).
    Gauge,
    /// [`metrics::Histogram`](crate::metrics::Histogram).
    Histogram,
}

/// A plugin's metric, as a scale snapshot carries it for its service.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomMetric {
    /// `<plugin>/<name>`, e.g. `shop/orders`.
    pub name: String,
    /// Which kind of metric it is.
    pub kind: MetricKind,
    /// A counter: its increase per second over the window. A gauge: its
    /// value now. A histogram: the mean of the observations in the window.
    pub value: f64,
}

/// What the gateway measured for one service over the last window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScaleSnapshot {
    /// The service (upstream) name.
    pub service: String,
    /// Wall time of the snapshot, ms since the Unix epoch.
    pub at_ms: u64,
    /// Length of the measurement window, ms.
    pub window_ms: u64,
    /// Replicas now.
    pub current_replicas: u32,
    /// Healthy replicas now.
    pub healthy_replicas: u32,
    /// Completed requests per second.
    pub request_rate: f64,
    /// Fraction of 5xx or failed responses, 0.0..=1.0.
    pub error_rate: f64,
    /// Median latency, ms.
    pub latency_p50_ms: f64,
    /// 90th percentile latency, ms.
    pub latency_p90_ms: f64,
    /// 99th percentile latency, ms.
    pub latency_p99_ms: f64,
    /// Requests in flight now.
    pub in_flight: u32,
    /// Requests waiting for an endpoint now: held by scale from zero, or
    /// waiting for an upstream connection to open.
    pub queue_depth: u32,
    /// Gateway CPU use, 0.0..=1.0 of its cores.
    pub gateway_cpu: f64,
    /// Gateway resident memory, bytes.
    pub gateway_memory_bytes: u64,
    /// The service's CPU use from its endpoints' ORCA load reports, a
    /// fraction averaged over the window; `None` without reports.
    pub service_cpu: Option<f64>,
    /// The service's memory use from ORCA reports, a fraction.
    pub service_memory: Option<f64>,
    /// Plugins' metrics recorded for this service, sorted by name.
    pub custom_metrics: Vec<CustomMetric>,
}

impl ScaleSnapshot {
    /// The custom metric `name`: either `<plugin>/<name>`, or a bare
    /// `<name>` when exactly one plugin recorded a metric of that name.
    /// `None` when absent or ambiguous.
    pub fn custom(&self, name: &str) -> Option<&CustomMetric> {
        if let Some(m) = self.custom_metrics.iter().find(|m| m.name == name) {
            return Some(m);
        }
        let mut bare = self
            .custom_metrics
            .iter()
            .filter(|m| m.name.rsplit_once('/').is_some_and(|(_, n)| n == name));
        match (bare.next(), bare.next()) {
            (Some(m), None) => Some(m),
            _ => None,
        }
    }
}

/// A scaler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleDecision {
    /// The replica count the service should have.
    pub desired_replicas: u32,
    /// Which way that is from the current count.
    pub direction: ScaleDirection,
    /// One short line for people, e.g. `p90 412ms > 250ms for 2m`.
    pub reason: String,
}

impl ScaleDecision {
    /// A decision whose direction is derived from `current` and `desired`.
    pub fn new(current: u32, desired: u32, reason: impl Into<String>) -> Self {
        let direction = match desired.cmp(&current) {
            std::cmp::Ordering::Greater => ScaleDirection::Up,
            std::cmp::Ordering::Less => ScaleDirection::Down,
            std::cmp::Ordering::Equal => ScaleDirection::Hold,
        };
        Self {
            desired_replicas: desired,
            direction,
            reason: reason.into(),
        }
    }
}
