//! HTTP/3 message bodies: the receive side of a request stream as an
//! [`http_body::Body`], and a response body pumped frame by frame onto the send side.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http::{HeaderMap, HeaderName};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::{Body, BoxError};

use super::h3quic;

type RecvStream = RequestStream<h3quic::RecvStream, Bytes>;
type SendStream = RequestStream<h3quic::SendStream<Bytes>, Bytes>;

/// Why a request body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    #[error("HTTP/3 request body: {0}")]
    Stream(#[from] h3::error::StreamError),
    #[error("HTTP/3 request body exceeds the listener's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("HTTP/3 request body is longer than its content-length ({expected} bytes)")]
    LongerThanDeclared { expected: u64 },
}

enum State {
    Data,
    Trailers,
    Done,
}

type Polled = Option<Result<Frame<Bytes>, RecvError>>;

/// The request body as it arrives: DATA frames, then optional trailers.
pub struct RecvBody {
    stream: RecvStream,
    state: State,
    /// What the look-ahead in [`RecvBody::new`] read, handed out first.
    early: Option<Result<Frame<Bytes>, RecvError>>,
    received: u64,
    limit: Option<u64>,
    declared: Option<u64>,
    /// Set when the body outgrew `limit`, so the listener answers 413 whatever
    /// the upstream exchange made of the aborted body.
    exceeded: Arc<AtomicBool>,
}

impl RecvBody {
    /// `declared` is the request's content-length (RFC 9114 §4.1.2: a body that
    /// disagrees with it is malformed); `limit` the listener's max request body.
    pub fn new(
        stream: RecvStream,
        declared: Option<u64>,
        limit: Option<u64>,
        exceeded: Arc<AtomicBool>,
    ) -> Self {
        let mut body = Self {
            stream,
            state: State::Data,
            early: None,
            received: 0,
            limit,
            declared,
            exceeded,
        };
        body.look_ahead();
        body
    }

    /// Reads what has already arrived, without waiting. The FIN of a GET
    /// usually comes with its HEADERS, but h3 only notices it on the next read;
    /// without this the body would not report `is_end_stream` until polled,
    /// and the cache and the proxy's replay, which decide on it before
    /// polling, would treat every HTTP/3 request as one with a body.
    fn look_ahead(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(Some(polled)) = self.poll_body(&mut cx) {
            self.early = Some(polled);
        }
    }

    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Polled> {
        loop {
            match self.state {
                State::Data => match ready!(self.stream.poll_recv_data(cx)) {
                    Ok(Some(mut chunk)) => {
                        let bytes = chunk.copy_to_bytes(chunk.remaining());
                        self.received += bytes.len() as u64;
                        if let Some(limit) = self.limit.filter(|l| self.received > *l) {
                            self.exceeded.store(true, Ordering::Release);
                            return self.refuse(RecvError::TooLarge { limit });
                        }
                        if let Some(expected) = self.declared.filter(|d| self.received > *d) {
                            return self.refuse(RecvError::LongerThanDeclared { expected });
                        }
                        if bytes.is_empty() {
                            continue;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                    Ok(None) => self.state = State::Trailers,
                    Err(e) => {
                        self.state = State::Done;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                },
                State::Trailers => {
                    let trailers = ready!(self.stream.poll_recv_trailers(cx));
                    self.state = State::Done;
                    return match trailers {
                        Ok(Some(t)) => Poll::Ready(Some(Ok(Frame::trailers(t)))),
                        Ok(None) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(e.into()))),
                    };
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }

    fn refuse(&mut self, err: RecvError) -> Poll<Polled> {
        // Tell the client to stop sending; the body error ends the upstream exchange.
        self.stream
            .stop_sending(h3::error::Code::H3_REQUEST_CANCELLED);
        self.state = State::Done;
        Poll::Ready(Some(Err(err)))
    }
}

impl http_body::Body for RecvBody {
    type Data = Bytes;
    type Error = RecvError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RecvError>>> {
        let this = self.get_mut();
        if let Some(polled) = this.early.take() {
            return Poll::Ready(Some(polled));
        }
        this.poll_body(cx)
    }

    fn is_end_stream(&self) -> bool {
        // A declared empty body lets the proxy treat the request as replayable.
        self.early.is_none() && (matches!(self.state, State::Done) || self.declared == Some(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.declared {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// Fields that are connection-specific in HTTP/1.1 and malformed in HTTP/3 (RFC 9114 §4.2).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

pub fn strip_connection_specific(headers: &mut HeaderMap) {
    for name in CONNECTION_SPECIFIC {
        headers.remove(HeaderName::from_static(name));
    }
}

/// Why a response could not be delivered (the client went away, mostly).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("sending on the HTTP/3 stream: {0}")]
    Stream(#[from] h3::error::StreamError),
    #[error("response body from upstream failed: {0}")]
    Body(BoxError),
}

/// Sends the response head, then each body frame as it comes, then trailers or FIN.
pub async fn send_response(
    stream: &mut SendStream,
    resp: http::Response<Body>,
) -> Result<(), SendError> {
    let (mut parts, mut body) = resp.into_parts();
    strip_connection_specific(&mut parts.headers);
    let head = http::Response::from_parts(parts, ());
    stream.send_response(head).await?;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                // The client must not mistake a truncated body for a complete one.
                stream.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return Err(SendError::Body(e));
            }
        };
        match frame.into_data() {
            Ok(data) => {
                if !data.is_empty() {
                    stream.send_data(data).await?;
                }
            }
            Err(frame) => {
                if let Ok(mut trailers) = frame.into_trailers() {
                    strip_connection_specific(&mut trailers);
                    stream.send_trailers(trailers).await?;
                    // Trailers end the message; anything after them is ignored.
                    return Ok(stream.finish().await?);
                }
            }
        }
        if body.is_end_stream() {
            break;
        }
    }
    Ok(stream.finish().await?)
}
