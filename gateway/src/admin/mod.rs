//! The admin listener: liveness, readiness and metrics for operators and probes,
//! cache purges, and reloads.

mod purge;
mod reload;
mod scale;
mod status;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Method, Request, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{Body, local_response};
use crate::node::Node;
pub use reload::ReloadReply;

/// Shared readiness: false until every listener is bound, and again once draining.
#[derive(Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

fn route<B>(req: &Request<B>, node: &Node, ready: &Readiness) -> Response<Body> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => local_response(StatusCode::OK, PLAIN, "ok\n"),
        (&Method::GET | &Method::HEAD, "/readyz") if ready.get() => local_response(
            StatusCode::OK,
            PLAIN,
            format!("ready generation {}\n", node.generation().number),
        ),
        (&Method::GET | &Method::HEAD, "/readyz") => {
            local_response(StatusCode::SERVICE_UNAVAILABLE, PLAIN, "not ready\n")
        }
        (&Method::GET | &Method::HEAD, "/metrics") => local_response(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            node.metrics.render(),
        ),
        (_, "/healthz" | "/readyz" | "/metrics") => {
            local_response(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "use GET\n")
        }
        _ => local_response(
            StatusCode::NOT_FOUND,
            PLAIN,
            "admin endpoints: /healthz /readyz /metrics /admin/cache/purge /admin/reload /admin/scale /admin/status (page at /)\n",
        ),
    }
}

/// Serves until `stop` turns true.
pub async fn serve(
    socket: TcpListener,
    node: Arc<Node>,
    ready: Arc<Readiness>,
    mut stop: watch::Receiver<bool>,
    reloads: tokio::sync::mpsc::Sender<ReloadReply>,
) {
    let http = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, _) = tokio::select! {
            a = socket.accept() => match a {
                Ok(a) => a,
                Err(_) => continue,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let (node, ready, http, reloads) =
            (node.clone(), ready.clone(), http.clone(), reloads.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let (node, ready, reloads) = (node.clone(), ready.clone(), reloads.clone());
                async move {
                    let resp = match req.uri().path() {
                        "/admin/cache/purge" => purge::handle(req, &node).await,
                        "/admin/reload" => reload::handle(req, &node, &reloads).await,
                        p if p == "/admin/scale" || p.starts_with("/admin/scale/") => {
                            scale::handle(&req, &node)
                        }
                        "/" | "/admin/status" => status::handle(&req, &node),
                        _ => route(&req, &node, &ready),
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
