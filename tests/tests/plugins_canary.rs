//! The example plugin (`examples/canary-plugin`), built from source with the
//! SDK alone, routing real traffic through the gateway.

mod plugin_common;

use std::collections::HashSet;

use edgeward_e2e::Gateway;
use http::StatusCode;
use plugin_common::*;

#[tokio::test]
async fn canary_example_routes_by_header_and_by_a_stable_share_of_clients() {
    let example = repo().join("examples").join("canary-plugin");
    let target = repo().join("target").join("example-canary");
    cargo_wasm(&example, &target);
    let wasm = target.join("wasm32-wasip2/release/canary_plugin.wasm");

    let ups = numbered(3).await;
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         plugins:\n  canary:\n    path: {}\n    deadline: 1s\n    config: {{tag: canary, percent: 10}}\n\
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

    // The override header: 1 always canary, 0 never.
    let c = SourceClient::from(loopback(1));
    for _ in 0..10 {
        let r = c.get_with(&url, &[("x-canary", "1")]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(served_by(&r), 2);
    }
    for _ in 0..10 {
        assert_ne!(served_by(&c.get_with(&url, &[("x-canary", "0")]).await), 2);
    }

    // Without it, a stable slice of clients goes to canary.
    let mut canary_clients = HashSet::new();
    for ip in 2..=201u8 {
        let c = SourceClient::from(loopback(ip));
        let first = served_by(&c.get(&url, None).await) == 2;
        for _ in 0..2 {
            assert_eq!(
                served_by(&c.get(&url, None).await) == 2,
                first,
                "client 127.0.0.{ip} switched sides"
            );
        }
        if first {
            canary_clients.insert(ip);
        }
    }
    // 10 % of 200 clients by hash: deterministic for these addresses.
    let n = canary_clients.len();
    assert!((5..=40).contains(&n), "{n} of 200 clients went to canary");
    // Stable clients are spread over both stable endpoints.
    assert!(ups[0].hits() > 0 && ups[1].hits() > 0);
}
