//! Compression end to end: negotiation, byte-identical round trips for br and
//! gzip, the skip rules, streaming flushes, and compress-once for cached responses.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use edgeward_e2e::client::{Client, Fetched};
use edgeward_e2e::counting::{Origin, OriginServer, Spec};
use edgeward_e2e::{Gateway, Upstream, empty};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

fn config(addr: std::net::SocketAddr, route_extra: &str) -> String {
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n\
         compression: {{min-size: 1KiB}}\n\
         upstreams:\n  o:\n    endpoints: [\"{addr}\"]\nroutes:\n  - upstream: o\n{route_extra}"
    )
}

/// A JSON document of about 60 KiB that compresses well but not trivially.
fn document() -> Bytes {
    let items: Vec<_> = (0..800)
        .map(|i| serde_json::json!({"id": i, "name": format!("item {}", i * 7919 % 1000), "price": i * 13 % 997}))
        .collect();
    Bytes::from(serde_json::to_vec(&items).unwrap())
}

async fn origin(body: Bytes, headers: &[(&str, &str)]) -> (OriginServer, Origin) {
    let (up, o) = Origin::start(Spec {
        body,
        ..Spec::default()
    })
    .await;
    for (k, v) in headers {
        o.header(k, v);
    }
    (up, o)
}

async fn get(gw: &Gateway, path: &str, ae: Option<&str>) -> Fetched {
    let mut req = Request::get(gw.url("http", path));
    if let Some(ae) = ae {
        req = req.header("accept-encoding", ae);
    }
    Client::h1()
        .fetch(req.body(empty()).unwrap())
        .await
        .unwrap()
}

fn decode(r: &Fetched) -> Vec<u8> {
    let mut out = Vec::new();
    match r.header("content-encoding") {
        Some("br") => {
            brotli::Decompressor::new(&r.body[..], 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(&r.body[..])
                .read_to_end(&mut out)
                .unwrap();
        }
        None => out.extend_from_slice(&r.body),
        Some(other) => panic!("unexpected coding {other}"),
    };
    out
}

#[tokio::test]
async fn br_and_gzip_round_trip_byte_identical() {
    let doc = document();
    let (up, _o) = origin(doc.clone(), &[("etag", "\"d1\"")]).await;
    let gw = Gateway::start(&config(up.addr, "")).await.unwrap();
    for (ae, coding) in [("br", "br"), ("gzip", "gzip")] {
        let r = get(&gw, "/doc", Some(ae)).await;
        assert_eq!(r.header("content-encoding"), Some(coding));
        assert!(
            r.body.len() < doc.len() / 3,
            "{coding}: {} bytes",
            r.body.len()
        );
        assert_eq!(decode(&r), doc, "{coding}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert_eq!(
            r.header("etag"),
            Some("W/\"d1\""),
            "a transformed body has a weak tag"
        );
        assert!(
            r.header("content-length").is_none()
                || r.header("content-length") == Some(r.body.len().to_string().as_str())
        );
    }
    let r = get(&gw, "/doc", None).await;
    assert_eq!((r.header("content-encoding"), &r.body), (None, &doc));
    assert_eq!(r.header("etag"), Some("\"d1\""));
}

#[tokio::test]
async fn negotiation_table() {
    let doc = document();
    let (up, _o) = origin(doc.clone(), &[]).await;
    let gw = Gateway::start(&config(up.addr, "")).await.unwrap();
    for (ae, want) in [
        (Some("gzip, deflate, br"), Some("br")),
        (Some("br;q=0.5, gzip;q=0.9"), Some("gzip")),
        (Some("gzip;q=0, br;q=0"), None),
        (Some("identity;q=0, gzip;q=0.5"), Some("gzip")),
        (Some("*"), Some("br")),
        (Some("*;q=0.3, br;q=0"), Some("gzip")),
        (Some("identity"), None),
        (Some("deflate"), None),
        (None, None),
    ] {
        let r = get(&gw, "/n", ae).await;
        assert_eq!(
            r.header("content-encoding"),
            want,
            "Accept-Encoding: {ae:?}"
        );
        assert_eq!(decode(&r), doc, "Accept-Encoding: {ae:?}");
    }
}

#[tokio::test]
async fn responses_that_must_not_be_compressed_are_left_alone() {
    let big = document();
    type Case<'a> = (&'a str, Bytes, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        ("small", Bytes::from_static(b"{\"tiny\":true}"), vec![]),
        (
            "wrong type",
            big.clone(),
            vec![("content-type", "image/png")],
        ),
        (
            "no-transform",
            big.clone(),
            vec![("cache-control", "no-transform")],
        ),
        (
            "already encoded",
            big.clone(),
            vec![("content-encoding", "gzip")],
        ),
    ];
    for (what, body, headers) in cases {
        let (up, _o) = origin(body.clone(), &headers).await;
        let gw = Gateway::start(&config(up.addr, "")).await.unwrap();
        let r = get(&gw, "/x", Some("br, gzip")).await;
        let expected = headers
            .iter()
            .find(|(k, _)| *k == "content-encoding")
            .map(|(_, v)| *v);
        assert_eq!(r.header("content-encoding"), expected, "{what}");
        assert_eq!(r.body, body, "{what}: body untouched");
    }
    // A range response (206) passes through untouched.
    let (up, o) = origin(
        big.slice(0..2000),
        &[("content-range", "bytes 0-1999/60000")],
    )
    .await;
    o.set(|s| s.status = 206);
    let gw = Gateway::start(&config(up.addr, "")).await.unwrap();
    let r = get(&gw, "/r", Some("br")).await;
    assert_eq!(
        (r.status, r.header("content-encoding")),
        (StatusCode::PARTIAL_CONTENT, None)
    );
    // A route can turn compression off.
    let (up, _o) = origin(big.clone(), &[]).await;
    let gw = Gateway::start(&config(up.addr, "    compression: {enabled: false}\n"))
        .await
        .unwrap();
    assert_eq!(
        get(&gw, "/off", Some("br"))
            .await
            .header("content-encoding"),
        None
    );
}

#[tokio::test]
async fn first_streamed_bytes_arrive_before_the_upstream_finishes() {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(Some(rx)));
    let up = Upstream::start(move |_req| {
        let rx = rx.clone();
        async move {
            let rx = rx.lock().await.take().expect("one request");
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| {
                    (
                        Ok::<_, edgeward_e2e::BoxError>(http_body::Frame::data(b)),
                        rx,
                    )
                })
            });
            let mut resp = Response::new(http_body_util::BodyExt::boxed_unsync(
                http_body_util::StreamBody::new(stream),
            ));
            resp.headers_mut()
                .insert("content-type", http::HeaderValue::from_static("text/plain"));
            resp
        }
    })
    .await;
    let gw = Gateway::start(&config(up.addr, "")).await.unwrap();
    let req = Request::get(gw.url("http", "/stream"))
        .header("accept-encoding", "br")
        .body(empty())
        .unwrap();
    let first = Bytes::from("first line of a long report\n".repeat(100));
    tx.send(first.clone()).await.unwrap();
    let resp = Client::h1().send(req).await.unwrap();
    assert_eq!(resp.headers()["content-encoding"], "br");
    let mut body = resp.into_body();
    // The upstream has sent one chunk and is still open: the encoder must
    // have flushed it, so a frame arrives now (bounded wait, not a timing claim).
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("a compressed frame before the upstream finished")
        .unwrap()
        .unwrap();
    let mut got = frame.into_data().unwrap().to_vec();
    let rest = Bytes::from("second part\n".repeat(200));
    tx.send(rest.clone()).await.unwrap();
    drop(tx);
    got.extend_from_slice(&body.collect().await.unwrap().to_bytes());
    let mut plain = Vec::new();
    brotli::Decompressor::new(&got[..], 4096)
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, [first, rest].concat());
}

#[tokio::test]
async fn cached_responses_are_compressed_once() {
    let doc = document();
    let (up, _o) = origin(doc.clone(), &[("cache-control", "max-age=60")]).await;
    let gw = Gateway::start(&config(up.addr, "    cache: {}\n"))
        .await
        .unwrap();
    let i = get(&gw, "/once", None).await;
    assert_eq!(i.header("x-cache"), Some("MISS"));
    // Twenty concurrent first requests for br: one encoding, shared by all.
    let url = gw.url("http", "/once");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let req = Request::get(url)
                    .header("accept-encoding", "br")
                    .body(empty())
                    .unwrap();
                Client::h1().fetch(req).await.unwrap()
            })
        })
        .collect();
    let mut brs = Vec::new();
    for t in tasks {
        brs.push(t.await.unwrap());
    }
    assert!(brs.iter().all(|r| r.header("x-cache") == Some("HIT")));
    assert!(brs.iter().all(|r| r.body == brs[0].body));
    let b = get(&gw, "/once", Some("br")).await;
    assert_eq!(
        b.body, brs[0].body,
        "the stored br variant, not a new encoding"
    );
    let g = get(&gw, "/once", Some("gzip")).await;
    assert_eq!(
        (decode(&b), decode(&g), i.body.to_vec()),
        (doc.to_vec(), doc.to_vec(), doc.to_vec())
    );
    assert_eq!(g.header("content-encoding"), Some("gzip"));
    assert_eq!(up.hits(), 1);
    let url = format!("http://{}/metrics", gw.admin.unwrap());
    let m = Client::h1().get(&url).await.unwrap().text();
    let variants = m
        .lines()
        .find(|l| l.starts_with("edgeward_cache_compressed_variants_total{"))
        .unwrap();
    assert!(
        variants.ends_with(" 2"),
        "one br and one gzip variant: {variants}"
    );
}

#[tokio::test]
async fn curl_decodes_what_it_negotiates() {
    let doc = document();
    let (up, _o) = origin(doc.clone(), &[]).await;
    let gw = Gateway::start(&config(up.addr, "")).await.unwrap();
    let url = gw.url("http", "/curl");
    let Some(out) = edgeward_e2e::client::curl(&["-s", "--compressed", "-D", "-", &url]).await
    else {
        eprintln!("curl not installed; skipped");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.to_ascii_lowercase().contains("content-encoding: "),
        "{text}"
    );
    assert!(
        out.stdout.ends_with(&doc),
        "curl's decoded body is the document"
    );
}
