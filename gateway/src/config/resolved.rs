//! The validated configuration the gateway runs from: addresses parsed, references
//! resolved to indices, certificates loaded. Nothing here can be wrong any more.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use http::{HeaderName, HeaderValue};
use rustls::sign::CertifiedKey;

pub use super::model::UpstreamProtocol;
use crate::matching::RouteMatch;

#[derive(Debug, Clone)]
pub struct Config {
    pub node: Node,
    pub listeners: Vec<Listener>,
    pub admin: Option<SocketAddr>,
    /// The admin API's bearer token; `None` leaves it open (loopback only).
    pub admin_token: Option<Arc<str>>,
    pub upstreams: Vec<Upstream>,
    pub routes: Vec<Route>,
    pub drain_timeout: Duration,
    pub access_log: Option<super::access_log::AccessLog>,
    pub cache: super::cache::CacheSettings,
    /// Every plugin some upstream or route uses (plus those defined but unused).
    pub plugins: Vec<super::plugins::PluginSpec>,
    /// Scaled services (`scaling:`).
    pub scaling: super::scaling::Scaling,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub region: String,
    pub name: String,
    pub zone: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub addr: SocketAddr,
    pub tls: Option<Vec<TlsCert>>,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
    pub max_header_size: usize,
    pub max_concurrent_streams: u32,
    pub keep_alive: bool,
    pub trust_request_id: bool,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub protocols: Protocols,
    /// Present exactly when `protocols.h3`.
    pub quic: Option<Quic>,
    /// Every request is redirected to HTTPS (plaintext listeners only).
    pub https_redirect: Option<super::actions::HttpsRedirect>,
}

/// Which protocols a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols {
    pub h1: bool,
    pub h2: bool,
    pub h3: bool,
}

impl Protocols {
    /// Whether the listener needs a TCP socket at all.
    pub fn tcp(&self) -> bool {
        self.h1 || self.h2
    }
}

impl Default for Protocols {
    fn default() -> Self {
        Self {
            h1: true,
            h2: true,
            h3: false,
        }
    }
}

/// HTTP/3 limits and behaviour of one listener (see `model::QuicConfig` for defaults).
#[derive(Debug, Clone)]
pub struct Quic {
    pub max_concurrent_streams: u32,
    pub idle_timeout: Duration,
    pub max_field_section_size: u64,
    pub max_request_body: Option<u64>,
    pub retry: bool,
    pub zero_rtt: bool,
    pub alt_svc_max_age: Duration,
}

#[derive(Debug, Clone)]
pub struct TlsCert {
    pub key: Arc<CertifiedKey>,
    /// Lower-case SNI names; `*.example.com` entries match one extra label.
    pub server_names: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    pub protocol: UpstreamProtocol,
    pub connect_timeout: Duration,
    pub max_idle_per_endpoint: usize,
    pub idle_timeout: Duration,
    /// Name of the router plugin; `None` means the native round robin.
    pub balancer: Option<String>,
    pub unhealthy_cool_down: Duration,
    /// Where `endpoints` come from when not listed: they start empty and the
    /// node fills them from DNS.
    pub discovery: Option<super::discovery::Discovery>,
    pub resilience: super::resilience::Resilience,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub authority: Authority,
    pub weight: u32,
    pub tags: Vec<String>,
    pub zone: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    /// Index into [`Config::upstreams`]; [`Route::NO_UPSTREAM`] for a route
    /// with `respond`, which answers before any stage that reads it.
    pub upstream: usize,
    pub respond: Option<super::actions::Respond>,
    pub https_redirect: Option<super::actions::HttpsRedirect>,
    pub timeout: Duration,
    pub body_timeouts: super::resilience::BodyTimeouts,
    /// `(matched prefix, replacement)`.
    pub rewrite: Option<(String, String)>,
    pub request_headers: HeaderEdit,
    pub response_headers: HeaderEdit,
    /// Bytes; `None` is unlimited.
    pub max_request_body: Option<u64>,
    pub cache: Option<super::cache::RouteCache>,
    pub compression: Option<Arc<super::compress::Compression>>,
    /// Names of filter plugins, in order.
    pub filters: Vec<String>,
    pub rate_limit: Option<super::limits::RateLimit>,
}

impl Route {
    /// The `upstream` of a route that answers itself.
    pub const NO_UPSTREAM: usize = usize::MAX;
}

#[derive(Debug, Clone, Default)]
pub struct HeaderEdit {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderEdit {
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}
