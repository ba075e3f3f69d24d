//! Signals beyond the request windows, end to end with real upstreams:
//! a filter plugin's own counter (host `metrics`) on `/metrics`, in the
//! snapshot and driving a scaler; a router that sees its endpoints' ORCA
//! CPU; and scale from zero, where requests for a service with no healthy
//! endpoint are held until one starts listening, the queue is bounded, and
//! the overflow gets 503 with `Retry-After`.

mod plugin_common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use edgeward_e2e::{Client, Gateway, Upstream, free_addrs, full};
use http::{Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;

const TEST_LIMIT: Duration = Duration::from_secs(50);

async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Builds the SDK's examples (`sdk/examples/`) as components, once per
/// process, and returns the path of `name`'s.
fn sdk_example(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = root.join("target").join("sdk-examples");
        plugin_common::sdk_examples(&["count_orders", "least_cpu"], &target)
    });
    dir.join(format!("{name}.wasm"))
}

async fn board(gw: &Gateway) -> Value {
    let r = Client::h1()
        .get(&gw.admin_url("/admin/scale"))
        .await
        .expect("GET /admin/scale");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// Polls `/admin/scale` until service `svc` satisfies `ok`.
async fn until_svc(gw: &Gateway, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let b = board(gw).await;
        let s = b["services"]["svc"].clone();
        if ok(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not seen within 10s; last board:\n{b:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filters_order_counter_reaches_metrics_the_snapshot_and_a_scaler() {
    let _ = tokio::task::spawn_blocking(edgeward_e2e::edgeward_bin).await;
    let wasm = tokio::task::spawn_blocking(|| sdk_example("count_orders"))
        .await
        .expect("build task");
    within(TEST_LIMIT, "the custom metric test", async {
        // Every checkout reports 3 orders worth 20 each.
        let origin = Upstream::start(|req: http::Request<hyper::body::Incoming>| async move {
            let mut r = Response::new(full("ok"));
            if req.uri().path() == "/checkout" {
                r.headers_mut().insert("x-orders", 3.into());
                r.headers_mut().insert("x-order-value", 20.into());
            }
            r
        })
        .await;
        let addrs = free_addrs(2);
        let yaml = format!(
            r#"listeners: [{{name: main, address: "{}"}}]
admin: {{address: "{}"}}
upstreams:
  svc:
    endpoints: ["{}"]
routes:
  - upstream: svc
    filters: [shop]
plugins:
  shop:
    path: {}
    # Generous: a call cut off by the deadline between its counter and its
    # histogram would leave them disagreeing on this loaded box.
    deadline: 200ms
  orders-target:
    builtin: scale-target-tracking
    config:
      metric: custom:shop/orders
      target: "10"
scaling:
  services:
    svc:
      max: 20
      interval: 200ms
      window: 3s
      policies: [orders-target]
"#,
            addrs[0],
            addrs[1],
            origin.addr,
            wasm.display()
        );
        let gw = Gateway::start(&yaml).await.expect("gateway starts");
        for path in ["/checkout"; 40].into_iter().chain(["/browse"; 10]) {
            let r = Client::h1()
                .get(&gw.url("main", path))
                .await
                .expect("request");
            assert_eq!(r.status, StatusCode::OK);
        }
        // On /metrics, through a real Prometheus parser.
        let m = gw.metrics().await;
        let svc = [("upstream", "svc")];
        assert_eq!(
            m.kind_of("edgeward_plugin_shop_orders_total"),
            Some("counter")
        );
        assert_eq!(m.value("edgeward_plugin_shop_orders_total", &svc), 120.0);
        let (count, sum) = m.histogram("edgeward_plugin_shop_order_value", &svc);
        assert_eq!((count, sum), (40.0, 800.0));
        assert_eq!(
            m.value("edgeward_plugin_metric_errors_total", &[("plugin", "shop")]),
            0.0
        );
        // In the snapshot, as orders per second over the window, and the
        // scaler acts on it: 120 orders in under 3 s is over 40/s, 10 per
        // replica is the target.
        let s = until_svc(&gw, "a decision on orders per second", |s| {
            s["inputs"]["customMetrics"]["shop/orders"]["value"].as_f64() > Some(40.0)
                && s["desiredReplicas"].as_u64() > Some(4)
        })
        .await;
        let orders = &s["inputs"]["customMetrics"]["shop/orders"];
        assert_eq!(orders["kind"], "counter", "{s:#}");
        let mean = &s["inputs"]["customMetrics"]["shop/order_value"];
        assert_eq!(
            (mean["kind"].as_str(), mean["value"].as_f64()),
            (Some("histogram"), Some(20.0)),
            "{s:#}"
        );
        let rate = orders["value"].as_f64().unwrap();
        let policy = &s["policies"][0];
        assert_eq!(policy["plugin"], "orders-target");
        assert_eq!(
            policy["desiredReplicas"].as_f64(),
            Some((rate / 10.0 - 1e-9).ceil()),
            "{s:#}"
        );
        assert!(
            policy["reason"]
                .as_str()
                .unwrap()
                .starts_with("custom:shop/orders "),
            "{s:#}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_sees_each_endpoints_orca_load() {
    let _ = tokio::task::spawn_blocking(edgeward_e2e::edgeward_bin).await;
    let wasm = tokio::task::spawn_blocking(|| sdk_example("least_cpu"))
        .await
        .expect("build task");
    within(TEST_LIMIT, "the ORCA router test", async {
        let mut origins = Vec::new();
        for (i, cpu) in [(0u8, "0.9"), (1, "0.1"), (2, "0.5")] {
            origins.push(
                Upstream::start(move |_req| async move {
                    let mut r = Response::new(full(format!("{i}")));
                    r.headers_mut().insert(
                        "endpoint-load-metrics",
                        format!("TEXT cpu_utilization={cpu}, mem_utilization=0.3")
                            .parse()
                            .unwrap(),
                    );
                    r
                })
                .await,
            );
        }
        let addrs = free_addrs(1);
        let eps: Vec<String> = origins.iter().map(|o| format!("\"{}\"", o.addr)).collect();
        let yaml = format!(
            r#"listeners: [{{name: main, address: "{}"}}]
upstreams:
  svc:
    balancer: cpu
    endpoints: [{}]
routes:
  - upstream: svc
plugins:
  cpu:
    path: {}
"#,
            addrs[0],
            eps.join(", "),
            wasm.display()
        );
        let gw = Gateway::start(&yaml).await.expect("gateway starts");
        let mut picks = Vec::new();
        for _ in 0..12 {
            let r = Client::h1()
                .get(&gw.url("main", "/"))
                .await
                .expect("request");
            assert_eq!(r.status, StatusCode::OK);
            assert!(r.header("endpoint-load-metrics").is_none(), "stripped");
            picks.push(r.text());
        }
        // Each endpoint once, while it has no report; then the least CPU.
        assert_eq!(picks[..3], ["0", "1", "2"], "{picks:?}");
        assert!(picks[3..].iter().all(|p| p == "1"), "{picks:?}");
    })
    .await;
}

/// An origin on exactly `addr`, started late: the replica the autoscaler adds.
async fn listen_on(addr: SocketAddr) -> tokio::task::JoinHandle<()> {
    let socket = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind the late replica");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = socket.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc =
                    service_fn(|_req| async { Ok::<_, Infallible>(Response::new(full("up"))) });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_from_zero_holds_requests_until_an_endpoint_listens() {
    let _ = tokio::task::spawn_blocking(edgeward_e2e::edgeward_bin).await;
    within(TEST_LIMIT, "the scale-from-zero test", async {
        // Nothing listens on the endpoint yet: the service is at zero.
        let addrs = free_addrs(4);
        let (listen, admin, replica, never) = (addrs[0], addrs[1], addrs[2], addrs[3]);
        let yaml = format!(
            r#"listeners: [{{name: main, address: "{listen}"}}]
admin: {{address: "{admin}"}}
upstreams:
  svc:
    endpoints: ["{replica}"]
    unhealthy-cool-down: 2s
  cold:
    endpoints: ["{never}"]
routes:
  - match: {{ path-prefix: /cold }}
    upstream: cold
  - upstream: svc
plugins:
  rps:
    builtin: scale-target-tracking
    config:
      metric: request-rate
      target: "100"
      scale-in-after: 0s
      scale-in-cooldown: 0s
scaling:
  services:
    svc:
      min: 0
      max: 3
      interval: 30s
      scale-down-stabilization: 0s
      policies: [rps]
      hold:
        queue: 3
        timeout: 20s
        retry-after: 7s
    cold:
      min: 0
      max: 1
      policies: [rps]
      hold: {{ timeout: 300ms }}
"#
        );
        let gw = Gateway::start(&yaml).await.expect("gateway starts");
        // Idle and at zero.
        until_svc(&gw, "the first decision", |s| s["evaluations"] == 1).await;
        assert_eq!(board(&gw).await["services"]["svc"]["desiredReplicas"], 0);

        let url = gw.url("main", "/hello");
        let held: Vec<_> = (0..3)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Client::h1().get(&url).await })
            })
            .collect();
        // All three are held (the gauge is live), and the loop asks for a
        // replica at once rather than at its 30 s interval.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while gw
            .metrics()
            .await
            .get("edgeward_scale_held_requests", &[("service", "svc")])
            != Some(3.0)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "3 requests not held"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let s = until_svc(&gw, "desired ≥ 1 at once", |s| s["desiredReplicas"] == 1).await;
        assert_eq!(s["evaluations"], 2, "one urgent evaluation: {s:#}");
        assert!(s["inputs"]["queueDepth"].as_u64() >= Some(1), "{s:#}");
        assert!(
            s["reason"]
                .as_str()
                .unwrap()
                .contains("held and no healthy replica"),
            "{s:#}"
        );
        // The queue is bounded: a fourth request is refused at once.
        let r = Client::h1().get(&url).await.expect("request");
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert_eq!(r.header("retry-after"), Some("7"));
        for h in &held {
            assert!(!h.is_finished(), "a held request was answered early");
        }

        // The replica comes up: the held requests are served.
        let started = tokio::time::Instant::now();
        let _replica = listen_on(replica).await;
        for h in held {
            let r = h.await.expect("join").expect("held request");
            assert_eq!((r.status, r.text()), (StatusCode::OK, "up".to_owned()));
        }
        // Within the cool-down after which the endpoint is tried again.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let m = gw.metrics().await;
        let svc = [("service", "svc")];
        assert_eq!(m.value("edgeward_scale_held_requests", &svc), 0.0);
        let (holds, held_for) = m.histogram("edgeward_scale_hold_seconds", &svc);
        assert!(holds >= 3.0 && held_for > 0.0, "{holds} holds, {held_for}s");
        assert_eq!(
            m.value(
                "edgeward_scale_hold_refused_total",
                &[("service", "svc"), ("reason", "full")]
            ),
            1.0
        );
        // Now healthy: no hold at all.
        let r = Client::h1().get(&url).await.expect("request");
        assert_eq!(r.status, StatusCode::OK);

        // A service whose replica never comes: held for its timeout, then
        // 503 with the default Retry-After.
        let asked = tokio::time::Instant::now();
        let r = Client::h1()
            .get(&gw.url("main", "/cold"))
            .await
            .expect("request");
        let waited = asked.elapsed();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert_eq!(r.header("retry-after"), Some("5"));
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        let m = gw.metrics().await;
        assert_eq!(
            m.value(
                "edgeward_scale_hold_refused_total",
                &[("service", "cold"), ("reason", "timeout")]
            ),
            1.0
        );
    })
    .await;
}
