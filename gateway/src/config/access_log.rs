//! `access-log:` — `true` (JSON lines on stdout), or `{path, format}`.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

/// `true` (JSON lines on stdout), `false`, or where and how to write.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AccessLogYaml {
    /// `true`: JSON lines on stdout; `false`: no access log.
    On(bool),
    Detailed(AccessLogDetail),
}

impl Default for AccessLogYaml {
    fn default() -> Self {
        Self::On(false)
    }
}

/// Where and how the access log is written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AccessLogDetail {
    /// File the lines are appended to, relative to the config file (reopened
    /// on reload, so log rotation works); `-` is stdout, e.g. `access.log`.
    /// Default: `-`.
    pub path: Option<String>,
    /// `json` (one object per line) or `combined` (NGINX/Apache combined,
    /// plus request ID and duration). Default: json.
    #[serde(default)]
    pub format: AccessLogFormat,
}

/// The access log's line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AccessLogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// NGINX/Apache combined, plus request ID and duration.
    Combined,
}

/// Where and how the access log is written; `path: None` is stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    pub path: Option<PathBuf>,
    pub format: AccessLogFormat,
}

/// Relative paths start at the config file's directory.
pub fn resolve(y: &AccessLogYaml, base: &std::path::Path) -> Option<AccessLog> {
    match y {
        AccessLogYaml::On(false) => None,
        AccessLogYaml::On(true) => Some(AccessLog {
            path: None,
            format: AccessLogFormat::Json,
        }),
        AccessLogYaml::Detailed(d) => Some(AccessLog {
            path: d
                .path
                .as_deref()
                .filter(|p| *p != "-")
                .map(|p| base.join(p)),
            format: d.format,
        }),
    }
}
