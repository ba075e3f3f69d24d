//! The data-tier built-in routers, `read-write-split` and `shard-by-key`,
//! end to end: the real binary, real upstream servers, real clients.

mod plugin_common;

use std::collections::HashMap;
use std::time::Duration;

use edgeward_e2e::client::{Client, Fetched};
use edgeward_e2e::{Gateway, full};
use http::{Request, StatusCode};
use plugin_common::*;

/// One upstream `db` whose endpoints are `(address, tags)`, routed by
/// `balancer` with `config`. The deadline is generous so a descheduled
/// thread on a loaded machine does not turn into the fallback's choice.
fn config(balancer: &str, plugin_config: &str, endpoints: &[(String, &str)]) -> String {
    let list: Vec<String> = endpoints
        .iter()
        .map(|(a, t)| format!("{{address: \"{a}\", tags: [{t}]}}"))
        .collect();
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         plugins:\n  tier:\n    builtin: {balancer}\n    deadline: 1s\n    on-error: fail\n\
         \x20   config: {{{plugin_config}}}\n\
         upstreams:\n  db:\n    balancer: tier\n    endpoints: [{}]\n\
         routes:\n  - upstream: db\n",
        list.join(", ")
    )
}

async fn send(c: &Client, method: &str, url: &str, headers: &[(&str, &str)]) -> Fetched {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    c.fetch(req.body(full("x")).unwrap()).await.unwrap()
}

/// `name=value` of the response's first `set-cookie`.
fn cookie_of(r: &Fetched) -> Option<String> {
    r.header("set-cookie")
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

#[tokio::test]
async fn read_write_split_sends_reads_to_replicas_and_pins_writers_by_cookie() {
    // Closing answers: a stopped primary keeps no pooled connection alive.
    let ups = numbered_with(3, true).await;
    let eps = [
        (ups[0].addr.to_string(), "primary"),
        (ups[1].addr.to_string(), "replica"),
        (ups[2].addr.to_string(), "replica"),
    ];
    let gw = Gateway::start(&config("read-write-split", "read-your-writes: 2s", &eps))
        .await
        .unwrap();
    let (c, url) = (Client::h1(), gw.url("http", "/items"));

    let mut seen = Vec::new();
    for m in ["GET", "HEAD", "OPTIONS", "GET", "GET", "GET"] {
        let r = send(&c, m, &url, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{m}");
        assert!(cookie_of(&r).is_none(), "a read sets no pin");
        seen.push(served_by(&r));
    }
    assert!(
        seen.iter().all(|&u| u != 0),
        "reads went to the primary: {seen:?}"
    );
    assert!(seen.contains(&1) && seen.contains(&2), "{seen:?}");

    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = send(&c, m, &url, &[]).await;
        assert_eq!(served_by(&r), 0, "{m}");
    }
    let write = send(&c, "POST", &url, &[]).await;
    let pin = cookie_of(&write).expect("a write sets the read-your-writes cookie");
    assert!(pin.starts_with("edgeward-rw="), "{pin}");
    let set = write.header("set-cookie").unwrap();
    assert!(
        set.contains("Max-Age=2") && set.contains("HttpOnly"),
        "{set}"
    );
    for _ in 0..5 {
        let r = send(&c, "GET", &url, &[("cookie", &pin)]).await;
        assert_eq!(
            served_by(&r),
            0,
            "the writer reads its write from the primary"
        );
    }
    // Others are not pinned.
    assert_ne!(served_by(&send(&c, "GET", &url, &[]).await), 0);
    // The pin expires on its own (the value is the expiry in Unix milliseconds).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = send(&c, "GET", &url, &[("cookie", &pin)]).await;
    assert_ne!(served_by(&r), 0, "the pin outlived its window");

    // With the primary gone, a write is refused with the reason, not sent to a replica.
    let replica_hits = ups[1].hits() + ups[2].hits();
    let mut ups = ups;
    stop(ups.remove(0)).await;
    let mut last = None;
    for _ in 0..3 {
        let r = send(&c, "POST", &url, &[]).await;
        last = Some((r.status, r.text()));
    }
    let (status, body) = last.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body.contains("no healthy endpoint tagged `primary`"),
        "{body}"
    );
    assert_eq!(
        ups[0].hits() + ups[1].hits(),
        replica_hits,
        "a write reached a replica"
    );
}

#[tokio::test]
async fn read_write_split_state_pin_follows_the_client_header() {
    let ups = numbered(2).await;
    let eps = [
        (ups[0].addr.to_string(), "primary"),
        (ups[1].addr.to_string(), "replica"),
    ];
    let gw = Gateway::start(&config(
        "read-write-split",
        "read-your-writes: 30s, pin: state, client-header: x-user",
        &eps,
    ))
    .await
    .unwrap();
    let (c, url) = (Client::h1(), gw.url("http", "/"));
    let w = send(&c, "PUT", &url, &[("x-user", "ann")]).await;
    assert_eq!(served_by(&w), 0);
    assert!(cookie_of(&w).is_none(), "state pins set no cookie");
    for _ in 0..3 {
        assert_eq!(
            served_by(&send(&c, "GET", &url, &[("x-user", "ann")]).await),
            0
        );
        assert_eq!(
            served_by(&send(&c, "GET", &url, &[("x-user", "bob")]).await),
            1
        );
    }
}

/// The documented hash mapping, written out independently of the SDK:
/// `(mix64(mix64(fnv1a64(key))) * n) >> 64`.
fn documented_shard(key: &str, n: u64) -> u64 {
    fn mix64(mut x: u64) -> u64 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ((u128::from(mix64(mix64(h))) * u128::from(n)) >> 64) as u64
}

#[tokio::test]
async fn shard_by_key_hashes_onto_shard_tags_and_names_missing_shards() {
    // Four shards configured, three present: shard-0 has two endpoints.
    let ups = numbered(4).await;
    let eps = [
        (ups[0].addr.to_string(), "shard-0"),
        (ups[1].addr.to_string(), "shard-1"),
        (ups[2].addr.to_string(), "shard-2"),
        (ups[3].addr.to_string(), "shard-0"),
    ];
    let gw = Gateway::start(&config(
        "shard-by-key",
        "key: \"header:x-tenant\", shards: 4",
        &eps,
    ))
    .await
    .unwrap();
    let (c, url) = (Client::h1(), gw.url("http", "/orders"));
    let owner = |shard: u64| -> Vec<usize> {
        match shard {
            0 => vec![0, 3],
            1 => vec![1],
            2 => vec![2],
            _ => vec![],
        }
    };
    let mut per_shard: HashMap<u64, usize> = HashMap::new();
    let mut missing = None;
    for i in 0..60 {
        let tenant = format!("tenant-{i}");
        let shard = documented_shard(&tenant, 4);
        *per_shard.entry(shard).or_default() += 1;
        for _ in 0..2 {
            let r = send(&c, "GET", &url, &[("x-tenant", &tenant)]).await;
            if shard == 3 {
                assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
                missing = Some(r.text());
            } else {
                assert_eq!(r.status, StatusCode::OK, "{tenant}");
                assert!(
                    owner(shard).contains(&served_by(&r)),
                    "{tenant} (shard-{shard}) served by {}",
                    served_by(&r)
                );
            }
        }
    }
    assert_eq!(
        per_shard.len(),
        4,
        "60 tenants cover all shards: {per_shard:?}"
    );
    let missing = missing.unwrap();
    assert!(
        missing.contains("no endpoint is tagged `shard-3`"),
        "{missing}"
    );
    // A shard's two endpoints share its traffic.
    assert!(ups[0].hits() > 0 && ups[3].hits() > 0);

    let r = send(&c, "GET", &url, &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text().contains("missing shard key (header `x-tenant`)"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn shard_by_key_ranges_on_a_path_segment() {
    let ups = numbered(3).await;
    let eps = [
        (ups[0].addr.to_string(), "users-0"),
        (ups[1].addr.to_string(), "users-1"),
        (ups[2].addr.to_string(), "users-2"),
    ];
    let gw = Gateway::start(&config(
        "shard-by-key",
        "key: \"path:2\", ranges: \"1000,2000\", tag-prefix: users-",
        &eps,
    ))
    .await
    .unwrap();
    let c = Client::h1();
    for (id, want) in [
        (7, 0),
        (999, 0),
        (1000, 1),
        (1999, 1),
        (2000, 2),
        (99999, 2),
    ] {
        let r = send(
            &c,
            "GET",
            &gw.url("http", &format!("/users/{id}/cart")),
            &[],
        )
        .await;
        assert_eq!(served_by(&r), want, "user {id}");
    }
    let r = send(&c, "GET", &gw.url("http", "/users/ann/cart"), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("not an unsigned integer"), "{}", r.text());
}
