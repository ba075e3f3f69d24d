//! `edgeward plugin build`: the project's own toolchain, pinned by its SDK
//! (cargo for wasm32-wasip2, componentize-py, componentize-js); the
//! component is copied to `<dir>/<name>.wasm`, where the scaffold's
//! `edgeward.yaml` looks for it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Lang, WorldKind, sdk};

fn detect(dir: &Path) -> Result<Lang, String> {
    if dir.join("Cargo.toml").is_file() {
        Ok(Lang::Rust)
    } else if dir.join("app.py").is_file() {
        Ok(Lang::Python)
    } else if dir.join("app.js").is_file() {
        Ok(Lang::Js)
    } else {
        Err(format!(
            "{}: not a plugin project (no Cargo.toml, app.py or app.js); `edgeward plugin new` makes one",
            dir.display()
        ))
    }
}

/// The `edgeward-world: …` line the scaffold puts at the top of app.py/app.js.
fn world_of(source: &Path) -> Result<WorldKind, String> {
    let text = std::fs::read_to_string(source).map_err(|e| format!("{}: {e}", source.display()))?;
    let Some(line) = text
        .lines()
        .take(5)
        .find_map(|l| l.split_once("edgeward-world:"))
    else {
        return Ok(WorldKind::Router);
    };
    let w = line.1.trim();
    WorldKind::parse(w).ok_or_else(|| {
        format!(
            "{}: unknown world `{w}` (router, filter or scaler)",
            source.display()
        )
    })
}

fn spawn(cmd: &mut Command, what: &str) -> Result<std::process::Output, String> {
    // The tool's progress goes to our stderr; stdout is ours to parse.
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{what} failed ({})", out.status));
    }
    Ok(out)
}

fn prepend_path(var: &str, dir: &Path) -> OsString {
    let mut parts = vec![dir.to_path_buf()];
    if let Some(old) = std::env::var_os(var) {
        parts.extend(std::env::split_paths(&old));
    }
    std::env::join_paths(parts).unwrap_or_else(|_| dir.as_os_str().to_owned())
}

pub fn run(dir: &Path, sdk_root: Option<&Path>) -> Result<(), String> {
    let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: no project name", dir.display()))?
        .to_owned();
    let out = dir.join(format!("{name}.wasm"));
    match detect(&dir)? {
        Lang::Rust => {
            let built = cargo(&dir)?;
            std::fs::copy(&built, &out)
                .map_err(|e| format!("copy {} to {}: {e}", built.display(), out.display()))?;
        }
        Lang::Python => {
            let world = world_of(&dir.join("app.py"))?;
            let mut cmd = Command::new("python3");
            cmd.args([
                "-m",
                "edgeward_sdk.build",
                "app",
                "--world",
                world.name(),
                "-p",
            ])
            .arg(&dir)
            .arg("-o")
            .arg(&out);
            if let Ok(root) = sdk::root(sdk_root) {
                cmd.env(
                    "PYTHONPATH",
                    prepend_path("PYTHONPATH", &root.join("sdk-python")),
                );
            }
            spawn(&mut cmd, "python3 -m edgeward_sdk.build (componentize-py)")?;
        }
        Lang::Js => {
            let world = world_of(&dir.join("app.js"))?;
            let linked = dir.join("node_modules/edgeward-sdk/build.mjs");
            if !linked.is_file() {
                spawn(
                    Command::new("npm")
                        .args(["install", "--no-audit", "--no-fund"])
                        .current_dir(&dir),
                    "npm install",
                )?;
            }
            let script = if linked.is_file() {
                linked
            } else {
                sdk::root(sdk_root)?.join("sdk-js/build.mjs")
            };
            spawn(
                Command::new("node")
                    .arg(script)
                    .arg(dir.join("app.js"))
                    .args(["--world", world.name(), "-o"])
                    .arg(&out),
                "node build.mjs (componentize-js)",
            )?;
        }
    }
    println!("built {}", out.display());
    Ok(())
}

/// `cargo build --release --target wasm32-wasip2`; the `.wasm` cargo reports.
fn cargo(dir: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = spawn(
        Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(dir),
        "cargo build --release --target wasm32-wasip2 (is the target installed? `rustup target add wasm32-wasip2`)",
    )?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .flat_map(|v| {
            v["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| "cargo built no .wasm: is the crate a `cdylib`?".to_owned())
}
