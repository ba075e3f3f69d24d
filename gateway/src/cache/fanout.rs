//! A fill in progress, read by every client that wants it: the filling
//! client and the coalesced waiters all stream from one upstream body as it
//! arrives, and the body is stored at its end.
//!
//! The fill runs as a task of its own ([`run`]), so no client's pace or
//! disconnect decides what is stored. While it keeps the body for the store
//! it reads as fast as upstream sends, bounded by `max-object-size` and the
//! global [`FillBudget`]. Past either, it stops keeping and becomes a
//! pass-through paced by its slowest reader, holding no more than one chunk
//! beyond what every reader has taken.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;

use super::Flight;
use super::fill::{FillBudget, OnBody};
use crate::body::{Body, BoxError};

/// What coalesced waiters need to answer from a fill in progress.
pub struct Streaming {
    pub status: StatusCode,
    /// The response fields as a waiter gets them: without the filling
    /// client's `Set-Cookie`.
    pub headers: HeaderMap,
    pub lifetime: std::time::Duration,
    /// The fields the response varies on, and the filling request's
    /// secondary key over them: a waiter whose own differs is another variant.
    pub vary: Vec<HeaderName>,
    pub secondary: String,
    pub fan: Arc<Fanout>,
}

enum End {
    Done(Option<HeaderMap>),
    Failed(Arc<str>),
}

struct Slot {
    pos: u64,
    waker: Option<Waker>,
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Bytes>,
    /// Sequence number of `chunks[0]`; above zero once a pass-through
    /// forgot what every reader had taken.
    first: u64,
    end: Option<End>,
    readers: HashMap<u64, Slot>,
    next_id: u64,
    filler: Option<Waker>,
}

impl State {
    fn wake_readers(&mut self) {
        for s in self.readers.values_mut() {
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }
}

/// The chunks of one fill so far, and who is reading them.
#[derive(Default)]
pub struct Fanout {
    state: Mutex<State>,
}

impl Fanout {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader that panicked mid-poll leaves consistent state behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A reader from the first byte; `None` when that is gone (the fill
    /// turned into a pass-through and forgot it) or the fill failed: the
    /// caller then makes its own request.
    pub fn attach(self: &Arc<Self>) -> Option<Reader> {
        let mut st = self.lock();
        if st.first > 0 || matches!(st.end, Some(End::Failed(_))) {
            return None;
        }
        let id = st.next_id;
        st.next_id += 1;
        st.readers.insert(
            id,
            Slot {
                pos: 0,
                waker: None,
            },
        );
        Some(Reader {
            fan: self.clone(),
            id,
            pos: 0,
            finished: false,
        })
    }

    /// Readers attached now.
    pub fn readers(&self) -> usize {
        self.lock().readers.len()
    }
}

/// One client's view of a fill: every chunk from the first, then the end.
/// A failed fill ends it with an error, so the client sees a broken body
/// (a reset stream, a closed connection), never a hang or a short success.
pub struct Reader {
    fan: Arc<Fanout>,
    id: u64,
    pos: u64,
    finished: bool,
}

impl Drop for Reader {
    fn drop(&mut self) {
        let mut st = self.fan.lock();
        st.readers.remove(&self.id);
        if let Some(w) = st.filler.take() {
            w.wake();
        }
    }
}

impl http_body::Body for Reader {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        let fan = this.fan.clone();
        let mut st = fan.lock();
        let at = this.pos.saturating_sub(st.first) as usize;
        if let Some(chunk) = st.chunks.get(at).cloned() {
            this.pos += 1;
            let pos = this.pos;
            if let Some(s) = st.readers.get_mut(&this.id) {
                s.pos = pos;
            }
            if let Some(w) = st.filler.take() {
                w.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match &st.end {
            Some(End::Done(trailers)) => {
                this.finished = true;
                Poll::Ready(trailers.clone().map(|t| Ok(Frame::trailers(t))))
            }
            Some(End::Failed(why)) => {
                this.finished = true;
                Poll::Ready(Some(Err(format!("upstream body failed: {why}").into())))
            }
            None => {
                if let Some(s) = st.readers.get_mut(&this.id) {
                    s.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }
}

/// Bytes a fill holds against the global budget, given back however the
/// fill ends (the task may also be dropped at shutdown).
struct Held<'a> {
    budget: &'a FillBudget,
    n: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.give(self.n);
        self.n = 0;
    }
}

/// Drives one fill to its end: reads `body`, hands every chunk to the
/// readers of `fan`, and stores the whole body through `on_body` (readers get
/// the end only once it is stored, so a client that asks again at once finds
/// the entry). `flight` ends when the body is stored, or as soon as the fill
/// stops keeping it, so later requests no longer wait for it.
pub async fn run(
    fan: Arc<Fanout>,
    mut body: Body,
    limit: u64,
    budget: Arc<FillBudget>,
    on_body: OnBody,
    flight: Option<Flight>,
) {
    let mut on_body = Some(on_body);
    let mut flight = flight;
    let mut held = Held {
        budget: &budget,
        n: 0,
    };
    let mut trailers = None;
    let mut last = None;
    loop {
        if on_body.is_none() && !caught_up(&fan).await {
            // A pass-through nobody reads any more.
            return;
        }
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                drop(flight.take());
                let mut st = fan.lock();
                st.end = Some(End::Failed(e.to_string().into()));
                st.wake_readers();
                return;
            }
        };
        let data = match frame.into_data() {
            Ok(d) => d,
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
                continue;
            }
        };
        if on_body.is_some() {
            let n = data.len() as u64;
            if held.n + n > limit || !budget.take(n) {
                // Too big for the store, or for the fills together: stream on.
                on_body = None;
                budget.give(held.n);
                held.n = 0;
                drop(flight.take());
            } else {
                held.n += n;
            }
        }
        // A body with a known length says it has ended with its last data
        // frame. Its readers get that frame only once the body is stored: a
        // server that knows the length is done with the response when the
        // last byte is out, so holding it back is what keeps a client from
        // asking again (and again) faster than the store keeps up.
        if on_body.is_some() && http_body::Body::is_end_stream(&body) {
            last = Some(data);
            break;
        }
        let mut st = fan.lock();
        st.chunks.push_back(data);
        st.wake_readers();
    }
    if let Some(on_body) = on_body {
        // One exact copy: the chunks are slices of the read buffers.
        let whole = {
            let st = fan.lock();
            let mut out = bytes::BytesMut::with_capacity(held.n as usize);
            for c in st.chunks.iter().chain(&last) {
                out.extend_from_slice(c);
            }
            out.freeze()
        };
        on_body(whole).await;
    }
    drop(held);
    drop(flight);
    let mut st = fan.lock();
    st.chunks.extend(last);
    st.end = Some(End::Done(trailers));
    st.wake_readers();
}

/// For a pass-through: waits until every reader has taken every chunk
/// (and forgets them); false when no reader is left.
async fn caught_up(fan: &Fanout) -> bool {
    std::future::poll_fn(|cx| {
        let mut st = fan.lock();
        let Some(min) = st.readers.values().map(|s| s.pos).min() else {
            return Poll::Ready(false);
        };
        while st.first < min && !st.chunks.is_empty() {
            st.chunks.pop_front();
            st.first += 1;
        }
        if st.chunks.is_empty() {
            Poll::Ready(true)
        } else {
            st.filler = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;
    use crate::body;

    fn chunks(n: usize, size: usize) -> Body {
        let frames = (0..n)
            .map(move |i| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'a' + i as u8; size]))));
        body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }

    fn on_body(got: &Arc<StdMutex<Option<usize>>>) -> OnBody {
        let g = got.clone();
        Box::new(move |b| {
            Box::pin(async move {
                *g.lock().unwrap() = Some(b.len());
            })
        })
    }

    async fn fill(
        inner: Body,
        limit: u64,
        budget: &Arc<FillBudget>,
        readers: usize,
    ) -> (Vec<usize>, Option<usize>) {
        let got = Arc::new(StdMutex::new(None));
        let fan = Fanout::new();
        let rs: Vec<Reader> = (0..readers).map(|_| fan.attach().unwrap()).collect();
        let task = tokio::spawn(run(fan, inner, limit, budget.clone(), on_body(&got), None));
        // Each reader is read by its own task, as each client's connection does.
        let reads: Vec<_> = rs
            .into_iter()
            .map(|r| tokio::spawn(async move { r.collect().await.unwrap().to_bytes().len() }))
            .collect();
        let mut lens = Vec::new();
        for r in reads {
            lens.push(r.await.unwrap());
        }
        task.await.unwrap();
        let stored = *got.lock().unwrap();
        (lens, stored)
    }

    #[tokio::test]
    async fn every_reader_gets_the_whole_body_and_the_store_gets_what_fits() {
        let budget = Arc::new(FillBudget::new(1 << 20));
        assert_eq!(
            fill(chunks(4, 100), 1000, &budget, 3).await,
            (vec![400; 3], Some(400))
        );
        assert_eq!(budget.held(), 0);
        // Over the object limit: streamed whole to every reader, not kept.
        assert_eq!(
            fill(chunks(8, 100), 250, &budget, 3).await,
            (vec![800; 3], None)
        );
        assert_eq!(budget.held(), 0);
        // Over the shared budget: the same.
        let small = Arc::new(FillBudget::new(150));
        assert_eq!(
            fill(chunks(4, 100), 1000, &small, 2).await,
            (vec![400; 2], None)
        );
        assert_eq!(small.held(), 0);
    }

    #[tokio::test]
    async fn a_failed_fill_ends_every_reader_with_an_error() {
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Err::<Frame<Bytes>, BoxError>("reset".into()),
        ];
        let inner = body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )));
        let budget = Arc::new(FillBudget::new(1 << 20));
        let fan = Fanout::new();
        let r = fan.attach().unwrap();
        let got = Arc::new(StdMutex::new(None));
        run(
            fan.clone(),
            inner,
            1000,
            budget.clone(),
            on_body(&got),
            None,
        )
        .await;
        assert!(r.collect().await.is_err());
        assert!(fan.attach().is_none(), "a failed fill takes no new readers");
        assert_eq!(*got.lock().unwrap(), None);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn a_pass_through_nobody_reads_stops() {
        let budget = Arc::new(FillBudget::new(1 << 20));
        let fan = Fanout::new();
        drop(fan.attach().unwrap());
        let got = Arc::new(StdMutex::new(None));
        // Over the limit at once, with no reader: the task ends by itself.
        run(
            fan.clone(),
            chunks(1000, 100),
            10,
            budget.clone(),
            on_body(&got),
            None,
        )
        .await;
        assert_eq!(*got.lock().unwrap(), None);
        assert!(fan.lock().chunks.len() <= 1);
    }
}
