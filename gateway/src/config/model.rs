//! The YAML model of `edgeward.yaml`, exactly as an operator writes it.
//!
//! Every field that validation may need to point back at is a [`Spanned`] so the
//! error can name `file:line:column`. Defaults are stated on each field.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// Where this node stands. Default: region `local`, name from the host name.
    #[serde(default)]
    pub node: NodeConfig,
    /// At least one listener is required.
    pub listeners: Vec<ListenerConfig>,
    /// Admin listener (`/healthz`, `/readyz`). Default: none.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Named upstream services.
    #[serde(default)]
    pub upstreams: BTreeMap<String, Spanned<UpstreamConfig>>,
    /// Routes, tried in order; the first match wins.
    #[serde(default)]
    pub routes: Vec<Spanned<RouteConfig>>,
    /// Shutdown behaviour.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// One line per request, apart from the application log: `true` (JSON on
    /// stdout) or `{path: FILE, format: json|combined}`. Default: false.
    #[serde(default)]
    pub access_log: super::access_log::AccessLogYaml,
    /// The response cache's store. Default: 256MiB; routes opt in with `cache:`.
    #[serde(default)]
    pub cache: super::cache::CacheYaml,
    /// Compression for every route (a route's own block overrides it). Default: off.
    pub compression: Option<super::compress::CompressionYaml>,
    /// Named Wasm plugins (routers, filters). Built-ins may also be named
    /// directly by `balancer:` / `filters:` without an entry here.
    #[serde(default)]
    pub plugins: BTreeMap<String, Spanned<super::plugins::PluginConfig>>,
    /// Scaled services and their scaler plugins. Default: none.
    #[serde(default)]
    pub scaling: super::scaling::ScalingYaml,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    /// Region this node serves, e.g. `eu-west-1` (a metric label: letters,
    /// digits, `._-:/`). Default: `local`.
    pub region: Option<Spanned<String>>,
    /// Name of this node, used in `Via` and logs. Default: `edgeward`.
    pub name: Option<Spanned<String>>,
    /// Zone of this node, which routers may prefer endpoints in. Default: none.
    pub zone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ListenerConfig {
    /// Name used in logs. Default: the address.
    pub name: Option<String>,
    /// `ip:port` to bind, e.g. `0.0.0.0:443`.
    pub address: Spanned<String>,
    /// TLS settings; without them the listener serves plaintext HTTP/1.1 and h2c.
    pub tls: Option<TlsConfig>,
    /// Time a client has to send a complete request head; the first one is
    /// timed from accept, protocol sniff and TLS handshake included. Default: 10s.
    pub header_read_timeout: Option<Spanned<String>>,
    /// A connection with no request in flight for this long is closed. Default: 60s.
    pub idle_timeout: Option<Spanned<String>>,
    /// A response write that makes no progress for this long (a client that
    /// stopped reading, an HTTP/2 stream with a zero window) drops the
    /// response and its upstream connection. Default: 30s.
    pub send_timeout: Option<Spanned<String>>,
    /// Largest request head accepted, e.g. `64KiB`. Default: 64KiB (minimum 8KiB).
    pub max_header_size: Option<Spanned<String>>,
    /// Open connections this listener holds at most; more are closed at
    /// accept. Default: 20000.
    pub max_connections: Option<usize>,
    /// Open connections one client IP may hold. Default: 1024.
    pub max_connections_per_ip: Option<usize>,
    /// Concurrent HTTP/2 streams per connection. Default: 256.
    pub max_concurrent_streams: Option<u32>,
    /// Keep the client's `X-Request-Id` (a balancer in front sets it) instead
    /// of generating one. Default: false.
    pub trust_request_id: Option<bool>,
    /// Keep idle HTTP/1.1 connections open for reuse. Default: true.
    pub keep_alive: Option<bool>,
    /// Protocols served: `h1` and `h2` over TCP, `h3` over QUIC on the same
    /// address (UDP, needs `tls`). Default: `[h1, h2]`.
    pub protocols: Option<Spanned<Vec<Spanned<Protocol>>>>,
    /// HTTP/3 settings; only meaningful when `protocols` lists `h3`. Default: see [`QuicConfig`].
    pub quic: Option<Spanned<QuicConfig>>,
    /// Answer every request with a redirect to the same URL over HTTPS
    /// (plaintext listeners only): `true` or `{port: 443, status: 308}`. Default: off.
    pub https_redirect: Option<Spanned<super::actions::HttpsRedirectYaml>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    H1,
    H2,
    H3,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct QuicConfig {
    /// Concurrent request streams a client may open per connection. Default: 100.
    pub max_concurrent_streams: Option<Spanned<u32>>,
    /// A connection with no traffic for this long is closed. Default: 30s.
    pub idle_timeout: Option<Spanned<String>>,
    /// Largest request header section (QPACK-decoded). Default: the listener's `max-header-size`.
    pub max_field_section_size: Option<Spanned<String>>,
    /// Largest request body accepted over HTTP/3; larger ones get 413. Default: unlimited.
    pub max_request_body: Option<Spanned<String>>,
    /// Validate client addresses with a Retry packet before any handshake work
    /// (costs one round trip, blunts spoofed-source floods). Default: false.
    pub retry: Option<bool>,
    /// Accept 0-RTT early data; requests with unsafe methods sent early get
    /// 425 Too Early (RFC 8470). Default: false (early data can be replayed).
    pub zero_rtt: Option<bool>,
    /// `ma` of the `Alt-Svc` header advertised on HTTP/1.1 and HTTP/2 responses. Default: 24h.
    pub alt_svc_max_age: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsConfig {
    /// Certificates; the first is served to clients whose SNI matches no other.
    pub certificates: Vec<Spanned<CertificateConfig>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CertificateConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: Option<Spanned<String>>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<Spanned<String>>,
    /// Generate a self-signed certificate for these names at start (for
    /// development and the demo). Exclusive with `cert`/`key`.
    pub self_signed: Option<Vec<String>>,
    /// SNI names this certificate answers for; `*.example.com` matches one label.
    /// Default: none (only the default certificate).
    #[serde(default)]
    pub server_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AdminConfig {
    /// `ip:port` of the admin listener, e.g. `127.0.0.1:9901`.
    pub address: Spanned<String>,
    /// Bearer token every endpoint but `/healthz`, `/readyz` and the page at `/` requires
    /// (`Authorization: Bearer <token>`). Required unless the address is loopback.
    pub token: Option<Spanned<String>>,
    /// A file holding the token (surrounding whitespace ignored), instead of `token`.
    pub token_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UpstreamConfig {
    /// Endpoints: `host:port`, or `{address: host:port, weight: N}`. Either
    /// this or `discovery`.
    #[serde(default)]
    pub endpoints: Vec<Spanned<EndpointConfig>>,
    /// Endpoints from DNS, re-resolved on a timer (see `config::discovery`).
    pub discovery: Option<Spanned<super::discovery::DiscoveryYaml>>,
    /// Protocol spoken to the endpoints. Default: `http1`.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Time to establish a TCP connection. Default: 2s.
    pub connect_timeout: Option<Spanned<String>>,
    /// Idle pooled connections kept per endpoint. Default: 1024 (a low cap makes
    /// bursts of HTTP/2 streams open and close upstream connections).
    pub max_idle_per_endpoint: Option<usize>,
    /// How long an idle pooled connection is kept. Default: 90s.
    pub idle_timeout: Option<Spanned<String>>,
    /// The router plugin that picks an endpoint per request, or `native` for the
    /// host's round robin without Wasm. Default: `round-robin` (the built-in plugin).
    pub balancer: Option<Spanned<String>>,
    /// How long an endpoint that refused a connection is offered as unhealthy
    /// before it is tried again. Default: 10s.
    pub unhealthy_cool_down: Option<Spanned<String>>,
    /// Active health checks (HTTP or TCP). Default: none.
    pub health_check: Option<Spanned<super::resilience::HealthCheckYaml>>,
    /// Passive ejection of failing endpoints. Default: on, 5 errors, 30s, 50 %.
    pub outlier_detection: Option<Spanned<super::resilience::OutlierYaml>>,
    /// Retries of failed tries on other endpoints, within a budget. Default: 2 retries.
    pub retries: Option<Spanned<super::resilience::RetriesYaml>>,
    /// Limits past which requests get a fast 503. Default: 1024 each.
    pub circuit_breaker: Option<Spanned<super::resilience::BreakerYaml>>,
    /// Below this percentage of healthy endpoints every endpoint is used. Default: 50.
    pub panic_threshold: Option<Spanned<u32>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge.
    H2c,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EndpointConfig {
    Address(String),
    Detailed {
        address: String,
        /// Relative share of traffic. Default: 1.
        weight: Option<u32>,
        /// Labels router plugins can select on (e.g. `canary`). Default: none.
        #[serde(default)]
        tags: Vec<String>,
        /// The endpoint's zone. Default: unknown.
        zone: Option<String>,
    },
}

impl EndpointConfig {
    pub fn address(&self) -> &str {
        match self {
            Self::Address(a) | Self::Detailed { address: a, .. } => a,
        }
    }

    pub fn tags(&self) -> &[String] {
        match self {
            Self::Address(_) => &[],
            Self::Detailed { tags, .. } => tags,
        }
    }

    pub fn zone(&self) -> Option<&str> {
        match self {
            Self::Address(_) => None,
            Self::Detailed { zone, .. } => zone.as_deref(),
        }
    }

    pub fn weight(&self) -> u32 {
        match self {
            Self::Address(_) => 1,
            Self::Detailed { weight, .. } => weight.unwrap_or(1),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteConfig {
    /// Name used in logs, errors and metric labels (letters, digits, `._-:/`).
    /// Default: `route-<index>`.
    pub name: Option<Spanned<String>>,
    /// What the request must look like; every condition must hold. Default: match all.
    #[serde(default, rename = "match")]
    pub matcher: MatchConfig,
    /// The upstream service that serves this route; required unless the
    /// route has `respond:`.
    pub upstream: Option<Spanned<String>>,
    /// Answer with this fixed status and body; nothing goes upstream and
    /// no filter runs. Exclusive with `upstream`. Default: none.
    pub respond: Option<Spanned<super::actions::RespondYaml>>,
    /// Plaintext requests get a redirect to the same URL over HTTPS; HTTPS
    /// ones are served: `true` or `{port: 443, status: 308}`. Default: off.
    pub https_redirect: Option<Spanned<super::actions::HttpsRedirectYaml>>,
    /// Time allowed for the upstream to start answering. Default: 30s.
    pub timeout: Option<Spanned<String>>,
    /// A response body that sends no byte for this long is reset. Default: 60s.
    pub body_idle_timeout: Option<Spanned<String>>,
    /// A request body that sends no byte for this long gets 408. Default: 60s.
    pub request_body_idle_timeout: Option<Spanned<String>>,
    /// The whole exchange, response body included. Default: none.
    pub deadline: Option<Spanned<String>>,
    /// Replace the matched path prefix before forwarding.
    pub rewrite: Option<RewriteConfig>,
    /// Headers added to / removed from the request sent upstream.
    #[serde(default)]
    pub request_headers: HeaderEditConfig,
    /// Headers added to / removed from the response sent to the client.
    #[serde(default)]
    pub response_headers: HeaderEditConfig,
    /// Largest request body accepted, e.g. `10MiB`; larger ones get 413, whether
    /// declared by Content-Length or found while streaming. Default: unlimited.
    pub max_request_body: Option<Spanned<String>>,
    /// Response caching for this route. Default: off.
    pub cache: Option<super::cache::RouteCacheYaml>,
    /// Compression for this route, over the global block. Default: the global block.
    pub compression: Option<super::compress::CompressionYaml>,
    /// A token bucket per client IP (or route, header, cookie), run by the
    /// built-in `rate-limit` filter as this route's first filter; requests
    /// over it get 429 with `Retry-After`. Default: none.
    pub rate_limit: Option<Spanned<super::limits::RateLimitYaml>>,
    /// Filter plugins run on this route's requests and responses, in order. Default: none.
    #[serde(default)]
    pub filters: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MatchConfig {
    /// Host name, or `*.example.com` for any one-or-more-label subdomain.
    pub host: Option<Spanned<String>>,
    /// Path prefix, matched on `/` segment boundaries (`/api` matches `/api/x`, not `/apix`).
    pub path_prefix: Option<Spanned<String>>,
    /// Exact path (query excluded). Exclusive with `path-prefix`.
    pub path: Option<Spanned<String>>,
    /// Methods, e.g. `[GET, HEAD]`. Default: any.
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    /// Header name → exact value that must be present.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RewriteConfig {
    /// Replaces the route's `path-prefix` (e.g. `/api/products` → `/v1/products`).
    pub path_prefix: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HeaderEditConfig {
    /// Headers set (replacing any existing value).
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Header names removed.
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ShutdownConfig {
    /// How long in-flight requests may run after SIGTERM/SIGINT. Default: 30s.
    pub drain_timeout: Option<Spanned<String>>,
}
