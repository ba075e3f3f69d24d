//! h3's QUIC transport traits over quinn, in place of h3-quinn's adapter.
//!
//! The difference is how a receive stream ends. quinn stops a receive stream
//! that is dropped before its end with code 0, which is not an HTTP/3 error
//! code (RFC 9114 §8.1), and h3 drops every request stream whose body nobody
//! read to the end (a GET answered from the cache, a 404, a 413). h3-quinn
//! cannot stop with a better code in time: its outstanding read owns the quinn
//! stream, and its `stop_sending` panics while a read is pending. Here a read
//! is issued afresh on every poll (quinn's `read_chunk` is cancel-safe and
//! keeps no state), so the stream is always at hand, `stop_sending` works at
//! any moment, and a stream dropped early is stopped with an HTTP/3 code.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use h3::error::Code;
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};
use quinn::VarInt;

type Pending<T> = Pin<Box<dyn Future<Output = Result<T, quinn::ConnectionError>> + Send + Sync>>;
type Bi = (quinn::SendStream, quinn::RecvStream);

/// Polls the operation in `slot`, starting it first if none is under way.
fn poll_slot<T>(
    slot: &mut Option<Pending<T>>,
    cx: &mut Context<'_>,
    start: impl FnOnce() -> Pending<T>,
) -> Poll<Result<T, quinn::ConnectionError>> {
    let op = slot.get_or_insert_with(start);
    let out = ready!(op.as_mut().poll(cx));
    *slot = None;
    Poll::Ready(out)
}

/// One QUIC connection as h3 sees it.
pub struct Connection {
    conn: quinn::Connection,
    accepting_bi: Option<Pending<Bi>>,
    accepting_uni: Option<Pending<quinn::RecvStream>>,
    opener: Opener,
}

impl Connection {
    pub fn new(conn: quinn::Connection) -> Self {
        Self {
            opener: Opener::new(conn.clone()),
            conn,
            accepting_bi: None,
            accepting_uni: None,
        }
    }
}

impl<B: Buf> quic::Connection<B> for Connection {
    type RecvStream = RecvStream;
    type OpenStreams = Opener;

    fn poll_accept_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<RecvStream, ConnectionErrorIncoming>> {
        let conn = &self.conn;
        let recv = ready!(poll_slot(&mut self.accepting_uni, cx, || {
            let conn = conn.clone();
            Box::pin(async move { conn.accept_uni().await })
        }))
        .map_err(connection_error)?;
        // h3 keeps the control and QPACK streams for the connection's life; it
        // drops only streams of types it does not know, which RFC 9114 §6.2 says
        // to stop with H3_STREAM_CREATION_ERROR.
        Poll::Ready(Ok(RecvStream::new(recv, Code::H3_STREAM_CREATION_ERROR)))
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream<B>, ConnectionErrorIncoming>> {
        let conn = &self.conn;
        let (send, recv) = ready!(poll_slot(&mut self.accepting_bi, cx, || {
            let conn = conn.clone();
            Box::pin(async move { conn.accept_bi().await })
        }))
        .map_err(connection_error)?;
        Poll::Ready(Ok(BidiStream::new(send, recv)))
    }

    fn opener(&self) -> Opener {
        Opener::new(self.conn.clone())
    }
}

impl<B: Buf> quic::OpenStreams<B> for Connection {
    type BidiStream = BidiStream<B>;
    type SendStream = SendStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream<B>, StreamErrorIncoming>> {
        self.opener.poll_open_bidi(cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<SendStream<B>, StreamErrorIncoming>> {
        self.opener.poll_open_send(cx)
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        self.conn.close(varint(code.value()), reason);
    }
}

/// Opens streams on a connection (h3 opens the control and QPACK streams with it).
pub struct Opener {
    conn: quinn::Connection,
    opening_bi: Option<Pending<Bi>>,
    opening_uni: Option<Pending<quinn::SendStream>>,
}

impl Opener {
    fn new(conn: quinn::Connection) -> Self {
        Self {
            conn,
            opening_bi: None,
            opening_uni: None,
        }
    }
}

impl Clone for Opener {
    /// A clone starts with no open under way: those belong to the original.
    fn clone(&self) -> Self {
        Self::new(self.conn.clone())
    }
}

impl<B: Buf> quic::OpenStreams<B> for Opener {
    type BidiStream = BidiStream<B>;
    type SendStream = SendStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream<B>, StreamErrorIncoming>> {
        let conn = &self.conn;
        let (send, recv) = ready!(poll_slot(&mut self.opening_bi, cx, || {
            let conn = conn.clone();
            Box::pin(async move { conn.open_bi().await })
        }))
        .map_err(|e| StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: connection_error(e),
        })?;
        Poll::Ready(Ok(BidiStream::new(send, recv)))
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<SendStream<B>, StreamErrorIncoming>> {
        let conn = &self.conn;
        let send = ready!(poll_slot(&mut self.opening_uni, cx, || {
            let conn = conn.clone();
            Box::pin(async move { conn.open_uni().await })
        }))
        .map_err(|e| StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: connection_error(e),
        })?;
        Poll::Ready(Ok(SendStream::new(send)))
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        self.conn.close(varint(code.value()), reason);
    }
}

/// A request stream: both halves.
pub struct BidiStream<B: Buf> {
    send: SendStream<B>,
    recv: RecvStream,
}

impl<B: Buf> BidiStream<B> {
    fn new(send: quinn::SendStream, recv: quinn::RecvStream) -> Self {
        Self {
            send: SendStream::new(send),
            // RFC 9114 §4.1.1: a server that answers without the rest of the
            // request asks the client to stop sending with H3_NO_ERROR.
            recv: RecvStream::new(recv, Code::H3_NO_ERROR),
        }
    }
}

impl<B: Buf> quic::BidiStream<B> for BidiStream<B> {
    type SendStream = SendStream<B>;
    type RecvStream = RecvStream;

    fn split(self) -> (SendStream<B>, RecvStream) {
        (self.send, self.recv)
    }
}

impl<B: Buf> quic::RecvStream for BidiStream<B> {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        self.recv.poll_data(cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code);
    }

    fn recv_id(&self) -> StreamId {
        self.recv.recv_id()
    }
}

impl<B: Buf> quic::SendStream<B> for BidiStream<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_ready(cx)
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_finish(cx)
    }

    fn reset(&mut self, reset_code: u64) {
        self.send.reset(reset_code);
    }

    fn send_id(&self) -> StreamId {
        self.send.send_id()
    }
}

/// The receiving half of a stream.
pub struct RecvStream {
    stream: quinn::RecvStream,
    /// Read to its end, failed or stopped: nothing is left to stop on drop.
    ended: bool,
    /// What the peer is told when the stream is dropped before its end.
    drop_code: Code,
}

impl RecvStream {
    fn new(stream: quinn::RecvStream, drop_code: Code) -> Self {
        Self {
            stream,
            ended: false,
            drop_code,
        }
    }
}

impl quic::RecvStream for RecvStream {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        let read = std::pin::pin!(self.stream.read_chunk(usize::MAX, true));
        match ready!(read.poll(cx)) {
            Ok(Some(chunk)) => Poll::Ready(Ok(Some(chunk.bytes))),
            Ok(None) => {
                self.ended = true;
                Poll::Ready(Ok(None))
            }
            Err(e) => {
                self.ended = true;
                Poll::Ready(Err(read_error(e)))
            }
        }
    }

    fn stop_sending(&mut self, error_code: u64) {
        // An error means the stream is already finished or stopped: nothing to tell the peer.
        let _ = self.stream.stop(varint(error_code));
        self.ended = true;
    }

    fn recv_id(&self) -> StreamId {
        stream_id(self.stream.id())
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        if !self.ended {
            // Before quinn's own drop, which would stop the stream with code 0.
            let _ = self.stream.stop(varint(self.drop_code.value()));
        }
    }
}

/// The sending half of a stream.
pub struct SendStream<B: Buf> {
    stream: quinn::SendStream,
    /// The frame h3 handed over, written out by `poll_ready`.
    writing: Option<WriteBuf<B>>,
}

impl<B: Buf> SendStream<B> {
    fn new(stream: quinn::SendStream) -> Self {
        Self {
            stream,
            writing: None,
        }
    }
}

impl<B: Buf> quic::SendStream<B> for SendStream<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        if let Some(data) = &mut self.writing {
            while data.has_remaining() {
                let n = ready!(Pin::new(&mut self.stream).poll_write(cx, data.chunk()))
                    .map_err(write_error)?;
                data.advance(n);
            }
            self.writing = None;
        }
        Poll::Ready(Ok(()))
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        if self.writing.is_some() {
            // h3 waits for `poll_ready` before each frame; this would be its bug.
            return Err(StreamErrorIncoming::ConnectionErrorIncoming {
                connection_error: ConnectionErrorIncoming::InternalError(
                    "HTTP/3 frame written before the previous one was sent".into(),
                ),
            });
        }
        self.writing = Some(data.into());
        Ok(())
    }

    fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        Poll::Ready(
            self.stream
                .finish()
                .map_err(|e| StreamErrorIncoming::Unknown(Box::new(e))),
        )
    }

    fn reset(&mut self, reset_code: u64) {
        let _ = self.stream.reset(varint(reset_code));
    }

    fn send_id(&self) -> StreamId {
        stream_id(self.stream.id())
    }
}

fn varint(code: u64) -> VarInt {
    // HTTP/3 codes are QUIC varints by definition (RFC 9114 §8.1).
    VarInt::from_u64(code).unwrap_or(VarInt::MAX)
}

fn stream_id(id: quinn::StreamId) -> StreamId {
    StreamId::try_from(u64::from(id)).expect("a QUIC stream id is a valid HTTP/3 stream id")
}

fn connection_error(e: quinn::ConnectionError) -> ConnectionErrorIncoming {
    match e {
        // h3 reads the peer's H3_NO_ERROR close from here.
        quinn::ConnectionError::ApplicationClosed(close) => {
            ConnectionErrorIncoming::ApplicationClose {
                error_code: close.error_code.into_inner(),
            }
        }
        quinn::ConnectionError::TimedOut => ConnectionErrorIncoming::Timeout,
        other => ConnectionErrorIncoming::Undefined(Arc::new(other)),
    }
}

fn read_error(e: quinn::ReadError) -> StreamErrorIncoming {
    match e {
        quinn::ReadError::Reset(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        quinn::ReadError::ConnectionLost(e) => StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: connection_error(e),
        },
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

fn write_error(e: quinn::WriteError) -> StreamErrorIncoming {
    match e {
        quinn::WriteError::Stopped(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        quinn::WriteError::ConnectionLost(e) => StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: connection_error(e),
        },
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}
