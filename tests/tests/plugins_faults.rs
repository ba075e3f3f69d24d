//! What survives a plugin fault: the request (and response) head it was lent,
//! the pool's warm instances, and a fault log line that names the cause.

mod plugin_common;

use edgeward_e2e::client::{Client, Fetched};
use edgeward_e2e::{Gateway, Upstream, empty};
use http::{Request, StatusCode};
use plugin_common::*;

const REQUESTS: usize = 12;

fn listener_and_admin() -> &'static str {
    "listeners:\n  - name: http\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n"
}

async fn get(c: &Client, url: &str) -> Fetched {
    c.fetch(
        Request::get(url)
            .header("x-client", "kept")
            .header("user-agent", "plugins-faults")
            .body(empty())
            .unwrap(),
    )
    .await
    .unwrap()
}

/// The echo upstream saw the client's request as sent (plus the proxy's own
/// headers), not an empty head.
fn assert_intact(r: &Fetched, gw: &Gateway, path: &str, what: &str) {
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text());
    let seen = r.json();
    let h = &seen["headers"];
    assert_eq!(seen["path"], path, "{what}: {seen}");
    assert_eq!(seen["query"], "q=1", "{what}: {seen}");
    assert_eq!(h["x-client"], "kept", "{what}: {seen}");
    assert_eq!(h["user-agent"], "plugins-faults", "{what}: {seen}");
    assert_eq!(
        h["host"],
        gw.addr("http").to_string(),
        "{what}: the client's Host: {seen}"
    );
}

fn trap_and_busy(m: &str, plugin: &str) -> (u64, u64) {
    let kind = |k: &str| {
        admin_metrics_line(
            m,
            &format!("edgeward_plugin_faults_total{{plugin=\"{plugin}\",kind=\"{k}\"}}"),
        )
    };
    (kind("trap"), kind("busy"))
}

async fn metrics(c: &Client, gw: &Gateway) -> String {
    c.get(&format!("http://{}/metrics", gw.admin.unwrap()))
        .await
        .unwrap()
        .text()
}

/// A router that holds every host handle but one (so the host can lend it the
/// request but not the upstream) or all of them (not even the request) faults
/// on every call; under `on-error: fallback` the request still goes upstream
/// whole, every time.
#[tokio::test]
async fn a_router_that_exhausts_its_handles_leaves_the_request_whole() {
    let wasm = guest("hostile-router").display().to_string();
    let up = Upstream::echo("up").await;
    let mut yaml = listener_and_admin().to_owned();
    yaml.push_str("plugins:\n");
    for (name, handles) in [("leak-up", 1023), ("leak-req", 1024)] {
        yaml.push_str(&format!(
            "  {name}:\n    path: {wasm}\n    on-error: fallback\n    deadline: 2s\n    instances: 2\n    config: {{mode: leak, handles: {handles}}}\n"
        ));
    }
    yaml.push_str(&format!(
        "upstreams:\n  leak-up:\n    balancer: leak-up\n    endpoints: [\"{0}\"]\n  leak-req:\n    balancer: leak-req\n    endpoints: [\"{0}\"]\n\
         routes:\n  - match: {{path-prefix: /leak-up}}\n    upstream: leak-up\n  - match: {{path-prefix: /leak-req}}\n    upstream: leak-req\n",
        up.addr
    ));
    let gw = Gateway::start(&yaml).await.unwrap();
    let c = Client::h1();
    for i in 0..REQUESTS {
        for name in ["leak-up", "leak-req"] {
            let path = format!("/{name}/{i}");
            let r = get(&c, &gw.url("http", &format!("{path}?q=1"))).await;
            assert_intact(&r, &gw, &path, &format!("{name}, request {i}"));
        }
    }
    let m = metrics(&c, &gw).await;
    for name in ["leak-up", "leak-req"] {
        let (trap, busy) = trap_and_busy(&m, name);
        // `busy`: both instances were still being replaced (it falls back too).
        assert_eq!(
            trap + busy,
            REQUESTS as u64,
            "{name}: every call faulted\n{m}"
        );
        assert!(trap > 0, "{name}\n{m}");
    }
}

/// The same for filters: one that holds every handle but one gets the request
/// in `on-request` but cannot be lent the response too, and one that holds
/// them all cannot even be lent the request. Under `on-error: fallback` the
/// upstream sees the request whole and the client the upstream's headers.
#[tokio::test]
async fn a_filter_that_exhausts_its_handles_leaves_both_heads_whole() {
    let wasm = guest("filter-guest").display().to_string();
    let up = Upstream::echo("up").await;
    let mut yaml = listener_and_admin().to_owned();
    yaml.push_str("plugins:\n");
    for (name, handles) in [("leak-resp", 1023), ("leak-req", 1024)] {
        yaml.push_str(&format!(
            "  {name}:\n    path: {wasm}\n    on-error: fallback\n    deadline: 2s\n    instances: 2\n    config: {{tag: {name}, leak: {handles}}}\n"
        ));
    }
    yaml.push_str(&format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\"]\n\
         routes:\n  - match: {{path-prefix: /leak-resp}}\n    upstream: svc\n    filters: [leak-resp]\n\
         \x20 - match: {{path-prefix: /leak-req}}\n    upstream: svc\n    filters: [leak-req]\n",
        up.addr
    ));
    let gw = Gateway::start(&yaml).await.unwrap();
    let c = Client::h1();
    for i in 0..REQUESTS {
        let path = format!("/leak-resp/{i}");
        let r = get(&c, &gw.url("http", &format!("{path}?q=1"))).await;
        assert_intact(&r, &gw, &path, &format!("leak-resp, request {i}"));
        assert_eq!(
            r.json()["headers"]["x-filter"],
            "leak-resp",
            "on-request ran and its edit applied"
        );
        assert_eq!(r.header("x-upstream"), Some("up"), "response {i}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-filter-response"), None, "on-response faulted");

        let path = format!("/leak-req/{i}");
        let r = get(&c, &gw.url("http", &format!("{path}?q=1"))).await;
        assert_intact(&r, &gw, &path, &format!("leak-req, request {i}"));
        assert_eq!(r.json()["headers"]["x-filter"], serde_json::Value::Null);
        assert_eq!(r.header("x-upstream"), Some("up"), "response {i}");
    }
    let m = metrics(&c, &gw).await;
    for name in ["leak-resp", "leak-req"] {
        let (trap, busy) = trap_and_busy(&m, name);
        assert!(trap + busy >= REQUESTS as u64, "{name}\n{m}");
        assert!(trap > 0, "{name}\n{m}");
    }
}

/// Faults discard instances; the pool is refilled in the background, back to
/// its warm size (2 here: `instances: 2` caps it), while requests go on.
#[tokio::test]
async fn discarded_instances_are_replaced_in_the_background() {
    let wasm = guest("hostile-router").display().to_string();
    let up = Upstream::echo("up").await;
    let yaml = format!(
        "{}plugins:\n  trap:\n    path: {wasm}\n    on-error: fallback\n    deadline: 2s\n    instances: 2\n    config: {{mode: trap}}\n\
         upstreams:\n  svc:\n    balancer: trap\n    endpoints: [\"{}\"]\n\
         routes:\n  - upstream: svc\n",
        listener_and_admin(),
        up.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let c = Client::h1();
    let live = |m: &str| admin_metrics_line(m, "edgeward_plugin_instances{plugin=\"trap\"}");
    assert_eq!(live(&metrics(&c, &gw).await), 2, "warm at load");
    for i in 0..REQUESTS {
        let r = get(&c, &gw.url("http", &format!("/t/{i}?q=1"))).await;
        assert_intact(&r, &gw, &format!("/t/{i}"), &format!("request {i}"));
    }
    let start = std::time::Instant::now();
    let mut m = metrics(&c, &gw).await;
    while live(&m) != 2 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the pool was not refilled:\n{m}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        m = metrics(&c, &gw).await;
    }
    // A request that found both instances still being replaced is `busy`
    // (and falls back too); every other one trapped.
    let (trap, busy) = trap_and_busy(&m, "trap");
    assert_eq!(trap + busy, REQUESTS as u64, "{m}");
    assert!(trap > 0, "{m}");
    assert_eq!(
        admin_metrics_line(
            &m,
            "edgeward_plugin_instance_failures_total{plugin=\"trap\"}"
        ),
        0,
        "{m}"
    );
}

/// A fault's log line and metric name its cause: deep recursion is a stack
/// overflow (not wasmtime's "error while executing at wasm backtrace:"), and
/// a guest that fills its memory page by page is a memory fault.
#[tokio::test]
async fn fault_logs_and_metrics_name_the_cause() {
    let wasm = guest("hostile-router").display().to_string();
    let up = Upstream::echo("up").await;
    let cases = [("recurse", "trap"), ("hog", "memory")];
    let mut yaml = listener_and_admin().to_owned();
    yaml.push_str("plugins:\n");
    for (mode, _) in cases {
        yaml.push_str(&format!(
            "  {mode}:\n    path: {wasm}\n    on-error: fail\n    deadline: 5s\n    instances: 2\n    config: {{mode: {mode}}}\n"
        ));
    }
    yaml.push_str("upstreams:\n");
    for (mode, _) in cases {
        yaml.push_str(&format!(
            "  {mode}:\n    balancer: {mode}\n    endpoints: [\"{}\"]\n",
            up.addr
        ));
    }
    yaml.push_str("routes:\n");
    for (mode, _) in cases {
        yaml.push_str(&format!(
            "  - match: {{path-prefix: /{mode}}}\n    upstream: {mode}\n"
        ));
    }
    let gw = Gateway::start(&yaml).await.unwrap();
    let c = Client::h1();
    for (mode, _) in cases {
        let r = c.get(&gw.url("http", &format!("/{mode}"))).await.unwrap();
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{mode}: {}", r.text());
    }
    let m = metrics(&c, &gw).await;
    for (mode, kind) in cases {
        let n = admin_metrics_line(
            &m,
            &format!("edgeward_plugin_faults_total{{plugin=\"{mode}\",kind=\"{kind}\"}}"),
        );
        assert_eq!(n, 1, "{mode} counted as {kind}\n{m}");
    }
    let log = gw.stderr();
    let line = |plugin: &str| {
        log.lines()
            .find(|l| l.contains("instance discarded") && l.contains(&format!("plugin={plugin} ")))
            .unwrap_or_else(|| panic!("no fault line for {plugin}:\n{log}"))
            .to_owned()
    };
    assert!(
        line("recurse").contains("trapped: stack overflow;"),
        "{log}"
    );
    assert!(line("hog").contains("exceeded its memory limit"), "{log}");
    // The trap kind leads; wasmtime's multi-line report does not leak.
    assert!(!log.contains("error while executing"), "{log}");
}

/// A plugin written with the SDK: its panic's message and location reach the
/// log through the host `log` (the SDK's panic hook), not a failed stderr
/// write; its runaway recursion is named a stack overflow, with a backtrace
/// naming the guest's function (from its name section). A memory hog under
/// a short deadline (where the hog runs out of memory, not of time) is a
/// memory fault: the limiter saw the refused grow.
#[tokio::test]
async fn a_panic_and_a_stack_overflow_name_their_place_and_a_hog_is_memory() {
    let sdk = guest("sdk-fault-router").display().to_string();
    let hostile = guest("hostile-router").display().to_string();
    let up = Upstream::echo("up").await;
    let yaml = format!(
        "{}plugins:\n\
         \x20 panic:\n    path: {sdk}\n    on-error: fail\n    deadline: 5s\n    instances: 2\n    config: {{mode: panic}}\n\
         \x20 recurse:\n    path: {sdk}\n    on-error: fail\n    deadline: 5s\n    instances: 2\n    config: {{mode: recurse}}\n\
         \x20 hog:\n    path: {hostile}\n    on-error: fail\n    deadline: 50ms\n    memory: 2MiB\n    instances: 2\n    config: {{mode: hog}}\n\
         upstreams:\n\
         \x20 panic: {{balancer: panic, endpoints: [\"{a}\"]}}\n\
         \x20 recurse: {{balancer: recurse, endpoints: [\"{a}\"]}}\n\
         \x20 hog: {{balancer: hog, endpoints: [\"{a}\"]}}\n\
         routes:\n\
         \x20 - {{match: {{path-prefix: /panic}}, upstream: panic}}\n\
         \x20 - {{match: {{path-prefix: /recurse}}, upstream: recurse}}\n\
         \x20 - {{match: {{path-prefix: /hog}}, upstream: hog}}\n",
        listener_and_admin(),
        a = up.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let c = Client::h1();
    // Two hogs, one per warm instance: a third could find both still being
    // replaced and be `busy` within its deadline.
    for path in ["/panic/cart", "/recurse", "/hog/1", "/hog/2"] {
        let r = c.get(&gw.url("http", path)).await.unwrap();
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{path}: {}", r.text());
    }
    let m = metrics(&c, &gw).await;
    let faults = |plugin: &str, kind: &str| {
        admin_metrics_line(
            &m,
            &format!("edgeward_plugin_faults_total{{plugin=\"{plugin}\",kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(
        faults("hog", "memory"),
        2,
        "a hog under a 50ms deadline is memory\n{m}"
    );
    assert_eq!(faults("hog", "deadline"), 0, "{m}");
    assert_eq!(faults("panic", "trap"), 1, "{m}");
    assert_eq!(faults("recurse", "trap"), 1, "{m}");

    let log = gw.stderr();
    let find = |what: &str| {
        log.lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line with {what:?}:\n{log}"))
            .to_owned()
    };
    // The guest's own line, at its source location.
    let panicked = find("sdk-fault-router refuses /panic/cart");
    assert!(
        panicked.contains("panicked at sdk-fault-router/src/lib.rs:"),
        "{panicked}"
    );
    assert!(!log.contains("blocking WASI call"), "{log}");
    let fault = |plugin: &str| find(&format!("plugin={plugin} "));
    let trap = log
        .lines()
        .find(|l| l.contains("plugin=panic") && l.contains("trapped"))
        .unwrap_or_else(|| panic!("no fault line for panic:\n{log}"));
    assert!(
        trap.contains("trapped: wasm `unreachable` executed"),
        "{trap}"
    );
    let overflow = fault("recurse");
    assert!(
        overflow.contains("trapped: stack overflow; wasm backtrace: "),
        "{overflow}"
    );
    assert!(
        overflow.contains("sdk_fault_router::runaway_recursion ×"),
        "{overflow}"
    );
}

/// `on-error: fallback-tagged`: a faulting canary router's requests fall
/// back only to the endpoints tagged `stable`, never to the canary.
#[tokio::test]
async fn fallback_tagged_keeps_traffic_on_the_tagged_endpoints() {
    let wasm = guest("hostile-router").display().to_string();
    let ups = numbered(3).await;
    let yaml = format!(
        "{}plugins:\n  canary:\n    path: {wasm}\n    deadline: 5s\n    instances: 2\n\
         \x20   on-error: fallback-tagged\n    fallback-tags: [stable]\n    config: {{mode: trap}}\n\
         upstreams:\n  svc:\n    balancer: canary\n    endpoints:\n\
         \x20     - {{address: \"{}\", tags: [stable]}}\n\
         \x20     - {{address: \"{}\", tags: [canary]}}\n\
         \x20     - {{address: \"{}\", tags: [stable, eu]}}\n\
         routes:\n  - upstream: svc\n",
        listener_and_admin(),
        ups[0].addr,
        ups[1].addr,
        ups[2].addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let c = Client::h1();
    for i in 0..REQUESTS {
        let r = c.get(&gw.url("http", &format!("/f/{i}"))).await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text());
        assert_ne!(served_by(&r), 1, "request {i} fell back to the canary");
    }
    assert_eq!(ups[1].hits(), 0);
    assert!(ups[0].hits() > 0 && ups[2].hits() > 0, "{:?}", hits(&ups));
    let m = metrics(&c, &gw).await;
    let (trap, busy) = trap_and_busy(&m, "canary");
    assert_eq!(trap + busy, REQUESTS as u64, "{m}");
    assert!(trap > 0, "{m}");
}
