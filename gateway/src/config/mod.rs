//! `edgeward.yaml`: the model, loading with located errors, and validation.

pub mod access_log;
pub mod actions;
pub mod cache;
pub mod compress;
pub mod discovery;
mod error;
pub mod limits;
mod load;
pub mod model;
pub mod plugins;
pub mod reference;
pub mod resilience;
mod resolved;
pub mod scaling;
pub mod schema;
mod units;
mod validate;

use std::path::Path;

pub use error::{ConfigError, ConfigIssue, Warnings};
pub use plugins::{OnError, PluginSource, PluginSpec};
pub use resolved::*;
pub use units::{parse_duration, parse_size};
pub use validate::Hostname;
pub use validate::self_signed;

/// A configuration that validated, with what deserves a look but does not
/// stop it from serving.
pub struct Checked {
    pub config: Config,
    pub warnings: Warnings,
    /// Endpoints given by host name, for `edgeward check` to try resolving.
    pub hostnames: Vec<Hostname>,
}

/// Reads, parses and validates a configuration file; warnings are logged.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let checked = check_file(path)?;
    for w in &checked.warnings.issues {
        tracing::warn!(
            "{}:{}:{}: {}: {}",
            checked.warnings.file,
            w.line,
            w.column,
            w.path,
            w.message
        );
    }
    Ok(checked.config)
}

/// Reads, parses and validates a configuration file, keeping its warnings.
pub fn check_file(path: &Path) -> Result<Checked, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.display().to_string(),
        source,
    })?;
    check_str(&text, path)
}

/// Parses and validates configuration text; `path` names it in errors and anchors
/// relative file references.
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    check_str(text, path).map(|c| c.config)
}

/// [`load_str`], keeping the warnings.
pub fn check_str(text: &str, path: &Path) -> Result<Checked, ConfigError> {
    let file = path.display().to_string();
    let parsed = load::parse(text);
    let mut issues = parsed.issues;
    // Past the structure, checks run on what was read when the cuts left
    // every name and index as written; otherwise they would report what
    // the cuts caused.
    if let Some(raw) = parsed.raw
        && (issues.is_empty() || parsed.whole)
    {
        match validate::resolve(raw, path) {
            Ok(checked) if issues.is_empty() => {
                return Ok(Checked {
                    config: checked.config,
                    warnings: Warnings {
                        file,
                        issues: checked.warnings,
                    },
                    hostnames: checked.hostnames,
                });
            }
            Ok(_) => {}
            Err(mut more) => issues.append(&mut more),
        }
    }
    issues.sort_by_key(|i| (i.line, i.column));
    issues.dedup();
    Err(ConfigError::Invalid { file, issues })
}
