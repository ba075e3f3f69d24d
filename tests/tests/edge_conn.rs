//! Connection hygiene against hostile or broken clients: connections that send
//! nothing, clients that never read, and rapid reset (prompt and lagging).
//! Raw sockets and real clients, loopback, every wait bounded.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgeward_e2e::{Gateway, TestCert, Upstream, empty};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes; the time it took, or `None` if still open at `limit`.
async fn closed_within(s: &mut (impl AsyncReadExt + Unpin), limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let r = tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    r.ok().map(|()| start.elapsed())
}

fn config(up: SocketAddr, listener_extra: &str, extra: &str) -> String {
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n    header-read-timeout: 1s\n{listener_extra}\
         admin:\n  address: 127.0.0.1:0\n\
         upstreams:\n  a:\n    endpoints: [\"{up}\"]\n{extra}routes:\n  - upstream: a\n"
    )
}

#[tokio::test]
async fn connections_that_send_nothing_are_closed_within_the_header_read_timeout() {
    let up = Upstream::echo("a").await;
    let cert = TestCert::new(&["shop.test"]);
    let tls_addr = edgeward_e2e::free_addr();
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n    header-read-timeout: 1s\n\
         \x20 - name: https\n    address: \"{tls_addr}\"\n    header-read-timeout: 1s\n\
         \x20   tls:\n      certificates: [{{cert: c.pem, key: c.key}}]\n\
         admin:\n  address: 127.0.0.1:0\n\
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
    let limit = Duration::from_secs(4);

    // Zero bytes on a plaintext listener (the protocol sniff waits for them).
    let mut silent = TcpStream::connect(gw.addr("http")).await.unwrap();
    // 23 of the 24 bytes of the HTTP/2 preface.
    let mut preface = TcpStream::connect(gw.addr("http")).await.unwrap();
    preface
        .write_all(&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..23])
        .await
        .unwrap();
    // A TLS handshake that completes, then nothing.
    let tcp = TcpStream::connect(gw.addr("https")).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("shop.test").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cert.client_config(&[b"h2"])))
        .connect(name, tcp)
        .await
        .unwrap();
    // A TLS handshake never started.
    let mut tls_silent = TcpStream::connect(gw.addr("https")).await.unwrap();

    let (a, b, c, d) = tokio::join!(
        closed_within(&mut silent, limit),
        closed_within(&mut preface, limit),
        closed_within(&mut tls, limit),
        closed_within(&mut tls_silent, limit),
    );
    assert!(a.is_some(), "a silent connection stayed open");
    assert!(b.is_some(), "a partial HTTP/2 preface stayed open");
    assert!(c.is_some(), "an idle TLS connection stayed open");
    assert!(
        d.is_some(),
        "a connection that never started TLS stayed open"
    );
    eprintln!("closed after: silent {a:?}, partial preface {b:?}, idle TLS {c:?}, no TLS {d:?}");
    for t in [a, b, c, d].into_iter().flatten() {
        assert!(t >= Duration::from_millis(800), "closed too early: {t:?}");
    }

    // Normal clients are still served.
    let r = edgeward_e2e::Client::h1()
        .get(&gw.url("http", "/ok"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_partial_head_on_the_admin_listener_is_closed() {
    let up = Upstream::echo("a").await;
    let gw = Gateway::start(&config(up.addr, "", "")).await.unwrap();
    let mut s = TcpStream::connect(gw.admin_addr()).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(gw.admin_addr()).await.unwrap();
    let limit = Duration::from_secs(14);
    let (a, b) = tokio::join!(
        closed_within(&mut s, limit),
        closed_within(&mut silent, limit)
    );
    assert!(
        a.is_some(),
        "a partial head on the admin listener stayed open"
    );
    assert!(b.is_some(), "a silent admin connection stayed open");
}

#[tokio::test]
async fn an_idle_keep_alive_h2_connection_is_closed() {
    let up = Upstream::echo("a").await;
    let gw = Gateway::start(&config(up.addr, "    idle-timeout: 1s\n", ""))
        .await
        .unwrap();
    let tcp = TcpStream::connect(gw.addr("http")).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let task = tokio::spawn(conn);
    let req = Request::get(gw.url("http", "/")).body(empty()).unwrap();
    let resp = send.send_request(req).await.unwrap();
    let _ = resp.into_body().collect().await.unwrap();
    // The connection now idles: it is closed after about a second.
    let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
    assert!(ended.is_ok(), "an idle h2 connection stayed open");
}

/// An upstream streaming an endless body; `released` counts bodies dropped
/// (the gateway gave up the response, so the upstream connection is freed).
async fn endless_upstream() -> (Upstream, Arc<AtomicUsize>) {
    struct Released(Arc<AtomicUsize>);
    impl Drop for Released {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let released = Arc::new(AtomicUsize::new(0));
    let count = released.clone();
    let up = Upstream::start(move |_req| {
        let flag = Released(count.clone());
        async move {
            let chunk = Bytes::from(vec![b'x'; 64 << 10]);
            let stream = futures_util::stream::repeat_with(move || {
                let _keep = &flag;
                Ok::<_, edgeward_e2e::BoxError>(http_body::Frame::data(chunk.clone()))
            });
            Response::new(http_body_util::StreamBody::new(stream).boxed_unsync())
        }
    })
    .await;
    (up, released)
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_and_its_upstream_released() {
    let (up, released) = endless_upstream().await;
    let gw = Gateway::start(&config(up.addr, "    send-timeout: 1s\n", ""))
        .await
        .unwrap();
    let mut s = TcpStream::connect(gw.addr("http")).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Never read. The gateway's socket buffer fills, then its writes stall.
    let deadline = Instant::now() + Duration::from_secs(15);
    while released.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream response was still pinned after 15s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(s);
}

#[tokio::test]
async fn a_zero_window_h2_client_is_dropped_and_its_upstream_released() {
    let (up, released) = endless_upstream().await;
    let gw = Gateway::start(&config(up.addr, "    send-timeout: 1s\n", ""))
        .await
        .unwrap();
    let tcp = TcpStream::connect(gw.addr("http")).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(gw.url("http", "/big")).body(empty()).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Hold the body unread: the stream's window stays at zero.
    let deadline = Instant::now() + Duration::from_secs(15);
    while released.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream response was still pinned after 15s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(resp);
}

/// Opens `streams` requests on one h2c connection, resetting each once `lag`
/// newer ones are open; returns the number of requests opened before the
/// gateway closed the connection.
async fn rapid_reset(addr: SocketAddr, streams: usize, lag: usize) -> usize {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut open = VecDeque::new();
    for i in 0..streams {
        if tokio::time::timeout(Duration::from_secs(5), send.ready())
            .await
            .map_or(true, |r| r.is_err())
        {
            return i;
        }
        let req = Request::get(format!("http://{addr}/r{i}"))
            .body(empty())
            .unwrap();
        open.push_back(tokio::spawn(send.send_request(req)));
        while open.len() > lag {
            // Dropping the response future resets the stream (RST_STREAM CANCEL).
            open.pop_front().unwrap().abort();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    streams
}

async fn slow_upstream() -> Upstream {
    Upstream::start(|_req| async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Response::new(edgeward_e2e::full("late"))
    })
    .await
}

#[tokio::test]
async fn lagging_rapid_reset_is_cut_off_and_reaches_the_upstream_a_bounded_number_of_times() {
    let up = slow_upstream().await;
    let gw = Gateway::start(&config(up.addr, "", "")).await.unwrap();
    let opened = tokio::time::timeout(
        Duration::from_secs(60),
        rapid_reset(gw.addr("http"), 3000, 10),
    )
    .await
    .expect("bounded");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let hits = up.hits();
    eprintln!("lagging reset: {opened} streams opened, {hits} reached the upstream");
    assert!(opened < 3000, "the connection took all 3000 lagging resets");
    assert!(
        hits <= 200,
        "{hits} lagging-reset requests reached the upstream"
    );
    // Others are unaffected.
    let r = edgeward_e2e::Client::h2c()
        .get(&gw.url("http", "/ok"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn prompt_rapid_reset_is_cut_off_too() {
    let up = slow_upstream().await;
    let gw = Gateway::start(&config(up.addr, "", "")).await.unwrap();
    let opened = tokio::time::timeout(
        Duration::from_secs(60),
        rapid_reset(gw.addr("http"), 3000, 0),
    )
    .await
    .expect("bounded");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let hits = up.hits();
    eprintln!("prompt reset: {opened} streams opened, {hits} reached the upstream");
    assert!(opened < 3000, "the connection took all 3000 prompt resets");
    assert!(hits <= 200, "{hits} reset requests reached the upstream");
}

#[tokio::test]
async fn idle_sockets_beyond_the_per_ip_cap_are_refused_and_others_served() {
    let up = Upstream::echo("a").await;
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n    header-read-timeout: 30s\n\
         \x20   max-connections-per-ip: 100\n\
         admin:\n  address: 127.0.0.1:0\n\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n",
        up.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let addr = gw.addr("http");
    let mut socks = Vec::new();
    for _ in 0..2000 {
        socks.push(TcpStream::connect(addr).await.unwrap());
    }
    // The refused ones are closed at once; the first 100 stay open.
    let mut closed = 0;
    for s in &mut socks {
        if closed_within(s, Duration::from_millis(20)).await.is_some() {
            closed += 1;
        }
    }
    assert!(
        (1890..=1900).contains(&closed),
        "{closed} of 2000 idle sockets were refused under a cap of 100"
    );
    // Another client is served while the 100 idle ones are still open.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let r = send
        .send_request(
            Request::get("/ok")
                .header("host", "t")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = gw.metrics().await;
    assert!(m.value("edgeward_connections_refused_total", &[]) >= 1890.0);
    drop(socks);
}
