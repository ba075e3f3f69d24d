//! A route's `rate-limit:` block: a token bucket per key.
//!
//! ```yaml
//! rate-limit: {requests: 100, per: 1s, burst: 200, key: client-ip}
//! ```

use std::time::Duration;

use http::HeaderName;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::cache::Issue;
use super::units::parse_duration;

/// A route's rate limit: a token bucket per key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RateLimitYaml {
    /// Requests allowed per `per`, sustained (at least 1), e.g. `100`.
    #[schemars(with = "u32")]
    #[schemars(range(min = 1))]
    pub requests: Spanned<u32>,
    /// The period of `requests`. Default: 1s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub per: Option<Spanned<String>>,
    /// Requests allowed at once after a quiet period, e.g. `200`. Default: `requests`.
    #[schemars(with = "Option<u32>")]
    pub burst: Option<Spanned<u32>>,
    /// What one bucket counts: `client-ip`, `route` (one bucket for the whole
    /// route), `header:<name>` or `cookie:<name>` (requests without it share
    /// one bucket), e.g. `header:x-api-key`. Default: client-ip.
    #[schemars(with = "Option<String>")]
    #[schemars(regex(pattern = r"^(client-ip|route|header:.+|cookie:.+)$"))]
    pub key: Option<Spanned<String>>,
}

/// A validated `rate-limit:` block: the settings of the route's implicit
/// `rate-limit` filter plugin (the built-in in `plugins/rate-limit` does the
/// counting; this is only its located check and its config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
    pub burst: u32,
    /// `client-ip`, `route`, `header:<name>` or `cookie:<name>`.
    pub key: String,
}

/// The built-in filter a `rate-limit:` block stands for.
pub const RATE_LIMIT_BUILTIN: &str = "rate-limit";

impl RateLimit {
    /// The plugin name of route `route`'s limiter: its own state and pool,
    /// and what `/metrics` labels it with.
    pub fn plugin_name(route: &str) -> String {
        format!("{RATE_LIMIT_BUILTIN}@{route}")
    }

    /// The `config:` map the plugin's `init` gets.
    pub fn plugin_config(&self) -> Vec<(String, String)> {
        vec![
            ("requests".into(), self.requests.to_string()),
            ("per".into(), format!("{}s", self.per.as_secs_f64())),
            ("burst".into(), self.burst.to_string()),
            ("key".into(), self.key.clone()),
        ]
    }
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
        None => "client-ip".to_owned(),
        Some(k) => {
            let text = k.value.trim();
            let ok = match text.split_once(':') {
                None => text == "client-ip" || text == "route",
                Some(("header", name)) => HeaderName::try_from(name.trim()).is_ok(),
                Some(("cookie", name)) => {
                    !name.trim().is_empty()
                        && name
                            .trim()
                            .bytes()
                            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
                }
                _ => false,
            };
            if !ok {
                issues.push(Issue::new(
                    &k.referenced,
                    format!("{path}.key"),
                    format!("\"{}\" is not a key; write client-ip, route, header:<name> or cookie:<name>", k.value),
                ));
                return None;
            }
            text.to_owned()
        }
    };
    let requests = v.requests.value;
    if per.as_micros() < u128::from(requests) {
        issues.push(Issue::new(
            &y.referenced,
            path.to_owned(),
            "more than one request per microsecond cannot be counted; use a longer `per`",
        ));
        return None;
    }
    Some(RateLimit {
        requests,
        per,
        burst: v.burst.as_ref().map_or(requests, |b| b.value.max(1)),
        key,
    })
}
