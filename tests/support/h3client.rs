//! A small HTTP/3 client for the tests (quinn + h3). It accepts any server
//! certificate, because the gateway under test generates a self-signed one at start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

type SendRequest = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// A finished HTTP/3 exchange.
#[derive(Debug)]
pub struct H3Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl H3Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| format!("not JSON: {}", self.text()))
    }
}

/// One QUIC connection carrying HTTP/3; cheap to clone, requests run concurrently.
#[derive(Clone)]
pub struct H3Client {
    send: SendRequest,
    /// Held so the endpoint (and its socket) lives as long as any clone.
    _endpoint: quinn::Endpoint,
    authority: String,
    /// Resolves with the reason once the connection has closed.
    closed: Arc<tokio::sync::watch::Receiver<Option<String>>>,
    /// The leaf certificate the server presented.
    peer_cert: Option<CertificateDer<'static>>,
}

/// Verifies signatures (so the handshake is real) but trusts any certificate.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A rustls client config offering ALPN `h3` and trusting any certificate.
pub fn insecure_tls() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    tls
}

/// A QUIC client config over `tls` (ALPN set to `h3`, early data enabled).
pub fn client_config(mut tls: rustls::ClientConfig) -> anyhow::Result<quinn::ClientConfig> {
    tls.alpn_protocols = vec![b"h3".to_vec()];
    tls.enable_early_data = true;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .stream_receive_window((4u32 << 20).into())
        .receive_window((32u32 << 20).into())
        .max_idle_timeout(Some(Duration::from_secs(30).try_into()?));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

fn client_endpoint(
    addr: SocketAddr,
    config: &quinn::ClientConfig,
) -> anyhow::Result<quinn::Endpoint> {
    let bind: SocketAddr = if addr.is_ipv6() {
        "[::1]:0".parse()?
    } else {
        "127.0.0.1:0".parse()?
    };
    let mut endpoint = quinn::Endpoint::client(bind)?;
    endpoint.set_default_client_config(config.clone());
    Ok(endpoint)
}

impl H3Client {
    /// Connects to `addr` (UDP) presenting SNI `localhost`.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        Self::connect_with(addr, "localhost").await
    }

    pub async fn connect_with(addr: SocketAddr, server_name: &str) -> anyhow::Result<Self> {
        Self::connect_tls(addr, server_name, insecure_tls()).await
    }

    /// Connects with the caller's TLS settings (e.g. trusting one test certificate);
    /// ALPN is set to `h3`.
    pub async fn connect_tls(
        addr: SocketAddr,
        server_name: &str,
        tls: rustls::ClientConfig,
    ) -> anyhow::Result<Self> {
        Self::connect_config(addr, server_name, &client_config(tls)?).await
    }

    /// Connects with a prepared config; connections made with clones of one config
    /// share its TLS session cache, so a later one can resume (and send 0-RTT).
    pub async fn connect_config(
        addr: SocketAddr,
        server_name: &str,
        config: &quinn::ClientConfig,
    ) -> anyhow::Result<Self> {
        let endpoint = client_endpoint(addr, config)?;
        let conn = endpoint
            .connect(addr, server_name)?
            .await
            .with_context(|| format!("QUIC handshake with {addr}"))?;
        Self::over(conn, endpoint, server_name, addr.port()).await
    }

    /// Starts a resumed connection and returns at once with 0-RTT keys, before the
    /// handshake completes; `None` when the server's ticket allows no early data.
    /// Requests sent before `accepted` resolves travel as 0-RTT data.
    pub async fn connect_early(
        addr: SocketAddr,
        server_name: &str,
        config: &quinn::ClientConfig,
    ) -> anyhow::Result<Option<(Self, quinn::ZeroRttAccepted)>> {
        let endpoint = client_endpoint(addr, config)?;
        let connecting = endpoint.connect(addr, server_name)?;
        match connecting.into_0rtt() {
            Ok((conn, accepted)) => {
                let client = Self::over(conn, endpoint, server_name, addr.port()).await?;
                Ok(Some((client, accepted)))
            }
            Err(_) => Ok(None),
        }
    }

    async fn over(
        conn: quinn::Connection,
        endpoint: quinn::Endpoint,
        server_name: &str,
        port: u16,
    ) -> anyhow::Result<Self> {
        let peer_cert = conn
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .and_then(|chain| chain.into_iter().next());
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
        let (closed_tx, closed_rx) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            let e = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
            let _ = closed_tx.send(Some(e.to_string()));
        });
        Ok(Self {
            send,
            _endpoint: endpoint,
            authority: format!("{server_name}:{port}"),
            closed: Arc::new(closed_rx),
            peer_cert,
        })
    }

    /// The leaf certificate the server presented (known once the handshake is
    /// complete; `None` for a 0-RTT connection made with [`H3Client::connect_early`]).
    pub fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.peer_cert.as_ref()
    }

    /// `https://localhost:<port><path>`, the form h3 requests carry.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.authority)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<H3Response> {
        let req = Request::get(self.url(path)).body(())?;
        self.send(req, Vec::<Bytes>::new(), None).await
    }

    /// Sends `req` with its body as `chunks` (produced lazily, so a large body is
    /// never held whole) and optional request trailers; reads the whole response.
    pub async fn send<I>(
        &self,
        req: Request<()>,
        chunks: I,
        trailers: Option<HeaderMap>,
    ) -> anyhow::Result<H3Response>
    where
        I: IntoIterator<Item = Bytes>,
    {
        let mut send = self.send.clone();
        let stream = send.send_request(req).await.context("send request head")?;
        let (mut tx, mut rx) = stream.split();
        // Send and receive concurrently: the gateway may answer before the body ends.
        let sending = async move {
            let mut body_sent = false;
            for chunk in chunks {
                body_sent |= !chunk.is_empty();
                tx.send_data(chunk).await.context("send body")?;
            }
            if let Some(t) = trailers {
                body_sent = true;
                tx.send_trailers(t).await.context("send trailers")?;
            }
            // With nothing left to send but the FIN, a server that has answered
            // may stop the stream with H3_NO_ERROR first (RFC 9114 §4.1): that
            // loses nothing.
            if let Err(e) = tx.finish().await
                && body_sent
            {
                return Err(anyhow::Error::new(e).context("finish request"));
            }
            anyhow::Ok(())
        };
        let receiving = async move {
            let head = rx.recv_response().await.context("receive response head")?;
            let mut body = BytesMut::new();
            while let Some(mut chunk) = rx.recv_data().await.context("receive body")? {
                while chunk.has_remaining() {
                    let part = chunk.chunk();
                    body.extend_from_slice(part);
                    let n = part.len();
                    chunk.advance(n);
                }
            }
            let trailers = rx.recv_trailers().await.context("receive trailers")?;
            let (parts, ()) = head.into_parts();
            anyhow::Ok(H3Response {
                status: parts.status,
                headers: parts.headers,
                body: body.freeze(),
                trailers,
            })
        };
        let (sent, received) = tokio::join!(sending, receiving);
        let resp = received?;
        // A server may stop reading a body it refuses (413); the response still counts.
        if let Err(e) = sent
            && resp.status.is_success()
        {
            bail!("request body not delivered but got {}: {e:#}", resp.status);
        }
        Ok(resp)
    }

    /// Waits until the connection is closed and returns the reason.
    pub async fn closed(&self) -> String {
        let mut rx = (*self.closed).clone();
        match rx.wait_for(|c| c.is_some()).await {
            Ok(v) => v.clone().unwrap_or_default(),
            Err(_) => "driver gone".into(),
        }
    }
}
