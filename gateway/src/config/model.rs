//! The YAML model of `edgeward.yaml`, exactly as an operator writes it.
//!
//! Every field that validation may need to point back at is a [`Spanned`] so the
//! error can name `file:line:column`. Defaults are stated on each field.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// The whole configuration file, `edgeward.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// Where this node stands. Default: region `local`, name from the host name.
    #[serde(default)]
    pub node: NodeConfig,
    /// The addresses traffic is accepted on, each with its TLS and
    /// protocol settings; at least one is required.
    pub listeners: Vec<ListenerConfig>,
    /// The admin listener: `/healthz`, `/readyz`, `/metrics`, the status page,
    /// cache purge, reload and `/admin/scale`. Default: none (no admin listener).
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// The services routes send requests to, by name (the name is a metric
    /// label). Default: none.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::named::<UpstreamConfig>")]
    pub upstreams: BTreeMap<String, Spanned<UpstreamConfig>>,
    /// Routes, tried in order; the first whose `match` holds serves the
    /// request, and a request no route matches gets 404. Default: none.
    #[serde(default)]
    #[schemars(with = "Vec<RouteConfig>")]
    pub routes: Vec<Spanned<RouteConfig>>,
    /// What happens on SIGTERM/SIGINT.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// One line per request, apart from the application log: `true` (JSON on
    /// stdout) or `{path: FILE, format: json|combined}`. Default: false.
    #[serde(default)]
    pub access_log: super::access_log::AccessLogYaml,
    /// The response cache's store, shared by every route; a route caches
    /// only with its own `cache:` block. Default: a 256MiB store.
    #[serde(default)]
    pub cache: super::cache::CacheYaml,
    /// Compression (br, gzip) for every route; a route's own block overrides
    /// it key by key. Default: off.
    pub compression: Option<super::compress::CompressionYaml>,
    /// Named Wasm plugins (routers, filters, scalers), built in or loaded
    /// from a `.wasm` file, with their limits and settings. A built-in may
    /// also be named directly by `balancer:`, `filters:` or `policies:`
    /// without an entry here (it then runs with the default limits).
    /// Default: none.
    #[serde(default)]
    #[schemars(schema_with = "super::schema::named::<super::plugins::PluginConfig>")]
    pub plugins: BTreeMap<String, Spanned<super::plugins::PluginConfig>>,
    /// Services the gateway computes replica counts for, from the traffic
    /// it sees, and the scaler plugins that decide. Default: none.
    #[serde(default)]
    pub scaling: super::scaling::ScalingYaml,
}

/// Where this node stands: named in `Via`, logs and metric labels.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    /// Region this node serves, e.g. `eu-west-1` (a metric label: letters,
    /// digits, `._-:/`). Default: `local`.
    #[schemars(with = "Option<super::schema::Label>")]
    pub region: Option<Spanned<String>>,
    /// Name of this node, used in `Via` and logs (at most 128 characters),
    /// e.g. `edge-eu-1`. Default: `edgeward`.
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Zone of this node (e.g. `eu-west-1a`), handed to router plugins, which
    /// may prefer endpoints whose `zone` is the same. Default: none.
    pub zone: Option<String>,
}

/// One address traffic is accepted on.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ListenerConfig {
    /// Name used in logs and in the `listening` line, e.g. `https`. Default: the address.
    pub name: Option<String>,
    /// `ip:port` to bind, e.g. `0.0.0.0:443`.
    #[schemars(with = "String")]
    pub address: Spanned<String>,
    /// TLS settings; without them the listener serves plaintext HTTP/1.1 and
    /// h2c. Default: none (plaintext).
    pub tls: Option<TlsConfig>,
    /// Time a client has to send a complete request head; the first one is
    /// timed from accept, protocol sniff and TLS handshake included. Default: 10s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub header_read_timeout: Option<Spanned<String>>,
    /// A connection with no request in flight for this long is closed. Default: 60s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub idle_timeout: Option<Spanned<String>>,
    /// A response write that makes no progress for this long (a client that
    /// stopped reading, an HTTP/2 stream with a zero window) drops the
    /// response and its upstream connection. Default: 30s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub send_timeout: Option<Spanned<String>>,
    /// Largest request head accepted; larger heads get 431, a longer request
    /// line 414. At least 8KiB. Default: 64KiB.
    #[schemars(with = "Option<super::schema::Size>")]
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
    /// Keep HTTP/1.1 connections open for further requests once a response
    /// is sent; `false` closes each after one exchange (`Connection: close`).
    /// Default: true.
    pub keep_alive: Option<bool>,
    /// Protocols served: `h1` and `h2` over TCP, `h3` over QUIC on the same
    /// address (UDP, needs `tls`). Default: `[h1, h2]`.
    #[schemars(with = "Option<Vec<Protocol>>")]
    pub protocols: Option<Spanned<Vec<Spanned<Protocol>>>>,
    /// HTTP/3 (QUIC) settings; only allowed when `protocols` lists `h3`.
    /// Default: the defaults of each key.
    #[schemars(with = "Option<QuicConfig>")]
    pub quic: Option<Spanned<QuicConfig>>,
    /// Answer every request with a redirect to the same URL over HTTPS
    /// (plaintext listeners only): `true` or `{port: 443, status: 308}`. Default: off.
    #[schemars(with = "Option<super::actions::HttpsRedirectYaml>")]
    pub https_redirect: Option<Spanned<super::actions::HttpsRedirectYaml>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    H1,
    H2,
    H3,
}

/// A listener's HTTP/3 (QUIC) settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct QuicConfig {
    /// Concurrent request streams a client may open per connection. Default: 100.
    #[schemars(with = "Option<u32>")]
    #[schemars(range(min = 1))]
    pub max_concurrent_streams: Option<Spanned<u32>>,
    /// A connection with no traffic for this long is closed. Default: 30s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub idle_timeout: Option<Spanned<String>>,
    /// Largest request header section (QPACK-decoded), e.g. `64KiB`; larger
    /// ones get 431. Default: the listener's `max-header-size`.
    #[schemars(with = "Option<super::schema::Size>")]
    pub max_field_section_size: Option<Spanned<String>>,
    /// Largest request body accepted over HTTP/3, e.g. `10MiB`; larger ones
    /// get 413. Default: unlimited.
    #[schemars(with = "Option<super::schema::Size>")]
    pub max_request_body: Option<Spanned<String>>,
    /// Validate client addresses with a Retry packet before any handshake work
    /// (costs one round trip, blunts spoofed-source floods). Default: false.
    pub retry: Option<bool>,
    /// Accept 0-RTT early data; requests with unsafe methods sent early get
    /// 425 Too Early (RFC 8470). Default: false (early data can be replayed).
    pub zero_rtt: Option<bool>,
    /// `ma` of the `Alt-Svc` header advertised on HTTP/1.1 and HTTP/2 responses. Default: 24h.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub alt_svc_max_age: Option<Spanned<String>>,
}

/// A listener's TLS settings (TLS 1.2 and 1.3; ALPN picks h2 or HTTP/1.1).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsConfig {
    /// Certificates, chosen by the client's SNI; the first is served to
    /// clients whose SNI matches no other (or who send none).
    #[schemars(with = "Vec<CertificateConfig>")]
    pub certificates: Vec<Spanned<CertificateConfig>>,
}

/// One certificate: PEM files (`cert` and `key`), or `self-signed` names.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CertificateConfig {
    /// PEM file with the certificate chain, leaf first, relative to the
    /// config file, e.g. `/etc/edgeward/shop.pem`. Needs `key`.
    #[schemars(with = "Option<String>")]
    pub cert: Option<Spanned<String>>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1), relative to
    /// the config file, e.g. `/etc/edgeward/shop.key`. Needs `cert`.
    #[schemars(with = "Option<String>")]
    pub key: Option<Spanned<String>>,
    /// Generate a self-signed certificate for these DNS names and IP
    /// addresses at start, e.g. `[localhost, 127.0.0.1]`: for development
    /// and the demo (clients need `-k` / `--insecure`). Exclusive with
    /// `cert`/`key`. Default: none.
    pub self_signed: Option<Vec<String>>,
    /// SNI names this certificate answers for; `*.example.com` matches one
    /// label, e.g. `[shop.example.com, "*.shop.example.com"]`. Default: none
    /// (it is only served as the default certificate).
    #[serde(default)]
    pub server_names: Vec<String>,
}

/// The admin listener (plaintext HTTP/1.1).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AdminConfig {
    /// `ip:port` of the admin listener, e.g. `127.0.0.1:9901`.
    #[schemars(with = "String")]
    pub address: Spanned<String>,
    /// Bearer token every endpoint but `/healthz`, `/readyz` and the page at
    /// `/` requires (`Authorization: Bearer <token>`): at least 16 visible
    /// ASCII characters, e.g. from `openssl rand -hex 32`. Required (or
    /// `token-file`) unless the address is loopback. Default: none.
    #[schemars(with = "Option<String>")]
    #[schemars(regex(pattern = r"^[!-~]{16,}$"))]
    pub token: Option<Spanned<String>>,
    /// A file holding the token (surrounding whitespace ignored), instead of
    /// `token`, relative to the config file, e.g. `admin.token`. Default: none.
    #[schemars(with = "Option<String>")]
    pub token_file: Option<Spanned<String>>,
}

/// An upstream service: its endpoints, how one is chosen, and how failures are handled.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UpstreamConfig {
    /// Endpoints: `host:port`, or `{address: host:port, weight: N, tags:
    /// [..], zone: Z}`, e.g. `[10.0.0.5:8080, {address: 10.0.0.6:8080, weight: 2}]`.
    /// Either this or `discovery`.
    #[serde(default)]
    #[schemars(with = "Vec<EndpointConfig>")]
    pub endpoints: Vec<Spanned<EndpointConfig>>,
    /// Endpoints from DNS (e.g. a Kubernetes headless Service), re-resolved
    /// on a timer, instead of `endpoints`. Default: none.
    #[schemars(with = "Option<super::discovery::DiscoveryYaml>")]
    pub discovery: Option<Spanned<super::discovery::DiscoveryYaml>>,
    /// Protocol spoken to the endpoints. Default: `http1`.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Time to establish a TCP connection to an endpoint; a connect that
    /// takes longer fails (and may be retried on another endpoint). Default: 2s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub connect_timeout: Option<Spanned<String>>,
    /// Idle keep-alive connections kept per endpoint for reuse; more are
    /// closed when they become idle. A low cap makes bursts of requests open
    /// and close upstream connections. Default: 1024.
    pub max_idle_per_endpoint: Option<usize>,
    /// How long an idle pooled upstream connection is kept before it is
    /// closed. Default: 90s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub idle_timeout: Option<Spanned<String>>,
    /// The router plugin that picks an endpoint per request: a name under
    /// `plugins:` or a built-in (`round-robin`, `least-connections`,
    /// `weighted`, `ip-hash`, `cookie-affinity`, `read-write-split`,
    /// `shard-by-key`), or `native` for the host's round robin without Wasm,
    /// e.g. `least-connections`. Default: `round-robin`.
    #[schemars(with = "Option<String>")]
    pub balancer: Option<Spanned<String>>,
    /// How long an endpoint that refused a connection is offered to the
    /// router as unhealthy before it is tried again, e.g. `2s`. Default: 10s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub unhealthy_cool_down: Option<Spanned<String>>,
    /// Active health checks (HTTP or TCP) of every endpoint. Default: none.
    #[schemars(with = "Option<super::resilience::HealthCheckYaml>")]
    pub health_check: Option<Spanned<super::resilience::HealthCheckYaml>>,
    /// Passive ejection of endpoints that fail real requests. Default: on
    /// with the defaults of each key.
    #[schemars(with = "Option<super::resilience::OutlierYaml>")]
    pub outlier_detection: Option<Spanned<super::resilience::OutlierYaml>>,
    /// Retries of failed tries on other endpoints, within a budget. Default:
    /// on with the defaults of each key (2 retries).
    #[schemars(with = "Option<super::resilience::RetriesYaml>")]
    pub retries: Option<Spanned<super::resilience::RetriesYaml>>,
    /// Limits past which requests get a fast 503 instead of queueing.
    /// Default: the defaults of each key (1024 each).
    #[schemars(with = "Option<super::resilience::BreakerYaml>")]
    pub circuit_breaker: Option<Spanned<super::resilience::BreakerYaml>>,
    /// Below this percentage (0–100) of healthy endpoints, every endpoint is
    /// offered as healthy (a partial outage must not overload the rest).
    /// Default: 50.
    #[schemars(with = "Option<u32>")]
    #[schemars(range(max = 100))]
    pub panic_threshold: Option<Spanned<u32>>,
}

/// The protocol spoken to an upstream's endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 over keep-alive connections.
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge.
    H2c,
}

/// An endpoint: `host:port`, or a mapping with its weight, tags and zone.
#[derive(Debug, Deserialize, JsonSchema)]
// A misspelt `wieght:` must be refused, not silently ignored.
#[serde(untagged, deny_unknown_fields)]
pub enum EndpointConfig {
    /// `host:port`, e.g. `10.0.0.5:8080`.
    Address(String),
    Detailed {
        /// `host:port` (an IP address or a host name), e.g. `10.0.0.6:8080`.
        address: String,
        /// Relative share of traffic for weight-aware routers, at least 1,
        /// e.g. `2`. Default: 1.
        #[schemars(range(min = 1))]
        weight: Option<u32>,
        /// Labels router plugins select on, e.g. `[canary]`. Default: none.
        #[serde(default)]
        tags: Vec<String>,
        /// The endpoint's zone, e.g. `eu-west-1a`, which zone-aware routers
        /// compare with `node.zone`. Default: none.
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

/// One route: which requests it takes, and where they go.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteConfig {
    /// Name used in logs, errors and metric labels (letters, digits, `._-:/`),
    /// e.g. `products`. Default: `route-<index>`.
    #[schemars(with = "Option<super::schema::Label>")]
    pub name: Option<Spanned<String>>,
    /// What the request must look like; every condition must hold. Default: match all.
    #[serde(default, rename = "match")]
    pub matcher: MatchConfig,
    /// The upstream (a name under `upstreams:`) that serves this route,
    /// e.g. `product`; required unless the route has `respond:`.
    #[schemars(with = "Option<String>")]
    pub upstream: Option<Spanned<String>>,
    /// Answer with this fixed status and body; nothing goes upstream and
    /// no filter runs. Exclusive with `upstream`. Default: none.
    #[schemars(with = "Option<super::actions::RespondYaml>")]
    pub respond: Option<Spanned<super::actions::RespondYaml>>,
    /// Plaintext requests get a redirect to the same URL over HTTPS; HTTPS
    /// ones are served: `true` or `{port: 443, status: 308}`. Default: off.
    #[schemars(with = "Option<super::actions::HttpsRedirectYaml>")]
    pub https_redirect: Option<Spanned<super::actions::HttpsRedirectYaml>>,
    /// Time allowed for the upstream to start answering (the response head,
    /// all tries included); past it the client gets 504. Default: 30s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub timeout: Option<Spanned<String>>,
    /// A response body from upstream that sends no byte for this long is
    /// reset. Default: 60s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub body_idle_timeout: Option<Spanned<String>>,
    /// A request body from the client that sends no byte for this long gets
    /// 408. Default: 60s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub request_body_idle_timeout: Option<Spanned<String>>,
    /// Time allowed for the whole exchange, response body included, e.g.
    /// `2m`. Default: none.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub deadline: Option<Spanned<String>>,
    /// Replace the matched `path-prefix` before forwarding. Default: none.
    pub rewrite: Option<RewriteConfig>,
    /// Headers added to / removed from the request sent upstream. Default: none.
    #[serde(default)]
    pub request_headers: HeaderEditConfig,
    /// Headers added to / removed from the response sent to the client. Default: none.
    #[serde(default)]
    pub response_headers: HeaderEditConfig,
    /// Largest request body accepted, e.g. `10MiB`; larger ones get 413, whether
    /// declared by Content-Length or found while streaming. Default: unlimited.
    #[schemars(with = "Option<super::schema::Size>")]
    pub max_request_body: Option<Spanned<String>>,
    /// Response caching for this route (RFC 9111, in the global store);
    /// `cache: {}` turns it on with the defaults. Default: off.
    pub cache: Option<super::cache::RouteCacheYaml>,
    /// Compression for this route, key by key over the global block.
    /// Default: the global block.
    pub compression: Option<super::compress::CompressionYaml>,
    /// A token bucket per client IP (or route, header, cookie), run by the
    /// built-in `rate-limit` filter as this route's first filter; requests
    /// over it get 429 with `Retry-After`. Default: none.
    #[schemars(with = "Option<super::limits::RateLimitYaml>")]
    pub rate_limit: Option<Spanned<super::limits::RateLimitYaml>>,
    /// Filter plugins (names under `plugins:` or built-ins) run on this
    /// route's requests and responses, in order, e.g. `[shop]`. Default: none.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub filters: Vec<Spanned<String>>,
}

/// What a request must look like for a route to take it; every given condition must hold.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MatchConfig {
    /// Host name (the `Host` header or `:authority`, port ignored), or
    /// `*.example.com` for any one-or-more-label subdomain, e.g.
    /// `api.example.com`. Default: any host.
    #[schemars(with = "Option<String>")]
    pub host: Option<Spanned<String>>,
    /// Path prefix, matched on `/` segment boundaries (`/api` matches `/api`
    /// and `/api/x`, not `/apix`), e.g. `/api`. Default: any path.
    #[schemars(with = "Option<String>")]
    pub path_prefix: Option<Spanned<String>>,
    /// Exact path (the query is not part of it), e.g. `/healthz`. Exclusive
    /// with `path-prefix`. Default: any path.
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// Methods, e.g. `[GET, HEAD]`. Default: any.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub methods: Vec<Spanned<String>>,
    /// Header name → the exact value it must have, e.g. `{x-tenant: blue}`.
    /// Default: none.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, super::schema::HeaderValue>")]
    pub headers: BTreeMap<String, String>,
}

/// A route's path rewrite.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RewriteConfig {
    /// Replaces the route's `match.path-prefix` (with `path-prefix:
    /// /api/products`, `/api/products/7` goes upstream as `/v1/products/7`),
    /// e.g. `/v1/products`.
    #[schemars(with = "String")]
    pub path_prefix: Spanned<String>,
}

/// Header edits.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HeaderEditConfig {
    /// Headers set, replacing any existing value, e.g. `{x-edge: "1"}`. Default: none.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, super::schema::HeaderValue>")]
    pub add: BTreeMap<String, String>,
    /// Header names removed, e.g. `[server]`. Default: none.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Shutdown behaviour.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ShutdownConfig {
    /// How long in-flight requests may run after SIGTERM/SIGINT (listeners
    /// stop accepting at once). Default: 30s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub drain_timeout: Option<Spanned<String>>,
}
