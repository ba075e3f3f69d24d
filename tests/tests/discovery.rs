//! DNS discovery end to end: a real DNS server (dnsmasq, over UDP on
//! loopback) publishes a name's A records like a Kubernetes headless Service;
//! the gateway resolves it on a timer. Replicas added to the zone get traffic
//! with no config change, removed ones drain (a request in flight on one
//! finishes, no new request reaches it), a reload keeps the discovered set,
//! and a name server that stops answering leaves the last good set serving
//! while the failures are counted on /metrics and logged once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgeward_e2e::{Client, Gateway, free_addrs, full};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::Notify;

const TEST_LIMIT: Duration = Duration::from_secs(55);
const NAME: &str = "backend.edgeward.test";

/// Requests each replica received, by path, and the gate `/slow` waits on.
#[derive(Default)]
struct Seen {
    hits: Mutex<HashMap<String, usize>>,
    gate: Notify,
}

impl Seen {
    fn count(&self, path: &str) -> usize {
        *self.hits.lock().unwrap().get(path).unwrap_or(&0)
    }
}

/// One replica on `ip:port`, answering its own `ip` as the body.
async fn replica(
    ip: IpAddr,
    port: u16,
) -> std::io::Result<(Arc<Seen>, tokio::task::JoinHandle<()>)> {
    let socket = tokio::net::TcpListener::bind(SocketAddr::new(ip, port)).await?;
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let task = tokio::spawn(async move {
        let http = Arc::new(auto::Builder::new(TokioExecutor::new()));
        while let Ok((stream, _)) = socket.accept().await {
            let (s, http) = (s.clone(), http.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let s = s.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        *s.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                        if path == "/slow" {
                            s.gate.notified().await;
                        }
                        Ok::<_, Infallible>(Response::new(full(ip.to_string())))
                    }
                });
                let _ = http.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Ok((seen, task))
}

/// Three replicas on 127.0.0.2-4, one port: DNS gives addresses, the port is
/// the config's.
async fn replicas() -> (u16, Vec<(IpAddr, Arc<Seen>, tokio::task::JoinHandle<()>)>) {
    'again: for _ in 0..20 {
        let probe = std::net::TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let mut all = Vec::new();
        for last in 2..=4u8 {
            let ip = IpAddr::from([127, 0, 0, last]);
            match replica(ip, port).await {
                Ok((seen, task)) => all.push((ip, seen, task)),
                Err(_) => continue 'again,
            }
        }
        return (port, all);
    }
    panic!("no port free on 127.0.0.2-4");
}

/// dnsmasq answering only from `hosts` (re-read on SIGHUP).
struct Dns {
    child: std::process::Child,
    hosts: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_hosts(path: &Path, ips: &[&str]) {
    let text: String = ips.iter().map(|ip| format!("{ip} {NAME}\n")).collect();
    // Replaced whole, so dnsmasq never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

impl Dns {
    /// `None` when dnsmasq is not installed (a failure with CI set).
    fn start(ips: &[&str]) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        // dnsmasq may read the file as `nobody` after dropping privileges.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let hosts = dir.path().join("hosts");
        write_hosts(&hosts, ips);
        let port = free_udp_port();
        let spawned = std::process::Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--pid-file=",
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                &format!("--addn-hosts={}", hosts.display()),
                // Names of the test zone that are not in the file get NXDOMAIN.
                "--local=/edgeward.test/",
                "--local-ttl=0",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("dnsmasq.log")).unwrap())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "dnsmasq is required when CI is set (.ci/run installs it): {e}"
                );
                println!("SKIP: dnsmasq is not installed: {e}");
                return None;
            }
        };
        let mut dns = Self {
            child,
            hosts,
            port,
            _dir: dir,
        };
        dns.wait_bound();
        Some(dns)
    }

    /// Until dnsmasq holds its UDP port (binding it ourselves fails).
    fn wait_bound(&mut self) {
        for _ in 0..500 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dnsmasq exited: {status}");
            }
            if std::net::UdpSocket::bind(("127.0.0.1", self.port)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("dnsmasq did not bind 127.0.0.1:{}", self.port);
    }

    /// Publishes `ips` and tells dnsmasq to re-read them.
    fn publish(&self, ips: &[&str]) {
        write_hosts(&self.hosts, ips);
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

fn yaml(listen: SocketAddr, admin: SocketAddr, dns: u16, port: u16) -> String {
    format!(
        r#"listeners: [{{name: main, address: "{listen}"}}]
admin: {{address: "{admin}"}}
upstreams:
  backend:
    balancer: native
    discovery:
      dns: "{NAME}:{port}"
      interval: 200ms
      family: ipv4
      nameserver: "127.0.0.1:{dns}"
routes:
  - upstream: backend
"#
    )
}

/// Which replica (by body) answered each of `n` requests.
async fn spread(client: &Client, url: &str, n: usize) -> HashMap<String, usize> {
    let mut by = HashMap::new();
    for _ in 0..n {
        let r = client.get(url).await.expect("request through the gateway");
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        *by.entry(r.text()).or_default() += 1;
    }
    by
}

async fn until(what: &str, limit: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_from_dns_join_drain_and_survive_a_silent_name_server() {
    tokio::time::timeout(TEST_LIMIT, scenario())
        .await
        .expect("the scenario finishes in time");
}

async fn scenario() {
    let Some(mut dns) = Dns::start(&["127.0.0.2", "127.0.0.3"]) else {
        return;
    };
    let (port, replicas) = replicas().await;
    let seen = |i: usize| replicas[i].1.clone();
    let [listen, admin] = free_addrs(2)[..] else {
        unreachable!()
    };
    let gw = Gateway::start(&yaml(listen, admin, dns.port, port))
        .await
        .expect("gateway starts");
    let client = Client::h1();
    let url = gw.url("main", "/");

    // Ready means resolved: the first requests already reach both replicas.
    let by = spread(&client, &url, 20).await;
    assert_eq!(by.get("127.0.0.2"), Some(&10), "{by:?}");
    assert_eq!(by.get("127.0.0.3"), Some(&10), "{by:?}");
    assert_eq!(seen(2).count("/"), 0);

    // Two requests held in flight, one on each replica.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (Client::h1(), gw.url("main", "/slow"));
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    until(
        "both slow requests arrive",
        Duration::from_secs(5),
        async || seen(0).count("/slow") + seen(1).count("/slow") == 2,
    )
    .await;
    assert_eq!(seen(1).count("/slow"), 1, "round robin put one on .3");

    // The autoscaler replaces .3 by .4: no config change, just DNS.
    dns.publish(&["127.0.0.2", "127.0.0.4"]);
    until(
        "traffic reaches the new replica",
        Duration::from_secs(10),
        async || {
            client
                .get(&url)
                .await
                .is_ok_and(|r| r.text() == "127.0.0.4")
                || seen(2).count("/") > 0
        },
    )
    .await;
    let on_removed = seen(1).count("/");
    let by = spread(&client, &url, 20).await;
    assert_eq!(
        by.get("127.0.0.3"),
        None,
        "no new request reaches a removed replica: {by:?}"
    );
    assert_eq!(by.get("127.0.0.2"), Some(&10), "{by:?}");
    assert_eq!(by.get("127.0.0.4"), Some(&10), "{by:?}");
    assert_eq!(seen(1).count("/"), on_removed);

    // The removed replica drains: its request in flight finishes normally.
    for (_, s, _) in &replicas[..2] {
        s.gate.notify_waiters();
    }
    for t in slow {
        let r = t
            .await
            .unwrap()
            .expect("an in-flight request survives the change");
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }

    let m = gw.metrics().await;
    let labels = [("upstream", "backend")];
    assert_eq!(m.value("edgeward_discovery_endpoints", &labels), 2.0);
    assert!(
        m.value("edgeward_discovery_changes_total", &labels) >= 2.0,
        "first set and the change"
    );
    assert!(
        m.value(
            "edgeward_discovery_resolutions_total",
            &[("upstream", "backend"), ("result", "ok")]
        ) >= 2.0
    );
    // The endpoint that stayed kept its stats across the change (same series,
    // still counted), the removed one is gone from the scrape.
    let endpoints: Vec<_> = m
        .all("edgeward_endpoint_healthy", &labels)
        .iter()
        .filter_map(|s| s.labels.get("endpoint").cloned())
        .collect();
    assert!(
        endpoints.iter().any(|e| e == &format!("127.0.0.4:{port}")),
        "{endpoints:?}"
    );
    assert!(
        !endpoints.iter().any(|e| e == &format!("127.0.0.3:{port}")),
        "{endpoints:?}"
    );

    // A reload (the file lists no endpoints) starts from the discovered set.
    let (status, _) = gw.reload_http().await;
    assert_eq!(status, StatusCode::OK);
    let r = client
        .get(&url)
        .await
        .expect("request right after the reload");
    assert_eq!(
        r.status,
        StatusCode::OK,
        "no 503 window after a reload: {}",
        r.text()
    );

    // The Service scales to zero: the name has no records (NXDOMAIN), which
    // is an answer, not a failure: the set empties and requests get 503.
    dns.publish(&[]);
    let mut last = None;
    for _ in 0..100 {
        last = Some(client.get(&url).await.map(|r| r.status));
        if matches!(last, Some(Ok(StatusCode::SERVICE_UNAVAILABLE))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        matches!(last, Some(Ok(StatusCode::SERVICE_UNAVAILABLE))),
        "an empty answer empties the set: {last:?}\n{}\n{}",
        gw.metrics_text()
            .await
            .lines()
            .filter(|l| l.contains("discovery"))
            .collect::<Vec<_>>()
            .join("\n"),
        gw.stderr_tail(10)
    );
    let m = gw.metrics().await;
    assert_eq!(m.value("edgeward_discovery_endpoints", &labels), 0.0);
    assert!(
        m.value(
            "edgeward_discovery_resolutions_total",
            &[("upstream", "backend"), ("result", "empty")]
        ) >= 1.0
    );
    dns.publish(&["127.0.0.2", "127.0.0.4"]);
    until(
        "the replicas are back",
        Duration::from_secs(10),
        async || {
            client
                .get(&url)
                .await
                .is_ok_and(|r| r.status == StatusCode::OK)
        },
    )
    .await;

    // The name server goes silent: the last good set keeps serving, the
    // failures are counted and logged once (rate-limited).
    let _ = dns.child.kill();
    let _ = dns.child.wait();
    let errors = || async {
        gw.metrics()
            .await
            .get(
                "edgeward_discovery_resolutions_total",
                &[("upstream", "backend"), ("result", "error")],
            )
            .unwrap_or(0.0)
    };
    until(
        "resolution failures are counted",
        Duration::from_secs(15),
        async || errors().await >= 2.0,
    )
    .await;
    let by = spread(&client, &url, 10).await;
    assert_eq!(by.get("127.0.0.2"), Some(&5), "{by:?}");
    assert_eq!(by.get("127.0.0.4"), Some(&5), "{by:?}");
    let log = gw.stderr();
    assert_eq!(
        log.matches("discovery: cannot resolve").count(),
        1,
        "one failure line per minute, whatever the failures: {log}"
    );
    drop(gw);
    let _ = Method::GET;
}
