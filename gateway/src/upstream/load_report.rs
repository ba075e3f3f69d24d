//! ORCA load reports: the `endpoint-load-metrics` response header that gRPC
//! and Envoy use for backend load reporting, in its text form
//! (`TEXT cpu_utilization=0.72, mem_utilization=0.41, rps_fractional=120`)
//! or its JSON form (`JSON {"cpu_utilization": 0.72, ...}`). The binary form
//! (`BIN <base64 protobuf>`) is not read. The gateway strips the header before
//! the client sees it and averages the reports per upstream, per second.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::HeaderMap;

use super::stats::EndpointStats;

/// Every upstream's reports, by upstream name; lives for the process.
#[derive(Default)]
pub struct Registry {
    upstreams: Mutex<HashMap<String, Arc<LoadReports>>>,
}

impl Registry {
    /// Takes the load-report headers out of an upstream response of
    /// `upstream` (so the client never sees them) and records them. Costs a
    /// header lookup when the upstream sends none.
    /// The endpoint that answered keeps its own average too, for routers.
    pub fn record(&self, upstream: &str, endpoint: &EndpointStats, headers: &mut HeaderMap) {
        if !headers.contains_key(HEADER) && !headers.contains_key(HEADER_BIN) {
            return;
        }
        let reports = take(headers);
        if reports.is_empty() {
            return;
        }
        let acc = self.of(upstream);
        let now = Instant::now();
        for r in &reports {
            acc.record(now, r);
            endpoint.load_reported(r.cpu, r.mem);
        }
    }

    /// The reports of `upstream`.
    pub fn of(&self, upstream: &str) -> Arc<LoadReports> {
        let mut map = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(upstream.to_owned())
            .or_insert_with(|| Arc::new(LoadReports::new(Instant::now())))
            .clone()
    }
}

/// The response header carrying a report.
pub const HEADER: &str = "endpoint-load-metrics";
/// Its binary variant, stripped too.
pub const HEADER_BIN: &str = "endpoint-load-metrics-bin";

/// One endpoint's report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// `cpu_utilization`, a fraction (may exceed 1 on a burstable container).
    pub cpu: Option<f64>,
    /// `mem_utilization`, a fraction.
    pub mem: Option<f64>,
    /// `rps_fractional`, requests per second the endpoint served.
    pub rps: Option<f64>,
    /// `named_metrics.<name>` values.
    pub named: Vec<(String, f64)>,
}

/// Parses one header value; `None` when it is not a text or JSON report.
pub fn parse(value: &str) -> Option<Report> {
    let v = value.trim();
    let mut r = Report::default();
    let mut set = |key: &str, x: f64| {
        if !x.is_finite() || x < 0.0 {
            return;
        }
        match key {
            "cpu_utilization" => r.cpu = Some(x),
            "mem_utilization" => r.mem = Some(x),
            "rps_fractional" => r.rps = Some(x),
            k => {
                if let Some(n) = k.strip_prefix("named_metrics.") {
                    r.named.push((n.to_owned(), x));
                }
            }
        }
    };
    if let Some(text) = v.strip_prefix("TEXT") {
        for pair in text.split(',') {
            let (k, x) = pair.trim().split_once('=')?;
            set(k.trim(), x.trim().parse().ok()?);
        }
    } else if let Some(json) = v.strip_prefix("JSON") {
        let doc: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
        for (k, x) in doc.as_object()? {
            match x {
                serde_json::Value::Number(n) => set(k, n.as_f64()?),
                serde_json::Value::Object(named) if k == "named_metrics" => {
                    for (n, x) in named {
                        if let Some(x) = x.as_f64() {
                            set(&format!("named_metrics.{n}"), x);
                        }
                    }
                }
                _ => {}
            }
        }
    } else {
        return None;
    }
    Some(r)
}

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    second: u64,
    cpu: (f64, u64),
    mem: (f64, u64),
    rps: (f64, u64),
}

/// Reports of one upstream's endpoints, per second, for the last
/// [`LoadReports::CAPACITY`].
#[derive(Debug)]
pub struct LoadReports {
    epoch: Instant,
    slots: Mutex<VecDeque<Slot>>,
}

/// Averages over a window; `None` where no endpoint reported.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Averages {
    pub reports: u64,
    pub cpu: Option<f64>,
    pub mem: Option<f64>,
    pub rps: Option<f64>,
}

impl LoadReports {
    pub const CAPACITY: Duration = crate::metrics::WINDOW_CAPACITY;

    pub fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            slots: Mutex::default(),
        }
    }

    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_secs()
    }

    pub fn record(&self, at: Instant, r: &Report) {
        let sec = self.second(at);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.back().is_none_or(|s| s.second != sec) {
            slots.push_back(Slot {
                second: sec,
                ..Slot::default()
            });
        }
        let oldest = sec.saturating_sub(Self::CAPACITY.as_secs());
        while slots.front().is_some_and(|s| s.second < oldest) {
            slots.pop_front();
        }
        let s = slots.back_mut().expect("pushed above");
        let add = |acc: &mut (f64, u64), x: Option<f64>| {
            if let Some(x) = x {
                acc.0 += x;
                acc.1 += 1;
            }
        };
        add(&mut s.cpu, r.cpu);
        add(&mut s.mem, r.mem);
        add(&mut s.rps, r.rps);
    }

    /// Averages of the reports in the `last` seconds up to and including `now`'s.
    pub fn averages(&self, now: Instant, last: Duration) -> Averages {
        let cur = self.second(now);
        let from = cur.saturating_sub(last.as_secs().max(1) - 1);
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let (mut cpu, mut mem, mut rps) = ((0.0, 0), (0.0, 0), (0.0, 0));
        for s in slots.iter().filter(|s| (from..=cur).contains(&s.second)) {
            for (acc, x) in [(&mut cpu, s.cpu), (&mut mem, s.mem), (&mut rps, s.rps)] {
                acc.0 += x.0;
                acc.1 += x.1;
            }
        }
        let avg = |(sum, n): (f64, u64)| (n > 0).then(|| sum / n as f64);
        Averages {
            reports: cpu.1.max(mem.1).max(rps.1),
            cpu: avg(cpu),
            mem: avg(mem),
            rps: avg(rps),
        }
    }
}

/// Removes every load-report header from `headers`, returning the parsed
/// text/JSON reports.
pub fn take(headers: &mut HeaderMap) -> Vec<Report> {
    let out = headers
        .get_all(HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok().and_then(parse))
        .collect();
    headers.remove(HEADER);
    headers.remove(HEADER_BIN);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_reports() {
        let r =
            parse("TEXT cpu_utilization=0.72, mem_utilization=0.41, rps_fractional=120").unwrap();
        assert_eq!((r.cpu, r.mem, r.rps), (Some(0.72), Some(0.41), Some(120.0)));
        let r = parse("TEXT named_metrics.orders=7,cpu_utilization=1.5").unwrap();
        assert_eq!(r.cpu, Some(1.5));
        assert_eq!(r.named, [("orders".to_owned(), 7.0)]);
        let r = parse(r#"JSON {"cpu_utilization": 0.3, "named_metrics": {"q": 2}}"#).unwrap();
        assert_eq!((r.cpu, r.mem), (Some(0.3), None));
        assert_eq!(r.named, [("q".to_owned(), 2.0)]);
        assert_eq!(parse("BIN CgQIARAB"), None);
        assert_eq!(parse("TEXT cpu_utilization"), None);
        assert_eq!(parse("TEXT cpu_utilization=abc"), None);
        // Negative or non-finite values are ignored, not trusted.
        assert_eq!(parse("TEXT cpu_utilization=-1").unwrap().cpu, None);
    }

    #[test]
    fn headers_are_taken_away() {
        let mut h = HeaderMap::new();
        h.append(HEADER, "TEXT cpu_utilization=0.5".parse().unwrap());
        h.append(HEADER, "TEXT cpu_utilization=0.7".parse().unwrap());
        h.append(HEADER_BIN, "CgQIARAB".parse().unwrap());
        h.append("x-other", "1".parse().unwrap());
        let got = take(&mut h);
        assert_eq!(got.len(), 2);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn averages_over_the_window() {
        let t0 = Instant::now();
        let w = LoadReports::new(t0);
        let r = |cpu| Report {
            cpu: Some(cpu),
            ..Report::default()
        };
        w.record(t0, &r(0.2));
        w.record(t0 + Duration::from_secs(5), &r(0.6));
        w.record(t0 + Duration::from_secs(5), &r(0.7));
        let now = t0 + Duration::from_secs(5);
        let a = w.averages(now, Duration::from_secs(3));
        assert_eq!(a.reports, 2);
        assert!((a.cpu.unwrap() - 0.65).abs() < 1e-12);
        assert_eq!(a.mem, None);
        let a = w.averages(now, Duration::from_secs(10));
        assert!((a.cpu.unwrap() - 0.5).abs() < 1e-12);
    }
}
