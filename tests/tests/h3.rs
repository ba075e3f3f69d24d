//! HTTP/3 end to end: the real binary serving QUIC on its TLS listener's
//! address, real upstreams, a Rust client (quinn + h3) and aioquic.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use edgeward_e2e::client::{Client, TlsClient};
use edgeward_e2e::h3client::H3Client;
use edgeward_e2e::{Body, Gateway, TestCert, Upstream, empty, full};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;

/// Bounds every exchange so a hung gateway fails the test instead of stalling CI.
const LIMIT: Duration = Duration::from_secs(60);

struct Node {
    gw: Gateway,
    cert: TestCert,
}

impl Node {
    /// A TLS listener named `edge` serving h1, h2 and h3, plus the given upstreams,
    /// routes and extra listener lines (e.g. a `quic:` block).
    async fn start(upstreams: &[(&str, SocketAddr, &str)], routes: &str, extra: &str) -> Self {
        let cert = TestCert::new(&["localhost"]);
        let mut ups = String::new();
        for (name, addr, protocol) in upstreams {
            ups.push_str(&format!(
                "  {name}:\n    endpoints: [\"{addr}\"]\n    protocol: {protocol}\n"
            ));
        }
        let yaml = format!(
            "listeners:\n  - name: edge\n    address: 127.0.0.1:0\n    protocols: [h1, h2, h3]\n\
             \x20   tls:\n      certificates:\n        - {{cert: cert.pem, key: key.pem}}\n{extra}\
             admin:\n  address: 127.0.0.1:0\n\
             shutdown:\n  drain-timeout: 20s\n\
             upstreams:\n{ups}routes:\n{routes}"
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
        Self { gw, cert }
    }

    fn h3_addr(&self) -> SocketAddr {
        self.gw.addr("edge/h3")
    }

    /// An HTTP/3 client that trusts only the listener's certificate: the QUIC
    /// side must present the same certificate as the TCP side.
    async fn h3(&self) -> H3Client {
        H3Client::connect_tls(
            self.h3_addr(),
            "localhost",
            self.cert.client_config(&[b"h3"]),
        )
        .await
        .unwrap()
    }
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("bounded exchange")
}

#[tokio::test]
async fn h3_and_tcp_share_the_address_and_route_alike() {
    let products = Upstream::echo("products").await;
    let orders = Upstream::echo("orders").await;
    let node = Node::start(
        &[
            ("products", products.addr, "http1"),
            ("orders", orders.addr, "http1"),
        ],
        "  - match: {path-prefix: /products}\n    upstream: products\n\
         \x20 - match: {path-prefix: /orders}\n    upstream: orders\n",
        "",
    )
    .await;
    assert_eq!(
        node.h3_addr(),
        node.gw.addr("edge"),
        "UDP and TCP share a port"
    );
    let h3 = node.h3().await;

    let r = within(h3.get("/products/7?x=1")).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-upstream"), Some("products"));
    let doc = r.json().unwrap();
    assert_eq!(doc["path"], "/products/7");
    assert_eq!(doc["query"], "x=1");
    // The upstream hears HTTP/1.1 with the hop recorded as HTTP/3.
    assert_eq!(doc["version"], "HTTP/1.1");
    assert!(
        doc["headers"]["via"].as_str().unwrap().starts_with("3 "),
        "{doc}"
    );
    assert_eq!(doc["headers"]["x-forwarded-proto"], "https");
    assert_eq!(
        doc["headers"]["host"],
        format!("localhost:{}", node.h3_addr().port())
    );
    // HTTP/3 responses need no Alt-Svc: the client is already there.
    assert_eq!(r.header("alt-svc"), None);

    let r = within(h3.get("/orders/1")).await.unwrap();
    assert_eq!(r.header("x-upstream"), Some("orders"));
    let r = within(h3.get("/nothing-here")).await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(products.hits(), 1);
    assert_eq!(orders.hits(), 1);

    let metrics = Client::h1()
        .get(&format!("http://{}/metrics", node.gw.admin.unwrap()))
        .await
        .unwrap()
        .text();
    let h3_line = metrics
        .lines()
        .find(|l| {
            l.starts_with("edgeward_requests_by_protocol_total") && l.contains("protocol=\"h3\"")
        })
        .unwrap_or_else(|| panic!("no h3 protocol counter in\n{metrics}"));
    assert!(h3_line.ends_with(" 3"), "{h3_line}");
}

/// Echoes the request body back as it arrives (hyper streams `Incoming` into the
/// response), so bytes flow through the gateway in both directions at once.
async fn echo_body_upstream() -> Upstream {
    Upstream::start(|req: Request<Incoming>| async move {
        let body: Body = req.into_body().map_err(Into::into).boxed_unsync();
        Response::new(body)
    })
    .await
}

fn pattern(i: usize) -> Bytes {
    Bytes::from(
        (0..64 * 1024)
            .map(|j| ((i * 31 + j * 7) % 251) as u8)
            .collect::<Vec<u8>>(),
    )
}

#[tokio::test]
async fn a_20_mib_post_streams_through_both_ways() {
    let up = echo_body_upstream().await;
    let node = Node::start(&[("echo", up.addr, "http1")], "  - upstream: echo\n", "").await;
    let h3 = node.h3().await;
    const CHUNKS: usize = 320; // 320 × 64 KiB = 20 MiB
    let req = Request::post(h3.url("/upload"))
        .header("content-type", "application/octet-stream")
        .body(())
        .unwrap();
    let r = within(h3.send(req, (0..CHUNKS).map(pattern), None))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), CHUNKS * 64 * 1024);
    for (i, chunk) in r.body.chunks(64 * 1024).enumerate() {
        assert!(chunk == pattern(i).as_ref(), "chunk {i} differs");
    }
}

#[tokio::test]
async fn trailers_pass_both_ways() {
    // An h2c upstream, because HTTP/2 carries trailers whatever the framing.
    let up = Upstream::start(|req: Request<Incoming>| async move {
        let collected = req.into_body().collect().await.unwrap();
        let got = collected
            .trailers()
            .and_then(|t| t.get("x-checksum"))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_else(|| "none".into());
        let bytes = collected.to_bytes().len();
        let mut trailers = HeaderMap::new();
        trailers.insert("x-upstream-saw", HeaderValue::from_str(&got).unwrap());
        trailers.insert("x-bytes", HeaderValue::from(bytes));
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"body then trailers"))),
            Ok(Frame::trailers(trailers)),
        ];
        let body: Body = StreamBody::new(futures_util::stream::iter(frames))
            .map_err(|never| match never {})
            .boxed_unsync();
        Response::new(body)
    })
    .await;
    let node = Node::start(&[("t", up.addr, "h2c")], "  - upstream: t\n", "").await;
    let h3 = node.h3().await;
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc123"));
    let req = Request::post(h3.url("/t")).body(()).unwrap();
    let r = within(h3.send(req, [Bytes::from_static(b"hello")], Some(trailers)))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "body then trailers");
    let t = r.trailers.expect("response trailers");
    assert_eq!(t.get("x-upstream-saw").unwrap(), "abc123");
    assert_eq!(t.get("x-bytes").unwrap(), "5");
}

#[tokio::test]
async fn many_concurrent_streams_on_one_connection() {
    let up = Upstream::echo("a").await;
    // Fewer streams allowed than requests sent: the client queues on QUIC flow control.
    let node = Node::start(
        &[("a", up.addr, "http1")],
        "  - upstream: a\n",
        "    quic:\n      max-concurrent-streams: 50\n",
    )
    .await;
    let h3 = node.h3().await;
    let requests = (0..300).map(|i| {
        let h3 = h3.clone();
        async move { h3.get(&format!("/n/{i}")).await }
    });
    let answers = within(futures_util::future::join_all(requests)).await;
    for (i, a) in answers.into_iter().enumerate() {
        let a = a.unwrap();
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.json().unwrap()["path"], format!("/n/{i}"));
    }
    assert_eq!(up.hits(), 300);
}

#[tokio::test]
async fn upstream_failures_become_502_and_504() {
    // A port that was just free: connecting is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_release, hold) = tokio::sync::watch::channel(false);
    let slow = Upstream::start(move |_req| {
        let mut hold = hold.clone();
        async move {
            let _ = hold.wait_for(|go| *go).await;
            Response::new(empty())
        }
    })
    .await;
    let node = Node::start(
        &[("gone", closed, "http1"), ("slow", slow.addr, "http1")],
        "  - match: {path-prefix: /gone}\n    upstream: gone\n\
         \x20 - match: {path-prefix: /slow}\n    upstream: slow\n    timeout: 300ms\n",
        "",
    )
    .await;
    let h3 = node.h3().await;
    let r = within(h3.get("/gone")).await.unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let r = within(h3.get("/slow")).await.unwrap();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn limits_refuse_large_bodies_and_header_sections() {
    // Reads the whole body before answering, as an upload endpoint does.
    let up = Upstream::start(|req: Request<Incoming>| async move {
        let path = req.uri().path().to_owned();
        match req.into_body().collect().await {
            Ok(b) => Response::new(full(format!("{path} {}", b.to_bytes().len()))),
            Err(e) => {
                let mut r = Response::new(full(e.to_string()));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                r
            }
        }
    })
    .await;
    let node = Node::start(
        &[("a", up.addr, "http1")],
        "  - upstream: a\n",
        "    quic:\n      max-request-body: 1KiB\n      max-field-section-size: 2KiB\n",
    )
    .await;
    let h3 = node.h3().await;

    let req = Request::post(h3.url("/big"))
        .header("content-length", "4096")
        .body(())
        .unwrap();
    let r = within(h3.send(req, [Bytes::from(vec![0u8; 4096])], None))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        up.hits(),
        0,
        "a body declared too large never reaches the upstream"
    );

    // Without a content-length the limit applies as the body streams in.
    let req = Request::post(h3.url("/streamed")).body(()).unwrap();
    let chunks = (0..8).map(|_| Bytes::from(vec![1u8; 512]));
    let r = within(h3.send(req, chunks, None)).await.unwrap();
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Within the limit it passes.
    let req = Request::post(h3.url("/small")).body(()).unwrap();
    let r = within(h3.send(req, [Bytes::from(vec![0u8; 512])], None))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "/small 512");
    let forwarded = up.hits();

    // A header section over 2 KiB: refused by the client itself once it has read
    // the gateway's SETTINGS (RFC 9114 §4.2.2), or answered 431 if it had not yet.
    let req = Request::get(h3.url("/h"))
        .header("x-big", "v".repeat(4096))
        .body(())
        .unwrap();
    match within(h3.send(req, Vec::<Bytes>::new(), None)).await {
        Ok(r) => assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(e) => assert!(
            format!("{e:#}").contains("2048"),
            "refused for another reason: {e:#}"
        ),
    }
    assert_eq!(up.hits(), forwarded, "an oversized head is never forwarded");
}

#[tokio::test]
async fn retry_validates_the_address_and_still_serves() {
    let up = Upstream::echo("a").await;
    let node = Node::start(
        &[("a", up.addr, "http1")],
        "  - upstream: a\n",
        "    quic:\n      retry: true\n",
    )
    .await;
    let h3 = node.h3().await;
    let r = within(h3.get("/after-retry")).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let (release, hold) = tokio::sync::watch::channel(false);
    let up = Upstream::start(move |_req| {
        let mut hold = hold.clone();
        async move {
            let _ = hold.wait_for(|go| *go).await;
            Response::new(full("finished after the signal"))
        }
    })
    .await;
    let mut node = Node::start(&[("a", up.addr, "http1")], "  - upstream: a\n", "").await;
    let h3 = node.h3().await;
    let in_flight = tokio::spawn({
        let h3 = h3.clone();
        async move { h3.get("/slow").await }
    });
    // Wait (bounded) until the request is at the upstream, then stop the gateway.
    within(async {
        while up.hits() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    node.gw.signal("TERM");
    // The gateway drains rather than exiting while the request is held.
    let early_exit = tokio::time::timeout(Duration::from_millis(300), node.gw.wait(LIMIT)).await;
    assert!(
        early_exit.is_err(),
        "gateway exited with a request in flight"
    );
    release.send(true).unwrap();

    let r = within(in_flight).await.unwrap().unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "finished after the signal");
    // GOAWAY then close: the connection ends cleanly and the process exits 0.
    let reason = within(h3.closed()).await;
    assert!(!reason.is_empty());
    assert_eq!(node.gw.wait(LIMIT).await.unwrap(), Some(0));
}

#[tokio::test]
async fn h1_and_h2_responses_advertise_h3() {
    let up = Upstream::echo("a").await;
    let node = Node::start(&[("a", up.addr, "http1")], "  - upstream: a\n", "").await;
    let port = node.h3_addr().port();
    let expected = format!("h3=\":{port}\"; ma=86400");
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let mut c = TlsClient::connect(node.gw.addr("edge"), "localhost", &node.cert, &[alpn])
            .await
            .unwrap();
        assert_eq!(c.alpn.as_deref(), Some(alpn));
        let r = within(
            // HTTP/1.1 needs Host even with an absolute target (RFC 9112 §3.2).
            c.fetch(
                Request::get(format!("https://localhost:{port}/x"))
                    .header("host", format!("localhost:{port}"))
                    .body(empty())
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.header("alt-svc"),
            Some(expected.as_str()),
            "over {alpn:?}"
        );
    }
}

#[tokio::test]
async fn tls_listener_without_h3_advertises_nothing() {
    let up = Upstream::echo("a").await;
    let cert = TestCert::new(&["localhost"]);
    let yaml = format!(
        "listeners:\n  - name: edge\n    address: 127.0.0.1:0\n    tls:\n      certificates:\n\
         \x20       - {{cert: cert.pem, key: key.pem}}\n\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n",
        up.addr
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
    assert!(!gw.addrs.contains_key("edge/h3"));
    let mut c = TlsClient::connect(gw.addr("edge"), "localhost", &cert, &[b"h2"])
        .await
        .unwrap();
    let r = within(
        c.fetch(
            Request::get("https://localhost/x")
                .header("host", "localhost")
                .body(empty())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("alt-svc"), None);
}

/// A third-party HTTP/3 implementation (aioquic, Python) against the gateway.
#[tokio::test]
async fn aioquic_fetches_through_the_gateway() {
    let up = Upstream::echo("products").await;
    let node = Node::start(&[("p", up.addr, "http1")], "  - upstream: p\n", "").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/h3/aioquic_get.py");
    let addr = node.h3_addr();
    let out = within(
        tokio::process::Command::new("python3")
            .arg(script)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg("/api/items/9?q=1")
            .args(["--status", "200"])
            .args(["--header", "x-upstream=products"])
            .args(["--header", "content-type=application/json"])
            .args(["--body-contains", "\"path\":\"/api/items/9\""])
            .args([
                "--body-contains",
                "\"user-agent\":\"aioquic-edgeward-test\"",
            ])
            .output(),
    )
    .await
    .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) && stderr.contains("SKIP") {
        assert!(
            std::env::var_os("CI").is_none(),
            "aioquic is required when CI is set: {stderr}"
        );
        println!(
            "SKIP aioquic_fetches_through_the_gateway: {}",
            stderr.trim()
        );
        return;
    }
    assert!(
        out.status.success(),
        "aioquic client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(up.hits(), 1);
}

#[test]
fn h3_config_errors_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "listeners:\n  - address: 127.0.0.1:0\n    protocols: [h1, h3]\n",
    )
    .unwrap();
    let (code, text) = edgeward_e2e::gateway::check(&file);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("bad.yaml:3:")
            && text.contains("listeners[0].protocols[1]: h3 runs over QUIC"),
        "{text}"
    );
}
