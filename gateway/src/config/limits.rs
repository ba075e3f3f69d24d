//! A route's `rate-limit:` block: a token bucket per key.
//!
//! ```yaml
//! rate-limit: {requests: 100, per: 1s, burst: 200, key: client-ip}
//! ```

use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::cache::Issue;
use super::units::parse_duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RateLimitYaml {
    /// Requests allowed per `per`, sustained.
    pub requests: Spanned<u32>,
    /// The period of `requests`. Default: 1s.
    pub per: Option<Spanned<String>>,
    /// Requests allowed at once after a quiet period. Default: `requests`.
    pub burst: Option<Spanned<u32>>,
    /// What one bucket counts: `client-ip`, `route` (one bucket for the whole
    /// route), `header:<name>` or `cookie:<name>` (requests without it share
    /// one bucket). Default: client-ip.
    pub key: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    ClientIp,
    Route,
    Header(HeaderName),
    Cookie(String),
}

#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: f64,
    pub burst: u32,
    pub key: RateKey,
    /// As configured, for the `RateLimit-Policy` header: `requests;w=seconds`.
    pub policy: String,
}

pub fn resolve(
    y: &Spanned<RateLimitYaml>,
    path: &str,
    issues: &mut Vec<Issue>,
) -> Option<RateLimit> {
    let v = &y.value;
    if v.requests.value == 0 {
        issues.push(Issue::new(
            &v.requests.referenced,
            format!("{path}.requests"),
            "must be at least 1",
        ));
        return None;
    }
    let per = match &v.per {
        None => Duration::from_secs(1),
        Some(p) => match parse_duration(&p.value) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                issues.push(Issue::new(
                    &p.referenced,
                    format!("{path}.per"),
                    "must be greater than zero",
                ));
                return None;
            }
            Err(e) => {
                issues.push(Issue::new(&p.referenced, format!("{path}.per"), e));
                return None;
            }
        },
    };
    let key = match &v.key {
        None => RateKey::ClientIp,
        Some(k) => match k.value.split_once(':') {
            None if k.value == "client-ip" => RateKey::ClientIp,
            None if k.value == "route" => RateKey::Route,
            Some(("header", name)) => match HeaderName::try_from(name.trim()) {
                Ok(h) => RateKey::Header(h),
                Err(_) => {
                    issues.push(Issue::new(
                        &k.referenced,
                        format!("{path}.key"),
                        format!("\"{name}\" is not a header name"),
                    ));
                    return None;
                }
            },
            Some(("cookie", name)) if !name.trim().is_empty() => {
                RateKey::Cookie(name.trim().to_owned())
            }
            _ => {
                issues.push(Issue::new(
                    &k.referenced,
                    format!("{path}.key"),
                    format!("\"{}\" is not a key; write client-ip, route, header:<name> or cookie:<name>", k.value),
                ));
                return None;
            }
        },
    };
    let requests = v.requests.value;
    Some(RateLimit {
        per_second: f64::from(requests) / per.as_secs_f64(),
        burst: v.burst.as_ref().map_or(requests, |b| b.value.max(1)),
        key,
        policy: format!("{requests};w={}", per.as_secs().max(1)),
    })
}
