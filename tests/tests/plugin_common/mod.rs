//! Shared by the plugin e2e tests: guest components built from source, named
//! upstreams, and clients bound to chosen loopback source addresses.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use edgeward_e2e::client::{Fetched, read};
use edgeward_e2e::{Body, Upstream, empty};
use http::Request;
use hyper_util::client::legacy::Client as Pooled;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds a guest workspace for wasm32-wasip2 in release, with the same
/// hygiene as gateway/build.rs (own target dir, host flags removed).
pub fn cargo_wasm(workspace: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("run cargo for a wasm guest");
    assert!(
        status.success(),
        "building {} failed; is the target installed? `rustup target add wasm32-wasip2`",
        workspace.display()
    );
}

/// Builds the SDK crate's `examples` (`sdk/examples/`) for wasm32-wasip2 in
/// release into `target_dir`, with every `CARGO_*` of the outer build
/// removed; returns the directory holding `<example>.wasm`.
pub fn sdk_examples(examples: &[&str], target_dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" {
            cmd.env_remove(&key);
        }
    }
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
        "sdk/Cargo.toml",
    ]);
    for e in examples {
        cmd.args(["--example", e]);
    }
    let out = cmd
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(repo())
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "building the SDK's examples {examples:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir.join("wasm32-wasip2/release/examples")
}

/// The hostile test guests (`tests/guests/`), built once per test process.
/// Returns the path of `<crate>.wasm`.
pub fn guest(krate: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let target = repo().join("target").join("test-guests");
        cargo_wasm(&repo().join("tests").join("guests"), &target);
        target.join("wasm32-wasip2").join("release")
    });
    dir.join(format!("{}.wasm", krate.replace('-', "_")))
}

/// `n` upstreams answering `x-upstream: <index>`.
pub async fn numbered(n: usize) -> Vec<Upstream> {
    numbered_with(n, false).await
}

/// As [`numbered`]; with `close`, every answer closes its connection, so an
/// upstream that is dropped is gone for the gateway too (no pooled connection
/// keeps it answering).
pub async fn numbered_with(n: usize, close: bool) -> Vec<Upstream> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            Upstream::start(move |_req| async move {
                let mut r = http::Response::new(edgeward_e2e::full(format!("{i}")));
                r.headers_mut().insert("x-upstream", i.into());
                if close {
                    r.headers_mut()
                        .insert("connection", "close".parse().unwrap());
                }
                r
            })
            .await,
        );
    }
    out
}

/// Drops `u` and waits until its port refuses connections.
pub async fn stop(u: Upstream) {
    let addr = u.addr;
    drop(u);
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("upstream {addr} still accepts connections after being dropped");
}

pub fn hits(ups: &[Upstream]) -> Vec<usize> {
    ups.iter().map(Upstream::hits).collect()
}

/// Which upstream answered.
pub fn served_by(r: &Fetched) -> usize {
    r.header("x-upstream")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no x-upstream in {:?}: {}", r.status, r.text()))
}

/// `["a:1", "b:2"]` as a YAML flow list of endpoint addresses.
pub fn endpoints(ups: &[Upstream]) -> String {
    let list: Vec<String> = ups.iter().map(|u| format!("\"{}\"", u.addr)).collect();
    format!("[{}]", list.join(", "))
}

/// A client whose connections come from `source` (any 127.0.0.0/8 address
/// works on loopback), so tests can play many client IPs.
pub struct SourceClient {
    inner: Pooled<HttpConnector, Body>,
}

impl SourceClient {
    pub fn from(source: IpAddr) -> Self {
        let mut c = HttpConnector::new();
        c.set_local_address(Some(source));
        Self {
            inner: Pooled::builder(TokioExecutor::new()).build(c),
        }
    }

    pub async fn get(&self, url: &str, cookie: Option<&str>) -> Fetched {
        match cookie {
            Some(c) => self.get_with(url, &[("cookie", c)]).await,
            None => self.get_with(url, &[]).await,
        }
    }

    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Fetched {
        let mut req = Request::get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .inner
            .request(req.body(empty()).unwrap())
            .await
            .expect("request through the gateway");
        read(resp).await.expect("read response")
    }
}

/// The value of the sample written as `name{a="x",…}`: the same metric name
/// with at least those labels, in any order (every sample also carries the
/// node's `node` and `region`).
pub fn admin_metrics_line(metrics: &str, sample: &str) -> u64 {
    let (name, labels) = match sample.split_once('{') {
        Some((n, l)) => (n, l.trim_end_matches('}')),
        None => (sample, ""),
    };
    let wanted: Vec<&str> = labels.split(',').filter(|l| !l.is_empty()).collect();
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (n, rest) = l.split_once(['{', ' ']).unwrap_or((l, ""));
            let have = rest.rsplit_once('}').map_or("", |(labels, _)| labels);
            n == name && wanted.iter().all(|w| have.split(',').any(|h| h == *w))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {sample} in:\n{metrics}"))
}

pub fn loopback(i: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, i])
}

pub fn addr_of(u: &Upstream) -> SocketAddr {
    u.addr
}
