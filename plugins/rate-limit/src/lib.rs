//! `rate-limit`: a token bucket per key, answering 429 when it is empty.
//!
//! The bucket is kept as one number per key, its *theoretical arrival time*
//! (GCRA, the token bucket's one-value form): a request is let through when
//! the bucket's TAT is at most `(burst - 1)` intervals ahead of now, and then
//! pushes it one interval (`per / requests`) further. The TAT lives in host
//! `state` with a TTL of "until the bucket is full again", so a key that goes
//! quiet costs nothing and the store stays bounded by the active keys.
//!
//! Answers: a 429 with `Retry-After` (whole seconds, at least 1) and the
//! IETF draft-ietf-httpapi-ratelimit-headers fields `RateLimit-Policy:
//! "<route>";q=<requests>;w=<seconds>` and `RateLimit: "<route>";r=0;t=<secs>`.
//! Responses that pass are left alone: what `on-response` adds is what the
//! cache stores, and one client's remaining quota must not be served to others.
//!
//! Config (all text, as the gateway's `rate-limit:` route block passes it):
//! - `requests`: requests allowed per `per`, sustained (required, ≥ 1);
//! - `per`: the period, e.g. `1s`, `1m` (default `1s`);
//! - `burst`: requests allowed at once after a quiet period (default `requests`);
//! - `key`: `client-ip` (default; IPv6 clients by their /64), `route`,
//!   `header:<name>` or `cookie:<name>` (requests without it share one bucket).
//!
//! State key (stable, so a region-wide store can take the same keys):
//! `rl1|<route>|<kind>|<value>` with kind `ip`, `route`, `h:<name>` or
//! `c:<name>`; a value longer than 128 bytes is replaced by `#` and its
//! FNV-1a 64 hash in hex. The stored value is the TAT as 8 little-endian
//! bytes of microseconds since the Unix epoch (wall clock, so nodes sharing a
//! store agree on it).
//!
//! Precision: each key's read and write are two host calls, so two requests
//! of the same key racing on different instances can both pass; sequential
//! requests are counted exactly.

use std::net::IpAddr;
use std::time::Duration;

use edgeward_sdk::hash::fnv1a64;
use edgeward_sdk::{Action, Config, DirectResponse, Filter, Request, clock, state, warn};

/// Longest key value kept as is; longer ones are hashed (keys are ≤ 256 bytes).
const MAX_VALUE: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    ClientIp,
    Route,
    Header(String),
    Cookie(String),
}

/// The rate-limit filter.
pub struct RateLimit {
    requests: u32,
    window_s: u64,
    /// One token's worth of time, µs.
    interval_us: u64,
    burst: u64,
    key: Key,
}

/// What one request did to its bucket.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Pass,
    Limited { retry_s: u64 },
}

fn secs_ceil(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

fn now_us() -> u64 {
    clock::wall_now() / 1_000
}

impl RateLimit {
    fn state_key(&self, req: &Request<'_>) -> String {
        let (kind, value) = match &self.key {
            Key::ClientIp => ("ip".to_owned(), client(req.client_addr())),
            Key::Route => ("route".to_owned(), String::new()),
            Key::Header(h) => (format!("h:{h}"), req.header(h).unwrap_or_default()),
            Key::Cookie(c) => (format!("c:{c}"), req.cookie(c).unwrap_or_default()),
        };
        let value = if value.len() > MAX_VALUE {
            format!("#{:016x}", fnv1a64(value.as_bytes()))
        } else {
            value
        };
        format!("rl1|{}|{kind}|{value}", req.route())
    }

    /// The bucket's TAT, or `now` when it is full (absent, expired, or
    /// impossibly far ahead after the wall clock stepped back).
    fn tat(&self, key: &str, now: u64) -> u64 {
        let stored = state::kv_get(key)
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_le_bytes);
        if stored < now || stored - now > self.burst * self.interval_us {
            now
        } else {
            stored
        }
    }

    fn take(&self, key: &str) -> Verdict {
        let now = now_us();
        let tat = self.tat(key, now);
        let tolerance = (self.burst - 1) * self.interval_us;
        let ahead = tat - now;
        if ahead > tolerance {
            return Verdict::Limited {
                retry_s: secs_ceil(ahead - tolerance).max(1),
            };
        }
        let next = tat + self.interval_us;
        let ttl = Duration::from_micros(next - now);
        if let Err(e) = state::kv_set(key, &next.to_le_bytes(), Some(ttl)) {
            // Fail open: a full store must not refuse every new client.
            warn!("cannot store the bucket of {key}: {e:?}; request let through");
        }
        Verdict::Pass
    }

    fn policy(&self, route: &str) -> String {
        format!("\"{route}\";q={};w={}", self.requests, self.window_s)
    }
}

/// An IPv6 client is one /64 (a host usually gets a whole /64, so its
/// single addresses are free to vary); an IPv4 client is its address.
fn client(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn parse_key(text: &str) -> Result<Key, String> {
    let bad = || {
        format!(
            "config `key`: `{text}` is not a key; write client-ip, route, header:<name> or cookie:<name>"
        )
    };
    Ok(match text.trim().split_once(':') {
        None if text.trim() == "client-ip" => Key::ClientIp,
        None if text.trim() == "route" => Key::Route,
        Some(("header", name))
            if !name.trim().is_empty()
                && name
                    .trim()
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b':') =>
        {
            Key::Header(name.trim().to_ascii_lowercase())
        }
        Some(("cookie", name)) if edgeward_sdk::cookie::is_valid_name(name.trim()) => {
            Key::Cookie(name.trim().to_owned())
        }
        _ => return Err(bad()),
    })
}

impl Filter for RateLimit {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&["requests", "per", "burst", "key"])?;
        let requests: u32 = config
            .parse("requests")?
            .ok_or("config `requests`: required, e.g. `100`")?;
        if requests == 0 {
            return Err("config `requests`: must be at least 1".into());
        }
        let per = config.duration("per")?.unwrap_or(Duration::from_secs(1));
        let interval_us = u64::try_from(per.as_micros() / u128::from(requests)).unwrap_or(0);
        if interval_us == 0 {
            return Err(format!(
                "config `per`: {per:?} for {requests} requests is under 1µs per request"
            ));
        }
        let burst: u32 = config.parse_or("burst", requests)?;
        Ok(Self {
            requests,
            window_s: per.as_secs().max(1),
            interval_us,
            burst: u64::from(burst.max(1)),
            key: parse_key(config.get_or("key", "client-ip"))?,
        })
    }

    fn on_request(&self, request: &Request<'_>) -> Action {
        match self.take(&self.state_key(request)) {
            Verdict::Pass => Action::pass(),
            Verdict::Limited { retry_s } => {
                let route = request.route();
                DirectResponse::new(429)
                    .header("retry-after", retry_s.to_string())
                    .header("ratelimit-policy", self.policy(&route))
                    .header("ratelimit", format!("\"{route}\";r=0;t={retry_s}"))
                    .text("too many requests; retry later\n")
                    .into()
            }
        }
    }
}

edgeward_sdk::export!(filter: RateLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeHost, FakeRequest};

    fn limited(a: &Action) -> Option<u64> {
        match a {
            Action::Respond(r) => {
                assert_eq!(r.status, 429);
                let h = |n: &str| {
                    r.headers
                        .iter()
                        .find(|h| h.name == n)
                        .map(|h| h.value.clone())
                };
                assert!(h("ratelimit-policy").is_some_and(|p| p.contains("q=")));
                Some(h("retry-after")?.parse().ok()?)
            }
            Action::Continue(_) => None,
        }
    }

    #[test]
    fn twice_the_rate_gets_half_refused() {
        let host = FakeHost::new();
        let f: RateLimit = host
            .filter(&[("requests", "10"), ("per", "1s"), ("burst", "1")])
            .unwrap();
        let req = FakeRequest::get("/").with_route("r");
        let mut refused = 0;
        for _ in 0..100 {
            if let Some(retry) = limited(&host.on_request(&f, &req)) {
                assert_eq!(retry, 1);
                refused += 1;
            }
            host.advance(Duration::from_millis(50));
        }
        assert_eq!(refused, 50);
    }

    #[test]
    fn burst_then_steady_and_keys_are_separate() {
        let host = FakeHost::new();
        let f: RateLimit = host
            .filter(&[("requests", "2"), ("per", "1m"), ("burst", "3")])
            .unwrap();
        let a = FakeRequest::get("/").with_client([10, 0, 0, 1]);
        let b = FakeRequest::get("/").with_client([10, 0, 0, 2]);
        for _ in 0..3 {
            assert_eq!(limited(&host.on_request(&f, &a)), None);
        }
        // One token every 30 s.
        assert_eq!(limited(&host.on_request(&f, &a)), Some(30));
        assert_eq!(limited(&host.on_request(&f, &b)), None);
        host.advance(Duration::from_secs(30));
        assert_eq!(limited(&host.on_request(&f, &a)), None);
        assert!(limited(&host.on_request(&f, &a)).is_some());
    }

    #[test]
    fn idle_buckets_expire_and_ipv6_counts_by_64() {
        let host = FakeHost::new();
        let f: RateLimit = host.filter(&[("requests", "1"), ("per", "1s")]).unwrap();
        let one = FakeRequest::get("/").with_client("2001:db8:1:2::1".parse::<IpAddr>().unwrap());
        let two = FakeRequest::get("/").with_client("2001:db8:1:2::99".parse::<IpAddr>().unwrap());
        assert_eq!(limited(&host.on_request(&f, &one)), None);
        assert!(limited(&host.on_request(&f, &two)).is_some());
        host.advance(Duration::from_secs(2));
        host.run(|| state::kv_set("unrelated", b"x", None)).unwrap();
        assert_eq!(host.state_entries(), 1, "the full bucket was forgotten");
    }

    #[test]
    fn header_and_cookie_keys() {
        let host = FakeHost::new();
        let f: RateLimit = host
            .filter(&[
                ("requests", "1"),
                ("per", "1h"),
                ("key", "header:X-Api-Key"),
            ])
            .unwrap();
        let k1 = FakeRequest::get("/").with_header("x-api-key", "one");
        let k2 = FakeRequest::get("/").with_header("x-api-key", "two");
        assert_eq!(limited(&host.on_request(&f, &k1)), None);
        assert!(limited(&host.on_request(&f, &k1)).is_some());
        assert_eq!(limited(&host.on_request(&f, &k2)), None);
        let long = "v".repeat(1000);
        let k3 = FakeRequest::get("/").with_header("x-api-key", &long);
        assert_eq!(limited(&host.on_request(&f, &k3)), None);
        assert!(limited(&host.on_request(&f, &k3)).is_some());

        let c: RateLimit = host
            .filter(&[("requests", "1"), ("per", "1h"), ("key", "cookie:sid")])
            .unwrap();
        let s = FakeRequest::get("/").with_cookie("sid", "abc");
        assert_eq!(limited(&host.on_request(&c, &s)), None);
        assert!(limited(&host.on_request(&c, &s)).is_some());
    }

    #[test]
    fn bad_config_names_the_key() {
        let host = FakeHost::new();
        for (cfg, want) in [
            (vec![], "requests"),
            (vec![("requests", "0")], "requests"),
            (vec![("requests", "1"), ("key", "ip")], "key"),
            (vec![("requests", "1"), ("per", "soon")], "per"),
            (vec![("requests", "1"), ("rate", "1")], "rate"),
        ] {
            let e = host.filter::<RateLimit>(&cfg).err().unwrap();
            assert!(e.contains(want), "{e}");
        }
    }
}
