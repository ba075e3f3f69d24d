//! Zero-downtime binary upgrade, end to end: three hand-offs in a row (two
//! `run --upgrade`, one SIGUSR2) under HTTP/1.1, h2c and HTTP/2-over-TLS load
//! with keep-alive clients and fresh connections. Nothing may be refused,
//! reset or failed; requests in flight on the old process finish there; the
//! old process exits once drained; the new one answers on the same sockets
//! (its plaintext and admin listeners are `127.0.0.1:0`, so only a handed
//! socket has the same port),
//! takes new HTTP/3 connections, and still reloads.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgeward_e2e::client::Client;
use edgeward_e2e::h3client::H3Client;
use edgeward_e2e::{Gateway, TestCert, TlsClient, Upstream, empty, full};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

/// The whole test finishes within this, or fails saying so.
const TEST_LIMIT: Duration = Duration::from_secs(58);
/// One bounded wait.
const STEP: Duration = Duration::from_secs(15);
/// The header every route adds: the config version, one per process here.
const GEN: &str = "x-config-gen";
/// Long requests started on each old process just before its hand-off.
const LONG_PER_ROUND: usize = 3;

/// `secure` has a fixed port (free for TCP and UDP): two listeners cannot both
/// be `127.0.0.1:0`. `plain` and admin are `:0`, so their ports across
/// processes prove the sockets were handed, not re-bound.
fn render(generation: u64, secure: SocketAddr) -> String {
    format!(
        "node: {{name: edge-upgrade, region: test-1}}
listeners:
  - name: plain
    address: \"127.0.0.1:0\"
  - name: secure
    address: \"{secure}\"
    protocols: [h1, h2, h3]
    tls:
      certificates:
        - {{cert: cert.pem, key: key.pem}}
admin:
  address: \"127.0.0.1:0\"
shutdown:
  drain-timeout: 10s
upstreams:
  svc:
    endpoints: [\"{{ORIGIN}}\"]
routes:
  - name: main
    upstream: svc
    timeout: 30s
    response-headers:
      add:
        {GEN}: \"{generation}\"
"
    )
}

/// A process we did not spawn (started by SIGUSR2): terminated when dropped.
struct Stray(u32);

impl Drop for Stray {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.to_string()])
            .status();
    }
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next()),
            Some(Some('Z' | 'X'))
        ),
        Err(_) => false,
    }
}

/// The process serving now, as the admin listener says.
async fn serving_pid(admin: SocketAddr) -> Option<u32> {
    let r = Client::h1()
        .get(&format!("http://{admin}/admin/status"))
        .await
        .ok()?;
    r.json()["pid"].as_u64().map(|p| p as u32)
}

/// An origin (echoing `{"path"}`) that records the `/load/` requests it
/// saw, and whose `/long/<round>/…` requests wait until `released` reaches
/// `round`, so a test knows they are in flight without timing anything.
async fn origin(
    released: tokio::sync::watch::Receiver<u64>,
    seen: Arc<Mutex<HashSet<String>>>,
) -> Upstream {
    Upstream::start(move |req: Request<Incoming>| {
        let mut released = released.clone();
        let seen = seen.clone();
        async move {
            let path = req.uri().path().to_owned();
            if path.starts_with("/load/") {
                let sent = req
                    .uri()
                    .path_and_query()
                    .map_or(path.clone(), |p| p.to_string());
                seen.lock().unwrap().insert(sent);
            }
            if let Some(rest) = path.strip_prefix("/long/") {
                let round: u64 = rest
                    .split('/')
                    .next()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                let _ = released.wait_for(|r| *r >= round).await;
            }
            let doc = serde_json::json!({ "path": path });
            Response::new(full(doc.to_string()))
        }
    })
    .await
}

/// The clients of the load, one worker each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// hyper's pooled HTTP/1.1 client (keep-alive).
    H1,
    /// hyper's pooled h2c client (prior knowledge).
    H2c,
    /// One HTTP/2-over-TLS connection, reopened when it closes.
    H2Tls,
    /// A new HTTP/1.1 connection per request.
    FreshH1,
    /// A new h2c connection per request.
    FreshH2c,
}

const KINDS: [Kind; 5] = [
    Kind::H1,
    Kind::H2c,
    Kind::H2Tls,
    Kind::FreshH1,
    Kind::FreshH2c,
];

#[derive(Default)]
struct Tally {
    ok: [AtomicU64; 5],
    /// Requests an HTTP/2 GOAWAY refused (RFC 9113 §6.8: not processed, safe
    /// to retry) and that the worker retried on a new connection.
    refused: Mutex<Vec<String>>,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn ok(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.ok[i].load(Ordering::SeqCst))
    }

    async fn wait_progress(&self, n: u64) {
        let since = self.ok();
        let deadline = tokio::time::Instant::now() + STEP;
        while self
            .ok()
            .iter()
            .zip(since)
            .any(|(now, then)| *now < then + n)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the load made no progress ({since:?} → {:?}); failures: {:#?}",
                self.ok(),
                self.failures.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A request the server refused with GOAWAY (`NO_ERROR`), or one hyper
/// never sent because the connection closed under it (`canceled`): hyper's
/// client does not retry the first (hyperium/hyper#2500), nor its bare
/// connection API the second, so the worker does, as browsers and Go's
/// client do. The test checks that the origin never saw any of them.
fn goaway_refused(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<h2::Error>().is_some_and(|h| {
            h.is_go_away() && h.is_remote() && h.reason() == Some(h2::Reason::NO_ERROR)
        }) || c
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
    })
}

#[derive(Clone)]
struct Target {
    plain: SocketAddr,
    secure: SocketAddr,
    cert: TestCert,
}

async fn one(
    kind: Kind,
    pooled: &Client,
    tls: &mut Option<TlsClient>,
    t: &Target,
    path: &str,
) -> anyhow::Result<edgeward_e2e::client::Fetched> {
    let plain = format!("http://{}{path}", t.plain);
    match kind {
        Kind::H1 | Kind::H2c => pooled.get(&plain).await,
        Kind::FreshH1 => Client::h1().get(&plain).await,
        Kind::FreshH2c => Client::h2c().get(&plain).await,
        Kind::H2Tls => {
            if tls.as_ref().is_none_or(|c| !c.is_open()) {
                *tls = Some(TlsClient::connect(t.secure, "localhost", &t.cert, &[b"h2"]).await?);
            }
            let req = Request::get(format!("https://localhost:{}{path}", t.secure.port()))
                .body(empty())?;
            let got = tls.as_mut().expect("connected").fetch(req).await;
            if got.is_err() {
                *tls = None;
            }
            got
        }
    }
}

/// Sends GETs one after another until stopped; checks each answer (200, the
/// echo of its path, a config generation that never goes back).
async fn worker(
    kind: Kind,
    index: usize,
    t: Target,
    tally: Arc<Tally>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let pooled = match kind {
        Kind::H2c => Client::h2c(),
        _ => Client::h1(),
    };
    let mut tls = None;
    let mut last_gen = 0u64;
    let mut seq = 0u64;
    while !*stop.borrow() {
        seq += 1;
        let path = format!("/load/{kind:?}/{index}/{seq}");
        let mut attempt = 0;
        let outcome = loop {
            let sent = match attempt {
                0 => path.clone(),
                n => format!("{path}?retry={n}"),
            };
            let got = tokio::time::timeout(
                Duration::from_secs(10),
                one(kind, &pooled, &mut tls, &t, &sent),
            )
            .await;
            match got {
                Err(_) => break Err("no answer within 10s".to_owned()),
                Ok(Ok(f)) => break Ok(f),
                Ok(Err(e)) if attempt < 3 && goaway_refused(&e) => {
                    tally.refused.lock().unwrap().push(sent);
                    tls = None;
                    attempt += 1;
                }
                Ok(Err(e)) => break Err(format!("{e:#}")),
            }
        };
        let verdict = outcome.and_then(|f| {
            if f.status != StatusCode::OK {
                return Err(format!("status {}: {}", f.status, f.text()));
            }
            if f.json()["path"] != path.as_str() {
                return Err(format!("not the echo of its path: {}", f.text()));
            }
            let generation: u64 = f
                .header(GEN)
                .and_then(|g| g.parse().ok())
                .ok_or_else(|| format!("no {GEN} header"))?;
            if generation < last_gen {
                return Err(format!("{GEN} went back from {last_gen} to {generation}"));
            }
            last_gen = generation;
            Ok(())
        });
        match verdict {
            Ok(()) => {
                tally.ok[KINDS.iter().position(|k| *k == kind).unwrap()]
                    .fetch_add(1, Ordering::SeqCst);
            }
            Err(why) => tally
                .failures
                .lock()
                .unwrap()
                .push(format!("{kind:?} GET {path}: {why}")),
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

/// Long requests (h1 and h2c) on the process serving now, waiting at the origin.
fn start_long(addr: SocketAddr, round: u64) -> Vec<tokio::task::JoinHandle<(String, u16, String)>> {
    (0..LONG_PER_ROUND)
        .map(|i| {
            tokio::spawn(async move {
                let client = if i % 2 == 0 {
                    Client::h1()
                } else {
                    Client::h2c()
                };
                let url = format!("http://{addr}/long/{round}/{i}");
                match client.get(&url).await {
                    Ok(r) => (
                        url,
                        r.status.as_u16(),
                        r.header(GEN).unwrap_or_default().to_owned(),
                    ),
                    Err(e) => (url, 0, format!("{e:#}")),
                }
            })
        })
        .collect()
}

fn upgrade_args<'a>(config: &'a Path, socket: &'a Path) -> Vec<&'a str> {
    vec![
        "run",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--upgrade-socket",
        socket.to_str().expect("utf-8 path"),
        "--upgrade",
    ]
}

/// The binary is built (when it is out of date) before the clock starts.
async fn built() {
    tokio::task::spawn_blocking(|| {
        edgeward_e2e::edgeward_bin();
    })
    .await
    .expect("build the edgeward binary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_upgrades_under_load_lose_nothing() {
    built().await;
    tokio::time::timeout(TEST_LIMIT, run())
        .await
        .expect("the upgrade test finished in time");
}

async fn run() {
    let (release, released) = tokio::sync::watch::channel(0u64);
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let up = origin(released, seen.clone()).await;
    let cert = TestCert::new(&["localhost"]);
    let fixed = edgeward_e2e::free_addr();
    let yaml = |g: u64| render(g, fixed).replace("{ORIGIN}", &up.addr.to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("cert.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &cert.key_pem).unwrap();
    let config: PathBuf = dir.path().join("edgeward.yaml");
    let socket: PathBuf = dir.path().join("upgrade.sock");
    let write_config = |g: u64| {
        let tmp = dir.path().join(".edgeward.yaml.tmp");
        std::fs::write(&tmp, yaml(g)).unwrap();
        std::fs::rename(&tmp, &config).unwrap();
    };
    write_config(1);
    let mut args: Vec<&str> = upgrade_args(&config, &socket);
    args.pop();
    let gw = Gateway::start_args(&args)
        .await
        .expect("first gateway starts");
    let plain = gw.addr("plain");
    let secure = gw.addr("secure");
    let admin = gw.admin_addr();
    assert_eq!(serving_pid(admin).await, Some(gw.pid()));

    let tally = Arc::new(Tally::default());
    let (stop_load, load_stop) = tokio::sync::watch::channel(false);
    let target = Target {
        plain,
        secure,
        cert: cert.clone(),
    };
    let workers: Vec<_> = KINDS
        .iter()
        .flat_map(|k| [*k, *k])
        .enumerate()
        .map(|(i, k)| {
            tokio::spawn(worker(
                k,
                i,
                target.clone(),
                tally.clone(),
                load_stop.clone(),
            ))
        })
        .collect();

    // An HTTP/3 connection to the first process: it is closed at the hand-off.
    let h3 = H3Client::connect_tls(secure, "localhost", cert.client_config(&[b"h3"]))
        .await
        .expect("HTTP/3 connects");
    let r = h3.get("/h3/before").await.expect("HTTP/3 answers");
    assert_eq!(r.header(GEN), Some("1"));

    let mut old: Option<Gateway> = Some(gw);
    let mut stray: Option<Stray> = None;
    for round in 1..=3u64 {
        tally.wait_progress(10).await;
        let long = start_long(plain, round);
        let want = (round as usize) * LONG_PER_ROUND;
        let deadline = tokio::time::Instant::now() + STEP;
        while up.hits() < want {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: the long requests did not reach the origin"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let old_pid = match (&old, &stray) {
            (Some(g), _) => g.pid(),
            (None, Some(s)) => s.0,
            _ => unreachable!("one process serves"),
        };
        write_config(round + 1);
        // Round 2 uses the signal; the others `run --upgrade`.
        let new: Option<Gateway> = if round == 2 {
            old.as_ref().expect("a harness process").signal("USR2");
            let deadline = tokio::time::Instant::now() + STEP;
            loop {
                if let Some(p) = serving_pid(admin).await
                    && p != old_pid
                {
                    stray = Some(Stray(p));
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "SIGUSR2 started no new process:\n{}",
                    old.as_ref().unwrap().stderr_tail(20)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            None
        } else {
            let g = Gateway::start_args(&upgrade_args(&config, &socket))
                .await
                .expect("the new process takes over");
            assert_eq!(g.addr("plain"), plain, "the same socket, the same port");
            assert_eq!(g.addr("secure"), secure);
            assert_eq!(g.admin, Some(admin));
            Some(g)
        };
        let new_pid = new
            .as_ref()
            .map_or_else(|| stray.as_ref().unwrap().0, Gateway::pid);
        assert_eq!(serving_pid(admin).await, Some(new_pid));
        // New connections land on the new process.
        let r = Client::h1()
            .get(&format!("http://{plain}/probe/{round}"))
            .await
            .expect("a new connection is served");
        assert_eq!(r.header(GEN), Some((round + 1).to_string().as_str()));
        // The old process drains: its long requests are still in flight.
        assert!(alive(old_pid), "round {round}: the old process left early");
        release.send(round).unwrap();
        for t in long {
            let (url, status, generation) = t.await.unwrap();
            assert_eq!(
                status, 200,
                "round {round}: {url} on the old process: {generation}"
            );
            assert_eq!(
                generation,
                round.to_string(),
                "{url} ran on the old process"
            );
        }
        let deadline = tokio::time::Instant::now() + STEP;
        while alive(old_pid) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: the old process {old_pid} did not exit after draining"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(mut g) = old.take() {
            assert_eq!(
                g.wait(STEP).await.unwrap(),
                Some(0),
                "{}",
                g.stderr_tail(20)
            );
            assert!(
                g.stderr()
                    .contains(&format!("handed over to process {new_pid}")),
                "{}",
                g.stderr_tail(20)
            );
        }
        if round == 3 {
            // The stray (round 2's) has exited by itself; nothing to kill.
            if let Some(s) = stray.take() {
                std::mem::forget(s);
            }
        }
        if round == 1 {
            // The first process's HTTP/3 connection was closed, not left hanging.
            let got = tokio::time::timeout(STEP, h3.get("/h3/after")).await;
            assert!(
                matches!(got, Ok(Err(_))),
                "a QUIC connection of the old process should be closed at the hand-off"
            );
        }
        old = new;
    }
    let last = old.expect("the third new process is ours");

    // New QUIC connections land on the new process.
    let h3 = H3Client::connect_tls(secure, "localhost", cert.client_config(&[b"h3"]))
        .await
        .expect("HTTP/3 connects to the new process");
    let r = h3.get("/h3/new").await.expect("HTTP/3 answers");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(GEN), Some("4"));

    // Reload works in the new process.
    write_config(5);
    let (status, body) = last.reload_http().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = Client::h1()
        .get(&format!("http://{plain}/after-reload"))
        .await
        .expect("served after the reload");
    assert_eq!(r.header(GEN), Some("5"));

    tally.wait_progress(10).await;
    let _ = stop_load.send(true);
    for w in workers {
        w.await.unwrap();
    }
    let failures = tally.failures.lock().unwrap().clone();
    let ok = tally.ok();
    assert!(
        failures.is_empty(),
        "requests failed across the upgrades ({ok:?} ok per {KINDS:?}): {failures:#?}"
    );
    // What a GOAWAY refused was never processed: the origin never saw it.
    let refused = tally.refused.lock().unwrap().clone();
    let seen = seen.lock().unwrap();
    let processed: Vec<_> = refused.iter().filter(|p| seen.contains(*p)).collect();
    assert!(
        processed.is_empty(),
        "requests counted as refused had reached the origin: {processed:?}"
    );
    eprintln!(
        "upgrade: {ok:?} ok per {KINDS:?}, 0 failed; {} requests refused by GOAWAY or never sent (unprocessed) and retried",
        refused.len()
    );
}

/// A new process that cannot serve (here: its config adds a listener on a
/// port that is taken) tells the old one why and exits; the old one logs it,
/// keeps serving on every socket, and can still be upgraded afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_that_cannot_serve_leaves_the_old_one_serving() {
    built().await;
    tokio::time::timeout(TEST_LIMIT, failed_takeover())
        .await
        .expect("the failed-upgrade test finished in time");
}

async fn failed_takeover() {
    let (_release, released) = tokio::sync::watch::channel(0u64);
    let up = origin(released, Arc::new(Mutex::new(HashSet::new()))).await;
    let cert = TestCert::new(&["localhost"]);
    let fixed = edgeward_e2e::free_addr();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("cert.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &cert.key_pem).unwrap();
    let config = dir.path().join("edgeward.yaml");
    let socket = dir.path().join("upgrade.sock");
    let yaml = |g: u64| render(g, fixed).replace("{ORIGIN}", &up.addr.to_string());
    std::fs::write(&config, yaml(1)).unwrap();
    let mut args = upgrade_args(&config, &socket);
    args.pop();
    let gw = Gateway::start_args(&args)
        .await
        .expect("the gateway starts");
    let plain = gw.addr("plain");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = yaml(2).replace(
        "admin:\n",
        &format!(
            "  - name: extra\n    address: \"{}\"\nadmin:\n",
            taken.local_addr().unwrap()
        ),
    );
    std::fs::write(&config, busy).unwrap();
    let err = match Gateway::start_args(&upgrade_args(&config, &socket)).await {
        Ok(_) => panic!("a new process whose listener cannot bind must not become ready"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("cannot bind"), "{err}");
    let deadline = tokio::time::Instant::now() + STEP;
    while !gw.stderr().contains("upgrade failed") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old process did not log the failed upgrade:\n{}",
            gw.stderr_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = gw.stderr();
    assert!(
        log.contains("cannot bind") && log.contains("this process keeps serving"),
        "{log}"
    );
    assert_eq!(serving_pid(gw.admin_addr()).await, Some(gw.pid()));
    let r = Client::h1()
        .get(&format!("http://{plain}/still"))
        .await
        .expect("the old process still serves");
    assert_eq!(r.header(GEN), Some("1"));

    // The next attempt, with a config that works, takes over.
    std::fs::write(&config, yaml(3)).unwrap();
    let next = Gateway::start_args(&upgrade_args(&config, &socket))
        .await
        .expect("a later upgrade works");
    assert_eq!(next.addr("plain"), plain);
    let r = Client::h1()
        .get(&format!("http://{plain}/next"))
        .await
        .expect("the new process serves");
    assert_eq!(r.header(GEN), Some("3"));
    let mut gw = gw;
    assert_eq!(gw.wait(STEP).await.unwrap(), Some(0));
}
