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
pub fn build_python(dir: &Path, world: &str, out: &Path) {
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

/// The JS SDK's pinned build tools, installed once under `target/authoring/npm`
/// (`npm ci` against the SDK's lock file, so versions are exactly the pinned ones).
fn js_tools() -> PathBuf {
    let dir = work().join("npm");
    let marker = dir.join("node_modules/@bytecodealliance/componentize-js/package.json");
    let lock = repo().join("sdk-js/package-lock.json");
    let fresh = std::fs::metadata(&marker)
        .and_then(|m| m.modified())
        .ok()
        .zip(std::fs::metadata(&lock).and_then(|m| m.modified()).ok())
        .is_some_and(|(m, l)| m >= l);
    if !fresh {
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(repo().join("sdk-js").join(f), dir.join(f)).unwrap();
        }
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts=false"])
                .current_dir(&dir),
            "npm ci for the JS SDK's build tools",
        );
    }
    dir.join("node_modules")
}

/// `node sdk-js/build.mjs` on a JavaScript plugin directory.
pub fn build_js(dir: &Path, world: &str, out: &Path) {
    let modules = js_tools();
    run(
        Command::new("node")
            .arg(repo().join("sdk-js/build.mjs"))
            .arg(dir.join("app.js"))
            .args(["--world", world, "-o"])
            .arg(out)
            .env("NODE_PATH", &modules),
        "componentize-js build",
    );
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
        assert_eq!(first, again, "{language}: client 127.0.0.{ip} switched sides");
        n += 2;
        if first {
            canary.insert(ip);
        }
    }
    let mean_us = started.elapsed().as_micros() / n;
    assert!(ups[0].hits() > 0 && ups[1].hits() > 0, "{language}: stable side unused");
    let m: Fetched = Client::new()
        .get(&format!("http://{}/metrics", gw.admin.unwrap()))
        .await
        .unwrap();
    let m = m.text();
    for kind in ["deadline", "memory", "trap", "busy"] {
        let faults = metric(
            &m,
            &format!("edgeward_plugin_faults_total{{plugin=\"canary\",kind=\"{kind}\"}}"),
        );
        assert_eq!(faults, 0, "{language}: {faults} `{kind}` faults with {limits:?}");
    }
    (canary, mean_us)
}

/// The deadline and memory the README recommends for each language: with
/// them, no call of this test overruns (the defaults, 2ms and 16MiB, suit
/// Rust guests; Python's interpreter needs more of both).
const PYTHON_LIMITS: &str = "    deadline: 20ms\n    memory: 64MiB\n";
const JS_LIMITS: &str = "    deadline: 20ms\n    memory: 128MiB\n";

#[tokio::test]
async fn the_canary_in_three_languages_sends_the_same_clients_to_canary() {
    let rust_dir = repo().join("target").join("example-canary");
    cargo_wasm(&repo().join("examples/canary-plugin"), &rust_dir);
    let rust = rust_dir.join("wasm32-wasip2/release/canary_plugin.wasm");
    let (rust_set, rust_us) = route("rust", &rust, "").await;
    let n = rust_set.len();
    assert!((3..=35).contains(&n), "{n} of 150 clients went to canary");
    eprintln!("rust: {n} canary clients, {rust_us} µs per request");

    if have("componentize-py", "--version") {
        let wasm = work().join("canary_python.wasm");
        let t = Instant::now();
        build_python(&repo().join("examples/canary-router-python"), "router", &wasm);
        eprintln!("python: built in {:?}", t.elapsed());
        let (set, us) = route("python", &wasm, PYTHON_LIMITS).await;
        assert_eq!(set, rust_set, "python and rust disagree on who is a canary client");
        eprintln!("python: {us} µs per request");
    }
    if have("node", "--version") && have("npm", "--version") {
        let wasm = work().join("canary_js.wasm");
        let t = Instant::now();
        build_js(&repo().join("examples/canary-router-js"), "router", &wasm);
        eprintln!("js: built in {:?}", t.elapsed());
        let (set, us) = route("js", &wasm, JS_LIMITS).await;
        assert_eq!(set, rust_set, "js and rust disagree on who is a canary client");
        eprintln!("js: {us} µs per request");
    }
}
