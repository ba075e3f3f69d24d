//! From the raw YAML model to [`Config`]: every check that needs more than the
//! type system, each failure located at the field that caused it.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use http::{HeaderName, HeaderValue, Method};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_saphyr::{Location, Spanned};

use super::error::{ConfigIssue, did_you_mean};
use super::load::at;
use super::model::{self, ConfigFile};
use super::plugins::{DEFAULT_BALANCER, NATIVE_BALANCER, PluginChecks};
use super::resolved::*;
use super::units::{parse_duration, parse_size};
use crate::matching::{HostMatch, PathMatch, RouteMatch};

/// How long an endpoint that refused a connection stays out of rotation, by default.
const UNHEALTHY_COOL_DOWN: Duration = Duration::from_secs(10);

mod admin;
mod names;
mod quic;

/// Collects issues so one run of `edgeward check` reports all of them.
struct Checker<'a> {
    issues: Vec<ConfigIssue>,
    /// Directory relative paths (certificates) are resolved against.
    base: &'a Path,
}

impl Checker<'_> {
    fn issue(&mut self, loc: &Location, path: impl Into<String>, message: impl Into<String>) {
        let (line, column) = at(loc);
        self.issues.push(ConfigIssue {
            line,
            column,
            path: path.into(),
            message: message.into(),
        });
    }

    fn duration(
        &mut self,
        field: &Option<Spanned<String>>,
        path: impl Fn() -> String,
        default: Duration,
    ) -> Duration {
        let Some(f) = field else { return default };
        match parse_duration(&f.value) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.issue(&f.referenced, path(), "must be greater than zero");
                default
            }
            Err(e) => {
                self.issue(&f.referenced, path(), e);
                default
            }
        }
    }

    fn socket_addr(
        &mut self,
        field: &Spanned<String>,
        path: impl Into<String>,
    ) -> Option<SocketAddr> {
        match field.value.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.issue(
                    &field.referenced,
                    path,
                    format!(
                        "\"{}\" is not an ip:port address; write e.g. \"0.0.0.0:8080\" or \"[::]:443\"",
                        field.value
                    ),
                );
                None
            }
        }
    }
}

/// Validates `raw`; `file` is used for relative certificate paths.
pub fn resolve(raw: ConfigFile, file: &Path) -> Result<Config, Vec<ConfigIssue>> {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut c = Checker {
        issues: Vec::new(),
        base,
    };
    let root = Location::UNKNOWN;

    let node = Node {
        region: raw
            .node
            .region
            .as_ref()
            .map_or_else(|| "local".into(), |r| r.value.clone()),
        name: raw
            .node
            .name
            .as_ref()
            .map_or_else(|| "edgeward".into(), |n| n.value.clone()),
        zone: raw.node.zone.clone(),
    };
    if let Some(n) = &raw.node.name
        && (n.value.is_empty()
            || !n
                .value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)))
    {
        c.issue(
            &n.referenced,
            "node.name",
            "use letters, digits, '-', '.' or '_' only (it is sent in the Via header)",
        );
    }

    names::check(&mut c, &raw);

    if raw.listeners.is_empty() {
        c.issue(
            &root,
            "listeners",
            "at least one listener is required, e.g. `listeners: [{address: \"0.0.0.0:8080\"}]`",
        );
    }
    let mut bound = HashSet::new();
    let listeners: Vec<Listener> = raw
        .listeners
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let addr = c.socket_addr(&l.address, format!("listeners[{i}].address"))?;
            // Port 0 is a fresh port from the OS each time: never a collision.
            if addr.port() != 0 && !bound.insert(addr) {
                c.issue(
                    &l.address.referenced,
                    format!("listeners[{i}].address"),
                    format!("{addr} is already used by another listener"),
                );
            }
            listener(&mut c, i, l, addr)
        })
        .collect();

    let (admin, admin_token) = admin::resolve(&mut c, raw.admin.as_ref(), &listeners);

    let builtins: Vec<&str> = crate::builtins::names().collect();
    let file_name = file.display().to_string();
    let mut checks = PluginChecks {
        file: &file_name,
        base,
        builtins: &builtins,
        issues: Vec::new(),
    };
    let mut plugins = checks.specs(&raw.plugins);

    let upstream_names: Vec<&str> = raw.upstreams.keys().map(String::as_str).collect();
    let mut resilience_issues = Vec::new();
    let upstreams: Vec<Upstream> = raw
        .upstreams
        .iter()
        .map(|(name, u)| {
            let mut up = upstream(&mut c, name, u);
            let v = &u.value;
            up.resilience = super::resilience::resolve_upstream(
                &super::resilience::UpstreamYaml {
                    health_check: v.health_check.as_ref(),
                    outlier: v.outlier_detection.as_ref(),
                    retries: v.retries.as_ref(),
                    breaker: v.circuit_breaker.as_ref(),
                    panic_threshold: v.panic_threshold.as_ref(),
                },
                &format!("upstreams.{name}"),
                &mut resilience_issues,
            );
            up.balancer = match &u.value.balancer {
                Some(b)
                    if b.value == NATIVE_BALANCER && !raw.plugins.contains_key(NATIVE_BALANCER) =>
                {
                    None
                }
                Some(b) => checks.reference(&mut plugins, b, format!("upstreams.{name}.balancer")),
                // Without the embedded built-in (a build that skipped plugins/)
                // the native round robin serves.
                None if builtins.contains(&DEFAULT_BALANCER) => {
                    let implicit =
                        Spanned::new(DEFAULT_BALANCER.to_owned(), u.referenced, u.referenced);
                    checks.reference(
                        &mut plugins,
                        &implicit,
                        format!("upstreams.{name}.balancer"),
                    )
                }
                None => None,
            };
            up
        })
        .collect();

    let mut extra = resilience_issues;
    let cache = super::cache::resolve_global(&raw.cache, &mut extra);
    let compression = raw
        .compression
        .as_ref()
        .map(|y| super::compress::resolve(&Default::default(), y, "compression", &mut extra));
    let mut route_names = HashSet::new();
    let routes: Vec<Route> = raw
        .routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let name =
                (r.value.name.as_ref()).map_or_else(|| format!("route-{i}"), |n| n.value.clone());
            if !route_names.insert(name.clone()) {
                c.issue(
                    &r.referenced,
                    format!("routes[{i}].name"),
                    format!(
                        "another route is already named \"{name}\"; route names must be unique"
                    ),
                );
            }
            let mut route = route(&mut c, i, name, r, &upstream_names)?;
            edge_stages(&mut route, i, &r.value, compression.as_ref(), &mut extra);
            // The limiter runs first, so a refused request costs no other filter.
            let limiter = match (&route.rate_limit, &r.value.rate_limit) {
                (Some(limit), Some(block)) => checks.implied(
                    &mut plugins,
                    super::limits::RateLimit::plugin_name(&route.name),
                    super::limits::RATE_LIMIT_BUILTIN,
                    limit.plugin_config(),
                    &block.referenced,
                    format!("routes[{i}].rate-limit"),
                ),
                _ => None,
            };
            route.filters = limiter
                .into_iter()
                .chain(r.value.filters.iter().enumerate().filter_map(|(j, f)| {
                    checks.reference(&mut plugins, f, format!("routes[{i}].filters[{j}]"))
                }))
                .collect();
            Some(route)
        })
        .collect();
    let scaling = super::scaling::resolve(
        &raw.scaling,
        &upstream_names,
        &mut checks,
        &mut plugins,
        &mut extra,
    );
    for e in extra {
        c.issue(&e.at, e.path, e.message);
    }
    c.issues.append(&mut checks.issues);

    let drain_timeout = c.duration(
        &raw.shutdown.drain_timeout,
        || "shutdown.drain-timeout".into(),
        Duration::from_secs(30),
    );

    if c.issues.is_empty() {
        Ok(Config {
            node,
            listeners,
            admin,
            admin_token,
            upstreams,
            routes,
            drain_timeout,
            access_log: super::access_log::resolve(&raw.access_log, base),
            cache,
            plugins,
            scaling,
        })
    } else {
        c.issues.sort_by_key(|i| (i.line, i.column));
        Err(c.issues)
    }
}

fn listener(
    c: &mut Checker,
    i: usize,
    l: &model::ListenerConfig,
    addr: SocketAddr,
) -> Option<Listener> {
    let path = |f: &str| format!("listeners[{i}].{f}");
    let header_read_timeout = c.duration(
        &l.header_read_timeout,
        || path("header-read-timeout"),
        Duration::from_secs(10),
    );
    let idle_timeout = c.duration(
        &l.idle_timeout,
        || path("idle-timeout"),
        Duration::from_secs(60),
    );
    let send_timeout = c.duration(
        &l.send_timeout,
        || path("send-timeout"),
        Duration::from_secs(30),
    );
    let max_header_size = match &l.max_header_size {
        None => 64 << 10,
        Some(s) => match parse_size(&s.value) {
            Ok(n) if n >= 8192 => n,
            Ok(_) => {
                c.issue(
                    &s.referenced,
                    path("max-header-size"),
                    "must be at least 8KiB",
                );
                64 << 10
            }
            Err(e) => {
                c.issue(&s.referenced, path("max-header-size"), e);
                64 << 10
            }
        },
    };
    let tls = l.tls.as_ref().map(|t| {
        if t.certificates.is_empty() {
            c.issue(
                &l.address.referenced,
                path("tls.certificates"),
                "a TLS listener needs at least one certificate",
            );
        }
        t.certificates
            .iter()
            .enumerate()
            .filter_map(|(j, cert)| {
                certificate(c, &format!("listeners[{i}].tls.certificates[{j}]"), cert)
            })
            .collect::<Vec<_>>()
    });
    let https_redirect = l.https_redirect.as_ref().and_then(|y| {
        if l.tls.is_some() {
            c.issue(
                &y.referenced,
                path("https-redirect"),
                "this listener already serves HTTPS; redirect from a plaintext listener",
            );
            return None;
        }
        let mut found = Vec::new();
        let r = super::actions::https_redirect(y, &path("https-redirect"), &mut found);
        for e in found {
            c.issue(&e.at, e.path, e.message);
        }
        r
    });
    Some(Listener {
        https_redirect,
        name: l.name.clone().unwrap_or_else(|| addr.to_string()),
        addr,
        tls,
        header_read_timeout,
        idle_timeout,
        send_timeout,
        max_header_size,
        max_concurrent_streams: l.max_concurrent_streams.unwrap_or(256).max(1),
        keep_alive: l.keep_alive.unwrap_or(true),
        trust_request_id: l.trust_request_id.unwrap_or(false),
        max_connections: l.max_connections.unwrap_or(20_000).max(1),
        max_connections_per_ip: l.max_connections_per_ip.unwrap_or(1024).max(1),
        protocols: quic::protocols(c, i, l),
        quic: quic::settings(c, i, l, max_header_size),
    })
}

fn certificate(
    c: &mut Checker,
    path: &str,
    cert: &Spanned<model::CertificateConfig>,
) -> Option<TlsCert> {
    let v = &cert.value;
    let key = match (&v.cert, &v.key, &v.self_signed) {
        (None, None, Some(names)) => self_signed(names)
            .map_err(|e| c.issue(&cert.referenced, format!("{path}.self-signed"), e))
            .ok()?,
        (Some(cert_file), Some(key_file), None) => {
            let chain = read_chain(&c.base.join(&cert_file.value))
                .map_err(|e| c.issue(&cert_file.referenced, format!("{path}.cert"), e))
                .ok();
            let key = read_key(&c.base.join(&key_file.value))
                .map_err(|e| c.issue(&key_file.referenced, format!("{path}.key"), e))
                .ok();
            let (chain, key) = (chain?, key?);
            let provider = rustls::crypto::ring::default_provider();
            match CertifiedKey::from_der(chain, key, &provider) {
                Ok(k) => k,
                Err(e) => {
                    c.issue(
                        &key_file.referenced,
                        format!("{path}.key"),
                        format!("does not fit the certificate: {e}"),
                    );
                    return None;
                }
            }
        }
        _ => {
            c.issue(
                &cert.referenced,
                path,
                "give either `cert` and `key` (PEM files) or `self-signed: [names…]`",
            );
            return None;
        }
    };
    Some(TlsCert {
        key: Arc::new(key),
        server_names: v
            .server_names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect(),
    })
}

/// A certificate generated at start, for development and the demo.
pub fn self_signed(names: &[String]) -> Result<CertifiedKey, String> {
    if names.is_empty() {
        return Err("list at least one name, e.g. [localhost, 127.0.0.1]".into());
    }
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| format!("cannot generate a certificate: {e}"))?;
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .map_err(|e| e.to_string())?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| e.to_string())?;
    Ok(CertifiedKey::new(
        vec![generated.cert.der().clone()],
        signer,
    ))
}

fn read_chain(file: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<_> = CertificateDer::pem_file_iter(file)
        .map_err(|e| {
            format!(
                "cannot read {}: {e} (relative paths start at the config file's directory)",
                file.display()
            )
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", file.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no CERTIFICATE block", file.display()));
    }
    Ok(chain)
}

fn read_key(file: &PathBuf) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(file)
        .map_err(|e| format!("cannot read a private key from {}: {e} (relative paths start at the config file's directory)", file.display()))
}

fn upstream(c: &mut Checker, name: &str, u: &Spanned<model::UpstreamConfig>) -> Upstream {
    let path = |f: &str| format!("upstreams.{name}.{f}");
    let mut found = Vec::new();
    let discovery = u
        .value
        .discovery
        .as_ref()
        .and_then(|d| super::discovery::resolve(d, &path("discovery"), &mut found));
    for i in found {
        c.issue(&i.at, i.path, i.message);
    }
    match (&u.value.discovery, u.value.endpoints.first()) {
        (None, None) => c.issue(
            &u.referenced,
            path("endpoints"),
            "an upstream needs at least one endpoint (`host:port`), or `discovery: {dns: name:port}`",
        ),
        (Some(_), Some(e)) => c.issue(
            &e.referenced,
            path("endpoints"),
            "give either `endpoints` or `discovery`, not both (discovered endpoints replace the list)",
        ),
        _ => {}
    }
    let endpoints = u
        .value
        .endpoints
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let address = e.value.address();
            let authority = address
                .parse::<Authority>()
                .ok()
                .filter(|a| a.port_u16().is_some() && !address.contains('@'));
            if authority.is_none() {
                c.issue(
                    &e.referenced,
                    path(&format!("endpoints[{i}]")),
                    format!("\"{address}\" is not host:port; write e.g. \"10.0.0.5:8080\""),
                );
            }
            if e.value.weight() == 0 {
                c.issue(
                    &e.referenced,
                    path(&format!("endpoints[{i}].weight")),
                    "weight must be at least 1 (remove the endpoint to send it nothing)",
                );
            }
            Some(Endpoint {
                authority: authority?,
                weight: e.value.weight(),
                tags: e.value.tags().to_vec(),
                zone: e.value.zone().map(str::to_owned),
            })
        })
        .collect();
    Upstream {
        name: name.to_owned(),
        endpoints,
        protocol: u.value.protocol,
        connect_timeout: c.duration(
            &u.value.connect_timeout,
            || path("connect-timeout"),
            Duration::from_secs(2),
        ),
        max_idle_per_endpoint: u.value.max_idle_per_endpoint.unwrap_or(1024),
        idle_timeout: c.duration(
            &u.value.idle_timeout,
            || path("idle-timeout"),
            Duration::from_secs(90),
        ),
        balancer: None,
        unhealthy_cool_down: c.duration(
            &u.value.unhealthy_cool_down,
            || path("unhealthy-cool-down"),
            UNHEALTHY_COOL_DOWN,
        ),
        discovery,
        resilience: Default::default(),
    }
}

fn route(
    c: &mut Checker,
    i: usize,
    name: String,
    r: &Spanned<model::RouteConfig>,
    upstreams: &[&str],
) -> Option<Route> {
    let v = &r.value;
    let path = |f: &str| format!("routes[{i}].{f}");
    let mut found = Vec::new();
    let respond = v
        .respond
        .as_ref()
        .map(|y| super::actions::respond(y, &path("respond"), &mut found));
    let https_redirect = v
        .https_redirect
        .as_ref()
        .and_then(|y| super::actions::https_redirect(y, &path("https-redirect"), &mut found));
    for e in found {
        c.issue(&e.at, e.path, e.message);
    }
    let upstream = match (&v.upstream, &v.respond) {
        (Some(u), None) => {
            let found = upstreams.iter().position(|n| *n == u.value);
            if found.is_none() {
                let hint = did_you_mean(&u.value, upstreams.iter().copied());
                let known = if upstreams.is_empty() {
                    "none are defined under `upstreams:`".to_owned()
                } else {
                    format!("known: {}", upstreams.join(", "))
                };
                c.issue(
                    &u.referenced,
                    path("upstream"),
                    format!("no upstream named \"{}\"{hint}; {known}", u.value),
                );
            }
            found
        }
        (None, Some(y)) => {
            // What a fixed answer would silently skip is an error, not a surprise.
            let skipped = [
                ("filters", !v.filters.is_empty()),
                ("rate-limit", v.rate_limit.is_some()),
                ("cache", v.cache.is_some()),
                ("rewrite", v.rewrite.is_some()),
                ("max-request-body", v.max_request_body.is_some()),
            ];
            for (key, _) in skipped.iter().filter(|(_, set)| *set) {
                c.issue(
                    &y.referenced,
                    path(key),
                    format!("a route with `respond:` answers by itself; `{key}` has no effect, remove it"),
                );
            }
            Some(Route::NO_UPSTREAM)
        }
        (Some(u), Some(_)) => {
            c.issue(
                &u.referenced,
                path("upstream"),
                "give either `upstream:` or `respond:`, not both",
            );
            None
        }
        (None, None) => {
            c.issue(
                &r.referenced,
                path("upstream"),
                "a route needs `upstream: <name>` (or `respond:` for a fixed answer)",
            );
            None
        }
    };
    let respond = respond.flatten();
    let m = &v.matcher;
    let host = m.host.as_ref().and_then(|h| {
        HostMatch::parse(&h.value)
            .map_err(|e| c.issue(&h.referenced, path("match.host"), e))
            .ok()
    });
    let mut check_path = |f: &Spanned<String>, field: &str| {
        if !f.value.starts_with('/') {
            c.issue(
                &f.referenced,
                path(field),
                format!("\"{}\" must start with '/'", f.value),
            );
        }
    };
    let path_match = match (&m.path_prefix, &m.path) {
        (Some(p), None) => {
            check_path(p, "match.path-prefix");
            Some(PathMatch::Prefix(p.value.clone()))
        }
        (None, Some(p)) => {
            check_path(p, "match.path");
            Some(PathMatch::Exact(p.value.clone()))
        }
        (Some(_), Some(p)) => {
            c.issue(
                &p.referenced,
                path("match.path"),
                "use either `path` (exact) or `path-prefix`, not both",
            );
            None
        }
        (None, None) => None,
    };
    let methods = m
        .methods
        .iter()
        .filter_map(|s| {
            let upper = s.value.to_ascii_uppercase();
            Method::from_bytes(upper.as_bytes())
                .map_err(|_| {
                    c.issue(
                        &s.referenced,
                        path("match.methods"),
                        format!("\"{}\" is not an HTTP method", s.value),
                    )
                })
                .ok()
        })
        .collect();
    let headers = header_pairs(c, &r.referenced, &path("match.headers"), &m.headers);
    let rewrite = v.rewrite.as_ref().and_then(|rw| {
        let Some(prefix) = &m.path_prefix else {
            c.issue(
                &rw.path_prefix.referenced,
                path("rewrite.path-prefix"),
                "a prefix rewrite needs `match.path-prefix` on the same route",
            );
            return None;
        };
        if !rw.path_prefix.value.starts_with('/') {
            c.issue(
                &rw.path_prefix.referenced,
                path("rewrite.path-prefix"),
                format!("\"{}\" must start with '/'", rw.path_prefix.value),
            );
        }
        Some((prefix.value.clone(), rw.path_prefix.value.clone()))
    });
    let request_headers = header_edit(
        c,
        &r.referenced,
        &path("request-headers"),
        &v.request_headers,
    );
    let response_headers = header_edit(
        c,
        &r.referenced,
        &path("response-headers"),
        &v.response_headers,
    );
    let timeout = c.duration(&v.timeout, || path("timeout"), Duration::from_secs(30));
    let max_request_body = v.max_request_body.as_ref().and_then(|m| {
        parse_size(&m.value)
            .map(|n| n as u64)
            .map_err(|e| c.issue(&m.referenced, path("max-request-body"), e))
            .ok()
    });
    Some(Route {
        name,
        matcher: RouteMatch {
            host,
            path: path_match,
            methods,
            headers,
        },
        upstream: upstream?,
        timeout,
        body_timeouts: Default::default(),
        rewrite,
        request_headers,
        response_headers,
        max_request_body,
        cache: None,
        compression: None,
        filters: Vec::new(),
        rate_limit: None,
        respond,
        https_redirect,
    })
}

/// The route's cache and compression stages; the global compression block
/// (already resolved) is the base a route's own block overrides.
fn edge_stages(
    route: &mut Route,
    i: usize,
    r: &model::RouteConfig,
    global: Option<&Option<super::compress::Compression>>,
    issues: &mut Vec<super::cache::Issue>,
) {
    let path = format!("routes[{i}]");
    route.body_timeouts = super::resilience::resolve_route(
        r.body_idle_timeout.as_ref(),
        r.request_body_idle_timeout.as_ref(),
        r.deadline.as_ref(),
        &path,
        issues,
    );
    route.rate_limit = r
        .rate_limit
        .as_ref()
        .and_then(|y| super::limits::resolve(y, &format!("{path}.rate-limit"), issues));
    route.cache = r
        .cache
        .as_ref()
        .and_then(|y| super::cache::resolve_route(y, &format!("{path}.cache"), issues));
    let base = global.and_then(Option::as_ref);
    let compression = match &r.compression {
        Some(y) => super::compress::resolve(
            &base.cloned().unwrap_or_default(),
            y,
            &format!("{path}.compression"),
            issues,
        ),
        None => base.cloned(),
    };
    route.compression = compression.map(Arc::new);
}

fn header_pairs(
    c: &mut Checker,
    loc: &Location,
    path: &str,
    map: &BTreeMap<String, String>,
) -> Vec<(HeaderName, HeaderValue)> {
    map.iter()
        .filter_map(|(k, v)| {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                c.issue(
                    loc,
                    format!("{path}.{k}"),
                    format!("\"{k}\" is not a valid header name"),
                )
            });
            let value = HeaderValue::from_str(v).map_err(|_| {
                c.issue(
                    loc,
                    format!("{path}.{k}"),
                    "the value has characters a header cannot carry",
                )
            });
            Some((name.ok()?, value.ok()?))
        })
        .collect()
}

fn header_edit(
    c: &mut Checker,
    loc: &Location,
    path: &str,
    edit: &model::HeaderEditConfig,
) -> HeaderEdit {
    HeaderEdit {
        set: header_pairs(c, loc, &format!("{path}.add"), &edit.add),
        remove: edit
            .remove
            .iter()
            .filter_map(|k| {
                HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| {
                        c.issue(
                            loc,
                            format!("{path}.remove"),
                            format!("\"{k}\" is not a valid header name"),
                        )
                    })
                    .ok()
            })
            .collect(),
    }
}
