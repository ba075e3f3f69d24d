//! The RFC 9111 / 9211 / 9213 items of issue 13, end to end: the real binary,
//! the counting origin, hyper as the client.

use std::time::{Duration, SystemTime};

use edgeward_e2e::client::{Client, Fetched};
use edgeward_e2e::counting::{Origin, OriginServer, Spec, eventually};
use edgeward_e2e::{Gateway, empty};
use http::{Request, StatusCode};

fn config(up: &OriginServer, cache: &str) -> String {
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n\
         upstreams:\n  o:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: o\n    cache: {cache}\n",
        up.addr
    )
}

async fn start(cc: &str, cache: &str) -> (OriginServer, Origin, Gateway) {
    let (up, origin) = Origin::start(Spec::default()).await;
    origin.header("cache-control", cc);
    let gw = Gateway::start(&config(&up, cache)).await.unwrap();
    (up, origin, gw)
}

async fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Fetched {
    let mut req = Request::get(gw.url("http", path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Client::h1()
        .fetch(req.body(empty()).unwrap())
        .await
        .unwrap()
}

fn x_cache(r: &Fetched) -> &str {
    r.header("x-cache").unwrap_or("<none>")
}

fn status(r: &Fetched) -> &str {
    r.header("cache-status").unwrap_or("<none>")
}

async fn metric(gw: &Gateway, name: &str) -> u64 {
    let m = gw.metrics_text().await;
    // `name` may carry labels (`family{reason="x"}`): a sample matches when
    // it has them among its own (node and region come first).
    let (family, labels) = match name.split_once('{') {
        Some((f, rest)) => (f, rest.trim_end_matches('}')),
        None => (name, ""),
    };
    m.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.split([' ', '{']).next() == Some(family)
                && labels
                    .split(',')
                    .all(|want| want.is_empty() || l.contains(want))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{m}"))
}

#[tokio::test]
async fn an_age_list_counts_as_its_first_member() {
    // Age: 7200, 0 is two hours old: stale at once under max-age=60.
    let (up, origin, gw) = start("max-age=60", "{}").await;
    origin.header("age", "7200, 0");
    get(&gw, "/age", &[]).await;
    let r = get(&gw, "/age", &[]).await;
    assert_eq!(x_cache(&r), "MISS", "{}", status(&r));
    assert_eq!(up.hits(), 2);
    // A single value still works, and Age is what the entry says.
    origin.header("age", "10");
    get(&gw, "/age1", &[]).await;
    let r = get(&gw, "/age1", &[]).await;
    assert_eq!(x_cache(&r), "HIT");
    let age: u64 = r.header("age").unwrap().parse().unwrap();
    assert!((10..60).contains(&age), "{age}");
}

#[tokio::test]
async fn a_coded_body_we_did_not_ask_for_is_decoded_or_refused() {
    use std::io::Write;
    let plain = b"{\"doc\": \"plain text the origin coded anyway\"}".repeat(20);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = bytes::Bytes::from(gz.finish().unwrap());
    // The origin ignores the cache's Accept-Encoding: identity.
    let (up, origin, gw) = start("max-age=60", "{}").await;
    origin.header("content-encoding", "gzip");
    origin.header("etag", "\"g1\"");
    origin.set(|s| s.body = gz.clone());
    let first = get(&gw, "/coded", &[]).await;
    assert_eq!(
        origin.last_request().get("accept-encoding").unwrap(),
        "identity"
    );
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.header("content-encoding"),
        None,
        "decoded for identity"
    );
    assert_eq!(&first.body[..], &plain[..]);
    assert_eq!(
        first.header("etag"),
        Some("W/\"g1\""),
        "no longer the tagged bytes"
    );
    assert!(status(&first).contains("stored"), "{}", status(&first));
    // Stored as identity.
    let hit = get(&gw, "/coded", &[]).await;
    assert_eq!((x_cache(&hit), &hit.body[..]), ("HIT", &plain[..]));
    assert_eq!(hit.header("content-encoding"), None);
    assert_eq!(up.hits(), 1);
    // Not decodable: never stored; an identity client gets a 502, a client
    // that accepts the coding gets it as it came.
    origin.set(|s| s.body = bytes::Bytes::from_static(b"\x1f\x8bnot-really-gzip"));
    let r = get(&gw, "/bad", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.header("content-encoding").is_none());
    for _ in 0..2 {
        let r = get(&gw, "/bad", &[("accept-encoding", "gzip")]).await;
        assert_eq!((r.status, x_cache(&r)), (StatusCode::OK, "MISS"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(&r.body[..], b"\x1f\x8bnot-really-gzip");
        assert!(!status(&r).contains("stored"), "{}", status(&r));
    }
    // An unknown coding: the same.
    origin.header("content-encoding", "zstd");
    assert_eq!(get(&gw, "/z", &[]).await.status, StatusCode::BAD_GATEWAY);
    // Each storable response refused for its coding is counted: /bad three
    // times (whoever asked), /z once.
    let refused = "edgeward_cache_refused_total{reason=\"coded-body\"}";
    assert_eq!(metric(&gw, refused).await, 4);
    // Not storable (no-store) but coded: still decoded for an identity client.
    origin.header("content-encoding", "gzip");
    origin.header("cache-control", "no-store");
    origin.set(|s| s.body = gz.clone());
    let r = get(&gw, "/ns", &[]).await;
    assert_eq!(
        (r.header("content-encoding"), &r.body[..]),
        (None, &plain[..])
    );
    assert_eq!(up.hits(), 6);
}

#[tokio::test]
async fn concurrent_revalidations_of_one_entry_make_one_conditional_request() {
    let (up, origin, gw) = start("no-cache", "{}").await;
    origin.header("etag", "\"v1\"");
    let first = get(&gw, "/rv", &[]).await;
    assert_eq!(x_cache(&first), "MISS");
    origin.hold();
    let url = gw.url("http", "/rv");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Client::h1().get(&url).await.unwrap() })
        })
        .collect();
    eventually("the revalidation reaches the origin", || up.hits() == 2).await;
    for _ in 0..1000 {
        if metric(&gw, "edgeward_cache_coalesced_total").await == 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    origin.release();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!((r.status, x_cache(&r)), (StatusCode::OK, "REVALIDATED"));
        assert_eq!(r.body, first.body);
    }
    assert_eq!(origin.conditional(), 1, "one conditional request");
    assert_eq!(up.hits(), 2);
    assert_eq!(metric(&gw, "edgeward_cache_coalesced_total").await, 9);
}

#[tokio::test]
async fn expires_is_read_leniently_and_garbage_is_past() {
    let (up, origin, gw) = start("public", "{}").await;
    let later = SystemTime::now() + Duration::from_secs(3600);
    // RFC 5322 style: numeric zone, one-digit day where it applies.
    let imf = httpdate::fmt_http_date(later);
    let lenient = imf.replace(" GMT", " +0000");
    origin.header("expires", &lenient);
    get(&gw, "/x1", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/x1", &[]).await), "HIT", "{lenient}");
    origin.header("expires", "0");
    get(&gw, "/x2", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/x2", &[]).await), "MISS");
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn if_modified_since_is_compared_with_the_stored_date_without_last_modified() {
    let (up, _o, gw) = start("max-age=60", "{}").await;
    let a = get(&gw, "/ims", &[]).await;
    let date = a.header("date").unwrap().to_owned();
    let r = get(&gw, "/ims", &[("if-modified-since", &date)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let before = httpdate::fmt_http_date(
        httpdate::parse_http_date(&date).unwrap() - Duration::from_secs(60),
    );
    let r = get(&gw, "/ims", &[("if-modified-since", &before)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn vary_values_are_normalised() {
    let (up, origin, gw) = start("max-age=60", "{}").await;
    origin.header("vary", "Accept-Language");
    get(&gw, "/vn", &[("accept-language", "fr;q=0.5, en;q=0.9")]).await;
    let r = get(&gw, "/vn", &[("accept-language", "en ; q=0.9,fr;q=0.5")]).await;
    assert_eq!(x_cache(&r), "HIT");
    let r = get(&gw, "/vn", &[("accept-language", "de")]).await;
    assert_eq!(x_cache(&r), "MISS");
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn must_understand_overrides_no_store_for_understood_statuses() {
    let (up, origin, gw) = start("max-age=60, must-understand, no-store", "{}").await;
    get(&gw, "/mu", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/mu", &[]).await), "HIT");
    // A status this cache does not implement is not stored.
    origin.set(|s| s.status = 299);
    get(&gw, "/mu2", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/mu2", &[]).await), "MISS");
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn targeted_cache_control_takes_precedence() {
    let (up, origin, gw) = start("no-store", "{}").await;
    origin.header("cdn-cache-control", "max-age=60");
    origin.header("expires", "0");
    get(&gw, "/cdn", &[]).await;
    let r = get(&gw, "/cdn", &[]).await;
    assert_eq!(
        x_cache(&r),
        "HIT",
        "CDN-Cache-Control over Cache-Control and Expires"
    );
    assert_eq!(
        r.header("cache-control"),
        Some("no-store"),
        "sent on as it came"
    );
    assert_eq!(r.header("cdn-cache-control"), Some("max-age=60"));
    // Our own targeted field wins over CDN-Cache-Control and is never sent on.
    origin.header("edgeward-cache-control", "no-store");
    for _ in 0..2 {
        let r = get(&gw, "/ours", &[]).await;
        assert_eq!(x_cache(&r), "MISS");
        assert!(r.header("edgeward-cache-control").is_none());
    }
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn stale_is_served_within_the_bound_when_upstream_is_unreachable() {
    let (up, origin) = Origin::start(Spec::default()).await;
    origin.header("cache-control", "max-age=1");
    origin.header("age", "5");
    let gw = Gateway::start(&config(&up, "{stale-if-unreachable: 1h}"))
        .await
        .unwrap();
    let a = get(&gw, "/down", &[]).await;
    let stale_before = metric(
        &gw,
        "edgeward_cache_requests_total{node=\"edgeward\",region=\"local\",result=\"stale\"}",
    )
    .await;
    drop(up);
    let r = get(&gw, "/down", &[]).await;
    assert_eq!((r.status, x_cache(&r)), (StatusCode::OK, "STALE"));
    assert!(
        status(&r).contains("detail=upstream-unreachable"),
        "{}",
        status(&r)
    );
    assert_eq!(r.body, a.body);
    assert_eq!(
        metric(
            &gw,
            "edgeward_cache_requests_total{node=\"edgeward\",region=\"local\",result=\"stale\"}"
        )
        .await,
        stale_before + 1
    );
    // Without the option, a dead upstream is an error.
    let (up, origin) = Origin::start(Spec::default()).await;
    origin.header("cache-control", "max-age=1");
    origin.header("age", "5");
    let gw = Gateway::start(&config(&up, "{}")).await.unwrap();
    get(&gw, "/down", &[]).await;
    drop(up);
    let r = get(&gw, "/down", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    // The gateway's own error still says what the cache did (the entry,
    // without a validator or a stale window, went when it turned stale).
    assert_eq!(
        status(&r),
        "Edgeward; fwd=uri-miss; detail=connect-failed",
        "{:?}",
        r.headers
    );
    assert_eq!(x_cache(&r), "MISS");
    let r = get(&gw, "/never-stored", &[]).await;
    assert_eq!(status(&r), "Edgeward; fwd=uri-miss; detail=connect-failed");
    // Past the bound: 4 s stale against 2 s allowed.
    let (up, origin) = Origin::start(Spec::default()).await;
    origin.header("cache-control", "max-age=1");
    origin.header("age", "5");
    let gw = Gateway::start(&config(&up, "{stale-if-unreachable: 2s}"))
        .await
        .unwrap();
    get(&gw, "/down", &[]).await;
    drop(up);
    assert_eq!(get(&gw, "/down", &[]).await.status, StatusCode::BAD_GATEWAY);
    // Nor when the entry forbids stale answers.
    let (up, origin) = Origin::start(Spec::default()).await;
    origin.header("cache-control", "max-age=1, must-revalidate");
    origin.header("age", "5");
    let gw = Gateway::start(&config(&up, "{stale-if-unreachable: 1h}"))
        .await
        .unwrap();
    get(&gw, "/down", &[]).await;
    drop(up);
    assert_eq!(get(&gw, "/down", &[]).await.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn cache_status_is_on_every_response_of_a_cached_route() {
    let (up, origin, gw) = start("max-age=60", "{status-key: true}").await;
    let miss = get(&gw, "/cs", &[]).await;
    let s = status(&miss);
    assert!(
        s.starts_with("Edgeward; fwd=uri-miss; fwd-status=200; stored; ttl="),
        "{s}"
    );
    assert!(s.contains("key=\""), "{s}");
    let hit = get(&gw, "/cs", &[]).await;
    assert!(
        status(&hit).starts_with("Edgeward; hit; ttl="),
        "{}",
        status(&hit)
    );
    let ttl: i64 = status(&hit)
        .split("ttl=")
        .nth(1)
        .and_then(|t| t.split(';').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&ttl), "{ttl}");
    let post = Client::h1()
        .fetch(
            Request::post(gw.url("http", "/cs"))
                .body(edgeward_e2e::full("x"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(status(&post), "Edgeward; fwd=method; fwd-status=200");
    let ranged = get(&gw, "/other", &[("range", "bytes=0-1")]).await;
    assert!(
        status(&ranged).starts_with("Edgeward; fwd="),
        "{}",
        status(&ranged)
    );
    let oic = get(&gw, "/none", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(oic.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(status(&oic), "Edgeward; detail=only-if-cached");
    origin.header("cache-control", "no-store");
    origin.header("cache-status", "Upstream; hit");
    let ns = get(&gw, "/ns", &[]).await;
    assert_eq!(
        status(&ns),
        "Upstream; hit, Edgeward; fwd=uri-miss; fwd-status=200"
    );
    assert_eq!(x_cache(&ns), "MISS");
    assert!(up.hits() >= 3);

    // X-Cache can be turned off; Cache-Status stays.
    let (_up, _o, gw) = start("max-age=60", "{x-cache: false}").await;
    let r = get(&gw, "/nx", &[]).await;
    assert!(r.header("x-cache").is_none());
    assert!(status(&r).starts_with("Edgeward; fwd=uri-miss"));
}

#[tokio::test]
async fn set_cookie_responses_are_stored_only_where_the_route_opts_in() {
    // Default: not stored.
    let (up, origin, gw) = start("max-age=60", "{}").await;
    origin.header("set-cookie", "sid=secret");
    get(&gw, "/sc", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/sc", &[]).await), "MISS");
    assert_eq!(up.hits(), 2);
    // Opted in: stored without the cookie; the filling client still gets it.
    let (up, origin, gw) = start("max-age=60", "{store-set-cookie: true}").await;
    origin.header("set-cookie", "sid=secret");
    let first = get(&gw, "/sc", &[]).await;
    assert_eq!(first.header("set-cookie"), Some("sid=secret"));
    let second = get(&gw, "/sc", &[]).await;
    assert_eq!(x_cache(&second), "HIT");
    assert!(
        second.header("set-cookie").is_none(),
        "another client's cookie"
    );
    assert_eq!(second.body, first.body);
    assert_eq!(up.hits(), 1);
}

/// An HTTP/1.1 origin that sends `103 Early Hints`, then holds the final
/// response until `go` fires (so a client can only have seen the 103 while
/// the origin is still working on the answer).
async fn early_hints_origin() -> (std::net::SocketAddr, tokio::sync::mpsc::UnboundedSender<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (go, gate) = tokio::sync::mpsc::unbounded_channel::<()>();
    let gate = std::sync::Arc::new(tokio::sync::Mutex::new(gate));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = socket.accept().await {
            let gate = gate.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let hints = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n";
                if s.write_all(hints).await.is_err() {
                    return;
                }
                gate.lock().await.recv().await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 5\r\n\
                          connection: close\r\n\r\nfinal",
                    )
                    .await;
            });
        }
    });
    (addr, go)
}

#[tokio::test]
async fn early_hints_reach_an_http3_client_before_the_final_response() {
    let (origin, go) = early_hints_origin().await;
    let cert = edgeward_e2e::TestCert::new(&["localhost"]);
    let yaml = format!(
        "listeners:\n  - name: edge\n    address: 127.0.0.1:0\n    protocols: [h1, h2, h3]\n\
         \x20   tls:\n      certificates:\n        - {{cert: cert.pem, key: key.pem}}\n\
         admin:\n  address: 127.0.0.1:0\n\
         upstreams:\n  o:\n    endpoints: [\"{origin}\"]\n\
         routes:\n  - match: {{path-prefix: /cached}}\n    upstream: o\n    cache: {{}}\n\
         \x20 - upstream: o\n"
    );
    let gw = Gateway::start_with(
        &yaml,
        &[
            ("cert.pem", cert.cert_pem.as_bytes()),
            ("key.pem", cert.key_pem.as_bytes()),
        ],
    )
    .await
    .unwrap();
    let config =
        edgeward_e2e::h3client::client_config(edgeward_e2e::h3client::insecure_tls()).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let conn = endpoint
        .connect(gw.addr("edge/h3"), "localhost")
        .unwrap()
        .await
        .unwrap();
    let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    // A cached route (a miss fills the cache) and an uncached one.
    for path in ["/cached/page", "/plain/page"] {
        let req = Request::get(format!("https://localhost{path}"))
            .body(())
            .unwrap();
        let mut stream = send.send_request(req).await.unwrap();
        stream.finish().await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(30), stream.recv_response())
            .await
            .expect("the 103 arrives while the origin holds the answer")
            .unwrap();
        assert_eq!(first.status(), StatusCode::EARLY_HINTS, "{path}");
        assert_eq!(
            first.headers().get("link").unwrap(),
            "</style.css>; rel=preload"
        );
        go.send(()).unwrap();
        let last = tokio::time::timeout(Duration::from_secs(30), stream.recv_response())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(last.status(), StatusCode::OK, "{path}");
        let mut body = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await.unwrap() {
            use bytes::Buf;
            while chunk.has_remaining() {
                let n = chunk.chunk().len();
                body.extend_from_slice(chunk.chunk());
                chunk.advance(n);
            }
        }
        assert_eq!(body, b"final", "{path}");
    }
    // HTTP/1.1 and HTTP/2 clients get the final response unharmed (hyper's
    // server cannot send them the 103; see notes/cache.md).
    for alpn in [&b"http/1.1"[..], b"h2"] {
        go.send(()).unwrap();
        let mut c = edgeward_e2e::TlsClient::connect(gw.addr("edge"), "localhost", &cert, &[alpn])
            .await
            .unwrap();
        let r = c
            .fetch(
                Request::get("https://localhost/plain/tcp")
                    .header("host", "localhost")
                    .body(empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"final"[..]));
    }
    drop(endpoint);
}
