//! A small load generator for `bench/h3.sh`: N connections × M concurrent
//! streams of GET requests for a fixed duration, over HTTP/3 (quinn + h3) or
//! HTTP/2 (hyper over TLS), reporting requests per second and latency percentiles.
//!
//! `cargo run --release -p edgeward-e2e --example h3load -- --proto h3 \
//!     --addr 127.0.0.1:8443 --path /api/products/1 -c 4 -m 16 -d 10`
//!
//! Both protocols use the same loop and the same clock, so their numbers compare.
//! `h3load --serve 127.0.0.1:18080` instead runs the benchmark's upstream: HTTP/1.1
//! and h2c, answering every request with the same 1 KiB body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Buf, Bytes};
use edgeward_e2e::h3client::insecure_tls;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};

struct Args {
    proto: String,
    addr: SocketAddr,
    path: String,
    conns: usize,
    streams: usize,
    duration: Duration,
    warmup: Duration,
}

fn parse() -> anyhow::Result<Args> {
    let mut a = Args {
        proto: "h3".into(),
        addr: "127.0.0.1:8443".parse()?,
        path: "/".into(),
        conns: 4,
        streams: 16,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(1),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--proto" => a.proto = v,
            "--addr" => a.addr = v.parse()?,
            "--path" => a.path = v,
            "-c" | "--conns" => a.conns = v.parse()?,
            "-m" | "--streams" => a.streams = v.parse()?,
            "-d" | "--duration" => a.duration = Duration::from_secs_f64(v.parse()?),
            "-w" | "--warmup" => a.warmup = Duration::from_secs_f64(v.parse()?),
            _ => bail!("unknown flag {flag}"),
        }
    }
    if a.proto != "h3" && a.proto != "h2" {
        bail!("--proto is h3 or h2");
    }
    Ok(a)
}

/// One stream's results: latencies (µs) of requests completed inside the window, and errors.
#[derive(Default)]
struct Tally {
    micros: Vec<u32>,
    errors: u64,
}

#[derive(Clone)]
enum Conn {
    H3(h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Conn {
    async fn open(a: &Args) -> anyhow::Result<(Conn, Option<quinn::Endpoint>)> {
        if a.proto == "h3" {
            let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(insecure_tls())?;
            let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
            let mut t = quinn::TransportConfig::default();
            t.stream_receive_window((2u32 << 20).into())
                .receive_window((16u32 << 20).into());
            cfg.transport_config(Arc::new(t));
            let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
            ep.set_default_client_config(cfg);
            let conn = ep.connect(a.addr, "localhost")?.await?;
            let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
            tokio::spawn(async move {
                std::future::poll_fn(|cx| driver.poll_close(cx)).await;
            });
            Ok((Conn::H3(send), Some(ep)))
        } else {
            let mut tls = insecure_tls();
            tls.alpn_protocols = vec![b"h2".to_vec()];
            let tcp = tokio::net::TcpStream::connect(a.addr).await?;
            tcp.set_nodelay(true)?;
            let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
                .connect("localhost".try_into()?, tcp)
                .await?;
            let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(2 << 20)
                .initial_connection_window_size(16 << 20)
                .handshake(TokioIo::new(stream))
                .await?;
            tokio::spawn(conn);
            Ok((Conn::H2(send), None))
        }
    }

    /// One GET, body read to the end; true when the status is 2xx.
    async fn get(&mut self, url: &str) -> anyhow::Result<bool> {
        match self {
            Conn::H3(send) => {
                let req = http::Request::get(url).body(())?;
                let mut s = send.send_request(req).await?;
                s.finish().await?;
                let resp = s.recv_response().await?;
                while let Some(mut d) = s.recv_data().await? {
                    d.advance(d.remaining());
                }
                Ok(resp.status().is_success())
            }
            Conn::H2(send) => {
                send.ready().await?;
                let req = http::Request::get(url).body(Empty::new())?;
                let resp = send.send_request(req).await?;
                let ok = resp.status().is_success();
                resp.into_body().collect().await?;
                Ok(ok)
            }
        }
    }
}

/// The benchmark upstream: as cheap as a real server gets, so the proxies dominate.
async fn serve(addr: &str) -> anyhow::Result<()> {
    let socket = tokio::net::TcpListener::bind(addr).await?;
    let body = Bytes::from(vec![b'x'; 1024]);
    loop {
        let (stream, _) = socket.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |_req| {
                let body = body.clone();
                async move {
                    let mut resp = http::Response::new(http_body_util::Full::new(body));
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/plain"),
                    );
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--serve") {
        return serve(argv.get(2).map_or("127.0.0.1:18080", String::as_str)).await;
    }
    let a = parse()?;
    let url = format!("https://localhost:{}{}", a.addr.port(), a.path);
    let mut endpoints = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..a.conns {
        let (c, ep) = Conn::open(&a).await.context("connect")?;
        conns.push(c);
        endpoints.extend(ep);
    }
    let start = Instant::now() + a.warmup;
    let end = start + a.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for c in &conns {
        for _ in 0..a.streams {
            let mut c = c.clone();
            let url = url.clone();
            tasks.spawn(async move {
                let mut t = Tally::default();
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let ok = matches!(c.get(&url).await, Ok(true));
                    let done = Instant::now();
                    if sent >= start && done <= end {
                        if ok {
                            t.micros.push(done.duration_since(sent).as_micros() as u32);
                        } else {
                            t.errors += 1;
                        }
                    }
                }
                t
            });
        }
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(t) = tasks.join_next().await {
        let t = t?;
        all.extend(t.micros);
        errors += t.errors;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let rps = all.len() as f64 / a.duration.as_secs_f64();
    // One machine-readable line; bench/h3.sh greps it.
    println!(
        "proto={} conns={} streams={} ok={} errors={} rps={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        a.proto,
        a.conns,
        a.streams,
        all.len(),
        errors,
        rps,
        pct(0.50),
        pct(0.99),
        all.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    drop(conns);
    for ep in endpoints {
        ep.close(0u32.into(), b"done");
    }
    Ok(())
}
