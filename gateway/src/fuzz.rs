//! Entry points for the fuzz targets in `gateway/tests/fuzz.rs`: one function per
//! parser that reads bytes a client, an upstream, a plugin or an operator controls.
//! Each takes the raw input, runs the parser as the request path does, and panics
//! when an invariant the rest of the gateway relies on does not hold — so a target
//! fails on a crash *and* on a wrong answer. Not an API: the parsers stay private
//! and this module is their only door, kept small so the internals can move.

use std::path::Path;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::cache::policy;
use crate::matching::{self, PathError, RouteMatch};

/// Header values from raw bytes; bytes a header cannot hold are dropped the way
/// hyper would refuse them (the parser never sees them).
fn headers(name: &'static str, lines: &[&[u8]]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for l in lines {
        if let Ok(v) = HeaderValue::from_bytes(l) {
            h.append(HeaderName::from_static(name), v);
        }
    }
    h
}

/// The YAML loader: any text gives a config or an error that names the file.
pub fn yaml_config(text: &str) {
    let path = Path::new("/nonexistent-edgeward-fuzz/fuzz.yaml");
    if let Err(e) = crate::config::load_str(text, path) {
        let msg = e.to_string();
        assert!(
            msg.contains("fuzz.yaml"),
            "an error without its file: {msg}"
        );
    }
}

/// `Cache-Control` as a response and as a request field (and the targeted
/// fields, RFC 9213): delta-seconds stay within RFC 9111 §1.2.2's cap.
pub fn cache_control(lines: &[&[u8]]) {
    for name in [
        "cache-control",
        "cdn-cache-control",
        "edgeward-cache-control",
    ] {
        let h = headers(name, lines);
        for cc in [
            policy::CacheControl::parse_response(&h),
            policy::CacheControl::parse_request(&h),
        ] {
            let cap = 1u64 << 31;
            for v in [cc.max_age, cc.s_maxage, cc.min_fresh, cc.stale_if_error]
                .into_iter()
                .chain([cc.stale_while_revalidate, cc.max_stale.flatten()])
                .flatten()
            {
                assert!(v <= cap, "delta-seconds {v} over 2^31");
            }
            let _ = cc.revalidate_when_stale();
        }
    }
}

/// `Age`, and the corrected initial age built on it, over any request and
/// response times (a clock that went backwards included).
pub fn age(lines: &[&[u8]], date: &[u8], request_secs: u64, delay_secs: u64) {
    let mut h = headers("age", lines);
    if let Ok(v) = HeaderValue::from_bytes(date) {
        h.insert(http::header::DATE, v);
    }
    let v = policy::age_value(&h);
    assert!(v <= 1 << 31, "age {v} over 2^31");
    let request_time = SystemTime::UNIX_EPOCH + Duration::from_secs(request_secs % (1 << 40));
    let times = policy::Times {
        request_time,
        response_time: request_time + Duration::from_secs(delay_secs % (1 << 32)),
    };
    let _ = policy::initial_age(&h, times);
}

/// `Expires` / `Date` / `Last-Modified`: a date read from text is a real
/// instant, and the IMF-fixdate we would write for it reads back the same.
pub fn http_date(text: &str) {
    let Some(t) = policy::date_value(text) else {
        return;
    };
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("a date before 1970 was read as after it")
        .as_secs();
    // httpdate writes years up to 9999.
    if secs < 253_402_300_800 {
        let written = httpdate::fmt_http_date(t);
        assert_eq!(
            policy::date_value(&written),
            Some(t),
            "{text:?} → {written}"
        );
    }
    let mut h = headers("expires", &[text.as_bytes()]);
    h.insert(
        http::header::DATE,
        HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
    );
    let cc = policy::CacheControl::parse_response(&h);
    let _ = policy::freshness_lifetime(StatusCode::OK, &h, &cc, None, SystemTime::now());
}

/// `Accept-Encoding`: negotiation always gives a coding we can produce, and a
/// field that names neither br nor gzip (nor `*`) gives identity.
pub fn accept_encoding(lines: &[&[u8]]) {
    let h = headers("accept-encoding", lines);
    let got = crate::encoding::negotiate(&h);
    let text = lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",");
    if !(text.contains("br") || text.contains("gzip") || text.contains('*')) {
        assert_eq!(got, crate::encoding::Encoding::Identity, "{text:?}");
    }
}

/// `Vary` on the response and the request fields it names: names come out
/// lower-case, sorted and unique; the secondary key is a function of the
/// request (same request, same key).
pub fn vary(vary_lines: &[&[u8]], request: &[(&[u8], &[u8])]) {
    let h = headers("vary", vary_lines);
    let Some(names) = policy::vary_names(&h) else {
        return;
    };
    for w in names.windows(2) {
        assert!(
            w[0].as_str() < w[1].as_str(),
            "not sorted/unique: {names:?}"
        );
    }
    let mut req = HeaderMap::new();
    for (n, v) in request {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
            req.append(n, v);
        }
    }
    let a = policy::secondary_key(&names, &req);
    assert_eq!(a, policy::secondary_key(&names, &req));
}

/// Cookies: the cache key's reader and the plugin host's reader find the same
/// value for every name (one fact, two readers: they must not disagree).
pub fn cookies(lines: &[&[u8]], name: &str) {
    let h = headers("cookie", lines);
    let key = crate::cache::key::cookie(&h, name);
    let host = crate::plugin::find_cookie(&h, name);
    assert_eq!(
        key,
        host.as_deref(),
        "the two cookie readers disagree on {name:?}"
    );
}

/// The reading of a path an origin most lax about it would make: every escape
/// decoded (`%2F` too), `\` as `/`, dot segments removed, `//` merged.
fn lax_origin_view(path: &str) -> String {
    let mut bytes = Vec::new();
    let raw = path.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        let hex = |j: usize| raw.get(j).and_then(|c| (*c as char).to_digit(16));
        match (raw[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                bytes.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&bytes).replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// The route matcher over raw request targets, as hyper hands them over:
/// normalising is idempotent and gives a path in normal form; and a route that
/// guards `guard` cannot be passed by any spelling an origin would read as
/// `guard` — such a path matches the guard's route or is refused.
pub fn route_path(target: &[u8], guard: &str) {
    let Ok(uri) = http::Uri::try_from(target) else {
        return;
    };
    let raw = uri.path();
    let normal = match matching::normalize_path(raw) {
        Ok(n) => n.into_owned(),
        Err(PathError::BadPercent | PathError::Ambiguous) => return,
    };
    if !raw.starts_with('/') {
        assert_eq!(normal, raw);
        return;
    }
    assert_eq!(
        matching::normalize_path(&normal).map(|c| c.into_owned()),
        Ok(normal.clone()),
        "not idempotent on {raw:?}"
    );
    assert!(!normal.contains("//"), "{raw:?} → {normal:?}");
    assert!(
        !normal.split('/').any(|s| s == "." || s == ".."),
        "{raw:?} → {normal:?}"
    );
    let rebuilt = matching::normalize_uri(&uri).expect("normalised once already");
    if let Some(u) = rebuilt {
        assert_eq!(u.path(), normal);
        assert_eq!(u.query(), uri.query());
    }
    let guard_route = RouteMatch {
        path: Some(matching::PathMatch::Prefix(guard.to_owned())),
        ..RouteMatch::default()
    };
    let h = HeaderMap::new();
    let origin = lax_origin_view(raw);
    if matching::prefix_matches(guard, &origin) {
        assert!(
            guard_route.matches(&Method::GET, "h", &normal, &h),
            "{raw:?} reads as {origin:?} at the origin but routes as {normal:?}, past {guard:?}"
        );
    }
}

/// The purge API's JSON body: any bytes give a purge or a 400 message.
pub fn purge_json(body: &[u8]) {
    match crate::admin::purge_request(&bytes::Bytes::copy_from_slice(body)) {
        Ok(crate::cache::Purge::Tag(t)) => assert!(!t.is_empty() && t == t.trim()),
        Ok(crate::cache::Purge::Url { path, .. } | crate::cache::Purge::Prefix { path, .. }) => {
            assert!(path.starts_with('/'), "a purge path {path:?}");
        }
        Ok(crate::cache::Purge::All) => {}
        Err(e) => assert!(!e.is_empty()),
    }
}

/// The ORCA `endpoint-load-metrics` header: every value read is finite and
/// non-negative (they are averaged into scale signals).
pub fn load_report(value: &str) {
    let Some(r) = crate::upstream::load_report::parse(value) else {
        return;
    };
    for x in [r.cpu, r.mem, r.rps]
        .into_iter()
        .flatten()
        .chain(r.named.iter().map(|(_, x)| *x))
    {
        assert!(x.is_finite() && x >= 0.0, "{value:?} gave {x}");
    }
}

/// A header a plugin returns, as raw text.
#[derive(Debug, Clone)]
pub struct PluginHeader {
    pub name: String,
    pub value: String,
}

/// A header edit a plugin returns.
#[derive(Debug, Clone)]
pub enum PluginEdit {
    Set(PluginHeader),
    Append(PluginHeader),
    Remove(String),
}

/// A `decision` record as a router plugin may return it, anything in it.
#[derive(Debug, Clone)]
pub enum PluginDecision {
    Forward {
        endpoint: u32,
        request_headers: Vec<PluginEdit>,
        response_headers: Vec<PluginEdit>,
    },
    Respond {
        status: u16,
        headers: Vec<PluginHeader>,
        body_len: usize,
    },
    Unavailable,
}

/// The host's check of a router's decision against the candidates it offered:
/// never a panic, a forward only ever to an offered id, and no edit or
/// direct-response header that is invalid or hop-by-hop.
pub fn router_decision(decision: PluginDecision, offered_ids: &[u32]) {
    use crate::plugin::wit_types as t;
    let header = |h: PluginHeader| t::Header {
        name: h.name,
        value: h.value,
    };
    let edit = |e: PluginEdit| match e {
        PluginEdit::Set(h) => t::HeaderEdit::Set(header(h)),
        PluginEdit::Append(h) => t::HeaderEdit::Append(header(h)),
        PluginEdit::Remove(n) => t::HeaderEdit::Remove(n),
    };
    let candidates: Vec<t::Candidate> = offered_ids
        .iter()
        .map(|&id| t::Candidate {
            id,
            key: u64::from(id).wrapping_mul(0x9e37_79b9),
            weight: 1,
            healthy: true,
            in_flight: 0,
            latency_ewma_us: 0,
            zone: 0,
            cpu_utilization: None,
            mem_utilization: None,
        })
        .collect();
    let d = match decision {
        PluginDecision::Forward {
            endpoint,
            request_headers,
            response_headers,
        } => t::Decision::Forward(t::Forward {
            endpoint,
            request_headers: request_headers.into_iter().map(edit).collect(),
            response_headers: response_headers.into_iter().map(edit).collect(),
        }),
        PluginDecision::Respond {
            status,
            headers,
            body_len,
        } => t::Decision::Respond(t::DirectResponse {
            status,
            headers: headers.into_iter().map(header).collect(),
            body: vec![b'x'; body_len.min(1 << 17)],
        }),
        PluginDecision::Unavailable => t::Decision::Unavailable,
    };
    if let Ok(crate::plugin::Decision::Forward {
        endpoint,
        request_headers,
        response_headers,
    }) = crate::plugin::check_decision(d, &candidates)
    {
        assert!(
            offered_ids.contains(&(endpoint as u32)),
            "forwarded to id {endpoint}, offered {offered_ids:?}"
        );
        for e in request_headers.iter().chain(&response_headers) {
            if let crate::plugin::HeaderEdit::Set(n, _) | crate::plugin::HeaderEdit::Append(n, _) =
                e
            {
                assert!(n != http::header::CONNECTION && n != http::header::TRANSFER_ENCODING);
            }
        }
    }
}
