//! `cache:` in YAML: the global store size and each route's policy.

use std::time::Duration;

use http::HeaderName;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::{parse_duration, parse_size};

/// A configuration problem found here, reported by `config::validate` with its location.
#[derive(Debug, Clone)]
pub struct Issue {
    pub at: Location,
    pub path: String,
    pub message: String,
}

impl Issue {
    pub fn new(at: &Location, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            at: *at,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Global `cache:` block.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CacheYaml {
    /// Bytes all stored responses may take together (bodies, encoded variants,
    /// headers); the least recently used go first. Default: 256MiB.
    #[schemars(with = "Option<super::schema::Size>")]
    pub max_size: Option<Spanned<String>>,
    /// Largest single response body stored, e.g. `16MiB`; bigger ones stream
    /// through uncached. Default: an eighth of `max-size`, at most 16MiB.
    #[schemars(with = "Option<super::schema::Size>")]
    pub max_object_size: Option<Spanned<String>>,
    /// Bytes all fills in progress may hold together (bodies being stored
    /// while they stream to clients); a fill that would go over streams on
    /// uncached, e.g. `64MiB`. Default: a quarter of `max-size`, at least
    /// `max-object-size`.
    #[schemars(with = "Option<super::schema::Size>")]
    pub fill_budget: Option<Spanned<String>>,
}

/// A route's `cache:` block: RFC 9111 caching of its responses.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteCacheYaml {
    /// Cache this route's responses; `false` turns the block off without
    /// removing it. Default: true (the block's presence turns caching on).
    pub enabled: Option<bool>,
    /// Freshness for responses that carry none (no `max-age`, `s-maxage` or
    /// `Expires`), where RFC 9111 allows a heuristic, e.g. `60s`. Default: 10 %
    /// of the time since `Last-Modified`, else not fresh.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub ttl: Option<Spanned<String>>,
    /// Extra request parts in the cache key (the method, host and path
    /// with query are always in it). Default: none.
    #[serde(default)]
    pub key: KeyYaml,
    /// Part of every key of this route: changing it starts an empty key
    /// space (old entries age out), e.g. `3`. Default: none.
    pub version: Option<VersionYaml>,
    /// Concurrent misses for one key make one upstream request, and
    /// concurrent revalidations of one stale entry one conditional request.
    /// Default: true.
    pub coalesce: Option<bool>,
    /// Send `X-Cache` (the older alias of `Cache-Status`). Default: true.
    pub x_cache: Option<bool>,
    /// Name the entry (host and path) in `Cache-Status` as `key="…"`. Default: false.
    pub status_key: Option<bool>,
    /// How stale an entry may be served when upstream cannot be reached at
    /// all (connection refused, timed out), where the entry does not forbid
    /// stale answers (RFC 9111 §4.2.4), e.g. `10m`. Default: never.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub stale_if_unreachable: Option<Spanned<String>>,
    /// Store responses that set cookies, with their `Set-Cookie` lines
    /// removed from what is stored (the client whose request filled the
    /// entry still gets them), as CDNs do. Default: false, such responses
    /// are not stored.
    pub store_set_cookie: Option<bool>,
}

/// Extra request parts in a route's cache key.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeyYaml {
    /// Request header names whose values join the key, e.g. `[x-tenant]`. Default: none.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub headers: Vec<Spanned<String>>,
    /// Cookie names whose values join the key, e.g. `[currency]`. Default: none.
    #[serde(default)]
    pub cookies: Vec<String>,
}

/// A cache key version: a number or a text.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum VersionYaml {
    /// e.g. `3`.
    Number(u64),
    /// e.g. `2024-06`.
    Text(String),
}

/// Resolved store settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    pub max_size: u64,
    pub max_object_size: u64,
    pub fill_budget: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self::sized(256 << 20)
    }
}

impl CacheSettings {
    fn sized(max_size: u64) -> Self {
        let max_object_size = (max_size / 8).min(16 << 20);
        Self {
            max_size,
            max_object_size,
            fill_budget: (max_size / 4).max(max_object_size),
        }
    }
}

/// Resolved route policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteCache {
    pub ttl: Option<Duration>,
    pub key_headers: Vec<HeaderName>,
    pub key_cookies: Vec<String>,
    pub version: String,
    pub coalesce: bool,
    pub x_cache: bool,
    pub status_key: bool,
    pub stale_if_unreachable: Option<Duration>,
    pub store_set_cookie: bool,
}

pub fn resolve_global(y: &CacheYaml, issues: &mut Vec<Issue>) -> CacheSettings {
    let mut size = |f: &Option<Spanned<String>>, name: &str| {
        let f = f.as_ref()?;
        match parse_size(&f.value) {
            Ok(n) if n > 0 => Some(n as u64),
            Ok(_) => {
                issues.push(Issue::new(
                    &f.referenced,
                    format!("cache.{name}"),
                    "must be greater than zero",
                ));
                None
            }
            Err(e) => {
                issues.push(Issue::new(&f.referenced, format!("cache.{name}"), e));
                None
            }
        }
    };
    let max = size(&y.max_size, "max-size");
    let obj = size(&y.max_object_size, "max-object-size");
    let budget = size(&y.fill_budget, "fill-budget");
    let mut s = max.map_or_else(CacheSettings::default, CacheSettings::sized);
    if let Some(o) = obj {
        if o > s.max_size {
            let at = y
                .max_object_size
                .as_ref()
                .map_or(Location::UNKNOWN, |f| f.referenced);
            issues.push(Issue::new(
                &at,
                "cache.max-object-size",
                "must not exceed cache.max-size",
            ));
        }
        s.max_object_size = o.min(s.max_size);
        s.fill_budget = s.fill_budget.max(s.max_object_size);
    }
    if let Some(b) = budget {
        s.fill_budget = b;
    }
    s
}

pub fn resolve_route(
    y: &RouteCacheYaml,
    path: &str,
    issues: &mut Vec<Issue>,
) -> Option<RouteCache> {
    let ttl = y.ttl.as_ref().and_then(|t| match parse_duration(&t.value) {
        Ok(d) => Some(d),
        Err(e) => {
            issues.push(Issue::new(&t.referenced, format!("{path}.ttl"), e));
            None
        }
    });
    let stale_if_unreachable =
        y.stale_if_unreachable
            .as_ref()
            .and_then(|t| match parse_duration(&t.value) {
                Ok(d) => Some(d),
                Err(e) => {
                    issues.push(Issue::new(
                        &t.referenced,
                        format!("{path}.stale-if-unreachable"),
                        e,
                    ));
                    None
                }
            });
    let key_headers = y
        .key
        .headers
        .iter()
        .filter_map(|h| {
            HeaderName::from_bytes(h.value.to_ascii_lowercase().as_bytes())
                .map_err(|_| {
                    issues.push(Issue::new(
                        &h.referenced,
                        format!("{path}.key.headers"),
                        format!("\"{}\" is not a valid header name", h.value),
                    ))
                })
                .ok()
        })
        .collect();
    let version = match &y.version {
        None => String::new(),
        Some(VersionYaml::Number(n)) => n.to_string(),
        Some(VersionYaml::Text(t)) => t.clone(),
    };
    y.enabled.unwrap_or(true).then(|| RouteCache {
        ttl,
        key_headers,
        key_cookies: y.key.cookies.clone(),
        version,
        coalesce: y.coalesce.unwrap_or(true),
        x_cache: y.x_cache.unwrap_or(true),
        status_key: y.status_key.unwrap_or(false),
        stale_if_unreachable,
        store_set_cookie: y.store_set_cookie.unwrap_or(false),
    })
}
