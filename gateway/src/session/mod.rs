//! The request path: one [`Session`] per request, its phases in the order the
//! plugin contract (`wit/worlds.wit`) and DESIGN.md give them:
//!
//! 1. inbound checks ([`inbound`]) — 2. route ([`crate::matching`]), where a
//!    redirect to HTTPS or a fixed `respond:` answers at once ([`actions`]) —
//! 3. on-request filters ([`filters`]) — 4. cache lookup ([`cached`]) —
//! 5. choose endpoint and 6. upstream ([`proxy`]) — 7. on-response filters —
//! 8. compress — 9. cache store — 10. log ([`log`]).
//!
//! A phase a route does not configure costs nothing. Errors of any phase are
//! one [`ProxyError`], turned into a response, a counter and a log line in
//! [`log`] only.

pub mod access;
mod actions;
mod cached;
pub mod error;
mod filters;
pub mod headers;
mod hold;
mod inbound;
pub mod interim;
mod log;
mod outgoing;
mod proxy;
pub mod request_id;
pub mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Method, Request, Response};

use crate::body::Body;
use crate::compress::{self, Encoding};
use crate::config::Route;
use crate::node::{Generation, Node, RouteRt};
use crate::upstream::UpstreamPool;
pub use error::{Blame, ProxyError};

/// What the listener knows about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub client: SocketAddr,
    /// `https` when the connection is TLS or QUIC.
    pub scheme: &'static str,
    pub listener: Arc<str>,
    /// Keep a client's `X-Request-Id` instead of generating one.
    pub trust_request_id: bool,
    /// What a tunnel on this connection takes to keep it busy; here rather
    /// than in each request's extensions, which would cost every request
    /// the extensions' map.
    pub hold: Option<upgrade::ConnHold>,
}

type Answer = Result<Response<Body>, ProxyError>;

/// One routed request: the generation it started on, its route, and what the
/// phases learn on the way. Cheap to clone (a background revalidation keeps
/// one after the client has its answer).
#[derive(Clone)]
pub struct Session {
    node: Arc<Node>,
    generation: Arc<Generation>,
    conn: ConnInfo,
    /// Index of the matched route in `generation`.
    r: usize,
    /// The response encoding negotiated for this client.
    want: Encoding,
    /// The request head as the on-response filters see it (filtered routes only).
    kept: Option<Arc<http::request::Parts>>,
    /// What the phases learn, shared with a background revalidation's clone.
    learnt: Arc<Learnt>,
}

/// What a session's phases learn on the way, for the log and `Cache-Status`
/// (one allocation per request).
#[derive(Default)]
struct Learnt {
    /// 1 + index of the endpoint last tried; 0 while none was.
    endpoint: AtomicUsize,
    /// Microseconds until the upstream's response head, for the access log.
    upstream_us: std::sync::atomic::AtomicU64,
    /// Why the cache stage forwarded, for the `Cache-Status` of an error.
    cache_fwd: std::sync::OnceLock<&'static str>,
}

/// Serves one request; never fails: errors become responses in the log phase.
pub async fn handle(node: &Arc<Node>, mut req: Request<Body>, conn: &ConnInfo) -> Response<Body> {
    let generation = node.generation();
    let request_id = request_id::ensure(req.headers_mut(), conn.trust_request_id);
    let mut record = log::Record::start(node, &generation, conn, &req);
    // 1. inbound checks, 2. route
    let routed = inbound::check(&req)
        .and_then(|()| inbound::normalize(&mut req))
        .and_then(|()| route(&generation, &req).ok_or(ProxyError::NoRoute));
    let mut cache_label = None;
    let local = actions::local_answer(&generation, conn, &req, &routed);
    if let (Some(_), Ok(r)) = (&local, &routed) {
        record.routed(&generation, *r);
    }
    let answer = match (local, routed) {
        (Some(resp), _) => Ok(resp),
        (None, Err(e)) => Err(e),
        (None, Ok(r)) => {
            record.routed(&generation, r);
            let mut session = Session {
                node: node.clone(),
                generation: generation.clone(),
                conn: conn.clone(),
                r,
                want: Encoding::Identity,
                kept: None,
                learnt: Arc::default(),
            };
            let mut answer = session.run(req, &mut record).await;
            record.ended(&session);
            cache_label = session.label_rest(&mut answer);
            answer
        }
    };
    let mut resp = record.finish(answer);
    if let Some((status, x_cache)) = cache_label {
        resp.headers_mut().insert(cached::CACHE_STATUS, status);
        if let Some(x) = x_cache {
            resp.headers_mut().insert(crate::cache::fill::X_CACHE, x);
        }
    }
    resp.headers_mut()
        .insert(request_id::X_REQUEST_ID.clone(), request_id);
    resp
}

/// First matching route, in configuration order.
fn route<B>(generation: &Generation, req: &Request<B>) -> Option<usize> {
    let host = crate::matching::request_host(req).unwrap_or("");
    let path = req.uri().path();
    generation
        .config
        .routes
        .iter()
        .position(|r| r.matcher.matches(req.method(), host, path, req.headers()))
}

impl Session {
    /// Phases 3–9 for a routed request.
    async fn run(&mut self, req: Request<Body>, record: &mut log::Record) -> Answer {
        let req = inbound::client_body(req, self.route().max_request_body, record)?;
        // 3. on-request filters: may answer the client themselves.
        let req = match self.on_request(req)? {
            filters::Step::Continue(req) => req,
            filters::Step::Respond(resp) => return Ok(resp),
        };
        if self.route().compression.is_some() {
            self.want = compress::negotiate(req.headers());
        }
        match &self.route().cache {
            // 4. cache lookup; on a miss 5–9 run on the cache's behalf.
            Some(policy) => self.cached(policy, req).await,
            None => {
                let method = req.method().clone();
                // 5. choose, 6. upstream, 7. on-response
                let resp = self.forward(req).await?;
                // 8. compress
                Ok(self.compressed(resp, &method))
            }
        }
    }

    fn route(&self) -> &Route {
        &self.generation.config.routes[self.r]
    }

    fn route_rt(&self) -> &RouteRt {
        &self.generation.routes[self.r]
    }

    fn pool(&self) -> &UpstreamPool {
        &self.generation.upstreams[self.route().upstream]
    }

    /// The endpoint the request was last sent to, for logs.
    fn endpoint_name(&self) -> Option<String> {
        let i = self
            .learnt
            .endpoint
            .load(Ordering::Relaxed)
            .checked_sub(1)?;
        self.pool()
            .endpoints
            .get(i)
            .map(|e| e.authority.to_string())
    }

    /// Phase 8: the negotiated encoding, streamed.
    fn compressed(&self, resp: Response<Body>, method: &Method) -> Response<Body> {
        match &self.route().compression {
            Some(c) => compress::stream(resp, method, self.want, c),
            None => resp,
        }
    }
}
