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

pub use error::{ConfigError, ConfigIssue};
pub use plugins::{OnError, PluginSource, PluginSpec};
pub use resolved::*;
pub use units::{parse_duration, parse_size};
pub use validate::self_signed;

/// Reads, parses and validates a configuration file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.display().to_string(),
        source,
    })?;
    load_str(&text, path)
}

/// Parses and validates configuration text; `path` names it in errors and anchors
/// relative file references.
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let raw = load::parse(&file, text)?;
    validate::resolve(raw, path).map_err(|issues| ConfigError::Invalid { file, issues })
}
