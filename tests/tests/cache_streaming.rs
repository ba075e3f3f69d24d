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

#[tokio::test]
async fn a_stored_response_streams_to_the_client_and_coalesced_clients_get_it_whole() {
    let first = Bytes::from(vec![b'a'; 64 * 1024]);
    let rest = Bytes::from(vec![b'b'; 192 * 1024]);
    let (up, release) =
        Upstream::gated_stream("big", vec![first.clone()], vec![rest.clone()]).await;
    let gw = Gateway::start(&config(up.addr, "")).await.unwrap();
    let url = gw.url("http", "/big");
    let resp = Client::h1()
        .send(Request::get(&url).body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(x_cache(resp.headers()), "MISS");
    let mut body = resp.into_body();
    // The origin holds everything after the first chunk: these bytes came
    // while the fill was still running.
    let mut got = 0;
    while got < first.len() {
        let frame = body.frame().await.expect("a frame").expect("no error");
        got += frame.data_ref().map_or(0, |d| d.len());
    }
    // 19 more clients join the fill in progress.
    let others: Vec<_> = (0..19)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Client::h1().get(&url).await.unwrap() })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    release.send(true).unwrap();
    let tail = body.collect().await.unwrap().to_bytes();
    assert_eq!(got + tail.len(), first.len() + rest.len());
    for t in others {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body.len(), first.len() + rest.len());
    }
    let r = Client::h1().get(&url).await.unwrap();
    assert_eq!(x_cache(&r.headers), "HIT");
    assert_eq!(&r.body[..first.len()], &first[..]);
    assert_eq!(&r.body[first.len()..], &rest[..]);
    assert_eq!(up.hits(), 1, "one fill served all 21 requests");
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
