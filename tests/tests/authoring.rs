//! Plugin authoring in three languages: the same canary router written with
//! the Rust, Python and JavaScript SDKs, each built from source with its
//! pinned toolchain and routing real traffic through the gateway; and the
//! `edgeward plugin` scaffold, for every language and world.
//!
//! Python needs `componentize-py` (pip) and JavaScript `node`/`npm` (the
//! pinned packages are installed under `target/authoring/npm`): `.ci/run`
//! installs them. Without `CI` a missing tool skips its part; with it, fails.

mod plugin_common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use edgeward_e2e::Gateway;
use edgeward_e2e::client::{Client, Fetched};
use http::StatusCode;
use plugin_common::*;

/// Where this file's builds go: one place under `target/`, reused between runs.
fn work() -> PathBuf {
    let d = repo().join("target").join("authoring");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Whether `tool` runs; with `CI` set its absence is a failure, not a skip.
fn have(tool: &str, arg: &str) -> bool {
    let ok = Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required with CI set (.ci/run installs it)"
        );
        eprintln!("skipping: {tool} is not installed");
    }
    ok
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `python -m edgeward_sdk.build` on a Python plugin directory.
fn build_python(dir: &Path, world: &str, out: &Path) {
    run(
        Command::new("python3")
            .args(["-m", "edgeward_sdk.build", "app", "--world", world, "-p"])
            .arg(dir)
            .arg("-o")
            .arg(out)
            .env("PYTHONPATH", repo().join("sdk-python")),
        "componentize-py build",
    );
}

/// The JS SDK's pinned build tools: `sdk-js/node_modules` when `npm ci` ran
/// there (as .ci/run does), else installed once under `target/authoring/npm`
/// from the SDK's lock file, so versions are exactly the pinned ones.
fn js_tools() -> PathBuf {
    // Both tests of this file may ask at once: one install.
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(install_js_tools).clone()
}

fn install_js_tools() -> PathBuf {
    let pinned = |modules: &Path| {
        std::fs::read_to_string(modules.join("@bytecodealliance/componentize-js/package.json"))
            .is_ok_and(|p| p.contains("\"version\": \"0.23.0\""))
    };
    let own = repo().join("sdk-js/node_modules");
    if pinned(&own) {
        return own;
    }
    let dir = work().join("npm");
    let lock = repo().join("sdk-js/package-lock.json");
    let fresh = std::fs::read(dir.join("package-lock.json")).ok() == std::fs::read(&lock).ok();
    if !(fresh && pinned(&dir.join("node_modules"))) {
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(repo().join("sdk-js").join(f), dir.join(f)).unwrap();
        }
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
            "npm ci for the JS SDK's build tools",
        );
    }
    dir.join("node_modules")
}

/// `node sdk-js/build.mjs` on a JavaScript plugin directory.
fn build_js(dir: &Path, world: &str, out: &Path) {
    let modules = js_tools();
    run(
        Command::new("node")
            .arg(repo().join("sdk-js/build.mjs"))
            .arg(dir.join("app.js"))
            .args(["--world", world, "-o"])
            .arg(out)
            .env("EDGEWARD_JS_TOOLS", &modules),
        "componentize-js build",
    );
}

/// Where [`js_tools`] put the build tools (without installing anything).
fn js_tools_dir() -> PathBuf {
    let own = repo().join("sdk-js/node_modules/@bytecodealliance/componentize-js");
    if own.is_dir() {
        repo().join("sdk-js/node_modules")
    } else {
        work().join("npm/node_modules")
    }
}

fn edgeward(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(edgeward_e2e::gateway::edgeward_bin())
        .args(args)
        .env("CARGO_TARGET_DIR", work().join("scaffold-target"))
        .env("EDGEWARD_JS_TOOLS", js_tools_dir())
        .output()
        .expect("run edgeward");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

macro_rules! os {
    ($($a:expr),*) => { &[$(std::ffi::OsStr::new($a)),*] };
}

fn metric(m: &str, sample: &str) -> u64 {
    admin_metrics_line(m, sample)
}

/// Which of 150 clients the router sends to canary, after checking the
/// override header; and the mean request time in microseconds.
async fn route(language: &str, wasm: &Path, limits: &str) -> (BTreeSet<u8>, u128) {
    let ups = numbered(3).await;
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n\
         plugins:\n  canary:\n    path: {}\n{limits}    config: {{tag: canary, percent: 10}}\n\
         upstreams:\n  svc:\n    balancer: canary\n    endpoints:\n\
         \x20     - \"{}\"\n      - \"{}\"\n      - {{address: \"{}\", tags: [canary]}}\n\
         routes:\n  - upstream: svc\n",
        wasm.display(),
        ups[0].addr,
        ups[1].addr,
        ups[2].addr
    );
    // `plugin check` first: it names the world, measures the cost per call and
    // per instance, and leaves the compiled component in the disk cache.
    let (ok, out, err) = edgeward(os!("plugin", "check", wasm.as_os_str()));
    assert!(
        ok && out.contains("a `router` component"),
        "{language}: {out}{err}"
    );
    eprintln!("{language}: {out}");
    let gw = Gateway::start(&yaml).await.unwrap();
    let url = gw.url("http", "/c");
    let c = SourceClient::from(loopback(1));
    for _ in 0..10 {
        let r = c.get_with(&url, &[("x-canary", "1")]).await;
        assert_eq!(r.status, StatusCode::OK, "{language}: {}", r.text());
        assert_eq!(served_by(&r), 2, "{language}: x-canary: 1");
        assert_ne!(
            served_by(&c.get_with(&url, &[("x-canary", "0")]).await),
            2,
            "{language}: x-canary: 0"
        );
    }
    let mut canary = BTreeSet::new();
    let started = Instant::now();
    let mut n = 0u128;
    for ip in 2..=151u8 {
        let c = SourceClient::from(loopback(ip));
        let first = served_by(&c.get(&url, None).await) == 2;
        let again = served_by(&c.get(&url, None).await) == 2;
        assert_eq!(
            first, again,
            "{language}: client 127.0.0.{ip} switched sides"
        );
        n += 2;
        if first {
            canary.insert(ip);
        }
    }
    let mean_us = started.elapsed().as_micros() / n;
    assert!(
        ups[0].hits() > 0 && ups[1].hits() > 0,
        "{language}: stable side unused"
    );
    let m: Fetched = Client::h1()
        .get(&format!("http://{}/metrics", gw.admin.unwrap()))
        .await
        .unwrap();
    let m = m.text();
    for kind in ["deadline", "memory", "trap", "busy"] {
        let faults = metric(
            &m,
            &format!("edgeward_plugin_faults_total{{plugin=\"canary\",kind=\"{kind}\"}}"),
        );
        assert_eq!(
            faults, 0,
            "{language}: {faults} `{kind}` faults with {limits:?}"
        );
    }
    (canary, mean_us)
}

/// The memory the README recommends per language: with less, a Python or JS
/// instance faults (`memory`, or a trap in `init`). The deadline is not the
/// recommended 20ms: this gateway is a debug build on a shared 2-core box,
/// where even the Rust router's slowest of 2000 calls took 10ms (`plugin
/// check` prints it); the 0-fault assertion is about memory and traps.
const RUST_LIMITS: &str = "    deadline: 200ms\n";
const PYTHON_LIMITS: &str = "    deadline: 200ms\n    memory: 64MiB\n";
const JS_LIMITS: &str = "    deadline: 200ms\n    memory: 128MiB\n";

#[tokio::test]
async fn the_canary_in_three_languages_sends_the_same_clients_to_canary() {
    let rust_dir = repo().join("target").join("example-canary");
    cargo_wasm(&repo().join("examples/canary-plugin"), &rust_dir);
    let rust = rust_dir.join("wasm32-wasip2/release/canary_plugin.wasm");
    let (rust_set, rust_us) = route("rust", &rust, RUST_LIMITS).await;
    let n = rust_set.len();
    assert!((3..=35).contains(&n), "{n} of 150 clients went to canary");
    eprintln!("rust: {n} canary clients, {rust_us} µs per request");

    if have("componentize-py", "--version") {
        let wasm = work().join("canary_python.wasm");
        let t = Instant::now();
        build_python(
            &repo().join("examples/canary-router-python"),
            "router",
            &wasm,
        );
        eprintln!("python: built in {:?}", t.elapsed());
        let (set, us) = route("python", &wasm, PYTHON_LIMITS).await;
        assert_eq!(
            set, rust_set,
            "python and rust disagree on who is a canary client"
        );
        eprintln!("python: {us} µs per request");
    }
    if have("node", "--version") && have("npm", "--version") {
        let wasm = work().join("canary_js.wasm");
        let t = Instant::now();
        build_js(&repo().join("examples/canary-router-js"), "router", &wasm);
        eprintln!("js: built in {:?}", t.elapsed());
        let (set, us) = route("js", &wasm, JS_LIMITS).await;
        assert_eq!(
            set, rust_set,
            "js and rust disagree on who is a canary client"
        );
        eprintln!("js: {us} µs per request");
    }
}

/// `plugin new` for each language and world; the project's own test passes,
/// `plugin build` makes `<name>.wasm`, `plugin check` names its world and
/// loads it, and the project's `edgeward.yaml` passes `edgeward check`.
#[test]
fn the_scaffold_builds_tests_and_loads_every_language_and_world() {
    let root = work().join("scaffold");
    let mut langs = vec!["rust"];
    if have("componentize-py", "--version") {
        langs.push("python");
    }
    if have("node", "--version") && have("npm", "--version") {
        js_tools();
        langs.push("js");
    }
    for lang in langs {
        for world in ["router", "filter", "scaler"] {
            let what = format!("{lang} {world}");
            let dir = root.join(format!("{lang}-{world}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&root).unwrap();
            let sdk_root = repo();
            let (ok, out, err) = edgeward(os!(
                "plugin",
                "new",
                dir.as_os_str(),
                "--lang",
                lang,
                "--world",
                world,
                "--sdk-root",
                sdk_root.as_os_str()
            ));
            assert!(ok, "{what}: plugin new: {out}{err}");
            let t = Instant::now();
            match lang {
                "rust" => run(
                    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                        .args(["test", "-q"])
                        .current_dir(&dir)
                        .env("CARGO_TARGET_DIR", work().join("scaffold-target")),
                    &format!("{what}: cargo test"),
                ),
                "python" => run(
                    Command::new("python3")
                        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
                        .current_dir(&dir),
                    &format!("{what}: pytest"),
                ),
                _ => {
                    run(
                        Command::new("npm")
                            .args(["install", "--no-audit", "--no-fund", "--offline"])
                            .current_dir(&dir),
                        &format!("{what}: npm install"),
                    );
                    run(
                        Command::new("node").arg("--test").current_dir(&dir),
                        &format!("{what}: node --test"),
                    );
                }
            }
            let (ok, out, err) = edgeward(os!("plugin", "build", dir.as_os_str()));
            assert!(ok, "{what}: plugin build: {out}{err}");
            let name = format!("{lang}-{world}");
            let wasm = dir.join(format!("{name}.wasm"));
            assert!(
                out.contains(&format!("built {}", wasm.display())) && wasm.is_file(),
                "{what}: plugin build says {out:?}"
            );
            let (ok, out, err) = edgeward(os!("plugin", "check", wasm.as_os_str()));
            assert!(ok, "{what}: plugin check: {out}{err}");
            assert!(
                out.contains(&format!("a `{world}` component")) && out.contains("loads: ok"),
                "{what}: plugin check says {out}"
            );
            let (code, text) = edgeward_e2e::gateway::check(&dir.join("edgeward.yaml"));
            assert_eq!(code, 0, "{what}: edgeward check: {text}");
            eprintln!(
                "{what}: tested, built and loaded in {:?}\n{out}",
                t.elapsed()
            );
        }
    }
}

/// What `plugin check` says about files that are not plugin components.
#[test]
fn check_tells_a_wrong_target_build_to_use_wasm32_wasip2() {
    let dir = tempfile::tempdir().unwrap();
    // The header of a core module, as wasm32-unknown-unknown or wasip1 emit.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let (ok, _, err) = edgeward(os!("plugin", "check", core.as_os_str()));
    assert!(
        !ok && err.contains("core WebAssembly module") && err.contains("build for wasm32-wasip2"),
        "{err}"
    );
    let text = dir.path().join("text.wasm");
    std::fs::write(&text, b"(module)").unwrap();
    let (ok, _, err) = edgeward(os!("plugin", "check", text.as_os_str()));
    assert!(!ok && err.contains("not a WebAssembly file"), "{err}");
    let (ok, _, err) = edgeward(os!("plugin", "new", dir.path().join("9bad").as_os_str()));
    assert!(!ok && err.contains("starts with a letter"), "{err}");
}
