//! What we forward and what we refuse at the edges of HTTP/1.x.

use edgeward_e2e::client::raw_exchange;
use edgeward_e2e::{Gateway, Upstream};

async fn gateway(up: &Upstream) -> Gateway {
    Gateway::start(&format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n",
        up.addr
    ))
    .await
    .unwrap()
}

fn body_json(raw: &str) -> serde_json::Value {
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {raw}"))
}

#[tokio::test]
async fn an_http10_request_without_host_reaches_the_upstream_with_one() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    let addr = gw.addr("http");
    let raw = raw_exchange(addr, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert!(raw.starts_with("HTTP/1.0 200"), "{raw}");
    let doc = body_json(&raw);
    assert_eq!(doc["version"], "HTTP/1.1");
    assert_eq!(doc["headers"]["host"], addr.to_string(), "{doc}");
}

/// A raw upstream (hyper's own server stops at 100 fields) that answers with
/// the number of header lines it received.
async fn counting_heads() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = socket.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 8192];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let fields = text.split("\r\n").skip(1).filter(|l| !l.is_empty()).count();
                let body = format!("{{\"fields\": {fields}}}");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn many_short_headers_under_the_size_limit_are_accepted() {
    let up = counting_heads().await;
    let gw = Gateway::start(&format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         upstreams:\n  a:\n    endpoints: [\"{up}\"]\nroutes:\n  - upstream: a\n"
    ))
    .await
    .unwrap();
    let mut head = String::from("GET /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..150 {
        head.push_str(&format!("x-h{i}: v\r\n"));
    }
    head.push_str("\r\n");
    let raw = raw_exchange(gw.addr("http"), head.as_bytes()).await;
    assert!(
        raw.starts_with("HTTP/1.1 200"),
        "{}",
        &raw[..raw.len().min(200)]
    );
    assert!(body_json(&raw)["fields"].as_u64().unwrap() >= 150, "{raw}");
}

/// RFC 9110 §15.5.15: a request target too long to read is 414, not 431
/// (which is about the header fields); the default head limit is 64 KiB.
#[tokio::test]
async fn a_100_kib_uri_gets_414() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    let mut head = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let raw = raw_exchange(gw.addr("http"), head.as_bytes()).await;
    assert!(
        raw.starts_with("HTTP/1.1 414 "),
        "{}",
        &raw[..raw.len().min(200)]
    );
    // The same head under the limit is served.
    head = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    let raw = raw_exchange(gw.addr("http"), head.as_bytes()).await;
    assert!(
        raw.starts_with("HTTP/1.1 200 "),
        "{}",
        &raw[..raw.len().min(200)]
    );
}

/// RFC 9112 §2.3 / RFC 9110 §6.2: a higher HTTP/1 minor version is served as
/// HTTP/1.1, and the connection closes after the answer (its next requests
/// would say 1.2 again).
#[tokio::test]
async fn http_1_2_is_served_as_http_1_1() {
    let up = Upstream::echo("a").await;
    let gw = gateway(&up).await;
    for version in ["1.2", "1.9"] {
        let raw = raw_exchange(
            gw.addr("http"),
            format!("GET /v HTTP/{version}\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
        assert!(
            raw.to_ascii_lowercase()
                .contains("\r\nconnection: close\r\n"),
            "{raw}"
        );
        assert_eq!(body_json(&raw)["version"], "HTTP/1.1");
    }
    // Not a version we can serve at all.
    let raw = raw_exchange(gw.addr("http"), b"GET /v HTTP/3.0\r\nHost: x\r\n\r\n").await;
    assert!(
        raw.starts_with("HTTP/1.1 400") || raw.starts_with("HTTP/1.1 505"),
        "{raw}"
    );
}

#[tokio::test]
async fn exactly_101_short_headers_are_accepted() {
    let up = counting_heads().await;
    let gw = Gateway::start(&format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         upstreams:\n  a:\n    endpoints: [\"{up}\"]\nroutes:\n  - upstream: a\n"
    ))
    .await
    .unwrap();
    let mut head = String::from("GET /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..99 {
        head.push_str(&format!("x-h{i}: v\r\n"));
    }
    head.push_str("\r\n");
    assert_eq!(head.matches("\r\n").count() - 2, 101);
    let raw = raw_exchange(gw.addr("http"), head.as_bytes()).await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
}
