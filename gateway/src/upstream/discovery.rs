//! Endpoints from DNS: the A/AAAA records of an upstream's `discovery.dns`
//! name, each with the configured port, as a Kubernetes headless Service
//! publishes its ready pods.
//!
//! This module only answers "which addresses does the name have now"; the
//! node turns a changed answer into a new endpoint set (see
//! `node::discovery`), so an endpoint whose address stays keeps its stats and
//! one that goes drains on the generations still holding it.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver as Hickory, TokioResolver};

use crate::config::Endpoint;
use crate::config::discovery::{Discovery, Family};

/// Longest a single query waits for its name server; two attempts are made.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// What one resolution found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The addresses, sorted and without duplicates; empty when the name
    /// server says the name has no such records (a Service with no ready pod).
    Addresses(Vec<SocketAddr>),
    /// No answer (timeout, refused, SERVFAIL): the last good set stays.
    Failed(String),
}

/// A resolver for one upstream's `discovery:` block.
pub struct Resolver {
    inner: TokioResolver,
    target: Discovery,
}

impl Resolver {
    /// Reads `/etc/resolv.conf` unless a `nameserver` is configured.
    pub fn new(target: &Discovery) -> Result<Self, String> {
        let mut builder = match target.nameserver {
            Some(ns) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = ns.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = ns.port();
                let server = NameServerConfig::new(ns.ip(), true, vec![udp, tcp]);
                Hickory::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?,
        };
        let opts = builder.options_mut();
        opts.ip_strategy = match target.family {
            Family::Any => LookupIpStrategy::Ipv4AndIpv6,
            Family::Ipv4 => LookupIpStrategy::Ipv4Only,
            Family::Ipv6 => LookupIpStrategy::Ipv6Only,
        };
        // Every interval asks the name server: a cached answer would hide a
        // replica added or removed within its TTL.
        opts.cache_size = 0;
        opts.positive_max_ttl = Some(Duration::ZERO);
        opts.negative_max_ttl = Some(Duration::ZERO);
        opts.timeout = QUERY_TIMEOUT.min(target.interval);
        opts.attempts = 2;
        if target.nameserver.is_some() {
            // An explicit server is the only source of truth.
            opts.use_hosts_file = ResolveHosts::Never;
        }
        let inner = builder
            .build()
            .map_err(|e| format!("cannot build a DNS resolver: {e}"))?;
        Ok(Self {
            inner,
            target: target.clone(),
        })
    }

    pub fn target(&self) -> &Discovery {
        &self.target
    }

    pub async fn resolve(&self) -> Answer {
        match self.inner.lookup_ip(self.target.name.as_str()).await {
            Ok(found) => Answer::Addresses(with_port(found.iter(), self.target.port)),
            Err(e) if e.is_no_records_found() => Answer::Addresses(Vec::new()),
            Err(e) => Answer::Failed(e.to_string()),
        }
    }
}

fn with_port(ips: impl Iterator<Item = std::net::IpAddr>, port: u16) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = ips.map(|ip| SocketAddr::new(ip, port)).collect();
    addrs.sort_unstable();
    addrs.dedup();
    addrs
}

/// The endpoints for `addrs`: each weight 1, untagged, zone unknown (DNS
/// says nothing of them).
pub fn endpoints(addrs: &[SocketAddr]) -> Vec<Endpoint> {
    addrs
        .iter()
        .filter_map(|a| {
            Some(Endpoint {
                authority: a.to_string().parse().ok()?,
                weight: 1,
                tags: Vec::new(),
                zone: None,
            })
        })
        .collect()
}

/// Whether `current` (a pool's endpoints) is exactly `addrs`, in any order.
pub fn same_set(current: &[Endpoint], addrs: &[SocketAddr]) -> bool {
    current.len() == addrs.len()
        && current.iter().all(|e| {
            e.authority
                .as_str()
                .parse::<SocketAddr>()
                .is_ok_and(|a| addrs.binary_search(&a).is_ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_sorted_deduplicated_and_bracketed() {
        let ips = ["10.0.0.2", "::1", "10.0.0.1", "10.0.0.2"].map(|s| s.parse().unwrap());
        let addrs = with_port(ips.into_iter(), 8080);
        assert_eq!(
            addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.0.0.1:8080", "10.0.0.2:8080", "[::1]:8080"]
        );
        let eps = endpoints(&addrs);
        assert_eq!(eps[2].authority.as_str(), "[::1]:8080");
        assert!(same_set(&eps, &addrs));
        assert!(!same_set(&eps[..2], &addrs));
        assert!(!same_set(&eps, &addrs[..2]));
        assert!(same_set(&[], &[]));
    }
}
