//! Connection hygiene shared by every TCP listener (the admin one included):
//! a deadline from accept to the first request (protocol sniff and TLS
//! handshake included), an idle timeout, a write-stall timeout on the socket
//! and on each response body, and a cap on the requests a peer cancels
//! (HTTP/2 rapid reset, prompt or lagging).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Sleep;

use crate::body::{Body, BoxError};

/// Requests a peer may cancel per [`CANCEL_WINDOW`] before its connection is
/// closed: a reset stream costs us an upstream request, whether it comes
/// right after the request or ten streams later.
pub const MAX_CANCELS: u32 = 100;
pub const CANCEL_WINDOW: Duration = Duration::from_secs(10);
/// How long a connection told to close may finish its in-flight requests.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The timers of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From accept to the first complete request head.
    pub first_request: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle: Duration,
    /// A write (socket or response body) that makes no progress for this long fails.
    pub send: Duration,
}

/// What one connection's requests tell its driver.
pub struct ConnGuard {
    born: Instant,
    started: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds since `born` of the last request start or end.
    last_activity: AtomicU64,
    cancels: Mutex<(Instant, u32)>,
    tripped: AtomicBool,
    trip: Notify,
}

impl Default for ConnGuard {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            born: now,
            started: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_activity: AtomicU64::new(0),
            cancels: Mutex::new((now, 0)),
            tripped: AtomicBool::new(false),
            trip: Notify::new(),
        }
    }
}

impl ConnGuard {
    fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity.store(ms, Ordering::Relaxed);
    }

    /// Whether the peer cancelled too much; its requests are then refused.
    pub fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::Relaxed)
    }

    /// A request has started; the returned token ends it when dropped.
    pub fn request(self: &std::sync::Arc<Self>) -> InFlight {
        self.started.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight {
            guard: self.clone(),
            done: false,
        }
    }

    fn cancelled(&self) {
        let mut c = self.cancels.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(c.0) > CANCEL_WINDOW {
            *c = (now, 0);
        }
        c.1 += 1;
        if c.1 > MAX_CANCELS && !self.tripped.swap(true, Ordering::Relaxed) {
            self.trip.notify_one();
        }
    }
}

/// One request in flight on a connection. Dropped before [`InFlight::done`]
/// means the peer gave up on it (a reset stream, a closed connection).
pub struct InFlight {
    guard: std::sync::Arc<ConnGuard>,
    done: bool,
}

impl InFlight {
    pub fn done(mut self) {
        self.done = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.guard.cancelled();
        }
        self.guard.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.guard.touch();
    }
}

/// Open connections of one listener, in total and per client IP.
#[derive(Default)]
pub struct Census {
    open: Mutex<(usize, std::collections::HashMap<std::net::IpAddr, usize>)>,
}

/// One admitted connection; leaves the census when dropped.
pub struct Admitted {
    census: std::sync::Arc<Census>,
    ip: std::net::IpAddr,
}

impl Census {
    /// Admits a connection from `ip` unless a cap is reached.
    pub fn admit(
        self: &std::sync::Arc<Self>,
        ip: std::net::IpAddr,
        max: usize,
        per_ip: usize,
    ) -> Option<Admitted> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.1.get(&ip).copied().unwrap_or(0);
        if open.0 >= max || n >= per_ip {
            return None;
        }
        open.0 += 1;
        open.1.insert(ip, n + 1);
        Some(Admitted {
            census: self.clone(),
            ip,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.census.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

static REFUSED_LOG: LogLimit = LogLimit::new();

/// Logs (rate-limited) a connection refused by a cap.
pub fn refused_connection(listener: &str, ip: std::net::IpAddr) {
    if let Some(suppressed) = REFUSED_LOG.allow() {
        tracing::warn!(%listener, client = %ip, suppressed, "connection refused: max-connections or max-connections-per-ip reached");
    }
}

/// Keeps a connection busy while an upgraded stream (a WebSocket over
/// HTTP/2) lives on it; ends the request cleanly when dropped.
struct Busy(Option<InFlight>);

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.done();
        }
    }
}

/// The hold a tunnel on this connection takes (see `session::upgrade::ConnHold`).
pub fn hold(guard: &std::sync::Arc<ConnGuard>) -> crate::session::upgrade::ConnHold {
    let guard = guard.clone();
    crate::session::upgrade::ConnHold(std::sync::Arc::new(move || {
        Box::new(Busy(Some(guard.request()))) as Box<dyn Send>
    }))
}

/// Warns at most once per second about peer-triggered or resource events,
/// saying how many were suppressed in between.
pub struct LogLimit {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl LogLimit {
    pub const fn new() -> Self {
        Self {
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed since the last line)` when a line may be written now.
    pub fn allow(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

impl Default for LogLimit {
    fn default() -> Self {
        Self::new()
    }
}

static TRIPPED_LOG: LogLimit = LogLimit::new();

/// Runs one connection future under `guard`'s rules until it ends, `stop`
/// turns true (graceful close), or a timer closes it. `deadline` is the time
/// by which the first request must have arrived.
pub async fn drive<C, E>(
    conn: C,
    shutdown: impl Fn(Pin<&mut C>),
    guard: &ConnGuard,
    timeouts: Timeouts,
    deadline: tokio::time::Instant,
    mut stop: watch::Receiver<bool>,
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    tokio::pin!(conn);
    let mut closing_by: Option<tokio::time::Instant> = None;
    let mut stopping = false;
    loop {
        let check = match closing_by {
            Some(t) => t,
            None if !guard.started.load(Ordering::Relaxed) => deadline,
            None => {
                let last = Duration::from_millis(guard.last_activity.load(Ordering::Relaxed));
                tokio::time::Instant::from_std(guard.born + last + timeouts.idle)
            }
        };
        tokio::select! {
            r = &mut conn => return r,
            _ = stop.wait_for(|s| *s), if !stopping => {
                // Drain: in-flight requests finish, however long the node's drain allows.
                stopping = true;
                shutdown(conn.as_mut());
            }
            () = guard.trip.notified(), if closing_by.is_none() => {
                if let Some(n) = TRIPPED_LOG.allow() {
                    tracing::warn!(suppressed = n, "a client cancelled more than {MAX_CANCELS} requests in {CANCEL_WINDOW:?}; closing its connection");
                }
                shutdown(conn.as_mut());
                closing_by = Some(tokio::time::Instant::now() + CLOSE_GRACE);
            }
            () = tokio::time::sleep_until(check) => {
                if closing_by.is_some() || !guard.started.load(Ordering::Relaxed) {
                    // No first request in time, or the grace after a close is over.
                    return Ok(());
                }
                if guard.in_flight.load(Ordering::Relaxed) == 0 {
                    let last = Duration::from_millis(guard.last_activity.load(Ordering::Relaxed));
                    if guard.born.elapsed() >= last + timeouts.idle {
                        shutdown(conn.as_mut());
                        closing_by = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                    }
                }
                if closing_by.is_none() && guard.in_flight.load(Ordering::Relaxed) > 0 {
                    // Busy: look again one idle period from now.
                    guard.touch();
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A socket whose writes fail after `send` without progress, so a client
    /// that never reads cannot hold its connection (and what feeds it) forever.
    pub struct Timed<S> {
        #[pin]
        inner: S,
        send: Duration,
        stall: Option<Pin<Box<Sleep>>>,
    }
}

impl<S> Timed<S> {
    pub fn new(inner: S, send: Duration) -> Self {
        Self {
            inner,
            send,
            stall: None,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

fn stalled(
    stall: &mut Option<Pin<Box<Sleep>>>,
    send: Duration,
    cx: &mut Context<'_>,
) -> Poll<io::Error> {
    let sleep = stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(send)));
    ready!(sleep.as_mut().poll(cx));
    Poll::Ready(io::Error::new(
        io::ErrorKind::TimedOut,
        "the client read nothing for the send timeout",
    ))
}

impl<S: AsyncRead> AsyncRead for Timed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<S: AsyncWrite> AsyncWrite for Timed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.project();
        match me.inner.poll_write(cx, buf) {
            Poll::Ready(r) => {
                *me.stall = None;
                Poll::Ready(r)
            }
            Poll::Pending => stalled(me.stall, *me.send, cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.project();
        match me.inner.poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                *me.stall = None;
                Poll::Ready(r)
            }
            Poll::Pending => stalled(me.stall, *me.send, cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.project();
        match me.inner.poll_flush(cx) {
            Poll::Ready(r) => {
                *me.stall = None;
                Poll::Ready(r)
            }
            Poll::Pending => stalled(me.stall, *me.send, cx).map(Err),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Moves a response body to the client through a one-frame channel fed by its
/// own task: when the client takes no frame for `send` (an HTTP/2 stream with
/// a zero window, an HTTP/1.1 client that never reads), the source — and the
/// upstream connection behind it — is dropped and the client's stream fails.
/// `token` ends the request when the body does.
///
/// HTTP/1.1 needs no relay: its writes go straight to the socket, which
/// [`Timed`] already fails after `send` without progress, so there the body
/// is only watched for its end ([`Watched`]) and costs no task.
pub fn relay(body: Body, send: Duration, token: InFlight, version: http::Version) -> Body {
    if body.is_end_stream() {
        token.done();
        return body;
    }
    if version <= http::Version::HTTP_11 {
        return http_body_util::BodyExt::boxed_unsync(Watched {
            inner: body,
            token: Some(token),
        });
    }
    let hint = body.size_hint();
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
    let stalled = std::sync::Arc::new(AtomicBool::new(false));
    let stalled_tx = stalled.clone();
    tokio::spawn(async move {
        let mut body = std::pin::pin!(body);
        loop {
            let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
            let Some(frame) = frame else {
                token.done();
                return;
            };
            let failed = frame.is_err();
            // The slot is usually free: only a client that is behind needs the timer.
            let frame = match tx.try_send(frame) {
                Ok(()) if !failed => continue,
                Ok(()) => {
                    token.done();
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(frame)) => frame,
            };
            match tokio::time::timeout(send, tx.send(frame)).await {
                Ok(Ok(())) if !failed => {}
                Ok(Ok(())) => {
                    // The source failed; not the client's doing.
                    token.done();
                    return;
                }
                // The client went away (the token counts a cancel), or stalled.
                Ok(Err(_)) => return,
                Err(_) => {
                    // The channel's one slot is taken: the receiver learns of
                    // the failure from the flag once it drains, so the body
                    // ends in an error, never as if complete.
                    stalled_tx.store(true, Ordering::Release);
                    token.done();
                    return;
                }
            }
        }
    });
    http_body_util::BodyExt::boxed_unsync(Relayed { rx, hint, stalled })
}

pin_project_lite::pin_project! {
    /// An HTTP/1.1 response body whose end, failure or drop ends its request.
    struct Watched {
        #[pin]
        inner: Body,
        token: Option<InFlight>,
    }

    impl PinnedDrop for Watched {
        // hyper drops a body once it has written what `Content-Length` said,
        // without polling it to `None`, so a drop is not a sign of a cancel.
        // Nor does HTTP/1.1 need one counted: a client can only cancel by
        // closing its connection, which ends every request on it anyway
        // (the cancel count is HTTP/2's defence against rapid resets).
        fn drop(this: Pin<&mut Self>) {
            if let Some(t) = this.project().token.take() {
                t.done();
            }
        }
    }
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = ready!(this.inner.poll_frame(cx));
        if matches!(polled, None | Some(Err(_)))
            && let Some(t) = this.token.take()
        {
            t.done();
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

struct Relayed {
    rx: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    hint: SizeHint,
    stalled: std::sync::Arc<AtomicBool>,
}

impl http_body::Body for Relayed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match ready!(self.rx.poll_recv(cx)) {
            None if self.stalled.swap(false, Ordering::Acquire) => Poll::Ready(Some(Err(
                "the client read nothing for the send timeout".into(),
            ))),
            other => Poll::Ready(other),
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// The answer to a request on a connection that is being closed for abuse
/// (HTTP/1.1 closes after it: the driver has begun a graceful shutdown).
pub fn refused() -> http::Response<Body> {
    crate::body::local_response(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "text/plain; charset=utf-8",
        "too many cancelled requests on this connection\n",
    )
}
