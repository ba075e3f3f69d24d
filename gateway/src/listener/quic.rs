//! HTTP/3 over QUIC: a quinn endpoint on the TLS listener's address (UDP), its
//! certificates, and every request handed to the one [`session::handle`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h3::server::RequestResolver;
use http::{HeaderValue, Method, Response, StatusCode, header};
use quinn::crypto::rustls::QuicServerConfig;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::h3body::{self, RecvBody};
use super::h3quic;
use super::tls;
use crate::body;
use crate::config::{Listener, Quic};
use crate::node::Node;
use crate::session::{self, ConnInfo};

/// ALPN token of HTTP/3 (RFC 9114 §3.1).
pub const ALPN_H3: &[u8] = b"h3";

/// How long a drained connection waits for the client to close it before the
/// server does; the client needs about one round trip to acknowledge the last data.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

type H3Conn = h3::server::Connection<h3quic::Connection, Bytes>;

#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    #[error("listener {name}: h3 needs TLS certificates")]
    NoTls { name: String },
    #[error("listener {name}: TLS for QUIC: {source}")]
    Tls {
        name: String,
        #[source]
        source: rustls::Error,
    },
    #[error("listener {name}: TLS for QUIC: {source}")]
    Crypto {
        name: String,
        #[source]
        source: quinn::crypto::rustls::NoInitialCipherSuite,
    },
    #[error("listener {name}: cannot bind {addr}/udp: {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl From<QuicError> for std::io::Error {
    fn from(e: QuicError) -> Self {
        let kind = match &e {
            QuicError::Bind { source, .. } => source.kind(),
            _ => std::io::ErrorKind::InvalidInput,
        };
        std::io::Error::new(kind, e.to_string())
    }
}

/// A bound QUIC endpoint ready to serve HTTP/3.
pub struct QuicServer {
    pub config: Listener,
    settings: Quic,
    endpoint: quinn::Endpoint,
    /// The endpoint's socket, kept to be handed over.
    socket: std::net::UdpSocket,
}

impl QuicServer {
    /// Binds `addr` (UDP): the TLS listener's bound address, so `Alt-Svc` can name its port.
    pub fn bind(config: Listener, addr: SocketAddr) -> Result<Self, QuicError> {
        let socket = std::net::UdpSocket::bind(addr).map_err(|source| QuicError::Bind {
            name: config.name.clone(),
            addr,
            source,
        })?;
        Self::adopt(config, socket)
    }

    /// Serves HTTP/3 on a bound UDP socket: one of ours, or one another
    /// process handed over (a binary upgrade). Reading starts here, and two
    /// processes must never read one QUIC socket at once: a datagram goes to
    /// whichever reads first, and only the owner of its connection can use it.
    pub fn adopt(config: Listener, socket: std::net::UdpSocket) -> Result<Self, QuicError> {
        let (server, settings) = server_config(&config)?;
        let bind_error = |source| QuicError::Bind {
            name: config.name.clone(),
            addr: socket.local_addr().unwrap_or(config.addr),
            source,
        };
        let runtime = quinn::default_runtime()
            .ok_or_else(|| bind_error(std::io::Error::other("no async runtime")))?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket.try_clone().map_err(bind_error)?,
            runtime,
        )
        .map_err(bind_error)?;
        Ok(Self {
            config,
            settings,
            endpoint,
            socket,
        })
    }

    /// A second descriptor of the UDP socket, to hand to a new process.
    pub fn dup_fd(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        std::os::fd::AsFd::as_fd(&self.socket).try_clone_to_owned()
    }

    /// The endpoint, whose server config a reload replaces.
    pub fn endpoint(&self) -> quinn::Endpoint {
        self.endpoint.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Accepts until `stop` turns true; then every connection sends GOAWAY,
    /// finishes the requests it already accepted, and closes.
    pub async fn serve(self, node: Arc<Node>, mut stop: watch::Receiver<bool>) {
        let name: Arc<str> = Arc::from(self.config.name.as_str());
        let settings = Arc::new(self.settings);
        let mut conns = JoinSet::new();
        loop {
            let incoming = tokio::select! {
                i = self.endpoint.accept() => i,
                _ = stop.wait_for(|s| *s) => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            };
            let Some(incoming) = incoming else { break };
            if settings.retry && !incoming.remote_address_validated() {
                // The client proves it owns its source address by echoing the token.
                if let Err(e) = incoming.retry() {
                    tracing::debug!(error = %e, "QUIC retry impossible");
                }
                continue;
            }
            let conn = ConnTask {
                node: node.clone(),
                settings: settings.clone(),
                listener: name.clone(),
                stop: stop.clone(),
                trust_request_id: self.config.trust_request_id,
            };
            conns.spawn(conn.run(incoming));
        }
        // New handshakes are refused from here on; open connections drain.
        self.endpoint.set_server_config(None);
        while conns.join_next().await.is_some() {}
        let _ = tokio::time::timeout(CLOSE_LINGER, self.endpoint.wait_idle()).await;
    }
}

/// The QUIC server config of `config` (certificates, transport limits): at
/// bind, and on reload for handshakes from then on.
pub fn server_config(config: &Listener) -> Result<(quinn::ServerConfig, Quic), QuicError> {
    let name = config.name.clone();
    let certs = config
        .tls
        .as_deref()
        .ok_or_else(|| QuicError::NoTls { name: name.clone() })?;
    let settings = config.quic.clone().unwrap_or_else(|| Quic {
        max_concurrent_streams: 100,
        idle_timeout: Duration::from_secs(30),
        max_field_section_size: config.max_header_size as u64,
        max_request_body: None,
        retry: false,
        zero_rtt: false,
        alt_svc_max_age: Duration::from_secs(86400),
    });
    let mut tls = tls::server_config(certs, &[ALPN_H3]).map_err(|source| QuicError::Tls {
        name: name.clone(),
        source,
    })?;
    // QUIC allows only 0 or u32::MAX here (RFC 9001 §4.6.1); 0 refuses early data.
    tls.max_early_data_size = if settings.zero_rtt { u32::MAX } else { 0 };
    let crypto = QuicServerConfig::try_from(tls).map_err(|source| QuicError::Crypto {
        name: name.clone(),
        source,
    })?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(settings.max_concurrent_streams.into())
        // Clients open control and QPACK streams; servers push nothing else.
        .max_concurrent_uni_streams(8u32.into())
        .max_idle_timeout(quinn::IdleTimeout::try_from(settings.idle_timeout).ok())
        // Large windows let one stream reach full speed on a fat pipe.
        .stream_receive_window((2u32 << 20).into())
        .receive_window((16u32 << 20).into())
        .send_window(16 << 20);
    server.transport_config(Arc::new(transport));
    Ok((server, settings))
}

/// One QUIC connection's HTTP/3 session.
struct ConnTask {
    node: Arc<Node>,
    settings: Arc<Quic>,
    listener: Arc<str>,
    stop: watch::Receiver<bool>,
    trust_request_id: bool,
}

impl ConnTask {
    async fn run(mut self, incoming: quinn::Incoming) {
        let client = incoming.remote_address();
        let connecting = match incoming.accept() {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(%client, error = %e, "QUIC connection refused");
                return;
            }
        };
        // `confirmed` turns true once the handshake completes; a request read before
        // that arrived as 0-RTT data, which an attacker may have replayed.
        let confirmed = Arc::new(AtomicBool::new(true));
        let quic = if self.settings.zero_rtt {
            match connecting.into_0rtt() {
                Ok((conn, accepted)) => {
                    confirmed.store(false, Ordering::Release);
                    let flag = confirmed.clone();
                    tokio::spawn(async move {
                        accepted.await;
                        flag.store(true, Ordering::Release);
                    });
                    conn
                }
                Err(connecting) => match connecting.await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(%client, error = %e, "QUIC handshake failed");
                        return;
                    }
                },
            }
        } else {
            match connecting.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(%client, error = %e, "QUIC handshake failed");
                    return;
                }
            }
        };
        let built = h3::server::builder()
            .max_field_section_size(self.settings.max_field_section_size)
            // Grease would follow trailers on the stream; some clients choke on that.
            .send_grease(false)
            .build(h3quic::Connection::new(quic.clone()))
            .await;
        let mut h3: H3Conn = match built {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(%client, error = %e, "HTTP/3 session setup failed");
                return;
            }
        };
        let info = ConnInfo {
            client,
            scheme: "https",
            listener: self.listener.clone(),
            trust_request_id: self.trust_request_id,
            hold: None,
        };
        let mut requests = JoinSet::new();
        let mut draining = *self.stop.borrow();
        if draining {
            let _ = h3.shutdown(0).await;
        }
        loop {
            let accepted = tokio::select! {
                a = h3.accept() => Some(a),
                r = self.stop.wait_for(|s| *s), if !draining => {
                    drop(r);
                    draining = true;
                    None
                }
                Some(_) = requests.join_next(), if !requests.is_empty() => continue,
                _ = std::future::ready(()), if draining && requests.is_empty() => break,
            };
            let Some(accepted) = accepted else {
                // GOAWAY: requests already accepted finish, later ones are refused
                // with H3_REQUEST_REJECTED so the client may retry them elsewhere.
                let _ = h3.shutdown(0).await;
                continue;
            };
            match accepted {
                Ok(Some(resolver)) => {
                    let req = Request {
                        node: self.node.clone(),
                        settings: self.settings.clone(),
                        info: info.clone(),
                        confirmed: confirmed.clone(),
                    };
                    requests.spawn(req.serve(resolver));
                }
                Ok(None) => break,
                Err(e) => {
                    if !e.is_h3_no_error() {
                        tracing::debug!(%client, error = %e, "HTTP/3 connection ended");
                    }
                    break;
                }
            }
        }
        while requests.join_next().await.is_some() {}
        if draining {
            // Give the client a moment to read the last bytes and close first.
            let _ = tokio::time::timeout(CLOSE_LINGER, quic.closed()).await;
        }
        drop(h3);
    }
}

/// One request stream.
struct Request {
    node: Arc<Node>,
    settings: Arc<Quic>,
    info: ConnInfo,
    confirmed: Arc<AtomicBool>,
}

impl Request {
    async fn serve(self, resolver: RequestResolver<h3quic::Connection, Bytes>) {
        let client = self.info.client;
        let (req, stream) = match resolver.resolve_request().await {
            Ok(r) => r,
            Err(e) => {
                // h3 has already answered 431 or reset the stream as RFC 9114 requires.
                tracing::debug!(%client, error = %e, "HTTP/3 request refused");
                return;
            }
        };
        let (mut send, recv) = stream.split();
        // 1xx interim responses from upstream go out while the final one is
        // awaited (RFC 9110 §15.2), never after it.
        let (interim, mut interims) = session::interim::Interim::channel();
        let respond = self.respond(req, recv, interim);
        tokio::pin!(respond);
        let resp = loop {
            tokio::select! {
                resp = &mut respond => break resp,
                Some(i) = interims.recv() => {
                    if let Err(e) = send.send_response(i).await {
                        tracing::debug!(%client, error = %e, "HTTP/3 interim response not delivered");
                    }
                }
            }
        };
        drop(interims);
        if let Err(e) = h3body::send_response(&mut send, resp).await {
            tracing::debug!(%client, error = %e, "HTTP/3 response not delivered");
        }
    }

    async fn respond(
        &self,
        req: http::Request<()>,
        recv: h3::server::RequestStream<h3quic::RecvStream, Bytes>,
        interim: session::interim::Interim,
    ) -> Response<body::Body> {
        let early = !self.confirmed.load(Ordering::Acquire);
        if early && !is_safe(req.method()) {
            // RFC 8470 §5.2: the client retries after the handshake completes.
            return plain(StatusCode::TOO_EARLY, "request sent in 0-RTT data; retry\n");
        }
        let declared = match content_length(req.headers()) {
            Ok(n) => n,
            Err(()) => return plain(StatusCode::BAD_REQUEST, "malformed content-length\n"),
        };
        if let (Some(n), Some(limit)) = (declared, self.settings.max_request_body)
            && n > limit
        {
            return too_large();
        }
        let (mut parts, ()) = req.into_parts();
        if early {
            // RFC 8470 §5.1: tell the upstream this request may be a replay.
            parts
                .headers
                .insert("early-data", HeaderValue::from_static("1"));
        }
        let exceeded = Arc::new(AtomicBool::new(false));
        let body = RecvBody::new(
            recv,
            declared,
            self.settings.max_request_body,
            exceeded.clone(),
        );
        parts.extensions.insert(interim);
        let req = http::Request::from_parts(parts, body::boxed(body));
        let resp = session::handle(&self.node, req, &self.info).await;
        if exceeded.load(Ordering::Acquire) {
            // The upstream saw a truncated body; whatever it or the proxy answered,
            // the client's fault is the size.
            return too_large();
        }
        resp
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

fn content_length(headers: &http::HeaderMap) -> Result<Option<u64>, ()> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let n = first
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or(())?;
    // Repeated values must agree (RFC 9110 §8.6).
    if values.any(|v| v != first) {
        return Err(());
    }
    Ok(Some(n))
}

fn too_large() -> Response<body::Body> {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body exceeds the limit\n",
    )
}

fn plain(status: StatusCode, text: &'static str) -> Response<body::Body> {
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `Alt-Svc` for the TCP side of a listener that also serves h3 on `port`.
pub fn alt_svc(port: u16, max_age: Duration) -> HeaderValue {
    HeaderValue::try_from(format!("h3=\":{port}\"; ma={}", max_age.as_secs()))
        .expect("digits and ASCII punctuation form a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alt_svc_names_the_port_and_age() {
        assert_eq!(
            alt_svc(8443, Duration::from_secs(86400)),
            "h3=\":8443\"; ma=86400"
        );
    }

    #[test]
    fn content_length_must_be_one_number() {
        let mut h = http::HeaderMap::new();
        assert_eq!(content_length(&h), Ok(None));
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert_eq!(content_length(&h), Ok(Some(12)));
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("13"));
        assert_eq!(content_length(&h), Err(()));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("-1"));
        assert_eq!(content_length(&h), Err(()));
    }

    #[test]
    fn only_safe_methods_may_be_early() {
        assert!(is_safe(&Method::GET));
        assert!(!is_safe(&Method::POST));
        assert!(!is_safe(&Method::PUT));
    }
}
