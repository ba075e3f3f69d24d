//! A bounded mixed-protocol load generator: one task per worker, each sending
//! GETs one after another over its own client (HTTP/1.1, h2c, HTTP/2 over TLS
//! or HTTP/3) until it is stopped, has sent its quota, or its deadline passes.
//! Every answer is checked; every failure is kept with its reason, so a test
//! can assert "nothing was lost" and say exactly what was.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::{Client, TlsClient};
use crate::h3client::H3Client;
use crate::{TestCert, empty};

/// The protocol a worker speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// HTTP/1.1 with keep-alive (hyper's pooled client) to the plaintext listener.
    H1,
    /// HTTP/2 with prior knowledge (hyper's pooled client) to the plaintext listener.
    H2c,
    /// HTTP/2 over TLS (ALPN `h2`), one connection reused while it lasts.
    H2Tls,
    /// HTTP/3 (quinn + h3), one connection reused while it lasts.
    H3,
}

impl Proto {
    pub const ALL: [Proto; 4] = [Proto::H1, Proto::H2c, Proto::H2Tls, Proto::H3];

    pub fn name(self) -> &'static str {
        match self {
            Proto::H1 => "h1",
            Proto::H2c => "h2c",
            Proto::H2Tls => "h2-tls",
            Proto::H3 => "h3",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One answer, handed to the check.
#[derive(Debug)]
pub struct Answer {
    pub proto: Proto,
    pub path: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Decides whether an answer is right; `Err` says what was wrong.
pub type Check = Arc<dyn Fn(&Answer) -> Result<(), String> + Send + Sync>;

/// The check for [`crate::Upstream::echo`] upstreams: status 200 and a JSON body
/// whose `path` is the path requested.
pub fn echo_check() -> Check {
    Arc::new(|a: &Answer| {
        if a.status != StatusCode::OK {
            return Err(format!("status {}", a.status));
        }
        let doc: serde_json::Value = serde_json::from_slice(&a.body)
            .map_err(|e| format!("body is not the echo JSON ({e})"))?;
        if doc["path"] != a.path.split('?').next().unwrap_or_default() {
            return Err(format!("echo says path {} (wrong route?)", doc["path"]));
        }
        Ok(())
    })
}

/// Where the gateway listens.
#[derive(Clone)]
pub struct Targets {
    /// The plaintext listener (for [`Proto::H1`] and [`Proto::H2c`]).
    pub plain: Option<SocketAddr>,
    /// The TLS listener and the certificate to trust (for [`Proto::H2Tls`] and
    /// [`Proto::H3`], which uses the same address over UDP).
    pub tls: Option<(SocketAddr, TestCert)>,
    /// SNI and authority host for TLS and HTTP/3. Default `localhost`.
    pub server_name: String,
}

impl Targets {
    pub fn new(plain: Option<SocketAddr>, tls: Option<(SocketAddr, TestCert)>) -> Self {
        Self {
            plain,
            tls,
            server_name: "localhost".into(),
        }
    }

    /// The protocols these listeners can serve.
    pub fn protocols(&self) -> Vec<Proto> {
        Proto::ALL
            .into_iter()
            .filter(|p| match p {
                Proto::H1 | Proto::H2c => self.plain.is_some(),
                Proto::H2Tls | Proto::H3 => self.tls.is_some(),
            })
            .collect()
    }
}

/// What to load and how much.
#[derive(Clone)]
pub struct LoadSpec {
    pub targets: Targets,
    /// One worker per entry.
    pub workers: Vec<Proto>,
    /// Requests go to `<prefix>/<proto>/<worker>/<seq>`.
    pub path_prefix: String,
    /// Quota per worker.
    pub max_requests_per_worker: u64,
    /// No request starts after this much time.
    pub deadline: Duration,
    /// Pause between two requests of a worker (keeps two cores from saturating).
    pub pause: Duration,
    /// One request (connect included) may take this long before it is a failure.
    pub request_timeout: Duration,
    pub check: Check,
    /// A response header holding a number (e.g. the config generation) that must
    /// never go down between two successive answers of one worker: a request
    /// started after another finished cannot run on an older configuration.
    pub monotonic_header: Option<String>,
}

impl LoadSpec {
    /// Two workers per protocol the listeners allow, echo check, at most 20 000
    /// requests per worker over at most 45 s, 2 ms apart.
    pub fn new(targets: Targets) -> Self {
        let workers = targets
            .protocols()
            .into_iter()
            .flat_map(|p| [p, p])
            .collect();
        Self {
            targets,
            workers,
            path_prefix: "/load".into(),
            max_requests_per_worker: 20_000,
            deadline: Duration::from_secs(45),
            pause: Duration::from_millis(2),
            request_timeout: Duration::from_secs(10),
            check: echo_check(),
            monotonic_header: None,
        }
    }
}

/// One persistent client per protocol, for the requests a test makes itself
/// (e.g. "the next request after the reload shows the change").
pub struct Probe {
    targets: Targets,
    conns: BTreeMap<Proto, Conn>,
    pub timeout: Duration,
}

impl Probe {
    pub fn new(targets: Targets) -> Self {
        let conns = targets
            .protocols()
            .into_iter()
            .map(|p| (p, Conn::new(p)))
            .collect();
        Self {
            targets,
            conns,
            timeout: Duration::from_secs(10),
        }
    }

    pub fn protocols(&self) -> Vec<Proto> {
        self.conns.keys().copied().collect()
    }

    /// `GET path` over `proto`, bounded by `timeout`; `Err` says what failed.
    pub async fn get(&mut self, proto: Proto, path: &str) -> Result<Answer, String> {
        let conn = self
            .conns
            .get_mut(&proto)
            .unwrap_or_else(|| panic!("no listener for {proto} in this probe"));
        match tokio::time::timeout(self.timeout, one(conn, &self.targets, path)).await {
            Ok(r) => r,
            Err(_) => {
                reset(conn);
                Err(format!(
                    "{proto} GET {path}: no answer within {:?}",
                    self.timeout
                ))
            }
        }
    }

    /// As [`Probe::get`], panicking with the reason on failure.
    pub async fn must_get(&mut self, proto: Proto, path: &str) -> Answer {
        match self.get(proto, path).await {
            Ok(a) => a,
            Err(e) => panic!("{proto} GET {path} failed: {e}"),
        }
    }
}

/// A request that went wrong, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Since the load started.
    pub at: Duration,
    pub proto: Proto,
    pub worker: usize,
    pub seq: u64,
    pub path: String,
    pub reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[+{:.3}s] {} worker {} request #{} GET {}: {}",
            self.at.as_secs_f64(),
            self.proto,
            self.worker,
            self.seq,
            self.path,
            self.reason
        )
    }
}

struct Shared {
    started: Instant,
    ok: BTreeMap<Proto, AtomicU64>,
    failures: Mutex<Vec<Failure>>,
}

/// A running load; [`Load::stop`] ends it and returns the report.
pub struct Load {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    protos: Vec<Proto>,
}

/// What a finished load did.
#[derive(Debug)]
pub struct LoadReport {
    pub ok: BTreeMap<Proto, u64>,
    pub failures: Vec<Failure>,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn total_ok(&self) -> u64 {
        self.ok.values().sum()
    }

    /// A summary: successes per protocol, then up to 30 failures.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} ok ({}), {} failed, over {:.1}s",
            self.total_ok(),
            self.ok
                .iter()
                .map(|(p, n)| format!("{p}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.failures.len(),
            self.elapsed.as_secs_f64()
        );
        for f in self.failures.iter().take(30) {
            s.push_str("\n  ");
            s.push_str(&f.to_string());
        }
        if self.failures.len() > 30 {
            s.push_str(&format!("\n  … and {} more", self.failures.len() - 30));
        }
        s
    }

    /// Panics unless every request succeeded and every protocol served at least one.
    pub fn assert_clean(&self, context: &str) {
        assert!(
            self.failures.is_empty(),
            "{context}: requests failed under load: {}",
            self.describe()
        );
        for (p, n) in &self.ok {
            assert!(
                *n > 0,
                "{context}: no {p} request succeeded during the load: {}",
                self.describe()
            );
        }
    }
}

impl Load {
    pub fn start(spec: LoadSpec) -> Self {
        let mut protos = spec.workers.clone();
        protos.sort();
        protos.dedup();
        let shared = Arc::new(Shared {
            started: Instant::now(),
            ok: protos.iter().map(|p| (*p, AtomicU64::new(0))).collect(),
            failures: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = watch::channel(false);
        let spec = Arc::new(spec);
        let tasks = spec
            .workers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                tokio::spawn(worker(*p, i, spec.clone(), shared.clone(), stopped.clone()))
            })
            .collect();
        Self {
            shared,
            stop,
            tasks,
            protos,
        }
    }

    /// Successful requests so far, per protocol.
    pub fn ok(&self) -> BTreeMap<Proto, u64> {
        self.shared
            .ok
            .iter()
            .map(|(p, n)| (*p, n.load(Ordering::SeqCst)))
            .collect()
    }

    /// Failures so far.
    pub fn failures(&self) -> Vec<Failure> {
        self.shared.failures.lock().unwrap().clone()
    }

    /// Waits until every protocol has `n` more successes than in `since` (a value
    /// of [`Load::ok`]), so the next step runs while all of them are active.
    /// Panics after `limit`, saying which protocol stalled and the failures so far.
    pub async fn wait_progress(&self, since: &BTreeMap<Proto, u64>, n: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let now = self.ok();
            let behind: Vec<String> = self
                .protos
                .iter()
                .filter(|p| now[p] < since.get(p).copied().unwrap_or(0) + n)
                .map(|p| format!("{p} ({} → {})", since.get(p).copied().unwrap_or(0), now[p]))
                .collect();
            if behind.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                let failures: Vec<String> = self
                    .failures()
                    .iter()
                    .take(20)
                    .map(|f| f.to_string())
                    .collect();
                panic!(
                    "load made no progress within {limit:?} (wanted {n} more successes each); stalled: {}; failures so far:\n  {}",
                    behind.join(", "),
                    failures.join("\n  ")
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops every worker (each finishes the request it is on) and reports.
    pub async fn stop(mut self) -> LoadReport {
        let _ = self.stop.send(true);
        for t in std::mem::take(&mut self.tasks) {
            if let Err(e) = t.await {
                self.shared.failures.lock().unwrap().push(Failure {
                    at: self.shared.started.elapsed(),
                    proto: Proto::H1,
                    worker: usize::MAX,
                    seq: 0,
                    path: String::new(),
                    reason: format!("a load worker panicked: {e}"),
                });
            }
        }
        let failures = std::mem::take(&mut *self.shared.failures.lock().unwrap());
        LoadReport {
            ok: self.ok(),
            failures,
            elapsed: self.shared.started.elapsed(),
        }
    }
}

/// The connection a worker holds.
enum Conn {
    Pooled(Client, Proto),
    Tls(Option<TlsClient>),
    H3(Option<H3Client>),
}

impl Conn {
    fn new(proto: Proto) -> Self {
        match proto {
            Proto::H1 => Conn::Pooled(Client::h1(), Proto::H1),
            Proto::H2c => Conn::Pooled(Client::h2c(), Proto::H2c),
            Proto::H2Tls => Conn::Tls(None),
            Proto::H3 => Conn::H3(None),
        }
    }
}

async fn worker(
    proto: Proto,
    index: usize,
    spec: Arc<LoadSpec>,
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
) {
    let mut conn = Conn::new(proto);
    let deadline = shared.started + spec.deadline;
    let mut last_mark: Option<u64> = None;
    for seq in 0..spec.max_requests_per_worker {
        if *stopped.borrow() || Instant::now() >= deadline {
            break;
        }
        let path = format!("{}/{proto}/{index}/{seq}", spec.path_prefix);
        let outcome =
            tokio::time::timeout(spec.request_timeout, one(&mut conn, &spec.targets, &path))
                .await
                .unwrap_or_else(|_| {
                    // The connection is in an unknown state: start afresh.
                    reset(&mut conn);
                    Err(format!(
                        "no complete answer within {:?}",
                        spec.request_timeout
                    ))
                });
        let verdict = outcome.and_then(|a| {
            (spec.check)(&a).map_err(|why| describe(&a, &why))?;
            if let Some(h) = &spec.monotonic_header {
                let v = a.header(h).and_then(|v| v.trim().parse::<u64>().ok());
                match (last_mark, v) {
                    (_, None) => {
                        return Err(describe(&a, &format!("no numeric `{h}` header")));
                    }
                    (Some(prev), Some(now)) if now < prev => {
                        return Err(describe(
                            &a,
                            &format!("`{h}` went back from {prev} to {now}"),
                        ));
                    }
                    (_, Some(now)) => last_mark = Some(now),
                }
            }
            Ok(())
        });
        match verdict {
            Ok(()) => {
                shared.ok[&proto].fetch_add(1, Ordering::SeqCst);
            }
            Err(reason) => shared.failures.lock().unwrap().push(Failure {
                at: shared.started.elapsed(),
                proto,
                worker: index,
                seq,
                path,
                reason,
            }),
        }
        if !spec.pause.is_zero() {
            tokio::time::sleep(spec.pause).await;
        }
    }
}

fn describe(a: &Answer, why: &str) -> String {
    let mut body = a.text();
    if body.len() > 200 {
        body.truncate(200);
        body.push('…');
    }
    format!(
        "{why} (status {}, x-upstream {:?}, body {body:?})",
        a.status,
        a.header("x-upstream")
    )
}

fn reset(conn: &mut Conn) {
    match conn {
        Conn::Pooled(..) => {}
        Conn::Tls(c) => *c = None,
        Conn::H3(c) => *c = None,
    }
}

async fn one(conn: &mut Conn, spec: &Targets, path: &str) -> Result<Answer, String> {
    match conn {
        Conn::Pooled(client, proto) => {
            let addr = spec.plain.expect("a plaintext listener for h1/h2c load");
            let r = client
                .get(&format!("http://{addr}{path}"))
                .await
                .map_err(|e| format!("request failed: {e:#}"))?;
            Ok(Answer {
                proto: *proto,
                path: path.to_owned(),
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
        }
        Conn::Tls(slot) => {
            let (addr, cert) = spec.tls.as_ref().expect("a TLS listener for h2 load");
            if slot.as_ref().is_none_or(|c| !c.is_open()) {
                let c = TlsClient::connect(*addr, &spec.server_name, cert, &[b"h2"])
                    .await
                    .map_err(|e| format!("TLS connect failed: {e:#}"))?;
                if c.alpn.as_deref() != Some(b"h2") {
                    return Err(format!("ALPN chose {:?}, not h2", c.alpn));
                }
                *slot = Some(c);
            }
            let c = slot.as_mut().expect("connected");
            let req = Request::get(format!(
                "https://{}:{}{path}",
                spec.server_name,
                addr.port()
            ))
            .body(empty())
            .expect("request");
            match c.fetch(req).await {
                Ok(r) => Ok(Answer {
                    proto: Proto::H2Tls,
                    path: path.to_owned(),
                    status: r.status,
                    headers: r.headers,
                    body: r.body,
                }),
                Err(e) => {
                    *slot = None;
                    Err(format!("request failed: {e:#}"))
                }
            }
        }
        Conn::H3(slot) => {
            let (addr, cert) = spec.tls.as_ref().expect("a TLS listener for h3 load");
            if slot.is_none() {
                let c =
                    H3Client::connect_tls(*addr, &spec.server_name, cert.client_config(&[b"h3"]))
                        .await
                        .map_err(|e| format!("QUIC connect failed: {e:#}"))?;
                *slot = Some(c);
            }
            let c = slot.as_ref().expect("connected");
            match c.get(path).await {
                Ok(r) => Ok(Answer {
                    proto: Proto::H3,
                    path: path.to_owned(),
                    status: r.status,
                    headers: r.headers,
                    body: r.body,
                }),
                Err(e) => {
                    *slot = None;
                    Err(format!("request failed: {e:#}"))
                }
            }
        }
    }
}
