//! The admin listener: liveness, readiness and metrics for operators and probes,
//! cache purges, and reloads.

mod auth;
mod purge;
mod reload;
mod scale;
mod status;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{Body, local_response};
use crate::listener::AcceptBackoff;
use crate::listener::conn::{self, ConnGuard, Timed, Timeouts};
use crate::node::Node;
pub use reload::ReloadReply;
// For `crate::fuzz` only.
pub(crate) use purge::parse as purge_request;

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

/// The admin listener's timers: the same hygiene as a traffic listener's defaults.
const TIMEOUTS: Timeouts = Timeouts {
    first_request: Duration::from_secs(10),
    idle: Duration::from_secs(60),
    send: Duration::from_secs(30),
};

/// Serves until `stop` turns true.
pub async fn serve(
    socket: TcpListener,
    node: Arc<Node>,
    board: Arc<crate::scale::Board>,
    ready: Arc<Readiness>,
    mut stop: watch::Receiver<bool>,
    reloads: tokio::sync::mpsc::Sender<ReloadReply>,
) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(TIMEOUTS.first_request);
    http.http2().timer(TokioTimer::new());
    let http = Arc::new(http);
    let mut backoff = AcceptBackoff::default();
    // Connections accepted just before `stop` (a binary upgrade hands this
    // socket on) still get their answers: as the data listeners do, they
    // answer with `Connection: close` for a linger, then close when idle.
    let (close_conns, conns_stop) = watch::channel(false);
    let mut stopped = stop.clone();
    tokio::spawn(async move {
        let _ = stopped.wait_for(|s| *s).await;
        tokio::time::sleep(crate::listener::CLOSE_LINGER).await;
        let _ = close_conns.send(true);
    });
    loop {
        let accepted = tokio::select! {
            a = socket.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let stream = match accepted {
            Ok((s, _)) => {
                backoff.reset();
                s
            }
            Err(e) => {
                backoff.failed("admin", &e).await;
                continue;
            }
        };
        let deadline = tokio::time::Instant::now() + TIMEOUTS.first_request;
        let guard = Arc::new(ConnGuard::default());
        let (node, board, ready, http, reloads, draining, conn_stop, svc_guard) = (
            node.clone(),
            board.clone(),
            ready.clone(),
            http.clone(),
            reloads.clone(),
            stop.clone(),
            conns_stop.clone(),
            guard.clone(),
        );
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let (node, board, ready, reloads) =
                    (node.clone(), board.clone(), ready.clone(), reloads.clone());
                let token = svc_guard.request();
                let closing = *draining.borrow();
                async move {
                    let version = req.version();
                    let generation = node.generation();
                    let resp = match auth::check(&req, generation.config.admin_token.as_deref()) {
                        Some(denied) => denied,
                        None => match req.uri().path() {
                            "/admin/cache/purge" => purge::handle(req, &node).await,
                            "/admin/reload" => reload::handle(req, &node, &reloads).await,
                            p if p == "/admin/scale" || p.starts_with("/admin/scale/") => {
                                scale::handle(&req, &board)
                            }
                            "/" | "/admin/status" => status::handle(&req, &node, &board),
                            _ => route(&req, &node, &ready),
                        },
                    };
                    token.done();
                    let mut resp = resp;
                    if closing && version <= http::Version::HTTP_11 {
                        resp.headers_mut().insert(
                            http::header::CONNECTION,
                            http::HeaderValue::from_static("close"),
                        );
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let stream = Timed::new(stream, TIMEOUTS.send);
            let conn = http.serve_connection(TokioIo::new(stream), svc);
            let _ = conn::drive(
                conn,
                |c| c.graceful_shutdown(),
                &guard,
                TIMEOUTS,
                deadline,
                conn_stop,
            )
            .await;
        });
    }
}
