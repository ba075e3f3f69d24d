//! A route: its match, its upstream or fixed answer, rewrites, header edits
//! and the edge stages (cache, compression, limits, body timeouts).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use serde_saphyr::{Location, Spanned};

use super::super::error::did_you_mean;
use super::super::model;
use super::super::resolved::*;
use super::super::units::parse_size;
use super::Checker;
use crate::matching::{HostMatch, PathMatch, RouteMatch};

pub(super) fn route(
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
        .map(|y| super::super::actions::respond(y, &path("respond"), &mut found));
    let https_redirect = v.https_redirect.as_ref().and_then(|y| {
        super::super::actions::https_redirect(y, &path("https-redirect"), &mut found)
    });
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
pub(super) fn edge_stages(
    route: &mut Route,
    i: usize,
    r: &model::RouteConfig,
    global: Option<&Option<super::super::compress::Compression>>,
    issues: &mut Vec<super::super::cache::Issue>,
) {
    let path = format!("routes[{i}]");
    route.body_timeouts = super::super::resilience::resolve_route(
        r.body_idle_timeout.as_ref(),
        r.request_body_idle_timeout.as_ref(),
        r.deadline.as_ref(),
        &path,
        issues,
    );
    route.rate_limit = r
        .rate_limit
        .as_ref()
        .and_then(|y| super::super::limits::resolve(y, &format!("{path}.rate-limit"), issues));
    route.cache = r
        .cache
        .as_ref()
        .and_then(|y| super::super::cache::resolve_route(y, &format!("{path}.cache"), issues));
    let base = global.and_then(Option::as_ref);
    let compression = match &r.compression {
        Some(y) => super::super::compress::resolve(
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
