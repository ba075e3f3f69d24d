//! Answers without an upstream (the two common NGINX `return` uses):
//! `https-redirect:` on a plaintext listener or on a route, and a route's
//! fixed `respond:`. Raw HTTP/1.1 on the wire, curl-free.

use edgeward_e2e::client::raw_exchange;
use edgeward_e2e::{Gateway, TestCert, TlsClient, Upstream, empty};
use http::Request;

fn head(raw: &str) -> (u16, String) {
    let status = raw
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {raw}"));
    (status, raw.to_ascii_lowercase())
}

fn get(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn a_redirecting_listener_sends_every_request_to_https() {
    let gw = Gateway::start(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         \x20   https-redirect: {port: 8443, status: 301}\n\
         routes:\n  - match: {host: only.test}\n    respond: {status: 204}\n",
    )
    .await
    .unwrap();
    let addr = gw.addr("http");
    // Matched route or not, path and query kept.
    for host in ["shop.test", "only.test"] {
        let (status, raw) = head(&raw_exchange(addr, &get("/cart?item=7&q=%20", host)).await);
        assert_eq!(status, 301, "{raw}");
        assert!(
            raw.contains(&format!(
                "\r\nlocation: https://{host}:8443/cart?item=7&q=%20\r\n"
            )),
            "{raw}"
        );
    }
    // A host that is no authority is not echoed into a Location.
    let (status, raw) = head(&raw_exchange(addr, &get("/", "a b@evil")).await);
    assert_eq!(status, 400, "{raw}");
}

#[tokio::test]
async fn a_route_redirects_plaintext_and_serves_https() {
    let up = Upstream::echo("a").await;
    let cert = TestCert::new(&["shop.test"]);
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         \x20 - name: https\n    address: 127.0.0.1:0\n\
         \x20   tls:\n      certificates: [{{cert: c.pem, key: c.key}}]\n\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\n\
         routes:\n  - name: login\n    match: {{path-prefix: /login}}\n    upstream: a\n\
         \x20   https-redirect: true\n\
         \x20 - upstream: a\n",
        up.addr
    );
    let gw = Gateway::start_with(
        &yaml,
        &[
            ("c.pem", cert.cert_pem.as_bytes()),
            ("c.key", cert.key_pem.as_bytes()),
        ],
    )
    .await
    .unwrap();
    let (status, raw) =
        head(&raw_exchange(gw.addr("http"), &get("/login?next=/", "shop.test")).await);
    assert_eq!(status, 308, "{raw}");
    assert!(
        raw.contains("\r\nlocation: https://shop.test/login?next=/\r\n"),
        "{raw}"
    );
    // Other routes on plaintext are proxied.
    let (status, _) = head(&raw_exchange(gw.addr("http"), &get("/other", "shop.test")).await);
    assert_eq!(status, 200);
    let mut c = TlsClient::connect(gw.addr("https"), "shop.test", &cert, &[b"h2"])
        .await
        .unwrap();
    let r = c
        .fetch(
            Request::get("https://shop.test/login")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "HTTPS reaches the upstream");
}

#[tokio::test]
async fn a_route_answers_a_fixed_status_and_body() {
    // No upstream at all.
    let gw = Gateway::start(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         admin:\n  address: 127.0.0.1:0\n\
         routes:\n\
         \x20 - match: {path: /healthz}\n    respond: {status: 200, body: \"ok\\n\"}\n\
         \x20 - match: {path-prefix: /old}\n    respond: {status: 301, location: \"https://example.test/new\"}\n\
         \x20 - respond: {status: 404, body: \"{\\\"error\\\":\\\"none\\\"}\", content-type: application/json}\n",
    )
    .await
    .unwrap();
    let addr = gw.addr("http");
    let raw = raw_exchange(addr, &get("/healthz", "x")).await;
    let (status, lower) = head(&raw);
    assert_eq!(status, 200, "{raw}");
    assert!(
        lower.contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"),
        "{raw}"
    );
    assert!(raw.ends_with("\r\n\r\nok\n"), "{raw}");
    let (status, lower) = head(&raw_exchange(addr, &get("/old/page", "x")).await);
    assert_eq!(status, 301);
    assert!(
        lower.contains("\r\nlocation: https://example.test/new\r\n"),
        "{lower}"
    );
    let raw = raw_exchange(addr, &get("/nothing", "x")).await;
    assert_eq!(head(&raw).0, 404);
    assert!(raw.ends_with("{\"error\":\"none\"}"), "{raw}");
    assert!(
        head(&raw).1.contains("content-type: application/json"),
        "{raw}"
    );
    let m = gw.metrics().await;
    let counted = |route: &str, class: &str| {
        m.value(
            "edgeward_requests_total",
            &[("route", route), ("class", class)],
        )
    };
    assert_eq!(counted("route-0", "2xx"), 1.0);
    assert_eq!(counted("route-1", "3xx"), 1.0);
    assert_eq!(counted("route-2", "4xx"), 1.0);
}
