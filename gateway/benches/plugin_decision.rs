//! ns per endpoint decision: the built-in Wasm routers (through the real host:
//! warm instance pool, request resource, candidate records, deadline armed)
//! against the native smooth round robin, both through `UpstreamPool::choose`.
//!
//! `cargo bench -p edgeward --bench plugin_decision`

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use edgeward::config;
use edgeward::plugin::{CallContext, Plugins};
use edgeward::upstream::UpstreamPool;

fn main() {
    divan::main();
}

fn setup(balancer: &str) -> (UpstreamPool, Arc<Plugins>) {
    let plugins = if balancer == "native" {
        String::new()
    } else if balancer == "minimal" {
        // The e2e tests' `ok` guest: first healthy candidate, no host calls.
        // Built by `cargo test -p edgeward-e2e --test plugins_hostile`.
        let wasm = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/test-guests/wasm32-wasip2/release/hostile_router.wasm"
        );
        format!("plugins:\n  {balancer}:\n    path: {wasm}\n    deadline: 1s\n")
    } else {
        format!("plugins:\n  {balancer}:\n    builtin: {balancer}\n    deadline: 1s\n")
    };
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:0\"}}]\n{plugins}\
         upstreams:\n  svc:\n    balancer: {balancer}\n    endpoints: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\", \"10.0.0.4:80\"]\n\
         routes:\n  - upstream: svc\n"
    );
    let cfg = config::load_str(&yaml, Path::new("bench.yaml")).expect("valid bench config");
    let plugins = Arc::new(Plugins::load(&cfg).expect("plugins load"));
    let router = plugins.router(balancer).cloned();
    (
        UpstreamPool::with_router(&cfg.upstreams[0], router, None),
        plugins,
    )
}

fn parts() -> http::request::Parts {
    let req = http::Request::get("http://shop.example/api/products/1?x=1")
        .header("cookie", "a=1; edgeward-affinity=0000000000000000")
        .header("user-agent", "bench")
        .body(())
        .expect("valid request");
    req.into_parts().0
}

fn ctx() -> CallContext {
    CallContext {
        client: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        scheme: "https",
        route: Arc::from("products"),
    }
}

#[divan::bench]
fn native_round_robin(b: divan::Bencher) {
    let (pool, _p) = setup("native");
    let (mut p, c) = (parts(), ctx());
    b.bench_local(|| divan::black_box(pool.choose(&mut p, &c, &[])));
}

/// Host overhead alone: a guest that reads nothing and calls nothing.
#[divan::bench]
fn wasm_minimal_guest(b: divan::Bencher) {
    let (pool, _p) = setup("minimal");
    let (mut p, c) = (parts(), ctx());
    b.bench_local(|| divan::black_box(pool.choose(&mut p, &c, &[])));
}

#[divan::bench(args = ["round-robin", "least-connections", "ip-hash", "cookie-affinity", "power-of-two-choices", "weighted-round-robin"])]
fn wasm(b: divan::Bencher, balancer: &str) {
    let (pool, _p) = setup(balancer);
    let (mut p, c) = (parts(), ctx());
    b.bench_local(|| divan::black_box(pool.choose(&mut p, &c, &[])));
}
