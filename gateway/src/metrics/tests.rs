use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::StatusCode;

use super::*;

const MS: Duration = Duration::from_millis(1);

/// One sample line: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A small parser of the text format: checks each line's shape, unescapes
/// label values, and that every sample follows a `# TYPE` of its family.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut typed: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed = Some((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "odd line {line:?}"
        );
        let (name, rest) = match line.find('{') {
            Some(i) => (&line[..i], &line[i..]),
            None => line.split_at(line.find(' ').unwrap()),
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            loop {
                let (start, _) = chars.next().unwrap();
                let eq = body[start..].find("=\"").unwrap() + start;
                let key = body[start..eq].to_owned();
                for _ in start..eq + 1 {
                    chars.next();
                }
                let mut value = String::new();
                loop {
                    match chars.next().unwrap().1 {
                        '\\' => match chars.next().unwrap().1 {
                            'n' => value.push('\n'),
                            c @ ('\\' | '"') => value.push(c),
                            c => panic!("bad escape \\{c} in {line}"),
                        },
                        '"' => break,
                        '\n' => panic!("raw newline in {line}"),
                        c => value.push(c),
                    }
                }
                labels.insert(key, value);
                match chars.next().unwrap() {
                    (_, ',') => continue,
                    (i, '}') => {
                        rest = &body[i + 1..];
                        break;
                    }
                    (_, c) => panic!("unexpected {c} in {line}"),
                }
            }
        }
        let value = rest.strip_prefix(' ').unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (family, kind) = typed.as_ref().unwrap_or_else(|| panic!("untyped {line}"));
        let ok = match kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name == format!("{family}{s}")),
            _ => name == family,
        };
        assert!(ok, "{name} outside its family {family}");
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    out
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no {name}{labels:?}"))
        .value
}

/// A clock tests move by hand.
struct FakeClock {
    t0: Instant,
    ms: AtomicU64,
}

impl FakeClock {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            t0: Instant::now(),
            ms: AtomicU64::new(0),
        })
    }
    fn advance(&self, d: Duration) {
        self.ms.fetch_add(d.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms.load(Ordering::Relaxed))
    }
}

#[test]
fn same_route_name_shares_counters() {
    let m = NodeMetrics::new("n1", "eu");
    let a = m.route("api");
    let b = m.route("api"); // e.g. the next generation after a reload
    a.finish(StatusCode::OK, 2 * MS, 10, 20);
    b.finish(StatusCode::OK, 2 * MS, 1, 2);
    b.finish(StatusCode::BAD_GATEWAY, 2 * MS, 0, 0);
    let s = parse(&m.render());
    let r = [("route", "api")];
    assert_eq!(
        value(
            &s,
            "edgeward_requests_total",
            &[("route", "api"), ("class", "2xx")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &s,
            "edgeward_requests_total",
            &[("route", "api"), ("class", "5xx")]
        ),
        1.0
    );
    assert_eq!(value(&s, "edgeward_request_bytes_total", &r), 11.0);
    assert_eq!(value(&s, "edgeward_response_bytes_total", &r), 22.0);
    assert_eq!(
        value(&s, "edgeward_request_duration_seconds_count", &r),
        3.0
    );
    assert!((value(&s, "edgeward_request_duration_seconds_sum", &r) - 0.006).abs() < 1e-9);
    let api_2xx = s
        .iter()
        .filter(|x| x.name == "edgeward_requests_total" && x.labels["route"] == "api")
        .count();
    assert_eq!(api_2xx, 5, "one series per class, not per handle");
}

#[test]
fn every_series_has_node_and_region_first() {
    let m = NodeMetrics::new("edge-1", "eu-west-1");
    m.route("r").finish(StatusCode::OK, MS, 0, 0);
    let text = m.render();
    assert!(
        text.contains(
            "edgeward_requests_total{node=\"edge-1\",region=\"eu-west-1\",route=\"r\",class=\"2xx\"} 1\n"
        ),
        "{text}"
    );
    for s in parse(&text) {
        assert_eq!(s.labels["node"], "edge-1", "{}", s.name);
        assert_eq!(s.labels["region"], "eu-west-1", "{}", s.name);
    }
}

#[test]
fn in_flight_lasts_as_long_as_the_guard() {
    let m = NodeMetrics::new("n", "r");
    let route = m.route("r");
    let up = m.upstream("u");
    let g1 = route.start();
    let g2 = route.start();
    let g3 = up.start();
    let s = parse(&m.render());
    assert_eq!(
        value(&s, "edgeward_in_flight_requests", &[("route", "r")]),
        2.0
    );
    assert_eq!(
        value(
            &s,
            "edgeward_upstream_in_flight_requests",
            &[("upstream", "u")]
        ),
        1.0
    );
    drop((g1, g2, g3));
    let s = parse(&m.render());
    assert_eq!(
        value(&s, "edgeward_in_flight_requests", &[("route", "r")]),
        0.0
    );
    assert_eq!(
        value(
            &s,
            "edgeward_upstream_in_flight_requests",
            &[("upstream", "u")]
        ),
        0.0
    );
}

#[test]
fn upstream_handles_are_one_arc_per_name_and_feed_the_window() {
    let clock = FakeClock::new();
    let m = NodeMetrics::with_clock("n", "r", clock.clone());
    let a = m.upstream("orders");
    assert!(Arc::ptr_eq(&a, &m.upstream("orders")));
    assert!(!Arc::ptr_eq(&a, &m.upstream("users")));
    assert_eq!(m.upstreams().len(), 2);

    a.first_byte(3 * MS);
    a.finish(StatusCode::OK, 5 * MS, 100, 2000);
    a.finish(StatusCode::SERVICE_UNAVAILABLE, 5 * MS, 0, 10);
    a.connect_error();
    a.finish(StatusCode::BAD_GATEWAY, MS, 0, 0); // the failed attempt
    a.retry();
    a.timeout();
    a.finish(StatusCode::GATEWAY_TIMEOUT, 30 * MS, 0, 0);
    clock.advance(Duration::from_secs(1));
    let w = a.window().snapshot(a.now(), Duration::from_secs(1));
    assert_eq!((w.requests, w.errors), (4, 3));
    assert_eq!(w.rate_per_sec, 4.0);
    assert!(w.p99.unwrap() > 20 * MS, "{w:?}");
    // Nothing was recorded in the next second yet.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        a.window()
            .snapshot(a.now(), Duration::from_secs(1))
            .requests,
        0
    );

    let s = parse(&m.render());
    let u = [("upstream", "orders")];
    let class = |c| [("upstream", "orders"), ("class", c)];
    assert_eq!(
        value(&s, "edgeward_upstream_requests_total", &class("2xx")),
        1.0
    );
    assert_eq!(
        value(&s, "edgeward_upstream_requests_total", &class("5xx")),
        3.0
    );
    assert_eq!(value(&s, "edgeward_upstream_ttfb_seconds_count", &u), 1.0);
    assert_eq!(
        value(&s, "edgeward_upstream_request_duration_seconds_count", &u),
        4.0
    );
    assert_eq!(
        value(&s, "edgeward_upstream_request_bytes_total", &u),
        100.0
    );
    assert_eq!(
        value(&s, "edgeward_upstream_response_bytes_total", &u),
        2010.0
    );
    for name in [
        "edgeward_upstream_connect_errors_total",
        "edgeward_upstream_retries_total",
        "edgeward_upstream_timeouts_total",
    ] {
        assert_eq!(value(&s, name, &u), 1.0, "{name}");
    }
}

#[test]
fn node_wide_counters_render_with_their_names() {
    let m = NodeMetrics::new("n", "r");
    m.no_route.inc();
    m.bad_requests.inc();
    m.client_aborted.inc();
    m.internal_errors.inc();
    m.upstream_errors.inc();
    m.plugin_failures.inc();
    m.no_endpoint.inc();
    m.requests_by_protocol(http::Version::HTTP_11);
    m.requests_by_protocol(http::Version::HTTP_2);
    m.requests_by_protocol(http::Version::HTTP_3);
    m.requests_by_protocol(http::Version::HTTP_3);
    m.set_generation(7);
    m.reloaded(true);
    m.reloaded(false);
    m.reloaded(false);
    let text = m.render();
    let s = parse(&text);
    for name in [
        "edgeward_no_route_total",
        "edgeward_bad_requests_total",
        "edgeward_client_aborted_total",
        "edgeward_internal_errors_total",
        "edgeward_upstream_errors_total",
        "edgeward_plugin_failures_total",
        "edgeward_no_endpoint_total",
    ] {
        assert_eq!(value(&s, name, &[]), 1.0, "{name}");
    }
    let p = |p| {
        value(
            &s,
            "edgeward_requests_by_protocol_total",
            &[("protocol", p)],
        )
    };
    assert_eq!((p("http1"), p("h2"), p("h3")), (1.0, 1.0, 2.0));
    assert_eq!(value(&s, "edgeward_generation", &[]), 7.0);
    assert_eq!(
        value(&s, "edgeward_reloads_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(
        value(&s, "edgeward_reloads_total", &[("result", "error")]),
        2.0
    );
    assert!(
        text.contains("# TYPE edgeward_no_route_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE edgeward_generation gauge\n"),
        "{text}"
    );
    assert!(!text.contains("_total_total"), "{text}");
}

#[test]
fn histogram_families_expose_buckets_in_seconds() {
    let m = NodeMetrics::new("n", "r");
    let r = m.route("r");
    r.finish(StatusCode::OK, Duration::from_micros(400), 0, 0);
    r.finish(StatusCode::OK, Duration::from_millis(20), 0, 0);
    r.finish(StatusCode::OK, Duration::from_secs(60), 0, 0);
    let text = m.render();
    assert!(
        text.contains("# TYPE edgeward_request_duration_seconds histogram\n"),
        "{text}"
    );
    let s = parse(&text);
    let bucket = |le| {
        value(
            &s,
            "edgeward_request_duration_seconds_bucket",
            &[("route", "r"), ("le", le)],
        )
    };
    assert_eq!(bucket("0.0005"), 1.0);
    assert_eq!(bucket("0.01"), 1.0);
    assert_eq!(bucket("0.025"), 2.0); // cumulative
    assert_eq!(bucket("30"), 2.0);
    assert_eq!(bucket("+Inf"), 3.0);
    let buckets = s
        .iter()
        .filter(|x| x.name == "edgeward_request_duration_seconds_bucket")
        .count();
    assert_eq!(buckets, LATENCY_BUCKETS.len() + 1);
}

#[test]
fn sources_are_read_at_scrape_time_and_replaceable() {
    let m = NodeMetrics::new("n", "r");
    assert!(!m.render().contains("edgeward_endpoint_"));
    let in_flight = Arc::new(AtomicU64::new(3));
    let seen = in_flight.clone();
    m.set_endpoint_source(Arc::new(move || {
        vec![
            EndpointSample {
                upstream: "u".into(),
                endpoint: "10.0.0.1:80".into(),
                in_flight: seen.load(Ordering::Relaxed) as u32,
                healthy: true,
                latency_ewma: Duration::from_millis(12),
                ..Default::default()
            },
            EndpointSample {
                upstream: "u".into(),
                endpoint: "10.0.0.2:80".into(),
                in_flight: 0,
                healthy: false,
                latency_ewma: Duration::ZERO,
                ..Default::default()
            },
        ]
    }));
    in_flight.store(4, Ordering::Relaxed);
    let s = parse(&m.render());
    let e1 = [("upstream", "u"), ("endpoint", "10.0.0.1:80")];
    let e2 = [("upstream", "u"), ("endpoint", "10.0.0.2:80")];
    assert_eq!(value(&s, "edgeward_endpoint_in_flight_requests", &e1), 4.0);
    assert_eq!(value(&s, "edgeward_endpoint_healthy", &e1), 1.0);
    assert_eq!(value(&s, "edgeward_endpoint_healthy", &e2), 0.0);
    assert_eq!(
        value(&s, "edgeward_endpoint_latency_ewma_seconds", &e1),
        0.012
    );

    m.set_cache_source(Arc::new(|| CacheSample {
        hits: 5,
        stored: 2,
        bytes: 1024,
        max_bytes: 4096,
        entries: 2,
        refused_coded: 3,
        ..Default::default()
    }));
    m.set_plugin_source(Arc::new(|| {
        vec![PluginSample {
            plugin: "round-robin".into(),
            calls: 9,
            faults: vec![("trap", 1), ("deadline", 0)],
            fallbacks: 1,
            failed: 0,
            log_dropped: 3,
            ..Default::default()
        }]
    }));
    // A reload replaces a source.
    m.set_endpoint_source(Arc::new(Vec::new));
    let text = m.render();
    assert!(!text.contains("edgeward_endpoint_"), "{text}");
    let s = parse(&text);
    assert_eq!(
        value(&s, "edgeward_cache_requests_total", &[("result", "hit")]),
        5.0
    );
    assert_eq!(
        value(&s, "edgeward_cache_requests_total", &[("result", "miss")]),
        0.0
    );
    assert_eq!(value(&s, "edgeward_cache_stored_total", &[]), 2.0);
    let coded = [("reason", "coded-body")];
    assert_eq!(value(&s, "edgeward_cache_refused_total", &coded), 3.0);
    assert_eq!(value(&s, "edgeward_cache_bytes", &[]), 1024.0);
    assert_eq!(value(&s, "edgeward_cache_max_bytes", &[]), 4096.0);
    assert_eq!(value(&s, "edgeward_cache_entries", &[]), 2.0);
    let p = [("plugin", "round-robin")];
    assert_eq!(value(&s, "edgeward_plugin_calls_total", &p), 9.0);
    assert_eq!(
        value(
            &s,
            "edgeward_plugin_faults_total",
            &[("plugin", "round-robin"), ("kind", "trap")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "edgeward_plugin_policy_total",
            &[("plugin", "round-robin"), ("policy", "fallback")]
        ),
        1.0
    );
    assert_eq!(value(&s, "edgeward_plugin_log_dropped_total", &p), 3.0);
    assert!(
        text.contains("edgeward_cache_requests_total{node=\"n\",region=\"r\",result=\"hit\"} 5\n"),
        "{text}"
    );
}

/// Validation keeps such names out of the config; whatever slips through must
/// still produce a scrape a parser accepts, with the value intact.
#[test]
fn hostile_label_values_are_escaped() {
    let nasty = "a\"b\\c\nd}e,f=g";
    let m = NodeMetrics::new("no\"de", "re\\gion\n");
    m.route(nasty).finish(StatusCode::OK, MS, 0, 0);
    m.upstream(nasty).finish(StatusCode::OK, MS, 0, 0);
    m.set_endpoint_source(Arc::new(move || {
        vec![EndpointSample {
            upstream: nasty.into(),
            endpoint: nasty.into(),
            in_flight: 1,
            healthy: true,
            latency_ewma: MS,
            ..Default::default()
        }]
    }));
    m.set_cache_source(Arc::new(CacheSample::default));
    m.set_plugin_source(Arc::new(move || {
        vec![PluginSample {
            plugin: nasty.into(),
            faults: vec![("trap", 1)],
            ..Default::default()
        }]
    }));
    let text = m.render();
    assert!(text.contains(r#"route="a\"b\\c\nd}e,f=g""#), "{text}");
    assert!(
        text.contains(r#"node="no\"de",region="re\\gion\n""#),
        "{text}"
    );
    let s = parse(&text);
    assert_eq!(
        value(
            &s,
            "edgeward_requests_total",
            &[("route", nasty), ("class", "2xx")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "edgeward_upstream_requests_total",
            &[("upstream", nasty), ("class", "2xx")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "edgeward_endpoint_healthy",
            &[("upstream", nasty), ("endpoint", nasty)]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "edgeward_plugin_faults_total",
            &[("plugin", nasty), ("kind", "trap")]
        ),
        1.0
    );
    assert!(s.iter().all(|x| x.labels["region"] == "re\\gion\n"));
    // Printed for the manual check with Python's prometheus_client parser:
    // cargo test -p edgeward --lib hostile_label -- --nocapture
    println!("----- BEGIN SCRAPE -----\n{text}----- END SCRAPE -----");
}

#[test]
fn cache_and_plugin_accessors_feed_the_sources() {
    let cache = Arc::new(crate::cache::Cache::new(Default::default()));
    cache.count(|c| &c.hits);
    cache.count(|c| &c.hits);
    cache.count(|c| &c.stored);
    let plugin = crate::plugin::PluginMetrics::new("rr");
    plugin.record(&Ok(()));
    plugin.log_dropped();
    let plugins = Arc::new(crate::plugin::Plugins::default());

    let m = NodeMetrics::new("n", "r");
    let c = cache.clone();
    m.set_cache_source(Arc::new(move || c.metrics_sample()));
    let ps = plugins.clone();
    m.set_plugin_source(Arc::new(move || ps.metrics_samples()));
    let s = parse(&m.render());
    assert_eq!(
        value(&s, "edgeward_cache_requests_total", &[("result", "hit")]),
        2.0
    );
    assert_eq!(value(&s, "edgeward_cache_stored_total", &[]), 1.0);
    assert_eq!(
        value(&s, "edgeward_cache_max_bytes", &[]),
        (256u64 << 20) as f64
    );
    // No plugin loaded: no plugin family at all.
    assert!(
        !s.iter()
            .any(|x| x.name.starts_with("edgeward_plugin_calls"))
    );

    let sample = plugin.sample();
    assert_eq!(
        (sample.plugin.as_str(), sample.calls, sample.log_dropped),
        ("rr", 1, 1)
    );
    assert_eq!(sample.faults.len(), 6);
    assert!(sample.faults.iter().all(|(_, n)| *n == 0));
}
