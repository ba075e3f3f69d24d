//! Real HTTP clients: hyper's pooled client for HTTP/1.1 and h2c, and a TLS
//! client that reports the ALPN protocol it negotiated.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as Pooled;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;

use crate::{Body, TestCert};

/// A response read to the end.
#[derive(Debug)]
pub struct Fetched {
    pub status: http::StatusCode,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Fetched {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

pub async fn read(resp: Response<Incoming>) -> Result<Fetched> {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .context("read response body")?
        .to_bytes();
    Ok(Fetched {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

/// hyper's pooled client over plain TCP.
#[derive(Clone)]
pub struct Client {
    inner: Pooled<HttpConnector, Body>,
}

impl Client {
    /// HTTP/1.1 with keep-alive.
    pub fn h1() -> Self {
        Self {
            inner: Pooled::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// HTTP/2 over cleartext with prior knowledge.
    pub fn h2c() -> Self {
        Self {
            inner: Pooled::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>> {
        Ok(self.inner.request(req).await?)
    }

    pub async fn fetch(&self, req: Request<Body>) -> Result<Fetched> {
        read(self.send(req).await?).await
    }

    pub async fn get(&self, url: &str) -> Result<Fetched> {
        self.fetch(Request::get(url).body(crate::empty())?).await
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Body>),
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

/// One TLS connection, speaking whatever ALPN chose.
pub struct TlsClient {
    pub alpn: Option<Vec<u8>>,
    /// The leaf certificate the server presented.
    pub peer_cert: Option<rustls_pki_types::CertificateDer<'static>>,
    sender: Sender,
}

impl TlsClient {
    /// Connects to `addr`, sending `server_name` as SNI and trusting only `cert`.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        cert: &TestCert,
        alpn: &[&[u8]],
    ) -> Result<Self> {
        let config = Arc::new(cert.client_config(alpn));
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = ServerName::try_from(server_name.to_owned())?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
        let peer_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.clone().into_owned());
        let io = TokioIo::new(tls);
        let sender = if alpn.as_deref() == Some(b"h2") {
            let (s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            Sender::H2(s)
        } else {
            let (s, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            Sender::H1(s)
        };
        Ok(Self {
            alpn,
            peer_cert,
            sender,
        })
    }

    /// True while the connection can take another request (it has not closed).
    pub fn is_open(&self) -> bool {
        match &self.sender {
            Sender::H1(s) => !s.is_closed(),
            Sender::H2(s) => !s.is_closed(),
        }
    }

    pub async fn send(&mut self, req: Request<Body>) -> Result<Response<Incoming>> {
        Ok(match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        })
    }

    pub async fn fetch(&mut self, req: Request<Body>) -> Result<Fetched> {
        read(self.send(req).await?).await
    }
}

/// Completes a TLS handshake with `addr` (SNI `server_name`, ALPN `h2`) accepting
/// any certificate, and returns the leaf certificate the server presented.
pub async fn tls_peer_cert(
    addr: SocketAddr,
    server_name: &str,
) -> Result<rustls_pki_types::CertificateDer<'static>> {
    let mut config = crate::h3client::insecure_tls();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS handshake with {addr}"))?;
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned())
        .context("the server presented no certificate")
}

/// One HTTP/2 cleartext (prior knowledge) connection, never silently replaced:
/// for tests that need to know the *same* connection kept working.
#[derive(Clone)]
pub struct H2cConn {
    sender: hyper::client::conn::http2::SendRequest<Body>,
}

impl H2cConn {
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        Ok(Self { sender })
    }

    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>> {
        let mut s = self.sender.clone();
        s.ready().await.context("the h2c connection is closed")?;
        Ok(s.send_request(req).await?)
    }

    pub async fn fetch(&self, req: Request<Body>) -> Result<Fetched> {
        read(self.send(req).await?).await
    }
}

/// Runs curl if it is installed; `None` when it is not. Async, so that upstreams
/// served by the test's own runtime keep answering while curl waits.
pub async fn curl(args: &[&str]) -> Option<std::process::Output> {
    tokio::process::Command::new("curl")
        .args(args)
        .output()
        .await
        .ok()
}

/// Writes `raw` bytes on a fresh TCP connection and returns everything the server
/// sends until it closes (or 5 s pass): for requests no well-behaved client sends.
pub async fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(raw).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}
