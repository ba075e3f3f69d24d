//! `edgeward plugin …`: the authoring commands. `new` writes a project that
//! builds and tests as is, `build` runs the language's pinned toolchain and
//! says where the component is, `check` says which world a `.wasm`
//! implements and whether the gateway loads it. Also `edgeward check`, for
//! configuration files (`config_check`).

mod build;
mod check;
pub mod config_check;
mod new;
pub mod schema;
mod sdk;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Write a new plugin project NAME (a directory) that builds, has a passing
    /// test and an `edgeward.yaml` using it.
    New {
        /// The project's directory and name (letters, digits, `-`, `_`).
        name: PathBuf,
        /// The language of the project.
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// The role: a router picks endpoints, a filter edits or answers
        /// requests, a scaler turns measurements into replica counts.
        #[arg(long, value_enum, default_value_t = WorldKind::Router)]
        world: WorldKind,
        /// The Edgeward checkout holding `sdk/`, `sdk-python/`, `sdk-js/`
        /// (default: found from this binary's location or `$EDGEWARD_SDK_ROOT`).
        #[arg(long, value_name = "DIR")]
        sdk_root: Option<PathBuf>,
    },
    /// Build the plugin project in DIR (default `.`) and print the `.wasm` path.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// As for `new`.
        #[arg(long, value_name = "DIR")]
        sdk_root: Option<PathBuf>,
    },
    /// Tell which world the component FILE implements and whether it loads
    /// (instantiated and `init` run with the `--config` pairs).
    Check {
        file: PathBuf,
        /// `key=value` passed to `init` (repeat for more).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum WorldKind {
    Router,
    Filter,
    Scaler,
}

impl WorldKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Router => "router",
            Self::Filter => "filter",
            Self::Scaler => "scaler",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Router, Self::Filter, Self::Scaler]
            .into_iter()
            .find(|w| w.name() == s)
    }
}

pub fn run(cmd: PluginCommand) -> ExitCode {
    let result = match cmd {
        PluginCommand::New {
            name,
            lang,
            world,
            sdk_root,
        } => new::run(&name, lang, world, sdk_root.as_deref()),
        PluginCommand::Build { dir, sdk_root } => build::run(&dir, sdk_root.as_deref()),
        PluginCommand::Check { file, config } => check::run(&file, &config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
