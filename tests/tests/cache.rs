//! The RFC 9111 cache end to end: the real binary, a scripted origin that
//! counts its requests, and hyper as the client.

use std::time::Duration;

use edgeward_e2e::client::{Client, Fetched};
use edgeward_e2e::counting::{Origin, OriginServer, Spec, eventually};
use edgeward_e2e::{Gateway, empty, full};
use http::{Request, StatusCode};

fn config(up: &OriginServer, cache: &str, extra: &str) -> String {
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n{extra}\
         upstreams:\n  o:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: o\n    cache: {cache}\n",
        up.addr
    )
}

async fn start(cc: &str, cache: &str) -> (OriginServer, Origin, Gateway) {
    let (up, origin) = Origin::start(Spec::default()).await;
    origin.header("cache-control", cc);
    let gw = Gateway::start(&config(&up, cache, "")).await.unwrap();
    (up, origin, gw)
}

async fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Fetched {
    let mut req = Request::get(gw.url("http", path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Client::h1()
        .fetch(req.body(empty()).unwrap())
        .await
        .unwrap()
}

fn x_cache(r: &Fetched) -> &str {
    r.header("x-cache").unwrap_or("<none>")
}

async fn admin(gw: &Gateway, path: &str, body: Option<&str>) -> Fetched {
    let url = format!("http://{}{path}", gw.admin.unwrap());
    let req = match body {
        Some(b) => Request::post(url).body(full(b.to_owned())),
        None => Request::get(url).body(empty()),
    };
    Client::h1().fetch(req.unwrap()).await.unwrap()
}

async fn metric(gw: &Gateway, name: &str) -> u64 {
    let m = admin(gw, "/metrics", None).await.text();
    m.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{m}"))
}

#[tokio::test]
async fn hit_then_miss_after_expiry() {
    let (up, _o, gw) = start("max-age=1", "{}").await;
    let a = get(&gw, "/a", &[]).await;
    assert_eq!((a.status, x_cache(&a)), (StatusCode::OK, "MISS"));
    let b = get(&gw, "/a", &[]).await;
    assert_eq!(x_cache(&b), "HIT");
    assert_eq!(b.body, a.body);
    assert!(b.header("age").is_some());
    assert_eq!(up.hits(), 1);
    // Wait out max-age=1 (a wait, not a timing assertion).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let c = get(&gw, "/a", &[]).await;
    assert_eq!(x_cache(&c), "MISS");
    assert_eq!(up.hits(), 2);
    assert_ne!(c.body, a.body, "a new origin response (new serial)");
    assert_eq!(
        metric(
            &gw,
            "edgeward_cache_requests_total{node=\"edgeward\",region=\"local\",result=\"hit\"}"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn s_maxage_wins_over_max_age() {
    let (up, _o, gw) = start("max-age=0, s-maxage=60", "{}").await;
    get(&gw, "/s", &[]).await;
    let r = get(&gw, "/s", &[]).await;
    assert_eq!(x_cache(&r), "HIT");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn no_store_private_cookies_and_authorization_are_not_stored() {
    for (cc, cookie, auth) in [
        ("no-store, max-age=60", false, false),
        ("private, max-age=60", false, false),
        ("max-age=60", true, false),
        ("max-age=60", false, true),
    ] {
        let (up, origin, gw) = start(cc, "{}").await;
        if cookie {
            origin.header("set-cookie", "sid=1");
        }
        let h: &[(&str, &str)] = if auth {
            &[("authorization", "Bearer t")]
        } else {
            &[]
        };
        for _ in 0..2 {
            let r = get(&gw, "/n", h).await;
            assert_eq!(x_cache(&r), "MISS", "{cc} cookie={cookie} auth={auth}");
        }
        assert_eq!(up.hits(), 2, "{cc} cookie={cookie} auth={auth}");
    }
    // A request's no-store keeps its response out too.
    let (up, _o, gw) = start("max-age=60", "{}").await;
    get(&gw, "/r", &[("cache-control", "no-store")]).await;
    assert_eq!(x_cache(&get(&gw, "/r", &[]).await), "MISS");
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn vary_keeps_one_variant_per_request_value() {
    let (up, origin, gw) = start("max-age=60", "{}").await;
    origin.header("vary", "Accept-Language");
    for lang in ["en", "fr"] {
        let r = get(&gw, "/v", &[("accept-language", lang)]).await;
        assert_eq!(x_cache(&r), "MISS");
    }
    for lang in ["en", "fr"] {
        let r = get(&gw, "/v", &[("accept-language", lang)]).await;
        assert_eq!(x_cache(&r), "HIT", "{lang}");
        assert_eq!(r.json()["lang"], lang);
    }
    assert_eq!(up.hits(), 2);
    // `Vary: *` is never stored.
    origin.header("vary", "*");
    get(&gw, "/star", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/star", &[]).await), "MISS");
}

#[tokio::test]
async fn stale_entries_revalidate_with_one_conditional_request() {
    let (up, origin, gw) = start("no-cache", "{}").await;
    origin.header("etag", "\"v1\"");
    let a = get(&gw, "/r", &[]).await;
    assert_eq!(x_cache(&a), "MISS");
    let b = get(&gw, "/r", &[]).await;
    assert_eq!(x_cache(&b), "REVALIDATED");
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(b.body, a.body, "the stored body, refreshed by the 304");
    assert_eq!(origin.conditional(), 1);
    assert_eq!(
        origin.last_request().get("if-none-match").unwrap(),
        "\"v1\""
    );
    assert_eq!(up.hits(), 2);
    // A changed resource comes back whole and replaces the entry.
    origin.header("etag", "\"v2\"");
    let c = get(&gw, "/r", &[]).await;
    assert_eq!(x_cache(&c), "MISS");
    assert_ne!(c.body, a.body);
}

#[tokio::test]
async fn client_conditionals_are_answered_from_the_cache() {
    let (up, origin, gw) = start("max-age=60", "{}").await;
    origin.header("etag", "\"v1\"");
    origin.header("last-modified", "Tue, 01 Sep 2026 10:00:00 GMT");
    get(&gw, "/c", &[]).await;
    let r = get(&gw, "/c", &[("if-none-match", "\"v0\", \"v1\"")]).await;
    assert_eq!((r.status, x_cache(&r)), (StatusCode::NOT_MODIFIED, "HIT"));
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some("\"v1\""));
    let r = get(
        &gw,
        "/c",
        &[("if-modified-since", "Wed, 02 Sep 2026 10:00:00 GMT")],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let r = get(&gw, "/c", &[("if-none-match", "\"v0\"")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(up.hits(), 1);
    assert_eq!(origin.conditional(), 0);
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let (up, origin, gw) = start("max-age=1, stale-while-revalidate=60", "{}").await;
    // Already 5 s old on arrival: stored stale, no waiting needed.
    origin.header("age", "5");
    let a = get(&gw, "/w", &[]).await;
    assert_eq!(x_cache(&a), "MISS");
    origin.hold();
    // Both answered while the origin holds the refresh: nothing waited for it.
    for _ in 0..2 {
        let r = tokio::time::timeout(Duration::from_secs(10), get(&gw, "/w", &[]))
            .await
            .expect("a stale answer must not wait for the origin");
        assert_eq!(x_cache(&r), "STALE");
        assert_eq!(r.body, a.body);
    }
    eventually("the background refresh reaches the origin", || {
        up.hits() == 2
    })
    .await;
    origin.release();
    for _ in 0..1000 {
        if metric(&gw, "edgeward_cache_stored_total").await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metric(&gw, "edgeward_cache_stored_total").await, 2);
    assert_eq!(up.hits(), 2, "exactly one background refresh");
    let r = get(&gw, "/w", &[]).await;
    assert_ne!(r.body, a.body, "the refreshed response is served");
}

#[tokio::test]
async fn stale_if_error_covers_errors_and_a_dead_origin() {
    let (up, origin, gw) = start("max-age=1, stale-if-error=60", "{}").await;
    origin.header("age", "5");
    origin.header("etag", "\"e\"");
    let a = get(&gw, "/e", &[]).await;
    origin.set(|s| s.status = 503);
    origin.header("etag", "\"other\"");
    let r = get(&gw, "/e", &[]).await;
    assert_eq!((r.status, x_cache(&r)), (StatusCode::OK, "STALE"));
    assert_eq!(r.body, a.body);
    drop(up);
    let r = get(&gw, "/e", &[]).await;
    assert_eq!((r.status, x_cache(&r)), (StatusCode::OK, "STALE"));
    assert_eq!(r.body, a.body);
}

#[tokio::test]
async fn must_revalidate_forbids_stale_answers() {
    let (up, origin, gw) = start("max-age=1, stale-if-error=60, must-revalidate", "{}").await;
    origin.header("age", "5");
    origin.header("etag", "\"e\"");
    get(&gw, "/m", &[]).await;
    drop(up);
    let r = get(&gw, "/m", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn concurrent_misses_make_one_upstream_request() {
    let (up, origin, gw) = start("max-age=60", "{}").await;
    origin.hold();
    let url = gw.url("http", "/co");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Client::h1().get(&url).await.unwrap() })
        })
        .collect();
    eventually("the leader reaches the origin", || up.hits() == 1).await;
    // Let the other 49 queue behind the leader (if one were not coalesced it
    // would reach the origin too, which the count below catches).
    for _ in 0..1000 {
        if metric(&gw, "edgeward_cache_coalesced_total").await == 49 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    origin.release();
    let mut bodies = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        bodies.push(r.body);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    assert_eq!(up.hits(), 1);
    assert_eq!(metric(&gw, "edgeward_cache_coalesced_total").await, 49);
}

#[tokio::test]
async fn coalescing_can_be_turned_off() {
    let (up, origin, gw) = start("max-age=60", "{coalesce: false}").await;
    origin.hold();
    let url = gw.url("http", "/nc");
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Client::h1().get(&url).await.unwrap() })
        })
        .collect();
    eventually("every miss reaches the origin", || up.hits() == 5).await;
    origin.release();
    for t in tasks {
        assert_eq!(t.await.unwrap().status, StatusCode::OK);
    }
}

#[tokio::test]
async fn purge_by_url_prefix_tag_and_all_removes_every_variant() {
    let (up, origin, gw) = start("max-age=60", "{}").await;
    origin.header("vary", "Accept-Language");
    origin.header("cache-tag", "item{path}, catalogue");
    origin.header("surrogate-key", "k{path} common");
    let fill = async |paths: &[&str]| {
        for p in paths {
            for lang in ["en", "fr"] {
                get(&gw, p, &[("accept-language", lang)]).await;
            }
        }
    };
    let state =
        async |p: &str| x_cache(&get(&gw, p, &[("accept-language", "fr")]).await).to_owned();
    fill(&["/p/1", "/p/2", "/q/1"]).await;
    assert_eq!(up.hits(), 6);
    let r = admin(&gw, "/admin/cache/purge", Some(r#"{"url": "/p/1"}"#)).await;
    assert_eq!(r.json()["purged"], 2, "both Vary variants");
    assert_eq!(state("/p/1").await, "MISS");
    assert_eq!(state("/p/2").await, "HIT");

    fill(&["/p/1"]).await;
    let r = admin(&gw, "/admin/cache/purge", Some(r#"{"prefix": "/p/"}"#)).await;
    assert_eq!(r.json()["purged"], 4);
    assert_eq!(state("/p/2").await, "MISS");
    assert_eq!(state("/q/1").await, "HIT");

    let r = admin(&gw, "/admin/cache/purge", Some(r#"{"tag": "item/q/1"}"#)).await;
    assert_eq!(r.json()["purged"], 2);
    assert_eq!(state("/q/1").await, "MISS");

    fill(&["/p/1", "/q/1"]).await;
    let r = admin(&gw, "/admin/cache/purge", Some(r#"{"tag": "k/q/1"}"#)).await;
    assert_eq!(r.json()["purged"], 2, "Surrogate-Key tags too");

    let host = gw.addr("http");
    let r = admin(
        &gw,
        "/admin/cache/purge",
        Some(&format!(r#"{{"url": "http://{host}/p/1"}}"#)),
    )
    .await;
    assert_eq!(r.json()["purged"], 2, "absolute URLs name the host");

    fill(&["/p/1", "/q/1"]).await;
    let r = admin(&gw, "/admin/cache/purge", Some(r#"{"all": true}"#)).await;
    assert!(r.json()["purged"].as_u64().unwrap() >= 4);
    assert_eq!(state("/p/2").await, "MISS");
    // Tags are the cache's business: clients never see them.
    assert!(get(&gw, "/p/2", &[]).await.header("cache-tag").is_none());

    let r = admin(
        &gw,
        "/admin/cache/purge",
        Some(r#"{"url": "/a", "tag": "b"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("exactly one"), "{}", r.text());
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_target_and_location() {
    let (up, origin, gw) = start("max-age=60", "{}").await;
    get(&gw, "/u", &[]).await;
    get(&gw, "/u/list", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/u", &[]).await), "HIT");
    origin.header("location", "/u/list");
    let req = Request::post(gw.url("http", "/u")).body(full("x")).unwrap();
    let r = Client::h1().fetch(req).await.unwrap();
    assert_eq!(x_cache(&r), "BYPASS");
    assert_eq!(x_cache(&get(&gw, "/u", &[]).await), "MISS");
    assert_eq!(x_cache(&get(&gw, "/u/list", &[]).await), "MISS");
    assert_eq!(up.hits(), 5);
}

#[tokio::test]
async fn head_is_answered_from_the_stored_get() {
    let (up, _o, gw) = start("max-age=60", "{}").await;
    let g = get(&gw, "/h", &[]).await;
    let req = Request::head(gw.url("http", "/h")).body(empty()).unwrap();
    let h = Client::h1().fetch(req).await.unwrap();
    assert_eq!(x_cache(&h), "HIT");
    assert!(h.body.is_empty());
    assert_eq!(
        h.header("content-length"),
        Some(g.body.len().to_string().as_str())
    );
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn the_byte_bound_holds_by_evicting() {
    let (up, origin) = Origin::start(Spec::default()).await;
    origin.header("cache-control", "max-age=600");
    origin.set(|s| s.body = bytes::Bytes::from(vec![b'x'; 10 * 1024]));
    let gw = Gateway::start(&config(
        &up,
        "{}",
        "cache: {max-size: 64KiB, max-object-size: 16KiB}\n",
    ))
    .await
    .unwrap();
    for i in 0..30 {
        let r = get(&gw, &format!("/big/{i}"), &[]).await;
        assert_eq!(r.body.len(), 10 * 1024);
    }
    let bytes = metric(&gw, "edgeward_cache_bytes").await;
    assert!(
        bytes <= 64 * 1024,
        "{bytes} bytes stored over a 64KiB bound"
    );
    assert!(metric(&gw, "edgeward_cache_evictions_total").await > 0);
    assert!(metric(&gw, "edgeward_cache_entries").await < 30);
    // Bigger than max-object-size: streamed through, never stored.
    origin.set(|s| s.body = bytes::Bytes::from(vec![b'y'; 20 * 1024]));
    for _ in 0..2 {
        let r = get(&gw, "/huge", &[]).await;
        assert_eq!((r.body.len(), x_cache(&r)), (20 * 1024, "MISS"));
    }
}

#[tokio::test]
async fn bad_cache_config_is_located() {
    let (up, _o) = Origin::start(Spec::default()).await;
    let yaml = config(
        &up,
        "{ttl: soon, key: {headers: [\"bad header\"]}, colour: red}",
        "",
    );
    let err = Gateway::start(&yaml)
        .await
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.contains("edgeward.yaml:"), "{err}");
    assert!(err.contains("colour"), "{err}");
}

#[tokio::test]
async fn http1_and_h2c_clients_share_entries() {
    let (up, _o, gw) = start("max-age=60", "{}").await;
    let a = Client::h1()
        .get(&gw.url("http", "/shared?x=1"))
        .await
        .unwrap();
    let b = Client::h2c()
        .get(&gw.url("http", "/shared?x=1"))
        .await
        .unwrap();
    assert_eq!((x_cache(&a), x_cache(&b)), ("MISS", "HIT"));
    assert_eq!(b.version, http::Version::HTTP_2);
    assert_eq!(a.body, b.body);
    let c = Client::h2c()
        .get(&gw.url("http", "/shared?x=2"))
        .await
        .unwrap();
    assert_eq!(x_cache(&c), "MISS", "the query is part of the key");
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn head_of_an_unstorable_response_has_no_body_over_h1_and_h2() {
    let (up, _o, gw) = start("no-store", "{}").await;
    for client in [Client::h1(), Client::h2c()] {
        let req = Request::head(gw.url("http", "/ns")).body(empty()).unwrap();
        let r = client.fetch(req).await.unwrap();
        assert_eq!((r.status, x_cache(&r)), (StatusCode::OK, "MISS"));
        assert!(r.body.is_empty());
    }
    assert_eq!(up.hits(), 2);
}
