//! Routing and affinity through the built-in Wasm plugins, end to end: the
//! real binary, real upstream servers, real clients on loopback.

mod plugin_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use edgeward_e2e::client::Client;
use edgeward_e2e::{Gateway, Upstream};
use http::StatusCode;
use plugin_common::*;
use tokio::sync::Notify;

/// A gateway with one upstream `svc` and a catch-all route. The balancer is
/// declared under `plugins:` with a generous deadline: on a loaded machine a
/// descheduled thread could otherwise overrun the default 2 ms, and the
/// fallback round robin would blur what the plugin decided.
fn config(upstream: &str, extra: &str) -> String {
    let balancer = upstream
        .lines()
        .find_map(|l| l.trim().strip_prefix("balancer: "))
        .unwrap_or("round-robin");
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n\
         plugins:\n  {balancer}:\n    builtin: {balancer}\n    deadline: 1s\n\
         upstreams:\n  svc:\n{upstream}\nroutes:\n  - upstream: svc\n{extra}"
    )
}

#[tokio::test]
async fn round_robin_is_exact() {
    let ups = numbered(3).await;
    // No `balancer:`: the built-in round-robin plugin is the default.
    let gw = Gateway::start(&config(&format!("    endpoints: {}", endpoints(&ups)), ""))
        .await
        .unwrap();
    let c = Client::h1();
    let mut order = Vec::new();
    for _ in 0..300 {
        let r = c.get(&gw.url("http", "/rr")).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        order.push(served_by(&r));
    }
    assert_eq!(hits(&ups), [100, 100, 100]);
    // Strict rotation, not merely equal totals.
    for w in order.windows(4) {
        assert_eq!(w[0], w[3], "{order:?}");
        assert_ne!(w[0], w[1], "{order:?}");
    }
    let m = Client::h1()
        .get(&format!("http://{}/metrics", gw.admin.unwrap()))
        .await
        .unwrap()
        .text();
    assert!(
        admin_metrics_line(&m, "edgeward_plugin_calls_total{plugin=\"round-robin\"}") >= 300,
        "{m}"
    );
}

#[tokio::test]
async fn weighted_round_robin_is_within_two_percent() {
    let ups = numbered(3).await;
    let weights = [5u32, 3, 2];
    let list: Vec<String> = ups
        .iter()
        .zip(weights)
        .map(|(u, w)| format!("{{address: \"{}\", weight: {w}}}", u.addr))
        .collect();
    let gw = Gateway::start(&config(
        &format!(
            "    balancer: weighted-round-robin\n    endpoints: [{}]",
            list.join(", ")
        ),
        "",
    ))
    .await
    .unwrap();
    let url = gw.url("http", "/w");
    let total = 10_000usize;
    let workers = 8;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (c, url) = (Client::h1(), url.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..total / workers {
                let r = c.get(&url).await.unwrap();
                assert_eq!(r.status, StatusCode::OK);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = hits(&ups);
    let sum: u32 = weights.iter().sum();
    for (i, (&n, &w)) in got.iter().zip(&weights).enumerate() {
        let share = n as f64 / total as f64;
        let want = f64::from(w) / f64::from(sum);
        assert!(
            (share - want).abs() <= 0.02 * want,
            "endpoint {i}: {share:.4} of traffic, weight share {want:.4} ({got:?})"
        );
    }
}

#[tokio::test]
async fn least_connections_steers_away_from_a_slow_endpoint() {
    // Endpoint 0 holds every request until released; endpoint 1 answers at once.
    let release = Arc::new(Notify::new());
    let held = release.clone();
    let slow = Upstream::start(move |_req| {
        let held = held.clone();
        async move {
            held.notified().await;
            let mut r = http::Response::new(edgeward_e2e::full("slow"));
            r.headers_mut().insert("x-upstream", 0.into());
            r
        }
    })
    .await;
    let fast = numbered(1).await.pop().unwrap();
    let gw = Gateway::start(&config(
        &format!(
            "    balancer: least-connections\n    endpoints: [\"{}\", \"{}\"]",
            slow.addr, fast.addr
        ),
        "  \n",
    ))
    .await
    .unwrap();
    let url = gw.url("http", "/lc");
    let answered = Arc::new(AtomicUsize::new(0));
    let mut pending = Vec::new();
    for i in 0..20 {
        let (c, url, done) = (Client::h1(), url.clone(), answered.clone());
        pending.push(tokio::spawn(async move {
            let r = c.get(&url).await.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
            r.status
        }));
        // Wait until this request has either been answered or is held by the
        // slow endpoint, so the next choice sees the real in-flight counts.
        while answered.load(Ordering::SeqCst) + slow.hits() < i + 1 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    // With round robin the slow endpoint would hold half of them.
    assert!(
        slow.hits() <= 1,
        "slow endpoint got {} requests",
        slow.hits()
    );
    assert!(fast.hits() >= 19, "fast endpoint got {}", fast.hits());
    release.notify_waiters();
    for _ in 0..50 {
        if answered.load(Ordering::SeqCst) == 20 {
            break;
        }
        release.notify_waiters();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for p in pending {
        assert_eq!(p.await.unwrap(), StatusCode::OK);
    }
}

#[tokio::test]
async fn ip_hash_is_stable_and_moves_only_the_removed_endpoints_clients() {
    let ups = numbered(4).await;
    let start = |list: &[&Upstream]| {
        let eps: Vec<String> = list.iter().map(|u| format!("\"{}\"", u.addr)).collect();
        config(
            &format!("    balancer: ip-hash\n    endpoints: [{}]", eps.join(", ")),
            "",
        )
    };
    let all: Vec<&Upstream> = ups.iter().collect();
    let gw = Gateway::start(&start(&all)).await.unwrap();
    let clients: Vec<u8> = (2..42).collect();
    let mut before = Vec::new();
    for &ip in &clients {
        let c = SourceClient::from(loopback(ip));
        let first = served_by(&c.get(&gw.url("http", "/h"), None).await);
        for _ in 0..3 {
            assert_eq!(
                served_by(&c.get(&gw.url("http", "/h"), None).await),
                first,
                "client 127.0.0.{ip} moved between requests"
            );
        }
        before.push(first);
    }
    let used: std::collections::HashSet<_> = before.iter().collect();
    assert!(used.len() >= 3, "40 clients all hashed onto {used:?}");
    drop(gw);

    // Remove endpoint 2: only its clients may move.
    let kept: Vec<&Upstream> = ups
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, u)| u)
        .collect();
    let gw = Gateway::start(&start(&kept)).await.unwrap();
    for (&ip, &was) in clients.iter().zip(&before) {
        let now = served_by(
            &SourceClient::from(loopback(ip))
                .get(&gw.url("http", "/h"), None)
                .await,
        );
        if was == 2 {
            assert_ne!(now, 2);
        } else {
            assert_eq!(
                now, was,
                "client 127.0.0.{ip} moved although its endpoint stayed"
            );
        }
    }
}

/// `name=value` of the first `set-cookie`.
fn cookie_of(r: &edgeward_e2e::client::Fetched) -> Option<String> {
    r.header("set-cookie")
        .and_then(|v| v.split(';').next())
        .map(|s| s.trim().to_owned())
}

#[tokio::test]
async fn cookie_affinity_sticks_and_repins_when_the_endpoint_fails() {
    let mut ups = numbered_with(3, true).await;
    let gw = Gateway::start(&config(
        &format!(
            "    balancer: cookie-affinity\n    unhealthy-cool-down: 1h\n    endpoints: {}",
            endpoints(&ups)
        ),
        "",
    ))
    .await
    .unwrap();
    let url = gw.url("http", "/c");
    let c = SourceClient::from(loopback(1));
    let first = c.get(&url, None).await;
    let cookie = cookie_of(&first).expect("the first answer pins the client with a cookie");
    let pinned = served_by(&first);
    for _ in 0..10 {
        let r = c.get(&url, Some(&cookie)).await;
        assert_eq!(served_by(&r), pinned, "cookie {cookie} did not stick");
    }

    // The pinned endpoint goes away: the request is retried elsewhere and
    // the client re-pinned with a new cookie.
    stop(ups.remove(pinned)).await;
    let r = c.get(&url, Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    let moved = served_by(&r);
    assert_ne!(moved, pinned);
    let repinned = cookie_of(&r).expect("a re-pin sets a new cookie");
    assert_ne!(repinned, cookie);
    for _ in 0..5 {
        assert_eq!(served_by(&c.get(&url, Some(&repinned)).await), moved);
    }
}

#[tokio::test]
async fn unhealthy_endpoints_are_skipped() {
    let ups = numbered(2).await;
    // A port nothing listens on: bind, read the port, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for balancer in ["round-robin", "least-connections", "power-of-two-choices"] {
        let gw = Gateway::start(&config(
            &format!(
                "    balancer: {balancer}\n    unhealthy-cool-down: 1h\n    endpoints: [\"{dead}\", \"{}\", \"{}\"]",
                ups[0].addr, ups[1].addr
            ),
            "",
        ))
        .await
        .unwrap();
        let c = Client::h1();
        for _ in 0..30 {
            let r = c.get(&gw.url("http", "/u")).await.unwrap();
            assert_eq!(r.status, StatusCode::OK, "{balancer}: {}", r.text());
        }
        let m = c
            .get(&format!("http://{}/metrics", gw.admin.unwrap()))
            .await
            .unwrap()
            .text();
        // Tried once, found dead, never offered as healthy again.
        assert!(
            admin_metrics_line(&m, "edgeward_upstream_connect_errors_total") <= 1,
            "{balancer}: {m}"
        );
    }
}
