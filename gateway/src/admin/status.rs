//! The live status page at the admin listener's `/` (one HTML document, no
//! external assets, polling `/admin/status` every second; with an admin
//! token, the page asks for it, or takes it from `#token=…` in its address,
//! which never leaves the browser), and that JSON:
//! per upstream the last 10 s of request rate, error rate and latency
//! percentiles, its endpoints' health, the cache's hit ratio, each route's
//! upstream, and the scale board.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use serde::Serialize;

use crate::body::{Body, local_response};
use crate::node::Node;

/// Window the page's rates and percentiles cover.
const WINDOW: Duration = Duration::from_secs(10);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    node: String,
    region: String,
    generation: u64,
    /// The serving process: after a binary upgrade, the new one's.
    pid: u32,
    window_ms: u64,
    cache: CacheStatus,
    routes: Vec<RouteStatus>,
    upstreams: Vec<UpstreamStatus>,
    scale: crate::scale::BoardView,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CacheStatus {
    hits: u64,
    misses: u64,
    hit_ratio: f64,
    entries: u64,
    bytes: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RouteStatus {
    name: String,
    upstream: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UpstreamStatus {
    name: String,
    requests: u64,
    request_rate: f64,
    error_rate: f64,
    latency_p50_ms: f64,
    latency_p95_ms: f64,
    latency_p99_ms: f64,
    endpoints: Vec<EndpointStatus>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointStatus {
    address: String,
    healthy: bool,
    in_flight: u32,
    /// Reason of the passive ejection in force (`5xx`, `connect-error`, `reset`, `timeout`).
    ejected: Option<&'static str>,
    /// Passive ejections so far.
    ejections: u64,
    /// The active health check finds it failing.
    health_check_failing: bool,
}

fn status(node: &Node, board: &crate::scale::Board) -> Status {
    let generation = node.generation();
    let cfg = &generation.config;
    let c = node.cache.metrics_sample();
    let lookups = c.hits + c.misses;
    let endpoints = generation.endpoint_samples();
    let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let upstreams = cfg
        .upstreams
        .iter()
        .map(|u| {
            let m = node.metrics.upstream(&u.name);
            let w = m.window().snapshot(m.now(), WINDOW);
            UpstreamStatus {
                name: u.name.clone(),
                requests: w.requests,
                request_rate: w.rate_per_sec,
                error_rate: w.error_rate,
                latency_p50_ms: ms(w.p50),
                latency_p95_ms: ms(w.p95),
                latency_p99_ms: ms(w.p99),
                endpoints: endpoints
                    .iter()
                    .filter(|e| e.upstream == u.name)
                    .map(|e| EndpointStatus {
                        address: e.endpoint.clone(),
                        healthy: e.healthy,
                        in_flight: e.in_flight,
                        ejected: e.ejected,
                        ejections: e.ejections.iter().map(|(_, n)| n).sum(),
                        health_check_failing: e.check_failing,
                    })
                    .collect(),
            }
        })
        .collect();
    Status {
        node: cfg.node.name.clone(),
        region: cfg.node.region.clone(),
        generation: generation.number,
        pid: std::process::id(),
        window_ms: u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX),
        cache: CacheStatus {
            hits: c.hits,
            misses: c.misses,
            hit_ratio: if lookups == 0 {
                0.0
            } else {
                c.hits as f64 / lookups as f64
            },
            entries: c.entries,
            bytes: c.bytes,
        },
        routes: cfg
            .routes
            .iter()
            .map(|r| RouteStatus {
                name: r.name.clone(),
                upstream: cfg
                    .upstreams
                    .get(r.upstream)
                    .map_or_else(String::new, |u| u.name.clone()),
            })
            .collect(),
        upstreams,
        scale: board.view(),
    }
}

/// `GET /admin/status` (JSON) and `GET /` (the page).
pub fn handle<B>(req: &Request<B>, node: &Node, board: &crate::scale::Board) -> Response<Body> {
    if !matches!(req.method(), &Method::GET | &Method::HEAD) {
        return local_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n",
        );
    }
    if req.uri().path() == "/" {
        return local_response(StatusCode::OK, "text/html; charset=utf-8", PAGE);
    }
    match serde_json::to_string(&status(node, board)) {
        Ok(b) => local_response(StatusCode::OK, "application/json", b),
        Err(e) => local_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("cannot encode the status: {e}\n"),
        ),
    }
}

const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Edgeward status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .2em} h2{font-size:1.05em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff;min-width:40em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th:first-child,td:first-child,td.l{text-align:left}
th{background:#f0f0f0} .ok{color:#17702a} .bad{color:#b00020;font-weight:600}
.up{color:#b35c00;font-weight:600} .down{color:#1f5fbf;font-weight:600}
#err{color:#b00020} small{color:#666}
</style></head><body>
<h1>Edgeward <span id="node"></span></h1>
<form id="login" hidden><label>Admin token <input id="token" type="password" autocomplete="off"></label>
<button>Show</button></form>
<small>generation <span id="generation">–</span> · rates over the last <span id="window">–</span> s ·
updated <span id="updated">never</span> <span id="err"></span></small>
<h2>Upstreams</h2>
<table id="upstreams"><thead><tr><th>upstream</th><th>req/s</th><th>errors</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>endpoints</th></tr></thead><tbody></tbody></table>
<h2>Routes</h2>
<table id="routes"><thead><tr><th>route</th><th>upstream</th><th>upstream req/s</th></tr></thead><tbody></tbody></table>
<h2>Cache</h2>
<table id="cache"><thead><tr><th>hit ratio</th><th>hits</th><th>misses</th><th>entries</th></tr></thead><tbody></tbody></table>
<h2>Scale decisions</h2>
<table id="scale"><thead><tr><th>service</th><th>current</th><th>desired</th><th>direction</th><th>reason</th><th>policies</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const f1 = v => (Math.round(v * 10) / 10).toFixed(1);
const pct = v => f1(v * 100) + " %";
function cell(tr, text, key, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (key) td.dataset.k = key;
  if (cls) td.className = cls;
  tr.appendChild(td);
}
function rows(id, items, fill) {
  const body = document.querySelector("#" + id + " tbody");
  const out = items.map(it => { const tr = document.createElement("tr"); fill(tr, it); return tr; });
  body.replaceChildren(...out);
}
// The admin token, when the node has one: from the address's fragment
// (not sent to the server, removed from the address bar) or typed in.
let token = sessionStorage.getItem("edgeward-admin-token") || "";
const fromHash = /(?:^#|&)token=([^&]*)/.exec(location.hash);
if (fromHash) {
  token = decodeURIComponent(fromHash[1]);
  sessionStorage.setItem("edgeward-admin-token", token);
  history.replaceState(null, "", location.pathname);
}
document.getElementById("login").addEventListener("submit", ev => {
  ev.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("edgeward-admin-token", token);
  refresh();
});
async function refresh() {
  try {
    const headers = token ? {Authorization: "Bearer " + token} : {};
    const r = await fetch("/admin/status", {cache: "no-store", headers});
    document.getElementById("login").hidden = r.status !== 401;
    if (!r.ok) throw new Error(r.status === 401 ? "the admin token is needed" : "HTTP " + r.status);
    const s = await r.json();
    document.getElementById("node").textContent = s.node + " (" + s.region + ")";
    document.getElementById("generation").textContent = s.generation;
    document.getElementById("window").textContent = s.windowMs / 1000;
    const rate = {};
    rows("upstreams", s.upstreams, (tr, u) => {
      rate[u.name] = u.requestRate;
      const k = "upstream." + u.name + ".";
      cell(tr, u.name);
      cell(tr, f1(u.requestRate), k + "requestRate");
      cell(tr, pct(u.errorRate), k + "errorRate", u.errorRate > 0.01 ? "bad" : "");
      cell(tr, f1(u.latencyP50Ms), k + "latencyP50Ms");
      cell(tr, f1(u.latencyP95Ms), k + "latencyP95Ms");
      cell(tr, f1(u.latencyP99Ms), k + "latencyP99Ms");
      const healthy = u.endpoints.filter(e => e.healthy).length;
      cell(tr, healthy + "/" + u.endpoints.length + " healthy", k + "healthy",
           healthy < u.endpoints.length ? "bad" : "ok");
    });
    rows("routes", s.routes, (tr, r) => {
      cell(tr, r.name); cell(tr, r.upstream, null, "l");
      cell(tr, f1(rate[r.upstream] || 0), "route." + r.name + ".requestRate");
    });
    rows("cache", [s.cache], (tr, c) => {
      cell(tr, pct(c.hitRatio), "cache.hitRatio"); cell(tr, c.hits); cell(tr, c.misses); cell(tr, c.entries);
    });
    rows("scale", Object.entries(s.scale.services), (tr, [name, v]) => {
      const k = "scale." + name + ".";
      cell(tr, name);
      cell(tr, v.currentReplicas, k + "currentReplicas");
      cell(tr, v.desiredReplicas, k + "desiredReplicas");
      cell(tr, v.direction, k + "direction", v.direction);
      cell(tr, v.reason, k + "reason", "l");
      cell(tr, v.policies.map(p => p.plugin + " → " + p.desiredReplicas).join(", "), k + "policies", "l");
    });
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    document.getElementById("err").textContent = "";
  } catch (e) {
    document.getElementById("err").textContent = "(" + e.message + ")";
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body></html>
"##;

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_needs_no_external_asset() {
        let p = super::PAGE;
        assert!(!p.contains("http://") && !p.contains("https://") && !p.contains("src="));
        assert!(p.contains("fetch(\"/admin/status\""));
    }
}
