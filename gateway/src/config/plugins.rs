//! The `plugins:` section, `balancer:` on upstreams and `filters:` on routes:
//! the YAML model and its validation into [`PluginSpec`]s.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::error::{ConfigIssue, did_you_mean};
use super::load::at;
use super::units::{parse_duration, parse_size};

/// The built-in router an upstream uses when it names no `balancer`.
pub const DEFAULT_BALANCER: &str = "round-robin";
/// `balancer: native` is the host's own smooth round robin, no Wasm involved:
/// the baseline plugins are measured against, and what `on-error: fallback` uses.
pub const NATIVE_BALANCER: &str = "native";
/// Default per-call deadline of a plugin.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(2);
/// Default memory cap of one plugin instance.
pub const DEFAULT_MEMORY: usize = 16 << 20;
/// Default time one instance's `init` may take: it runs off the request
/// path, and interpreters (componentize-py) need far more than a call.
pub const DEFAULT_INIT_DEADLINE: Duration = Duration::from_secs(2);

/// A plugin: a Wasm component (built in or from a file), its settings and limits.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginConfig {
    /// A plugin embedded in the binary, e.g. `round-robin`: routers
    /// `round-robin`, `least-connections`, `weighted`, `ip-hash`,
    /// `cookie-affinity`, `read-write-split`, `shard-by-key`; filter
    /// `rate-limit`; scalers `scale-target-tracking`, `scale-step`,
    /// `scale-scheduled`. Exclusive with `path`.
    #[schemars(with = "Option<String>")]
    pub builtin: Option<Spanned<String>>,
    /// A `.wasm` component file (built for `wasm32-wasip2`), relative to
    /// the config file, e.g. `plugins/canary_plugin.wasm`. Exclusive with `builtin`.
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// Passed to the plugin's `init` as string pairs, in file order (numbers
    /// and booleans as their text), e.g. `{tag: canary, percent: 10}`. Default: empty.
    #[serde(default)]
    pub config: PluginSettings,
    /// Time one call may take (1µs to 10s); an overrun is a fault (see
    /// `on-error`). Interpreted guests (Python, JavaScript) need more, e.g.
    /// `20ms`. Default: 2ms.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub deadline: Option<Spanned<String>>,
    /// Memory cap of one instance (1MiB to 4GiB); growing past it is a
    /// fault, e.g. `64MiB`. Default: 16MiB.
    #[schemars(with = "Option<super::schema::Size>")]
    pub memory: Option<Spanned<String>>,
    /// What a fault (trap, deadline, memory, every instance busy) does to
    /// the request. Default: `fallback`.
    #[schemars(with = "Option<OnError>")]
    pub on_error: Option<Spanned<OnError>>,
    /// With `on-error: fallback-tagged` (and only then): the fallback round
    /// robin only uses endpoints carrying one of these tags, e.g. `[stable]`.
    /// Default: none.
    #[schemars(with = "Option<Vec<String>>")]
    pub fallback_tags: Option<Spanned<Vec<String>>>,
    /// Time one instance's `init` may take (1ms to 60s), e.g. `10s`. Default: 2s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub init_deadline: Option<Spanned<String>>,
    /// Instances kept at most (1 to 1024), each serving one call at a time;
    /// a call that finds every instance busy is a `busy` fault, e.g. `16`.
    /// Default: twice the CPU count, at least 4.
    #[schemars(with = "Option<u32>")]
    #[schemars(range(min = 1, max = 1024))]
    pub instances: Option<Spanned<u32>>,
}

/// A plugin's fault policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Routers: the native round robin picks; filters: the request goes on unfiltered.
    #[default]
    Fallback,
    /// Routers: the native round robin picks among the endpoints carrying a
    /// `fallback-tags` tag (503 when none can serve), so a canary router's
    /// fault keeps stable traffic on stable endpoints; filters: as `fallback`.
    FallbackTagged,
    /// Answer 502 (plugin failed) or 503 (plugin busy or too slow).
    Fail,
}

/// `config:` as ordered string pairs; scalars of any type are accepted as text.
#[derive(Debug, Default)]
pub struct PluginSettings(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for PluginSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PluginSettings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of plugin settings (key: value)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Scalar>()? {
                    out.push((k, v.0));
                }
                Ok(PluginSettings(out))
            }
        }
        d.deserialize_map(V)
    }
}

struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            B(bool),
            I(i64),
            F(f64),
            S(String),
        }
        Ok(Scalar(
            match Any::deserialize(d).map_err(|_| {
                serde::de::Error::custom("plugin settings are scalars (text, numbers, true/false)")
            })? {
                Any::B(b) => b.to_string(),
                Any::I(i) => i.to_string(),
                Any::F(f) => f.to_string(),
                Any::S(s) => s,
            },
        ))
    }
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    Builtin(String),
    Path(PathBuf),
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin(n) => write!(f, "builtin {n}"),
            Self::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A validated plugin, ready to load.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: String,
    pub source: PluginSource,
    pub config: Vec<(String, String)>,
    pub deadline: Duration,
    pub memory: usize,
    pub on_error: OnError,
    /// The tags `on-error: fallback-tagged` falls back to; empty otherwise.
    pub fallback_tags: Vec<String>,
    pub init_deadline: Duration,
    pub instances: u32,
    /// `file:line:col` of its definition, for load errors.
    pub defined_at: String,
}

fn default_instances() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    (2 * cpus).max(4)
}

/// Everything the plugin checks need from the rest of validation.
pub struct PluginChecks<'a> {
    pub file: &'a str,
    pub base: &'a Path,
    pub builtins: &'a [&'a str],
    pub issues: Vec<ConfigIssue>,
}

impl PluginChecks<'_> {
    fn issue(&mut self, loc: &Location, path: String, message: String) {
        let (line, column) = at(loc);
        self.issues.push(ConfigIssue {
            line,
            column,
            path,
            message,
        });
    }

    /// Validates the `plugins:` section.
    pub fn specs(&mut self, raw: &BTreeMap<String, Spanned<PluginConfig>>) -> Vec<PluginSpec> {
        let mut out = Vec::new();
        for (name, p) in raw {
            let path = |f: &str| format!("plugins.{name}.{f}");
            let v = &p.value;
            let source = match (&v.builtin, &v.path) {
                (Some(b), None) => {
                    if !self.builtins.contains(&b.value.as_str()) {
                        let hint = did_you_mean(&b.value, self.builtins.iter().copied());
                        self.issue(
                            &b.referenced,
                            path("builtin"),
                            format!(
                                "no built-in plugin \"{}\"{hint}; built-ins: {}",
                                b.value,
                                self.builtins.join(", ")
                            ),
                        );
                        continue;
                    }
                    PluginSource::Builtin(b.value.clone())
                }
                (None, Some(f)) => PluginSource::Path(self.base.join(&f.value)),
                _ => {
                    self.issue(
                        &p.referenced,
                        format!("plugins.{name}"),
                        "give either `builtin: <name>` or `path: <file.wasm>`".into(),
                    );
                    continue;
                }
            };
            let deadline = match &v.deadline {
                None => DEFAULT_DEADLINE,
                Some(d) => match parse_duration(&d.value) {
                    Ok(t) if !t.is_zero() && t <= Duration::from_secs(10) => t,
                    Ok(_) => {
                        self.issue(
                            &d.referenced,
                            path("deadline"),
                            "must be between 1µs and 10s".into(),
                        );
                        DEFAULT_DEADLINE
                    }
                    Err(e) => {
                        self.issue(&d.referenced, path("deadline"), e);
                        DEFAULT_DEADLINE
                    }
                },
            };
            let memory = match &v.memory {
                None => DEFAULT_MEMORY,
                Some(m) => match parse_size(&m.value) {
                    Ok(n) if (1 << 20..=4 << 30).contains(&n) => n,
                    Ok(_) => {
                        self.issue(
                            &m.referenced,
                            path("memory"),
                            "must be between 1MiB and 4GiB".into(),
                        );
                        DEFAULT_MEMORY
                    }
                    Err(e) => {
                        self.issue(&m.referenced, path("memory"), e);
                        DEFAULT_MEMORY
                    }
                },
            };
            let instances = match &v.instances {
                None => default_instances(),
                Some(n) if (1..=1024).contains(&n.value) => n.value,
                Some(n) => {
                    self.issue(
                        &n.referenced,
                        path("instances"),
                        "must be between 1 and 1024".into(),
                    );
                    default_instances()
                }
            };
            let init_deadline = match &v.init_deadline {
                None => DEFAULT_INIT_DEADLINE,
                Some(d) => match parse_duration(&d.value) {
                    Ok(t) if t >= Duration::from_millis(1) && t <= Duration::from_secs(60) => t,
                    Ok(_) => {
                        self.issue(
                            &d.referenced,
                            path("init-deadline"),
                            "must be between 1ms and 60s".into(),
                        );
                        DEFAULT_INIT_DEADLINE
                    }
                    Err(e) => {
                        self.issue(&d.referenced, path("init-deadline"), e);
                        DEFAULT_INIT_DEADLINE
                    }
                },
            };
            let on_error = v
                .on_error
                .as_ref()
                .map_or_else(OnError::default, |o| o.value);
            let fallback_tags = self.fallback_tags(v, on_error, &p.referenced, &path);
            let (line, col) = at(&p.referenced);
            out.push(PluginSpec {
                name: name.clone(),
                source,
                config: v.config.0.clone(),
                deadline,
                memory,
                on_error,
                fallback_tags,
                init_deadline,
                instances,
                defined_at: format!("{}:{line}:{col}", self.file),
            });
        }
        out
    }

    /// `fallback-tags`, checked against `on-error`: each needs the other.
    fn fallback_tags(
        &mut self,
        v: &PluginConfig,
        on_error: OnError,
        entry: &Location,
        path: &dyn Fn(&str) -> String,
    ) -> Vec<String> {
        let tagged = on_error == OnError::FallbackTagged;
        match &v.fallback_tags {
            Some(t) if !tagged => {
                self.issue(
                    &t.referenced,
                    path("fallback-tags"),
                    "only used with `on-error: fallback-tagged`".into(),
                );
                Vec::new()
            }
            Some(t) if t.value.is_empty() || t.value.iter().any(|s| s.trim().is_empty()) => {
                self.issue(
                    &t.referenced,
                    path("fallback-tags"),
                    "list at least one non-empty endpoint tag, e.g. [stable]".into(),
                );
                Vec::new()
            }
            Some(t) => t.value.iter().map(|s| s.trim().to_owned()).collect(),
            None if tagged => {
                let loc = v.on_error.as_ref().map_or(entry, |o| &o.referenced);
                self.issue(
                    loc,
                    path("on-error"),
                    "`fallback-tagged` needs `fallback-tags: [TAG, …]`, the endpoints to fall back to".into(),
                );
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// A plugin the config implies rather than names (a route's
    /// `rate-limit:` block is the `rate-limit` built-in filter): added to
    /// `specs` under `name` with `config`, or a located issue at `loc` when
    /// this build lacks the built-in or `name` is taken.
    pub fn implied(
        &mut self,
        specs: &mut Vec<PluginSpec>,
        name: String,
        builtin: &str,
        config: Vec<(String, String)>,
        loc: &Location,
        path: String,
    ) -> Option<String> {
        if !self.builtins.contains(&builtin) {
            self.issue(
                loc,
                path,
                format!("this build has no built-in `{builtin}` plugin (it was built with EDGEWARD_SKIP_BUILTIN_PLUGINS)"),
            );
            return None;
        }
        if specs.iter().any(|s| s.name == name) {
            self.issue(
                loc,
                path,
                format!("the plugin name \"{name}\" is reserved for this block; rename the entry under `plugins:`"),
            );
            return None;
        }
        let (line, col) = at(loc);
        specs.push(PluginSpec {
            name: name.clone(),
            source: PluginSource::Builtin(builtin.to_owned()),
            config,
            deadline: DEFAULT_DEADLINE,
            memory: DEFAULT_MEMORY,
            on_error: OnError::Fallback,
            fallback_tags: Vec::new(),
            init_deadline: DEFAULT_INIT_DEADLINE,
            instances: default_instances(),
            defined_at: format!("{}:{line}:{col}", self.file),
        });
        Some(name)
    }

    /// Resolves a plugin reference (`balancer:` or a `filters:` entry): a
    /// name under `plugins:`, or a built-in used with default settings
    /// (added to `specs`). `None` after reporting an unknown name.
    pub fn reference(
        &mut self,
        specs: &mut Vec<PluginSpec>,
        name: &Spanned<String>,
        path: String,
    ) -> Option<String> {
        let wanted = name.value.as_str();
        if specs.iter().any(|s| s.name == wanted) {
            return Some(wanted.to_owned());
        }
        if self.builtins.contains(&wanted) {
            let (line, col) = at(&name.referenced);
            specs.push(PluginSpec {
                name: wanted.to_owned(),
                source: PluginSource::Builtin(wanted.to_owned()),
                config: Vec::new(),
                deadline: DEFAULT_DEADLINE,
                memory: DEFAULT_MEMORY,
                on_error: OnError::Fallback,
                fallback_tags: Vec::new(),
                init_deadline: DEFAULT_INIT_DEADLINE,
                instances: default_instances(),
                defined_at: format!("{}:{line}:{col}", self.file),
            });
            return Some(wanted.to_owned());
        }
        let known: Vec<&str> = specs
            .iter()
            .map(|s| s.name.as_str())
            .chain(self.builtins.iter().copied())
            .collect();
        let hint = did_you_mean(wanted, known.iter().copied());
        self.issue(
            &name.referenced,
            path,
            format!(
                "no plugin named \"{wanted}\"{hint}; define it under `plugins:` or use a built-in: {} (or `{NATIVE_BALANCER}` for the host's round robin)",
                self.builtins.join(", ")
            ),
        );
        None
    }
}
