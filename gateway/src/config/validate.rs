//! From the raw YAML model to [`Config`]: every check that needs more than the
//! type system, each failure located at the field that caused it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::error::ConfigIssue;
use super::load::at;
use super::model::ConfigFile;
use super::plugins::{DEFAULT_BALANCER, NATIVE_BALANCER, PluginChecks};
use super::resolved::*;
use super::units::parse_duration;

mod admin;
mod listener;
mod names;
mod quic;
mod route;
mod upstream;
mod usage;

pub use listener::self_signed;
pub use usage::Hostname;

/// A configuration that validated, with its warnings.
pub struct Resolved {
    pub config: Config,
    pub warnings: Vec<ConfigIssue>,
    pub hostnames: Vec<Hostname>,
}

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
pub fn resolve(raw: ConfigFile, file: &Path) -> Result<Resolved, Vec<ConfigIssue>> {
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
            listener::listener(&mut c, i, l, addr)
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
            let mut up = upstream::upstream(&mut c, name, u);
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
            let mut route = route::route(&mut c, i, name, r, &upstream_names)?;
            route::edge_stages(&mut route, i, &r.value, compression.as_ref(), &mut extra);
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
        let config = Config {
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
        };
        Ok(Resolved {
            warnings: usage::unused(&raw, &config),
            hostnames: usage::hostnames(&raw),
            config,
        })
    } else {
        c.issues.sort_by_key(|i| (i.line, i.column));
        Err(c.issues)
    }
}
