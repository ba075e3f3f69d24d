//! 1xx interim responses (RFC 9110 §15.2: a proxy MUST forward them), such
//! as `103 Early Hints`, from an HTTP/1.1 upstream to the client.
//!
//! A client connection that can send them puts an [`Interim`] in the
//! request's extensions; the upstream exchange then asks hyper's client for
//! each 1xx it reads (`hyper::ext::on_informational`) and hands it on.
//! Only HTTP/3 can send them today: hyper 1.x's server refuses a 1xx
//! response on HTTP/1.1 (`role.rs`: "response with 1xx status code not
//! supported", answered as a 500) and its HTTP/2 server has no way to reach
//! the h2 crate's `SendResponse::send_informational`. hyper's HTTP/2 client
//! drops interim responses, so they come from HTTP/1.1 upstreams only.

use http::{Request, Response, StatusCode};
use tokio::sync::mpsc;

use crate::body::Body;

/// At most this many interim responses wait for the client connection;
/// more are dropped (they are hints, and an upstream must not make us queue).
const QUEUE: usize = 8;

/// Where the interim responses of one request go.
#[derive(Clone, Debug)]
pub struct Interim(mpsc::Sender<Response<()>>);

impl Interim {
    pub fn channel() -> (Self, mpsc::Receiver<Response<()>>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self(tx), rx)
    }
}

/// Makes `out` (the upstream request) forward its 1xx responses to the
/// client `from` came from, if that client can take them. `100 Continue`
/// answers this hop's own expectation and `101` is the upgrade path's, so
/// neither is forwarded.
pub(super) fn attach(from: &http::Extensions, out: &mut Request<Body>) {
    let Some(Interim(tx)) = from.get::<Interim>().cloned() else {
        return;
    };
    hyper::ext::on_informational(out, move |res| {
        let status = res.status();
        if status == StatusCode::CONTINUE || status == StatusCode::SWITCHING_PROTOCOLS {
            return;
        }
        let mut r = Response::new(());
        *r.status_mut() = status;
        let mut h = res.headers().clone();
        super::headers::strip_hop_by_hop(&mut h, false);
        *r.headers_mut() = h;
        let _ = tx.try_send(r);
    });
}
