//! Request IDs end to end, and an access log an operator can parse.

use std::time::Duration;

use edgeward_e2e::{Client, Gateway, Upstream, empty};
use http::Request;

#[tokio::test]
async fn a_request_id_is_generated_forwarded_returned_and_logged() {
    let up = Upstream::echo("a").await;
    let trusted = edgeward_e2e::free_addr();
    let yaml = format!(
        "listeners:\n  - name: edge\n    address: 127.0.0.1:0\n\
         \x20 - name: inner\n    address: \"{trusted}\"\n    trust-request-id: true\n\
         access-log:\n  path: access.log\n  format: json\n\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n",
        up.addr
    );
    // `--log warn` must not silence the access log.
    let gw = Gateway::start_with_args(&yaml, &[], &["--log", "warn"])
        .await
        .unwrap();

    let req = Request::get(gw.url("edge", "/a?x=1"))
        .header("user-agent", "edge-test/1")
        .header("x-request-id", "client-chosen")
        .body(edgeward_e2e::full("hello"))
        .unwrap();
    let r = Client::h1().fetch(req).await.unwrap();
    let id = r.header("x-request-id").unwrap().to_owned();
    assert_ne!(
        id, "client-chosen",
        "an untrusted listener kept the client's ID"
    );
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(r.json()["headers"]["x-request-id"], id.as_str());

    let req = Request::get(gw.url("inner", "/b"))
        .header("x-request-id", "client-chosen")
        .body(empty())
        .unwrap();
    let r = Client::h2c().fetch(req).await.unwrap();
    assert_eq!(r.header("x-request-id"), Some("client-chosen"));
    assert_eq!(r.json()["headers"]["x-request-id"], "client-chosen");

    let path = gw.dir.path().join("access.log");
    let mut lines = Vec::new();
    for _ in 0..50 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        lines = text.lines().map(str::to_owned).collect();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    for field in [
        "time",
        "request_id",
        "client",
        "listener",
        "protocol",
        "method",
        "uri",
        "host",
        "user_agent",
        "status",
        "route",
        "endpoint",
        "cache",
        "bytes_in",
        "bytes_out",
        "duration_ms",
        "upstream_ms",
        "tls_sni",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    assert_eq!(first["request_id"], id.as_str());
    assert_eq!(first["user_agent"], "edge-test/1");
    assert_eq!(first["status"], 200);
    assert_eq!(first["protocol"], "HTTP/1.1");
    assert_eq!(first["bytes_in"], 5);
    assert!(first["bytes_out"].as_u64().unwrap() > 0);
    assert_eq!(first["endpoint"], up.addr.to_string());
    assert!(first["upstream_ms"].as_f64().unwrap() > 0.0, "{first}");
    assert!(first["tls_sni"].is_null(), "plaintext has no SNI: {first}");
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["protocol"], "HTTP/2");
    assert_eq!(second["request_id"], "client-chosen");
}

#[tokio::test]
async fn the_combined_format_is_one_line_per_request() {
    let up = Upstream::echo("a").await;
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         access-log: {{path: access.log, format: combined}}\n\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n",
        up.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let r = Client::h1().get(&gw.url("http", "/c")).await.unwrap();
    let id = r.header("x-request-id").unwrap().to_owned();
    let path = gw.dir.path().join("access.log");
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.starts_with("127.0.0.1 - - ["), "{text}");
    assert!(text.contains("\"GET /c HTTP/1.1\" 200 "), "{text}");
    assert!(text.contains(&id), "{text}");
}

#[tokio::test]
async fn the_access_log_names_the_tls_server_name() {
    let up = Upstream::echo("a").await;
    let cert = edgeward_e2e::TestCert::new(&["shop.test"]);
    let yaml = format!(
        "listeners:\n  - name: https\n    address: 127.0.0.1:0\n\
         \x20   tls:\n      certificates: [{{cert: c.pem, key: c.key}}]\n\
         access-log: {{path: access.log}}\n\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n",
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
    let mut c = edgeward_e2e::TlsClient::connect(gw.addr("https"), "shop.test", &cert, &[b"h2"])
        .await
        .unwrap();
    let r = c
        .fetch(Request::get("https://shop.test/s").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let path = gw.dir.path().join("access.log");
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["tls_sni"], "shop.test", "{line}");
    assert_eq!(line["host"], "shop.test", "{line}");
}
