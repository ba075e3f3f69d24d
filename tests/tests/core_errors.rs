//! Who failed decides the answer and the counter: a client that breaks its own
//! request body is the client's fault (4xx, `client_aborted` / `bad_requests`),
//! never an upstream error or a 5xx; and one failed connect does not shut a
//! single-endpoint upstream for its whole cool-down (panic threshold).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use edgeward_e2e::client::{Client, raw_exchange};
use edgeward_e2e::counting::eventually;
use edgeward_e2e::{Gateway, Upstream, full};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;

fn config(endpoint: SocketAddr, upstream_extra: &str) -> String {
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n\
         upstreams:\n  svc:\n    endpoints: [\"{endpoint}\"]\n{upstream_extra}\
         routes:\n  - name: r\n    upstream: svc\n"
    )
}

/// The value of the first sample of `metric` whose line contains every `labels` part.
async fn metric(gw: &Gateway, metric: &str, labels: &[&str]) -> f64 {
    let admin = gw.admin.expect("admin listener");
    let text = Client::h1()
        .get(&format!("http://{admin}/metrics"))
        .await
        .expect("scrape")
        .text();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(metric))
        .find(|l| labels.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Polls `metric` until it reaches `want` (the count lands as the request
/// ends, which may be a moment after the client saw its answer).
async fn metric_reaches(gw: &Gateway, name: &str, want: f64) -> f64 {
    let mut seen = 0.0;
    for _ in 0..100 {
        seen = metric(gw, name, &[]).await;
        if seen >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

/// An upstream that reads the whole request body before answering.
async fn reading_upstream() -> Upstream {
    Upstream::start(|req: http::Request<hyper::body::Incoming>| async move {
        let n = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .unwrap_or(0);
        Response::new(full(format!("read {n}\n")))
    })
    .await
}

#[tokio::test]
async fn a_client_that_aborts_its_upload_is_not_an_upstream_error() {
    let up = reading_upstream().await;
    let gw = Gateway::start(&config(up.addr, "")).await.unwrap();
    let addr = gw.addr("http");
    // Promise 1000 bytes, send 10, then go away.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nhost: t\r\ncontent-length: 1000\r\n\r\n0123456789")
        .await
        .unwrap();
    eventually("the upstream sees the request", || up.hits() == 1).await;
    drop(s);
    let aborted = metric_reaches(&gw, "edgeward_client_aborted_total", 1.0).await;
    assert_eq!(aborted, 1.0, "the abort is counted as the client's");
    assert_eq!(
        metric(&gw, "edgeward_upstream_errors_total", &[]).await,
        0.0
    );
    assert_eq!(
        metric(
            &gw,
            "edgeward_requests_total",
            &["route=\"r\"", "class=\"5xx\""]
        )
        .await,
        0.0,
        "an aborted upload is no 5xx"
    );
}

#[tokio::test]
async fn a_malformed_chunked_body_is_a_bad_request() {
    let up = reading_upstream().await;
    let gw = Gateway::start(&config(up.addr, "")).await.unwrap();
    let answer = raw_exchange(
        gw.addr("http"),
        b"POST /upload HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n\r\n",
    )
    .await;
    assert!(
        !answer.contains(" 502 ") && !answer.contains(" 500 "),
        "a broken client body is not a gateway or upstream failure:\n{answer}"
    );
    let bad = metric_reaches(&gw, "edgeward_bad_requests_total", 1.0).await;
    assert_eq!(bad, 1.0, "counted as a bad request:\n{answer}");
    assert_eq!(
        metric(&gw, "edgeward_upstream_errors_total", &[]).await,
        0.0
    );
    assert_eq!(
        metric(
            &gw,
            "edgeward_requests_total",
            &["route=\"r\"", "class=\"5xx\""]
        )
        .await,
        0.0
    );
}

/// Serves 200 on `addr` until the returned task is aborted.
async fn serve_at(addr: SocketAddr) -> tokio::task::JoinHandle<()> {
    let socket = tokio::net::TcpListener::bind(addr)
        .await
        .expect("rebind the endpoint's port");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = socket.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc =
                    service_fn(|_req| async { Ok::<_, Infallible>(Response::new(full("back\n"))) });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

#[tokio::test]
async fn a_single_endpoint_is_tried_again_while_marked_down() {
    // A port nobody listens on (for now).
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // A cool-down far longer than the test: without the panic threshold every
    // request would get 503 until it ends.
    let gw = Gateway::start(&config(addr, "    unhealthy-cool-down: 1h\n"))
        .await
        .unwrap();
    let url = gw.url("http", "/x");
    let r = Client::h1().get(&url).await.unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "nothing listens yet");
    let server = serve_at(addr).await;
    let r = Client::h1().get(&url).await.unwrap();
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the only endpoint is back and must be tried although it is marked down: {}",
        r.text()
    );
    assert_eq!(r.text(), "back\n");
    server.abort();
}
