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
        let config = dir.path().join("edgeward.yaml");
        std::fs::write(&config, yaml)?;
        let mut cmd = Command::new(edgeward_bin());
        cmd.arg("run").arg("--config").arg(&config);
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
