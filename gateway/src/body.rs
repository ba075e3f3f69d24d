//! The one body type every protocol adapter converts to and from.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming body; never buffered whole by the gateway.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Adapts any body whose error converts into [`BoxError`] (hyper's `Incoming`, h3 streams).
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A response the gateway answers itself (admin endpoints, error pages). It
/// describes this node at this moment, not the origin, so no cache downstream
/// may keep it.
pub fn local_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

pin_project_lite::pin_project! {
    /// A body that reports, exactly once, how many data bytes went through and
    /// whether it reached its end: when it ends, fails, or is dropped unfinished.
    pub struct OnEnd<F: FnOnce(u64, bool)> {
        #[pin]
        inner: Body,
        bytes: u64,
        done: Option<F>,
    }

    impl<F: FnOnce(u64, bool)> PinnedDrop for OnEnd<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(f) = this.done.take() {
                f(*this.bytes, false);
            }
        }
    }
}

impl<F: FnOnce(u64, bool)> http_body::Body for OnEnd<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    *this.bytes += d.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(f) = this.done.take() {
                    f(*this.bytes, true);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(f) = this.done.take() {
                    f(*this.bytes, false);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Calls `done(bytes, completed)` once `body` has been read to its end, failed,
/// or was dropped. An empty body reports at once and is not wrapped.
pub fn on_end<F>(body: Body, done: F) -> Body
where
    F: FnOnce(u64, bool) + Send + 'static,
{
    if http_body::Body::is_end_stream(&body) {
        done(0, true);
        return body;
    }
    OnEnd {
        inner: body,
        bytes: 0,
        done: Some(done),
    }
    .boxed_unsync()
}

/// Which way a body flows, for [`BodyTimeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client's request body.
    Request,
    /// The upstream's response body.
    Response,
}

/// A body stopped with an error because it was too slow: no data for the
/// idle timeout, or past the exchange's deadline. An error, not an end, so
/// a truncated body never looks complete (HTTP/1.1 closes without the last
/// chunk or short of Content-Length, HTTP/2 and HTTP/3 reset the stream) and
/// a cache fill reading it sees the failure.
#[derive(Debug, thiserror::Error)]
#[error("{} body {} after {after:?}", match .side { Side::Request => "request", Side::Response => "response" }, if *.deadline { "passed the route's deadline" } else { "sent nothing" })]
pub struct BodyTimeout {
    pub side: Side,
    /// The deadline, not the idle timeout, fired.
    pub deadline: bool,
    pub after: std::time::Duration,
}

pin_project_lite::pin_project! {
    /// A body under an idle timeout and an optional deadline. The timer is
    /// armed only while the inner body is pending: a body whose frames are
    /// ready whenever it is polled (most small responses) never touches the
    /// timer wheel, which is shared by every connection of its runtime.
    pub struct Timed {
        #[pin]
        inner: Body,
        sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
        // When the last frame came, or the body started.
        last: tokio::time::Instant,
        idle: std::time::Duration,
        deadline: Option<tokio::time::Instant>,
        side: Side,
        failed: bool,
    }
}

impl http_body::Body for Timed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::future::Future;
        use std::task::Poll;
        let this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        let timed_out = |failed: &mut bool, deadline: bool, after| {
            *failed = true;
            Poll::Ready(Some(Err(Box::new(BodyTimeout {
                side: *this.side,
                deadline,
                after,
            }) as BoxError)))
        };
        // A body that never pauses still ends at the deadline.
        if let Some(d) = *this.deadline
            && tokio::time::Instant::now() >= d
        {
            return timed_out(this.failed, true, *this.idle);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                *this.last = tokio::time::Instant::now();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                let idle_at = *this.last + *this.idle;
                let due = this.deadline.map_or(idle_at, |d| d.min(idle_at));
                let sleep = match this.sleep {
                    Some(s) => {
                        if s.deadline() != due {
                            s.as_mut().reset(due);
                        }
                        s
                    }
                    None => this.sleep.insert(Box::pin(tokio::time::sleep_until(due))),
                };
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let deadline = this.deadline.is_some_and(|d| d <= idle_at);
                timed_out(this.failed, deadline, *this.idle)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// `body` under an idle timeout (no frame for `idle`) and an optional
/// `deadline`; an empty body is returned as it is.
pub fn timed(
    body: Body,
    side: Side,
    idle: std::time::Duration,
    deadline: Option<tokio::time::Instant>,
) -> Body {
    if http_body::Body::is_end_stream(&body) {
        return body;
    }
    Timed {
        inner: body,
        sleep: None,
        last: tokio::time::Instant::now(),
        idle,
        deadline,
        side,
        failed: false,
    }
    .boxed_unsync()
}

pin_project_lite::pin_project! {
    /// A frame already read, then the rest of the body.
    struct Prepend {
        first: Option<http_body::Frame<Bytes>>,
        #[pin]
        rest: Body,
    }
}

impl http_body::Body for Prepend {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.first.take() {
            Some(f) => std::task::Poll::Ready(Some(Ok(f))),
            None => this.rest.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let mut h = self.rest.size_hint();
        if let Some(n) = self
            .first
            .as_ref()
            .and_then(http_body::Frame::data_ref)
            .map(|d| d.len() as u64)
        {
            // Upper first: `set_lower` checks against the upper bound.
            if let Some(u) = h.upper() {
                h.set_upper(u + n);
            }
            h.set_lower(h.lower() + n);
        }
        h
    }
}

/// `first` (a frame already read from `rest`), then `rest`.
pub fn prepend(first: http_body::Frame<Bytes>, rest: Body) -> Body {
    Prepend {
        first: Some(first),
        rest,
    }
    .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    const MS: std::time::Duration = std::time::Duration::from_millis(1);

    #[tokio::test]
    async fn a_stalled_body_fails_instead_of_ending() {
        let (mut tx, rx) = futures_channel();
        let body = timed(rx, Side::Response, MS * 50, None);
        tx.send(Bytes::from_static(b"part"));
        let mut body = std::pin::pin!(body);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "part");
        let err = body.frame().await.unwrap().unwrap_err();
        let t = err.downcast_ref::<BodyTimeout>().unwrap();
        assert_eq!((t.side, t.deadline), (Side::Response, false));
        assert!(body.frame().await.is_none());
        drop(tx);
    }

    #[tokio::test]
    async fn the_deadline_holds_however_steady_the_body() {
        let (mut tx, rx) = futures_channel();
        let start = tokio::time::Instant::now();
        let deadline = start + MS * 300;
        let body = timed(rx, Side::Response, MS * 200, Some(deadline));
        let mut body = std::pin::pin!(body);
        let err = loop {
            tx.send(Bytes::from_static(b"x"));
            match body.frame().await.unwrap() {
                Ok(_) => tokio::time::sleep(MS * 100).await,
                Err(e) => break e,
            }
        };
        assert!(err.downcast_ref::<BodyTimeout>().unwrap().deadline);
        assert!(start.elapsed() >= MS * 300);
    }

    #[tokio::test]
    async fn prepend_keeps_order_and_length() {
        let b = prepend(
            http_body::Frame::data(Bytes::from_static(b"ab")),
            full("cd"),
        );
        assert_eq!(http_body::Body::size_hint(&b).exact(), Some(4));
        assert_eq!(b.collect().await.unwrap().to_bytes(), "abcd");
    }

    /// A body fed by hand: each `send` is one data frame.
    struct Feed(tokio::sync::mpsc::UnboundedSender<Bytes>);

    impl Feed {
        fn send(&mut self, b: Bytes) {
            let _ = self.0.send(b);
        }
    }

    fn futures_channel() -> (Feed, Body) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, BoxError>(http_body::Frame::data(b)), rx))
        });
        (
            Feed(tx),
            http_body_util::StreamBody::new(stream).boxed_unsync(),
        )
    }
}
