//! A canary router for Edgeward, written only against `edgeward-sdk`.
//!
//! Endpoints tagged `canary` in the upstream's config receive:
//! - every request carrying `X-Canary: 1` (and none carrying `X-Canary: 0`);
//! - otherwise a stable share of clients (10 % by default), chosen by a hash
//!   of the client address — or of a header such as `x-client-id` — so a
//!   client stays on the same side from one request to the next and on
//!   every gateway node.
//!
//! Within each side, requests go round robin over the healthy endpoints
//! (the cursors live in host state, shared by all instances). If the chosen
//! side has no healthy endpoint the request goes to the other side:
//! availability first.
//!
//! Config (all optional):
//! - `tag`: the canary tag, default `canary`;
//! - `percent`: share of clients sent to canary, 0–100, decimals allowed, default `10`;
//! - `header`: the override header, default `x-canary` (`1` = canary, `0` = stable);
//! - `client-header`: hash this header's value instead of the client address
//!   when present (for clients behind a shared proxy).

use edgeward_sdk::{Candidate, Config, Decision, Request, Router, Upstream, hash, state};

/// Resolution of the stable percentage: basis points (0.01 %).
const BUCKETS: u64 = 10_000;

/// The canary router.
pub struct Canary {
    tag: String,
    /// Canary share in basis points.
    share: u64,
    header: String,
    client_header: Option<String>,
}

/// Which side a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Endpoints carrying the canary tag.
    Canary,
    /// All other endpoints.
    Stable,
}

impl Canary {
    /// Which side `req` goes to, before looking at endpoint health.
    pub fn side(&self, req: &Request<'_>) -> Side {
        match req.header(&self.header).as_deref().map(str::trim) {
            Some("1") => return Side::Canary,
            Some("0") => return Side::Stable,
            _ => {}
        }
        let key = self
            .client_header
            .as_deref()
            .and_then(|h| req.header(h))
            .map_or_else(|| hash::ip(req.client_addr()), |v| hash::text(v.trim()));
        if hash::bucket(key, BUCKETS) < self.share {
            Side::Canary
        } else {
            Side::Stable
        }
    }
}

impl Router for Canary {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&["tag", "percent", "header", "client-header"])?;
        let percent: f64 = config.parse_or("percent", 10.0)?;
        if !(0.0..=100.0).contains(&percent) {
            return Err(format!("config `percent`: {percent} is outside 0..=100"));
        }
        let tag = config.get_or("tag", "canary").trim().to_owned();
        if tag.is_empty() {
            return Err("config `tag`: must not be empty".to_owned());
        }
        Ok(Self {
            tag,
            share: (percent * 100.0).round() as u64,
            header: config
                .get_or("header", "x-canary")
                .trim()
                .to_ascii_lowercase(),
            client_header: config
                .get("client-header")
                .map(|h| h.trim().to_ascii_lowercase()),
        })
    }

    fn choose(
        &self,
        req: &Request<'_>,
        upstream: &Upstream<'_>,
        candidates: &[Candidate],
    ) -> Decision {
        let canary_ids = &upstream.tagged(&self.tag);
        let on_side = |side: Side| {
            candidates
                .iter()
                .filter(move |c| c.healthy && canary_ids.contains(&c.id) == (side == Side::Canary))
        };
        let wanted = self.side(req);
        let other = match wanted {
            Side::Canary => Side::Stable,
            Side::Stable => Side::Canary,
        };
        for side in [wanted, other] {
            let n = on_side(side).count();
            if n > 0 {
                let prefix = match side {
                    Side::Canary => "canary/canary",
                    Side::Stable => "canary/stable",
                };
                let key = upstream.state_key(prefix, candidates);
                return Decision::forward_or_unavailable(
                    on_side(side).nth(state::next_index(&key, n)),
                );
            }
        }
        Decision::Unavailable
    }
}

edgeward_sdk::export!(router: Canary);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeEndpoint, FakeHost, FakeRequest, FakeUpstream};
    use std::net::Ipv4Addr;

    /// Two stable endpoints (ids 0, 1) and one canary (id 2).
    fn upstream() -> FakeUpstream {
        FakeUpstream::new("product")
            .with_endpoint("10.0.0.1:80")
            .with_endpoint("10.0.0.2:80")
            .with(FakeEndpoint::new("10.0.0.9:80").tag("canary"))
    }

    fn client(i: u32) -> FakeRequest {
        FakeRequest::get("/").with_client(Ipv4Addr::from(0x0a64_0000 + i))
    }

    fn goes_to_canary(host: &FakeHost, r: &Canary, req: &FakeRequest, up: &FakeUpstream) -> bool {
        host.choose(r, req, up).endpoint() == Some(2)
    }

    #[test]
    fn header_forces_either_side() {
        let host = FakeHost::new();
        let r: Canary = host.router(&[("percent", "50")]).unwrap();
        let up = upstream();
        for i in 0..50 {
            assert!(goes_to_canary(
                &host,
                &r,
                &client(i).with_header("X-Canary", "1"),
                &up
            ));
            assert!(!goes_to_canary(
                &host,
                &r,
                &client(i).with_header("x-canary", "0"),
                &up
            ));
        }
    }

    #[test]
    fn a_stable_ten_percent_of_clients_go_to_canary() {
        let host = FakeHost::new();
        let r: Canary = host.router(&[]).unwrap();
        let up = upstream();
        let canary: Vec<u32> = (0..10_000)
            .filter(|&i| goes_to_canary(&host, &r, &client(i), &up))
            .collect();
        assert!(
            (900..=1_100).contains(&canary.len()),
            "{} of 10000",
            canary.len()
        );
        // Stable: the same clients again, and from another instance.
        let other: Canary = host.router(&[]).unwrap();
        for &i in canary.iter().take(100) {
            assert!(goes_to_canary(&host, &other, &client(i), &up));
        }
    }

    #[test]
    fn stable_traffic_is_round_robin_over_stable_endpoints() {
        let host = FakeHost::new();
        let r: Canary = host.router(&[("percent", "0")]).unwrap();
        let up = upstream();
        let picks: Vec<u32> = (0..4)
            .map(|i| host.choose(&r, &client(i), &up).endpoint().unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }

    #[test]
    fn client_header_replaces_the_address() {
        let host = FakeHost::new();
        let r: Canary = host
            .router(&[("client-header", "X-Client-Id"), ("percent", "30")])
            .unwrap();
        let up = upstream();
        let hits = (0..1_000)
            .filter(|i| {
                let req = FakeRequest::get("/").with_header("x-client-id", &format!("user-{i}"));
                goes_to_canary(&host, &r, &req, &up)
            })
            .count();
        assert!((250..=350).contains(&hits), "{hits}");
    }

    #[test]
    fn falls_back_to_the_other_side_when_one_is_down() {
        let host = FakeHost::new();
        let r: Canary = host.router(&[]).unwrap();
        let mut up = upstream();
        up.set_healthy(2, false);
        assert_ne!(
            host.choose(&r, &client(1).with_header("x-canary", "1"), &up)
                .endpoint(),
            Some(2)
        );
        up.set_healthy(2, true);
        up.set_healthy(0, false);
        up.set_healthy(1, false);
        assert_eq!(
            host.choose(&r, &client(1).with_header("x-canary", "0"), &up)
                .endpoint(),
            Some(2)
        );
        up.set_healthy(2, false);
        assert_eq!(host.choose(&r, &client(1), &up), Decision::Unavailable);
    }

    #[test]
    fn config_errors_name_the_key() {
        let host = FakeHost::new();
        for (bad, key) in [
            (("percent", "150"), "percent"),
            (("percent", "lots"), "percent"),
            (("tag", " "), "tag"),
            (("precent", "5"), "precent"),
        ] {
            let err = host.router::<Canary>(&[bad]).err().unwrap();
            assert!(err.contains(key), "{err}");
        }
    }
}
