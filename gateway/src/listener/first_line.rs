//! The first request line of an HTTP/1 connection, read before hyper sees
//! the connection, for the two answers hyper cannot give:
//! - a request line longer than the head limit gets 414 URI Too Long (RFC
//!   9110 §15.5.15); hyper would only know that its buffer filled and
//!   answer 431;
//! - `HTTP/1.2`…`HTTP/1.9` is served as HTTP/1.1, the highest minor version
//!   we implement (RFC 9110 §6.2, RFC 9112 §2.3); httparse refuses any minor
//!   version above 1. The digit is rewritten in place (same length) and the
//!   connection closes after that response, since its later requests would
//!   carry the same version and are not read through here.
//!
//! Bounded: at most `limit` bytes are read, under the connection's
//! first-request deadline; what was read is replayed to hyper unchanged
//! otherwise (an HTTP/2 preface line passes through like any other).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// What the first line asks of the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstLine {
    /// Serve as usual, replaying these bytes first.
    Serve(Vec<u8>),
    /// As `Serve`, after the minor version was lowered to 1: close after the
    /// first response.
    Downgraded(Vec<u8>),
    /// The line is over the limit; 414 has been sent.
    Refused,
    /// The peer closed, failed or ran out of time before a whole line.
    Gone,
}

const REFUSAL: &[u8] = b"HTTP/1.1 414 URI Too Long\r\ncontent-type: text/plain; charset=utf-8\r\n\
content-length: 24\r\nconnection: close\r\n\r\nrequest target too long\n";

/// Reads until the end of the first non-empty line (RFC 9112 §2.2: empty
/// lines before it are ignored) or `limit` bytes, and decides.
pub async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    limit: usize,
    deadline: tokio::time::Instant,
) -> FirstLine {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let scan = loop {
        if let Some(end) = line_end(&buf) {
            break Some(end);
        }
        if buf.len() > limit {
            break None;
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return FirstLine::Gone,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let Some((start, end)) = scan else {
        refuse(stream).await;
        return FirstLine::Refused;
    };
    if downgrade(&mut buf[start..end]) {
        FirstLine::Downgraded(buf)
    } else {
        FirstLine::Serve(buf)
    }
}

/// `(start, end)` of the first non-empty line, `end` before its CR LF / LF.
fn line_end(buf: &[u8]) -> Option<(usize, usize)> {
    let start = buf.iter().position(|b| *b != b'\r' && *b != b'\n')?;
    let lf = start + buf[start..].iter().position(|b| *b == b'\n')?;
    let end = if lf > start && buf[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    };
    Some((start, end))
}

/// Rewrites a request line ending in ` HTTP/1.<2-9>` to ` HTTP/1.1`.
fn downgrade(line: &mut [u8]) -> bool {
    let n = line.len();
    if n < 9 || &line[n - 9..n - 1] != b" HTTP/1." || !(b'2'..=b'9').contains(&line[n - 1]) {
        return false;
    }
    line[n - 1] = b'1';
    true
}

/// Sends the 414, then reads (and drops) what the client is still sending
/// for a moment, so closing does not reset the connection before the client
/// has read the answer (RFC 9112 §9.6).
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    let sent = async {
        stream.write_all(REFUSAL).await?;
        stream.flush().await?;
        stream.shutdown().await
    };
    if tokio::time::timeout(std::time::Duration::from_secs(2), sent)
        .await
        .is_err()
    {
        return;
    }
    let mut sink = [0u8; 8192];
    let mut left = 1usize << 20;
    let drain = async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}

/// A stream that yields `prefix` before reading from `inner`.
pub struct Replay<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Replay<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(out.remaining());
            out.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_non_empty_line() {
        assert_eq!(line_end(b"GET / HTTP/1.1\r\nHost"), Some((0, 14)));
        assert_eq!(line_end(b"\r\n\r\nGET / HTTP/1.1\n"), Some((4, 18)));
        assert_eq!(line_end(b"GET / HTTP/1.1"), None);
        assert_eq!(line_end(b"\r\n"), None);
    }

    #[test]
    fn only_higher_http1_minors_are_lowered() {
        let mut l = b"GET / HTTP/1.2".to_vec();
        assert!(downgrade(&mut l));
        assert_eq!(l, b"GET / HTTP/1.1");
        for keep in [
            &b"GET / HTTP/1.1"[..],
            b"GET / HTTP/1.0",
            b"PRI * HTTP/2.0",
            b"GET / HTTP/2.2",
            b"x",
        ] {
            let mut l = keep.to_vec();
            assert!(!downgrade(&mut l));
            assert_eq!(l, keep);
        }
    }

    #[tokio::test]
    async fn a_long_line_is_refused_and_a_short_one_replayed() {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        client.write_all(b"GET /").await.unwrap();
        client.write_all(&vec![b'a'; 3000]).await.unwrap();
        let got = read(&mut server, 2048, deadline).await;
        assert_eq!(got, FirstLine::Refused);
        drop(server);
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 414 "), "{answer}");
        assert_eq!(
            REFUSAL.len() - REFUSAL.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4,
            24
        );

        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        client
            .write_all(b"GET /x HTTP/1.3\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let FirstLine::Downgraded(prefix) = read(&mut server, 2048, deadline).await else {
            panic!("not downgraded");
        };
        let mut replayed = Replay::new(prefix, server);
        drop(client);
        let mut all = String::new();
        replayed.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    }
}
