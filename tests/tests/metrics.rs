//! `/metrics` end to end: exact counts per route and upstream after a known
//! number of requests over every protocol, histograms a real Prometheus parser
//! (Python `prometheus_client`) accepts, in-flight gauges held for as long as a
//! body streams, and label values that could break the text format.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use edgeward_e2e::client::{Client, H2cConn};
use edgeward_e2e::gateway::{CONFIG_FILE, check};
use edgeward_e2e::load::{Probe, Proto, Targets};
use edgeward_e2e::prom::Samples;
use edgeward_e2e::{Gateway, TestCert, Upstream, edgeward_bin, empty, free_addrs, full};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

const TEST_LIMIT: Duration = Duration::from_secs(55);
const STEP: Duration = Duration::from_secs(10);
const NODE: &str = "edge-metrics";
const REGION: &str = "test-1";

async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Scrapes until `ready` holds for the parsed samples; panics after `limit`
/// with `what` and the last value `show` gives.
async fn scrape_until(
    gw: &Gateway,
    what: &str,
    ready: impl Fn(&Samples) -> bool,
    show: impl Fn(&Samples) -> String,
) -> Samples {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let m = gw.metrics().await;
        if ready(&m) {
            return m;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "timed out after {STEP:?} waiting for {what}; last scrape: {}",
                show(&m)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads the request body, then answers `<name> <path> <bytes read>`.
async fn sink(name: &'static str) -> Upstream {
    Upstream::start(move |req: Request<Incoming>| async move {
        let path = req.uri().path().to_owned();
        let n = match req.into_body().collect().await {
            Ok(b) => b.to_bytes().len(),
            Err(_) => usize::MAX,
        };
        let mut r = Response::new(full(format!("{name} {path} {n}")));
        r.headers_mut().insert("x-upstream", name.parse().unwrap());
        r
    })
    .await
}

struct Node {
    gw: Gateway,
    cert: TestCert,
    edge: SocketAddr,
    plain: SocketAddr,
}

/// A TLS listener `edge` (h1, h2, h3), a plaintext `plain`, admin, and one
/// route per `(route, upstream, endpoints)`, matched by prefix `/<route>`.
async fn start(routes: &[(&str, &str, Vec<SocketAddr>)]) -> Node {
    let a = free_addrs(3);
    let cert = TestCert::new(&["localhost"]);
    let mut ups = String::new();
    let mut rs = String::new();
    for (route, upstream, endpoints) in routes {
        let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
        ups += &format!("  {upstream}:\n    endpoints: [{}]\n", list.join(", "));
        rs += &format!(
            "  - name: {route}\n    match: {{path-prefix: /{route}}}\n    upstream: {upstream}\n    timeout: 30s\n"
        );
    }
    let yaml = format!(
        "node:\n  name: {NODE}\n  region: {REGION}\nlisteners:\n\
         \x20 - name: edge\n    address: \"{}\"\n    protocols: [h1, h2, h3]\n    tls:\n      certificates:\n        - {{cert: cert.pem, key: key.pem}}\n\
         \x20 - name: plain\n    address: \"{}\"\nadmin:\n  address: \"{}\"\n\
         upstreams:\n{ups}routes:\n{rs}",
        a[0], a[1], a[2]
    );
    let gw = Gateway::start_with(
        &yaml,
        &[
            ("cert.pem", cert.cert_pem.as_bytes()),
            ("key.pem", cert.key_pem.as_bytes()),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("gateway did not start: {e:#}\n--- config:\n{yaml}"));
    Node {
        gw,
        cert,
        edge: a[0],
        plain: a[1],
    }
}

impl Node {
    fn probe(&self) -> Probe {
        Probe::new(Targets::new(
            Some(self.plain),
            Some((self.edge, self.cert.clone())),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_upstream_histograms_count_every_request() {
    edgeward_bin();
    within(TEST_LIMIT, "the test", async {
        const K: usize = 37;
        const M: usize = 23;
        const POSTS: usize = 7;
        const POST_BODY: usize = 100;
        let (a1, a2, b1) = (sink("a1").await, sink("a2").await, sink("b1").await);
        let node = start(&[
            ("a", "u1", vec![a1.addr, a2.addr]),
            ("b", "u2", vec![b1.addr]),
        ])
        .await;
        let gw = &node.gw;
        let mut probe = node.probe();

        // K to route a: GETs rotating over every protocol, and POSTs with a body.
        let mut response_bytes = [0usize; 2];
        for i in 0..K - POSTS {
            let p = Proto::ALL[i % Proto::ALL.len()];
            let r = probe.must_get(p, &format!("/a/{i}")).await;
            assert_eq!(r.status, StatusCode::OK, "{p} GET /a/{i}: {}", r.text());
            response_bytes[0] += r.body.len();
        }
        let h1 = Client::h1();
        for i in 0..POSTS {
            let req = Request::post(format!("http://{}/a/post/{i}", node.plain))
                .body(full(vec![b'x'; POST_BODY]))
                .unwrap();
            let r = within(STEP, "a POST", h1.fetch(req)).await.expect("POST /a");
            assert_eq!(r.status, StatusCode::OK);
            assert!(r.text().ends_with(&format!(" {POST_BODY}")), "the upstream got the whole body: {}", r.text());
            response_bytes[0] += r.body.len();
        }
        // M to route b.
        for i in 0..M {
            let p = Proto::ALL[(i + 1) % Proto::ALL.len()];
            let r = probe.must_get(p, &format!("/b/{i}")).await;
            assert_eq!(r.status, StatusCode::OK, "{p} GET /b/{i}: {}", r.text());
            response_bytes[1] += r.body.len();
        }
        assert_eq!(a1.hits() + a2.hits(), K);
        assert_eq!(b1.hits(), M);

        // Recorded at the end of each response body, which may trail the client's
        // last read by a moment: wait (bounded) for the counts to arrive, then
        // assert them exactly.
        let count = |m: &Samples, up: &str| {
            m.get("edgeward_upstream_request_duration_seconds_count", &[("upstream", up)])
                .unwrap_or(-1.0)
        };
        let m = scrape_until(
            gw,
            "the upstream histograms to count every request and the in-flight gauges to drop to 0",
            |m| {
                count(m, "u1") >= K as f64
                    && count(m, "u2") >= M as f64
                    && m.sum("edgeward_in_flight_requests", &[]) == 0.0
                    && m.sum("edgeward_upstream_in_flight_requests", &[]) == 0.0
                    && m.sum("edgeward_endpoint_in_flight_requests", &[]) == 0.0
            },
            |m| {
                format!(
                    "upstream_request_duration_seconds_count u1={} u2={}, in_flight={}, upstream_in_flight={}, endpoint_in_flight={}",
                    count(m, "u1"),
                    count(m, "u2"),
                    m.sum("edgeward_in_flight_requests", &[]),
                    m.sum("edgeward_upstream_in_flight_requests", &[]),
                    m.sum("edgeward_endpoint_in_flight_requests", &[])
                )
            },
        )
        .await;

        for (route, upstream, n, endpoints) in [
            ("a", "u1", K, vec![a1.addr, a2.addr]),
            ("b", "u2", M, vec![b1.addr]),
        ] {
            let n = n as f64;
            let r = [("route", route)];
            let u = [("upstream", upstream)];
            for base in [
                "edgeward_upstream_request_duration_seconds",
                "edgeward_upstream_ttfb_seconds",
            ] {
                let (c, s) = m.histogram(base, &u);
                assert_eq!(c, n, "{base}_count{{upstream=\"{upstream}\"}}: one observation per request");
                assert!(s > 0.0 && s.is_finite(), "{base}_sum{{upstream=\"{upstream}\"}} = {s}");
            }
            let (c, s) = m.histogram("edgeward_request_duration_seconds", &r);
            assert_eq!(c, n, "edgeward_request_duration_seconds_count{{route=\"{route}\"}}");
            assert!(s > 0.0 && s.is_finite(), "edgeward_request_duration_seconds_sum{{route=\"{route}\"}} = {s}");

            assert_eq!(m.kind_of("edgeward_requests_total"), Some("counter"));
            let ok = [("route", route), ("class", "2xx"), ("node", NODE), ("region", REGION)];
            assert_eq!(
                m.value("edgeward_requests_total", &ok),
                n,
                "edgeward_requests_total{{route=\"{route}\",class=\"2xx\"}} (with node and region labels)"
            );
            for class in ["1xx", "3xx", "4xx", "5xx"] {
                let v = m.get("edgeward_requests_total", &[("route", route), ("class", class)]);
                assert!(
                    v.unwrap_or(0.0) == 0.0,
                    "edgeward_requests_total{{route=\"{route}\",class=\"{class}\"}} = {v:?}, no such answers were sent"
                );
            }
            assert_eq!(
                m.value("edgeward_upstream_requests_total", &[("upstream", upstream), ("class", "2xx")]),
                n,
                "edgeward_upstream_requests_total{{upstream=\"{upstream}\",class=\"2xx\"}}"
            );

            for (g, labels) in [
                ("edgeward_in_flight_requests", &r[..]),
                ("edgeward_upstream_in_flight_requests", &u[..]),
            ] {
                assert_eq!(m.kind_of(g), Some("gauge"), "{g} is a gauge");
                assert_eq!(m.value(g, labels), 0.0, "{g}{labels:?} once every response was read");
            }
            for c in [
                "edgeward_upstream_connect_errors_total",
                "edgeward_upstream_timeouts_total",
                "edgeward_upstream_retries_total",
            ] {
                assert_eq!(m.value(c, &u), 0.0, "{c}{{upstream=\"{upstream}\"}}: nothing failed");
            }

            // One series per endpoint, labelled with its configured address.
            let want: BTreeSet<String> = endpoints.iter().map(|e| e.to_string()).collect();
            for g in [
                "edgeward_endpoint_in_flight_requests",
                "edgeward_endpoint_healthy",
                "edgeward_endpoint_latency_ewma_seconds",
            ] {
                let got: BTreeSet<String> = m
                    .all(g, &u)
                    .iter()
                    .filter_map(|s| s.labels.get("endpoint").cloned())
                    .collect();
                assert_eq!(got, want, "{g}{{upstream=\"{upstream}\"}}: the endpoint label values");
            }
            for e in &want {
                let l = [("upstream", upstream), ("endpoint", e.as_str())];
                assert_eq!(m.value("edgeward_endpoint_in_flight_requests", &l), 0.0, "endpoint {e} in flight");
                assert_eq!(m.value("edgeward_endpoint_healthy", &l), 1.0, "endpoint {e} healthy");
                let ewma = m.value("edgeward_endpoint_latency_ewma_seconds", &l);
                assert!(
                    ewma > 0.0 && ewma < 10.0,
                    "edgeward_endpoint_latency_ewma_seconds of {e} = {ewma}: it answered, so it has a latency"
                );
            }
        }

        // Bytes: at least the bodies (what counts beyond them is the gateway's choice).
        let bytes = |name: &str, route: &str| m.value(name, &[("route", route)]);
        assert!(
            bytes("edgeward_request_bytes_total", "a") >= (POSTS * POST_BODY) as f64,
            "edgeward_request_bytes_total{{route=\"a\"}} = {}, but {POSTS} bodies of {POST_BODY} bytes were sent",
            bytes("edgeward_request_bytes_total", "a")
        );
        bytes("edgeward_request_bytes_total", "b");
        for (i, route) in ["a", "b"].into_iter().enumerate() {
            let got = bytes("edgeward_response_bytes_total", route);
            assert!(
                got >= response_bytes[i] as f64,
                "edgeward_response_bytes_total{{route=\"{route}\"}} = {got}, but the clients read {} body bytes",
                response_bytes[i]
            );
        }
    })
    .await;
}

/// Reads frames until at least `n` body bytes arrived (or the body ends).
async fn read_at_least(body: &mut Incoming, n: usize, into: &mut BytesMut) {
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
async fn in_flight_is_held_until_the_body_ends() {
    edgeward_bin();
    within(TEST_LIMIT, "the test", async {
        let first = Bytes::from_static(b"head and a first chunk;");
        let rest: Vec<Bytes> = (0..10u8).map(|i| Bytes::from(vec![b'0' + i; 4096])).collect();
        let (s1, release1) = Upstream::gated_stream("s1", vec![first.clone()], rest.clone()).await;
        let (s2, release2) = Upstream::gated_stream("s2", vec![first.clone()], rest.clone()).await;
        let node = start(&[
            ("s1", "us1", vec![s1.addr]),
            ("s2", "us2", vec![s2.addr]),
        ])
        .await;
        let gw = &node.gw;
        let total = first.len() + rest.iter().map(Bytes::len).sum::<usize>();
        let h2c = H2cConn::connect(node.plain).await.expect("h2c connection");
        // Kept for the whole test: its pooled connection carries the h1 stream.
        let h1 = Client::h1();

        for (proto, route, upstream, endpoint, release) in [
            ("HTTP/1.1", "s1", "us1", s1.addr, &release1),
            ("h2c", "s2", "us2", s2.addr, &release2),
        ] {
            let url = format!("http://{}/{route}/long", node.plain);
            let req = Request::get(&url).body(empty()).unwrap();
            let resp = within(STEP, "the response head", async {
                if proto == "h2c" {
                    h2c.send(req).await
                } else {
                    h1.send(req).await
                }
            })
            .await
            .unwrap_or_else(|e| panic!("{proto} GET {url}: {e:#}"));
            assert_eq!(resp.status(), StatusCode::OK);
            let mut body = resp.into_body();
            let mut got = BytesMut::new();
            within(STEP, "the first chunk", read_at_least(&mut body, first.len(), &mut got)).await;
            let reading_since = tokio::time::Instant::now();

            let endpoint = endpoint.to_string();
            let r = [("route", route)];
            let u = [("upstream", upstream)];
            let e = [("upstream", upstream), ("endpoint", endpoint.as_str())];
            let gauges = |m: &Samples| {
                (
                    m.get("edgeward_in_flight_requests", &r).unwrap_or(-1.0),
                    m.get("edgeward_upstream_in_flight_requests", &u).unwrap_or(-1.0),
                    m.get("edgeward_endpoint_in_flight_requests", &e).unwrap_or(-1.0),
                )
            };
            let m = gw.metrics().await;
            assert_eq!(
                gauges(&m),
                (1.0, 1.0, 1.0),
                "{proto}: while the client is still reading the body, (edgeward_in_flight_requests{{route=\"{route}\"}}, \
                 edgeward_upstream_in_flight_requests{{upstream=\"{upstream}\"}}, edgeward_endpoint_in_flight_requests) \
                 must all be 1 (-1 = absent)"
            );
            assert_eq!(
                m.sum("edgeward_in_flight_requests", &[]),
                1.0,
                "{proto}: exactly one request is in flight across all routes"
            );

            // The gateway's request began before the first chunk reached us and
            // cannot end before the rest is released: at least this long.
            let held = reading_since.elapsed();
            release.send(true).unwrap();
            within(STEP, "the rest of the body", read_at_least(&mut body, total + 1, &mut got)).await;
            assert_eq!(got.len(), total, "{proto}: the whole streamed body");
            let m = scrape_until(
                gw,
                &format!("{proto}: the in-flight gauges to drop to 0 after the body ended"),
                |m| gauges(m) == (0.0, 0.0, 0.0),
                |m| format!("(route, upstream, endpoint) = {:?}", gauges(m)),
            )
            .await;
            let (c, s) = m.histogram("edgeward_request_duration_seconds", &r);
            assert_eq!(c, 1.0, "{proto}: one request recorded on route {route}");
            assert!(
                s + 0.001 >= held.as_secs_f64(),
                "{proto}: edgeward_request_duration_seconds_sum{{route=\"{route}\"}} = {s}s is shorter than the {:?} the body was known to be streaming: the duration must run to the end of the body",
                held
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_name_with_quote_is_refused_or_escaped() {
    edgeward_bin();
    within(TEST_LIMIT, "the test", async {
        let up = Upstream::echo("q").await;
        let a = free_addrs(2);
        let name = "a\"b";
        let yaml = format!(
            "listeners:\n  - name: plain\n    address: \"{}\"\nadmin:\n  address: \"{}\"\n\
             upstreams:\n  u:\n    endpoints: [\"{}\"]\n\
             routes:\n  - name: 'a\"b'\n    upstream: u\n",
            a[0], a[1], up.addr
        );
        let line = yaml
            .lines()
            .position(|l| l.contains("name: 'a"))
            .expect("the route line")
            + 1;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(CONFIG_FILE);
        std::fs::write(&file, &yaml).unwrap();
        let (code, text) = tokio::task::spawn_blocking(move || check(&file)).await.unwrap();
        if code != 0 {
            // Refused: a located error about the route's name.
            assert_eq!(code, 1, "edgeward check: {text}");
            let located =
                text.contains(&format!("{CONFIG_FILE}:{line}:")) && text.contains("routes[0].name");
            assert!(
                located,
                "a refused route name must be reported as `{CONFIG_FILE}:{line}:COL: routes[0].name: ...`: {text}"
            );
            return;
        }
        // Accepted: the label must come out escaped and parse back to the name.
        let gw = Gateway::start(&yaml).await.expect("check said ok, so run must start");
        let r = Client::h1().get(&gw.url("plain", "/q")).await.expect("GET through the route");
        assert_eq!(r.status, StatusCode::OK);
        let m = gw.metrics().await;
        let with_name: Vec<f64> = m
            .all("edgeward_requests_total", &[("route", name), ("class", "2xx")])
            .iter()
            .map(|s| s.value)
            .collect();
        assert_eq!(
            with_name,
            [1.0],
            "edgeward_requests_total with route label {name:?} must parse back to that exact name; routes seen: {:?}",
            m.all("edgeward_requests_total", &[])
                .iter()
                .filter_map(|s| s.labels.get("route"))
                .collect::<BTreeSet<_>>()
        );
    })
    .await;
}
