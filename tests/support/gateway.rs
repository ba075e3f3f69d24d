//! Starting and stopping the real `edgeward` binary.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Builds the binary once per test process (same profile as the tests) and
/// returns its path. `cargo test --workspace` does not build another package's
/// binary for us, so we ask cargo, which is a no-op when it is up to date.
pub fn edgeward_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("EDGEWARD_BIN") {
            return PathBuf::from(p);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        // The variables cargo sets for a running test (CARGO_PKG_*, CARGO_MANIFEST_DIR…)
        // would make build scripts that watch the environment rerun every time.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR" {
                cmd.env_remove(&key);
            }
        }
        cmd.args([
            "build",
            "-p",
            "edgeward",
            "--bin",
            "edgeward",
            "--message-format=json",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stderr(Stdio::inherit());
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let out = cmd
            .output()
            .expect("run cargo build for the edgeward binary");
        assert!(out.status.success(), "cargo build -p edgeward failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "edgeward")
            .find_map(|v| v["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the edgeward executable")
    })
}

/// The config file's name inside [`Gateway::dir`] (for `start`, `start_with`
/// and `start_with_args`).
pub const CONFIG_FILE: &str = "edgeward.yaml";

/// A running gateway process. Killed when dropped.
pub struct Gateway {
    child: Child,
    /// Listener name → bound address (from the `listening` lines).
    pub addrs: HashMap<String, SocketAddr>,
    pub admin: Option<SocketAddr>,
    /// Working directory holding the config and `stderr.log`.
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Writes `yaml` to a fresh directory and runs `edgeward run --config` on it.
    /// `files` are extra files (certificates…) written next to the config.
    pub async fn start(yaml: &str) -> Result<Self> {
        Self::start_with(yaml, &[]).await
    }

    pub async fn start_with(yaml: &str, files: &[(&str, &[u8])]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes)?;
        }
        let config = dir.path().join(CONFIG_FILE);
        std::fs::write(&config, yaml)?;
        let mut cmd = Command::new(edgeward_bin());
        cmd.arg("run").arg("--config").arg(&config);
        Self::spawn(cmd, dir).await
    }

    /// As [`Gateway::start_with`], with extra arguments after `run --config FILE`
    /// (e.g. `--watch`).
    pub async fn start_with_args(
        yaml: &str,
        files: &[(&str, &[u8])],
        args: &[&str],
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes)?;
        }
        let config = dir.path().join(CONFIG_FILE);
        std::fs::write(&config, yaml)?;
        let mut cmd = Command::new(edgeward_bin());
        cmd.arg("run").arg("--config").arg(&config).args(args);
        Self::spawn(cmd, dir).await
    }

    /// Runs `edgeward <args>` (e.g. `demo`) and waits until it is ready.
    pub async fn start_args(args: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut cmd = Command::new(edgeward_bin());
        cmd.args(args);
        Self::spawn(cmd, dir).await
    }

    async fn spawn(mut cmd: Command, dir: tempfile::TempDir) -> Result<Self> {
        let log = std::fs::File::create(dir.path().join("stderr.log"))?;
        cmd.env(
            "RUST_LOG",
            std::env::var("EDGEWARD_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawn edgeward")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut addrs = HashMap::new();
        let mut admin = None;
        let started = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if line == "ready" {
                    return Ok(true);
                }
                if let Some(rest) = line.strip_prefix("listening ") {
                    let (name, url) = rest.split_once(' ').context("listening line")?;
                    let addr: SocketAddr = url.split_once("://").context("url")?.1.parse()?;
                    if name == "admin" {
                        admin = Some(addr);
                    } else {
                        addrs.insert(name.to_owned(), addr);
                    }
                }
            }
            anyhow::Ok(false)
        })
        .await;
        let stderr = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
        match started {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => bail!("edgeward exited before it was ready:\n{}", stderr()),
            Ok(Err(e)) => bail!("reading edgeward's stdout: {e}\n{}", stderr()),
            Err(_) => bail!("edgeward was not ready within 60s:\n{}", stderr()),
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            addrs,
            admin,
            dir,
        })
    }

    pub fn addr(&self, listener: &str) -> SocketAddr {
        *self
            .addrs
            .get(listener)
            .unwrap_or_else(|| panic!("no listener named {listener}: {:?}", self.addrs))
    }

    /// `http://<addr of listener><path>`.
    pub fn url(&self, listener: &str, path: &str) -> String {
        format!("http://{}{path}", self.addr(listener))
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("gateway is running")
    }

    /// What the gateway has logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Sends a signal by name (`TERM`, `INT`) with the system's `kill`.
    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait(&mut self, limit: Duration) -> Result<Option<i32>> {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .context("gateway did not exit in time")??;
        Ok(status.code())
    }
}

/// Runs `edgeward check --config <file>`, returning (exit code, stdout+stderr).
pub fn check(config: &Path) -> (i32, String) {
    let out = std::process::Command::new(edgeward_bin())
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("run edgeward check");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// How long one admin exchange may take before the helper gives up.
const ADMIN_LIMIT: Duration = Duration::from_secs(20);

/// The config file, the admin listener and reloads.
impl Gateway {
    /// The config file the gateway was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(CONFIG_FILE)
    }

    /// Replaces the config file with `yaml`. Written to a temporary file in the
    /// same directory and renamed over the config, so a reload (or `--watch`)
    /// never reads a half-written file.
    pub fn write_config(&self, yaml: &str) {
        self.write_file(CONFIG_FILE, yaml.as_bytes());
    }

    /// Replaces (atomically, by rename) the file `name` next to the config.
    pub fn write_file(&self, name: &str, bytes: &[u8]) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        let dest = self.dir.path().join(name);
        std::fs::rename(&tmp, &dest)
            .unwrap_or_else(|e| panic!("rename onto {}: {e}", dest.display()));
    }

    /// The admin listener's address; panics if the config has none.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .expect("the gateway's config has no admin listener (add `admin: {address: ...}`)")
    }

    /// `http://<admin><path>`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr())
    }

    /// One request to the admin listener, bounded in time; panics with the
    /// reason (and the gateway's log) if it cannot be made.
    pub async fn admin_request(
        &self,
        method: http::Method,
        path: &str,
        body: &str,
    ) -> crate::client::Fetched {
        let req = http::Request::builder()
            .method(method.clone())
            .uri(self.admin_url(path))
            .body(crate::full(body.to_owned()))
            .expect("admin request");
        match tokio::time::timeout(ADMIN_LIMIT, crate::Client::h1().fetch(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!(
                "{method} {path} on the admin listener failed: {e:#}{}\n--- gateway log (tail):\n{}",
                self.exited_note(),
                self.stderr_tail(40)
            ),
            Err(_) => panic!(
                "{method} {path} on the admin listener got no answer within {ADMIN_LIMIT:?}{}\n--- gateway log (tail):\n{}",
                self.exited_note(),
                self.stderr_tail(40)
            ),
        }
    }

    /// `POST /admin/reload`: the status and the JSON body
    /// (`{"generation": N}` on success, `{"error": "...", "generation": N}` on 422).
    /// Panics, saying what came back, when the body is not JSON.
    pub async fn reload_http(&self) -> (http::StatusCode, serde_json::Value) {
        let r = self
            .admin_request(http::Method::POST, "/admin/reload", "")
            .await;
        match serde_json::from_slice(&r.body) {
            Ok(v) => (r.status, v),
            Err(e) => panic!(
                "POST /admin/reload answered {} with a body that is not JSON ({e}): {:?}\n--- gateway log (tail):\n{}",
                r.status,
                r.text(),
                self.stderr_tail(40)
            ),
        }
    }

    /// `GET /readyz`: status and body.
    pub async fn readyz(&self) -> (http::StatusCode, String) {
        let r = self.admin_request(http::Method::GET, "/readyz", "").await;
        (r.status, r.text())
    }

    /// The generation `/readyz` reports (`ready generation N`), if it says one.
    pub async fn readyz_generation(&self) -> Option<u64> {
        let (status, body) = self.readyz().await;
        if !status.is_success() {
            return None;
        }
        parse_generation(&body)
    }

    /// Polls `/readyz` until it reports generation `n` or later (for SIGHUP and
    /// `--watch`, whose reloads answer nobody). Panics after `limit` with the last
    /// answer seen.
    pub async fn wait_generation(&self, n: u64, limit: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + limit;
        let mut last: String;
        loop {
            let req = http::Request::get(self.admin_url("/readyz"))
                .body(crate::empty())
                .expect("readyz request");
            let got =
                tokio::time::timeout(Duration::from_secs(5), crate::Client::h1().fetch(req)).await;
            match got {
                Ok(Ok(r)) => {
                    let body = r.text();
                    if r.status.is_success()
                        && let Some(g) = parse_generation(&body)
                        && g >= n
                    {
                        return g;
                    }
                    last = format!("{} {body:?}", r.status);
                }
                Ok(Err(e)) => last = format!("request failed: {e:#}"),
                Err(_) => last = "no answer within 5s".into(),
            }
            if tokio::time::Instant::now() >= deadline || !self.is_running() {
                let state = if self.is_running() {
                    "still running"
                } else {
                    "the gateway process has EXITED"
                };
                panic!(
                    "/readyz did not report generation {n} within {limit:?} ({state}); last answer: {last}\n--- gateway log (tail):\n{}",
                    self.stderr_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /metrics` as text; panics unless it answers 200.
    pub async fn metrics_text(&self) -> String {
        let r = self.admin_request(http::Method::GET, "/metrics", "").await;
        assert_eq!(
            r.status,
            http::StatusCode::OK,
            "GET /metrics answered {}: {}",
            r.status,
            r.text()
        );
        r.text()
    }

    /// `/metrics` parsed by the Python `prometheus_client` parser.
    pub async fn metrics(&self) -> crate::prom::Samples {
        crate::prom::parse(&self.metrics_text().await).await
    }

    /// False once the process has exited (a zombie not yet reaped counts as exited).
    pub fn is_running(&self) -> bool {
        let Some(pid) = self.child.id() else {
            return false;
        };
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the parenthesised command name.
            Ok(stat) => !matches!(
                stat.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().chars().next()),
                Some(Some('Z' | 'X'))
            ),
            Err(_) => false,
        }
    }

    fn exited_note(&self) -> &'static str {
        if self.is_running() {
            ""
        } else {
            " (the gateway process has EXITED)"
        }
    }

    /// The last `lines` lines of the gateway's log.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let all = self.stderr();
        let v: Vec<&str> = all.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }
}

/// `N` from a `/readyz` body such as `ready generation N`.
pub fn parse_generation(body: &str) -> Option<u64> {
    let mut words = body.split_whitespace();
    while let Some(w) = words.next() {
        if w == "generation" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// A loopback address whose port was free for both TCP and UDP a moment ago:
/// bind, read the port, drop the sockets. For configs that must keep the same
/// address across reloads (a `127.0.0.1:0` listener cannot be named again) and
/// for listeners added by a reload (their `listening` line is not reprinted).
pub fn free_addr() -> SocketAddr {
    free_addrs(1)[0]
}

/// `n` distinct addresses as [`free_addr`] (all held until every one is chosen).
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let mut held = Vec::new();
    for _ in 0..100 * n {
        if held.len() == n {
            break;
        }
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free TCP port");
        let addr = tcp.local_addr().expect("local addr");
        // HTTP/3 listens on the same port over UDP.
        if let Ok(udp) = std::net::UdpSocket::bind(addr) {
            held.push((addr, tcp, udp));
        }
    }
    assert_eq!(
        held.len(),
        n,
        "could not find {n} loopback ports free for TCP and UDP"
    );
    held.into_iter().map(|(a, _, _)| a).collect()
}
