//! The upstream client's connector: hyper-util's `HttpConnector` under the
//! upstream's [`Breaker`]. A connection being opened holds a
//! `max-pending-requests` slot (a request waits for it), an open one a
//! `max-connections` slot until it closes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::breaker::{Breaker, Limit, Overflow, Permit};
use crate::body::BoxError;

#[derive(Clone)]
pub struct Connector {
    http: HttpConnector,
    breaker: Arc<Breaker>,
}

impl Connector {
    pub fn new(http: HttpConnector, breaker: Arc<Breaker>) -> Self {
        Self { http, breaker }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<Counted, BoxError>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = Counted;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let breaker = self.breaker.clone();
        let mut http = self.http.clone();
        Box::pin(async move {
            let Some(connection) = breaker.acquire(Limit::Connections) else {
                return Err(Box::new(Overflow(Limit::Connections)) as BoxError);
            };
            let Some(_pending) = breaker.acquire(Limit::Pending) else {
                return Err(Box::new(Overflow(Limit::Pending)) as BoxError);
            };
            let io = http.call(uri).await.map_err(BoxError::from)?;
            Ok(Counted {
                io,
                _slot: connection,
            })
        })
    }
}

pin_project_lite::pin_project! {
    /// A TCP connection that holds its `max-connections` slot until dropped.
    pub struct Counted {
        #[pin]
        io: TokioIo<TcpStream>,
        _slot: Permit,
    }
}

impl Connection for Counted {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl hyper::rt::Read for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }
}
