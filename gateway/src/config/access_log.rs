//! `access-log:` — `true` (JSON lines on stdout), or `{path, format}`.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum AccessLogYaml {
    On(bool),
    Detailed(AccessLogDetail),
}

impl Default for AccessLogYaml {
    fn default() -> Self {
        Self::On(false)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AccessLogDetail {
    /// File the lines are appended to; `-` is stdout. Default: `-`.
    pub path: Option<String>,
    /// `json` (one object per line) or `combined` (NGINX/Apache combined,
    /// plus request ID and duration). Default: json.
    #[serde(default)]
    pub format: AccessLogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessLogFormat {
    #[default]
    Json,
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
