//! `edgeward plugin new`: a project per language and world, from the
//! templates beside this file, wired to the SDK checkout (see `sdk.rs`).

use std::path::Path;

use super::{Lang, WorldKind, sdk};

/// Per-call deadline and instance memory each language needs to stay clear
/// of overruns (measured by tests/tests/authoring.rs; README "Writing plugins").
pub fn limits(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "",
        Lang::Python => {
            "    deadline: 20ms   # the interpreter needs more than the 2ms default\n    memory: 64MiB\n"
        }
        Lang::Js => {
            "    deadline: 50ms   # the JS engine needs more than the 2ms default\n    memory: 128MiB\n"
        }
    }
}

fn template(lang: Lang, world: WorldKind) -> (&'static str, &'static str) {
    use Lang::*;
    use WorldKind::*;
    match (lang, world) {
        (Rust, Router) => (include_str!("templates/rust_router.rs"), ""),
        (Rust, Filter) => (include_str!("templates/rust_filter.rs"), ""),
        (Rust, Scaler) => (include_str!("templates/rust_scaler.rs"), ""),
        (Python, Router) => (
            include_str!("templates/py_router.py"),
            include_str!("templates/py_router_test.py"),
        ),
        (Python, Filter) => (
            include_str!("templates/py_filter.py"),
            include_str!("templates/py_filter_test.py"),
        ),
        (Python, Scaler) => (
            include_str!("templates/py_scaler.py"),
            include_str!("templates/py_scaler_test.py"),
        ),
        (Js, Router) => (
            include_str!("templates/js_router.js"),
            include_str!("templates/js_router_test.js"),
        ),
        (Js, Filter) => (
            include_str!("templates/js_filter.js"),
            include_str!("templates/js_filter_test.js"),
        ),
        (Js, Scaler) => (
            include_str!("templates/js_scaler.js"),
            include_str!("templates/js_scaler_test.js"),
        ),
    }
}

/// A config that runs the plugin once it is built (`path:` is where
/// `edgeward plugin build` puts the component).
pub fn config(name: &str, lang: Lang, world: WorldKind) -> String {
    let mut y = format!(
        "# Serve with: edgeward run --config edgeward.yaml (after `edgeward plugin build`)\n\
         listeners:\n  - name: http\n    address: 127.0.0.1:8080\n\
         plugins:\n  {name}:\n    path: {name}.wasm\n{}",
        limits(lang)
    );
    match world {
        WorldKind::Router => y.push_str(&format!(
            "upstreams:\n  app:\n    balancer: {name}\n    endpoints: [127.0.0.1:9001, 127.0.0.1:9002]\n\
             routes:\n  - upstream: app\n"
        )),
        WorldKind::Filter => y.push_str(&format!(
            "    config: {{deny: /admin}}\n\
             upstreams:\n  app:\n    endpoints: [127.0.0.1:9001, 127.0.0.1:9002]\n\
             routes:\n  - upstream: app\n    filters: [{name}]\n"
        )),
        WorldKind::Scaler => y.push_str(&format!(
            "    config: {{target: 50}}\n\
             upstreams:\n  app:\n    endpoints: [127.0.0.1:9001, 127.0.0.1:9002]\n\
             routes:\n  - upstream: app\n\
             scaling:\n  services:\n    app:\n      max: 10\n      policies: [{name}]\n"
        )),
    }
    y
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub fn run(
    dir: &Path,
    lang: Lang,
    world: WorldKind,
    sdk_root: Option<&Path>,
) -> Result<(), String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| valid_name(n))
        .ok_or_else(|| {
            format!(
                "{}: a plugin name starts with a letter and has only letters, digits, `-` and `_`",
                dir.display()
            )
        })?;
    let empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
    if dir.exists() && !empty {
        return Err(format!(
            "{}: already exists and is not empty",
            dir.display()
        ));
    }
    let root = sdk::root(sdk_root)?;
    let (app, test) = template(lang, world);
    let app = app.replace("{{name}}", name);
    let mut files: Vec<(String, String)> = vec![
        ("edgeward.yaml".into(), config(name, lang, world)),
        (
            ".gitignore".into(),
            "target/\n*.wasm\nnode_modules/\n__pycache__/\n".into(),
        ),
    ];
    let (build, test_cmd) = match lang {
        Lang::Rust => {
            let sdk = root.join("sdk");
            files.push(("Cargo.toml".into(), cargo_toml(name, &sdk)));
            files.push(("src/lib.rs".into(), app));
            ("edgeward plugin build", "cargo test")
        }
        Lang::Python => {
            files.push(("app.py".into(), app));
            files.push(("test_app.py".into(), test.into()));
            files.push(("conftest.py".into(), conftest(&root.join("sdk-python"))));
            ("edgeward plugin build", "python3 -m pytest")
        }
        Lang::Js => {
            files.push(("app.js".into(), app));
            files.push(("app.test.js".into(), test.into()));
            files.push((
                "package.json".into(),
                package_json(name, &root.join("sdk-js")),
            ));
            ("edgeward plugin build", "npm install && node --test")
        }
    };
    files.push((
        "README.md".into(),
        format!(
            "# {name}\n\nAn Edgeward {} plugin ({lang:?}).\n\n```sh\n{test_cmd}              # native tests\n{build}   # -> {name}.wasm\nedgeward plugin check {name}.wasm\nedgeward check --config edgeward.yaml\n```\n",
            world.name()
        ),
    ));
    for (path, text) in &files {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    println!(
        "created {} ({lang:?} {}); next: cd {} && {test_cmd} && {build}",
        dir.display(),
        world.name(),
        dir.display()
    );
    Ok(())
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the component the gateway loads; rlib: `cargo test` links it natively.
crate-type = ["cdylib", "rlib"]

[dependencies]
# Until edgeward-sdk is on crates.io: the path of an Edgeward checkout (or
# `git = "<the Edgeward repository>"`). Once published, drop `path`.
edgeward-sdk = {{ version = "0.1", path = "{}" }}

[profile.release]
opt-level = "s"
lto = true
strip = true
panic = "abort"
codegen-units = 1

# A standalone project, not part of any enclosing workspace.
[workspace]
"#,
        sdk.display()
    )
}

fn conftest(sdk: &Path) -> String {
    format!(
        "import sys\n\n# The SDK from an Edgeward checkout until it is on PyPI\n\
         # (`pip install {0}` works too).\ntry:\n    import edgeward_sdk  # noqa: F401\n\
         except ImportError:\n    sys.path.insert(0, {0:?})\n",
        sdk.display().to_string()
    )
}

fn package_json(name: &str, sdk: &Path) -> String {
    format!(
        "{{\n  \"name\": \"{name}\",\n  \"version\": \"0.1.0\",\n  \"private\": true,\n  \"type\": \"module\",\n  \
         \"scripts\": {{ \"test\": \"node --test\" }},\n  \
         \"dependencies\": {{ \"edgeward-sdk\": \"file:{}\" }}\n}}\n",
        sdk.display()
    )
}
