//! An upstream's `discovery:` block: its endpoints from DNS instead of a list.
//!
//! ```yaml
//! upstreams:
//!   orders:
//!     discovery:
//!       dns: orders.shop.svc.cluster.local:8080   # A/AAAA name and the port to use
//!       interval: 10s                             # re-resolved this often; default 10s
//!       family: any                               # any | ipv4 | ipv6; default any
//!       nameserver: 127.0.0.1:5353                # default: the system's resolv.conf
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::cache::Issue;
use super::units::parse_duration;

/// Re-resolution period when `interval` is not given: a Kubernetes headless
/// Service's records change within seconds of a pod becoming ready.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Shortest period accepted: below it a name server is polled, not asked.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// An upstream's endpoints from DNS: the A/AAAA records of a name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DiscoveryYaml {
    /// `name:port`: the A/AAAA records of `name`, each with `port`, e.g.
    /// `orders.shop.svc.cluster.local:8080`.
    #[schemars(with = "String")]
    pub dns: Spanned<String>,
    /// How often the name is resolved again (at least 100ms). Default: 10s.
    #[schemars(with = "Option<super::schema::Duration>")]
    pub interval: Option<Spanned<String>>,
    /// Which records: `any` (A and AAAA), `ipv4` (A) or `ipv6` (AAAA). Default: any.
    #[schemars(with = "Option<Family>")]
    pub family: Option<Spanned<String>>,
    /// `ip:port` of the name server to ask, e.g. `10.96.0.10:53`. Default:
    /// those of `/etc/resolv.conf`.
    #[schemars(with = "Option<String>")]
    pub nameserver: Option<Spanned<String>>,
}

/// Which address records a name is resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum Family {
    Any,
    Ipv4,
    Ipv6,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The name as written (no trailing dot added: the resolver's search list applies).
    pub name: String,
    pub port: u16,
    pub interval: Duration,
    pub family: Family,
    pub nameserver: Option<SocketAddr>,
}

impl Discovery {
    /// `name:port`, as configured.
    pub fn target(&self) -> String {
        format!("{}:{}", self.name, self.port)
    }
}

pub fn resolve(
    y: &Spanned<DiscoveryYaml>,
    path: &str,
    issues: &mut Vec<Issue>,
) -> Option<Discovery> {
    let v = &y.value;
    let before = issues.len();
    let dns = &v.dns;
    let (name, port) = match dns.value.rsplit_once(':') {
        Some((name, port)) if valid_name(name) => match port.parse::<u16>() {
            Ok(p) if p > 0 => (name.to_owned(), p),
            _ => {
                issues.push(Issue::new(
                    &dns.referenced,
                    format!("{path}.dns"),
                    format!("\"{port}\" is not a port (1-65535)"),
                ));
                (String::new(), 0)
            }
        },
        _ => {
            issues.push(Issue::new(
                &dns.referenced,
                format!("{path}.dns"),
                format!(
                    "\"{}\" is not name:port; write e.g. \"orders.shop.svc.cluster.local:8080\"",
                    dns.value
                ),
            ));
            (String::new(), 0)
        }
    };
    let interval = match &v.interval {
        None => DEFAULT_INTERVAL,
        Some(i) => match parse_duration(&i.value) {
            Ok(d) if d >= MIN_INTERVAL => d,
            Ok(_) => {
                issues.push(Issue::new(
                    &i.referenced,
                    format!("{path}.interval"),
                    "must be at least 100ms",
                ));
                DEFAULT_INTERVAL
            }
            Err(e) => {
                issues.push(Issue::new(&i.referenced, format!("{path}.interval"), e));
                DEFAULT_INTERVAL
            }
        },
    };
    let family = match v.family.as_ref().map(|f| (f, f.value.as_str())) {
        None | Some((_, "any")) => Family::Any,
        Some((_, "ipv4")) => Family::Ipv4,
        Some((_, "ipv6")) => Family::Ipv6,
        Some((f, other)) => {
            issues.push(Issue::new(
                &f.referenced,
                format!("{path}.family"),
                format!("\"{other}\" is not a family; write any, ipv4 or ipv6"),
            ));
            Family::Any
        }
    };
    let nameserver = v.nameserver.as_ref().and_then(|n| {
        let parsed = n.value.parse::<SocketAddr>().ok();
        if parsed.is_none() {
            issues.push(Issue::new(
                &n.referenced,
                format!("{path}.nameserver"),
                format!(
                    "\"{}\" is not ip:port; write e.g. \"10.96.0.10:53\"",
                    n.value
                ),
            ));
        }
        parsed
    });
    (issues.len() == before).then_some(Discovery {
        name,
        port,
        interval,
        family,
        nameserver,
    })
}

/// A DNS name of letters, digits, `-`, `_` and dots, or an IP literal is
/// refused: an address needs no discovery, it belongs in `endpoints`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.parse::<std::net::IpAddr>().is_err()
        && name.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Discovery, Vec<String>> {
        let y: Spanned<DiscoveryYaml> = serde_saphyr::from_str(yaml).expect("yaml");
        let mut issues = Vec::new();
        resolve(&y, "upstreams.u.discovery", &mut issues).ok_or_else(|| {
            issues
                .into_iter()
                .map(|i| format!("{}: {}", i.path, i.message))
                .collect()
        })
    }

    #[test]
    fn defaults_and_every_field() {
        let d = parse("dns: api.svc.local:8080").unwrap();
        assert_eq!((d.name.as_str(), d.port), ("api.svc.local", 8080));
        assert_eq!(
            (d.interval, d.family, d.nameserver),
            (DEFAULT_INTERVAL, Family::Any, None)
        );
        let d = parse("{dns: 'b:1', interval: 2s, family: ipv6, nameserver: '127.0.0.1:5353'}")
            .unwrap();
        assert_eq!(d.interval, Duration::from_secs(2));
        assert_eq!(d.family, Family::Ipv6);
        assert_eq!(d.nameserver, Some("127.0.0.1:5353".parse().unwrap()));
    }

    #[test]
    fn every_bad_field_is_named() {
        let e =
            parse("{dns: 'api', interval: 1ms, family: v4, nameserver: dns.local}").unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            e[0].starts_with("upstreams.u.discovery.dns: \"api\" is not name:port"),
            "{e:?}"
        );
        assert!(e[1].contains("interval: must be at least 100ms"), "{e:?}");
        assert!(e[2].contains("family: \"v4\" is not a family"), "{e:?}");
        assert!(
            e[3].contains("nameserver: \"dns.local\" is not ip:port"),
            "{e:?}"
        );
        assert!(
            parse("dns: '10.0.0.1:80'").is_err(),
            "an address is not a name"
        );
        assert!(parse("dns: 'api:0'").is_err());
        assert!(parse("dns: 'a b:80'").is_err());
    }
}
