//! A scripted origin for the cache and compression tests: answers with the
//! status, fields and body a test sets, counts full and conditional requests,
//! answers 304 when a request's validator matches, and can hold requests until
//! the test releases them (to make concurrency deterministic, not timed).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The origin's server. Dropping it closes the port and every open
/// connection, so the origin is really down (unlike [`crate::Upstream`], whose
/// keep-alive connections outlive it).
pub struct OriginServer {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OriginServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OriginServer {
    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// What the origin answers. An empty `body` means a JSON document naming the
/// path, the request's `Accept-Language` and a serial number.
#[derive(Debug, Clone)]
pub struct Spec {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::new(),
        }
    }
}

struct State {
    spec: Mutex<Spec>,
    conditional: AtomicUsize,
    served: AtomicUsize,
    last: Mutex<HeaderMap>,
    held: AtomicBool,
    gate: Semaphore,
}

/// A handle on the origin's script and counters; the [`Upstream`] serves it.
#[derive(Clone)]
pub struct Origin {
    state: Arc<State>,
}

impl Origin {
    pub async fn start(spec: Spec) -> (OriginServer, Origin) {
        let state = Arc::new(State {
            spec: Mutex::new(spec),
            conditional: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
            last: Mutex::new(HeaderMap::new()),
            held: AtomicBool::new(false),
            gate: Semaphore::new(0),
        });
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind origin");
        let addr = socket.local_addr().expect("origin addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, counter) = (state.clone(), hits.clone());
        let task = tokio::spawn(async move {
            // Connections live in this set: aborting the task drops them all.
            let mut conns = JoinSet::new();
            let http = Arc::new(auto::Builder::new(TokioExecutor::new()));
            loop {
                let Ok((stream, _)) = socket.accept().await else {
                    continue;
                };
                let (s, counter, http) = (s.clone(), counter.clone(), http.clone());
                conns.spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(answer(&s, req).await) }
                    });
                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        (OriginServer { addr, hits, task }, Origin { state })
    }

    pub fn set(&self, f: impl FnOnce(&mut Spec)) {
        f(&mut self.state.spec.lock().unwrap());
    }

    /// Sets (replacing) one response field.
    pub fn header(&self, name: &str, value: &str) {
        self.set(|s| {
            s.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            s.headers.push((name.into(), value.into()));
        });
    }

    /// Requests that carried `If-None-Match` or `If-Modified-Since`.
    pub fn conditional(&self) -> usize {
        self.state.conditional.load(Ordering::SeqCst)
    }

    /// The fields of the last request received.
    pub fn last_request(&self) -> HeaderMap {
        self.state.last.lock().unwrap().clone()
    }

    /// From now on, requests wait for [`Origin::release`].
    pub fn hold(&self) {
        self.state.held.store(true, Ordering::SeqCst);
    }

    /// Lets every waiting and future request through.
    pub fn release(&self) {
        self.state.held.store(false, Ordering::SeqCst);
        self.state.gate.add_permits(1 << 16);
    }
}

async fn answer(s: &State, req: Request<Incoming>) -> Response<crate::Body> {
    *s.last.lock().unwrap() = req.headers().clone();
    if s.held.load(Ordering::SeqCst)
        && let Ok(p) = s.gate.acquire().await
    {
        p.forget();
    }
    let serial = s.served.fetch_add(1, Ordering::SeqCst) + 1;
    let spec = s.spec.lock().unwrap().clone();
    let etag = spec
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("etag"))
        .map(|(_, v)| v.clone());
    let inm = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok());
    if inm.is_some() || req.headers().contains_key("if-modified-since") {
        s.conditional.fetch_add(1, Ordering::SeqCst);
    }
    let not_modified = matches!((inm, &etag), (Some(a), Some(b)) if a.trim_start_matches("W/") == b.trim_start_matches("W/"));
    let body = if not_modified {
        Bytes::new()
    } else if spec.body.is_empty() {
        let lang = req
            .headers()
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Bytes::from(
            serde_json::json!({"path": req.uri().path(), "lang": lang, "serial": serial})
                .to_string(),
        )
    } else {
        spec.body.clone()
    };
    let mut resp = Response::new(crate::full(body));
    *resp.status_mut() = if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::from_u16(spec.status).unwrap()
    };
    let h = resp.headers_mut();
    for (n, v) in &spec.headers {
        let v = v.replace("{path}", req.uri().path());
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}

/// Polls `cond` every 10 ms for at most 10 s; a wait for an event, not a
/// timing assertion.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}
