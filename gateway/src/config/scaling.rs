//! `scaling:` in YAML: the services the scale-signal loop decides for, and the
//! scaler plugins (policies) that decide.
//!
//! ```yaml
//! scaling:
//!   history: 20                     # decisions kept per service for /admin/scale
//!   webhook: http://10.0.0.5/scale  # JSON POST on each change of decision (optional)
//!   services:
//!     checkout:                     # the service's name (default upstream)
//!       upstream: checkout
//!       min: 1
//!       max: 20
//!       interval: 15s               # how often policies are asked
//!       window: 60s                 # measurement window of the snapshot
//!       replicas: 3                 # current replicas, when the endpoints do not say
//!       tolerance: 0.1              # |desired/current - 1| within this holds
//!       scale-down-stabilization: 300s
//!       scale-up-stabilization: 0s
//!       policies: [rps-target]      # names in `plugins:` (or built-ins)
//!       hold:                       # scale from zero (only with `min: 0`)
//!         queue: 100                # requests held at most while no endpoint is healthy
//!         timeout: 30s              # longest a request is held
//!         retry-after: 5s           # `Retry-After` of the 503 on overflow or timeout
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::cache::Issue;
use super::error::did_you_mean;
use super::parse_duration;
use super::plugins::{PluginChecks, PluginSpec};

/// Default time between two evaluations (the HPA's sync period).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Default measurement window of a snapshot.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Longest window the per-upstream metrics keep.
pub const MAX_WINDOW: Duration = Duration::from_secs(300);
/// The HPA's default tolerance.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// The HPA's default scale-down stabilisation window.
pub const DEFAULT_DOWN_STABILIZATION: Duration = Duration::from_secs(300);
/// Decisions kept per service by default.
pub const DEFAULT_HISTORY: usize = 20;
/// Requests a scale-from-zero service holds at most, by default.
pub const DEFAULT_HOLD_QUEUE: u32 = 100;
/// Longest a request is held, by default.
pub const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(30);
/// `Retry-After` of a refused held request, by default.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The `scaling:` block.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScalingYaml {
    /// Decisions kept per service for `/admin/scale`. Default: 20.
    #[schemars(with = "Option<usize>")]
    #[schemars(range(min = 1, max = 1000))]
    pub history: Option<Spanned<usize>>,
    /// `http://` URL that gets a JSON POST on each change of a decision,
    /// e.g. `http://10.0.0.5:8080/scale`. Default: none.
    #[schemars(with = "Option<String>")]
    pub webhook: Option<Spanned<String>>,
    /// Scaled services by name (the default upstream they measure). Default: none.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ServiceYaml>")]
    pub services: BTreeMap<String, Spanned<ServiceYaml>>,
}

/// One scaled service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServiceYaml {
    /// The upstream whose traffic is measured, e.g. `checkout`. Default: the service's name.
    #[schemars(with = "Option<String>")]
    pub upstream: Option<Spanned<String>>,
    /// Fewest replicas; 0 enables scale from zero (see `hold`). Default: 1.
    #[schemars(with = "Option<u32>")]
    pub min: Option<Spanned<u32>>,
    /// Most replicas (at least 1, and at least `min`), e.g. `20`.
    #[schemars(with = "u32")]
    #[schemars(range(min = 1))]
    pub max: Spanned<u32>,
    /// Time between evaluations. Default: 15s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub interval: Option<Spanned<String>>,
    /// Measurement window of the snapshot (whole seconds, at most 300s). Default: 60s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub window: Option<Spanned<String>>,
    /// The current replica count, when the gateway's endpoints do not tell it
    /// (one Service address in front of many pods), e.g. `3`. Default: the
    /// upstream's endpoint count.
    #[schemars(with = "Option<u32>")]
    pub replicas: Option<Spanned<u32>>,
    /// A desired count within this fraction of the current one keeps the
    /// current one. Default: 0.1.
    #[schemars(with = "Option<f64>")]
    pub tolerance: Option<Spanned<f64>>,
    /// Scale down only to the highest count recommended over this window. Default: 300s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub scale_down_stabilization: Option<Spanned<String>>,
    /// Scale up only to the lowest count recommended over this window. Default: 0s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub scale_up_stabilization: Option<Spanned<String>>,
    /// Scaler plugins (names under `plugins:` or built-ins), asked in turn;
    /// the largest desired count wins, e.g. `[scale-target-tracking]`.
    #[schemars(with = "Vec<String>")]
    pub policies: Spanned<Vec<Spanned<String>>>,
    /// Scale from zero: how requests wait while no endpoint is healthy.
    /// Only with `min: 0`. Default: on with the defaults of each key when `min` is 0.
    #[schemars(with = "Option<HoldYaml>")]
    pub hold: Option<Spanned<HoldYaml>>,
}

/// `hold:` of a scaled service: requests wait for a first replica instead of failing.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HoldYaml {
    /// Requests held at most; more get 503 at once. Default: 100.
    #[schemars(with = "Option<u32>")]
    #[schemars(range(min = 1, max = 100000))]
    pub queue: Option<Spanned<u32>>,
    /// Longest a request is held before a 503. Default: 30s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub timeout: Option<Spanned<String>>,
    /// The `Retry-After` (whole seconds) of those 503s. Default: 5s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub retry_after: Option<Spanned<String>>,
}

/// The validated `hold:` of a `min: 0` service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub queue: u32,
    pub timeout: Duration,
    pub retry_after: Duration,
}

/// The validated `scaling:` block.
#[derive(Debug, Clone, Default)]
pub struct Scaling {
    pub history: usize,
    pub webhook: Option<http::Uri>,
    /// In name order.
    pub services: Vec<ScaledService>,
}

/// One validated scaled service.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledService {
    pub name: String,
    pub upstream: String,
    pub min: u32,
    pub max: u32,
    pub interval: Duration,
    pub window: Duration,
    pub replicas: Option<u32>,
    pub tolerance: f64,
    pub down_stabilization: Duration,
    pub up_stabilization: Duration,
    /// Plugin names, in order.
    pub policies: Vec<String>,
    /// Set exactly when `min` is 0.
    pub hold: Option<Hold>,
}

/// Validates `raw`; plugin references go through `checks` (which may add a
/// built-in's spec to `plugins`), other issues to `issues`.
pub fn resolve(
    raw: &ScalingYaml,
    upstreams: &[&str],
    checks: &mut PluginChecks<'_>,
    plugins: &mut Vec<PluginSpec>,
    issues: &mut Vec<Issue>,
) -> Scaling {
    let history = match &raw.history {
        None => DEFAULT_HISTORY,
        Some(h) if (1..=1000).contains(&h.value) => h.value,
        Some(h) => {
            issues.push(Issue::new(
                &h.referenced,
                "scaling.history",
                "must be between 1 and 1000",
            ));
            DEFAULT_HISTORY
        }
    };
    let webhook = raw
        .webhook
        .as_ref()
        .and_then(|w| match w.value.parse::<http::Uri>() {
            Ok(u) if u.scheme_str() == Some("http") && u.authority().is_some() => Some(u),
            _ => {
                issues.push(Issue::new(
                    &w.referenced,
                    "scaling.webhook",
                    format!(
                        "\"{}\" is not an http:// URL; write e.g. \"http://10.0.0.5:8080/scale\"",
                        w.value
                    ),
                ));
                None
            }
        });
    let services = raw
        .services
        .iter()
        .filter_map(|(name, s)| service(name, s, upstreams, checks, plugins, issues))
        .collect();
    Scaling {
        history,
        webhook,
        services,
    }
}

fn service(
    name: &str,
    s: &Spanned<ServiceYaml>,
    upstreams: &[&str],
    checks: &mut PluginChecks<'_>,
    plugins: &mut Vec<PluginSpec>,
    issues: &mut Vec<Issue>,
) -> Option<ScaledService> {
    let path = |f: &str| format!("scaling.services.{name}.{f}");
    let v = &s.value;
    let before = issues.len();
    let upstream = v.upstream.as_ref().map_or(name, |u| u.value.as_str());
    if !upstreams.contains(&upstream) {
        let at = v.upstream.as_ref().map_or(&s.referenced, |u| &u.referenced);
        let hint = did_you_mean(upstream, upstreams.iter().copied());
        issues.push(Issue::new(
            at,
            path("upstream"),
            format!(
                "no upstream \"{upstream}\"{hint}; a scaled service measures one of `upstreams:`"
            ),
        ));
    }
    let min = v.min.as_ref().map_or(1, |m| m.value);
    if v.max.value == 0 {
        issues.push(Issue::new(
            &v.max.referenced,
            path("max"),
            "must be at least 1",
        ));
    } else if min > v.max.value {
        let at = v.min.as_ref().map_or(&v.max.referenced, |m| &m.referenced);
        issues.push(Issue::new(
            at,
            path("min"),
            format!("min ({min}) is larger than max ({})", v.max.value),
        ));
    }
    let interval = duration(
        &v.interval,
        path("interval"),
        DEFAULT_INTERVAL,
        false,
        issues,
    );
    let window = duration(&v.window, path("window"), DEFAULT_WINDOW, false, issues);
    if let Some(w) = &v.window {
        if window > MAX_WINDOW {
            issues.push(Issue::new(
                &w.referenced,
                path("window"),
                format!("at most {}s of history is kept", MAX_WINDOW.as_secs()),
            ));
        } else if window < Duration::from_secs(1) {
            issues.push(Issue::new(
                &w.referenced,
                path("window"),
                "must be at least 1s",
            ));
        }
    }
    let tolerance = match &v.tolerance {
        None => DEFAULT_TOLERANCE,
        Some(t) if (0.0..1.0).contains(&t.value) => t.value,
        Some(t) => {
            issues.push(Issue::new(
                &t.referenced,
                path("tolerance"),
                "must be a fraction in 0 ≤ tolerance < 1, e.g. 0.1",
            ));
            DEFAULT_TOLERANCE
        }
    };
    let down_stabilization = duration(
        &v.scale_down_stabilization,
        path("scale-down-stabilization"),
        DEFAULT_DOWN_STABILIZATION,
        true,
        issues,
    );
    let up_stabilization = duration(
        &v.scale_up_stabilization,
        path("scale-up-stabilization"),
        Duration::ZERO,
        true,
        issues,
    );
    if v.policies.value.is_empty() {
        issues.push(Issue::new(
            &v.policies.referenced,
            path("policies"),
            "list at least one scaler plugin, e.g. `policies: [target-tracking]`",
        ));
    }
    let issued = checks.issues.len();
    let policies: Vec<String> = v
        .policies
        .value
        .iter()
        .enumerate()
        .filter_map(|(i, p)| checks.reference(plugins, p, path(&format!("policies[{i}]"))))
        .collect();
    let hold = hold(v, min, &path, issues);
    if issues.len() > before || checks.issues.len() > issued {
        return None;
    }
    Some(ScaledService {
        name: name.to_owned(),
        upstream: upstream.to_owned(),
        min,
        max: v.max.value,
        interval,
        window,
        replicas: v.replicas.as_ref().map(|r| r.value),
        tolerance,
        down_stabilization,
        up_stabilization,
        policies,
        hold,
    })
}

fn hold(
    v: &ServiceYaml,
    min: u32,
    path: &dyn Fn(&str) -> String,
    issues: &mut Vec<Issue>,
) -> Option<Hold> {
    if min > 0 {
        if let Some(h) = &v.hold {
            issues.push(Issue::new(
                &h.referenced,
                path("hold"),
                format!(
                    "a service with min: {min} always has a replica to send to; \
                     `hold` is for scale from zero (min: 0)"
                ),
            ));
        }
        return None;
    }
    let raw = v.hold.as_ref().map(|h| &h.value);
    let queue = match raw.and_then(|h| h.queue.as_ref()) {
        None => DEFAULT_HOLD_QUEUE,
        Some(q) if (1..=100_000).contains(&q.value) => q.value,
        Some(q) => {
            issues.push(Issue::new(
                &q.referenced,
                path("hold.queue"),
                "must be between 1 and 100000",
            ));
            DEFAULT_HOLD_QUEUE
        }
    };
    let none = None;
    let timeout = duration(
        raw.map_or(&none, |h| &h.timeout),
        path("hold.timeout"),
        DEFAULT_HOLD_TIMEOUT,
        false,
        issues,
    );
    let retry_after = duration(
        raw.map_or(&none, |h| &h.retry_after),
        path("hold.retry-after"),
        DEFAULT_RETRY_AFTER,
        true,
        issues,
    );
    Some(Hold {
        queue,
        timeout,
        retry_after,
    })
}

fn duration(
    field: &Option<Spanned<String>>,
    path: String,
    default: Duration,
    zero_ok: bool,
    issues: &mut Vec<Issue>,
) -> Duration {
    let Some(f) = field else { return default };
    match parse_duration(&f.value) {
        Ok(d) if zero_ok || !d.is_zero() => d,
        Ok(_) => {
            issues.push(Issue::new(&f.referenced, path, "must be greater than zero"));
            default
        }
        Err(e) => {
            issues.push(Issue::new(&f.referenced, path, e));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    const HEAD: &str = "listeners: [{address: \"127.0.0.1:0\"}]\n\
        upstreams:\n  api:\n    balancer: native\n    endpoints: [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n\
        routes:\n  - upstream: api\n";

    fn load(tail: &str) -> Result<crate::config::Config, String> {
        crate::config::load_str(&format!("{HEAD}{tail}"), Path::new("t.yaml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_service_with_defaults_and_a_builtin_policy() {
        let c = load(
            "scaling:\n  services:\n    api:\n      max: 8\n      policies: [scale-target-tracking]\n",
        );
        // A build without the embedded plugins refuses the policy instead.
        let Ok(c) = c else {
            assert!(crate::builtins::bytes("scale-target-tracking").is_none());
            return;
        };
        let s = &c.scaling.services[0];
        assert_eq!((s.name.as_str(), s.upstream.as_str()), ("api", "api"));
        assert_eq!((s.min, s.max, s.replicas), (1, 8, None));
        assert_eq!(s.interval, Duration::from_secs(15));
        assert_eq!(s.down_stabilization, Duration::from_secs(300));
        assert_eq!(s.policies, ["scale-target-tracking"]);
        assert_eq!(c.scaling.history, 20);
        assert!(c.plugins.iter().any(|p| p.name == "scale-target-tracking"));
    }

    #[test]
    fn errors_are_located() {
        let err = load(
            "scaling:\n  services:\n    apx:\n      min: 9\n      max: 3\n      interval: soon\n      tolerance: 2\n      policies: []\n",
        )
        .unwrap_err();
        for want in [
            "t.yaml:11:7: scaling.services.apx.upstream: no upstream \"apx\" (did you mean \"api\"?)",
            "t.yaml:11:12: scaling.services.apx.min: min (9) is larger than max (3)",
            "t.yaml:13:17: scaling.services.apx.interval: \"soon\" is not a duration",
            "t.yaml:14:18: scaling.services.apx.tolerance: must be a fraction",
            "t.yaml:15:17: scaling.services.apx.policies: list at least one scaler plugin",
        ] {
            assert!(err.contains(want), "missing {want:?} in\n{err}");
        }
        let err = load("scaling:\n  services:\n    api:\n      max: 3\n      policies: [nope]\n")
            .unwrap_err();
        assert!(
            err.contains("t.yaml:12:18: scaling.services.api.policies[0]"),
            "{err}"
        );
        let err = load(
            "scaling:\n  services:\n    api:\n      max: 3\n      windw: 1s\n      policies: [x]\n",
        )
        .unwrap_err();
        assert!(err.contains("windw"), "{err}");
    }

    #[test]
    fn the_hold_is_for_min_zero_with_defaults() {
        let svc = "scaling:\n  services:\n    api:\n      max: 3\n      policies: [scale-step]\n";
        let Ok(c) = load(&svc.replace("max: 3", "min: 0\n      max: 3")) else {
            assert!(crate::builtins::bytes("scale-step").is_none());
            return;
        };
        let hold = c.scaling.services[0].hold.expect("on by default at min: 0");
        assert_eq!(
            (hold.queue, hold.timeout, hold.retry_after),
            (100, Duration::from_secs(30), Duration::from_secs(5))
        );
        assert_eq!(load(svc).unwrap().scaling.services[0].hold, None);
        let c = load(&format!(
            "{}      hold: {{queue: 7, timeout: 2s, retry-after: 0s}}\n",
            svc.replace("max: 3", "min: 0\n      max: 3")
        ))
        .unwrap();
        let hold = c.scaling.services[0].hold.unwrap();
        assert_eq!(
            (hold.queue, hold.timeout, hold.retry_after.as_secs()),
            (7, Duration::from_secs(2), 0)
        );
        let err = load(&format!("{svc}      hold: {{queue: 7}}\n")).unwrap_err();
        assert!(
            err.contains("t.yaml:13:13: scaling.services.api.hold: a service with min: 1"),
            "{err}"
        );
        let err = load(&format!(
            "{}      hold: {{queue: 0, timeout: 0s, size: 3}}\n",
            svc.replace("max: 3", "min: 0\n      max: 3")
        ))
        .unwrap_err();
        assert!(err.contains("size"), "unknown keys are refused: {err}");
        let err = load(&format!(
            "{}      hold: {{queue: 0, timeout: 0s}}\n",
            svc.replace("max: 3", "min: 0\n      max: 3")
        ))
        .unwrap_err();
        assert!(
            err.contains("hold.queue: must be between 1 and 100000"),
            "{err}"
        );
        assert!(
            err.contains("hold.timeout: must be greater than zero"),
            "{err}"
        );
    }
}
