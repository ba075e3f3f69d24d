//! Upstream resilience end to end, attacked as the internet would: endpoints
//! killed under load, answering 500s, hanging, all failing at once, stalling
//! mid-body, slow uploads and floods past the breaker. Real binary, real
//! upstream servers in this process, hyper clients and raw sockets.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgeward_e2e::client::{Client, H2cConn};
use edgeward_e2e::{Body, BoxError, Gateway, edgeward_bin, empty, full};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every wait in this file is bounded by this.
const LIMIT: Duration = Duration::from_secs(20);

type Handler = Arc<
    dyn Fn(Request<Incoming>) -> futures_util::future::BoxFuture<'static, Response<Body>>
        + Send
        + Sync,
>;

/// An origin that can be killed outright (its listener and every open
/// connection) and started again on the same port.
struct Origin {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    /// Connections accepted so far, and open now.
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    handler: Handler,
    tasks: Option<tokio::task::JoinHandle<()>>,
}

struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Origin {
    async fn start<F, Fut>(f: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |r| Box::pin(f(r)));
        let mut o = Self {
            addr: "127.0.0.1:0".parse().unwrap(),
            hits: Arc::default(),
            accepted: Arc::default(),
            open: Arc::default(),
            handler,
            tasks: None,
        };
        o.serve().await;
        o
    }

    async fn ok(name: &'static str) -> Self {
        Self::start(move |_| async move { Response::new(full(name)) }).await
    }

    async fn serve(&mut self) {
        let socket = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("bind origin");
        self.addr = socket.local_addr().unwrap();
        let (handler, hits, accepted, open) = (
            self.handler.clone(),
            self.hits.clone(),
            self.accepted.clone(),
            self.open.clone(),
        );
        self.tasks = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            let http = Arc::new(auto::Builder::new(TokioExecutor::new()));
            loop {
                let Ok((stream, _)) = socket.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                open.fetch_add(1, Ordering::SeqCst);
                let guard = Open(open.clone());
                let (handler, hits, http) = (handler.clone(), hits.clone(), http.clone());
                // In the JoinSet, so killing the origin closes its connections too.
                conns.spawn(async move {
                    let _guard = guard;
                    let svc = service_fn(move |req| {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let fut = handler(req);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        }));
    }

    async fn kill(&mut self) {
        if let Some(t) = self.tasks.take() {
            t.abort();
            let _ = t.await;
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(t) = self.tasks.take() {
            t.abort();
        }
    }
}

fn config(upstream: &str, route: &str) -> String {
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n\
         upstreams:\n  svc:\n{upstream}routes:\n  - upstream: svc\n{route}"
    )
}

fn endpoints(origins: &[&Origin]) -> String {
    let list: Vec<String> = origins.iter().map(|o| format!("\"{}\"", o.addr)).collect();
    format!("    endpoints: [{}]\n", list.join(", "))
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {LIMIT:?}"))
}

/// The status JSON's view of one endpoint.
async fn endpoint_status(gw: &Gateway, addr: SocketAddr) -> serde_json::Value {
    let s = gw
        .admin_request(http::Method::GET, "/admin/status", "")
        .await
        .json();
    s["upstreams"][0]["endpoints"]
        .as_array()
        .and_then(|eps| {
            eps.iter()
                .find(|e| e["address"] == addr.to_string())
                .cloned()
        })
        .unwrap_or_else(|| panic!("no endpoint {addr} in {s}"))
}

async fn until_status(
    gw: &Gateway,
    addr: SocketAddr,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) {
    within(what, async {
        loop {
            if ok(&endpoint_status(gw, addr).await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_killed_under_load_loses_no_request_and_comes_back() {
    edgeward_bin();
    let a = Origin::ok("a").await;
    let mut b = Origin::ok("b").await;
    let c = Origin::ok("c").await;
    let up = format!(
        "{}    health-check: {{path: /health, interval: 200ms, timeout: 200ms, healthy-threshold: 2, unhealthy-threshold: 2}}\n",
        endpoints(&[&a, &b, &c])
    );
    let gw = Gateway::start(&config(&up, "")).await.unwrap();
    let url = gw.url("http", "/load");
    let client = Client::h1();
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    const TOTAL: usize = 5000;
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, done, failed) =
                (client.clone(), url.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                while done.fetch_add(1, Ordering::SeqCst) < TOTAL {
                    match client.get(&url).await {
                        Ok(r) if r.status == StatusCode::OK => {}
                        Ok(r) => {
                            failed.fetch_add(1, Ordering::SeqCst);
                            eprintln!("failed: {} {}", r.status, r.text());
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::SeqCst);
                            eprintln!("failed: {e:#}");
                        }
                    }
                }
            })
        })
        .collect();
    let progress = |n: usize| {
        let done = done.clone();
        async move {
            within("load progress", async {
                while done.load(Ordering::SeqCst) < n {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
        }
    };
    progress(1000).await;
    b.kill().await;
    let killed_at = b.hits();
    until_status(&gw, b.addr, "the killed endpoint is out", |e| {
        e["healthy"] == false && e["healthCheckFailing"] == true
    })
    .await;
    progress(2500).await;
    b.serve().await;
    until_status(&gw, b.addr, "the restarted endpoint is back", |e| {
        e["healthy"] == true
    })
    .await;
    let back_at = b.hits();
    for w in workers {
        within("the load", w).await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "idempotent requests failed"
    );
    assert!(
        b.hits() > back_at + 100,
        "the re-admitted endpoint serves again ({} before, {} after)",
        back_at,
        b.hits()
    );
    assert!(killed_at > 100 && a.hits() > 1000 && c.hits() > 1000);
    let m = gw.metrics().await;
    assert!(m.value("edgeward_upstream_retries_total", &[("upstream", "svc")]) >= 1.0);
}

#[tokio::test]
async fn an_endpoint_answering_500_is_ejected_after_five() {
    let bad = Origin::start(|_| async {
        let mut r = Response::new(full("broken"));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
    .await;
    let good = Origin::ok("good").await;
    let up = format!("{}    balancer: native\n", endpoints(&[&bad, &good]));
    let gw = Gateway::start(&config(&up, "")).await.unwrap();
    let client = Client::h1();
    let mut errors = 0;
    for _ in 0..40 {
        let r = client.get(&gw.url("http", "/x")).await.unwrap();
        if r.status == StatusCode::INTERNAL_SERVER_ERROR {
            errors += 1;
        }
    }
    assert_eq!(bad.hits(), 5, "ejected after exactly five 500s");
    assert_eq!(errors, 5);
    let e = endpoint_status(&gw, bad.addr).await;
    assert_eq!(e["ejected"], "5xx", "{e}");
    assert_eq!(e["healthy"], false, "{e}");
    let m = gw.metrics().await;
    let labels = [
        ("upstream", "svc"),
        ("endpoint", &*bad.addr.to_string()),
        ("reason", "5xx"),
    ];
    assert_eq!(m.value("edgeward_endpoint_ejections_total", &labels), 1.0);
    assert_eq!(m.value("edgeward_endpoint_ejected", &labels), 1.0);
}

#[tokio::test]
async fn a_hanging_endpoint_times_out_per_try_and_the_retry_goes_elsewhere() {
    let hang = Origin::start(|_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Response::new(empty())
    })
    .await;
    let good = Origin::ok("good").await;
    let up = format!(
        "{}    balancer: native\n    retries: {{per-try-timeout: 300ms}}\n",
        endpoints(&[&hang, &good])
    );
    let gw = Gateway::start(&config(&up, "    timeout: 5s\n"))
        .await
        .unwrap();
    let client = Client::h1();
    for _ in 0..4 {
        let t = Instant::now();
        let r = within("a request", client.get(&gw.url("http", "/h")))
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.text(), "good");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    assert!(hang.hits() >= 1);
    let m = gw.metrics().await;
    let svc = [("upstream", "svc")];
    assert!(m.value("edgeward_upstream_timeouts_total", &svc) >= 1.0);
    assert_eq!(
        m.value("edgeward_upstream_timeouts_total", &svc),
        m.value("edgeward_upstream_retries_total", &svc),
        "every timed-out try was retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_holds_when_every_endpoint_fails() {
    edgeward_bin();
    let failing = || {
        Origin::start(|_| async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let mut r = Response::new(full("down"));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r
        })
    };
    let (x, y) = (failing().await, failing().await);
    let up = format!(
        "{}    balancer: native\n    outlier-detection: {{enabled: false}}\n    retries: {{max-retries: 1}}\n",
        endpoints(&[&x, &y])
    );
    let gw = Gateway::start(&config(&up, "")).await.unwrap();
    const N: usize = 640;
    let url = gw.url("http", "/f");
    let client = Client::h1();
    let sent = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (client, url, sent) = (client.clone(), url.clone(), sent.clone());
            tokio::spawn(async move {
                while sent.fetch_add(1, Ordering::SeqCst) < N {
                    let r = client.get(&url).await.unwrap();
                    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
                }
            })
        })
        .collect();
    for w in workers {
        within("the load", w).await.unwrap();
    }
    let seen = x.hits() + y.hits();
    // Without a budget every request would be tried twice (1280).
    assert!(
        seen <= N + N / 5 + 3,
        "the upstream saw {seen} tries for {N} requests"
    );
    assert!(seen > N, "some requests were retried ({seen})");
    let m = gw.metrics().await;
    let svc = [("upstream", "svc")];
    assert!(m.value("edgeward_upstream_retry_budget_exhausted_total", &svc) >= 1.0);
    assert_eq!(
        m.value("edgeward_upstream_retries_total", &svc) as usize,
        seen - N
    );
}

/// Answers a head and `sent` of `len` bytes, then nothing; `chunked` leaves
/// out the Content-Length.
async fn stalling(len: usize, sent: usize, chunked: bool) -> Origin {
    stalling_with(len, sent, chunked, None).await
}

/// [`stalling`], with a `Cache-Control` on the head when given.
async fn stalling_with(
    len: usize,
    sent: usize,
    chunked: bool,
    cache_control: Option<&'static str>,
) -> Origin {
    Origin::start(move |_| async move {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, BoxError>>(1);
        tokio::spawn(async move {
            let _ = tx
                .send(Ok(http_body::Frame::data(Bytes::from(vec![b'x'; sent]))))
                .await;
            // Keep the body open, never finishing it.
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(tx);
        });
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
            );
        let mut r = Response::new(http_body_util::StreamBody::new(stream).boxed_unsync());
        if !chunked {
            r.headers_mut().insert("content-length", len.into());
        }
        if let Some(cc) = cache_control {
            r.headers_mut()
                .insert("cache-control", http::HeaderValue::from_static(cc));
        }
        r
    })
    .await
}

#[tokio::test]
async fn a_stalled_fill_on_a_cached_route_fails_every_waiter_and_stores_nothing() {
    let origin = stalling_with(1000, 100, false, Some("public, max-age=60")).await;
    let gw = Gateway::start(&config(
        &endpoints(&[&origin]),
        "    body-idle-timeout: 500ms\n    cache: {}\n",
    ))
    .await
    .unwrap();
    let url = gw.url("http", "/cached");
    // Together: one fill, the others coalesced on it (or fetching again).
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let resp = Client::h1()
                    .send(Request::get(&url).body(empty()).unwrap())
                    .await?;
                let t = Instant::now();
                let got = resp.into_body().collect().await;
                Ok::<_, BoxError>((got.is_err(), t.elapsed()))
            })
        })
        .collect();
    for c in clients {
        // A client may also see the error before any head: never a hang.
        if let Ok((truncated, took)) = within("a waiter of the stalled fill", c).await.unwrap() {
            assert!(truncated, "a stalled fill must not look complete");
            assert!(took < Duration::from_secs(3), "{took:?}");
        }
    }
    // Nothing truncated was stored: the next request goes to the origin again.
    let before = origin.hits.load(Ordering::SeqCst);
    let resp = within(
        "the request after the stall",
        Client::h1().send(Request::get(&url).body(empty()).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(origin.hits.load(Ordering::SeqCst), before + 1);
    let status = resp
        .headers()
        .get("cache-status")
        .expect("a cached route's answer carries Cache-Status")
        .to_str()
        .unwrap();
    assert!(!status.contains("hit"), "{status}");
}

#[tokio::test]
async fn a_stalled_response_body_is_reset_not_completed() {
    for chunked in [false, true] {
        let origin = stalling(1000, 100, chunked).await;
        let gw = Gateway::start(&config(
            &endpoints(&[&origin]),
            "    body-idle-timeout: 500ms\n",
        ))
        .await
        .unwrap();
        let url = gw.url("http", "/s");
        let h2 = H2cConn::connect(gw.addr("http")).await.unwrap();
        for (proto, resp) in [
            (
                "h1",
                Client::h1()
                    .send(Request::get(&url).body(empty()).unwrap())
                    .await,
            ),
            (
                "h2",
                h2.send(Request::get(&url).body(empty()).unwrap()).await,
            ),
        ] {
            let resp = resp.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let t = Instant::now();
            let got = within("the stalled body", resp.into_body().collect()).await;
            assert!(
                got.is_err(),
                "{proto}, chunked {chunked}: a truncated body must not end cleanly"
            );
            assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        }
    }
}

/// Sends `head` (a request whose body is announced but not all sent) and
/// returns the status line.
async fn raw_status(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = within("the answer", s.read(&mut buf)).await.unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_slow_upload_gets_408_and_frees_its_upstream_connection() {
    let origin = Origin::start(|req: Request<Incoming>| async move {
        // Reads the whole body, as an application would.
        match req.into_body().collect().await {
            Ok(b) => Response::new(full(b.to_bytes())),
            Err(_) => Response::new(empty()),
        }
    })
    .await;
    let gw = Gateway::start(&config(
        &endpoints(&[&origin]),
        "    request-body-idle-timeout: 500ms\n",
    ))
    .await
    .unwrap();
    let addr = gw.addr("http");

    // A body that never starts: 408, and no upstream connection at all.
    let line = raw_status(
        addr,
        b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n",
    )
    .await;
    assert!(line.contains("408"), "{line}");
    assert_eq!(origin.accepted.load(Ordering::SeqCst), 0);

    // One that starts and stalls: 408, and the upstream connection closes.
    let line = raw_status(
        addr,
        b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nfirst ten.",
    )
    .await;
    assert!(line.contains("408"), "{line}");
    assert_eq!(origin.accepted.load(Ordering::SeqCst), 1);
    within("the upstream connection closes", async {
        while origin.open.load(Ordering::SeqCst) != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // One HTTP/2 connection, 128 streams whose bodies never start: 128 × 408,
    // no upstream connection, and no flood of warnings.
    let h2 = H2cConn::connect(addr).await.unwrap();
    let mut senders = Vec::new();
    let streams: Vec<_> = (0..128)
        .map(|_| {
            let (tx, rx) =
                tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, BoxError>>(1);
            senders.push(tx);
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|f| (f, rx))
            });
            let req = Request::post(gw.url("http", "/u"))
                .body(http_body_util::StreamBody::new(stream).boxed_unsync())
                .unwrap();
            let h2 = h2.clone();
            tokio::spawn(async move { h2.send(req).await.map(|r| r.status()) })
        })
        .collect();
    for s in streams {
        let status = within("a stalled stream", s).await.unwrap().unwrap();
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    }
    drop(senders);
    assert_eq!(
        origin.accepted.load(Ordering::SeqCst),
        1,
        "no upstream connection per stalled stream"
    );
    let warnings = gw.stderr().lines().filter(|l| l.contains("WARN")).count();
    assert!(warnings < 5, "{warnings} warnings:\n{}", gw.stderr());
}

#[tokio::test]
async fn past_the_breaker_a_fast_503_is_counted() {
    let (release, gate) = tokio::sync::watch::channel(false);
    let origin = Origin::start(move |_| {
        let mut gate = gate.clone();
        async move {
            let _ = gate.wait_for(|go| *go).await;
            Response::new(full("done"))
        }
    })
    .await;
    let up = format!(
        "{}    circuit-breaker: {{max-requests: 2}}\n",
        endpoints(&[&origin])
    );
    let gw = Gateway::start(&config(&up, "")).await.unwrap();
    let url = gw.url("http", "/b");
    let held: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Client::h1().get(&url).await.unwrap().status })
        })
        .collect();
    within("two requests reach the origin", async {
        while origin.hits() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let t = Instant::now();
    let r = Client::h1().get(&url).await.unwrap();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        origin.hits(),
        2,
        "the refused request never reached the origin"
    );
    release.send(true).unwrap();
    for h in held {
        assert_eq!(within("a held request", h).await.unwrap(), StatusCode::OK);
    }
    assert_eq!(Client::h1().get(&url).await.unwrap().status, StatusCode::OK);
    let m = gw.metrics().await;
    assert_eq!(
        m.value(
            "edgeward_upstream_overflows_total",
            &[("upstream", "svc"), ("limit", "max-requests")]
        ),
        1.0
    );
}
