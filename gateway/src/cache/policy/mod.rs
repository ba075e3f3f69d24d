//! RFC 9111 as pure functions, one part per question the cache asks of a
//! response: what its `Cache-Control` says ([`cache_control`]), whether a shared
//! cache may store it ([`storable`]), how long it stays fresh and how old it is
//! ([`freshness`]), which request fields select it ([`vary`]), and whether a
//! client's conditional request is satisfied by it ([`conditional`]).

mod cache_control;
mod conditional;
mod date;
mod freshness;
mod storable;
mod vary;

use std::time::SystemTime;

use http::header::{HeaderMap, HeaderName};

pub use cache_control::{CDN_CACHE_CONTROL, CacheControl, EDGEWARD_CACHE_CONTROL};
pub use conditional::{NOT_MODIFIED_FIELDS, etag_weak_eq, freshen, not_modified};
pub use freshness::{
    Times, age_value, freshness_lifetime, heuristically_cacheable, initial_age, last_modified,
};
pub use storable::{NotStored, storable};
pub use vary::{secondary_key, vary_names};

/// A date in a field value, read leniently ([`date::parse`]).
pub fn date_value(s: &str) -> Option<SystemTime> {
    date::parse(s)
}

/// A date field of `headers`, read leniently ([`date::parse`]).
pub fn date(headers: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(date::parse)
}

/// A header map from name/value pairs, repeated names kept as separate lines.
#[cfg(test)]
fn h(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    m
}

#[cfg(test)]
fn cc(v: &str) -> CacheControl {
    CacheControl::parse(&h(&[("cache-control", v)]))
}
