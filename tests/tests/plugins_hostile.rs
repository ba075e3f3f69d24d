//! Hostile plugins are contained: each fault costs its instance and applies the
//! plugin's `on-error` policy; the gateway keeps serving every route; a plugin
//! that cannot load is a clear startup error naming it.

mod plugin_common;

use edgeward_e2e::client::Client;
use edgeward_e2e::gateway::check;
use edgeward_e2e::{Gateway, Upstream};
use http::StatusCode;
use plugin_common::*;

/// One route and one upstream per hostile mode, plus a healthy control route.
const CASES: [(&str, &str, &str, StatusCode); 8] = [
    // (route/plugin name, mode, on-error, expected status)
    ("trap-fallback", "trap", "fallback", StatusCode::OK),
    ("trap-fail", "trap", "fail", StatusCode::BAD_GATEWAY),
    ("spin-fallback", "spin", "fallback", StatusCode::OK),
    ("spin-fail", "spin", "fail", StatusCode::SERVICE_UNAVAILABLE),
    ("grow-fallback", "grow", "fallback", StatusCode::OK),
    ("grow-fail", "grow", "fail", StatusCode::BAD_GATEWAY),
    ("flood", "log-flood", "fail", StatusCode::OK),
    ("bad-id-fail", "bad-id", "fail", StatusCode::BAD_GATEWAY),
];

fn hostile_config(wasm: &str, up: &Upstream) -> String {
    let mut plugins = String::new();
    let mut upstreams = String::new();
    let mut routes = String::new();
    for (name, mode, on_error, _) in CASES {
        // Only the endless loop should meet the deadline; the others get a
        // generous one so a loaded machine cannot turn their fault into a timeout.
        let deadline = if mode == "spin" { "5ms" } else { "2s" };
        plugins.push_str(&format!(
            "  {name}:\n    path: {wasm}\n    on-error: {on_error}\n    deadline: {deadline}\n    instances: 2\n    config: {{mode: {mode}}}\n"
        ));
        upstreams.push_str(&format!(
            "  {name}:\n    balancer: {name}\n    endpoints: [\"{}\"]\n",
            up.addr
        ));
        routes.push_str(&format!(
            "  - name: {name}\n    match: {{path-prefix: /{name}}}\n    upstream: {name}\n"
        ));
    }
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n\
         plugins:\n{plugins}upstreams:\n{upstreams}  healthy:\n    endpoints: [\"{}\"]\n\
         routes:\n{routes}  - name: healthy\n    upstream: healthy\n",
        up.addr
    )
}

#[tokio::test]
async fn every_hostile_guest_is_contained_and_its_policy_applied() {
    let wasm = guest("hostile-router");
    let up = Upstream::echo("up").await;
    let gw = Gateway::start(&hostile_config(&wasm.display().to_string(), &up))
        .await
        .unwrap();
    let c = Client::h1();
    for round in 0..3 {
        for (name, _, _, want) in CASES {
            let r = c.get(&gw.url("http", &format!("/{name}"))).await.unwrap();
            assert_eq!(r.status, want, "round {round}, {name}: {}", r.text());
            if want != StatusCode::OK {
                assert!(
                    r.body.len() < 64,
                    "{name}: a short body, got {:?}",
                    r.text()
                );
            }
            // The control route is untouched by its neighbours' faults.
            let ok = c.get(&gw.url("http", "/anything")).await.unwrap();
            assert_eq!(ok.status, StatusCode::OK, "after {name}");
        }
    }
    let m = c
        .get(&format!("http://{}/metrics", gw.admin.unwrap()))
        .await
        .unwrap()
        .text();
    let faults = |plugin: &str, kind: &str| {
        admin_metrics_line(
            &m,
            &format!("edgeward_plugin_faults_total{{plugin=\"{plugin}\",kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(faults("trap-fallback", "trap"), 3, "{m}");
    assert_eq!(faults("trap-fail", "trap"), 3, "{m}");
    assert_eq!(faults("spin-fallback", "deadline"), 3, "{m}");
    assert_eq!(faults("spin-fail", "deadline"), 3, "{m}");
    assert_eq!(faults("grow-fallback", "memory"), 3, "{m}");
    assert_eq!(faults("grow-fail", "memory"), 3, "{m}");
    assert_eq!(faults("bad-id-fail", "invalid"), 3, "{m}");
    assert_eq!(
        faults("flood", "trap") + faults("flood", "deadline"),
        0,
        "{m}"
    );
    assert_eq!(
        admin_metrics_line(
            &m,
            "edgeward_plugin_policy_total{plugin=\"trap-fallback\",policy=\"fallback\"}"
        ),
        3
    );
    // 3 000 flood lines were offered; the rate limit let few through.
    let logged = gw.stderr().matches("flood line").count();
    assert!(logged < 500, "{logged} flood lines reached the log");
    assert!(
        admin_metrics_line(&m, "edgeward_plugin_log_dropped_total{plugin=\"flood\"}") >= 2500,
        "{m}"
    );
    // The gateway is still alive and serving.
    assert_eq!(
        c.get(&gw.url("http", "/healthy")).await.unwrap().status,
        StatusCode::OK
    );
}

/// Writes `yaml` beside `extra` files and runs `edgeward check` and `run`:
/// both must fail, naming the plugin and the reason.
async fn refused(yaml: &str, files: &[(&str, &[u8])], expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    for (n, b) in files {
        std::fs::write(dir.path().join(n), b).unwrap();
    }
    let cfg = dir.path().join("edgeward.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let (code, text) = check(&cfg);
    assert_eq!(code, 1, "{text}");
    for e in expect {
        assert!(
            text.contains(e),
            "`edgeward check` output lacks {e:?}:\n{text}"
        );
    }
    let err = match Gateway::start_with(yaml, files).await {
        Ok(_) => panic!("the gateway started with a bad plugin"),
        Err(e) => e.to_string(),
    };
    for e in expect {
        assert!(err.contains(e), "`edgeward run` output lacks {e:?}:\n{err}");
    }
}

fn one_plugin(plugin: &str) -> String {
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         plugins:\n  bad:\n{plugin}\n\
         upstreams:\n  svc:\n    balancer: bad\n    endpoints: [\"127.0.0.1:9\"]\n\
         routes:\n  - upstream: svc\n"
    )
}

#[tokio::test]
async fn init_failure_is_a_startup_error() {
    let wasm = guest("hostile-router").display().to_string();
    refused(
        &one_plugin(&format!(
            "    path: {wasm}\n    config: {{mode: init-fail}}"
        )),
        &[],
        &["plugins.bad", "init failed", "refuses every configuration"],
    )
    .await;
}

#[tokio::test]
async fn a_component_of_the_wrong_world_is_a_startup_error() {
    let wasm = guest("filter-guest").display().to_string();
    refused(
        &one_plugin(&format!("    path: {wasm}")),
        &[],
        &["plugins.bad", "not a component of the `router` world"],
    )
    .await;
}

#[tokio::test]
async fn a_file_that_is_not_wasm_is_a_startup_error() {
    refused(
        &one_plugin("    path: not.wasm"),
        &[("not.wasm", b"#!/bin/sh\necho this is not wasm\n")],
        &["plugins.bad", "not a valid Wasm component"],
    )
    .await;
    refused(
        &one_plugin("    path: missing.wasm"),
        &[],
        &["plugins.bad", "cannot read"],
    )
    .await;
}

#[tokio::test]
async fn unknown_plugin_names_are_located_with_a_suggestion() {
    let yaml = "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
                upstreams:\n  svc:\n    balancer: least-conections\n    endpoints: [\"127.0.0.1:9\"]\n\
                routes:\n  - upstream: svc\n";
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("edgeward.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let (code, text) = check(&cfg);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("edgeward.yaml:6:15"), "{text}");
    assert!(text.contains("upstreams.svc.balancer"), "{text}");
    assert!(
        text.contains("did you mean \"least-connections\""),
        "{text}"
    );
}
