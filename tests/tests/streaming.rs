//! Bodies stream through the gateway both ways without being buffered, and a
//! shutdown lets in-flight requests finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use edgeward_e2e::client::Client;
use edgeward_e2e::{Gateway, Upstream, full};
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

const TOTAL: usize = 50 << 20;
const CHUNK: usize = 64 << 10;

fn config(up: &Upstream, extra: &str) -> String {
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nupstreams:\n  a:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n    timeout: 60s\n{extra}",
        up.addr
    )
}

/// 50 MiB generated lazily: the test client never holds it either.
fn generated_body() -> edgeward_e2e::Body {
    let chunks = stream::unfold(0usize, |sent| async move {
        if sent >= TOTAL {
            return None;
        }
        let n = CHUNK.min(TOTAL - sent);
        let chunk = Bytes::from(vec![(sent / CHUNK) as u8; n]);
        Some((
            Ok::<_, edgeward_e2e::BoxError>(Frame::data(chunk)),
            sent + n,
        ))
    });
    StreamBody::new(chunks).boxed_unsync()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_mib_each_way_with_bounded_gateway_memory() {
    // The upstream echoes the request body as it arrives: upload and download at once.
    let up = Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        Response::new(req.into_body().map_err(Into::into).boxed_unsync())
    })
    .await;
    let gw = Gateway::start(&config(&up, "")).await.unwrap();
    let client = Client::h1();
    // Warm up so the baseline includes pools and buffers that exist anyway.
    client.get(&gw.url("http", "/warm")).await.unwrap();
    let baseline = gw.rss_kib();

    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let (peak, pid) = (peak.clone(), gw.pid());
        tokio::spawn(async move {
            loop {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if let Some(kib) = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let req = Request::post(gw.url("http", "/echo"))
        .body(generated_body())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let (mut received, mut position) = (0usize, 0usize);
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap_or_default();
        for (i, b) in data.iter().enumerate() {
            assert_eq!(
                *b,
                ((position + i) / CHUNK) as u8,
                "corrupted at byte {}",
                position + i
            );
        }
        position += data.len();
        received += data.len();
    }
    sampler.abort();
    assert_eq!(received, TOTAL);
    let grown_mib = (peak.load(Ordering::Relaxed).saturating_sub(baseline)) as f64 / 1024.0;
    assert!(
        grown_mib < 16.0,
        "gateway RSS grew by {grown_mib:.1} MiB while streaming 2×50 MiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let arrived = Arc::new(tokio::sync::Notify::new());
    let signal = arrived.clone();
    let up = Upstream::start(move |_req| {
        let signal = signal.clone();
        async move {
            signal.notify_one();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Response::new(full("finished"))
        }
    })
    .await;
    let mut gw = Gateway::start(&config(&up, "shutdown: {drain-timeout: 20s}\n"))
        .await
        .unwrap();
    let url = gw.url("http", "/slow");
    let in_flight = tokio::spawn(async move { Client::h1().get(&url).await });
    arrived.notified().await;
    gw.signal("TERM");

    let r = in_flight
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.stderr()));
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "finished");
    assert_eq!(gw.wait(Duration::from_secs(20)).await.unwrap(), Some(0));
    assert!(
        tokio::net::TcpStream::connect(gw.addr("http"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_body_limit_answers_413_for_declared_and_streamed_bodies() {
    let up = Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        let n = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .unwrap_or(0);
        Response::new(full(format!("{n}")))
    })
    .await;
    let gw = Gateway::start(&config(&up, "    max-request-body: 1MiB\n"))
        .await
        .unwrap();
    let c = Client::h1();
    // A declared length over the limit is refused from the head alone, before
    // any body byte is sent (a client that pushes the whole body at once may see
    // the connection reset instead: there is no lingering close yet).
    let head = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 2097152\r\n\r\n";
    let answer = edgeward_e2e::client::raw_exchange(gw.addr("http"), head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // 50 MiB streamed without a declared length, over h2c: refused when it passes
    // 1 MiB. (HTTP/2 ends the unread request stream with RST_STREAM(NO_ERROR) after
    // the answer, so the client reliably reads the 413; over HTTP/1.1 the close can
    // reset the answer, see above.)
    let streamed = Request::post(gw.url("http", "/up"))
        .body(generated_body())
        .unwrap();
    let status = match Client::h2c().fetch(streamed).await {
        Ok(r) => r.status,
        Err(e) => panic!("the gateway should answer 413, not drop the connection: {e}"),
    };
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let within = Request::post(gw.url("http", "/up"))
        .body(full(vec![0u8; 1000]))
        .unwrap();
    let r = c.fetch(within).await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "1000"));
    assert_eq!(
        up.hits(),
        2,
        "the declared oversize body never reached the upstream"
    );
}
