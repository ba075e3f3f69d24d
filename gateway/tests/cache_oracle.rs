//! A differential oracle for the cache policy: our storability and "serve
//! without revalidation" decisions (gateway/src/cache/policy) against the
//! `http-cache-semantics` crate (an independent implementation, RFC 7234 era)
//! over generated request/response pairs. Every disagreement must be one of the
//! explained kinds in notes/cache-oracle.md (each with its RFC section and whose
//! bug it is); an unexplained one fails the test with the pair.
//! `EDGEWARD_ORACLE_CASES` sets the number of pairs (default 4000 with `CI`, 1000 otherwise).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use edgeward::cache::policy::{self, CacheControl, Times};
use http::{HeaderValue, Method, Request, Response};
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const T0: u64 = 1_700_000_000;

#[derive(Debug, Clone)]
struct Case {
    status: u16,
    resp_cc: Vec<&'static str>,
    /// Seconds before the response time, for Date / Last-Modified / Expires (negative: after).
    date: Option<i64>,
    last_modified: Option<i64>,
    expires: Option<&'static str>,
    expires_in: i64,
    age: Option<&'static str>,
    etag: bool,
    pragma_resp: bool,
    authorization: bool,
    vary: Option<&'static str>,
    /// The later request's directives, and how long after the response it comes.
    req_cc: Vec<&'static str>,
    pragma_req: bool,
    later: u64,
}

fn case() -> impl Strategy<Value = Case> {
    let resp_directive = prop::sample::select(vec![
        "max-age=0",
        "max-age=60",
        "max-age=3600",
        "s-maxage=0",
        "s-maxage=120",
        "public",
        "private",
        "no-cache",
        "no-store",
        "must-revalidate",
        "proxy-revalidate",
        "no-transform",
        "must-understand",
        "stale-while-revalidate=30",
        "stale-if-error=60",
    ]);
    let req_directive = prop::sample::select(vec![
        "max-age=0",
        "max-age=30",
        "max-age=100000",
        "min-fresh=20",
        "max-stale",
        "max-stale=10",
        "max-stale=100000",
        "no-cache",
        "only-if-cached",
    ]);
    let status = prop::sample::select(vec![
        200u16, 200, 200, 203, 204, 206, 301, 302, 304, 307, 308, 400, 404, 405, 410, 414, 500,
        501, 503,
    ]);
    let offset = prop::option::of(prop::sample::select(vec![
        0i64, 0, 5, 100, 3000, 90_000, -30,
    ]));
    (
        (
            status,
            prop::collection::vec(resp_directive, 0..4),
            offset.clone(),
            offset,
            prop::option::of(prop::sample::select(vec!["date", "date", "0", "never"])),
            prop::sample::select(vec![-100i64, 0, 50, 5000]),
            prop::option::of(prop::sample::select(vec!["0", "10", "100", "5000"])),
        ),
        (
            any::<bool>(),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.15),
            prop::option::of(prop::sample::select(vec![
                "accept-language",
                "accept-language",
                "accept-language",
                "*",
            ])),
            prop::collection::vec(req_directive, 0..3),
            prop::bool::weighted(0.05),
            prop::sample::select(vec![0u64, 1, 10, 59, 61, 119, 200, 4000]),
        ),
    )
        .prop_map(
            |(
                (status, mut resp_cc, date, last_modified, expires, expires_in, age),
                (etag, pragma_resp, authorization, vary, mut req_cc, pragma_req, later),
            )| {
                // One of each: a repeated directive is "invalid" to the oracle
                // (RFC 9111 §4.2.1 lets either reading stand).
                resp_cc.sort();
                resp_cc.dedup_by_key(|d| d.split('=').next().unwrap_or(""));
                req_cc.sort();
                req_cc.dedup_by_key(|d| d.split('=').next().unwrap_or(""));
                Case {
                    status,
                    resp_cc,
                    date,
                    last_modified,
                    expires,
                    expires_in,
                    age,
                    etag,
                    pragma_resp,
                    authorization,
                    vary,
                    req_cc,
                    pragma_req,
                    later,
                }
            },
        )
}

fn at(base: SystemTime, secs_before: i64) -> SystemTime {
    if secs_before >= 0 {
        base - Duration::from_secs(secs_before as u64)
    } else {
        base + Duration::from_secs(secs_before.unsigned_abs())
    }
}

struct Built {
    req: Request<()>,
    resp: Response<()>,
    later: Request<()>,
    response_time: SystemTime,
    now: SystemTime,
}

fn build(c: &Case) -> Built {
    let response_time = SystemTime::UNIX_EPOCH + Duration::from_secs(T0);
    let mut resp = Response::builder().status(c.status);
    let h = |v: String| HeaderValue::from_str(&v).unwrap();
    {
        let headers = resp.headers_mut().unwrap();
        if !c.resp_cc.is_empty() {
            headers.insert("cache-control", h(c.resp_cc.join(", ")));
        }
        if let Some(d) = c.date {
            headers.insert("date", h(httpdate::fmt_http_date(at(response_time, d))));
        }
        if let Some(d) = c.last_modified {
            headers.insert(
                "last-modified",
                h(httpdate::fmt_http_date(at(response_time, d + 1000))),
            );
        }
        if let Some(e) = c.expires {
            let v = if e == "date" {
                httpdate::fmt_http_date(at(response_time, -c.expires_in))
            } else {
                e.to_owned()
            };
            headers.insert("expires", h(v));
        }
        if let Some(a) = c.age {
            headers.insert("age", h(a.to_owned()));
        }
        if c.etag {
            headers.insert("etag", h("\"v1\"".into()));
        }
        if c.pragma_resp {
            headers.insert("pragma", h("no-cache".into()));
        }
        if let Some(v) = c.vary {
            headers.insert("vary", h(v.into()));
        }
    }
    let mut req = Request::get("https://shop.example/p").header("accept-language", "fr");
    if c.authorization {
        req = req.header("authorization", "Bearer x");
    }
    let mut later = Request::get("https://shop.example/p").header("accept-language", "fr");
    if c.authorization {
        later = later.header("authorization", "Bearer x");
    }
    if !c.req_cc.is_empty() {
        later = later.header("cache-control", c.req_cc.join(", "));
    }
    if c.pragma_req {
        later = later.header("pragma", "no-cache");
    }
    Built {
        req: req.body(()).unwrap(),
        resp: resp.body(()).unwrap(),
        later: later.body(()).unwrap(),
        response_time,
        now: response_time + Duration::from_secs(c.later),
    }
}

/// Ours: stored? and then served without going upstream? (the rule of
/// session/cached/revalidate.rs, from the policy functions; no default TTL).
fn ours(b: &Built) -> (bool, bool) {
    let resp_cc = CacheControl::parse_response(b.resp.headers());
    let req_cc_first = CacheControl::parse_request(b.req.headers());
    let lifetime = policy::freshness_lifetime(
        b.resp.status(),
        b.resp.headers(),
        &resp_cc,
        None,
        b.response_time,
    );
    let stored = policy::storable(
        &Method::GET,
        b.req.headers(),
        &req_cc_first,
        b.resp.status(),
        b.resp.headers(),
        &resp_cc,
        lifetime,
    )
    .is_ok();
    if !stored {
        return (false, false);
    }
    let times = Times {
        request_time: b.response_time,
        response_time: b.response_time,
    };
    let age = policy::initial_age(b.resp.headers(), times)
        + b.now.duration_since(b.response_time).unwrap_or_default();
    let req_cc = CacheControl::parse_request(b.later.headers());
    let young_enough = req_cc
        .max_age
        .is_none_or(|ma| age <= Duration::from_secs(ma));
    let min_fresh = Duration::from_secs(req_cc.min_fresh.unwrap_or(0));
    let must_validate = resp_cc.no_cache || req_cc.no_cache;
    if !must_validate && young_enough && age + min_fresh < lifetime {
        return (true, true);
    }
    let stale = age >= lifetime;
    let staleness = age.saturating_sub(lifetime);
    let stale_allowed = stale && !must_validate && !resp_cc.revalidate_when_stale();
    let client_accepts = match req_cc.max_stale {
        Some(None) => true,
        Some(Some(s)) => staleness <= Duration::from_secs(s),
        None => false,
    };
    (true, stale_allowed && client_accepts)
}

fn theirs(b: &Built) -> (bool, bool) {
    let p = CachePolicy::new_options(
        &b.req,
        &b.resp,
        b.response_time,
        CacheOptions {
            shared: true,
            ..CacheOptions::default()
        },
    );
    if !p.is_storable() {
        return (false, false);
    }
    let fresh = matches!(p.before_request(&b.later, b.now), BeforeRequest::Fresh(_));
    (true, fresh)
}

/// A known difference and the change to a case that takes it away: when the
/// changed case agrees, the difference is attributed to it. Each one is
/// explained, with its RFC section and whose bug it is, in notes/cache-oracle.md.
type Remedy = fn(&mut Case);

const KINDS: &[(&str, Remedy)] = &[
    ("vary-star: Vary: * is never stored by us", |c| {
        c.vary = None
    }),
    (
        "must-understand: overrides no-store for understood statuses",
        |c| c.resp_cc.retain(|d| *d != "must-understand"),
    ),
    (
        "proxy-revalidate: the oracle treats a fresh response as stale",
        |c| c.resp_cc.retain(|d| *d != "proxy-revalidate"),
    ),
    (
        "response-pragma: the oracle reads Pragma: no-cache on a response",
        |c| c.pragma_resp = false,
    ),
    (
        "request-pragma: the oracle reads Pragma: no-cache beside Cache-Control",
        |c| c.pragma_req = false,
    ),
    (
        "apparent-age: the oracle ignores Date when computing age",
        |c| c.date = Some(0),
    ),
    (
        "useless: no freshness, no validator, no stale use: we do not store",
        |c| c.etag = true,
    ),
    (
        "status: the statuses each side stores or understands differ",
        |c| c.status = 200,
    ),
    (
        "heuristic: our heuristic needs a heuristically cacheable status or public, capped at 1 day",
        |c| c.last_modified = None,
    ),
    (
        "s-maxage-stale: s-maxage forbids serving stale; the oracle allows max-stale",
        |c| c.req_cc.retain(|d| !d.starts_with("max-stale")),
    ),
    ("boundary: age exactly at a limit (< vs <=)", |c| {
        c.later += 1
    }),
    ("boundary: age exactly at a limit (< vs <=)", |c| {
        c.later = c.later.saturating_sub(1)
    }),
];

fn decide(c: &Case) -> ((bool, bool), (bool, bool)) {
    let b = build(c);
    (ours(&b), theirs(&b))
}

/// The known kinds behind a disagreement, or `None` when it is not explained:
/// the remedies are applied one on top of the other, and each one that changed
/// either side's decision is named, until the two agree.
fn explain(c: &Case) -> Option<String> {
    let mut changed = c.clone();
    let mut before = decide(&changed);
    let mut named: Vec<&str> = Vec::new();
    for (kind, remedy) in KINDS {
        remedy(&mut changed);
        let after = decide(&changed);
        if after != before && !named.contains(kind) {
            named.push(kind);
        }
        before = after;
        if after.0 == after.1 {
            return Some(named.join(" + "));
        }
    }
    None
}

#[test]
fn our_cache_policy_agrees_with_an_independent_implementation() {
    let cases: u32 = std::env::var("EDGEWARD_ORACLE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if std::env::var_os("CI").is_some() {
            4000
        } else {
            1000
        });
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let kinds = std::cell::RefCell::new(BTreeMap::<String, u64>::new());
    let unexplained = std::cell::RefCell::new(Vec::<String>::new());
    let _ = runner.run(&case(), |c| {
        let (o, t) = decide(&c);
        let kind = if o == t { Some("agree".to_owned()) } else { explain(&c) };
        let raw = std::env::var_os("ORACLE_RAW").is_some() && o != t;
        match kind.filter(|_| !raw) {
            Some(kind) => *kinds.borrow_mut().entry(kind).or_default() += 1,
            None => {
                let b = build(&c);
                unexplained.borrow_mut().push(format!(
                    "ours (stored, served) = {o:?}, theirs = {t:?}\n    response {:?} {:?}\n    later request {:?} at +{}s",
                    b.resp.status(),
                    b.resp.headers(),
                    b.later.headers(),
                    c.later
                ));
            }
        }
        Ok(())
    });
    for (kind, n) in kinds.borrow().iter() {
        eprintln!("{n:>6}  {kind}");
    }
    let unexplained = unexplained.into_inner();
    assert!(
        unexplained.is_empty(),
        "{} unexplained disagreements with http-cache-semantics (see notes/cache-oracle.md), e.g.:\n  {}",
        unexplained.len(),
        unexplained
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    let agree = kinds.borrow().get("agree").copied().unwrap_or(0);
    assert!(
        agree * 2 > u64::from(cases),
        "only {agree} of {cases} pairs agreed"
    );
}
