//! `ip-hash`: the same client goes to the same endpoint.
//!
//! Affinity by weighted rendezvous hashing of the client address against
//! each endpoint's stable key: no table, no shared state, the same answer on
//! every gateway node, and when an endpoint goes away (unhealthy or removed)
//! only its clients move; everyone else stays put.
//!
//! Config:
//! - `header` (optional): hash this request header's value instead of the
//!   client address when it is present, e.g. `x-client-id`. For
//!   `x-forwarded-for` the first (client-most) address is used.

use edgeward_sdk::{
    Candidate, Config, Decision, Request, Router, Upstream, hash, rendezvous, select,
};

/// The ip-hash router.
pub struct IpHash {
    header: Option<String>,
}

impl IpHash {
    fn client_key(&self, req: &Request<'_>) -> u64 {
        if let Some(name) = &self.header
            && let Some(value) = req.header(name)
        {
            let first = value.split(',').next().unwrap_or_default().trim();
            // An address in the header hashes like the same peer address would.
            return match first.parse() {
                Ok(ip) => hash::ip(ip),
                Err(_) => hash::text(first),
            };
        }
        hash::ip(req.client_addr())
    }
}

impl Router for IpHash {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&["header"])?;
        let header = config.get("header").map(|h| h.trim().to_ascii_lowercase());
        if header.as_deref() == Some("") {
            return Err("config `header`: must name a header, e.g. `x-client-id`".to_owned());
        }
        Ok(Self { header })
    }

    fn choose(&self, req: &Request<'_>, _: &Upstream<'_>, candidates: &[Candidate]) -> Decision {
        let key = self.client_key(req);
        Decision::forward_or_unavailable(rendezvous::pick_weighted(
            key,
            select::healthy(candidates),
        ))
    }
}

edgeward_sdk::export!(router: IpHash);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeHost, FakeRequest, FakeUpstream};
    use std::net::Ipv4Addr;

    fn upstream(n: u8) -> FakeUpstream {
        (1..=n).fold(FakeUpstream::new("auth"), |u, i| {
            u.with_endpoint(&format!("10.0.0.{i}:80"))
        })
    }

    fn client(i: u32) -> FakeRequest {
        FakeRequest::get("/").with_client(Ipv4Addr::from(0x0a64_0000 + i))
    }

    #[test]
    fn each_client_is_stable() {
        let host = FakeHost::new();
        let r: IpHash = host.router(&[]).unwrap();
        let other: IpHash = host.router(&[]).unwrap();
        let up = upstream(4);
        for i in 0..200 {
            let first = host.choose_address(&r, &client(i), &up);
            for _ in 0..3 {
                assert_eq!(host.choose_address(&r, &client(i), &up), first);
            }
            assert_eq!(host.choose_address(&other, &client(i), &up), first);
        }
    }

    #[test]
    fn clients_spread_across_endpoints() {
        let host = FakeHost::new();
        let r: IpHash = host.router(&[]).unwrap();
        let up = upstream(4);
        let mut counts = [0u32; 4];
        for i in 0..4_000 {
            counts[host.choose(&r, &client(i), &up).endpoint().unwrap() as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..=1_200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn removing_an_endpoint_moves_only_its_clients() {
        let host = FakeHost::new();
        let r: IpHash = host.router(&[]).unwrap();
        let full = upstream(5);
        let mut reduced = full.clone();
        assert!(reduced.remove("10.0.0.3:80"));
        let mut unhealthy = full.clone();
        unhealthy.set_healthy(2, false);
        let mut moved = 0;
        for i in 0..2_000 {
            let before = host.choose_address(&r, &client(i), &full).unwrap();
            let after = host.choose_address(&r, &client(i), &reduced).unwrap();
            assert_eq!(
                host.choose_address(&r, &client(i), &unhealthy).unwrap(),
                after
            );
            if before == "10.0.0.3:80" {
                moved += 1;
            } else {
                assert_eq!(
                    before, after,
                    "client {i} moved although its endpoint stayed"
                );
            }
        }
        assert!(moved > 0);
    }

    #[test]
    fn header_overrides_the_peer_address() {
        let host = FakeHost::new();
        let r: IpHash = host.router(&[("header", "X-Forwarded-For")]).unwrap();
        let up = upstream(4);
        let via_header =
            FakeRequest::get("/").with_header("x-forwarded-for", "10.100.0.7, 192.0.2.9");
        assert_eq!(
            host.choose_address(&r, &via_header, &up),
            host.choose_address(&r, &client(7), &up)
        );
        assert!(host.router::<IpHash>(&[("header", " ")]).is_err());
    }

    #[test]
    fn no_healthy_endpoint_is_unavailable() {
        let host = FakeHost::new();
        let r: IpHash = host.router(&[]).unwrap();
        let mut up = upstream(1);
        up.set_healthy(0, false);
        assert_eq!(host.choose(&r, &client(1), &up), Decision::Unavailable);
    }
}
