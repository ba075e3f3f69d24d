//! What a peer cannot do to our log or our accept loop: a flood of PING
//! ACKs, a plugin failing every request under `on-error: fail`, and accept
//! errors (out of descriptors) each give a bounded number of log lines, and
//! service goes on.

#[path = "plugin_common/mod.rs"]
mod plugin_common;

use std::time::{Duration, Instant};

use edgeward_e2e::client::Client;
use edgeward_e2e::{Gateway, Upstream};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn warnings(gw: &Gateway, needle: &str) -> usize {
    gw.stderr()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .filter(|l| l.contains(needle))
        .count()
}

fn plain(up: &Upstream) -> String {
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         admin:\n  address: 127.0.0.1:0\n\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n",
        up.addr
    )
}

/// 1,000 unsolicited PING ACKs on one h2c connection: no log line each.
#[tokio::test]
async fn a_thousand_ping_acks_do_not_write_a_thousand_lines() {
    let up = Upstream::echo("a").await;
    let gw = Gateway::start(&plain(&up)).await.unwrap();
    let before = gw.stderr().lines().count();
    let mut s = tokio::net::TcpStream::connect(gw.addr("http"))
        .await
        .unwrap();
    let mut out = Vec::from(&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..]);
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
    for i in 0u64..1000 {
        // PING, flags ACK, stream 0, 8 opaque bytes we never sent.
        out.extend_from_slice(&[0, 0, 8, 6, 1, 0, 0, 0, 0]);
        out.extend_from_slice(&i.to_be_bytes());
    }
    s.write_all(&out).await.unwrap();
    let mut sink = vec![0u8; 65536];
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while let Ok(n) = s.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    drop(s);
    // The gateway still serves, and wrote (almost) nothing about it.
    let r = Client::h2c().get(&gw.url("http", "/after")).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let added = gw.stderr().lines().count() - before;
    assert!(
        added <= 5,
        "{added} log lines for 1,000 PING ACKs:\n{}",
        gw.stderr_tail(20)
    );
}

/// A router that traps on every request under `on-error: fail`: every
/// request gets its 502, the log a few lines.
#[tokio::test]
async fn a_failing_plugin_does_not_log_once_per_request() {
    let wasm = plugin_common::guest("hostile-router").display().to_string();
    let up = Upstream::echo("a").await;
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         admin:\n  address: 127.0.0.1:0\n\
         plugins:\n  trap:\n    path: {wasm}\n    on-error: fail\n    instances: 2\n    config: {{mode: trap}}\n\
         upstreams:\n  a:\n    balancer: trap\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n",
        up.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let c = Client::h1();
    const N: usize = 200;
    for _ in 0..N {
        let r = c.get(&gw.url("http", "/t")).await.unwrap();
        // 502 plugin failed, or 503 while its pool refills.
        assert!(
            [StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE].contains(&r.status),
            "{}",
            r.status
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = warnings(&gw, "");
    assert!(
        (1..=10).contains(&lines),
        "{lines} WARN lines for {N} failed requests:\n{}",
        gw.stderr_tail(20)
    );
    let m = gw.metrics().await;
    assert!(
        m.value(
            "edgeward_plugin_faults_total",
            &[("plugin", "trap"), ("kind", "trap")]
        ) + m.value(
            "edgeward_plugin_faults_total",
            &[("plugin", "trap"), ("kind", "busy")]
        ) >= N as f64,
        "every fault is counted"
    );
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Out of descriptors: accept fails, and the listener backs off and logs
/// about once a second instead of once per failure; once sockets are free
/// again, requests are served.
#[tokio::test]
async fn accept_errors_back_off_and_service_resumes() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "prlimit (util-linux) is required in CI"
        );
        eprintln!("skipping: no prlimit");
        return;
    }
    let up = Upstream::echo("a").await;
    let gw = Gateway::start(&plain(&up)).await.unwrap();
    // Warm: the upstream connection and the metrics scrape have their sockets.
    let c = Client::h1();
    assert_eq!(c.get(&gw.url("http", "/warm")).await.unwrap().status, 200);
    let limit = open_fds(gw.pid()) + 8;
    let set = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &gw.pid().to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .unwrap();
    assert!(set.success(), "prlimit failed");
    let start = Instant::now();
    let mut held = Vec::new();
    for _ in 0..200 {
        // Once the backlog is full the kernel drops SYNs; do not wait for retries.
        let connect = tokio::net::TcpStream::connect(gw.addr("http"));
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(20), connect).await {
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lines = warnings(&gw, "accept failed");
    let secs = start.elapsed().as_secs() as usize + 1;
    assert!(
        (1..=secs + 1).contains(&lines),
        "{lines} accept-failure lines in ~{secs}s:\n{}",
        gw.stderr_tail(10)
    );
    drop(held);
    // Served again once the idle sockets are gone (they close on EOF).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout(
            Duration::from_secs(2),
            Client::h1().get(&gw.url("http", "/back")),
        )
        .await
        {
            Ok(Ok(r)) if r.status == 200 => break,
            _ if Instant::now() > deadline => {
                panic!("not served after the flood:\n{}", gw.stderr_tail(10))
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let before = warnings(&gw, "accept failed");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        warnings(&gw, "accept failed"),
        before,
        "accept keeps failing after recovery"
    );
}
