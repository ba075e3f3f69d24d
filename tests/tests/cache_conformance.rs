//! The RFC 9111 / 9211 / 9213 items of issue 13, end to end: the real binary,
//! the counting origin, hyper as the client.

use std::time::{Duration, SystemTime};

use edgeward_e2e::client::{Client, Fetched};
use edgeward_e2e::counting::{Origin, OriginServer, Spec, eventually};
use edgeward_e2e::{Gateway, empty};
use http::{Request, StatusCode};

fn config(up: &OriginServer, cache: &str) -> String {
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n\
         upstreams:\n  o:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: o\n    cache: {cache}\n",
        up.addr
    )
}

async fn start(cc: &str, cache: &str) -> (OriginServer, Origin, Gateway) {
    let (up, origin) = Origin::start(Spec::default()).await;
    origin.header("cache-control", cc);
    let gw = Gateway::start(&config(&up, cache)).await.unwrap();
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

fn status(r: &Fetched) -> &str {
    r.header("cache-status").unwrap_or("<none>")
}

async fn metric(gw: &Gateway, name: &str) -> u64 {
    let m = gw.metrics_text().await;
    m.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{m}"))
}

#[tokio::test]
async fn an_age_list_counts_as_its_first_member() {
    // Age: 7200, 0 is two hours old: stale at once under max-age=60.
    let (up, origin, gw) = start("max-age=60", "{}").await;
    origin.header("age", "7200, 0");
    get(&gw, "/age", &[]).await;
    let r = get(&gw, "/age", &[]).await;
    assert_eq!(x_cache(&r), "MISS", "{}", status(&r));
    assert_eq!(up.hits(), 2);
    // A single value still works, and Age is what the entry says.
    origin.header("age", "10");
    get(&gw, "/age1", &[]).await;
    let r = get(&gw, "/age1", &[]).await;
    assert_eq!(x_cache(&r), "HIT");
    let age: u64 = r.header("age").unwrap().parse().unwrap();
    assert!((10..60).contains(&age), "{age}");
}

#[tokio::test]
async fn a_coded_body_we_did_not_ask_for_is_not_stored() {
    let (up, origin, gw) = start("max-age=60", "{}").await;
    // The origin ignores the cache's Accept-Encoding: identity.
    origin.header("content-encoding", "gzip");
    origin.set(|s| s.body = bytes::Bytes::from_static(b"\x1f\x8bnot-really-gzip"));
    for _ in 0..2 {
        let r = get(&gw, "/coded", &[("accept-encoding", "gzip")]).await;
        assert_eq!(x_cache(&r), "MISS");
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert!(!status(&r).contains("stored"), "{}", status(&r));
    }
    assert_eq!(up.hits(), 2);
    assert_eq!(
        origin.last_request().get("accept-encoding").unwrap(),
        "identity"
    );
}

#[tokio::test]
async fn concurrent_revalidations_of_one_entry_make_one_conditional_request() {
    let (up, origin, gw) = start("no-cache", "{}").await;
    origin.header("etag", "\"v1\"");
    let first = get(&gw, "/rv", &[]).await;
    assert_eq!(x_cache(&first), "MISS");
    origin.hold();
    let url = gw.url("http", "/rv");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Client::h1().get(&url).await.unwrap() })
        })
        .collect();
    eventually("the revalidation reaches the origin", || up.hits() == 2).await;
    for _ in 0..1000 {
        if metric(&gw, "edgeward_cache_coalesced_total").await == 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    origin.release();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!((r.status, x_cache(&r)), (StatusCode::OK, "REVALIDATED"));
        assert_eq!(r.body, first.body);
    }
    assert_eq!(origin.conditional(), 1, "one conditional request");
    assert_eq!(up.hits(), 2);
    assert_eq!(metric(&gw, "edgeward_cache_coalesced_total").await, 9);
}

#[tokio::test]
async fn expires_is_read_leniently_and_garbage_is_past() {
    let (up, origin, gw) = start("public", "{}").await;
    let later = SystemTime::now() + Duration::from_secs(3600);
    // RFC 5322 style: numeric zone, one-digit day where it applies.
    let imf = httpdate::fmt_http_date(later);
    let lenient = imf.replace(" GMT", " +0000");
    origin.header("expires", &lenient);
    get(&gw, "/x1", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/x1", &[]).await), "HIT", "{lenient}");
    origin.header("expires", "0");
    get(&gw, "/x2", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/x2", &[]).await), "MISS");
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn if_modified_since_is_compared_with_the_stored_date_without_last_modified() {
    let (up, _o, gw) = start("max-age=60", "{}").await;
    let a = get(&gw, "/ims", &[]).await;
    let date = a.header("date").unwrap().to_owned();
    let r = get(&gw, "/ims", &[("if-modified-since", &date)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let before = httpdate::fmt_http_date(
        httpdate::parse_http_date(&date).unwrap() - Duration::from_secs(60),
    );
    let r = get(&gw, "/ims", &[("if-modified-since", &before)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn vary_values_are_normalised() {
    let (up, origin, gw) = start("max-age=60", "{}").await;
    origin.header("vary", "Accept-Language");
    get(&gw, "/vn", &[("accept-language", "fr;q=0.5, en;q=0.9")]).await;
    let r = get(&gw, "/vn", &[("accept-language", "en ; q=0.9,fr;q=0.5")]).await;
    assert_eq!(x_cache(&r), "HIT");
    let r = get(&gw, "/vn", &[("accept-language", "de")]).await;
    assert_eq!(x_cache(&r), "MISS");
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn must_understand_overrides_no_store_for_understood_statuses() {
    let (up, origin, gw) = start("max-age=60, must-understand, no-store", "{}").await;
    get(&gw, "/mu", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/mu", &[]).await), "HIT");
    // A status this cache does not implement is not stored.
    origin.set(|s| s.status = 299);
    get(&gw, "/mu2", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/mu2", &[]).await), "MISS");
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn targeted_cache_control_takes_precedence() {
    let (up, origin, gw) = start("no-store", "{}").await;
    origin.header("cdn-cache-control", "max-age=60");
    origin.header("expires", "0");
    get(&gw, "/cdn", &[]).await;
    let r = get(&gw, "/cdn", &[]).await;
    assert_eq!(
        x_cache(&r),
        "HIT",
        "CDN-Cache-Control over Cache-Control and Expires"
    );
    assert_eq!(
        r.header("cache-control"),
        Some("no-store"),
        "sent on as it came"
    );
    assert_eq!(r.header("cdn-cache-control"), Some("max-age=60"));
    // Our own targeted field wins over CDN-Cache-Control and is never sent on.
    origin.header("edgeward-cache-control", "no-store");
    for _ in 0..2 {
        let r = get(&gw, "/ours", &[]).await;
        assert_eq!(x_cache(&r), "MISS");
        assert!(r.header("edgeward-cache-control").is_none());
    }
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn stale_is_served_within_the_bound_when_upstream_is_unreachable() {
    let (up, origin) = Origin::start(Spec::default()).await;
    origin.header("cache-control", "max-age=1");
    origin.header("age", "5");
    let gw = Gateway::start(&config(&up, "{stale-if-unreachable: 1h}"))
        .await
        .unwrap();
    let a = get(&gw, "/down", &[]).await;
    let stale_before = metric(
        &gw,
        "edgeward_cache_requests_total{node=\"edgeward\",region=\"local\",result=\"stale\"}",
    )
    .await;
    drop(up);
    let r = get(&gw, "/down", &[]).await;
    assert_eq!((r.status, x_cache(&r)), (StatusCode::OK, "STALE"));
    assert!(
        status(&r).contains("detail=upstream-unreachable"),
        "{}",
        status(&r)
    );
    assert_eq!(r.body, a.body);
    assert_eq!(
        metric(
            &gw,
            "edgeward_cache_requests_total{node=\"edgeward\",region=\"local\",result=\"stale\"}"
        )
        .await,
        stale_before + 1
    );
    // Without the option, a dead upstream is an error.
    let (up, origin) = Origin::start(Spec::default()).await;
    origin.header("cache-control", "max-age=1");
    origin.header("age", "5");
    let gw = Gateway::start(&config(&up, "{}")).await.unwrap();
    get(&gw, "/down", &[]).await;
    drop(up);
    assert_eq!(get(&gw, "/down", &[]).await.status, StatusCode::BAD_GATEWAY);
    // Nor past the bound, nor when the entry forbids stale answers.
    let (up, origin) = Origin::start(Spec::default()).await;
    origin.header("cache-control", "max-age=1, must-revalidate");
    origin.header("age", "5");
    let gw = Gateway::start(&config(&up, "{stale-if-unreachable: 1h}"))
        .await
        .unwrap();
    get(&gw, "/down", &[]).await;
    drop(up);
    assert_eq!(get(&gw, "/down", &[]).await.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn cache_status_is_on_every_response_of_a_cached_route() {
    let (up, origin, gw) = start("max-age=60", "{status-key: true}").await;
    let miss = get(&gw, "/cs", &[]).await;
    let s = status(&miss);
    assert!(
        s.starts_with("Edgeward; fwd=uri-miss; fwd-status=200; stored; ttl="),
        "{s}"
    );
    assert!(s.contains("key=\""), "{s}");
    let hit = get(&gw, "/cs", &[]).await;
    assert!(
        status(&hit).starts_with("Edgeward; hit; ttl="),
        "{}",
        status(&hit)
    );
    let ttl: i64 = status(&hit)
        .split("ttl=")
        .nth(1)
        .and_then(|t| t.split(';').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&ttl), "{ttl}");
    let post = Client::h1()
        .fetch(
            Request::post(gw.url("http", "/cs"))
                .body(edgeward_e2e::full("x"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(status(&post), "Edgeward; fwd=method; fwd-status=200");
    let ranged = get(&gw, "/other", &[("range", "bytes=0-1")]).await;
    assert!(
        status(&ranged).starts_with("Edgeward; fwd="),
        "{}",
        status(&ranged)
    );
    let oic = get(&gw, "/none", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(oic.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(status(&oic), "Edgeward; detail=only-if-cached");
    origin.header("cache-control", "no-store");
    origin.header("cache-status", "Upstream; hit");
    let ns = get(&gw, "/ns", &[]).await;
    assert_eq!(
        status(&ns),
        "Upstream; hit, Edgeward; fwd=uri-miss; fwd-status=200"
    );
    assert_eq!(x_cache(&ns), "MISS");
    assert!(up.hits() >= 3);

    // X-Cache can be turned off; Cache-Status stays.
    let (_up, _o, gw) = start("max-age=60", "{x-cache: false}").await;
    let r = get(&gw, "/nx", &[]).await;
    assert!(r.header("x-cache").is_none());
    assert!(status(&r).starts_with("Edgeward; fwd=uri-miss"));
}

#[tokio::test]
async fn ranges_are_served_from_a_stored_complete_response() {
    let (up, origin, gw) = start("max-age=60", "{}").await;
    origin.header("etag", "\"r1\"");
    origin.set(|s| s.body = bytes::Bytes::from_static(b"0123456789abcdef"));
    // Nothing stored: the range goes upstream as it is, and is not stored.
    let r = get(&gw, "/r", &[("range", "bytes=0-3")]).await;
    assert!(status(&r).contains("fwd=bypass"), "{}", status(&r));
    get(&gw, "/r", &[]).await;
    let hits = up.hits();
    for (range, want, content_range) in [
        ("bytes=0-3", &b"0123"[..], "bytes 0-3/16"),
        ("bytes=10-", &b"abcdef"[..], "bytes 10-15/16"),
        ("bytes=-2", &b"ef"[..], "bytes 14-15/16"),
        ("bytes=4-100", &b"456789abcdef"[..], "bytes 4-15/16"),
    ] {
        let r = get(&gw, "/r", &[("range", range)]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(&r.body[..], want, "{range}");
        assert_eq!(r.header("content-range"), Some(content_range), "{range}");
        assert_eq!(x_cache(&r), "HIT");
    }
    let r = get(&gw, "/r", &[("range", "bytes=16-")]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), Some("bytes */16"));
    // Several ranges, or an If-Range that does not match: the whole response.
    let r = get(&gw, "/r", &[("range", "bytes=0-1,4-5")]).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 16));
    let r = get(
        &gw,
        "/r",
        &[("range", "bytes=0-1"), ("if-range", "\"old\"")],
    )
    .await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 16));
    let r = get(&gw, "/r", &[("range", "bytes=0-1"), ("if-range", "\"r1\"")]).await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"01"[..])
    );
    assert_eq!(up.hits(), hits, "every range came from the store");
}

#[tokio::test]
async fn set_cookie_responses_are_stored_only_where_the_route_opts_in() {
    // Default: not stored.
    let (up, origin, gw) = start("max-age=60", "{}").await;
    origin.header("set-cookie", "sid=secret");
    get(&gw, "/sc", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/sc", &[]).await), "MISS");
    assert_eq!(up.hits(), 2);
    // Opted in: stored without the cookie; the filling client still gets it.
    let (up, origin, gw) = start("max-age=60", "{store-set-cookie: true}").await;
    origin.header("set-cookie", "sid=secret");
    let first = get(&gw, "/sc", &[]).await;
    assert_eq!(first.header("set-cookie"), Some("sid=secret"));
    let second = get(&gw, "/sc", &[]).await;
    assert_eq!(x_cache(&second), "HIT");
    assert!(
        second.header("set-cookie").is_none(),
        "another client's cookie"
    );
    assert_eq!(second.body, first.body);
    assert_eq!(up.hits(), 1);
}
