//! The scale loop end to end: bounded load at a known rate through an
//! upstream that injects known latency and errors, the snapshot and the
//! decisions read back from `GET /admin/scale` (the JSON KEDA's `metrics-api`
//! scaler reads) and `/metrics`, decisions that follow the load, and a
//! reload that keeps a service's history.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edgeward_e2e::{Client, Gateway, Upstream, free_addrs, full};
use http::{Method, Response, StatusCode};
use serde_json::Value;

const TEST_LIMIT: Duration = Duration::from_secs(55);
/// Latency the upstream adds to every answer.
const LATENCY: Duration = Duration::from_millis(20);
/// Requests in the burst, every tenth answered 500.
const BURST: u64 = 600;
/// Measurement window of the scaled service, seconds.
const WINDOW_S: u64 = 5;
/// The ORCA load report every answer carries.
const ORCA: &str = "TEXT cpu_utilization=0.72, mem_utilization=0.41, rps_fractional=120";

async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Answers after [`LATENCY`]; the requests whose path ends in `/err` get 500.
async fn slow_origin() -> Upstream {
    Upstream::start(|req: http::Request<hyper::body::Incoming>| async move {
        tokio::time::sleep(LATENCY).await;
        let status = if req.uri().path().ends_with("/err") {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        let mut r = Response::new(full("ok"));
        *r.status_mut() = status;
        r.headers_mut().insert(
            "endpoint-load-metrics",
            http::HeaderValue::from_static(ORCA),
        );
        r
    })
    .await
}

fn yaml(listen: SocketAddr, admin: SocketAddr, endpoints: &[SocketAddr], max: u32) -> String {
    yaml_with(listen, admin, endpoints, max, "")
}

/// [`yaml`] with extra lines in the `scaling:` block.
fn yaml_with(
    listen: SocketAddr,
    admin: SocketAddr,
    endpoints: &[SocketAddr],
    max: u32,
    scaling_extra: &str,
) -> String {
    let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        r#"listeners: [{{name: main, address: "{listen}"}}]
admin: {{address: "{admin}"}}
upstreams:
  svc:
    balancer: native
    endpoints: [{eps}]
routes:
  - upstream: svc
plugins:
  rps:
    builtin: scale-target-tracking
    deadline: 1s
    config:
      metric: request-rate
      target: "40"
      scale-in-after: 0s
      scale-in-cooldown: 0s
scaling:
  history: 50
{scaling_extra}  services:
    svc:
      min: 1
      max: {max}
      interval: 200ms
      window: {WINDOW_S}s
      scale-down-stabilization: 1s
      policies: [rps]
"#,
        eps = eps.join(", ")
    )
}

async fn board(gw: &Gateway) -> Value {
    let r = gw.admin_request(Method::GET, "/admin/scale", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

/// Polls the board until `cond` holds for service `svc`; panics with the last
/// board after `limit`.
async fn until_svc(
    gw: &Gateway,
    limit: Duration,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let b = board(gw).await;
        let s = &b["services"]["svc"];
        if cond(s) {
            return s.clone();
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}; last board:\n{b:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `BURST` requests at about 300 per second, every tenth to `/err`; returns
/// how many were answered and their client-side round trips, sorted.
async fn burst(url: String) -> (u64, Vec<Duration>) {
    let client = Client::h1();
    let sent = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_micros(3_333));
    let mut tasks = Vec::new();
    for i in 0..BURST {
        tick.tick().await;
        let (client, sent) = (client.clone(), sent.clone());
        let path = if i % 10 == 9 { "/x/err" } else { "/x/ok" };
        let url = format!("{url}{path}");
        tasks.push(tokio::spawn(async move {
            let t = std::time::Instant::now();
            let r = client.get(&url).await.expect("request through the gateway");
            let took = t.elapsed();
            assert!(r.status == StatusCode::OK || r.status == StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(
                r.header("endpoint-load-metrics"),
                None,
                "the report reached the client"
            );
            sent.fetch_add(1, Ordering::SeqCst);
            took
        }));
    }
    let mut rtt = Vec::new();
    for t in tasks {
        rtt.push(t.await.expect("request task"));
    }
    rtt.sort();
    (sent.load(Ordering::SeqCst), rtt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_decisions_follow_the_load() {
    // Build the binary outside the time limit.
    let _ = tokio::task::spawn_blocking(edgeward_e2e::edgeward_bin).await;
    within(TEST_LIMIT, "the scale test", async {
        let (a, b) = (slow_origin().await, slow_origin().await);
        // The webhook receiver keeps every change it is sent.
        let changes = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
        let seen = changes.clone();
        let hook = Upstream::start(move |req: http::Request<hyper::body::Incoming>| {
            let seen = seen.clone();
            async move {
                use http_body_util::BodyExt;
                let body = req.into_body().collect().await.unwrap().to_bytes();
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                Response::new(full(""))
            }
        })
        .await;
        let addrs = free_addrs(2);
        let extra = format!("  webhook: http://{}/scale\n", hook.addr);
        let gw = Gateway::start(&yaml_with(
            addrs[0],
            addrs[1],
            &[a.addr, b.addr],
            10,
            &extra,
        ))
        .await
        .expect("gateway starts");

        // Before any traffic: evaluated, nothing to do.
        let s = until_svc(&gw, Duration::from_secs(5), "a first evaluation", |s| {
            s["evaluations"].as_u64() >= Some(1)
        })
        .await;
        assert_eq!(s["currentReplicas"], 2, "{s:#}");
        assert_eq!(s["upstream"], "svc");
        // The node starts at 2 and holds for the stabilisation window.
        assert_eq!(s["min"], 1);

        // Let the window grow to its full length before the burst ends.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (answered, rtt) = burst(gw.url("main", "")).await;
        assert_eq!(answered, BURST);
        let client_p95 = rtt[rtt.len() * 95 / 100].as_secs_f64() * 1000.0;

        // Every request of the burst inside one window: the counts are exact.
        let s = until_svc(
            &gw,
            Duration::from_secs(6),
            "the whole burst in one window",
            |s| {
                s["inputs"]["requests"].as_u64() == Some(BURST)
                    && s["inputs"]["windowMs"].as_u64() == Some(WINDOW_S * 1000)
            },
        )
        .await;
        let inputs = &s["inputs"];
        assert_eq!(inputs["errors"].as_u64(), Some(BURST / 10), "{s:#}");
        assert_eq!(inputs["errorRate"].as_f64(), Some(0.1), "{s:#}");
        let rate = inputs["requestRate"].as_f64().unwrap();
        let want = BURST as f64 / WINDOW_S as f64;
        assert!((rate - want).abs() <= want * 0.1, "rate {rate} vs {want}");
        // p95 within one window bucket (25 % wide) of the truth: at least the
        // injected latency, at most what the clients saw (which adds the
        // gateway's own time, so a busy machine cannot fail this).
        let p95 = inputs["latencyP95Ms"].as_f64().unwrap();
        let l = LATENCY.as_secs_f64() * 1000.0;
        assert!(
            p95 >= l / 1.25 && p95 <= client_p95 * 1.25,
            "p95 {p95}ms vs injected {l}ms, client-side p95 {client_p95}ms"
        );
        assert!(inputs["latencyP50Ms"].as_f64().unwrap() <= p95);
        assert!(p95 <= inputs["latencyP99Ms"].as_f64().unwrap());
        assert_eq!(inputs["healthyReplicas"], 2);
        // The endpoints' own load, from their ORCA reports.
        assert_eq!(inputs["loadReports"].as_u64(), Some(BURST), "{s:#}");
        let cpu = inputs["serviceCpu"].as_f64().unwrap();
        let mem = inputs["serviceMemory"].as_f64().unwrap();
        assert!(
            (cpu - 0.72).abs() < 1e-9 && (mem - 0.41).abs() < 1e-9,
            "{cpu} {mem}"
        );
        assert!(inputs["gatewayMemoryBytes"].as_u64().unwrap() > 1 << 20);

        // 120 rps over 2 replicas at 40 per replica: 3.
        assert_eq!(s["desiredReplicas"], 3, "{s:#}");
        assert_eq!(s["direction"], "up");
        let reason = s["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("rps: request-rate 60 rps per replica vs target 40 rps"),
            "{reason}"
        );
        assert_eq!(s["policies"][0]["plugin"], "rps");
        assert_eq!(s["policies"][0]["desiredReplicas"], 3);
        assert!(s["policies"][0]["fault"].is_null());
        // The per-service object, as KEDA's valueLocation reads it.
        let one = gw
            .admin_request(Method::GET, "/admin/scale/svc", "")
            .await
            .json();
        assert!(one["desiredReplicas"].as_u64().is_some(), "{one:#}");
        let missing = gw.admin_request(Method::GET, "/admin/scale/nope", "").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);

        // The status page and its JSON show the same service.
        let page = gw.admin_request(Method::GET, "/", "").await;
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(page.text().contains("fetch(\"/admin/status\""));
        let st = gw
            .admin_request(Method::GET, "/admin/status", "")
            .await
            .json();
        let up = &st["upstreams"][0];
        assert_eq!(up["name"], "svc", "{st:#}");
        assert!(up["requests"].as_u64().unwrap() > 0, "{st:#}");
        assert_eq!(up["endpoints"].as_array().unwrap().len(), 2);
        assert_eq!(st["routes"][0]["upstream"], "svc");
        assert!(
            st["scale"]["services"]["svc"]["desiredReplicas"]
                .as_u64()
                .is_some()
        );

        let m = gw.metrics().await;
        let svc = [("service", "svc")];
        let desired = m.value("edgeward_scale_desired_replicas", &svc);
        assert!((1.0..=3.0).contains(&desired), "{desired}");
        assert_eq!(m.value("edgeward_scale_current_replicas", &svc), 2.0);
        assert!(m.value("edgeward_plugin_calls_total", &[("plugin", "rps")]) >= 2.0);

        // The load is gone: once the window has emptied, back to min.
        let s = until_svc(
            &gw,
            Duration::from_secs(12),
            "the scale-in after the load",
            |s| s["desiredReplicas"] == 1 && s["inputs"]["requests"] == 0,
        )
        .await;
        let reason = s["reason"].as_str().unwrap();
        assert!(reason.contains("request-rate 0 rps"), "{reason}");
        // 0 is what the policy asks; 1 comes from `min` or from a recent
        // recommendation of 1 still in the stabilisation window.
        assert!(
            reason.contains("clamped to min 1") || reason.contains("held at 1"),
            "{reason}"
        );
        let history = s["history"].as_array().unwrap();
        let counts: Vec<u64> = history
            .iter()
            .filter_map(|d| d["desiredReplicas"].as_u64())
            .collect();
        assert!(
            counts.contains(&3) && counts.last() == Some(&1),
            "{counts:?}"
        );
        assert!(history.len() <= 50);

        // POSTs are sent off the loop: wait for the last one.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while changes
            .lock()
            .unwrap()
            .last()
            .map(|c| c["desiredReplicas"].clone())
            != Some(1.into())
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The webhook saw each change once, in order: the first decision (2),
        // up with the burst, down to 1 at the end.
        let got: Vec<(Value, Value)> = changes
            .lock()
            .unwrap()
            .iter()
            .map(|c| (c["previousReplicas"].clone(), c["desiredReplicas"].clone()))
            .collect();
        assert_eq!(got.first(), Some(&(Value::Null, 2.into())), "{got:?}");
        assert!(got.iter().any(|(_, d)| d.as_u64() >= Some(3)), "{got:?}");
        assert_eq!(got.last().map(|c| c.1.clone()), Some(1.into()), "{got:?}");
        assert!(got.windows(2).all(|w| w[0].1 == w[1].0), "{got:?}");
        let last = changes.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last["service"], "svc");
        assert!(
            last["reason"].as_str().is_some() && last["atMs"].as_u64().is_some(),
            "{last}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_history_and_applies_new_bounds() {
    // Build the binary outside the time limit.
    let _ = tokio::task::spawn_blocking(edgeward_e2e::edgeward_bin).await;
    within(TEST_LIMIT, "the scale reload test", async {
        let origin = slow_origin().await;
        let addrs = free_addrs(2);
        let gw = Gateway::start(&yaml(addrs[0], addrs[1], &[origin.addr], 10))
            .await
            .expect("gateway starts");
        let before = until_svc(&gw, Duration::from_secs(5), "evaluations", |s| {
            s["evaluations"].as_u64() >= Some(3)
        })
        .await;
        assert_eq!(before["max"], 10);
        gw.write_config(&yaml(addrs[0], addrs[1], &[origin.addr], 4));
        let (status, body) = gw.reload_http().await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let after = until_svc(&gw, Duration::from_secs(5), "the new max", |s| {
            s["max"] == 4
        })
        .await;
        assert!(
            after["evaluations"].as_u64() >= before["evaluations"].as_u64(),
            "the count restarted: {after:#}"
        );

        // A config that scales an unknown upstream is refused, located.
        let bad = yaml(addrs[0], addrs[1], &[origin.addr], 4)
            .replace("    svc:\n      min", "    svx:\n      min");
        gw.write_config(&bad);
        let (status, body) = gw.reload_http().await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let err = body["error"].as_str().unwrap();
        assert!(
            err.contains("scaling.services.svx.upstream: no upstream \"svx\""),
            "{err}"
        );
        assert!(board(&gw).await["services"]["svc"]["max"] == 4);
    })
    .await;
}

/// Builds the SDK's scaler example (`sdk/examples/target_in_flight.rs`) as a
/// component and returns its path.
fn sdk_scaler_example() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target").join("sdk-examples");
    plugin_common::sdk_examples(&["target_in_flight"], &target).join("target_in_flight.wasm")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_scaler_example_runs_in_the_gateway() {
    // Build the binary outside the time limit.
    let _ = tokio::task::spawn_blocking(edgeward_e2e::edgeward_bin).await;
    let wasm = tokio::task::spawn_blocking(sdk_scaler_example)
        .await
        .expect("build task");
    within(TEST_LIMIT, "the SDK scaler test", async {
        let origin = slow_origin().await;
        let addrs = free_addrs(2);
        let yaml = format!(
            r#"listeners: [{{name: main, address: "{}"}}]
admin: {{address: "{}"}}
upstreams:
  svc:
    balancer: native
    endpoints: ["{}"]
routes:
  - upstream: svc
plugins:
  mine:
    path: {}
    deadline: 1s
    config:
      target: "10"
      min: "3"
  cpu:
    builtin: scale-target-tracking
    deadline: 1s
    config:
      metric: service-cpu
      target: "36"
scaling:
  services:
    svc:
      max: 5
      interval: 200ms
      policies: [mine, cpu]
"#,
            addrs[0],
            addrs[1],
            origin.addr,
            wasm.display()
        );
        let gw = Gateway::start(&yaml).await.expect("gateway starts");
        // Some answers carrying ORCA reports (72 % CPU).
        for _ in 0..20 {
            let r = Client::h1()
                .get(&gw.url("main", "/"))
                .await
                .expect("request");
            assert_eq!(r.status, StatusCode::OK);
        }
        let s = until_svc(
            &gw,
            Duration::from_secs(5),
            "the SDK scaler's answer",
            |s| {
                s["policies"][0]["plugin"] == "mine"
                    && s["inputs"]["loadReports"].as_u64() > Some(0)
            },
        )
        .await;
        // The endpoints' CPU reaches plugins: 72 % on 1 replica at 36 % → 2.
        assert_eq!(s["policies"][1]["plugin"], "cpu");
        assert_eq!(s["policies"][1]["desiredReplicas"], 2, "{s:#}");
        assert_eq!(
            s["policies"][1]["reason"], "service-cpu 72% vs target 36%",
            "{s:#}"
        );
        // Its own `min: 3` over one (nearly idle) replica.
        assert_eq!(s["policies"][0]["desiredReplicas"], 3, "{s:#}");
        assert_eq!(s["desiredReplicas"], 3, "{s:#}");
        assert!(
            s["policies"][0]["reason"]
                .as_str()
                .unwrap()
                .starts_with("in-flight "),
            "{s:#}"
        );
    })
    .await;
}

mod plugin_common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulting_scaler_is_contained_and_its_last_answer_stands() {
    // Build the binary outside the time limit.
    let _ = tokio::task::spawn_blocking(edgeward_e2e::edgeward_bin).await;
    let wasm = tokio::task::spawn_blocking(|| plugin_common::guest("hostile-scaler"))
        .await
        .expect("build task");
    within(TEST_LIMIT, "the hostile scaler test", async {
        let origin = slow_origin().await;
        let addrs = free_addrs(2);
        let yaml = format!(
            r#"listeners: [{{name: main, address: "{}"}}]
admin: {{address: "{}"}}
upstreams:
  svc:
    balancer: native
    endpoints: ["{}"]
routes:
  - upstream: svc
plugins:
  trap:
    path: {wasm}
    deadline: 1s
    config: {{mode: trap}}
  spin:
    path: {wasm}
    deadline: 50ms
    config: {{mode: spin}}
scaling:
  services:
    svc:
      max: 9
      interval: 200ms
      policies: [trap, spin]
"#,
            addrs[0],
            addrs[1],
            origin.addr,
            wasm = wasm.display()
        );
        let gw = Gateway::start(&yaml).await.expect("gateway starts");
        let s = until_svc(
            &gw,
            Duration::from_secs(10),
            "faults on both policies",
            |s| {
                s["evaluations"].as_u64() >= Some(4)
                    && s["policies"][0]["fault"].is_string()
                    && s["policies"][1]["fault"].is_string()
            },
        )
        .await;
        // Both answered 6 once; that answer stands, marked with the fault.
        assert_eq!(s["desiredReplicas"], 6, "{s:#}");
        assert_eq!(s["policies"][0]["desiredReplicas"], 6);
        assert_eq!(s["policies"][0]["reason"], "first answer");
        assert!(
            s["policies"][1]["fault"]
                .as_str()
                .unwrap()
                .contains("deadline"),
            "{s:#}"
        );
        let m = gw.metrics().await;
        assert!(
            m.value(
                "edgeward_plugin_faults_total",
                &[("plugin", "trap"), ("kind", "trap")]
            ) >= 1.0
        );
        assert!(
            m.value(
                "edgeward_plugin_faults_total",
                &[("plugin", "spin"), ("kind", "deadline")]
            ) >= 1.0
        );
        // The gateway still serves.
        let r = Client::h1()
            .get(&gw.url("main", "/"))
            .await
            .expect("request");
        assert_eq!(r.status, StatusCode::OK);
    })
    .await;
}
