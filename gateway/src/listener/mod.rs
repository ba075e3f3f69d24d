//! Accept loops. Each protocol adapter turns its connections' requests into
//! `http::Request<Body>` and hands them to the one [`session::handle`].

pub mod conn;
mod first_line;
mod h3body;
mod h3quic;
pub mod quic;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use arc_swap::ArcSwap;

use crate::config::{Listener, Protocols};
use crate::node::Node;
use conn::{LogLimit, Timeouts};

/// How long a stopped listener's HTTP/1.1 connections keep answering (each
/// response with `Connection: close`) before idle ones are closed.
pub const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// ALPN we offer on TLS, in preference order.
pub const ALPN_H2_H1: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The HTTP version one TCP connection is served with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Serve {
    /// Either, told apart by the HTTP/2 preface: plaintext listeners with h1 and h2.
    Sniff,
    Http1,
    Http2,
}

/// A plaintext connection may speak only what its listener lists; h2c by
/// prior knowledge is the only HTTP/2 a plaintext listener sees.
fn plaintext_serve(protocols: Protocols) -> Option<Serve> {
    match (protocols.h1, protocols.h2) {
        (true, true) => Some(Serve::Sniff),
        (true, false) => Some(Serve::Http1),
        (false, true) => Some(Serve::Http2),
        (false, false) => None,
    }
}

/// A TLS connection speaks what ALPN chose and nothing else (RFC 7301 §3.2):
/// sniffing would let a client that agreed on http/1.1 start HTTP/2, or one
/// that agreed on h2 fall back to HTTP/1.1. A client that negotiated nothing
/// gets HTTP/1.1, since HTTP/2 over TLS requires ALPN (RFC 9113 §3.3); `None`
/// means the connection has no protocol in common with the listener.
fn tls_serve(alpn: Option<&[u8]>, protocols: Protocols) -> Option<Serve> {
    match alpn {
        Some(b"h2") if protocols.h2 => Some(Serve::Http2),
        Some(b"http/1.1") | None if protocols.h1 => Some(Serve::Http1),
        _ => None,
    }
}

/// One connection builder per way of serving, all with the listener's limits.
struct HttpBuilders {
    sniff: auto::Builder<TokioExecutor>,
    /// hyper's own: the auto builder's upgrade support ignores `http1_only`
    /// and would sniff (and serve) HTTP/2 on an h1-only connection.
    http1: hyper::server::conn::http1::Builder,
    http2: auto::Builder<TokioExecutor>,
}

impl HttpBuilders {
    fn new(config: &Listener) -> Self {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(config.max_header_size)
            // The byte limit is the one that matters; hyper's default of 100
            // fields would answer 431 to a small head with many short fields.
            .max_headers((config.max_header_size / 64).max(100))
            .keep_alive(config.keep_alive);
        http.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.max_concurrent_streams)
            .max_header_list_size(u32::try_from(config.max_header_size).unwrap_or(u32::MAX))
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20))
            // Prompt rapid reset: streams reset before we accept them.
            .max_pending_accept_reset_streams(Some(20))
            .max_local_error_reset_streams(Some(256))
            // WebSocket over HTTP/2 (RFC 8441).
            .enable_connect_protocol();
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(config.max_header_size)
            .max_headers((config.max_header_size / 64).max(100))
            .keep_alive(config.keep_alive);
        Self {
            http1,
            http2: http.clone().http2_only(),
            sniff: http,
        }
    }
}

/// Serves one connection's `$io` as `$serve` says, under [`conn::drive`].
macro_rules! serve_io {
    ($http:expr, $serve:expr, $io:expr, $service:expr, $guard:expr, $timeouts:expr, $deadline:expr, $stop:expr) => {
        match $serve {
            Serve::Sniff => {
                let c = $http.sniff.serve_connection_with_upgrades($io, $service);
                conn::drive(
                    c,
                    |c| c.graceful_shutdown(),
                    $guard,
                    $timeouts,
                    $deadline,
                    $stop,
                )
                .await
            }
            Serve::Http1 => {
                let c = $http.http1.serve_connection($io, $service).with_upgrades();
                conn::drive(
                    c,
                    |c| c.graceful_shutdown(),
                    $guard,
                    $timeouts,
                    $deadline,
                    $stop,
                )
                .await
                .map_err(Into::into)
            }
            Serve::Http2 => {
                let c = $http.http2.serve_connection($io, $service);
                conn::drive(
                    c,
                    |c| c.graceful_shutdown(),
                    $guard,
                    $timeouts,
                    $deadline,
                    $stop,
                )
                .await
            }
        }
    };
}

// After `serve_io!`, which it uses.
mod accept;

/// How a TCP listener serves its connections: rebuilt from each generation's
/// listener config and swapped in, so new connections (and new TLS handshakes,
/// with new certificates) follow a reload while open ones keep theirs.
pub struct ConnSettings {
    tls: Option<TlsAcceptor>,
    http: HttpBuilders,
    protocols: Protocols,
    /// Set on TLS listeners that also serve h3, so HTTP/1.1 and HTTP/2 clients learn of it.
    alt_svc: Option<http::HeaderValue>,
    timeouts: Timeouts,
    trust_request_id: bool,
    max_connections: usize,
    max_connections_per_ip: usize,
    /// A longer first request line gets 414: the head limit.
    max_request_line: usize,
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
        let http = HttpBuilders::new(config);
        let alt_svc = match (&config.quic, &tls) {
            (Some(q), Some(_)) => Some(quic::alt_svc(port, q.alt_svc_max_age)),
            _ => None,
        };
        Ok(Self {
            tls,
            http,
            protocols: config.protocols,
            alt_svc,
            trust_request_id: config.trust_request_id,
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            max_request_line: config.max_header_size,
            timeouts: Timeouts {
                first_request: config.header_read_timeout,
                idle: config.idle_timeout,
                send: config.send_timeout,
            },
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
        Self::with_socket(config, socket)
    }

    /// Serves a listening socket another process handed over (a binary
    /// upgrade): the same socket, so connections in its accept queue stay.
    pub fn adopt(config: Listener, socket: std::net::TcpListener) -> std::io::Result<Self> {
        socket.set_nonblocking(true)?;
        let socket = TcpListener::from_std(socket).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "listener {}: cannot adopt the handed socket: {e}",
                    config.name
                ),
            )
        })?;
        Self::with_socket(config, socket)
    }

    fn with_socket(config: Listener, socket: TcpListener) -> std::io::Result<Self> {
        let settings = ConnSettings::build(&config, socket.local_addr()?.port())?;
        Ok(Self {
            config,
            socket,
            settings: Arc::new(ArcSwap::from_pointee(settings)),
        })
    }

    /// A second descriptor of the listening socket, to hand to a new process.
    pub fn dup_fd(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        std::os::fd::AsFd::as_fd(&self.socket).try_clone_to_owned()
    }

    /// Where a reload puts this listener's next [`ConnSettings`].
    pub fn settings(&self) -> Arc<ArcSwap<ConnSettings>> {
        self.settings.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.socket.local_addr()
    }

    /// Accepts until `stop` turns true, then lets open connections finish their
    /// in-flight requests. For [`CLOSE_LINGER`] HTTP/1.1 connections answer
    /// with `Connection: close` (a client never sees an idle connection close
    /// under a request it just sent), then HTTP/1.1 closes after the current
    /// response and HTTP/2 sends GOAWAY.
    ///
    /// With [`crate::workers`] running, every worker accepts on its own
    /// descriptor of the socket, registered with its own reactor: a
    /// connection, its requests and their upstream connections then stay on
    /// the thread that accepted it, with no cross-thread wakeup on the way.
    pub async fn serve(self, node: Arc<Node>, stop: watch::Receiver<bool>) {
        let (alive, mut drained) = mpsc::channel::<()>(1);
        let (close_conns, conns_stop) = watch::channel(false);
        let accepting = Arc::new(accept::Accepting {
            node,
            name: Arc::from(self.config.name.as_str()),
            scheme: if self.config.tls.is_some() {
                "https"
            } else {
                "http"
            },
            settings: self.settings.clone(),
            census: Arc::default(),
            alive,
            conns_stop,
        });
        let workers = crate::workers::handles();
        match self.socket.into_std() {
            Ok(socket) if !workers.is_empty() => {
                let mut loops = Vec::with_capacity(workers.len());
                for worker in workers {
                    let fd = match socket.try_clone() {
                        Ok(fd) => fd,
                        Err(e) => {
                            tracing::error!(listener = %accepting.name, error = %e, "cannot share the socket with a worker");
                            continue;
                        }
                    };
                    let accepting = accepting.clone();
                    let stop = stop.clone();
                    loops.push(worker.spawn(async move {
                        // Registers the descriptor with this worker's reactor.
                        match TcpListener::from_std(fd) {
                            Ok(l) => accept::run(l, &accepting, stop).await,
                            Err(e) => {
                                tracing::error!(listener = %accepting.name, error = %e, "a worker cannot serve the socket")
                            }
                        }
                    }));
                }
                for l in loops {
                    let _ = l.await;
                }
                drop(socket);
            }
            Ok(socket) => match TcpListener::from_std(socket) {
                Ok(l) => accept::run(l, &accepting, stop).await,
                Err(e) => {
                    tracing::error!(listener = %accepting.name, error = %e, "cannot serve the socket")
                }
            },
            Err(e) => {
                tracing::error!(listener = %accepting.name, error = %e, "cannot serve the socket")
            }
        }
        drop(accepting);
        // The linger ends early once every connection is gone.
        let _ = tokio::time::timeout(CLOSE_LINGER, drained.recv()).await;
        let _ = close_conns.send(true);
        // Every connection task holds a sender; `None` once the last has ended.
        let _ = drained.recv().await;
    }
}

/// Reads an HTTP/1 connection's first request line ([`first_line`]) before
/// hyper does; `None` when the connection is done (414 sent, or the client
/// left). HTTP/2-only connections pass untouched.
async fn first_request_line<S>(
    mut stream: S,
    serve: Serve,
    settings: &ConnSettings,
    deadline: tokio::time::Instant,
    downgraded: &std::sync::atomic::AtomicBool,
) -> Option<first_line::Replay<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if serve == Serve::Http2 {
        return Some(first_line::Replay::new(Vec::new(), stream));
    }
    match first_line::read(&mut stream, settings.max_request_line, deadline).await {
        first_line::FirstLine::Serve(prefix) => Some(first_line::Replay::new(prefix, stream)),
        first_line::FirstLine::Downgraded(prefix) => {
            downgraded.store(true, std::sync::atomic::Ordering::Relaxed);
            Some(first_line::Replay::new(prefix, stream))
        }
        first_line::FirstLine::Refused | first_line::FirstLine::Gone => None,
    }
}

/// An HTTP/1.0 request may come without `Host`; what we send on is HTTP/1.1,
/// which must carry one (RFC 9112 §3.2): the address the client connected to.
fn default_host<B>(req: &mut http::Request<B>, local: Option<std::net::SocketAddr>) {
    if req.version() > http::Version::HTTP_10
        || req.uri().authority().is_some()
        || req.headers().contains_key(http::header::HOST)
    {
        return;
    }
    if let Some(v) = local.and_then(|a| http::HeaderValue::from_str(&a.to_string()).ok()) {
        req.headers_mut().insert(http::header::HOST, v);
    }
}

/// Accept failures (out of descriptors, mostly) back off exponentially up to
/// a second instead of spinning, and log at most one line a second.
#[derive(Default)]
pub struct AcceptBackoff {
    delay: Duration,
}

static ACCEPT_LOG: LogLimit = LogLimit::new();

impl AcceptBackoff {
    pub fn reset(&mut self) {
        self.delay = Duration::ZERO;
    }

    pub async fn failed(&mut self, listener: &str, e: &std::io::Error) {
        if let Some(suppressed) = ACCEPT_LOG.allow() {
            tracing::warn!(%listener, error = %e, suppressed, "accept failed; backing off");
        }
        self.delay = (self.delay * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::time::sleep(self.delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Protocols = Protocols {
        h1: true,
        h2: true,
        h3: false,
    };
    const H1: Protocols = Protocols {
        h1: true,
        h2: false,
        h3: false,
    };
    const H2: Protocols = Protocols {
        h1: false,
        h2: true,
        h3: false,
    };

    #[test]
    fn tls_serves_exactly_what_alpn_chose() {
        assert_eq!(tls_serve(Some(b"h2"), BOTH), Some(Serve::Http2));
        assert_eq!(tls_serve(Some(b"http/1.1"), BOTH), Some(Serve::Http1));
        assert_eq!(tls_serve(None, BOTH), Some(Serve::Http1));
        assert_eq!(tls_serve(None, H2), None);
        assert_eq!(tls_serve(Some(b"h2"), H1), None);
        assert_eq!(tls_serve(Some(b"h3"), BOTH), None);
    }

    #[test]
    fn plaintext_serves_what_the_listener_lists() {
        assert_eq!(plaintext_serve(BOTH), Some(Serve::Sniff));
        assert_eq!(plaintext_serve(H1), Some(Serve::Http1));
        assert_eq!(plaintext_serve(H2), Some(Serve::Http2));
    }
}
