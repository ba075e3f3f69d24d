//! The reverse proxy end to end: real binary, real upstreams, real clients.

use std::time::Duration;

use edgeward_e2e::client::{Client, TlsClient, curl, raw_exchange};
use edgeward_e2e::{Gateway, TestCert, Upstream, empty, full};
use http::{Request, StatusCode, Version};

fn plain_config(upstreams: &[(&str, &Upstream)], routes: &str) -> String {
    let mut ups = String::new();
    for (name, u) in upstreams {
        ups.push_str(&format!("  {name}:\n    endpoints: [\"{}\"]\n", u.addr));
    }
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nupstreams:\n{ups}routes:\n{routes}"
    )
}

#[tokio::test]
async fn http1_and_h2c_share_one_port() {
    let up = Upstream::echo("a").await;
    let gw = Gateway::start(&plain_config(&[("a", &up)], "  - upstream: a\n"))
        .await
        .unwrap();

    let r = Client::h1().get(&gw.url("http", "/x?q=1")).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.version, Version::HTTP_11);
    assert_eq!(r.json()["path"], "/x");
    assert_eq!(r.json()["query"], "q=1");

    let r = Client::h2c().get(&gw.url("http", "/y")).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.version, Version::HTTP_2);
    assert_eq!(r.json()["path"], "/y");
    // The upstream speaks HTTP/1.1 whatever the client spoke.
    assert_eq!(r.json()["version"], "HTTP/1.1");
}

#[tokio::test]
async fn tls_negotiates_alpn_and_picks_certificates_by_sni() {
    let up = Upstream::echo("a").await;
    let shop = TestCert::new(&["shop.test"]);
    let api = TestCert::new(&["api.test", "*.api.test"]);
    let yaml = format!(
        "listeners:\n  - name: https\n    address: 127.0.0.1:0\n    tls:\n      certificates:\n\
         \x20       - {{cert: shop.pem, key: shop.key, server-names: [shop.test]}}\n\
         \x20       - {{cert: api.pem, key: api.key, server-names: [api.test, \"*.api.test\"]}}\n\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n",
        up.addr
    );
    let gw = Gateway::start_with(
        &yaml,
        &[
            ("shop.pem", shop.cert_pem.as_bytes()),
            ("shop.key", shop.key_pem.as_bytes()),
            ("api.pem", api.cert_pem.as_bytes()),
            ("api.key", api.key_pem.as_bytes()),
        ],
    )
    .await
    .unwrap();
    let addr = gw.addr("https");

    let mut h2 = TlsClient::connect(addr, "shop.test", &shop, &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
    let r = h2
        .fetch(Request::get("https://shop.test/p").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!((r.status, r.version), (StatusCode::OK, Version::HTTP_2));
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "https");

    let mut h1 = TlsClient::connect(addr, "shop.test", &shop, &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let req = Request::get("/p")
        .header("host", "shop.test")
        .body(empty())
        .unwrap();
    let r = h1.fetch(req).await.unwrap();
    assert_eq!((r.status, r.version), (StatusCode::OK, Version::HTTP_11));

    // The second certificate is chosen for its names (exact and wildcard); a client
    // trusting only it would fail the handshake if the wrong one were served.
    TlsClient::connect(addr, "api.test", &api, &[b"h2"])
        .await
        .unwrap();
    TlsClient::connect(addr, "eu.api.test", &api, &[b"h2"])
        .await
        .unwrap();
    assert!(
        TlsClient::connect(addr, "api.test", &shop, &[b"h2"])
            .await
            .is_err()
    );

    // And a real third-party client, when the machine has one.
    let url = format!("https://shop.test:{}/curl", addr.port());
    let resolve = format!("shop.test:{}:127.0.0.1", addr.port());
    let ca = gw.dir.path().join("shop.pem");
    if let Some(out) = curl(&[
        "-s",
        "--http2",
        "--resolve",
        &resolve,
        "--cacert",
        ca.to_str().unwrap(),
        "-w",
        "\n%{http_version}",
        &url,
    ])
    .await
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "curl failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.ends_with("\n2"),
            "curl did not use HTTP/2: {text}\n{}",
            gw.stderr()
        );
        assert!(text.contains("\"path\":\"/curl\""), "{text}");
    }
}

#[tokio::test]
async fn routes_by_host_wildcard_path_method_and_header() {
    let names = [
        "exact",
        "wild",
        "prefix",
        "exactpath",
        "post",
        "tenant",
        "fallback",
    ];
    let mut ups = Vec::new();
    for n in names {
        ups.push((n, Upstream::echo(n).await));
    }
    let refs: Vec<(&str, &Upstream)> = ups.iter().map(|(n, u)| (*n, u)).collect();
    let routes = r#"
  - {match: {host: api.example.com}, upstream: exact}
  - {match: {host: "*.example.com", path-prefix: /shop}, upstream: wild}
  - {match: {path: /health}, upstream: exactpath}
  - {match: {path-prefix: /orders, methods: [POST]}, upstream: post}
  - {match: {path-prefix: /orders, headers: {x-tenant: blue}}, upstream: tenant}
  - {match: {path-prefix: /orders}, upstream: prefix}
  - {upstream: fallback}
"#;
    let gw = Gateway::start(&plain_config(&refs, routes)).await.unwrap();
    let c = Client::h1();
    let send = |method: &str, host: &str, path: &str, tenant: Option<&str>| {
        let mut b = Request::builder()
            .method(method)
            .uri(gw.url("http", path))
            .header("host", host);
        if let Some(t) = tenant {
            b = b.header("x-tenant", t);
        }
        let c = c.clone();
        let req = b.body(empty()).unwrap();
        async move {
            c.fetch(req).await.unwrap().json()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(
        send("GET", "API.example.com:80", "/any", None).await,
        "exact"
    );
    assert_eq!(send("GET", "eu.example.com", "/shop/1", None).await, "wild");
    assert_eq!(
        send("GET", "example.com", "/shop/1", None).await,
        "fallback"
    );
    assert_eq!(
        send("GET", "eu.example.com", "/shopping", None).await,
        "fallback"
    );
    assert_eq!(send("GET", "h", "/health", None).await, "exactpath");
    assert_eq!(send("GET", "h", "/health/x", None).await, "fallback");
    assert_eq!(send("POST", "h", "/orders/1", None).await, "post");
    assert_eq!(send("GET", "h", "/orders/1", Some("blue")).await, "tenant");
    assert_eq!(send("GET", "h", "/orders/1", Some("red")).await, "prefix");
    assert_eq!(send("GET", "h", "/ordersx", None).await, "fallback");
}

#[tokio::test]
async fn header_edits_rewrite_and_forwarding_headers() {
    let up = Upstream::echo("a").await;
    let routes = r#"
  - match: {path-prefix: /api/v1}
    upstream: a
    rewrite: {path-prefix: /internal}
    request-headers: {add: {x-route: v1}, remove: [x-drop-me]}
    response-headers: {add: {x-served-by: edge}, remove: [x-upstream]}
"#;
    let yaml = format!(
        "node: {{name: edge-7, region: eu-test}}\n{}",
        plain_config(&[("a", &up)], routes)
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let req = Request::get(gw.url("http", "/api/v1/items/9?x=1"))
        .header("host", "shop.example")
        .header("x-drop-me", "1")
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "x-hop")
        .header("x-hop", "secret")
        .body(empty())
        .unwrap();
    let r = Client::h1().fetch(req).await.unwrap();
    let seen = r.json();
    assert_eq!(seen["path"], "/internal/items/9");
    assert_eq!(seen["query"], "x=1");
    let h = &seen["headers"];
    assert_eq!(h["x-route"], "v1");
    assert!(h.get("x-drop-me").is_none());
    assert!(
        h.get("x-hop").is_none(),
        "a field named by Connection must not cross the proxy"
    );
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.example");
    assert_eq!(h["host"], "shop.example");
    assert_eq!(h["via"], "1.1 edge-7");
    assert_eq!(r.header("x-served-by"), Some("edge"));
    assert_eq!(r.header("x-upstream"), None);
    assert_eq!(r.header("via"), Some("1.1 edge-7"));

    // Exactly the prefix: `/api/v1` alone becomes `/internal`.
    let r = Client::h1().get(&gw.url("http", "/api/v1")).await.unwrap();
    assert_eq!(r.json()["path"], "/internal");
}

#[tokio::test]
async fn no_route_404_refused_502_slow_504() {
    let slow = Upstream::start(|_req| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        http::Response::new(full("late"))
    })
    .await;
    // A port that refuses: bind, read the port, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nupstreams:\n  slow:\n    endpoints: [\"{}\"]\n  gone:\n    endpoints: [\"{closed}\"]\n\
         routes:\n  - {{match: {{path-prefix: /slow}}, upstream: slow, timeout: 300ms}}\n  - {{match: {{path-prefix: /gone}}, upstream: gone}}\n",
        slow.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let c = Client::h1();

    let r = c.get(&gw.url("http", "/nowhere")).await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.text(), "no route for this request\n");
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));

    let r = c.get(&gw.url("http", "/gone")).await.unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);

    let r = c.get(&gw.url("http", "/slow")).await.unwrap();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);

    let metrics = c
        .get(&format!(
            "http://{}/metrics",
            gw.admin.map(|a| a.to_string()).unwrap_or_default()
        ))
        .await;
    // No admin listener is configured here; the counters are checked in the admin test.
    assert!(metrics.is_err());
}

#[tokio::test]
async fn admin_reports_health_readiness_and_counters() {
    let up = Upstream::echo("a").await;
    let yaml = format!(
        "admin: {{address: 127.0.0.1:0}}\n{}",
        plain_config(&[("a", &up)], "  - {name: everything, upstream: a}\n")
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let c = Client::h1();
    let admin = gw.admin.unwrap();
    assert_eq!(
        c.get(&format!("http://{admin}/healthz"))
            .await
            .unwrap()
            .status,
        StatusCode::OK
    );
    assert_eq!(
        c.get(&format!("http://{admin}/readyz"))
            .await
            .unwrap()
            .status,
        StatusCode::OK
    );
    for _ in 0..3 {
        c.get(&gw.url("http", "/")).await.unwrap();
    }
    let m = c
        .get(&format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text();
    assert!(m.contains("route=\"everything\",class=\"2xx\"} 3"), "{m}");
}

#[tokio::test]
async fn malformed_requests_get_a_clear_status_and_the_gateway_keeps_serving() {
    let up = Upstream::echo("a").await;
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n    max-header-size: 16KiB\nupstreams:\n  a:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n",
        up.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    for raw in [
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
            .to_owned(),
        "NOT A REQUEST\r\n\r\n".to_owned(),
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
            "a".repeat(32 * 1024)
        ),
    ] {
        let head = raw_exchange(gw.addr("http"), raw.as_bytes()).await;
        assert!(
            head.starts_with("HTTP/1.1 4"),
            "expected a 4xx, got {head:?}"
        );
    }
    assert_eq!(
        Client::h1().get(&gw.url("http", "/")).await.unwrap().status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn h2c_upstreams_and_refused_endpoints() {
    let up = Upstream::echo("a").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nupstreams:\n  h2:\n    protocol: h2c\n    endpoints: [\"{a}\"]\n  \
         mixed:\n    endpoints: [\"{closed}\", \"{a}\"]\nroutes:\n  - {{match: {{path-prefix: /h2}}, upstream: h2}}\n  - {{upstream: mixed}}\n",
        a = up.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let c = Client::h1();
    let r = c.get(&gw.url("http", "/h2/x")).await.unwrap();
    assert_eq!(
        r.json()["version"],
        "HTTP/2.0",
        "the upstream must be spoken to over h2c"
    );
    assert_eq!(
        r.version,
        Version::HTTP_11,
        "the client keeps its own protocol"
    );

    // A request whose body arrived whole is replayable, and a refused
    // connection proves nothing reached the application: even a POST is
    // sent on to the next endpoint, so none is lost.
    for _ in 0..4 {
        let req = Request::post(gw.url("http", "/m"))
            .body(full("payload"))
            .unwrap();
        assert_eq!(c.fetch(req).await.unwrap().status, StatusCode::OK);
    }
    // A request without a body is never lost to a refused endpoint.
    for _ in 0..4 {
        assert_eq!(
            c.get(&gw.url("http", "/m")).await.unwrap().status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn host_header_rules_of_rfc9112() {
    let up = Upstream::echo("a").await;
    let gw = Gateway::start(&plain_config(&[("a", &up)], "  - upstream: a\n"))
        .await
        .unwrap();
    for (raw, status) in [
        ("GET / HTTP/1.1\r\n\r\n", "400"),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "400"),
        ("GET / HTTP/1.0\r\n\r\n", "200"),
        (
            "GET http://abs.example/p HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
            "200",
        ),
    ] {
        let text = raw_exchange(gw.addr("http"), raw.as_bytes()).await;
        assert_eq!(text.get(9..12), Some(status), "{raw:?} → {text}");
        if raw.contains("abs.example") {
            // The absolute-form target's authority wins over Host (RFC 9112 §3.2.2).
            assert!(text.contains("\"host\":\"abs.example\""), "{text}");
        }
    }
}
