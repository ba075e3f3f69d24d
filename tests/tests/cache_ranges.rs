//! Range requests and the cache (RFC 9110 §14, RFC 9111 §3.3–3.4), end to
//! end: the real binary, an origin that honours `Range` itself and counts
//! what it is asked, hyper as the client.
//!
//! A range that misses is filled whole and answered from the fill; what will
//! not be stored goes upstream with the client's own `Range`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edgeward_e2e::client::{Client, Fetched};
use edgeward_e2e::counting::{Origin, OriginServer, Spec};
use edgeward_e2e::{Body, Gateway, empty};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Semaphore;

const BODY: &[u8] = b"0123456789abcdef";

/// How the origin sends its complete responses.
#[derive(Clone)]
struct Script {
    body: Bytes,
    cache_control: &'static str,
    etag: &'static str,
    /// No `Content-Length`: the body is chunked.
    chunked: bool,
    /// Send this many bytes, then wait for [`RangeOrigin::release`].
    hold_after: Option<usize>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            body: Bytes::from_static(BODY),
            cache_control: "max-age=60",
            etag: "\"v1\"",
            chunked: false,
            hold_after: None,
        }
    }
}

/// An origin that answers `Range: bytes=A-B` with a 206 of its own and
/// records the `Range` of every request it gets.
struct RangeOrigin {
    addr: std::net::SocketAddr,
    asked: Arc<Mutex<Vec<Option<String>>>>,
    gate: Arc<Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RangeOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RangeOrigin {
    async fn start(script: Script) -> Self {
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(0));
        let (a, g) = (asked.clone(), gate.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = socket.accept().await {
                let (a, g, script) = (a.clone(), g.clone(), script.clone());
                conns.spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let range = req
                            .headers()
                            .get("range")
                            .map(|v| v.to_str().unwrap().to_owned());
                        a.lock().unwrap().push(range.clone());
                        let resp = answer(&script, range, g.clone());
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            asked,
            gate,
            task,
        }
    }

    /// The `Range` of every request so far (`None`: a complete request).
    fn asked(&self) -> Vec<Option<String>> {
        self.asked.lock().unwrap().clone()
    }

    fn release(&self) {
        self.gate.add_permits(1 << 16);
    }
}

fn answer(s: &Script, range: Option<String>, gate: Arc<Semaphore>) -> Response<Body> {
    use http_body_util::BodyExt;
    let mut resp = Response::builder()
        .header("content-type", "text/plain")
        .header("cache-control", s.cache_control)
        .header("etag", s.etag);
    if let Some((a, b)) = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
    {
        let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
        let part = s.body.slice(a..=b);
        resp = resp
            .status(206)
            .header("content-range", format!("bytes {a}-{b}/{}", s.body.len()));
        return resp.body(edgeward_e2e::full(part)).unwrap();
    }
    if !s.chunked {
        resp = resp.header("content-length", s.body.len());
    }
    let at = s.hold_after.unwrap_or(s.body.len()).min(s.body.len());
    let (first, rest) = (s.body.slice(..at), s.body.slice(at..));
    let stream = futures_util::stream::unfold(0, move |step| {
        let (first, rest, gate) = (first.clone(), rest.clone(), gate.clone());
        async move {
            let data = match step {
                0 => first,
                1 if !rest.is_empty() => {
                    drop(gate.acquire().await.unwrap());
                    rest
                }
                _ => return None,
            };
            Some((Ok::<_, edgeward_e2e::BoxError>(Frame::data(data)), step + 1))
        }
    });
    resp.body(http_body_util::StreamBody::new(stream).boxed_unsync())
        .unwrap()
}

/// `n` bytes of a, b, c ... z, a, b ...: every slice of it is told apart
/// from its neighbours.
fn alphabet(n: usize) -> Bytes {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

fn config(origin: std::net::SocketAddr, global: &str) -> String {
    format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n\
         {global}upstreams:\n  o:\n    endpoints: [\"{origin}\"]\n\
         routes:\n  - upstream: o\n    cache: {{}}\n",
    )
}

async fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Fetched {
    get_as(gw, http::Method::GET, path, headers).await
}

async fn get_as(
    gw: &Gateway,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Fetched {
    let mut req = Request::builder().method(method).uri(gw.url("http", path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    // No test may hang on a body that never comes: ten seconds is "never".
    tokio::time::timeout(
        Duration::from_secs(10),
        Client::h1().fetch(req.body(empty()).unwrap()),
    )
    .await
    .expect("the answer came")
    .unwrap()
}

fn cache_status(r: &Fetched) -> &str {
    r.header("cache-status").unwrap_or("<none>")
}

async fn stored(gw: &Gateway) -> u64 {
    let m = gw.metrics_text().await;
    m.lines()
        .find(|l| l.starts_with("edgeward_cache_stored_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no edgeward_cache_stored_total in:\n{m}"))
}

/// Waits until `n` responses are stored (a fill stores at its end, after a
/// client may already have its range).
async fn stored_reaches(gw: &Gateway, n: u64) {
    for _ in 0..1000 {
        if stored(gw).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never stored {n} responses");
}

/// The parts of a `multipart/byteranges` answer: (Content-Range, data).
fn parts(r: &Fetched) -> Vec<(String, String)> {
    let ct = r.header("content-type").unwrap();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{ct}"));
    r.text()
        .split(&format!("--{boundary}"))
        .filter(|p| !p.trim().is_empty() && p.trim() != "--")
        .map(|p| {
            let (head, data) = p.split_once("\r\n\r\n").unwrap();
            let range = head
                .lines()
                .find_map(|l| l.strip_prefix("content-range: "))
                .unwrap_or_else(|| panic!("{head}"));
            (range.to_owned(), data.trim_end_matches("\r\n").to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_range_miss_is_filled_whole_and_answered_from_the_fill() {
    let origin = RangeOrigin::start(Script::default()).await;
    let gw = Gateway::start(&config(origin.addr, "")).await.unwrap();
    let r = get(&gw, "/a", &[("range", "bytes=2-5")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], b"2345");
    assert_eq!(r.header("content-range"), Some("bytes 2-5/16"));
    assert_eq!(r.header("content-length"), Some("4"));
    assert_eq!(r.header("etag"), Some("\"v1\""));
    // fwd-status is upstream's (the complete 200), not the client's 206.
    assert!(
        cache_status(&r).starts_with("Edgeward; fwd=uri-miss; fwd-status=200; stored; ttl="),
        "{}",
        cache_status(&r)
    );
    assert_eq!(origin.asked(), vec![None], "the cache asked for it whole");
    stored_reaches(&gw, 1).await;
    // Every later range of it, and the whole, is a hit.
    for (range, want, content_range) in [
        ("bytes=10-", &b"abcdef"[..], "bytes 10-15/16"),
        ("bytes=-3", &b"def"[..], "bytes 13-15/16"),
        ("bytes=0-0", &b"0"[..], "bytes 0-0/16"),
    ] {
        let r = get(&gw, "/a", &[("range", range)]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            (&r.body[..], r.header("content-range")),
            (want, Some(content_range))
        );
        assert_eq!(r.header("x-cache"), Some("HIT"));
    }
    assert_eq!(&get(&gw, "/a", &[]).await.body[..], BODY);

    // Several ranges on a miss: multipart/byteranges, cut once the body is in.
    let r = get(&gw, "/b", &[("range", "bytes=0-1, 4-5, 14-")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert!(r.header("content-range").is_none());
    assert_eq!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        r.body.len()
    );
    let want = [
        ("bytes 0-1/16", "01"),
        ("bytes 4-5/16", "45"),
        ("bytes 14-15/16", "ef"),
    ];
    let got = parts(&r);
    assert_eq!(
        got.iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect::<Vec<_>>(),
        want
    );

    // Nothing of it matches: 416 with the length; the fill still stores it.
    let r = get(&gw, "/c", &[("range", "bytes=16-")]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), Some("bytes */16"));
    assert!(r.body.is_empty());
    stored_reaches(&gw, 3).await;
    assert_eq!(get(&gw, "/c", &[]).await.header("x-cache"), Some("HIT"));

    // If-Range on a miss is checked against what upstream sent (RFC 9110
    // §13.1.5): another tag, or a weak one, gets the whole response.
    for if_range in ["\"old\"", "W/\"v1\""] {
        let path = format!("/d{}", if_range.len());
        let r = get(
            &gw,
            &path,
            &[("range", "bytes=0-1"), ("if-range", if_range)],
        )
        .await;
        assert_eq!(
            (r.status, &r.body[..]),
            (StatusCode::OK, BODY),
            "{if_range}"
        );
        assert!(r.header("content-range").is_none());
    }
    let r = get(&gw, "/e", &[("range", "bytes=0-1"), ("if-range", "\"v1\"")]).await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"01"[..])
    );
    // Ranges are for GET only: a HEAD gets the whole response's head.
    let r = get_as(&gw, http::Method::HEAD, "/f", &[("range", "bytes=0-1")]).await;
    assert_eq!(
        (r.status, r.header("content-length")),
        (StatusCode::OK, Some("16"))
    );
    assert!(r.header("content-range").is_none());
    assert!(
        origin.asked().iter().all(Option::is_none),
        "no range was forwarded: {:?}",
        origin.asked()
    );
    assert_eq!(origin.asked().len(), 7);
}

#[tokio::test]
async fn a_range_streams_from_the_fill_before_the_origin_finishes() {
    // The origin sends 8 of the 16 bytes, then waits.
    let origin = RangeOrigin::start(Script {
        hold_after: Some(8),
        ..Script::default()
    })
    .await;
    let gw = Gateway::start(&config(origin.addr, "")).await.unwrap();
    let r = get(&gw, "/s", &[("range", "bytes=0-3")]).await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"0123"[..])
    );
    // A second client joins the fill still in progress and gets its part
    // from it, without asking upstream.
    let r = get(&gw, "/s", &[("range", "bytes=4-7")]).await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"4567"[..])
    );
    assert!(
        cache_status(&r).contains("collapsed"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(r.header("content-range"), Some("bytes 4-7/16"));
    assert_eq!(origin.asked(), vec![None]);
    assert_eq!(stored(&gw).await, 0, "the fill is still in progress");
    origin.release();
    stored_reaches(&gw, 1).await;
    let r = get(&gw, "/s", &[("range", "bytes=8-")]).await;
    assert_eq!(
        (&r.body[..], r.header("x-cache")),
        (&b"89abcdef"[..], Some("HIT"))
    );
    assert_eq!(origin.asked().len(), 1);
}

#[tokio::test]
async fn a_range_of_a_body_of_unknown_length_is_cut_once_it_is_in() {
    let origin = RangeOrigin::start(Script {
        chunked: true,
        ..Script::default()
    })
    .await;
    let gw = Gateway::start(&config(origin.addr, "")).await.unwrap();
    let r = get(&gw, "/u", &[("range", "bytes=-3")]).await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"def"[..])
    );
    assert_eq!(r.header("content-range"), Some("bytes 13-15/16"));
    assert_eq!(r.header("content-length"), Some("3"));
    assert_eq!(origin.asked(), vec![None]);
    stored_reaches(&gw, 1).await;
    assert_eq!(get(&gw, "/u", &[]).await.header("x-cache"), Some("HIT"));
}

#[tokio::test]
async fn a_range_the_cache_will_not_store_goes_upstream_as_it_came() {
    let big = alphabet(4096);
    let global = "cache: {max-object-size: 1KiB}\n";
    for chunked in [false, true] {
        let origin = RangeOrigin::start(Script {
            body: big.clone(),
            chunked,
            ..Script::default()
        })
        .await;
        let gw = Gateway::start(&config(origin.addr, global)).await.unwrap();
        let r = get(&gw, "/big", &[("range", "bytes=100-199")]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "chunked: {chunked}");
        assert_eq!(&r.body[..], &big[100..200]);
        assert_eq!(r.header("content-range"), Some("bytes 100-199/4096"));
        // Too big to keep whole, so the cache kept the part upstream sent.
        let status = cache_status(&r);
        assert!(
            status.starts_with("Edgeward; fwd=uri-miss; fwd-status=206; stored"),
            "chunked: {chunked}: {status}"
        );
        // Asked whole first (its size unknown until then), then as the client did.
        assert_eq!(origin.asked(), vec![None, Some("bytes=100-199".into())]);
        stored_reaches(&gw, 1).await;
        // A part over max-object-size streams through and is not kept.
        let r = get(&gw, "/big", &[("range", "bytes=0-2047")]).await;
        assert_eq!(
            (r.status, &r.body[..]),
            (StatusCode::PARTIAL_CONTENT, &big[..2048])
        );
        assert!(
            cache_status(&r).contains("fwd-status=206"),
            "{}",
            cache_status(&r)
        );
        assert!(!cache_status(&r).contains("stored"), "{}", cache_status(&r));
        assert_eq!(origin.asked().last(), Some(&Some("bytes=0-2047".into())));
    }
    // Not storable at all: the same, and nothing is kept.
    let origin = RangeOrigin::start(Script {
        cache_control: "no-store",
        ..Script::default()
    })
    .await;
    let gw = Gateway::start(&config(origin.addr, "")).await.unwrap();
    for _ in 0..2 {
        let r = get(&gw, "/ns", &[("range", "bytes=1-2")]).await;
        assert_eq!(
            (r.status, &r.body[..]),
            (StatusCode::PARTIAL_CONTENT, &b"12"[..])
        );
    }
    let asked = Some("bytes=1-2".to_owned());
    assert_eq!(origin.asked(), vec![None, asked.clone(), None, asked]);
    assert_eq!(stored(&gw).await, 0);
}

#[tokio::test]
async fn parts_of_an_object_too_big_to_keep_are_stored_combined_and_served() {
    let big = alphabet(4096);
    let origin = RangeOrigin::start(Script {
        body: big.clone(),
        ..Script::default()
    })
    .await;
    let global = "cache: {max-object-size: 1KiB}\n";
    let gw = Gateway::start(&config(origin.addr, global)).await.unwrap();
    let r = get(&gw, "/big", &[("range", "bytes=100-199")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    stored_reaches(&gw, 1).await;

    // Inside the stored part: a hit, upstream not asked.
    let r = get(&gw, "/big", &[("range", "bytes=120-150")]).await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::PARTIAL_CONTENT, &big[120..151])
    );
    assert_eq!(r.header("content-range"), Some("bytes 120-150/4096"));
    assert!(
        cache_status(&r).starts_with("Edgeward; hit"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(origin.asked().len(), 2);

    // Next to it: asked of upstream as it came (the part says the whole is
    // too big, so not asked whole first), and combined with the stored part.
    let r = get(&gw, "/big", &[("range", "bytes=200-299")]).await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::PARTIAL_CONTENT, &big[200..300])
    );
    assert_eq!(origin.asked()[2..], [Some("bytes=200-299".to_owned())]);
    stored_reaches(&gw, 2).await;

    // Across both: one hit from the combined part, as are several ranges and
    // a range past the end.
    let r = get(&gw, "/big", &[("range", "bytes=150-250")]).await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::PARTIAL_CONTENT, &big[150..251])
    );
    assert!(
        cache_status(&r).starts_with("Edgeward; hit"),
        "{}",
        cache_status(&r)
    );
    let r = get(&gw, "/big", &[("range", "bytes=100-109, 290-299")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    let text = |a: usize, b: usize| String::from_utf8(big[a..=b].to_vec()).unwrap();
    assert_eq!(
        parts(&r),
        vec![
            ("bytes 100-109/4096".to_owned(), text(100, 109)),
            ("bytes 290-299/4096".to_owned(), text(290, 299)),
        ]
    );
    let r = get(&gw, "/big", &[("range", "bytes=5000-")]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), Some("bytes */4096"));
    assert_eq!(origin.asked().len(), 3);

    // An If-Range the part's validator fails gets what upstream says.
    let r = get(
        &gw,
        "/big",
        &[("range", "bytes=120-130"), ("if-range", "\"v0\"")],
    )
    .await;
    assert_eq!(origin.asked().len(), 4);
    assert_eq!(
        r.status,
        StatusCode::PARTIAL_CONTENT,
        "the origin ignores If-Range"
    );

    // A purge of the path removes the part with the rest.
    let r = gw
        .admin_request(
            http::Method::POST,
            "/admin/cache/purge",
            r#"{"url": "/big"}"#,
        )
        .await;
    assert_eq!(r.json()["purged"], 1, "{}", r.text());
    get(&gw, "/big", &[("range", "bytes=120-150")]).await;
    assert_eq!(
        origin.asked()[4..],
        [None, Some("bytes=120-150".to_owned())]
    );
}

#[tokio::test]
async fn ranges_are_served_from_a_stored_complete_response() {
    let (up, origin): (OriginServer, Origin) = Origin::start(Spec::default()).await;
    origin.header("cache-control", "max-age=60");
    origin.header("etag", "\"r1\"");
    origin.set(|s| s.body = Bytes::from_static(BODY));
    let gw = Gateway::start(&config(up.addr, "")).await.unwrap();
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
        assert_eq!(r.header("x-cache"), Some("HIT"));
    }
    let r = get(&gw, "/r", &[("range", "bytes=16-")]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), Some("bytes */16"));
    // Several ranges: multipart/byteranges, each part with its range.
    let r = get(&gw, "/r", &[("range", "bytes=0-1, 4-5, 14-")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert!(r.header("content-range").is_none());
    let got = parts(&r);
    let want = [
        ("bytes 0-1/16", "01"),
        ("bytes 4-5/16", "45"),
        ("bytes 14-15/16", "ef"),
    ];
    assert_eq!(
        got.iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect::<Vec<_>>(),
        want
    );
    assert_eq!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        r.body.len()
    );
    // An If-Range that does not match: the whole response.
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
