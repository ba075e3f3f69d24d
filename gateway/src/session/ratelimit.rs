//! Per-route token buckets (`rate-limit:`), checked right after routing.
//! Buckets live for the process, keyed by `route NUL key` — a flat key space a
//! region-wide store can later take over — so a reload keeps them.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::body::{Body, local_response};
use crate::config::limits::{RateKey, RateLimit};

const SHARDS: usize = 32;
/// Buckets per shard before idle (full) ones are forgotten.
const SHARD_CAP: usize = 4096;

struct Bucket {
    tokens: f64,
    last: Instant,
}

struct Buckets {
    hasher: std::hash::RandomState,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
}

fn buckets() -> &'static Buckets {
    static B: OnceLock<Buckets> = OnceLock::new();
    B.get_or_init(|| Buckets {
        hasher: std::hash::RandomState::new(),
        shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
    })
}

fn cookie<'a>(req: &'a Request<Body>, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

fn key(route: &str, limit: &RateLimit, req: &Request<Body>, client: IpAddr) -> String {
    let part = match &limit.key {
        RateKey::ClientIp => client.to_string(),
        RateKey::Route => String::new(),
        RateKey::Header(h) => req
            .headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        RateKey::Cookie(c) => cookie(req, c).unwrap_or("").to_owned(),
    };
    format!("{route}\0{part}")
}

/// Takes one token; `Err(seconds until one is available)` when there is none.
fn take(key: String, limit: &RateLimit) -> Result<u32, f64> {
    let b = buckets();
    let shard = &b.shards[(b.hasher.hash_one(&key) as usize) % SHARDS];
    let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let burst = f64::from(limit.burst);
    if map.len() >= SHARD_CAP && !map.contains_key(&key) {
        // Forget buckets that have refilled: they hold no information.
        let full_after = burst / limit.per_second;
        map.retain(|_, b| now.duration_since(b.last).as_secs_f64() < full_after);
        if map.len() >= SHARD_CAP {
            map.clear();
        }
    }
    let bucket = map.entry(key).or_insert(Bucket {
        tokens: burst,
        last: now,
    });
    let elapsed = now.duration_since(bucket.last).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(burst);
    bucket.last = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        Ok(bucket.tokens as u32)
    } else {
        Err((1.0 - bucket.tokens) / limit.per_second)
    }
}

/// The 429 to answer when the request is over its route's limit.
pub fn check(
    route: &str,
    limit: &RateLimit,
    req: &Request<Body>,
    client: IpAddr,
) -> Option<Response<Body>> {
    let wait = take(key(route, limit, req, client), limit).err()?;
    let secs = (wait.ceil() as u64).max(1);
    let mut resp = local_response(
        StatusCode::TOO_MANY_REQUESTS,
        "text/plain; charset=utf-8",
        "too many requests; retry later\n",
    );
    let h = resp.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    h.insert("ratelimit-limit", HeaderValue::from(limit.burst));
    h.insert("ratelimit-remaining", HeaderValue::from(0u32));
    h.insert("ratelimit-reset", HeaderValue::from(secs));
    if let Ok(v) = HeaderValue::from_str(&limit.policy) {
        h.insert("ratelimit-policy", v);
    }
    Some(resp)
}
