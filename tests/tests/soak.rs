//! Long-running behaviour against the real binary: the soak run (README
//! "Soak run"), and the path-normalisation guard that keeps `/admin` closed.
//!
//! The soak mixes HTTP/1.1, h2c, HTTP/2 over TLS and HTTP/3 through a round-robin
//! router plugin, cache hits and misses, gzip, br and identity answers, a reload
//! every 10 s and one endpoint restart, for `EDGEWARD_SOAK_SECS` (default 120).
//! It requires zero failed requests, RSS at the end within 10 % of RSS after
//! warm-up, and as many open descriptors after the load as before it.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edgeward_e2e::load::{Load, LoadSpec, Targets, echo_check};
use edgeward_e2e::{Body, Client, Gateway, TestCert, Upstream, full};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;

/// A real upstream endpoint that can be restarted on the same port: stopping it
/// refuses new connections and drains the open ones (each finishes its request),
/// as a rolling restart does.
struct Endpoint {
    addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
    hits: Arc<AtomicU64>,
}

/// The echo JSON, padded past the compression threshold; `/cached/…` answers
/// are cacheable for an hour.
async fn answer(req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let doc = serde_json::json!({ "path": path, "pad": "x".repeat(2048) });
    let mut resp = Response::new(full(doc.to_string()));
    let h = resp.headers_mut();
    h.insert("content-type", "application/json".parse().unwrap());
    if path.starts_with("/cached/") {
        h.insert("cache-control", "public, max-age=3600".parse().unwrap());
    }
    resp
}

impl Endpoint {
    async fn start(addr: SocketAddr) -> Self {
        let hits = Arc::new(AtomicU64::new(0));
        let mut ep = Self {
            addr,
            stop: None,
            task: None,
            hits,
        };
        ep.listen().await;
        ep
    }

    async fn listen(&mut self) {
        // The port was ours a moment ago; on a restart the old socket may linger briefly.
        let mut tries = 0;
        let socket = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(s) => break s,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("rebind {}: {e}", self.addr),
            }
        };
        self.addr = socket.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let hits = self.hits.clone();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            let mut on_stop = stopped.clone();
            loop {
                tokio::select! {
                    accepted = socket.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let (hits, mut stopped) = (hits.clone(), stopped.clone());
                        conns.spawn(async move {
                            let svc = service_fn(move |req| {
                                hits.fetch_add(1, Ordering::Relaxed);
                                async move { Ok::<_, std::convert::Infallible>(answer(req).await) }
                            });
                            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                            let conn = http.serve_connection(TokioIo::new(stream), svc);
                            tokio::pin!(conn);
                            tokio::select! {
                                _ = conn.as_mut() => {}
                                _ = async { stopped.wait_for(|s| *s).await.map(|_| ()) } => {
                                    conn.as_mut().graceful_shutdown();
                                    let _ = conn.await;
                                }
                            }
                        });
                    }
                    _ = async { on_stop.wait_for(|s| *s).await.map(|_| ()) } => break,
                }
            }
            drop(socket);
            while conns.join_next().await.is_some() {}
        }));
        self.stop = Some(stop);
    }

    /// Stops (draining), stays down for `down`, and comes back on the same port.
    async fn restart(&mut self, down: Duration) {
        self.shutdown().await;
        tokio::time::sleep(down).await;
        self.listen().await;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(mut task) = self.task.take() {
            // In-flight requests finish well within this; what is left is idle
            // (e.g. a connection still sniffing its protocol) and is cut.
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

/// Listeners on fixed (free) ports: a reload must find the same addresses.
fn config(listen: &[SocketAddr], a: SocketAddr, b: SocketAddr, generation: u64) -> String {
    let (plain, edge) = (listen[0], listen[1]);
    format!(
        "listeners:\n\
         \x20 - name: plain\n    address: {plain}\n\
         \x20 - name: edge\n    address: {edge}\n    protocols: [h1, h2, h3]\n\
         \x20   tls:\n      certificates:\n        - {{cert: cert.pem, key: key.pem}}\n\
         admin:\n  address: 127.0.0.1:0\n\
         cache:\n  max-size: 16MiB\n\
         upstreams:\n  app:\n    endpoints: [\"{a}\", \"{b}\"]\n    balancer: round-robin\n\
         routes:\n\
         \x20 - name: cached\n    match: {{ path-prefix: /cached }}\n    upstream: app\n    cache: {{}}\n    compression: {{}}\n\
         \x20   response-headers: {{ add: {{ x-soak-config: \"{generation}\" }} }}\n\
         \x20 - name: load\n    match: {{ path-prefix: / }}\n    upstream: app\n\
         \x20   response-headers: {{ add: {{ x-soak-config: \"{generation}\" }} }}\n"
    )
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Cache hits and misses with every encoding, over HTTP/1.1 and h2c: the body
/// decodes to the echo of the path asked for.
async fn cache_worker(
    client: Client,
    base: String,
    until: Instant,
    sent: Arc<AtomicU64>,
    hits: Arc<AtomicU64>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut i = 0u64;
    while Instant::now() < until {
        let path = format!("/cached/{}", i % 64);
        let coding = ["gzip", "br", "identity"][(i / 64 % 3) as usize];
        i += 1;
        let req = Request::get(format!("{base}{path}"))
            .header("accept-encoding", coding)
            .body(edgeward_e2e::empty())
            .unwrap();
        sent.fetch_add(1, Ordering::Relaxed);
        let r = match tokio::time::timeout(Duration::from_secs(10), client.fetch(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                failures.push(format!("GET {path} ({coding}): {e:#}"));
                continue;
            }
            Err(_) => {
                failures.push(format!("GET {path} ({coding}): no answer in 10s"));
                continue;
            }
        };
        let got = r
            .header("content-encoding")
            .unwrap_or("identity")
            .to_owned();
        let mut body = Vec::new();
        let decoded = match got.as_str() {
            "gzip" => flate2::read::GzDecoder::new(&r.body[..])
                .read_to_end(&mut body)
                .map(|_| ()),
            "br" => brotli::Decompressor::new(&r.body[..], 4096)
                .read_to_end(&mut body)
                .map(|_| ()),
            _ => {
                body.extend_from_slice(&r.body);
                Ok(())
            }
        };
        let doc: Option<serde_json::Value> = decoded
            .ok()
            .and_then(|()| serde_json::from_slice(&body).ok());
        if r.status != StatusCode::OK || got != coding || doc.is_none_or(|d| d["path"] != path) {
            failures.push(format!(
                "GET {path} ({coding}): status {}, content-encoding {got}",
                r.status
            ));
            continue;
        }
        if r.header("x-cache").is_some_and(|v| v.contains("HIT")) {
            hits.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let secs: u64 = std::env::var("EDGEWARD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let total = Duration::from_secs(secs);
    let warmup = (total / 5).max(Duration::from_secs(15));
    let mut a = Endpoint::start("127.0.0.1:0".parse().unwrap()).await;
    let mut b = Endpoint::start("127.0.0.1:0".parse().unwrap()).await;
    let cert = TestCert::new(&["localhost"]);
    let listen = edgeward_e2e::free_addrs(2);
    let gw = Gateway::start_with(
        &config(&listen, a.addr, b.addr, 0),
        &[
            ("cert.pem", cert.cert_pem.as_bytes()),
            ("key.pem", cert.key_pem.as_bytes()),
        ],
    )
    .await
    .unwrap();
    let pid = gw.pid();
    let fds_start = open_fds(pid);
    let started = Instant::now();
    let until = started + total;

    let targets = Targets::new(
        Some(gw.addr("plain")),
        Some((gw.addr("edge"), cert.clone())),
    );
    let mut spec = LoadSpec::new(targets);
    spec.deadline = total;
    spec.max_requests_per_worker = u64::MAX;
    spec.pause = Duration::from_millis(4);
    spec.check = echo_check();
    let load = Load::start(spec);

    let (sent, hits) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let cache_workers: Vec<_> = [Client::h1(), Client::h2c()]
        .into_iter()
        .map(|c| {
            tokio::spawn(cache_worker(
                c,
                format!("http://{}", gw.addr("plain")),
                until,
                sent.clone(),
                hits.clone(),
            ))
        })
        .collect();

    // Reloads every 10 s; one endpoint restart halfway.
    let (mut generation, mut reloads, mut restarted) = (0u64, 0u32, false);
    let mut rss_warm = None;
    let mut next_reload = started + Duration::from_secs(10);
    let mut last_reload = started;
    let settled = |at: Instant| at.elapsed() >= Duration::from_secs(4);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        // A reload holds two generations (and their plugin instances) for a
        // moment: RSS is read between reloads, never right after one.
        if rss_warm.is_none() && started.elapsed() >= warmup && settled(last_reload) {
            rss_warm = Some(gw.rss_kib());
        }
        if Instant::now() >= next_reload {
            generation += 1;
            gw.write_config(&config(&listen, a.addr, b.addr, generation));
            let (status, body) = gw.reload_http().await;
            assert_eq!(status, StatusCode::OK, "reload {generation}: {body}");
            reloads += 1;
            last_reload = Instant::now();
            next_reload += Duration::from_secs(10);
        }
        if !restarted && started.elapsed() >= total / 2 {
            b.restart(Duration::from_secs(1)).await;
            restarted = true;
        }
    }
    let report = load.stop().await;
    let stopped_at = started.elapsed();
    let mut cache_failures = Vec::new();
    for w in cache_workers {
        cache_failures.extend(w.await.unwrap());
    }
    while !settled(last_reload) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_end = gw.rss_kib();

    // Load is over: clients are gone; restart both endpoints so the gateway's
    // idle upstream connections close too, then the count must come back.
    a.restart(Duration::from_millis(100)).await;
    b.restart(Duration::from_millis(100)).await;
    let mut fds_end = open_fds(pid);
    let settle = Instant::now();
    while fds_end != fds_start && settle.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        fds_end = open_fds(pid);
    }
    let rss_warm = rss_warm.unwrap_or(rss_end);
    let sent_total =
        report.total_ok() + report.failures.len() as u64 + sent.load(Ordering::Relaxed);
    let failed = report.failures.len() + cache_failures.len();
    eprintln!(
        "soak {secs}s (load stopped at {:.1}s, fds settled {:.1}s later): {sent_total} requests sent, {failed} failed; load: {}; cache/compression: {} sent, {} hits; \
         {reloads} reloads, endpoint restarted: {restarted}; endpoint hits a={} b={}; \
         RSS after warm-up {rss_warm} KiB, at end {rss_end} KiB ({:+.1} %); fds at start {fds_start}, at end {fds_end}",
        stopped_at.as_secs_f64(),
        settle.elapsed().as_secs_f64(),
        report.describe(),
        sent.load(Ordering::Relaxed),
        hits.load(Ordering::Relaxed),
        a.hits.load(Ordering::Relaxed),
        b.hits.load(Ordering::Relaxed),
        (rss_end as f64 / rss_warm as f64 - 1.0) * 100.0,
    );
    report.assert_clean("soak");
    assert!(
        cache_failures.is_empty(),
        "cache/compression requests failed: {}",
        cache_failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    assert!(hits.load(Ordering::Relaxed) > 0, "no cache hit in the soak");
    assert!(restarted && reloads >= 1);
    assert!(
        rss_end * 10 <= rss_warm * 11,
        "RSS grew from {rss_warm} KiB after warm-up to {rss_end} KiB"
    );
    assert_eq!(
        fds_end, fds_start,
        "open descriptors: {fds_start} before the load, {fds_end} after"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A route that guards `/admin` (here: answers from a "guard" upstream that
/// refuses) cannot be passed by spelling the path another way; ambiguous
/// spellings are refused with 400, and the app upstream never sees them.
#[tokio::test]
async fn a_guarded_prefix_is_not_bypassed_by_respelling() {
    let guard = Upstream::start(|_req: Request<Incoming>| async {
        let mut r = Response::new(full("blocked"));
        *r.status_mut() = StatusCode::FORBIDDEN;
        r
    })
    .await;
    let app = Upstream::echo("app").await;
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         upstreams:\n  guard: {{ endpoints: [\"{}\"] }}\n  app: {{ endpoints: [\"{}\"] }}\n\
         routes:\n\
         \x20 - name: admin\n    match: {{ path-prefix: /admin }}\n    upstream: guard\n\
         \x20 - name: app\n    match: {{ path-prefix: / }}\n    upstream: app\n",
        guard.addr, app.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let addr = gw.addr("http");
    for path in [
        "/admin",
        "/%61dmin",
        "/%61%64%6D%69%6E/users",
        "/x/../admin",
        "/x/%2e%2e/admin",
        "//admin",
        "/./admin/",
        "/app/../../admin?x=1",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let answer = edgeward_e2e::client::raw_exchange(addr, raw.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 403"),
            "{path} was not stopped by the /admin route: {answer}"
        );
    }
    for path in [
        "/admin%2fusers",
        "/x%2F..%2Fadmin",
        "/%5cadmin",
        "/a%zz",
        "/a%00",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let answer = edgeward_e2e::client::raw_exchange(addr, raw.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
    }
    // The app upstream is sent the normalised path, the query as it was.
    let r = Client::h1()
        .get(&format!("http://{addr}/a/./b/../%63?q=/../x"))
        .await
        .unwrap();
    let doc = r.json();
    assert_eq!(doc["path"], "/a/c");
    assert_eq!(doc["query"], "q=/../x");
    assert_eq!(
        app.hits(),
        1,
        "only the one legitimate request reached the app"
    );
}

/// The cache oracle's finding, end to end: a client's `min-fresh` is measured
/// against the response's lifetime, its `max-age` against the age (RFC 9111
/// §5.2.1.1, §5.2.1.3). Stored `max-age=60` with `Age: 10`: `max-age=30,
/// min-fresh=20` is a hit (50 s of freshness left, 10 s old); `max-age=5` is not.
#[tokio::test]
async fn request_max_age_and_min_fresh_are_measured_apart() {
    let origin = Upstream::start(|_req: Request<Incoming>| async {
        let mut r = Response::new(full("fresh enough"));
        r.headers_mut()
            .insert("cache-control", "max-age=60".parse().unwrap());
        r.headers_mut().insert("age", "10".parse().unwrap());
        r
    })
    .await;
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         upstreams:\n  o: {{ endpoints: [\"{}\"] }}\n\
         routes:\n  - name: r\n    match: {{ path-prefix: / }}\n    upstream: o\n    cache: {{}}\n",
        origin.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let get = |cc: &'static str| {
        let url = gw.url("http", "/p");
        async move {
            let mut req = Request::get(url);
            if !cc.is_empty() {
                req = req.header("cache-control", cc);
            }
            Client::h1()
                .fetch(req.body(edgeward_e2e::empty()).unwrap())
                .await
                .unwrap()
        }
    };
    assert_eq!(get("").await.header("x-cache"), Some("MISS"));
    let r = get("max-age=30, min-fresh=20").await;
    assert_eq!(r.header("x-cache"), Some("HIT"), "{:?}", r.headers);
    assert_eq!(origin.hits(), 1);
    let r = get("max-age=5").await;
    assert_ne!(
        r.header("x-cache"),
        Some("HIT"),
        "an entry 10 s old for max-age=5"
    );
    assert_eq!(origin.hits(), 2);
}
