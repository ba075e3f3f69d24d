//! `shard-by-key`: send each request to the shard that owns its key.
//!
//! The key comes from one place, `key:`
//! - `header:NAME`, the first value of a header;
//! - `cookie:NAME`, a cookie;
//! - `path:N`, the Nth path segment, counting from 1 (`/users/42/cart`
//!   with `path:2` is `42`), percent-encoding kept;
//! - `query:NAME`, the first value of a query parameter, as sent.
//!
//! Endpoints are tagged `shard-0` … `shard-{N-1}` (the prefix is
//! `tag-prefix:`); a shard may have several endpoints, served round robin.
//! The key maps onto a shard one of two ways, both stable across nodes,
//! restarts and releases:
//! - `shards: N` (hash): shard = `hash::bucket(hash::text(key), N)` from the
//!   SDK, that is `(mix64(mix64(fnv1a64(key))) * N) >> 64` with FNV-1a 64 and
//!   the SplitMix64 finaliser. Changing N moves keys; plan it as a migration.
//! - `ranges: "B1,B2,…"` (range): ascending exclusive upper bounds, so a key
//!   below B1 is shard-0, below B2 shard-1, …, and the rest the last shard
//!   (bounds+1 shards). If every bound is an unsigned integer the keys
//!   compare as integers (a non-integer key is then a bad request), else as
//!   byte strings.
//!
//! A request without a key is answered `400` naming where the key was
//! expected. A shard with no endpoint tagged for it, or none healthy, is
//! answered `503` naming the shard: another shard's data would be wrong, so
//! there is no fallback.

use edgeward_sdk::{
    Candidate, Config, Decision, DirectResponse, Request, Router, Upstream, hash, state,
};

/// Where the key is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A header (lowercase name).
    Header(String),
    /// A cookie.
    Cookie(String),
    /// The path segment at this 1-based position.
    Path(usize),
    /// A query parameter.
    Query(String),
}

impl Source {
    fn parse(spec: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "config `key`: `{spec}` must be header:NAME, cookie:NAME, path:N (N from 1) or query:NAME"
            )
        };
        let (kind, arg) = spec.trim().split_once(':').ok_or_else(bad)?;
        let arg = arg.trim();
        if arg.is_empty() {
            return Err(bad());
        }
        Ok(match kind.trim() {
            "header" => Self::Header(arg.to_ascii_lowercase()),
            "cookie" => Self::Cookie(arg.to_owned()),
            "query" => Self::Query(arg.to_owned()),
            "path" => match arg.parse::<usize>() {
                Ok(n) if n >= 1 => Self::Path(n),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        })
    }

    /// The key in `req`, if present and non-empty.
    fn read(&self, req: &Request<'_>) -> Option<String> {
        let v = match self {
            Self::Header(h) => req.header(h).map(|v| v.trim().to_owned()),
            Self::Cookie(c) => req.cookie(c),
            Self::Path(n) => req
                .path()
                .split('/')
                .filter(|s| !s.is_empty())
                .nth(n - 1)
                .map(str::to_owned),
            Self::Query(q) => req.query().and_then(|query| {
                query.split('&').find_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k == q).then(|| v.to_owned())
                })
            }),
        };
        v.filter(|v| !v.is_empty())
    }

    fn describe(&self) -> String {
        match self {
            Self::Header(h) => format!("header `{h}`"),
            Self::Cookie(c) => format!("cookie `{c}`"),
            Self::Path(n) => format!("path segment {n}"),
            Self::Query(q) => format!("query parameter `{q}`"),
        }
    }
}

/// How a key becomes a shard number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// `hash::bucket(hash::text(key), n)`.
    Hash(u64),
    /// Integer upper bounds, ascending.
    IntRanges(Vec<u64>),
    /// Byte-string upper bounds, ascending.
    TextRanges(Vec<String>),
}

impl Mapping {
    /// The shard owning `key`; `Err` for a key the mapping cannot place.
    pub fn shard(&self, key: &str) -> Result<u64, String> {
        Ok(match self {
            Self::Hash(n) => hash::bucket(hash::text(key), *n),
            Self::IntRanges(bounds) => {
                let k: u64 = key.parse().map_err(|_| {
                    format!("shard key `{}` is not an unsigned integer", shown(key))
                })?;
                bounds.partition_point(|b| *b <= k) as u64
            }
            Self::TextRanges(bounds) => bounds.partition_point(|b| b.as_str() <= key) as u64,
        })
    }
}

/// The shard-by-key router.
pub struct ShardByKey {
    source: Source,
    mapping: Mapping,
    prefix: String,
}

fn respond(status: u16, reason: String) -> Decision {
    Decision::Respond(DirectResponse::new(status).text(format!("shard-by-key: {reason}\n")))
}

/// Keys longer than this are shown as their hash, not echoed back.
const MAX_KEY_SHOWN: usize = 64;

fn shown(key: &str) -> String {
    if key.len() <= MAX_KEY_SHOWN && !key.chars().any(char::is_control) {
        key.to_owned()
    } else {
        format!("{:016x}", hash::text(key))
    }
}

impl Router for ShardByKey {
    fn init(config: &Config) -> Result<Self, String> {
        config.allow_only(&["key", "shards", "ranges", "tag-prefix"])?;
        let source =
            Source::parse(config.get("key").ok_or(
                "config `key`: required (header:NAME, cookie:NAME, path:N or query:NAME)",
            )?)?;
        let mapping = match (config.get("shards"), config.get("ranges")) {
            (Some(_), Some(_)) => {
                return Err("config `shards` and `ranges`: set one, not both".to_owned());
            }
            (None, None) => {
                return Err(
                    "config `shards` (hash onto N shards) or `ranges` (upper bounds): one is required"
                        .to_owned(),
                );
            }
            (Some(_), None) => match config.parse::<u64>("shards")? {
                Some(n) if (1..=1024).contains(&n) => Mapping::Hash(n),
                _ => return Err("config `shards`: must be 1..=1024".to_owned()),
            },
            (None, Some(r)) => {
                let bounds: Vec<String> = r.split(',').map(|b| b.trim().to_owned()).collect();
                if bounds.iter().any(String::is_empty) {
                    return Err(format!("config `ranges`: `{r}` has an empty bound"));
                }
                let ints: Result<Vec<u64>, _> = bounds.iter().map(|b| b.parse::<u64>()).collect();
                let mapping = match ints {
                    Ok(ints) => Mapping::IntRanges(ints),
                    Err(_) => Mapping::TextRanges(bounds),
                };
                let ascending = match &mapping {
                    Mapping::IntRanges(b) => b.windows(2).all(|w| w[0] < w[1]),
                    Mapping::TextRanges(b) => b.windows(2).all(|w| w[0] < w[1]),
                    Mapping::Hash(_) => true,
                };
                if !ascending {
                    return Err(format!("config `ranges`: `{r}` must be strictly ascending"));
                }
                mapping
            }
        };
        let prefix = config.get_or("tag-prefix", "shard-").trim().to_owned();
        if prefix.is_empty() {
            return Err("config `tag-prefix`: must not be empty".to_owned());
        }
        Ok(Self {
            source,
            mapping,
            prefix,
        })
    }

    fn choose(
        &self,
        req: &Request<'_>,
        upstream: &Upstream<'_>,
        candidates: &[Candidate],
    ) -> Decision {
        let Some(key) = self.source.read(req) else {
            return respond(
                400,
                format!("missing shard key ({})", self.source.describe()),
            );
        };
        let shard = match self.mapping.shard(&key) {
            Ok(s) => s,
            Err(e) => return respond(400, e),
        };
        let tag = format!("{}{shard}", self.prefix);
        let tagged = upstream.tagged(&tag);
        if tagged.is_empty() {
            return respond(
                503,
                format!("no endpoint is tagged `{tag}` (key {})", shown(&key)),
            );
        }
        let healthy: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| c.healthy && tagged.contains(&c.id))
            .collect();
        if healthy.is_empty() {
            return respond(503, format!("shard `{tag}` has no healthy endpoint"));
        }
        let cursor = upstream.state_key(&format!("sbk-{tag}"), candidates);
        Decision::forward(healthy[state::next_index(&cursor, healthy.len())])
    }
}

edgeward_sdk::export!(router: ShardByKey);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeward_sdk::testing::{FakeEndpoint, FakeHost, FakeRequest, FakeUpstream};

    /// Endpoint i is tagged `shard-{i % n}`.
    fn upstream(endpoints: u32, n: u32) -> FakeUpstream {
        let mut up = FakeUpstream::new("users");
        for i in 0..endpoints {
            up.push(FakeEndpoint::new(&format!("10.0.0.{i}:80")).tag(&format!("shard-{}", i % n)));
        }
        up
    }

    fn status(d: &Decision) -> (u16, String) {
        match d {
            Decision::Respond(r) => (r.status, String::from_utf8(r.body.clone()).unwrap()),
            other => panic!("expected a direct answer, got {other:?}"),
        }
    }

    #[test]
    fn the_hash_mapping_is_the_documented_one_and_stable() {
        let m = Mapping::Hash(4);
        // The formula the docs state: a change here moves keys to other shards.
        let got: Vec<u64> = ["alice", "bob", "carol", "dave", "42"]
            .iter()
            .map(|k| m.shard(k).unwrap())
            .collect();
        let want: Vec<u64> = ["alice", "bob", "carol", "dave", "42"]
            .iter()
            .map(|k| {
                let x = hash::mix64(hash::mix64(hash::fnv1a64(k.as_bytes())));
                ((u128::from(x) * 4) >> 64) as u64
            })
            .collect();
        assert_eq!(got, want);
        // Spread: 4000 keys over 4 shards, each within 10 % of a quarter.
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            counts[m.shard(&format!("user-{i}")).unwrap() as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (900..=1100).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn every_key_source() {
        let host = FakeHost::new();
        let up = upstream(4, 4);
        let cases = [
            (
                "header:X-Tenant",
                FakeRequest::get("/").with_header("x-tenant", "acme"),
            ),
            (
                "cookie:tenant",
                FakeRequest::get("/").with_cookie("tenant", "acme"),
            ),
            ("path:2", FakeRequest::get("/t/acme/orders")),
            ("query:t", FakeRequest::get("/o?x=1&t=acme&t=other")),
        ];
        let want = Mapping::Hash(4).shard("acme").unwrap();
        for (key, req) in cases {
            let r: ShardByKey = host.router(&[("key", key), ("shards", "4")]).unwrap();
            let id = host.choose(&r, &req, &up).endpoint();
            assert_eq!(id, Some(want as u32), "{key}");
            let (code, body) = status(&host.choose(&r, &FakeRequest::get("/"), &up));
            assert_eq!(code, 400, "{key}");
            assert!(body.contains("missing shard key"), "{body}");
        }
    }

    #[test]
    fn ranges_integer_and_text() {
        let host = FakeHost::new();
        let up = upstream(3, 3);
        let r: ShardByKey = host
            .router(&[("key", "path:1"), ("ranges", "1000, 2000")])
            .unwrap();
        for (path, shard) in [
            ("/0", 0),
            ("/999", 0),
            ("/1000", 1),
            ("/1999", 1),
            ("/5000", 2),
        ] {
            assert_eq!(
                host.choose(&r, &FakeRequest::get(path), &up).endpoint(),
                Some(shard),
                "{path}"
            );
        }
        let (code, body) = status(&host.choose(&r, &FakeRequest::get("/abc"), &up));
        assert_eq!(code, 400);
        assert!(body.contains("not an unsigned integer"), "{body}");

        let r: ShardByKey = host
            .router(&[("key", "path:1"), ("ranges", "h,p")])
            .unwrap();
        for (path, shard) in [("/alice", 0), ("/h", 1), ("/mallory", 1), ("/zed", 2)] {
            assert_eq!(
                host.choose(&r, &FakeRequest::get(path), &up).endpoint(),
                Some(shard),
                "{path}"
            );
        }
    }

    #[test]
    fn replicas_of_a_shard_share_it_and_missing_shards_are_503() {
        let host = FakeHost::new();
        let r: ShardByKey = host
            .router(&[("key", "path:1"), ("ranges", "100")])
            .unwrap();
        // shard-0 has endpoints 0 and 2; shard-1 has endpoint 1.
        let mut up = upstream(3, 2);
        let picks: Vec<_> = (0..4)
            .map(|_| {
                host.choose(&r, &FakeRequest::get("/5"), &up)
                    .endpoint()
                    .unwrap()
            })
            .collect();
        assert_eq!(picks, [0, 2, 0, 2]);
        up.set_healthy(1, false);
        let (code, body) = status(&host.choose(&r, &FakeRequest::get("/500"), &up));
        assert_eq!(code, 503);
        assert!(
            body.contains("shard `shard-1` has no healthy endpoint"),
            "{body}"
        );

        let r: ShardByKey = host
            .router(&[("key", "header:k"), ("shards", "8")])
            .unwrap();
        let key = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| Mapping::Hash(8).shard(k).unwrap() >= 2)
            .unwrap();
        let (code, body) =
            status(&host.choose(&r, &FakeRequest::get("/").with_header("k", &key), &up));
        assert_eq!(code, 503);
        assert!(body.contains("no endpoint is tagged `shard-"), "{body}");
    }

    #[test]
    fn config_is_checked() {
        let host = FakeHost::new();
        for bad in [
            &[("shards", "4")][..],
            &[("key", "header:x")],
            &[("key", "body:x"), ("shards", "4")],
            &[("key", "path:0"), ("shards", "4")],
            &[("key", "header:"), ("shards", "4")],
            &[("key", "header:x"), ("shards", "0")],
            &[("key", "header:x"), ("shards", "4"), ("ranges", "1")],
            &[("key", "header:x"), ("ranges", "5,3")],
            &[("key", "header:x"), ("ranges", "a,,b")],
            &[("key", "header:x"), ("shards", "2"), ("tag-prefix", "")],
        ] {
            assert!(host.router::<ShardByKey>(bad).is_err(), "{bad:?}");
        }
    }
}
