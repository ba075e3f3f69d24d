//! `read-write-split`: reads to replicas, writes to the primary.
//!
//! `GET`, `HEAD` and `OPTIONS` go round robin over the healthy endpoints
//! tagged `replica`; every other method goes round robin over the healthy
//! endpoints tagged `primary`. A read with no healthy replica goes to the
//! primary (it can serve reads too); a write with no healthy primary is
//! answered `503` with the reason, since a replica must not take it.
//!
//! Read-your-writes (optional, `read-your-writes: 5s`): after a write, the
//! same client's reads go to the primary for that long, so it sees its own
//! write before replication catches up. The pin is either
//! - `pin: cookie` (default): the write's response sets a cookie whose value
//!   is the pin's expiry (Unix milliseconds, so a write late in a second
//!   still gets its whole window) and whose `Max-Age` is the window;
//!   it needs no shared state and works across gateway nodes; or
//! - `pin: state`: a host `state` entry with that TTL, keyed by a hash of the
//!   client address (or of `client-header` when set), for clients that do
//!   not keep cookies; it is local to one gateway node.
//!
//! If the pinned client's primary is down, its reads go to a replica: a
//! possibly stale answer beats none.
//!
//! Config:
//! - `replica-tag`: default `replica`; `primary-tag`: default `primary`.
//! - `read-your-writes`: a duration such as `5s`; default off.
//! - `pin`: `cookie` or `state`; default `cookie`.
//! - `cookie`: the pin cookie's name, default `edgeward-rw`.
//! - `client-header`: with `pin: state`, identify the client by this header.

use std::time::Duration;

use edgeward_sdk::cookie::{self, SameSite, SetCookie};
use edgeward_sdk::{
    Candidate, Config, Decision, DirectResponse, Forward, HeaderEdit, Request, Router, Upstream,
    clock, debug, hash, state,
};

/// How a write pins its client to the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pin {
    Cookie(String),
    State { client_header: Option<String> },
}

/// The read-write-split router.
pub struct ReadWriteSplit {
    replica: String,
    primary: String,
    /// Read-your-writes window and how it is kept; `None` when off.
    pin: Option<(Duration, Pin)>,
}

/// Methods a replica may serve: RFC 9110's safe methods that read (TRACE,
/// also safe, echoes the request and is better left to the primary).
pub fn is_read(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

fn now_millis() -> u64 {
    clock::wall_now() / 1_000_000
}

/// Slack for clocks of gateway nodes that disagree, when judging whether a
/// pin's expiry is further out than we would ever have set it.
const SKEW_MS: u64 = 1_000;

impl ReadWriteSplit {
    /// Round robin over the healthy endpoints carrying `tag`, the cursor in
    /// host state so every instance shares it.
    fn pick<'c>(
        &self,
        tag: &str,
        upstream: &Upstream<'_>,
        candidates: &'c [Candidate],
    ) -> Option<&'c Candidate> {
        let tagged = upstream.tagged(tag);
        let healthy: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| c.healthy && tagged.contains(&c.id))
            .collect();
        if healthy.is_empty() {
            return None;
        }
        let cursor = upstream.state_key(&format!("rws-{tag}"), candidates);
        Some(healthy[state::next_index(&cursor, healthy.len())])
    }

    /// The state key pinning this client, for `pin: state`.
    fn client_key(
        req: &Request<'_>,
        upstream: &Upstream<'_>,
        candidates: &[Candidate],
        header: Option<&str>,
    ) -> String {
        let id = header
            .and_then(|h| req.header(h))
            .map_or_else(|| hash::ip(req.client_addr()), |v| hash::text(v.trim()));
        format!("{}/{id:016x}", upstream.state_key("rws-pin", candidates))
    }

    fn pinned(&self, req: &Request<'_>, upstream: &Upstream<'_>, candidates: &[Candidate]) -> bool {
        let Some((window, pin)) = &self.pin else {
            return false;
        };
        match pin {
            Pin::Cookie(name) => req
                .cookie(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                // A far-future value is a forged cookie: it would only cost
                // primary load, but it is not ours, so ignore it.
                .is_some_and(|until| {
                    let now = now_millis();
                    until > now
                        && until
                            <= now
                                .saturating_add(window_ms(window))
                                .saturating_add(SKEW_MS)
                }),
            Pin::State { client_header } => state::kv_get(&Self::client_key(
                req,
                upstream,
                candidates,
                client_header.as_deref(),
            ))
            .is_some(),
        }
    }

    /// After a write: pin the client, returning the response edit if any.
    fn pin_after_write(
        &self,
        req: &Request<'_>,
        upstream: &Upstream<'_>,
        candidates: &[Candidate],
    ) -> Option<HeaderEdit> {
        let (window, pin) = self.pin.as_ref()?;
        match pin {
            Pin::Cookie(name) => {
                let until = now_millis().saturating_add(window_ms(window));
                let mut c = SetCookie::new(name, until.to_string())
                    .path("/")
                    .max_age(*window)
                    .http_only()
                    .same_site(SameSite::Lax);
                if req.scheme() == "https" {
                    c = c.secure();
                }
                Some(HeaderEdit::append("set-cookie", c.to_string()))
            }
            Pin::State { client_header } => {
                let key = Self::client_key(req, upstream, candidates, client_header.as_deref());
                if let Err(e) = state::kv_set(&key, b"1", Some(*window)) {
                    debug!("read-your-writes pin not stored: {e}");
                }
                None
            }
        }
    }
}

fn window_ms(window: &Duration) -> u64 {
    u64::try_from(window.as_millis()).unwrap_or(u64::MAX / 2)
}

fn tag(config: &Config, key: &str, default: &str) -> Result<String, String> {
    let t = config.get_or(key, default).trim().to_owned();
    if t.is_empty() {
        return Err(format!("config `{key}`: must not be empty"));
    }
    Ok(t)
}

impl Router for ReadWriteSplit {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&[
            "replica-tag",
            "primary-tag",
            "read-your-writes",
            "pin",
            "cookie",
            "client-header",
        ])?;
        let replica = tag(config, "replica-tag", "replica")?;
        let primary = tag(config, "primary-tag", "primary")?;
        if replica == primary {
            return Err(format!(
                "config `replica-tag` and `primary-tag` are both `{primary}`: reads and writes would not be split"
            ));
        }
        let window = config.duration("read-your-writes")?;
        if window.is_some_and(|w| w.as_secs() == 0) {
            return Err("config `read-your-writes`: must be at least 1s".to_owned());
        }
        let pin = match config.get_or("pin", "cookie").trim() {
            "cookie" => {
                let name = config.get_or("cookie", "edgeward-rw").trim().to_owned();
                if !cookie::is_valid_name(&name) {
                    return Err(format!(
                        "config `cookie`: `{name}` is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~)"
                    ));
                }
                Pin::Cookie(name)
            }
            "state" => Pin::State {
                client_header: config
                    .get("client-header")
                    .map(|h| h.trim().to_ascii_lowercase()),
            },
            other => {
                return Err(format!(
                    "config `pin`: invalid value `{other}`: expected cookie or state"
                ));
            }
        };
        if window.is_none()
            && ["pin", "cookie", "client-header"]
                .iter()
                .any(|k| config.get(k).is_some())
        {
            return Err(
                "config `pin`, `cookie` and `client-header` need `read-your-writes` (a duration such as 5s)"
                    .to_owned(),
            );
        }
        Ok(Self {
            replica,
            primary,
            pin: window.map(|w| (w, pin)),
        })
    }

    fn choose(
        &self,
        req: &Request<'_>,
        upstream: &Upstream<'_>,
        candidates: &[Candidate],
    ) -> Decision {
        let method = req.method();
        if is_read(&method) {
            let (first, second) = if self.pinned(req, upstream, candidates) {
                (&self.primary, &self.replica)
            } else {
                (&self.replica, &self.primary)
            };
            return Decision::forward_or_unavailable(
                self.pick(first, upstream, candidates)
                    .or_else(|| self.pick(second, upstream, candidates)),
            );
        }
        let Some(target) = self.pick(&self.primary, upstream, candidates) else {
            return Decision::Respond(DirectResponse::new(503).text(format!(
                "read-write-split: no healthy endpoint tagged `{}` for a {method}\n",
                self.primary
            )));
        };
        let mut f = Forward::to(target.id);
        if let Some(edit) = self.pin_after_write(req, upstream, candidates) {
            f = f.response_header(edit);
        }
        f.into()
    }
}

edgeward_sdk::export!(router: ReadWriteSplit);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeEndpoint, FakeHost, FakeRequest, FakeUpstream};
    use std::time::SystemTime;

    /// 0 = primary, 1 and 2 = replicas.
    fn upstream() -> FakeUpstream {
        FakeUpstream::new("db")
            .with(FakeEndpoint::new("10.0.0.1:80").tag("primary"))
            .with(FakeEndpoint::new("10.0.0.2:80").tag("replica"))
            .with(FakeEndpoint::new("10.0.0.3:80").tag("replica"))
    }

    fn forward(d: Decision) -> Forward {
        match d {
            Decision::Forward(f) => f,
            other => panic!("expected a forward, got {other:?}"),
        }
    }

    fn set_cookie(f: &Forward) -> Option<String> {
        f.response_headers.iter().find_map(|e| match e {
            HeaderEdit::Append(h) if h.name == "set-cookie" => Some(h.value.clone()),
            _ => None,
        })
    }

    #[test]
    fn reads_spread_over_replicas_and_writes_go_to_the_primary() {
        let host = FakeHost::new();
        let r: ReadWriteSplit = host.router(&[]).unwrap();
        let up = upstream();
        let reads: Vec<u32> = ["GET", "HEAD", "OPTIONS", "GET"]
            .iter()
            .map(|m| forward(host.choose(&r, &FakeRequest::get("/").with_method(m), &up)).endpoint)
            .collect();
        assert_eq!(reads, [1, 2, 1, 2]);
        for m in ["POST", "PUT", "PATCH", "DELETE", "TRACE"] {
            let f = forward(host.choose(&r, &FakeRequest::get("/").with_method(m), &up));
            assert_eq!(f.endpoint, 0, "{m}");
            assert!(set_cookie(&f).is_none(), "no pin without read-your-writes");
        }
    }

    #[test]
    fn degraded_tiers() {
        let host = FakeHost::new();
        let r: ReadWriteSplit = host.router(&[]).unwrap();
        let mut up = upstream();
        up.set_healthy(1, false);
        up.set_healthy(2, false);
        // Reads fall back to the primary.
        assert_eq!(
            host.choose(&r, &FakeRequest::get("/"), &up).endpoint(),
            Some(0)
        );
        up.set_healthy(1, true);
        up.set_healthy(0, false);
        // Writes never go to a replica: 503 with the reason.
        match host.choose(&r, &FakeRequest::get("/").with_method("POST"), &up) {
            Decision::Respond(resp) => {
                assert_eq!(resp.status, 503);
                let body = String::from_utf8(resp.body).unwrap();
                assert!(
                    body.contains("no healthy endpoint tagged `primary`"),
                    "{body}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            host.choose(&r, &FakeRequest::get("/"), &up).endpoint(),
            Some(1)
        );
        up.set_healthy(1, false);
        assert_eq!(
            host.choose(&r, &FakeRequest::get("/"), &up),
            Decision::Unavailable
        );
    }

    #[test]
    fn cookie_pin_sends_reads_to_the_primary_until_it_expires() {
        let host = FakeHost::new();
        host.set_wall_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let r: ReadWriteSplit = host.router(&[("read-your-writes", "5s")]).unwrap();
        let up = upstream();
        let f = forward(host.choose(&r, &FakeRequest::get("/").with_method("POST"), &up));
        assert_eq!(f.endpoint, 0);
        let set = set_cookie(&f).expect("a write sets the pin");
        assert!(set.starts_with("edgeward-rw=1000005000;"), "{set}");
        assert!(
            set.contains("Max-Age=5") && set.contains("HttpOnly"),
            "{set}"
        );
        let read = FakeRequest::get("/").with_cookie("edgeward-rw", "1000005000");
        for _ in 0..3 {
            assert_eq!(host.choose(&r, &read, &up).endpoint(), Some(0));
        }
        host.set_wall_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_005));
        assert_ne!(host.choose(&r, &read, &up).endpoint(), Some(0), "expired");
        // A write late in a second still gets its whole window.
        host.set_wall_time(SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000_999));
        let f = forward(host.choose(&r, &FakeRequest::get("/").with_method("POST"), &up));
        let late = set_cookie(&f).unwrap();
        let value = late
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("edgeward-rw=");
        assert_eq!(value, "1000005999");
        host.set_wall_time(SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_005_500));
        let read = FakeRequest::get("/").with_cookie("edgeward-rw", value);
        assert_eq!(host.choose(&r, &read, &up).endpoint(), Some(0), "cut short");
        // Junk and far-future values are ignored.
        for junk in ["x", "-1", "99999999999999"] {
            let req = FakeRequest::get("/").with_cookie("edgeward-rw", junk);
            assert_ne!(host.choose(&r, &req, &up).endpoint(), Some(0), "{junk}");
        }
    }

    #[test]
    fn state_pin_is_per_client_and_expires() {
        let host = FakeHost::new();
        let r: ReadWriteSplit = host
            .router(&[("read-your-writes", "2s"), ("pin", "state")])
            .unwrap();
        let up = upstream();
        let writer = [10, 0, 0, 7];
        let f = forward(
            host.choose(
                &r,
                &FakeRequest::get("/")
                    .with_method("DELETE")
                    .with_client(writer),
                &up,
            ),
        );
        assert!(set_cookie(&f).is_none());
        let mine = FakeRequest::get("/").with_client(writer);
        let other = FakeRequest::get("/").with_client([10, 0, 0, 8]);
        assert_eq!(host.choose(&r, &mine, &up).endpoint(), Some(0));
        assert_ne!(host.choose(&r, &other, &up).endpoint(), Some(0));
        host.advance(Duration::from_secs(3));
        assert_ne!(host.choose(&r, &mine, &up).endpoint(), Some(0));
    }

    #[test]
    fn config_is_checked() {
        let host = FakeHost::new();
        for bad in [
            &[("pin", "cookie")][..],
            &[("read-your-writes", "soon")],
            &[("read-your-writes", "5s"), ("pin", "memory")],
            &[("read-your-writes", "5s"), ("cookie", "a b")],
            &[("replica-tag", "x"), ("primary-tag", "x")],
            &[("replica-tag", " ")],
            &[("replicas", "x")],
        ] {
            assert!(host.router::<ReadWriteSplit>(bad).is_err(), "{bad:?}");
        }
        let r: ReadWriteSplit = host
            .router(&[("replica-tag", "ro"), ("primary-tag", "rw")])
            .unwrap();
        let up = FakeUpstream::new("db")
            .with(FakeEndpoint::new("10.0.0.1:80").tag("rw"))
            .with(FakeEndpoint::new("10.0.0.2:80").tag("ro"));
        assert_eq!(
            host.choose(&r, &FakeRequest::get("/"), &up).endpoint(),
            Some(1)
        );
    }
}
