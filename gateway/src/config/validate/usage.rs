//! What a valid configuration defines but never uses, and the endpoints
//! given by host name: warnings, since the file serves as it is.

use std::net::IpAddr;

use http::uri::Authority;
use serde_saphyr::Location;

use super::super::error::ConfigIssue;
use super::super::load::at;
use super::super::model::ConfigFile;
use super::super::resolved::{Config, Route};

fn warning(loc: &Location, path: String, message: String) -> ConfigIssue {
    let (line, column) = at(loc);
    ConfigIssue {
        line,
        column,
        path,
        message,
    }
}

/// Upstreams no route sends to, and plugins nothing runs.
pub(super) fn unused(raw: &ConfigFile, config: &Config) -> Vec<ConfigIssue> {
    let mut out = Vec::new();
    for (name, u) in &raw.upstreams {
        let routed = config
            .routes
            .iter()
            .filter(|r| r.upstream != Route::NO_UPSTREAM)
            .any(|r| {
                config
                    .upstreams
                    .get(r.upstream)
                    .is_some_and(|u| &u.name == name)
            });
        if !routed {
            out.push(warning(
                &u.referenced,
                format!("upstreams.{name}"),
                format!(
                    "no route sends traffic to this upstream; add a route with `upstream: {name}`, or remove it"
                ),
            ));
        }
    }
    for (name, p) in &raw.plugins {
        let used = config
            .upstreams
            .iter()
            .any(|u| u.balancer.as_deref() == Some(name.as_str()))
            || config.routes.iter().any(|r| r.filters.contains(name))
            || config
                .scaling
                .services
                .iter()
                .any(|s| s.policies.contains(name));
        if !used {
            out.push(warning(
                &p.referenced,
                format!("plugins.{name}"),
                format!(
                    "nothing runs this plugin; name it in an upstream's `balancer: {name}`, a route's `filters: [{name}]` or a scaled service's `policies: [{name}]`, or remove it"
                ),
            ));
        }
    }
    out.sort_by_key(|w| (w.line, w.column));
    out
}

/// An endpoint written as `name:port` rather than an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostname {
    pub line: u32,
    pub column: u32,
    /// Field path, e.g. `upstreams.orders.endpoints[1]`.
    pub path: String,
    /// The host name alone.
    pub host: String,
    pub port: u16,
}

/// Every endpoint given by host name, in file order.
pub(super) fn hostnames(raw: &ConfigFile) -> Vec<Hostname> {
    let mut out = Vec::new();
    for (name, u) in &raw.upstreams {
        for (i, e) in u.value.endpoints.iter().enumerate() {
            let Ok(a) = e.value.address().parse::<Authority>() else {
                continue;
            };
            let host = a.host().trim_start_matches('[').trim_end_matches(']');
            let (Some(port), Err(_)) = (a.port_u16(), host.parse::<IpAddr>()) else {
                continue;
            };
            let (line, column) = at(&e.referenced);
            out.push(Hostname {
                line,
                column,
                path: format!("upstreams.{name}.endpoints[{i}]"),
                host: host.to_owned(),
                port,
            });
        }
    }
    out.sort_by_key(|h| (h.line, h.column));
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn checked(yaml: &str) -> crate::config::Checked {
        crate::config::check_str(yaml, Path::new("t.yaml")).expect("valid")
    }

    #[test]
    fn unused_upstreams_and_plugins_are_warned_about() {
        let c = checked(
            "listeners: [{address: 127.0.0.1:0}]\nupstreams:\n  used: {endpoints: [127.0.0.1:1], balancer: rr}\n  spare: {endpoints: [127.0.0.1:2]}\nplugins:\n  rr: {builtin: round-robin}\n  idle: {builtin: round-robin}\nroutes:\n  - upstream: used\n",
        );
        let found: Vec<_> = c
            .warnings
            .issues
            .iter()
            .map(|w| (w.line, w.path.as_str()))
            .collect();
        assert_eq!(found, [(4, "upstreams.spare"), (7, "plugins.idle")]);
    }

    #[test]
    fn host_names_are_listed_but_addresses_are_not() {
        let c = checked(
            "listeners: [{address: 127.0.0.1:0}]\nupstreams:\n  u:\n    endpoints: [127.0.0.1:1, \"[::1]:2\", orders.internal:8080]\nroutes:\n  - upstream: u\n",
        );
        let hosts: Vec<_> = c
            .hostnames
            .iter()
            .map(|h| (h.host.as_str(), h.port, h.path.as_str()))
            .collect();
        assert_eq!(
            hosts,
            [("orders.internal", 8080, "upstreams.u.endpoints[2]")]
        );
        assert!(c.warnings.issues.is_empty(), "{:?}", c.warnings.issues);
    }
}
