//! Accept loops. Each protocol adapter turns its connections' requests into
//! `http::Request<Body>` and hands them to the one [`session::handle`].

mod h3body;
pub mod quic;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use arc_swap::ArcSwap;

use crate::body;
use crate::config::Listener;
use crate::node::Node;
use crate::session::{self, ConnInfo};

/// ALPN we offer on TLS, in preference order.
pub const ALPN_H2_H1: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// How a TCP listener serves its connections: rebuilt from each generation's
/// listener config and swapped in, so new connections (and new TLS handshakes,
/// with new certificates) follow a reload while open ones keep theirs.
pub struct ConnSettings {
    tls: Option<TlsAcceptor>,
    http: auto::Builder<TokioExecutor>,
    /// Set on TLS listeners that also serve h3, so HTTP/1.1 and HTTP/2 clients learn of it.
    alt_svc: Option<http::HeaderValue>,
    handshake_timeout: Duration,
}

impl ConnSettings {
    /// `port` is the bound port, which `Alt-Svc` names.
    pub fn build(config: &Listener, port: u16) -> std::io::Result<Self> {
        let tls = match &config.tls {
            Some(certs) => {
                let alpn: Vec<&[u8]> = ALPN_H2_H1
                    .into_iter()
                    .filter(|p| match *p {
                        b"h2" => config.protocols.h2,
                        _ => config.protocols.h1,
                    })
                    .collect();
                let tls = tls::server_config(certs, &alpn).map_err(|e| {
                    std::io::Error::other(format!("listener {}: TLS: {e}", config.name))
                })?;
                Some(TlsAcceptor::from(Arc::new(tls)))
            }
            None => None,
        };
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(config.max_header_size)
            .keep_alive(config.keep_alive);
        http.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.max_concurrent_streams)
            .max_header_list_size(u32::try_from(config.max_header_size).unwrap_or(u32::MAX))
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        let alt_svc = match (&config.quic, &tls) {
            (Some(q), Some(_)) => Some(quic::alt_svc(port, q.alt_svc_max_age)),
            _ => None,
        };
        Ok(Self {
            tls,
            http,
            alt_svc,
            handshake_timeout: config.header_read_timeout,
        })
    }
}

/// A bound TCP listener ready to serve; built before any traffic so that a port
/// in use is a startup error, not a log line.
pub struct TcpServer {
    pub config: Listener,
    pub socket: TcpListener,
    settings: Arc<ArcSwap<ConnSettings>>,
}

impl TcpServer {
    pub async fn bind(config: Listener) -> std::io::Result<Self> {
        let socket = TcpListener::bind(config.addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("listener {}: cannot bind {}: {e}", config.name, config.addr),
            )
        })?;
        let settings = ConnSettings::build(&config, socket.local_addr()?.port())?;
        Ok(Self {
            config,
            socket,
            settings: Arc::new(ArcSwap::from_pointee(settings)),
        })
    }

    /// Where a reload puts this listener's next [`ConnSettings`].
    pub fn settings(&self) -> Arc<ArcSwap<ConnSettings>> {
        self.settings.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.socket.local_addr()
    }

    /// Accepts until `stop` turns true, then lets open connections finish their
    /// in-flight requests (HTTP/1.1 closes after the current response, HTTP/2 sends GOAWAY).
    pub async fn serve(self, node: Arc<Node>, mut stop: watch::Receiver<bool>) {
        let graceful = GracefulShutdown::new();
        let name: Arc<str> = Arc::from(self.config.name.as_str());
        let scheme = if self.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        loop {
            let accepted = tokio::select! {
                a = self.socket.accept() => a,
                _ = stop.wait_for(|s| *s) => break,
            };
            let (stream, client) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a transient network error: back off, keep serving.
                    tracing::warn!(listener = %name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let conn = ConnInfo {
                client,
                scheme,
                listener: name.clone(),
            };
            let settings = self.settings.load_full();
            let node = node.clone();
            let alt_svc = settings.alt_svc.clone();
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let node = node.clone();
                let conn = conn.clone();
                let alt_svc = alt_svc.clone();
                async move {
                    let mut resp = session::handle(&node, req.map(body::boxed), &conn).await;
                    if let Some(v) = alt_svc {
                        // Ours replaces any upstream's: it describes this hop, not theirs.
                        resp.headers_mut().insert(http::header::ALT_SVC, v);
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let http = &settings.http;
                let result = match &settings.tls {
                    None => {
                        let conn = http.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(conn).await
                    }
                    Some(acceptor) => {
                        let handshake = acceptor.accept(stream);
                        let stream =
                            match tokio::time::timeout(settings.handshake_timeout, handshake).await
                            {
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
                        let conn = http.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(conn).await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%client, error = %e, "connection ended with an error");
                }
            });
        }
        drop(self.socket);
        graceful.shutdown().await;
    }
}
