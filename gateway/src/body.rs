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
