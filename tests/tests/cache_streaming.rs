//! Streaming fills (issue 13): a stored response's first bytes reach the
//! client before the origin has finished; a fill over `max-object-size`, or
//! over the global fill budget, streams on uncached without failing anyone.

use std::net::SocketAddr;

use bytes::Bytes;
use edgeward_e2e::client::Client;
use edgeward_e2e::{Gateway, Upstream, empty};
use http::{Request, StatusCode};
use http_body_util::BodyExt;

fn config(up: SocketAddr, global: &str) -> String {
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n{global}\
         upstreams:\n  o:\n    endpoints: [\"{up}\"]\nroutes:\n  - upstream: o\n    cache: {{ttl: 60s}}\n",
    )
}

fn x_cache(h: &http::HeaderMap) -> &str {
    h.get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<none>")
}

/// Sends a GET and reads its body until `n` bytes have come; the rest of
/// the body is left to read.
async fn first_bytes(url: &str, n: usize) -> (http::HeaderMap, usize, hyper::body::Incoming) {
    let resp = Client::h1()
        .send(Request::get(url).body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut got = 0;
    while got < n {
        let frame = body.frame().await.expect("a frame").expect("no error");
        got += frame.data_ref().map_or(0, |d| d.len());
    }
    (headers, got, body)
}

#[tokio::test]
async fn a_large_object_streams_to_20_coalesced_clients_before_the_origin_finishes() {
    let first = Bytes::from(vec![b'a'; 64 * 1024]);
    let rest = Bytes::from(vec![b'b'; 2 * 1024 * 1024]);
    let (up, release) =
        Upstream::gated_stream("big", vec![first.clone()], vec![rest.clone()]).await;
    let gw = Gateway::start(&config(up.addr, "")).await.unwrap();
    let url = gw.url("http", "/big");
    // The filling client and 19 more that join the fill in progress: every
    // one of them has the first 64 KiB while the origin still holds the rest.
    let (headers, got, body) = first_bytes(&url, first.len()).await;
    assert_eq!(x_cache(&headers), "MISS");
    let mut clients = vec![tokio::spawn(async move { (headers, got, body) })];
    for _ in 0..19 {
        let url = url.clone();
        let n = first.len();
        clients.push(tokio::spawn(async move { first_bytes(&url, n).await }));
    }
    let mut started = Vec::new();
    for c in clients {
        let started_one = tokio::time::timeout(std::time::Duration::from_secs(30), c)
            .await
            .expect("a coalesced client got its first bytes before the origin finished")
            .unwrap();
        started.push(started_one);
    }
    assert_eq!(up.hits(), 1, "the 19 joined the fill");
    release.send(true).unwrap();
    for (i, (headers, got, body)) in started.into_iter().enumerate() {
        let tail = body.collect().await.unwrap().to_bytes();
        assert_eq!(got + tail.len(), first.len() + rest.len(), "client {i}");
        assert_eq!(&tail[tail.len() - rest.len()..], &rest[..], "client {i}");
        let status = headers.get("cache-status").unwrap().to_str().unwrap();
        if i > 0 {
            assert!(status.contains("collapsed"), "{status}");
        }
    }
    let r = Client::h1().get(&url).await.unwrap();
    assert_eq!(x_cache(&r.headers), "HIT");
    assert_eq!(&r.body[..first.len()], &first[..]);
    assert_eq!(&r.body[first.len()..], &rest[..]);
    assert_eq!(up.hits(), 1, "one fill served all 21 requests");
}

#[tokio::test]
async fn coalesced_clients_of_a_fill_that_fails_get_a_fresh_attempt() {
    // The origin dies while the fill waits for its answer: the waiters do
    // not hang on it, each tries on its own, and each gets the gateway's
    // labelled 502. (A fill that fails mid-body ends its readers' bodies
    // with an error: `cargo test -p edgeward --lib fanout`.)
    let (up, origin) =
        edgeward_e2e::counting::Origin::start(edgeward_e2e::counting::Spec::default()).await;
    origin.header("cache-control", "max-age=60");
    origin.set(|s| s.body = Bytes::from(vec![b'z'; 256 * 1024]));
    let gw = Gateway::start(&config(up.addr, "")).await.unwrap();
    let url = gw.url("http", "/fails");
    origin.hold();
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Client::h1().get(&url).await })
        })
        .collect();
    edgeward_e2e::counting::eventually("the fill reaches the origin", || up.hits() == 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    drop(up);
    for c in clients {
        let r = tokio::time::timeout(std::time::Duration::from_secs(30), c)
            .await
            .expect("no hang")
            .unwrap()
            .expect("an answer");
        assert_eq!(r.status, StatusCode::BAD_GATEWAY);
        let status = r.headers.get("cache-status").unwrap().to_str().unwrap();
        assert!(status.starts_with("Edgeward; fwd=uri-miss"), "{status}");
    }
}

#[tokio::test]
async fn a_fill_over_max_object_size_streams_through_uncached() {
    // No Content-Length: the size shows only as the body streams.
    let chunks: Vec<Bytes> = (0..4)
        .map(|i| Bytes::from(vec![b'0' + i; 8 * 1024]))
        .collect();
    let (up, release) =
        Upstream::gated_stream("big", chunks[..2].to_vec(), chunks[2..].to_vec()).await;
    release.send(true).unwrap();
    let gw = Gateway::start(&config(
        up.addr,
        "cache: {max-size: 1MiB, max-object-size: 16KiB}\n",
    ))
    .await
    .unwrap();
    for _ in 0..2 {
        let r = Client::h1().get(&gw.url("http", "/over")).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body.len(), 32 * 1024, "the client got all of it");
        assert_eq!(r.body, chunks.concat());
        assert_eq!(x_cache(&r.headers), "MISS");
    }
    assert_eq!(up.hits(), 2, "not stored");
}

#[tokio::test]
async fn fills_together_stay_within_the_fill_budget() {
    let first = Bytes::from(vec![b'x'; 12 * 1024]);
    let rest = Bytes::from(vec![b'y'; 1024]);
    let (up, release) =
        Upstream::gated_stream("big", vec![first.clone()], vec![rest.clone()]).await;
    let gw = Gateway::start(&config(
        up.addr,
        "cache: {max-size: 1MiB, max-object-size: 64KiB, fill-budget: 20KiB}\n",
    ))
    .await
    .unwrap();
    // Two fills mid-body at once: 12 KiB each would be 24 KiB held.
    let mut bodies = Vec::new();
    for path in ["/one", "/two"] {
        let resp = Client::h1()
            .send(Request::get(gw.url("http", path)).body(empty()).unwrap())
            .await
            .unwrap();
        let mut body = resp.into_body();
        let mut got = 0;
        while got < first.len() {
            let frame = body.frame().await.expect("a frame").expect("no error");
            got += frame.data_ref().map_or(0, |d| d.len());
        }
        bodies.push((got, body));
    }
    release.send(true).unwrap();
    for (got, body) in bodies {
        let tail = body.collect().await.unwrap().to_bytes();
        assert_eq!(
            got + tail.len(),
            first.len() + rest.len(),
            "both clients served whole"
        );
    }
    let one = Client::h1().get(&gw.url("http", "/one")).await.unwrap();
    let two = Client::h1().get(&gw.url("http", "/two")).await.unwrap();
    assert_eq!(
        (x_cache(&one.headers), x_cache(&two.headers)),
        ("HIT", "MISS"),
        "the fill that would have gone over the budget was not kept"
    );
}
