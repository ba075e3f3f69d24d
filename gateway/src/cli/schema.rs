//! `edgeward schema [--markdown]`: the config's JSON Schema, or the
//! configuration reference rendered from it.

use std::io::Write;
use std::process::ExitCode;

use edgeward::config::{reference, schema};

pub fn run(markdown: bool) -> ExitCode {
    let schema = schema::json_schema();
    let text = if markdown {
        reference::markdown(&schema)
    } else {
        match serde_json::to_string_pretty(&schema) {
            Ok(t) => t + "\n",
            Err(e) => {
                eprintln!("cannot print the schema: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    // A closed pipe (`edgeward schema | head`) is not worth a panic.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write the schema: {e}");
            ExitCode::FAILURE
        }
    }
}
