//! The live status page at the admin listener's `/`, in a real browser:
//! headless Chromium loads it from a gateway serving a real upstream, runs
//! its script (which polls `/admin/status`), and the test reads the rendered
//! DOM. The numbers on the page must be the ones the JSON says, idle and
//! under load, and they must change when load arrives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use edgeward_e2e::{Client, Gateway, Upstream, free_addrs, full};
use http::{Method, Response, StatusCode};
use serde_json::Value;

const TEST_LIMIT: Duration = Duration::from_secs(58);
/// Latency the upstream adds, so the percentiles are not all zero.
const LATENCY: Duration = Duration::from_millis(15);

/// Every `/err` is a 500; `/static/*` is cacheable.
async fn origin() -> Upstream {
    Upstream::start(|req: http::Request<hyper::body::Incoming>| async move {
        tokio::time::sleep(LATENCY).await;
        let path = req.uri().path().to_owned();
        let mut r = Response::new(full("ok"));
        if path.ends_with("/err") {
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        if path.starts_with("/static/") {
            r.headers_mut().insert(
                "cache-control",
                http::HeaderValue::from_static("max-age=600"),
            );
        }
        r
    })
    .await
}

fn yaml(listen: SocketAddr, admin: SocketAddr, up: SocketAddr) -> String {
    format!(
        r#"listeners: [{{name: main, address: "{listen}"}}]
admin: {{address: "{admin}"}}
upstreams:
  svc:
    balancer: native
    endpoints: ["{up}"]
routes:
  - name: assets
    match: {{path-prefix: /static/}}
    upstream: svc
    cache: {{}}
  - name: api
    upstream: svc
plugins:
  rps:
    builtin: scale-target-tracking
    config:
      metric: request-rate
      target: "5"
      scale-in-after: 0s
      scale-in-cooldown: 0s
scaling:
  services:
    svc:
      min: 1
      max: 10
      interval: 200ms
      # Long enough that the decision holds still after the load ends.
      window: 30s
      scale-down-stabilization: 1s
      policies: [rps]
"#
    )
}

/// `None` when chromium is not installed (a failure with CI set).
async fn render(url: &str) -> Option<String> {
    let profile = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            // Root in CI: Chromium's sandbox needs an unprivileged user.
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            &format!("--user-data-dir={}", profile.path().display()),
            // Virtual time runs the page's 1 s polling timer twice; real
            // fetches pause it, so each poll gets its answer.
            "--virtual-time-budget=2500",
            "--dump-dom",
            url,
        ])
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(30), run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromium is required when CI is set (.ci/run installs it): {e}"
            );
            println!("SKIP: chromium is not installed: {e}");
            return None;
        }
        Err(_) => panic!("chromium did not render {url} within 30 s"),
    };
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dom)
}

/// The page's cells that carry a `data-k` key, by key.
fn cells(dom: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for part in dom.split("<td").skip(1) {
        let Some((attrs, rest)) = part.split_once('>') else {
            continue;
        };
        let Some(key) = attrs
            .split("data-k=\"")
            .nth(1)
            .and_then(|k| k.split('"').next())
        else {
            continue;
        };
        let text = rest.split("</td>").next().unwrap_or("");
        out.insert(key.to_owned(), unescape(text));
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// As the page formats it: one decimal, `Math.round` then `toFixed(1)`.
fn f1(v: &Value) -> String {
    format!("{:.1}", (v.as_f64().unwrap() * 10.0).round() / 10.0)
}

fn pct(v: &Value) -> String {
    f1(&Value::from(v.as_f64().unwrap() * 100.0)) + " %"
}

/// What the page must show for status `s`, by cell key.
fn expected(s: &Value) -> HashMap<String, String> {
    let mut e = HashMap::new();
    let u = &s["upstreams"][0];
    assert_eq!(u["name"], "svc");
    for f in [
        "requestRate",
        "latencyP50Ms",
        "latencyP95Ms",
        "latencyP99Ms",
    ] {
        e.insert(format!("upstream.svc.{f}"), f1(&u[f]));
    }
    e.insert("upstream.svc.errorRate".into(), pct(&u["errorRate"]));
    let eps = u["endpoints"].as_array().unwrap();
    let healthy = eps.iter().filter(|e| e["healthy"] == true).count();
    e.insert(
        "upstream.svc.healthy".into(),
        format!("{healthy}/{} healthy", eps.len()),
    );
    for r in ["assets", "api"] {
        e.insert(format!("route.{r}.requestRate"), f1(&u["requestRate"]));
    }
    e.insert("cache.hitRatio".into(), pct(&s["cache"]["hitRatio"]));
    let v = &s["scale"]["services"]["svc"];
    for f in ["currentReplicas", "desiredReplicas"] {
        e.insert(format!("scale.svc.{f}"), v[f].to_string());
    }
    for f in ["direction", "reason"] {
        e.insert(format!("scale.svc.{f}"), v[f].as_str().unwrap().to_owned());
    }
    e
}

async fn status(gw: &Gateway) -> Value {
    let r = gw.admin_request(Method::GET, "/admin/status", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// `text` split into its words and numbers: `"13.5 rps"` → (["", " rps"], [13.5]).
fn shape(text: &str) -> (Vec<String>, Vec<f64>) {
    let (mut words, mut numbers, mut cur, mut num) =
        (Vec::new(), Vec::new(), String::new(), String::new());
    for c in text.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() || (c == '.' && !num.is_empty()) {
            num.push(c);
            continue;
        }
        if !num.is_empty() {
            words.push(std::mem::take(&mut cur));
            numbers.push(num.trim_end_matches('.').parse().unwrap());
            num.clear();
        }
        cur.push(c);
    }
    words.push(cur);
    (words, numbers)
}

/// Whether `shown` is what the page renders for a value that went from
/// `before` to `after` while it polled: the same text, each number between.
fn between(shown: &str, before: &str, after: &str) -> bool {
    let (w, n) = shape(shown);
    let ((wb, nb), (wa, na)) = (shape(before), shape(after));
    (w == wb && w == wa && n.len() == nb.len() && n.len() == na.len())
        && n.iter()
            .zip(nb.iter().zip(&na))
            .all(|(x, (b, a))| b.min(*a) <= *x && *x <= b.max(*a))
}

/// Renders the page between two reads of the JSON; every cell must show
/// what the JSON said, a number changing meanwhile lying between its two
/// reads. Returns the cells and the later JSON.
async fn page_matches_json(gw: &Gateway, page: &str) -> Option<(HashMap<String, String>, Value)> {
    let mut last = String::new();
    for _ in 0..3 {
        let before = expected(&status(gw).await);
        let dom = render(page).await?;
        let s = status(gw).await;
        let after = expected(&s);
        let shown = cells(&dom);
        let wrong: Vec<_> = before
            .iter()
            .filter(|(k, b)| !shown.get(*k).is_some_and(|v| between(v, b, &after[*k])))
            .map(|(k, b)| {
                format!(
                    "{k}: page {:?}, JSON {b:?} then {:?}",
                    shown.get(k),
                    after[k]
                )
            })
            .collect();
        assert!(
            !dom.contains(">never<") && !dom.contains("id=\"err\">("),
            "the page polled without error: {dom}"
        );
        if wrong.is_empty() {
            return Some((shown, s));
        }
        // A decision that flipped mid-render (hold → up) changes the words.
        last = format!("{wrong:#?}\n{dom}");
    }
    panic!("the page does not show what the JSON says: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_admin_token_the_page_asks_for_it_and_shows_the_status_with_it() {
    tokio::time::timeout(TEST_LIMIT, async {
        const TOKEN: &str = "page-test-token-0123456789";
        let up = origin().await;
        let [listen, admin] = free_addrs(2)[..] else {
            unreachable!()
        };
        let yaml = yaml(listen, admin, up.addr).replace(
            &format!("admin: {{address: \"{admin}\"}}"),
            &format!("admin: {{address: \"{admin}\", token: {TOKEN}}}"),
        );
        assert!(yaml.contains(TOKEN));
        let gw = Gateway::start(&yaml).await.unwrap();
        // The JSON needs the token; the page (no data in it) does not.
        let r = gw.admin_request(Method::GET, "/admin/status", "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let Some(locked) = render(&gw.admin_url("/")).await else {
            return;
        };
        assert!(
            locked.contains("<form id=\"login\">"),
            "the token form shows: {locked}"
        );
        assert!(locked.contains("the admin token is needed"), "{locked}");
        assert!(!cells(&locked).contains_key("upstream.svc.requestRate"));
        let open = render(&format!("{}#token={TOKEN}", gw.admin_url("/")))
            .await
            .expect("rendered before");
        assert!(open.contains("<form id=\"login\" hidden"), "{open}");
        assert_eq!(
            cells(&open)["upstream.svc.healthy"],
            "1/1 healthy",
            "{open}"
        );
        assert!(!open.contains(">never<"), "{open}");
    })
    .await
    .expect("the scenario finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_the_json_numbers_in_chromium_and_follows_load() {
    tokio::time::timeout(TEST_LIMIT, scenario())
        .await
        .expect("the scenario finishes in time");
}

async fn scenario() {
    let up = origin().await;
    let [listen, admin] = free_addrs(2)[..] else {
        unreachable!()
    };
    let gw = Gateway::start(&yaml(listen, admin, up.addr)).await.unwrap();
    let page = gw.admin_url("/");
    // The page is one document with no external asset.
    let r = gw.admin_request(Method::GET, "/", "").await;
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(!r.text().contains("src=") && !r.text().contains("href="));

    // Wait for the first scale decision, then compare the idle page.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status(&gw).await["scale"]["services"]["svc"]["evaluations"]
        .as_u64()
        .is_none_or(|n| n == 0)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scale evaluation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some((idle, _)) = page_matches_json(&gw, &page).await else {
        return;
    };
    assert_eq!(idle["upstream.svc.requestRate"], "0.0");
    assert_eq!(idle["upstream.svc.healthy"], "1/1 healthy");
    assert_eq!(idle["scale.svc.desiredReplicas"], "1");

    // Bounded load: 400 requests at ~130/s, every tenth an error, a quarter
    // of them on the cached route. Then the window holds still (nothing
    // ages out for 10 s), so page and JSON can be compared.
    let client = Client::h1();
    let mut tick = tokio::time::interval(Duration::from_micros(7_700));
    let mut tasks = Vec::new();
    for i in 0..400u32 {
        tick.tick().await;
        let path = match i % 10 {
            0 => "/api/err".to_owned(),
            1..=3 => format!("/static/{}", i % 4),
            _ => format!("/api/{i}"),
        };
        let (client, url) = (client.clone(), gw.url("main", &path));
        tasks.push(tokio::spawn(async move {
            client.get(&url).await.map(|r| r.status)
        }));
    }
    let mut by_status = HashMap::new();
    for t in tasks {
        let st = t.await.unwrap().expect("request through the gateway");
        *by_status.entry(st.as_u16()).or_insert(0) += 1;
    }
    assert_eq!(by_status.get(&500), Some(&40), "{by_status:?}");
    assert_eq!(by_status.get(&200), Some(&360), "{by_status:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (busy, s) = page_matches_json(&gw, &page)
        .await
        .expect("rendered before");
    let u = &s["upstreams"][0];
    assert!(u["requestRate"].as_f64().unwrap() > 10.0, "{u}");
    assert!(
        u["latencyP95Ms"].as_f64().unwrap() >= LATENCY.as_millis() as f64,
        "{u}"
    );
    assert_ne!(
        busy["upstream.svc.requestRate"],
        idle["upstream.svc.requestRate"]
    );
    assert_ne!(
        busy["upstream.svc.errorRate"],
        idle["upstream.svc.errorRate"]
    );
    assert_ne!(busy["cache.hitRatio"], idle["cache.hitRatio"]);
    assert_ne!(busy["scale.svc.reason"], idle["scale.svc.reason"]);
    assert!(
        busy["scale.svc.desiredReplicas"].parse::<u32>().unwrap() > 1,
        "load scaled the service out: {busy:?}"
    );
}
