//! Real upstream HTTP servers for the tests, counting what they receive.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

use crate::Body;

pub type Reply = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
type Handler = Arc<dyn Fn(Request<Incoming>) -> Reply + Send + Sync>;

/// An upstream on 127.0.0.1:<ephemeral> serving HTTP/1.1 and h2c.
pub struct Upstream {
    pub addr: SocketAddr,
    /// Requests received so far.
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Serves every request with `handler`.
    pub async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = socket.local_addr().expect("upstream addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            let http = Arc::new(auto::Builder::new(TokioExecutor::new()));
            loop {
                let Ok((stream, _)) = socket.accept().await else {
                    continue;
                };
                let (handler, counter, http) = (handler.clone(), counter.clone(), http.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let fut = handler(req);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Self { addr, hits, task }
    }

    /// Answers JSON `{name, method, path, query, headers}` so tests can see
    /// exactly what the gateway forwarded.
    pub async fn echo(name: &'static str) -> Self {
        Self::start(move |req: Request<Incoming>| async move {
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        serde_json::Value::from(v.to_str().unwrap_or("")),
                    )
                })
                .collect();
            let doc = serde_json::json!({
                "name": name,
                "method": req.method().as_str(),
                "path": req.uri().path(),
                "query": req.uri().query(),
                "version": format!("{:?}", req.version()),
                "headers": headers,
            });
            let mut resp = Response::new(crate::full(doc.to_string()));
            resp.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/json"),
            );
            resp.headers_mut()
                .insert("x-upstream", http::HeaderValue::from_static(name));
            resp
        })
        .await
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Upstream {
    /// Answers every request with a streamed body: the head and the `before`
    /// chunks at once, the `after` chunks only once the returned sender is set
    /// to `true` (so a test knows a response is mid-body, without timing).
    pub async fn gated_stream(
        name: &'static str,
        before: Vec<bytes::Bytes>,
        after: Vec<bytes::Bytes>,
    ) -> (Self, tokio::sync::watch::Sender<bool>) {
        use futures_util::StreamExt;
        use http_body_util::BodyExt;
        let (release, gate) = tokio::sync::watch::channel(false);
        let up = Self::start(move |_req: Request<Incoming>| {
            let (before, after, mut gate) = (before.clone(), after.clone(), gate.clone());
            async move {
                let data = |b: bytes::Bytes| Ok::<_, crate::BoxError>(http_body::Frame::data(b));
                let first = futures_util::stream::iter(before.into_iter().map(data));
                let rest = futures_util::stream::once(async move {
                    let _ = gate.wait_for(|go| *go).await;
                    futures_util::stream::iter(after.into_iter().map(data))
                })
                .flatten();
                let body = http_body_util::StreamBody::new(first.chain(rest)).boxed_unsync();
                let mut resp = Response::new(body);
                resp.headers_mut().insert(
                    "content-type",
                    http::HeaderValue::from_static("application/octet-stream"),
                );
                resp.headers_mut()
                    .insert("x-upstream", http::HeaderValue::from_static(name));
                resp
            }
        })
        .await;
        (up, release)
    }
}
