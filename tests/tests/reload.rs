//! Live reload end to end: `POST /admin/reload`, SIGHUP and `--watch` swap the
//! configuration of a running gateway while real clients (HTTP/1.1, h2c,
//! HTTP/2 over TLS, HTTP/3) keep it busy. Nothing may be lost, every change must
//! show in the next request, an invalid file must change nothing, and what the
//! node owns (sockets, connections, cache, endpoint health, counters) must carry
//! over.
//!
//! Listener addresses are fixed ports chosen by the test (`free_addrs`), so a
//! rewritten config names the same addresses and a listener added by a reload
//! is known without a `listening` line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use edgeward_e2e::client::{Client, Fetched, H2cConn, TlsClient, tls_peer_cert};
use edgeward_e2e::counting::{Origin, Spec};
use edgeward_e2e::gateway::{CONFIG_FILE, check};
use edgeward_e2e::h3client::H3Client;
use edgeward_e2e::load::{Load, LoadSpec, Probe, Targets};
use edgeward_e2e::{Gateway, TestCert, Upstream, edgeward_bin, empty, free_addrs, full};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

/// Every test finishes within this, or fails saying so.
const TEST_LIMIT: Duration = Duration::from_secs(55);
/// One bounded wait (a reload to show, a listener to open, load to progress).
const STEP: Duration = Duration::from_secs(10);
/// The header every route adds: the generation its config is meant to become.
const GEN: &str = "x-config-gen";

async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `limit`.
async fn until<F, Fut>(limit: Duration, what: impl std::fmt::Display, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// The configuration a test rewrites between reloads.

#[derive(Clone)]
struct Listener {
    name: String,
    addr: SocketAddr,
    tls: bool,
}

/// One edgeward.yaml, rendered from fields a test changes.
#[derive(Clone)]
struct Cfg {
    listeners: Vec<Listener>,
    admin: SocketAddr,
    /// Value of [`GEN`] on every route: the generation this file should become.
    generation: u64,
    cert: &'static str,
    key: &'static str,
    /// Endpoints of upstream `svc`, behind route `main` (the catch-all).
    endpoints: Vec<SocketAddr>,
    balancer: &'static str,
    cool_down: Option<&'static str>,
    /// Extra response headers on `main`.
    headers: Vec<(String, String)>,
    /// Extra routes `rN` (prefix `/rN`, header `x-route: rN`) to `svc`, before `main`.
    routes: Vec<String>,
    /// Route `sticky` (prefix `/sticky`) to one endpoint behind cookie-affinity
    /// with this cookie name; `None`: no such route or plugin.
    sticky: Option<(SocketAddr, String)>,
    /// Upstream + route pairs named after the route, prefix `/<name>`.
    specials: Vec<(&'static str, SocketAddr)>,
    /// `cache: {version: N}` on `main`.
    cache_version: Option<u64>,
    /// `main` points at an upstream that does not exist.
    broken: bool,
}

impl Cfg {
    fn new(listeners: Vec<Listener>, admin: SocketAddr, endpoints: Vec<SocketAddr>) -> Self {
        Self {
            listeners,
            admin,
            generation: 1,
            cert: "cert.pem",
            key: "key.pem",
            endpoints,
            balancer: "round-robin",
            cool_down: None,
            headers: Vec::new(),
            routes: Vec::new(),
            sticky: None,
            specials: Vec::new(),
            cache_version: None,
            broken: false,
        }
    }

    /// The index of route `main` in `routes:`.
    fn main_index(&self) -> usize {
        self.routes.len() + usize::from(self.sticky.is_some()) + self.specials.len()
    }

    fn render(&self) -> String {
        let g = self.generation;
        let mut y = String::from("node:\n  name: edge-reload\n  region: test-1\nlisteners:\n");
        for l in &self.listeners {
            y += &format!("  - name: {}\n    address: \"{}\"\n", l.name, l.addr);
            if l.tls {
                y += &format!(
                    "    protocols: [h1, h2, h3]\n    tls:\n      certificates:\n        - {{cert: {}, key: {}}}\n",
                    self.cert, self.key
                );
            }
        }
        y += &format!(
            "admin:\n  address: \"{}\"\nshutdown:\n  drain-timeout: 5s\n",
            self.admin
        );
        if let Some((_, cookie)) = &self.sticky {
            y += &format!(
                "plugins:\n  sticky:\n    builtin: cookie-affinity\n    deadline: 1s\n    config: {{cookie: {cookie}}}\n"
            );
        }
        let list = |v: &[SocketAddr]| {
            v.iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        y += &format!(
            "upstreams:\n  svc:\n    balancer: {}\n    endpoints: [{}]\n",
            self.balancer,
            list(&self.endpoints)
        );
        if let Some(c) = self.cool_down {
            y += &format!("    unhealthy-cool-down: {c}\n");
        }
        if let Some((addr, _)) = &self.sticky {
            y += &format!("  pinned:\n    balancer: sticky\n    endpoints: [\"{addr}\"]\n");
        }
        for (name, addr) in &self.specials {
            y += &format!("  {name}:\n    endpoints: [\"{addr}\"]\n");
        }
        y += "routes:\n";
        for r in &self.routes {
            y += &format!(
                "  - name: {r}\n    match: {{path-prefix: /{r}}}\n    upstream: svc\n    response-headers: {{add: {{x-route: {r}, {GEN}: \"{g}\"}}}}\n"
            );
        }
        if self.sticky.is_some() {
            y += &format!(
                "  - name: sticky\n    match: {{path-prefix: /sticky}}\n    upstream: pinned\n    response-headers: {{add: {{{GEN}: \"{g}\"}}}}\n"
            );
        }
        for (name, _) in &self.specials {
            y += &format!(
                "  - name: {name}\n    match: {{path-prefix: /{name}}}\n    upstream: {name}\n    timeout: 30s\n    response-headers: {{add: {{{GEN}: \"{g}\"}}}}\n"
            );
        }
        let upstream = if self.broken { "nope" } else { "svc" };
        y += &format!("  - name: main\n    upstream: {upstream}\n");
        if let Some(v) = self.cache_version {
            y += &format!("    cache: {{version: {v}}}\n");
        }
        y += &format!("    response-headers:\n      add:\n        {GEN}: \"{g}\"\n");
        for (k, v) in &self.headers {
            y += &format!("        {k}: \"{v}\"\n");
        }
        y
    }

    /// The 1-based line of `main`'s `upstream:` in the rendered file.
    fn main_upstream_line(&self) -> usize {
        let text = self.render();
        let lines: Vec<&str> = text.lines().collect();
        let main = lines
            .iter()
            .position(|l| *l == "  - name: main")
            .expect("route main");
        main + 2
    }
}

fn listener(name: &str, addr: SocketAddr, tls: bool) -> Listener {
    Listener {
        name: name.into(),
        addr,
        tls,
    }
}

/// A gateway with a TLS listener `edge` (h1, h2, h3) and a plaintext `plain`.
struct Node {
    gw: Gateway,
    cert: TestCert,
    edge: SocketAddr,
    plain: SocketAddr,
}

impl Node {
    /// Fresh fixed ports for `edge`, `plain` and admin.
    fn cfg(endpoints: Vec<SocketAddr>) -> Cfg {
        let a = free_addrs(3);
        Cfg::new(
            vec![listener("edge", a[0], true), listener("plain", a[1], false)],
            a[2],
            endpoints,
        )
    }

    async fn start(cfg: &Cfg) -> Self {
        Self::start_with_args(cfg, &[]).await
    }

    async fn start_with_args(cfg: &Cfg, args: &[&str]) -> Self {
        let cert = TestCert::new(&["localhost"]);
        let gw = Gateway::start_with_args(
            &cfg.render(),
            &[
                (cfg.cert, cert.cert_pem.as_bytes()),
                (cfg.key, cert.key_pem.as_bytes()),
            ],
            args,
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "gateway did not start: {e:#}\n--- config:\n{}",
                cfg.render()
            )
        });
        let find = |name: &str| {
            cfg.listeners
                .iter()
                .find(|l| l.name == name)
                .map(|l| l.addr)
        };
        Self {
            gw,
            cert,
            edge: find("edge").unwrap_or_else(|| "127.0.0.1:9".parse().unwrap()),
            plain: find("plain").unwrap_or_else(|| "127.0.0.1:9".parse().unwrap()),
        }
    }

    fn targets(&self) -> Targets {
        Targets::new(Some(self.plain), Some((self.edge, self.cert.clone())))
    }

    /// Load on every protocol; answers must carry a never-decreasing [`GEN`].
    fn load(&self) -> Load {
        let mut spec = LoadSpec::new(self.targets());
        spec.deadline = Duration::from_secs(45);
        // One worker per protocol: two such tests may share the two cores.
        spec.workers = spec.targets.protocols();
        spec.monotonic_header = Some(GEN.into());
        Load::start(spec)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.plain)
    }

    async fn get(&self, path: &str) -> Fetched {
        match within(
            STEP,
            "a GET through the gateway",
            Client::h1().get(&self.url(path)),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => panic!(
                "GET {path} failed: {e:#}\n--- gateway log (tail):\n{}",
                self.gw.stderr_tail(30)
            ),
        }
    }
}

/// Writes `cfg`, reloads over HTTP and asserts 200 with `{"generation": cfg.generation}`.
async fn reload_to(gw: &Gateway, cfg: &Cfg, what: &str) {
    gw.write_config(&cfg.render());
    let (status, body) = within(STEP, "POST /admin/reload", gw.reload_http()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "reload to generation {} ({what}) answered {status}: {body}\n--- config:\n{}\n--- gateway log (tail):\n{}",
        cfg.generation,
        cfg.render(),
        gw.stderr_tail(30)
    );
    assert_eq!(
        body["generation"].as_u64(),
        Some(cfg.generation),
        "reload ({what}) answered {body}; generations start at 1 and grow by 1 per successful reload"
    );
}

/// Every protocol's next request answers with [`GEN`] = `generation`.
async fn assert_serving(probe: &mut Probe, generation: u64, when: &str) {
    for p in probe.protocols() {
        let path = format!("/probe/{p}/{generation}");
        let a = probe
            .get(p, &path)
            .await
            .unwrap_or_else(|e| panic!("{when}: {e}"));
        assert_eq!(
            a.status,
            StatusCode::OK,
            "{when}: {p} GET {path} answered {}: {}",
            a.status,
            a.text()
        );
        assert_eq!(
            a.header(GEN),
            Some(generation.to_string().as_str()),
            "{when}: the next {p} request was not served by generation {generation}"
        );
    }
}

/// `file:LINE:COL:` somewhere in `text`, for this file name: `(line, col)`.
fn location(text: &str, file: &str) -> Option<(usize, usize)> {
    let mut rest = text;
    while let Some(i) = rest.find(file) {
        let after = &rest[i + file.len()..];
        let nums: Vec<&str> = after.splitn(4, ':').collect();
        if nums.len() >= 4
            && nums[0].is_empty()
            && let (Ok(l), Ok(c)) = (nums[1].parse(), nums[2].parse())
        {
            return Some((l, c));
        }
        rest = after;
    }
    None
}

/// The 422 of an invalid file: the same located text `edgeward check` prints,
/// the generation unchanged.
async fn assert_refused(
    gw: &Gateway,
    bad: &Cfg,
    generation: u64,
    status: StatusCode,
    body: &serde_json::Value,
) {
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reloading an invalid file (route main → unknown upstream `nope`) answered {status}: {body}"
    );
    let err = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("the 422 has no `error` string: {body}"));
    let line = bad.main_upstream_line();
    match location(err, CONFIG_FILE) {
        Some((l, _)) => assert_eq!(
            l, line,
            "the error points at line {l}, but `upstream: nope` is on line {line}: {err}"
        ),
        None => panic!("the error does not say `{CONFIG_FILE}:LINE:COL:`: {err}"),
    }
    let field = format!("routes[{}].upstream", bad.main_index());
    assert!(
        err.contains(&field),
        "the error does not name `{field}`: {err}"
    );
    assert!(
        err.contains("nope"),
        "the error does not name the unknown upstream `nope`: {err}"
    );
    assert_eq!(
        body["generation"].as_u64(),
        Some(generation),
        "a refused reload must report the current generation {generation}, unchanged: {body}"
    );
    let path = gw.config_path();
    let (code, checked) = tokio::task::spawn_blocking(move || check(&path))
        .await
        .unwrap();
    assert_eq!(
        code, 1,
        "edgeward check accepts the file the reload refused: {checked}"
    );
    assert_eq!(
        err.trim(),
        checked.trim(),
        "the reload's error differs from what `edgeward check` prints for the same file"
    );
}

/// A 200 from the echo upstreams, with its `x-upstream`.
fn served_by(r: &Fetched, what: &str) -> String {
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{what}: answered {}: {}",
        r.status,
        r.text()
    );
    r.header("x-upstream")
        .unwrap_or_else(|| panic!("{what}: no x-upstream header: {}", r.text()))
        .to_owned()
}

/// `edgeward_plugin_calls_total{plugin}` (0 when absent).
async fn plugin_calls(gw: &Gateway, plugin: &str) -> f64 {
    gw.metrics()
        .await
        .get("edgeward_plugin_calls_total", &[("plugin", plugin)])
        .unwrap_or(0.0)
}

async fn reloads_total(gw: &Gateway, result: &str) -> f64 {
    gw.metrics()
        .await
        .get("edgeward_reloads_total", &[("result", result)])
        .unwrap_or(0.0)
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Header,
    Route,
    AddEndpoint,
    Cookie,
    RemoveEndpoint,
    Balancer,
    Invalid,
}

/// Applies `change` (not `Invalid`) to `cfg` for reload `step`, reloads with
/// `reload`, and checks the change is visible in the very next requests.
async fn step_change(
    node: &Node,
    probe: &mut Probe,
    cfg: &mut Cfg,
    step: usize,
    change: Change,
    added: SocketAddr,
    reload: impl AsyncFnOnce(&Gateway, &Cfg),
) {
    let gw = &node.gw;
    cfg.generation += 1;
    let generation = cfg.generation;
    let what = format!("reload #{step} ({change:?}, generation {generation})");
    let mut balancer_before = 0.0;
    match change {
        Change::Header => {
            let name = format!("x-added-{step}");
            let before = node.get("/before").await;
            assert_eq!(
                before.header(&name),
                None,
                "{what}: {name} present before the reload"
            );
            cfg.headers.push((name, format!("v{step}")));
        }
        Change::Route => {
            let r = format!("r{step}");
            let before = node.get(&format!("/{r}/x")).await;
            assert_eq!(
                before.header("x-route"),
                None,
                "{what}: route {r} answers before the reload"
            );
            cfg.routes.push(r);
        }
        Change::AddEndpoint => cfg.endpoints.push(added),
        Change::RemoveEndpoint => cfg.endpoints.retain(|a| *a != added),
        Change::Cookie => {
            let (_, cookie) = cfg.sticky.as_mut().expect("a sticky route");
            *cookie = format!("pin-{step}");
        }
        Change::Balancer => {
            cfg.balancer = if cfg.balancer == "round-robin" {
                "weighted-round-robin"
            } else {
                "round-robin"
            };
            balancer_before = plugin_calls(gw, cfg.balancer).await;
        }
        Change::Invalid => unreachable!("handled by the caller"),
    }
    reload(gw, cfg).await;
    assert_serving(probe, generation, &what).await;
    match change {
        Change::Header => {
            let (name, value) = cfg.headers.last().unwrap();
            for p in probe.protocols() {
                let a = probe.must_get(p, "/after-header").await;
                assert_eq!(
                    a.header(name),
                    Some(value.as_str()),
                    "{what}: the next {p} response lacks the added header {name}"
                );
            }
        }
        Change::Route => {
            let r = cfg.routes.last().unwrap().clone();
            for p in probe.protocols() {
                let path = format!("/{r}/x");
                let a = probe.must_get(p, &path).await;
                assert_eq!(
                    (a.status, a.header("x-route")),
                    (StatusCode::OK, Some(r.as_str())),
                    "{what}: {p} GET {path} did not take the added route {r}: {}",
                    a.text()
                );
            }
        }
        Change::AddEndpoint => {
            let mut seen = Vec::new();
            for i in 0..40 {
                let who = served_by(&node.get(&format!("/add/{i}")).await, &what);
                if who == "e3" {
                    break;
                }
                seen.push(who);
                assert!(
                    i < 39,
                    "{what}: the added endpoint e3 ({added}) answered none of 40 requests after the reload: {seen:?}"
                );
            }
        }
        Change::RemoveEndpoint => {
            for i in 0..40 {
                let who = served_by(&node.get(&format!("/rm/{i}")).await, &what);
                assert_ne!(
                    who, "e3",
                    "{what}: request {i} after the reload was served by the removed endpoint e3 ({added})"
                );
            }
        }
        Change::Cookie => {
            let (_, cookie) = cfg.sticky.as_ref().unwrap();
            let r = node.get("/sticky/x").await;
            let set = r.header("set-cookie").unwrap_or("<none>");
            assert!(
                r.status == StatusCode::OK && set.starts_with(&format!("{cookie}=")),
                "{what}: cookie-affinity's new config (cookie: {cookie}) did not apply: {} set-cookie {set}",
                r.status
            );
        }
        Change::Balancer => {
            for i in 0..5 {
                served_by(&node.get(&format!("/bal/{i}")).await, &what);
            }
            let after = plugin_calls(gw, cfg.balancer).await;
            assert!(
                after > balancer_before,
                "{what}: after switching svc to `balancer: {}`, that plugin was not called (edgeward_plugin_calls_total {balancer_before} → {after})",
                cfg.balancer
            );
        }
        Change::Invalid => unreachable!(),
    }
}

async fn http_reload(gw: &Gateway, cfg: &Cfg) {
    reload_to(gw, cfg, "POST /admin/reload").await;
}

async fn sighup_reload(gw: &Gateway, cfg: &Cfg) {
    gw.write_config(&cfg.render());
    gw.signal("HUP");
    gw.wait_generation(cfg.generation, STEP).await;
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_mixed_load_lose_nothing() {
    edgeward_bin();
    within(TEST_LIMIT, "the test", async {
        let (e1, e2, e3) = (
            Upstream::echo("e1").await,
            Upstream::echo("e2").await,
            Upstream::echo("e3").await,
        );
        let mut cfg = Node::cfg(vec![e1.addr, e2.addr]);
        cfg.sticky = Some((e1.addr, "pin-0".into()));
        let node = Node::start(&cfg).await;
        let mut probe = Probe::new(node.targets());
        assert_serving(&mut probe, 1, "at start").await;

        let load = node.load();
        load.wait_progress(&BTreeMap::new(), 5, STEP).await;
        use Change::*;
        let plan = [
            Header,
            Route,
            AddEndpoint,
            Cookie,
            RemoveEndpoint,
            Balancer,
            Header,
            Route,
            AddEndpoint,
            Invalid,
            Cookie,
            RemoveEndpoint,
            Balancer,
            Header,
            Route,
            AddEndpoint,
            Cookie,
            RemoveEndpoint,
            Balancer,
            Header,
        ];
        assert_eq!(plan.len(), 20);
        for (i, change) in plan.into_iter().enumerate() {
            let step = i + 1;
            let since = load.ok();
            if let Invalid = change {
                let mut bad = cfg.clone();
                bad.broken = true;
                bad.generation = 999;
                node.gw.write_config(&bad.render());
                let (status, body) =
                    within(STEP, "POST /admin/reload", node.gw.reload_http()).await;
                assert_refused(&node.gw, &bad, cfg.generation, status, &body).await;
                assert_serving(
                    &mut probe,
                    cfg.generation,
                    &format!("after the refused reload #{step}"),
                )
                .await;
                assert_eq!(
                    node.gw.readyz_generation().await,
                    Some(cfg.generation),
                    "/readyz after the refused reload #{step}"
                );
            } else {
                step_change(
                    &node,
                    &mut probe,
                    &mut cfg,
                    step,
                    change,
                    e3.addr,
                    http_reload,
                )
                .await;
            }
            // The next reload happens while every protocol is still busy.
            load.wait_progress(&since, 3, STEP).await;
        }
        let report = load.stop().await;
        report.assert_clean("20 reloads over POST /admin/reload");
        assert_eq!(cfg.generation, 20, "19 valid reloads after generation 1");
        let m = node.gw.metrics().await;
        assert_eq!(
            m.value("edgeward_generation", &[]),
            20.0,
            "edgeward_generation"
        );
        assert_eq!(
            m.value("edgeward_reloads_total", &[("result", "ok")]),
            19.0,
            "edgeward_reloads_total{{result=\"ok\"}}"
        );
        assert_eq!(
            m.value("edgeward_reloads_total", &[("result", "error")]),
            1.0,
            "edgeward_reloads_total{{result=\"error\"}}"
        );
        println!("load: {}", report.describe());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_under_load_lose_nothing_and_in_flight_finishes_on_old_generation() {
    edgeward_bin();
    within(TEST_LIMIT, "the test", async {
        let (e1, e2, e3) = (
            Upstream::echo("e1").await,
            Upstream::echo("e2").await,
            Upstream::echo("e3").await,
        );
        // Holds every response head until released: requests stay in flight
        // across the reload for as long as the test needs, not for a guessed time.
        let (release, hold) = tokio::sync::watch::channel(false);
        let slow = Upstream::start(move |_req| {
            let mut hold = hold.clone();
            async move {
                let _ = hold.wait_for(|go| *go).await;
                let mut r = Response::new(full("slow answer"));
                r.headers_mut().insert("x-upstream", "slow".parse().unwrap());
                r
            }
        })
        .await;
        let mut cfg = Node::cfg(vec![e1.addr, e2.addr]);
        cfg.sticky = Some((e1.addr, "pin-0".into()));
        cfg.specials.push(("slow", slow.addr));
        let node = Node::start(&cfg).await;
        let mut probe = Probe::new(node.targets());
        let load = node.load();
        load.wait_progress(&BTreeMap::new(), 5, STEP).await;

        use Change::*;
        for (i, change) in [Header, AddEndpoint, RemoveEndpoint, Invalid, Route, Cookie]
            .into_iter()
            .enumerate()
        {
            let step = i + 1;
            let since = load.ok();
            if let Invalid = change {
                let errors = reloads_total(&node.gw, "error").await;
                let mut bad = cfg.clone();
                bad.broken = true;
                bad.generation = 999;
                node.gw.write_config(&bad.render());
                node.gw.signal("HUP");
                let gw = &node.gw;
                until(
                    STEP,
                    format!("edgeward_reloads_total{{result=\"error\"}} to go above {errors} after SIGHUP with an invalid file"),
                    || async move { reloads_total(gw, "error").await > errors },
                )
                .await;
                assert_eq!(
                    node.gw.readyz_generation().await,
                    Some(cfg.generation),
                    "/readyz after SIGHUP with an invalid file"
                );
                assert_serving(&mut probe, cfg.generation, "after SIGHUP with an invalid file").await;
            } else {
                step_change(&node, &mut probe, &mut cfg, step, change, e3.addr, sighup_reload).await;
            }
            load.wait_progress(&since, 3, STEP).await;
        }

        // Requests in flight across a reload finish on the generation they began on.
        let old = cfg.generation;
        let slow_h1 = tokio::spawn({
            let url = node.url("/slow/h1");
            async move { Client::h1().get(&url).await }
        });
        let slow_h2 = tokio::spawn({
            let url = node.url("/slow/h2c");
            async move { Client::h2c().get(&url).await }
        });
        let h3 = H3Client::connect_tls(node.edge, "localhost", node.cert.client_config(&[b"h3"]))
            .await
            .expect("HTTP/3 connection");
        let slow_h3 = tokio::spawn({
            let h3 = h3.clone();
            async move { h3.get("/slow/h3").await }
        });
        let slow_up = &slow;
        until(STEP, "three requests held at the slow upstream", || async move {
            slow_up.hits() >= 3
        })
        .await;
        cfg.generation += 1;
        sighup_reload(&node.gw, &cfg).await;
        assert_serving(&mut probe, cfg.generation, "with requests held across SIGHUP").await;
        release.send(true).unwrap();
        let h1 = within(STEP, "the held h1 request", slow_h1).await.unwrap().expect("held h1 request");
        let h2 = within(STEP, "the held h2c request", slow_h2).await.unwrap().expect("held h2c request");
        let h3r = within(STEP, "the held h3 request", slow_h3).await.unwrap().expect("held h3 request");
        for (p, status, generation) in [
            ("h1", h1.status, h1.header(GEN).map(str::to_owned)),
            ("h2c", h2.status, h2.header(GEN).map(str::to_owned)),
            ("h3", h3r.status, h3r.header(GEN).map(str::to_owned)),
        ] {
            assert_eq!(status, StatusCode::OK, "the {p} request held across the reload");
            assert_eq!(
                generation.as_deref(),
                Some(old.to_string().as_str()),
                "the {p} request started under generation {old} and was held across the reload: it must finish on generation {old}"
            );
        }
        let next = node.get("/slow/after").await;
        assert_eq!(
            next.header(GEN),
            Some(cfg.generation.to_string().as_str()),
            "the next /slow request after the reload must run on generation {}",
            cfg.generation
        );

        let report = load.stop().await;
        report.assert_clean("reloads by SIGHUP");
    })
    .await;
}

/// Reads frames until at least `n` body bytes arrived (or the body ends).
async fn read_at_least(body: &mut hyper::body::Incoming, n: usize, into: &mut BytesMut) {
    while into.len() < n {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    into.extend_from_slice(&d);
                }
            }
            Some(Err(e)) => panic!("the streamed body failed after {} bytes: {e}", into.len()),
            None => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_change_applies_to_new_handshakes_while_h2_keeps_streaming() {
    edgeward_bin();
    within(TEST_LIMIT, "the test", async {
        let e1 = Upstream::echo("e1").await;
        let first = Bytes::from_static(b"first part of a long answer;");
        let rest: Vec<Bytes> = (0..8u8).map(|i| Bytes::from(vec![b'a' + i; 16 * 1024])).collect();
        let (stream, release) = Upstream::gated_stream("stream", vec![first.clone()], rest.clone()).await;
        let mut cfg = Node::cfg(vec![e1.addr]);
        cfg.specials.push(("stream", stream.addr));
        let node = Node::start(&cfg).await;
        let a = node.cert.clone();
        let b = TestCert::new(&["localhost"]);
        assert_ne!(a.der, b.der);

        let mut h2 = TlsClient::connect(node.edge, "localhost", &a, &[b"h2"])
            .await
            .expect("h2 connection trusting certificate A");
        assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(h2.peer_cert.as_ref(), Some(&a.der), "the gateway starts with certificate A");
        let h3_old = H3Client::connect_tls(node.edge, "localhost", a.client_config(&[b"h3"]))
            .await
            .expect("HTTP/3 connection trusting certificate A");
        let port = node.edge.port();
        let url = |p: &str| format!("https://localhost:{port}{p}");

        // A response that is mid-body during the reload.
        let resp = within(
            STEP,
            "the streamed response head",
            h2.send(Request::get(url("/stream/long")).body(empty()).unwrap()),
        )
        .await
        .expect("streamed request");
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        let mut got = BytesMut::new();
        within(STEP, "the first part of the body", read_at_least(&mut body, first.len(), &mut got)).await;
        assert_eq!(&got[..], &first[..], "the first part before the reload");

        node.gw.write_file("cert-b.pem", b.cert_pem.as_bytes());
        node.gw.write_file("key-b.pem", b.key_pem.as_bytes());
        cfg.cert = "cert-b.pem";
        cfg.key = "key-b.pem";
        cfg.generation = 2;
        reload_to(&node.gw, &cfg, "certificate A → B").await;

        // New handshakes present B, over TCP and QUIC.
        let presented = tls_peer_cert(node.edge, "localhost").await.expect("TLS handshake after the reload");
        assert!(
            presented == b.der,
            "a TLS handshake after the reload presented {} instead of the new certificate B",
            if presented == a.der { "the old certificate A" } else { "an unknown certificate" }
        );
        let mut fresh = TlsClient::connect(node.edge, "localhost", &b, &[b"h2"])
            .await
            .expect("a client trusting only B connects after the reload");
        let r = fresh
            .fetch(Request::get(url("/fresh")).body(empty()).unwrap())
            .await
            .expect("request on a connection made after the reload");
        assert_eq!((r.status, r.header(GEN)), (StatusCode::OK, Some("2")));
        assert!(
            TlsClient::connect(node.edge, "localhost", &a, &[b"h2"]).await.is_err(),
            "a client trusting only the old certificate A still completed a handshake after the reload"
        );
        let h3_new = H3Client::connect(node.edge).await.expect("QUIC handshake after the reload");
        assert!(
            h3_new.peer_certificate() == Some(&b.der),
            "a QUIC handshake after the reload did not present certificate B"
        );
        let r = h3_new.get("/h3-new").await.expect("HTTP/3 request after the reload");
        assert_eq!(r.status, StatusCode::OK);

        // Connections made before the reload keep working.
        let r = within(
            STEP,
            "a request on the h2 connection made before the reload",
            h2.fetch(Request::get(url("/old-connection")).body(empty()).unwrap()),
        )
        .await
        .expect("the h2 connection made before the certificate change must keep serving");
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.header(GEN),
            Some("2"),
            "a new request on an old connection runs on the current generation"
        );
        let r = within(STEP, "HTTP/3 on the old connection", h3_old.get("/h3-old"))
            .await
            .expect("the QUIC connection made before the certificate change must keep serving");
        assert_eq!(r.status, StatusCode::OK);

        // And the response that was mid-body finishes whole.
        release.send(true).unwrap();
        let total = first.len() + rest.iter().map(Bytes::len).sum::<usize>();
        within(STEP, "the rest of the streamed body", read_at_least(&mut body, total + 1, &mut got)).await;
        let mut want = BytesMut::from(&first[..]);
        for c in &rest {
            want.extend_from_slice(c);
        }
        assert_eq!(got.len(), want.len(), "the streamed body across the reload is truncated or too long");
        assert!(got == want, "the streamed body across the reload is corrupted");
    })
    .await;
}

/// Polls connecting to `addr` until it is refused.
async fn until_refused(addr: SocketAddr, what: &str) {
    until(
        STEP,
        format!("{what} ({addr}) to refuse connections"),
        || async move { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;
}

/// GET `http://addr/path` on a fresh connection, polling (bounded) while the
/// connection is refused, for a listener a reload has just added.
async fn get_on_new_listener(addr: SocketAddr, path: &str, what: &str) -> Fetched {
    until(
        STEP,
        format!("{what} ({addr}) to accept connections"),
        || async move { tokio::net::TcpStream::connect(addr).await.is_ok() },
    )
    .await;
    within(
        STEP,
        what,
        Client::h1().get(&format!("http://{addr}{path}")),
    )
    .await
    .unwrap_or_else(|e| panic!("GET {path} on {what} ({addr}): {e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_added_and_removed_on_reload() {
    edgeward_bin();
    within(TEST_LIMIT, "the test", async {
        let e1 = Upstream::echo("e1").await;
        let ports = free_addrs(3);
        let (pa, pb, admin) = (ports[0], ports[1], ports[2]);
        let mut cfg = Cfg::new(vec![listener("a", pa, false)], admin, vec![e1.addr]);
        let node = Node::start(&cfg).await;
        assert_eq!(node.gw.addr("a"), pa);
        let kept = H2cConn::connect(pa)
            .await
            .expect("h2c connection to listener a");
        let r = kept
            .fetch(
                Request::get(format!("http://{pa}/k"))
                    .body(empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.header(GEN), Some("1"));
        assert!(
            tokio::net::TcpStream::connect(pb).await.is_err(),
            "nothing listens on b's port before the reload"
        );

        cfg.listeners.push(listener("b", pb, false));
        cfg.generation = 2;
        reload_to(&node.gw, &cfg, "listener b added").await;
        let r = get_on_new_listener(pb, "/on-b", "listener b, added by the reload").await;
        assert_eq!((r.status, r.header(GEN)), (StatusCode::OK, Some("2")));
        let r = within(
            STEP,
            "a request on the h2c connection opened before the reload",
            kept.fetch(
                Request::get(format!("http://{pa}/still"))
                    .body(empty())
                    .unwrap(),
            ),
        )
        .await
        .expect("an unchanged listener keeps its established connections across a reload");
        assert_eq!((r.status, r.header(GEN)), (StatusCode::OK, Some("2")));
        assert!(kept.is_open());
        let r = Client::h1()
            .get(&format!("http://{pa}/new-conn"))
            .await
            .expect("listener a after the reload");
        assert_eq!(r.status, StatusCode::OK);

        cfg.listeners.retain(|l| l.name != "a");
        cfg.generation = 3;
        reload_to(&node.gw, &cfg, "listener a removed").await;
        until_refused(pa, "listener a, removed by the reload").await;
        let r = Client::h1()
            .get(&format!("http://{pb}/b-stays"))
            .await
            .expect("listener b after a's removal");
        assert_eq!((r.status, r.header(GEN)), (StatusCode::OK, Some("3")));

        // The freed address can be bound again.
        cfg.listeners.insert(0, listener("a", pa, false));
        cfg.generation = 4;
        reload_to(&node.gw, &cfg, "listener a added back").await;
        let r = get_on_new_listener(pa, "/a-again", "listener a, added back").await;
        assert_eq!((r.status, r.header(GEN)), (StatusCode::OK, Some("4")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_survives_reload_and_version_change_empties_it() {
    edgeward_bin();
    within(TEST_LIMIT, "the test", async {
        let (origin_server, origin) = Origin::start(Spec::default()).await;
        origin.header("cache-control", "max-age=300");
        let ports = free_addrs(2);
        let mut cfg = Cfg::new(
            vec![listener("plain", ports[0], false)],
            ports[1],
            vec![origin_server.addr],
        );
        cfg.cache_version = Some(1);
        let node = Node::start(&cfg).await;
        let x_cache = |r: &Fetched| r.header("x-cache").unwrap_or("<none>").to_owned();

        let a = node.get("/c/1").await;
        assert_eq!((a.status, x_cache(&a).as_str()), (StatusCode::OK, "MISS"));
        let b = node.get("/c/1").await;
        assert_eq!(x_cache(&b), "HIT", "the second request, before any reload");
        assert_eq!(origin_server.hits(), 1);

        // A reload that leaves `version:` alone keeps the entry.
        cfg.generation = 2;
        cfg.headers.push(("x-other".into(), "changed".into()));
        reload_to(&node.gw, &cfg, "a header change, cache version kept").await;
        let c = node.get("/c/1").await;
        assert_eq!(
            x_cache(&c),
            "HIT",
            "a reload that does not change the route's cache version must keep its entries"
        );
        assert_eq!(c.body, a.body, "the entry stored before the reload");
        assert_eq!(
            origin_server.hits(),
            1,
            "no origin request for a kept entry"
        );

        // A new `version:` is an empty key space.
        cfg.generation = 3;
        cfg.cache_version = Some(2);
        reload_to(&node.gw, &cfg, "cache version 1 → 2").await;
        let d = node.get("/c/1").await;
        assert_eq!(
            x_cache(&d),
            "MISS",
            "a new cache version must not serve entries of the old one"
        );
        assert_eq!(origin_server.hits(), 2);
        assert_ne!(d.body, a.body, "a fresh origin answer (new serial)");
        let e = node.get("/c/1").await;
        assert_eq!(x_cache(&e), "HIT", "stored again under version 2");
        assert_eq!(origin_server.hits(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_and_metrics_show_the_generation() {
    edgeward_bin();
    within(TEST_LIMIT, "the test", async {
        let e1 = Upstream::echo("e1").await;
        let ports = free_addrs(2);
        let mut cfg = Cfg::new(
            vec![listener("plain", ports[0], false)],
            ports[1],
            vec![e1.addr],
        );
        let node = Node::start(&cfg).await;
        let gw = &node.gw;

        let expect = async |generation: u64, ok: f64, err: f64, when: &str| {
            let (status, body) = gw.readyz().await;
            assert_eq!(status, StatusCode::OK, "/readyz {when}: {body}");
            assert!(
                body.starts_with("ready"),
                "/readyz {when} must start with `ready`: {body:?}"
            );
            assert!(
                body.contains(&format!("generation {generation}")),
                "/readyz {when} must say `generation {generation}`: {body:?}"
            );
            let m = gw.metrics().await;
            assert_eq!(
                m.kind_of("edgeward_generation"),
                Some("gauge"),
                "edgeward_generation is a gauge"
            );
            assert_eq!(
                m.value("edgeward_generation", &[]),
                generation as f64,
                "edgeward_generation {when}"
            );
            for (result, want) in [("ok", ok), ("error", err)] {
                let got = m.get("edgeward_reloads_total", &[("result", result)]);
                // Before any reload the counter may be absent or 0.
                if want > 0.0 || got.is_some() {
                    assert_eq!(
                        m.kind_of("edgeward_reloads_total"),
                        Some("counter"),
                        "edgeward_reloads_total is a counter"
                    );
                    assert_eq!(
                        got,
                        Some(want),
                        "edgeward_reloads_total{{result=\"{result}\"}} {when}"
                    );
                }
            }
        };
        expect(1, 0.0, 0.0, "at start").await;

        cfg.generation = 2;
        reload_to(gw, &cfg, "first reload").await;
        expect(2, 1.0, 0.0, "after one reload").await;

        let mut bad = cfg.clone();
        bad.broken = true;
        gw.write_config(&bad.render());
        let (status, body) = gw.reload_http().await;
        assert_refused(gw, &bad, 2, status, &body).await;
        expect(2, 1.0, 1.0, "after a refused reload").await;
        assert_eq!(
            node.get("/x").await.header(GEN),
            Some("2"),
            "generation 2 still serves"
        );

        // A reload of an unchanged (valid) file is still a new generation.
        cfg.generation = 3;
        reload_to(gw, &cfg, "fixed file").await;
        // The file is left as it is: the same bytes make generation 4.
        let (status, body) = gw.reload_http().await;
        assert_eq!(
            (status, body["generation"].as_u64()),
            (StatusCode::OK, Some(4)),
            "reloading an unchanged valid file answered {status}: {body}"
        );
        expect(
            4,
            3.0,
            1.0,
            "after three successful reloads and one refused",
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_health_and_counters_survive_reload() {
    edgeward_bin();
    within(TEST_LIMIT, "the test", async {
        let e1 = Upstream::echo("e1").await;
        // A port nothing listens on: connecting is refused.
        let dead = free_addrs(1)[0];
        let ports = free_addrs(2);
        let mut cfg = Cfg::new(vec![listener("plain", ports[0], false)], ports[1], vec![dead, e1.addr]);
        cfg.cool_down = Some("1h");
        let node = Node::start(&cfg).await;
        let gw = &node.gw;
        for i in 0..10 {
            served_by(&node.get(&format!("/h/{i}")).await, "before the reload");
        }
        let svc = [("upstream", "svc")];
        let m = gw.metrics().await;
        assert_eq!(
            m.value("edgeward_upstream_connect_errors_total", &svc),
            1.0,
            "the dead endpoint is tried once, then kept out for the 1h cool-down"
        );
        let dead_s = dead.to_string();
        let e1_s = e1.addr.to_string();
        let healthy = |m: &edgeward_e2e::prom::Samples, ep: &str| {
            m.value("edgeward_endpoint_healthy", &[("upstream", "svc"), ("endpoint", ep)])
        };
        assert_eq!(healthy(&m, &dead_s), 0.0, "edgeward_endpoint_healthy of the dead endpoint");
        assert_eq!(healthy(&m, &e1_s), 1.0, "edgeward_endpoint_healthy of the live endpoint");
        let route = [("route", "main"), ("class", "2xx")];
        until(STEP, "10 requests counted on route main", || async move {
            gw.metrics().await.get("edgeward_requests_total", &route).unwrap_or(0.0) >= 10.0
        })
        .await;

        cfg.generation = 2;
        cfg.headers.push(("x-after".into(), "1".into()));
        reload_to(gw, &cfg, "a header change, endpoints kept").await;
        for i in 0..20 {
            served_by(&node.get(&format!("/h2/{i}")).await, "after the reload");
        }
        until(STEP, "30 requests counted on route main", || async move {
            gw.metrics().await.get("edgeward_requests_total", &route).unwrap_or(0.0) >= 30.0
        })
        .await;
        let m = gw.metrics().await;
        assert_eq!(
            m.value("edgeward_upstream_connect_errors_total", &svc),
            1.0,
            "the reload forgot that {dead} refused connections: it was tried again (its address did not change, so its health must carry over)"
        );
        assert_eq!(healthy(&m, &dead_s), 0.0, "the dead endpoint's health after the reload");
        assert_eq!(
            m.value("edgeward_requests_total", &route),
            30.0,
            "edgeward_requests_total{{route=\"main\",class=\"2xx\"}} must count on across the reload (10 before + 20 after)"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reloads_on_file_change() {
    edgeward_bin();
    within(TEST_LIMIT, "the test", async {
        let e1 = Upstream::echo("e1").await;
        let ports = free_addrs(2);
        let mut cfg = Cfg::new(
            vec![listener("plain", ports[0], false)],
            ports[1],
            vec![e1.addr],
        );
        let node = Node::start_with_args(&cfg, &["--watch"]).await;
        let gw = &node.gw;
        assert_eq!(gw.readyz_generation().await, Some(1), "/readyz at start");

        cfg.generation = 2;
        cfg.headers.push(("x-watched".into(), "yes".into()));
        gw.write_config(&cfg.render());
        gw.wait_generation(2, STEP).await;
        let r = node.get("/w").await;
        assert_eq!(
            (r.header(GEN), r.header("x-watched")),
            (Some("2"), Some("yes")),
            "the file change picked up by --watch"
        );

        let mut bad = cfg.clone();
        bad.broken = true;
        bad.generation = 999;
        gw.write_config(&bad.render());
        until(
            STEP,
            "--watch to try the invalid file (edgeward_reloads_total{result=\"error\"} = 1)",
            || async move { reloads_total(gw, "error").await >= 1.0 },
        )
        .await;
        assert_eq!(
            gw.readyz_generation().await,
            Some(2),
            "an invalid file must not make a generation"
        );
        assert_eq!(
            node.get("/w2").await.header(GEN),
            Some("2"),
            "generation 2 still serves"
        );

        cfg.generation = 3;
        gw.write_config(&cfg.render());
        gw.wait_generation(3, STEP).await;
        assert_eq!(node.get("/w3").await.header(GEN), Some("3"));
    })
    .await;
}
