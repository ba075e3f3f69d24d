//! An upstream's resilience blocks (`health-check:`, `outlier-detection:`,
//! `retries:`, `circuit-breaker:`) and a route's body timeouts. Defaults are
//! the ones operators know from Envoy, NGINX and HAProxy; each is named on its
//! field.
//!
//! ```yaml
//! health-check: {path: /healthz, interval: 5s, timeout: 2s}
//! outlier-detection: {consecutive-errors: 5, base-ejection-time: 30s}
//! retries: {max-retries: 2, retry-on: [connect-failure, reset, 502, 503]}
//! circuit-breaker: {max-requests: 1024}
//! ```

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::cache::Issue;
use super::units::parse_duration;

/// Active health checks of an upstream's endpoints.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HealthCheckYaml {
    /// `http` (a GET of `path`) or `tcp` (a connect). Default: http.
    #[serde(rename = "type")]
    #[schemars(with = "Option<HealthKind>")]
    pub kind: Option<Spanned<String>>,
    /// Path of the HTTP check, e.g. `/healthz`. Default: `/`.
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// `Host` sent with the HTTP check, e.g. `api.internal`. Default: the endpoint's address.
    #[schemars(with = "Option<String>")]
    pub host: Option<Spanned<String>>,
    /// Statuses that pass, as codes or ranges, e.g. `[200, "300-399"]`.
    /// Default: `["200-399"]`.
    #[schemars(with = "Option<Vec<StatusYaml>>")]
    pub expected_statuses: Option<Vec<Spanned<StatusYaml>>>,
    /// Time between checks of one endpoint (jittered by up to 10 %). Default: 5s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub interval: Option<Spanned<String>>,
    /// A check that takes longer fails. Default: 2s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub timeout: Option<Spanned<String>>,
    /// Passing checks in a row that bring an unhealthy endpoint back. Default: 2.
    #[schemars(with = "Option<u32>")]
    #[schemars(range(min = 1))]
    pub healthy_threshold: Option<Spanned<u32>>,
    /// Failing checks in a row that take an endpoint out. Default: 3.
    #[schemars(with = "Option<u32>")]
    #[schemars(range(min = 1))]
    pub unhealthy_threshold: Option<Spanned<u32>>,
}

/// An HTTP status: a code, or a range or keyword written as text.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusYaml {
    /// A status code, e.g. `503`.
    Code(u16),
    /// A range such as `"200-399"`, or (in `retry-on`) `connect-failure`,
    /// `reset` or `timeout`.
    Range(String),
}

/// Passive outlier detection: endpoints that keep failing real requests are ejected for a while.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OutlierYaml {
    /// Passive outlier detection on this upstream's traffic. Default: true.
    pub enabled: Option<bool>,
    /// 5xx answers or failed exchanges (connect errors, resets, timeouts) in a
    /// row that eject an endpoint. Default: 5.
    #[schemars(with = "Option<u32>")]
    #[schemars(range(min = 1))]
    pub consecutive_errors: Option<Spanned<u32>>,
    /// An ejection lasts this times the number of times the endpoint was
    /// ejected. Default: 30s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub base_ejection_time: Option<Spanned<String>>,
    /// The longest ejection. Default: 300s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub max_ejection_time: Option<Spanned<String>>,
    /// Most endpoints ejected at once, as a percentage of the upstream's
    /// (rounded down, but at least one of two or more). Default: 50.
    #[schemars(with = "Option<u32>")]
    #[schemars(range(max = 100))]
    pub max_ejected_percent: Option<Spanned<u32>>,
}

/// Retries of failed tries, each on another endpoint, within a budget.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetriesYaml {
    /// Further tries after the first, each on another endpoint. Default: 2.
    pub max_retries: Option<u32>,
    /// What is retried: `connect-failure`, `reset` (the connection failed
    /// before a response head), `timeout` (a try exceeded `per-try-timeout`)
    /// and status codes. Only a connect failure retries a non-idempotent
    /// request. Default: `[connect-failure, reset, timeout, 502, 503]`.
    #[schemars(with = "Option<Vec<StatusYaml>>")]
    pub retry_on: Option<Vec<Spanned<StatusYaml>>>,
    /// Time one try may take to its response head, e.g. `2s`. Default: the route's `timeout`.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub per_try_timeout: Option<Spanned<String>>,
    /// Retries in progress may be this percentage of the upstream's active
    /// requests. Default: 20.
    #[schemars(with = "Option<u32>")]
    #[schemars(range(max = 100))]
    pub budget_percent: Option<Spanned<u32>>,
    /// Retries in progress allowed whatever the percentage. Default: 3.
    pub min_concurrent: Option<u32>,
}

/// Circuit breaker limits of an upstream: past them requests get a fast 503.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BreakerYaml {
    /// Upstream connections open at once. Default: 1024.
    #[schemars(with = "Option<u32>")]
    pub max_connections: Option<Spanned<u32>>,
    /// Requests waiting for a new upstream connection. Default: 1024.
    #[schemars(with = "Option<u32>")]
    pub max_pending_requests: Option<Spanned<u32>>,
    /// Requests in progress to the upstream. Default: 1024.
    #[schemars(with = "Option<u32>")]
    pub max_requests: Option<Spanned<u32>>,
}

/// What an active health check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum HealthKind {
    Http,
    Tcp,
}

/// Active health checks of one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: HealthKind,
    pub path: String,
    pub host: Option<String>,
    /// Inclusive ranges.
    pub expected: Vec<(u16, u16)>,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

impl HealthCheck {
    pub fn passes(&self, status: u16) -> bool {
        self.expected
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlier {
    pub enabled: bool,
    pub consecutive_errors: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    pub max_ejected_percent: u32,
}

impl Default for Outlier {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_errors: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_percent: 50,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retries {
    pub max_retries: u32,
    pub on_connect_failure: bool,
    pub on_reset: bool,
    pub on_timeout: bool,
    pub on_status: Vec<u16>,
    /// `None`: the route's `timeout`.
    pub per_try_timeout: Option<Duration>,
    pub budget_percent: u32,
    pub min_concurrent: u32,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            max_retries: 2,
            on_connect_failure: true,
            on_reset: true,
            on_timeout: true,
            on_status: vec![502, 503],
            per_try_timeout: None,
            budget_percent: 20,
            min_concurrent: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerLimits {
    pub max_connections: u32,
    pub max_pending: u32,
    pub max_requests: u32,
}

impl Default for BreakerLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_pending: 1024,
            max_requests: 1024,
        }
    }
}

/// Everything resilience-related of one upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resilience {
    pub health_check: Option<HealthCheck>,
    pub outlier: Outlier,
    pub retries: Retries,
    pub breaker: BreakerLimits,
    /// Below this percentage of healthy endpoints, every endpoint is offered
    /// as healthy (Envoy's panic threshold). Default: 50.
    pub panic_threshold: u32,
}

/// A route's timeouts past the response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeouts {
    /// No response body byte for this long resets the response.
    pub response_idle: Duration,
    /// No request body byte for this long answers 408.
    pub request_idle: Duration,
    /// The whole exchange, response body included. `None`: no deadline.
    pub deadline: Option<Duration>,
}

impl Default for BodyTimeouts {
    fn default() -> Self {
        Self {
            response_idle: Duration::from_secs(60),
            request_idle: Duration::from_secs(60),
            deadline: None,
        }
    }
}

/// The YAML fields of an upstream this module resolves.
pub struct UpstreamYaml<'a> {
    pub health_check: Option<&'a Spanned<HealthCheckYaml>>,
    pub outlier: Option<&'a Spanned<OutlierYaml>>,
    pub retries: Option<&'a Spanned<RetriesYaml>>,
    pub breaker: Option<&'a Spanned<BreakerYaml>>,
    pub panic_threshold: Option<&'a Spanned<u32>>,
}

struct Ctx<'a> {
    path: &'a str,
    issues: &'a mut Vec<Issue>,
}

impl Ctx<'_> {
    fn issue(&mut self, at: &serde_saphyr::Location, field: &str, msg: impl Into<String>) {
        self.issues
            .push(Issue::new(at, format!("{}.{field}", self.path), msg));
    }

    fn duration(
        &mut self,
        f: Option<&Spanned<String>>,
        field: &str,
        default: Duration,
    ) -> Duration {
        let Some(f) = f else { return default };
        match parse_duration(&f.value) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.issue(&f.referenced, field, "must be greater than zero");
                default
            }
            Err(e) => {
                self.issue(&f.referenced, field, e);
                default
            }
        }
    }

    fn percent(&mut self, f: Option<&Spanned<u32>>, field: &str, default: u32) -> u32 {
        match f {
            Some(p) if p.value > 100 => {
                self.issue(&p.referenced, field, "a percentage is 0 to 100");
                default
            }
            Some(p) => p.value,
            None => default,
        }
    }

    fn at_least_one(&mut self, f: Option<&Spanned<u32>>, field: &str, default: u32) -> u32 {
        match f {
            Some(v) if v.value == 0 => {
                self.issue(&v.referenced, field, "must be at least 1");
                default
            }
            Some(v) => v.value,
            None => default,
        }
    }
}

/// `"200-399"` or `204`.
fn status_range(s: &StatusYaml) -> Result<(u16, u16), String> {
    let ok = |c: u16| (100..=599).contains(&c);
    match s {
        StatusYaml::Code(c) if ok(*c) => Ok((*c, *c)),
        StatusYaml::Range(r) => {
            let parsed = match r.split_once('-') {
                Some((a, b)) => a.trim().parse().ok().zip(b.trim().parse().ok()),
                None => r.trim().parse().ok().map(|c| (c, c)),
            };
            match parsed {
                Some((a, b)) if ok(a) && ok(b) && a <= b => Ok((a, b)),
                _ => Err(format!(
                    "\"{r}\" is not a status or a range; write e.g. 200 or \"200-399\""
                )),
            }
        }
        StatusYaml::Code(c) => Err(format!("{c} is not an HTTP status (100-599)")),
    }
}

pub fn resolve_upstream(y: &UpstreamYaml, path: &str, issues: &mut Vec<Issue>) -> Resilience {
    let mut c = Ctx { path, issues };
    Resilience {
        health_check: y.health_check.map(|h| health_check(&mut c, h)),
        outlier: y.outlier.map(|o| outlier(&mut c, o)).unwrap_or_default(),
        retries: y.retries.map(|r| retries(&mut c, r)).unwrap_or_default(),
        breaker: y.breaker.map(|b| breaker(&mut c, b)).unwrap_or_default(),
        panic_threshold: c.percent(y.panic_threshold, "panic-threshold", 50),
    }
}

fn health_check(c: &mut Ctx, h: &Spanned<HealthCheckYaml>) -> HealthCheck {
    let v = &h.value;
    let kind = match v.kind.as_ref().map(|k| (k, k.value.as_str())) {
        None | Some((_, "http")) => HealthKind::Http,
        Some((_, "tcp")) => HealthKind::Tcp,
        Some((k, other)) => {
            c.issue(
                &k.referenced,
                "health-check.type",
                format!("\"{other}\" is not a check type; write http or tcp"),
            );
            HealthKind::Http
        }
    };
    if kind == HealthKind::Tcp
        && let Some(p) = v.path.as_ref().or(v.host.as_ref())
    {
        c.issue(
            &p.referenced,
            "health-check",
            "a tcp check sends no request; `path` and `host` belong to http checks",
        );
    }
    let path = match &v.path {
        Some(p) if !p.value.starts_with('/') => {
            c.issue(&p.referenced, "health-check.path", "must start with '/'");
            "/".to_owned()
        }
        Some(p) => p.value.clone(),
        None => "/".to_owned(),
    };
    let expected = match &v.expected_statuses {
        None => vec![(200, 399)],
        Some(list) => {
            let mut out = Vec::new();
            for s in list {
                match status_range(&s.value) {
                    Ok(r) => out.push(r),
                    Err(e) => c.issue(&s.referenced, "health-check.expected-statuses", e),
                }
            }
            if list.is_empty() {
                c.issue(
                    &h.referenced,
                    "health-check.expected-statuses",
                    "list at least one status",
                );
            }
            out
        }
    };
    let interval = c.duration(
        v.interval.as_ref(),
        "health-check.interval",
        Duration::from_secs(5),
    );
    let timeout = c.duration(
        v.timeout.as_ref(),
        "health-check.timeout",
        Duration::from_secs(2),
    );
    HealthCheck {
        kind,
        path,
        host: v.host.as_ref().map(|h| h.value.clone()),
        expected,
        interval,
        timeout,
        healthy_threshold: c.at_least_one(
            v.healthy_threshold.as_ref(),
            "health-check.healthy-threshold",
            2,
        ),
        unhealthy_threshold: c.at_least_one(
            v.unhealthy_threshold.as_ref(),
            "health-check.unhealthy-threshold",
            3,
        ),
    }
}

fn outlier(c: &mut Ctx, o: &Spanned<OutlierYaml>) -> Outlier {
    let v = &o.value;
    let d = Outlier::default();
    let base = c.duration(
        v.base_ejection_time.as_ref(),
        "outlier-detection.base-ejection-time",
        d.base_ejection,
    );
    let max = c.duration(
        v.max_ejection_time.as_ref(),
        "outlier-detection.max-ejection-time",
        d.max_ejection.max(base),
    );
    if let Some(m) = &v.max_ejection_time
        && max < base
    {
        c.issue(
            &m.referenced,
            "outlier-detection.max-ejection-time",
            "must not be shorter than `base-ejection-time`",
        );
    }
    Outlier {
        enabled: v.enabled.unwrap_or(true),
        consecutive_errors: c.at_least_one(
            v.consecutive_errors.as_ref(),
            "outlier-detection.consecutive-errors",
            d.consecutive_errors,
        ),
        base_ejection: base,
        max_ejection: max.max(base),
        max_ejected_percent: c.percent(
            v.max_ejected_percent.as_ref(),
            "outlier-detection.max-ejected-percent",
            d.max_ejected_percent,
        ),
    }
}

fn retries(c: &mut Ctx, r: &Spanned<RetriesYaml>) -> Retries {
    let v = &r.value;
    let d = Retries::default();
    let mut out = Retries {
        max_retries: v.max_retries.unwrap_or(d.max_retries),
        per_try_timeout: v
            .per_try_timeout
            .as_ref()
            .map(|p| c.duration(Some(p), "retries.per-try-timeout", Duration::from_secs(30))),
        budget_percent: c.percent(
            v.budget_percent.as_ref(),
            "retries.budget-percent",
            d.budget_percent,
        ),
        min_concurrent: v.min_concurrent.unwrap_or(d.min_concurrent),
        ..d
    };
    if let Some(list) = &v.retry_on {
        out.on_connect_failure = false;
        out.on_reset = false;
        out.on_timeout = false;
        out.on_status.clear();
        for item in list {
            match &item.value {
                StatusYaml::Range(s) if s == "connect-failure" => out.on_connect_failure = true,
                StatusYaml::Range(s) if s == "reset" => out.on_reset = true,
                StatusYaml::Range(s) if s == "timeout" => out.on_timeout = true,
                StatusYaml::Code(code) if (500..=599).contains(code) => out.on_status.push(*code),
                other => {
                    let shown = match other {
                        StatusYaml::Code(n) => n.to_string(),
                        StatusYaml::Range(s) => format!("\"{s}\""),
                    };
                    c.issue(
                        &item.referenced,
                        "retries.retry-on",
                        format!("{shown} is not retried; write connect-failure, reset, timeout or a 5xx status"),
                    );
                }
            }
        }
    }
    out
}

fn breaker(c: &mut Ctx, b: &Spanned<BreakerYaml>) -> BreakerLimits {
    let v = &b.value;
    let d = BreakerLimits::default();
    BreakerLimits {
        max_connections: c.at_least_one(
            v.max_connections.as_ref(),
            "circuit-breaker.max-connections",
            d.max_connections,
        ),
        max_pending: c.at_least_one(
            v.max_pending_requests.as_ref(),
            "circuit-breaker.max-pending-requests",
            d.max_pending,
        ),
        max_requests: c.at_least_one(
            v.max_requests.as_ref(),
            "circuit-breaker.max-requests",
            d.max_requests,
        ),
    }
}

/// A route's `body-idle-timeout`, `request-body-idle-timeout` and `deadline`.
pub fn resolve_route(
    response_idle: Option<&Spanned<String>>,
    request_idle: Option<&Spanned<String>>,
    deadline: Option<&Spanned<String>>,
    path: &str,
    issues: &mut Vec<Issue>,
) -> BodyTimeouts {
    let mut c = Ctx { path, issues };
    let d = BodyTimeouts::default();
    BodyTimeouts {
        response_idle: c.duration(response_idle, "body-idle-timeout", d.response_idle),
        request_idle: c.duration(request_idle, "request-body-idle-timeout", d.request_idle),
        deadline: deadline.map(|x| c.duration(Some(x), "deadline", Duration::from_secs(30))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges() {
        assert_eq!(status_range(&StatusYaml::Code(204)), Ok((204, 204)));
        assert_eq!(
            status_range(&StatusYaml::Range("200-399".into())),
            Ok((200, 399))
        );
        assert!(status_range(&StatusYaml::Range("399-200".into())).is_err());
        assert!(status_range(&StatusYaml::Code(42)).is_err());
    }
}
