//! One accept loop of a TCP listener. Several run per listener, one per
//! worker, each on its own descriptor of the socket; what they share (the
//! connection census, the drain signals, the settings a reload swaps) is in
//! [`Accepting`].

use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::conn::{self, ConnGuard, Timed};
use super::{
    AcceptBackoff, ConnSettings, Serve, default_host, first_request_line, plaintext_serve,
    tls_serve,
};
use crate::body;
use crate::node::Node;
use crate::session::{self, ConnInfo};

/// What every accept loop of one listener shares.
pub(super) struct Accepting {
    pub node: Arc<Node>,
    pub name: Arc<str>,
    pub scheme: &'static str,
    pub settings: Arc<ArcSwap<ConnSettings>>,
    pub census: Arc<conn::Census>,
    /// Each connection holds a sender: the listener's drain waits for none left.
    pub alive: mpsc::Sender<()>,
    /// Turns true when the linger after a stop is over: idle connections close.
    pub conns_stop: watch::Receiver<bool>,
}

/// Accepts on `socket` until `stop` turns true.
pub(super) async fn run(socket: TcpListener, a: &Accepting, mut stop: watch::Receiver<bool>) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            a = socket.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, client) = match accepted {
            Ok(a) => {
                backoff.reset();
                a
            }
            Err(e) => {
                backoff.failed(&a.name, &e).await;
                continue;
            }
        };
        let settings = a.settings.load_full();
        let Some(admitted) = a.census.admit(
            client.ip(),
            settings.max_connections,
            settings.max_connections_per_ip,
        ) else {
            a.node.metrics.connections_refused.inc();
            conn::refused_connection(&a.name, client.ip());
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok();
        let timeouts = settings.timeouts;
        let deadline = tokio::time::Instant::now() + timeouts.first_request;
        let guard = Arc::new(ConnGuard::default());
        let conn = ConnInfo {
            client,
            scheme: a.scheme,
            listener: a.name.clone(),
            trust_request_id: settings.trust_request_id,
            hold: Some(conn::hold(&guard)),
        };
        let draining = stop.clone();
        let node = a.node.clone();
        let alt_svc = settings.alt_svc.clone();
        let svc_guard = guard.clone();
        // Set once the TLS handshake is done, before any request is read.
        let conn_sni = Arc::new(std::sync::OnceLock::<session::access::Sni>::new());
        let svc_sni = conn_sni.clone();
        // Set when the first request line said HTTP/1.2+ (first_line.rs).
        let downgraded = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let svc_downgraded = downgraded.clone();
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let node = node.clone();
            let conn = conn.clone();
            let alt_svc = alt_svc.clone();
            let token = svc_guard.request();
            let refused = svc_guard.is_tripped();
            let sni = svc_sni.clone();
            let downgraded = svc_downgraded.load(std::sync::atomic::Ordering::Relaxed);
            let closing = *draining.borrow();
            async move {
                if refused {
                    token.done();
                    return Ok(conn::refused());
                }
                let version = req.version();
                let mut req = req.map(body::boxed);
                default_host(&mut req, local);
                if let Some(sni) = sni.get() {
                    req.extensions_mut().insert(sni.clone());
                }
                // Boxed: hyper moves the service's future into place, and
                // this one is kilobytes (memmove was 2 % of a request).
                let mut resp = Box::pin(session::handle(&node, req, &conn)).await;
                if let Some(v) = alt_svc {
                    // Ours replaces any upstream's: it describes this hop, not theirs.
                    resp.headers_mut().insert(http::header::ALT_SVC, v);
                }
                // A 101 keeps its `Connection: upgrade`: the tunnel holds the drain.
                if downgraded
                    || (closing
                        && version <= http::Version::HTTP_11
                        && resp.status() != http::StatusCode::SWITCHING_PROTOCOLS)
                {
                    resp.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                Ok::<_, std::convert::Infallible>(
                    resp.map(|b| conn::relay(b, timeouts.send, token, version)),
                )
            }
        });
        let stop = a.conns_stop.clone();
        let alive = a.alive.clone();
        tokio::spawn(async move {
            let _alive = (alive, admitted);
            let stream = Timed::new(stream, timeouts.send);
            let http = &settings.http;
            let result = match &settings.tls {
                None => {
                    let Some(serve) = plaintext_serve(settings.protocols) else {
                        return;
                    };
                    let Some(stream) =
                        first_request_line(stream, serve, &settings, deadline, &downgraded).await
                    else {
                        return;
                    };
                    let io = TokioIo::new(stream);
                    serve_io!(http, serve, io, service, &guard, timeouts, deadline, stop)
                }
                Some(acceptor) => {
                    // The handshake counts against the first request's deadline.
                    let handshake = acceptor.accept(stream);
                    let stream = match tokio::time::timeout_at(deadline, handshake).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%client, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%client, "TLS handshake timed out");
                            return;
                        }
                    };
                    if let Some(name) = stream.get_ref().1.server_name() {
                        let _ = conn_sni.set(session::access::Sni(Arc::from(name)));
                    }
                    let alpn = stream.get_ref().1.alpn_protocol();
                    let Some(serve) = tls_serve(alpn, settings.protocols) else {
                        tracing::debug!(%client, "no application protocol in common");
                        return;
                    };
                    let Some(stream) =
                        first_request_line(stream, serve, &settings, deadline, &downgraded).await
                    else {
                        return;
                    };
                    let io = TokioIo::new(stream);
                    serve_io!(http, serve, io, service, &guard, timeouts, deadline, stop)
                }
            };
            if let Err(e) = result {
                tracing::debug!(%client, error = %e, "connection ended with an error");
            }
        });
    }
}
