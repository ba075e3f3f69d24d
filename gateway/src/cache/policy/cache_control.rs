//! `Cache-Control` (and, on requests, `Pragma`) parsed into directives.

use http::header::{self, HeaderMap, HeaderName};

/// `CDN-Cache-Control` (RFC 9213): directives for CDN caches, over `Cache-Control`.
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// Directives for this cache only, over `CDN-Cache-Control`; never sent on.
pub const EDGEWARD_CACHE_CONTROL: HeaderName = HeaderName::from_static("edgeward-cache-control");

/// Directives from the `Cache-Control` lines of a request or a response.
/// Invalid or out-of-range delta-seconds count as 0 (stale), as RFC 9111 §1.2.2
/// tells a cache to treat them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub no_transform: bool,
    pub only_if_cached: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    /// `max-stale` (request): `Some(None)` accepts any staleness.
    pub max_stale: Option<Option<u64>>,
    pub min_fresh: Option<u64>,
    /// `must-understand` (RFC 9111 §5.2.2.3).
    pub must_understand: bool,
    /// The directives came from a targeted field (RFC 9213), so `Cache-Control`
    /// and `Expires` do not apply to this cache.
    pub targeted: bool,
}

/// Delta-seconds beyond 2^31 are capped there (RFC 9111 §1.2.2).
const DELTA_MAX: u64 = 1 << 31;

pub(super) fn delta(v: Option<&str>) -> u64 {
    v.and_then(|s| {
        let s = s.trim().trim_matches('"');
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().unwrap_or(DELTA_MAX).min(DELTA_MAX))
    })
    .unwrap_or(0)
}

/// Splits a directive list on commas outside quoted strings.
fn directives(line: &str) -> impl Iterator<Item = (String, Option<&str>)> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&line[start..]);
    items.into_iter().filter_map(|item| {
        let item = item.trim();
        if item.is_empty() {
            return None;
        }
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (item, None),
        };
        Some((name.to_ascii_lowercase(), value))
    })
}

impl CacheControl {
    pub fn parse(headers: &HeaderMap) -> Self {
        Self::parse_field(headers, header::CACHE_CONTROL)
    }

    /// A response's directives for this cache: those of the most specific
    /// targeted field present (`Edgeward-Cache-Control`, then
    /// `CDN-Cache-Control`, RFC 9213 §2.1), else `Cache-Control`.
    pub fn parse_response(headers: &HeaderMap) -> Self {
        for name in [EDGEWARD_CACHE_CONTROL, CDN_CACHE_CONTROL] {
            if headers.contains_key(&name) {
                let mut cc = Self::parse_field(headers, name);
                cc.targeted = true;
                return cc;
            }
        }
        Self::parse(headers)
    }

    fn parse_field(headers: &HeaderMap, field: HeaderName) -> Self {
        let mut cc = Self::default();
        for line in headers
            .get_all(field)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            for (name, value) in directives(line) {
                // The first occurrence of a repeated directive wins (RFC 9111 §4.2.1).
                match name.as_str() {
                    "max-age" => _ = cc.max_age.get_or_insert(delta(value)),
                    "s-maxage" => _ = cc.s_maxage.get_or_insert(delta(value)),
                    "no-store" => cc.no_store = true,
                    // The qualified form `no-cache="field"` is treated as the
                    // unqualified one, which RFC 9111 §5.2.2.4 allows.
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "must-revalidate" => cc.must_revalidate = true,
                    "proxy-revalidate" => cc.proxy_revalidate = true,
                    "no-transform" => cc.no_transform = true,
                    "only-if-cached" => cc.only_if_cached = true,
                    "stale-while-revalidate" => {
                        _ = cc.stale_while_revalidate.get_or_insert(delta(value))
                    }
                    "stale-if-error" => _ = cc.stale_if_error.get_or_insert(delta(value)),
                    "max-stale" => _ = cc.max_stale.get_or_insert(value.map(|v| delta(Some(v)))),
                    "min-fresh" => _ = cc.min_fresh.get_or_insert(delta(value)),
                    "must-understand" => cc.must_understand = true,
                    _ => {}
                }
            }
        }
        cc
    }

    /// Request directives, with `Pragma: no-cache` honoured when the request has
    /// no `Cache-Control` (RFC 9111 §5.4).
    pub fn parse_request(headers: &HeaderMap) -> Self {
        let mut cc = Self::parse(headers);
        if !headers.contains_key(header::CACHE_CONTROL)
            && headers
                .get_all(header::PRAGMA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| {
                    v.split(',')
                        .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
                })
        {
            cc.no_cache = true;
        }
        cc
    }

    /// A shared cache must revalidate once stale: no stale answers at all.
    pub fn revalidate_when_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::{cc, h};
    use http::HeaderValue;

    #[test]
    fn parses_directives() {
        let c = cc(
            "public, max-age=60, s-maxage=\"120\", stale-while-revalidate=30, no-cache=\"set-cookie, x\"",
        );
        assert!(c.public && c.no_cache);
        assert_eq!((c.max_age, c.s_maxage), (Some(60), Some(120)));
        assert_eq!(c.stale_while_revalidate, Some(30));
        assert_eq!(cc("max-age=abc").max_age, Some(0));
        assert_eq!(cc("max-age=10, max-age=20").max_age, Some(10));
        assert_eq!(cc("max-age=99999999999999999999").max_age, Some(DELTA_MAX));
        assert_eq!(cc("max-stale").max_stale, Some(None));
        assert_eq!(cc("MAX-AGE=5,PRIVATE").max_age, Some(5));
        assert!(cc("MAX-AGE=5,PRIVATE").private);
        assert!(cc("must-understand, no-store").must_understand);
        let both = h(&[
            ("cache-control", "max-age=5"),
            ("cdn-cache-control", "max-age=60"),
        ]);
        let r = CacheControl::parse_response(&both);
        assert_eq!((r.max_age, r.targeted), (Some(60), true));
        let mut ours = both.clone();
        ours.insert(EDGEWARD_CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let r = CacheControl::parse_response(&ours);
        assert!(r.no_store && r.max_age.is_none());
        assert!(!CacheControl::parse_response(&h(&[("cache-control", "max-age=5")])).targeted);
        let mut req = h(&[("pragma", "no-cache")]);
        assert!(CacheControl::parse_request(&req).no_cache);
        req.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        assert!(!CacheControl::parse_request(&req).no_cache);
    }
}
