//! Upgrade tunnelling: WebSocket and any other `Upgrade` over HTTP/1.1
//! (RFC 9110 §7.8, RFC 6455), and WebSocket over HTTP/2 by extended CONNECT
//! (RFC 8441), which becomes an HTTP/1.1 upgrade towards the upstream.
//!
//! The request goes through routing, filters and the router like any other;
//! only its `Upgrade`/`Connection` fields cross the hop. When the upstream
//! answers 101 the two connections are joined by a byte tunnel that closes
//! after [`IDLE`] without traffic in either direction.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode, Version, request};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A tunnel with no byte in either direction for this long is closed.
pub const IDLE: Duration = Duration::from_secs(300);

/// Kept by the listener in [`super::ConnInfo`]: called when a tunnel
/// starts, it returns a token that keeps the client's connection counted as
/// busy (not idle) until the token is dropped with the tunnel.
#[derive(Clone)]
pub struct ConnHold(pub Arc<dyn Fn() -> Box<dyn Send> + Send + Sync>);

impl std::fmt::Debug for ConnHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnHold")
    }
}

/// An upgrade the client asked for, waiting for the upstream's answer.
pub struct Pending {
    protocol: HeaderValue,
    /// Extended CONNECT: the client expects 200, not 101.
    h2: bool,
    client: OnUpgrade,
    hold: Option<ConnHold>,
}

fn connection_has_upgrade(parts: &request::Parts) -> bool {
    parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Takes the client's upgrade out of `parts` (call before hop-by-hop fields
/// are stripped); an extended CONNECT is rewritten to an HTTP/1.1 WebSocket
/// handshake for the upstream.
pub fn take(parts: &mut request::Parts, hold: Option<&ConnHold>) -> Option<Pending> {
    if parts.version == Version::HTTP_11 && parts.method == Method::GET {
        let protocol = parts.headers.get(header::UPGRADE)?.clone();
        if !connection_has_upgrade(parts) {
            return None;
        }
        let client = parts.extensions.remove::<OnUpgrade>()?;
        return Some(Pending {
            protocol,
            h2: false,
            client,
            hold: hold.cloned(),
        });
    }
    if parts.version == Version::HTTP_2 && parts.method == Method::CONNECT {
        let proto = parts.extensions.get::<hyper::ext::Protocol>()?;
        if !proto.as_str().eq_ignore_ascii_case("websocket") {
            return None;
        }
        let protocol = HeaderValue::from_static("websocket");
        let client = parts.extensions.remove::<OnUpgrade>()?;
        parts.method = Method::GET;
        // RFC 8441 §5: the key belongs to the HTTP/1.1 handshake only.
        let key = super::request_id::random_key();
        parts
            .headers
            .insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_str(&key).ok()?);
        return Some(Pending {
            protocol,
            h2: true,
            client,
            hold: hold.cloned(),
        });
    }
    None
}

/// Puts the upgrade back on the upstream request's (stripped) fields.
pub fn restore(p: &Pending, headers: &mut http::HeaderMap) {
    headers.insert(header::UPGRADE, p.protocol.clone());
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
}

/// The upstream agreed (101): turns `resp` into the client's answer and
/// starts the tunnel once both sides have switched.
pub fn switched<B>(
    p: Pending,
    upstream_protocol: Option<HeaderValue>,
    upstream: OnUpgrade,
    resp: &mut Response<B>,
    counter: prometheus_client::metrics::counter::Counter,
) {
    if p.h2 {
        *resp.status_mut() = StatusCode::OK;
        resp.headers_mut().remove(header::SEC_WEBSOCKET_ACCEPT);
    } else {
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::UPGRADE, upstream_protocol.unwrap_or(p.protocol));
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    counter.inc();
    let hold = p.hold.as_ref().map(|h| (h.0)());
    tokio::spawn(async move {
        let _hold = hold;
        let (client, upstream) = tokio::join!(p.client, upstream);
        let (Ok(client), Ok(upstream)) = (client, upstream) else {
            tracing::debug!("an upgrade did not complete on both sides");
            return;
        };
        tunnel(TokioIo::new(client), TokioIo::new(upstream)).await;
    });
}

async fn tunnel<A, B>(a: A, b: B)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let born = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Active {
        inner: a,
        born,
        last: last.clone(),
    };
    let mut b = Active {
        inner: b,
        born,
        last: last.clone(),
    };
    let idle = async {
        loop {
            let seen = Duration::from_millis(last.load(Ordering::Relaxed));
            let due = born + seen + IDLE;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due.into()).await;
        }
    };
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut a, &mut b) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "tunnel ended with an error");
            }
        }
        () = idle => tracing::debug!("tunnel idle; closing it"),
    }
}

/// Notes the time of every read, for the tunnel's idle timer.
struct Active<S> {
    inner: S,
    born: Instant,
    last: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Active<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if r.is_ready() {
            let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last.store(ms, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Active<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
