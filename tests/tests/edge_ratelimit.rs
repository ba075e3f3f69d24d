//! `rate-limit:` (the built-in `rate-limit` Wasm filter) at known rates: a
//! client at twice the limit gets about half 429 with `Retry-After` and the
//! IETF `RateLimit`/`RateLimit-Policy` fields; another client, and another
//! route with its own limit, are unaffected.

use std::net::SocketAddr;
use std::time::Duration;

use edgeward_e2e::{Gateway, Upstream, empty};
use http::Request;
use hyper_util::rt::TokioIo;

/// An HTTP/1.1 connection from `source` (any 127/8 address works on loopback).
async fn connect_from(
    source: &str,
    to: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<edgeward_e2e::Body> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(to).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

#[tokio::test]
async fn a_client_at_twice_the_limit_gets_about_half_429() {
    let up = Upstream::echo("a").await;
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         admin:\n  address: 127.0.0.1:0\n\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\n\
         routes:\n  - name: limited\n    upstream: a\n\
         \x20   rate-limit: {{requests: 10, per: 1s, burst: 1, key: client-ip}}\n",
        up.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let addr = gw.addr("http");
    let mut heavy = connect_from("127.0.0.1", addr).await;
    let mut other = connect_from("127.0.0.2", addr).await;

    let (mut ok, mut limited, mut other_ok) = (0, 0, 0);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for i in 0..60 {
        tick.tick().await;
        heavy.ready().await.unwrap();
        let r = heavy
            .send_request(
                Request::get("/x")
                    .header("host", "t")
                    .body(empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => {
                ok += 1;
                // Nothing per client on what a cache could store for others.
                assert!(!r.headers().contains_key("ratelimit"));
            }
            429 => {
                limited += 1;
                let retry: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=2).contains(&retry), "Retry-After {retry}");
                assert_eq!(r.headers()["ratelimit-policy"], "\"limited\";q=10;w=1");
                let rl = r.headers()["ratelimit"].to_str().unwrap();
                assert!(rl.starts_with("\"limited\";r=0;t="), "{rl}");
            }
            s => panic!("unexpected {s}"),
        }
        let _ = http_body_util::BodyExt::collect(r.into_body()).await;
        if i % 6 == 0 {
            // The other client stays well under its own limit.
            other.ready().await.unwrap();
            let r = other
                .send_request(
                    Request::get("/y")
                        .header("host", "t")
                        .body(empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "another client was limited");
            other_ok += 1;
            let _ = http_body_util::BodyExt::collect(r.into_body()).await;
        }
    }
    let share = f64::from(limited) / 60.0;
    assert!(
        (0.3..=0.7).contains(&share),
        "{limited} of 60 limited ({ok} ok) at twice the rate"
    );
    assert_eq!(other_ok, 10);
    let m = gw.metrics().await;
    assert_eq!(
        m.value("edgeward_rate_limited_total", &[]),
        f64::from(limited)
    );
}

/// Each route has its own limit; a `header:` key counts each value apart; a
/// route without a block is never limited.
#[tokio::test]
async fn limits_are_per_route_and_per_key() {
    let up = Upstream::echo("a").await;
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         admin:\n  address: 127.0.0.1:0\n\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\n\
         routes:\n  - name: keyed\n    match: {{path-prefix: /keyed}}\n    upstream: a\n\
         \x20   rate-limit: {{requests: 3, per: 1m, key: \"header:x-api-key\"}}\n\
         \x20 - name: open\n    upstream: a\n",
        up.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let mut c = connect_from("127.0.0.1", gw.addr("http")).await;
    let mut get = async |path: &str, key: &str| {
        c.ready().await.unwrap();
        let r = c
            .send_request(
                Request::get(path)
                    .header("host", "t")
                    .header("x-api-key", key)
                    .body(empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let (parts, body) = r.into_parts();
        let _ = http_body_util::BodyExt::collect(body).await;
        parts
    };
    for _ in 0..3 {
        assert_eq!(get("/keyed", "alpha").await.status, 200);
    }
    let refused = get("/keyed", "alpha").await;
    assert_eq!(refused.status, 429);
    // One token every 20 s.
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((19..=20).contains(&retry), "Retry-After {retry}");
    assert_eq!(refused.headers["ratelimit-policy"], "\"keyed\";q=3;w=60");
    assert_eq!(
        refused.headers["ratelimit"],
        format!("\"keyed\";r=0;t={retry}").as_str()
    );
    assert_eq!(get("/keyed", "beta").await.status, 200);
    for _ in 0..10 {
        assert_eq!(get("/other", "alpha").await.status, 200);
    }
    let m = gw.metrics().await;
    assert_eq!(m.value("edgeward_rate_limited_total", &[]), 1.0);
}
