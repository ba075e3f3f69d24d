//! An upstream service: its endpoints (or discovery) and connection settings.

use std::time::Duration;

use http::uri::Authority;
use serde_saphyr::Spanned;

use super::super::model;
use super::super::resolved::*;
use super::Checker;

/// How long an endpoint that refused a connection stays out of rotation, by default.
const UNHEALTHY_COOL_DOWN: Duration = Duration::from_secs(10);

pub(super) fn upstream(
    c: &mut Checker,
    name: &str,
    u: &Spanned<model::UpstreamConfig>,
) -> Upstream {
    let path = |f: &str| format!("upstreams.{name}.{f}");
    let mut found = Vec::new();
    let discovery = u
        .value
        .discovery
        .as_ref()
        .and_then(|d| super::super::discovery::resolve(d, &path("discovery"), &mut found));
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
