//! Protocol conformance at the connection level: a TLS connection speaks the
//! protocol its ALPN chose and no other (RFC 7301, RFC 9113 §3.2–3.4), a
//! plaintext listener speaks only the protocols it lists, and HTTP/3 request
//! streams are stopped only with HTTP/3 codes (RFC 9114 §4.1.1, §8.1) and are
//! as cacheable and replayable as HTTP/1.1 and HTTP/2 requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edgeward_e2e::client::{Client, TlsClient, curl, raw_exchange};
use edgeward_e2e::counting::{Origin, Spec};
use edgeward_e2e::h3client::H3Client;
use edgeward_e2e::{Gateway, TestCert, Upstream};
use http::StatusCode;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bounds every exchange so a hung gateway fails the test instead of stalling CI.
const LIMIT: Duration = Duration::from_secs(60);

/// The client connection preface of HTTP/2 (RFC 9113 §3.4) followed by an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// HTTP/3's "no error" (RFC 9114 §8.1); QUIC's own 0 is not an HTTP/3 code.
const H3_NO_ERROR: u64 = 0x100;

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("bounded exchange")
}

/// A gateway whose listener `edge` serves `protocols` (with TLS when `cert` is
/// given) in front of `upstreams` (name, endpoints) and `routes`.
async fn start(
    protocols: &str,
    cert: Option<&TestCert>,
    upstreams: &[(&str, &[SocketAddr])],
    routes: &str,
) -> Gateway {
    let tls = if cert.is_some() {
        "    tls:\n      certificates:\n        - {cert: cert.pem, key: key.pem}\n"
    } else {
        ""
    };
    let mut ups = String::new();
    for (name, endpoints) in upstreams {
        let list: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
        ups.push_str(&format!(
            "  {name}:\n    endpoints: [{}]\n",
            list.join(", ")
        ));
    }
    let yaml = format!(
        "listeners:\n  - name: edge\n    address: 127.0.0.1:0\n    protocols: {protocols}\n\
         {tls}admin:\n  address: 127.0.0.1:0\nupstreams:\n{ups}routes:\n{routes}"
    );
    let files: Vec<(&str, &[u8])> = match cert {
        Some(c) => vec![
            ("cert.pem", c.cert_pem.as_bytes()),
            ("key.pem", c.key_pem.as_bytes()),
        ],
        None => Vec::new(),
    };
    Gateway::start_with(&yaml, &files).await.unwrap()
}

/// Completes a TLS handshake offering `alpn` (nothing when empty), writes `raw`,
/// and returns the protocol the server chose and every byte it sent until it
/// closed (or 5 s passed).
async fn tls_exchange(
    addr: SocketAddr,
    cert: &TestCert,
    alpn: &[&[u8]],
    raw: &[u8],
) -> (Option<Vec<u8>>, Vec<u8>) {
    let config = Arc::new(cert.client_config(alpn));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let chosen = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
    tls.write_all(raw).await.unwrap();
    tls.flush().await.unwrap();
    let mut buf = Vec::new();
    // A reset or a missing close_notify ends the read with an error; the bytes read so far count.
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut buf)).await;
    (chosen, buf)
}

/// Whether `bytes` open with an HTTP/2 SETTINGS frame on stream 0, the first
/// thing an HTTP/2 server sends (RFC 9113 §3.4).
fn starts_with_h2_settings(bytes: &[u8]) -> bool {
    bytes.len() >= 9 && bytes[3] == 0x04 && bytes[5..9] == [0, 0, 0, 0]
}

fn h1_get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn tls_http11_connection_refuses_the_h2_preface() {
    let up = Upstream::echo("a").await;
    let cert = TestCert::new(&["localhost"]);
    let gw = start(
        "[h1, h2]",
        Some(&cert),
        &[("a", &[up.addr])],
        "  - upstream: a\n",
    )
    .await;
    let (alpn, reply) = within(tls_exchange(
        gw.addr("edge"),
        &cert,
        &[b"http/1.1"],
        H2_PREFACE,
    ))
    .await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(
        !starts_with_h2_settings(&reply),
        "HTTP/2 served after ALPN chose http/1.1: {reply:?}"
    );
    let text = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || text.starts_with("HTTP/1.1 400"),
        "expected a 400 or a close, got {text:?}"
    );
    // The same connection type still serves HTTP/1.1.
    let (_, reply) = within(tls_exchange(
        gw.addr("edge"),
        &cert,
        &[b"http/1.1"],
        &h1_get("/x"),
    ))
    .await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn tls_h2_connection_refuses_an_http11_request() {
    let up = Upstream::echo("a").await;
    let cert = TestCert::new(&["localhost"]);
    let gw = start(
        "[h1, h2]",
        Some(&cert),
        &[("a", &[up.addr])],
        "  - upstream: a\n",
    )
    .await;
    let (alpn, reply) = within(tls_exchange(
        gw.addr("edge"),
        &cert,
        &[b"h2"],
        &h1_get("/x"),
    ))
    .await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let text = String::from_utf8_lossy(&reply);
    assert!(
        !text.contains("HTTP/1."),
        "HTTP/1.1 served after ALPN chose h2: {text:?}"
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn tls_without_alpn_speaks_http11_only_where_h1_is_served() {
    let up = Upstream::echo("a").await;
    let cert = TestCert::new(&["localhost"]);
    let both = start(
        "[h1, h2]",
        Some(&cert),
        &[("a", &[up.addr])],
        "  - upstream: a\n",
    )
    .await;
    let (alpn, reply) = within(tls_exchange(both.addr("edge"), &cert, &[], &h1_get("/x"))).await;
    assert_eq!(alpn, None);
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    // RFC 9113 §3.3: h2 over TLS is only ever negotiated, never assumed.
    let (_, reply) = within(tls_exchange(both.addr("edge"), &cert, &[], H2_PREFACE)).await;
    assert!(!starts_with_h2_settings(&reply), "{reply:?}");

    // With h1 off, a client that negotiated nothing has no protocol in common.
    let h2_only = start(
        "[h2]",
        Some(&cert),
        &[("a", &[up.addr])],
        "  - upstream: a\n",
    )
    .await;
    let (alpn, reply) = within(tls_exchange(
        h2_only.addr("edge"),
        &cert,
        &[],
        &h1_get("/x"),
    ))
    .await;
    assert_eq!(alpn, None);
    assert!(
        reply.is_empty(),
        "expected a close, got {:?}",
        String::from_utf8_lossy(&reply)
    );
    // A client that negotiated h2 is served.
    let mut c = TlsClient::connect(h2_only.addr("edge"), "localhost", &cert, &[b"h2"])
        .await
        .unwrap();
    assert_eq!(c.alpn.as_deref(), Some(&b"h2"[..]));
    let r = within(
        c.fetch(
            http::Request::get(format!(
                "https://localhost:{}/x",
                h2_only.addr("edge").port()
            ))
            .body(edgeward_e2e::empty())
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status, r.version),
        (StatusCode::OK, http::Version::HTTP_2)
    );
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn plaintext_h1_listener_refuses_h2c_prior_knowledge() {
    let up = Upstream::echo("a").await;
    let gw = start("[h1]", None, &[("a", &[up.addr])], "  - upstream: a\n").await;
    let url = gw.url("edge", "/x");

    let r = within(Client::h1().get(&url)).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);

    let h2c = within(Client::h2c().get(&url)).await;
    assert!(h2c.is_err(), "h2c served on an h1-only listener: {h2c:?}");

    let reply = within(raw_exchange(gw.addr("edge"), H2_PREFACE)).await;
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
        "expected a 400 or a close, got {reply:?}"
    );

    if let Some(out) = curl(&["-sS", "--max-time", "10", "--http2-prior-knowledge", &url]).await {
        assert!(
            !out.status.success(),
            "curl got an h2c answer: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(
        up.hits(),
        1,
        "only the HTTP/1.1 request reaches the upstream"
    );
}

#[tokio::test]
async fn plaintext_listener_with_both_serves_both() {
    let up = Upstream::echo("a").await;
    let gw = start("[h1, h2]", None, &[("a", &[up.addr])], "  - upstream: a\n").await;
    let url = gw.url("edge", "/x");
    let r = within(Client::h1().get(&url)).await.unwrap();
    assert_eq!(r.version, http::Version::HTTP_11);
    let r = within(Client::h2c().get(&url)).await.unwrap();
    assert_eq!(
        (r.status, r.version),
        (StatusCode::OK, http::Version::HTTP_2)
    );
}

/// Runs tests/h3/aioquic_streams.py; `None` when aioquic is missing outside CI.
async fn aioquic_streams(addr: SocketAddr, steps: &[&str]) -> Option<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/h3/aioquic_streams.py");
    let out = within(
        tokio::process::Command::new("python3")
            .arg(script)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .args(steps)
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
        println!("SKIP: {}", stderr.trim());
        return None;
    }
    assert!(
        out.status.success(),
        "aioquic client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    Some(serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}")))
}

const H3_LISTENER: &str = "[h1, h2, h3]";

#[tokio::test]
async fn h3_request_streams_are_stopped_only_with_h3_codes() {
    let up = Upstream::echo("a").await;
    let cert = TestCert::new(&["localhost"]);
    let gw = start(
        H3_LISTENER,
        Some(&cert),
        &[("a", &[up.addr])],
        "  - match: {path-prefix: /api}\n    upstream: a\n",
    )
    .await;
    // The last GET orders the report: the server sent every frame about the
    // earlier streams before it answered it.
    let Some(report) = aioquic_streams(
        gw.addr("edge/h3"),
        &["get:/api/1", "open-post:/nowhere", "get:/api/2"],
    )
    .await
    else {
        return;
    };
    let responses = report["responses"].as_array().unwrap();
    let status = |i: usize| responses[i]["status"].as_u64().unwrap();
    let stream = |i: usize| responses[i]["stream"].as_u64().unwrap();
    assert_eq!(
        (status(0), status(1), status(2)),
        (200, 404, 200),
        "{report}"
    );
    let stops: Vec<(u64, u64)> = report["stop_sending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stream"].as_u64().unwrap(), s["code"].as_u64().unwrap()))
        .collect();
    assert!(
        stops.iter().all(|(_, code)| *code >= H3_NO_ERROR),
        "STOP_SENDING with a code HTTP/3 does not define: {report}"
    );
    // A GET whose stream ended with its HEADERS leaves nothing to stop.
    assert!(
        !stops.iter().any(|(s, _)| *s == stream(0)),
        "a complete GET was stopped: {report}"
    );
    // The body the 404 did not need: RFC 9114 §4.1.1 asks for H3_NO_ERROR.
    assert_eq!(
        stops
            .iter()
            .filter(|(s, _)| *s == stream(1))
            .collect::<Vec<_>>(),
        [&(stream(1), H3_NO_ERROR)],
        "{report}"
    );
    assert!(
        report["reset_stream"].as_array().unwrap().is_empty(),
        "{report}"
    );
}

/// Runs tests/h3/aioquic_get.py for `path` expecting `x-cache: <want>`;
/// false when aioquic is missing outside CI.
async fn aioquic_get_x_cache(addr: SocketAddr, path: &str, want: &str) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/h3/aioquic_get.py");
    let out = within(
        tokio::process::Command::new("python3")
            .arg(script)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(path)
            .args(["--status", "200"])
            .arg("--header")
            .arg(format!("x-cache={want}"))
            .output(),
    )
    .await
    .expect("run python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) && stderr.contains("SKIP") {
        assert!(
            std::env::var_os("CI").is_none(),
            "aioquic is required when CI is set: {stderr}"
        );
        println!("SKIP: {}", stderr.trim());
        return false;
    }
    assert!(
        out.status.success(),
        "aioquic GET {path} (want x-cache {want})\nstdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    true
}

#[tokio::test]
async fn h3_gets_use_the_cache() {
    let (origin, script) = Origin::start(Spec::default()).await;
    script.header("cache-control", "max-age=60");
    let cert = TestCert::new(&["localhost"]);
    let gw = start(
        H3_LISTENER,
        Some(&cert),
        &[("o", &[origin.addr])],
        "  - upstream: o\n    cache: {}\n",
    )
    .await;
    let h3 = H3Client::connect_tls(
        gw.addr("edge/h3"),
        "localhost",
        cert.client_config(&[b"h3"]),
    )
    .await
    .unwrap();
    let a = within(h3.get("/c")).await.unwrap();
    assert_eq!(
        (a.status, a.header("x-cache")),
        (StatusCode::OK, Some("MISS"))
    );
    let b = within(h3.get("/c")).await.unwrap();
    assert_eq!(b.header("x-cache"), Some("HIT"));
    assert_eq!(b.body, a.body);
    assert_eq!(origin.hits(), 1);

    // A third-party client, one connection per request.
    if aioquic_get_x_cache(gw.addr("edge/h3"), "/d", "MISS").await {
        assert!(aioquic_get_x_cache(gw.addr("edge/h3"), "/d", "HIT").await);
        assert_eq!(origin.hits(), 2);
    }
}

#[tokio::test]
async fn h3_gets_are_replayed_past_a_refusing_endpoint() {
    let up = Upstream::echo("a").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cert = TestCert::new(&["localhost"]);
    let gw = start(
        H3_LISTENER,
        Some(&cert),
        &[("mixed", &[closed, up.addr])],
        "  - upstream: mixed\n",
    )
    .await;
    let h3 = H3Client::connect_tls(
        gw.addr("edge/h3"),
        "localhost",
        cert.client_config(&[b"h3"]),
    )
    .await
    .unwrap();
    for i in 0..4 {
        let r = within(h3.get(&format!("/m/{i}"))).await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "GET /m/{i}: {}", r.text());
    }
    assert_eq!(up.hits(), 4);
}
