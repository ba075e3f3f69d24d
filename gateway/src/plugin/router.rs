//! Calling a router plugin: the request head goes in as a resource, the
//! candidates as small integer records, and the decision comes back checked.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use wasmtime::Store;
use wasmtime::component::{Component, Linker, Resource};

use super::bindings::router::{Router, RouterPre};
use super::bindings::types;
use super::host::{HostState, RequestView, UpstreamInfo, UpstreamView};
use super::pool::{Fault, Instance, Pool, World};
use crate::body::{self, Body};

pub use types::Candidate;

/// Largest body a plugin may answer with.
const MAX_DIRECT_BODY: usize = 64 << 10;

impl World for Router {
    type Pre = RouterPre<HostState>;

    fn pre(linker: &Linker<HostState>, component: &Component) -> wasmtime::Result<Self::Pre> {
        RouterPre::new(linker.instantiate_pre(component)?)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }

    fn init(
        &self,
        store: &mut Store<HostState>,
        config: &[(String, String)],
    ) -> wasmtime::Result<Result<(), String>> {
        self.call_init(store, config)
    }
}

/// One header edit, validated.
#[derive(Debug, Clone)]
pub enum HeaderEdit {
    Set(HeaderName, HeaderValue),
    Append(HeaderName, HeaderValue),
    Remove(HeaderName),
}

impl HeaderEdit {
    pub fn apply_all(edits: &[HeaderEdit], h: &mut http::HeaderMap) {
        for e in edits {
            match e {
                Self::Set(n, v) => {
                    h.insert(n.clone(), v.clone());
                }
                Self::Append(n, v) => {
                    h.append(n.clone(), v.clone());
                }
                Self::Remove(n) => {
                    h.remove(n);
                }
            }
        }
    }
}

/// What the gateway does with a request, as a router decided it.
#[derive(Debug)]
pub enum Decision {
    Forward {
        endpoint: usize,
        request_headers: Vec<HeaderEdit>,
        response_headers: Vec<HeaderEdit>,
    },
    Respond(Response<Body>),
    Unavailable,
}

/// The request-side facts a call needs besides the head itself.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub client: IpAddr,
    pub scheme: &'static str,
    pub route: Arc<str>,
}

pub(super) fn choose(
    pool: &Pool<Router>,
    parts: &mut http::request::Parts,
    ctx: &CallContext,
    upstream: &Arc<UpstreamInfo>,
    candidates: &[Candidate],
) -> Result<Decision, Fault> {
    let mut lease = pool.checkout()?;
    let inst = lease.get();
    let req =
        inst.store
            .data_mut()
            .lend_request(parts, ctx.client, ctx.scheme, ctx.route.clone())?;
    // Every outcome of the call, a fault included, comes back here before
    // anything returns, so the head is always handed back: the on-error
    // fallback forwards it.
    let answer = call(inst, &req, upstream, candidates);
    inst.store.data_mut().take_back_request(req, parts);
    let decision = convert(answer?, candidates)?;
    lease.release();
    Ok(decision)
}

fn call(
    inst: &mut Instance<Router>,
    req: &Resource<RequestView>,
    upstream: &Arc<UpstreamInfo>,
    candidates: &[Candidate],
) -> Result<types::Decision, Fault> {
    let up = inst.store.data_mut().lend_upstream(upstream)?;
    let (req_borrow, up_borrow) = (
        Resource::<RequestView>::new_borrow(req.rep()),
        Resource::<UpstreamView>::new_borrow(up.rep()),
    );
    let answer =
        inst.run(|guest, store| guest.call_choose(store, req_borrow, up_borrow, candidates));
    inst.store.data_mut().take_back_upstream(up);
    answer
}

/// A forward must name the `id` of an offered candidate (ids are endpoint
/// indices, but the host may offer fewer than all), checked by id, not by count.
pub(crate) fn convert(d: types::Decision, candidates: &[Candidate]) -> Result<Decision, Fault> {
    Ok(match d {
        types::Decision::Forward(f) => {
            if !candidates.iter().any(|c| c.id == f.endpoint) {
                return Err(Fault::Invalid(format!(
                    "chose endpoint {}, not among the {} offered",
                    f.endpoint,
                    candidates.len()
                )));
            }
            Decision::Forward {
                endpoint: f.endpoint as usize,
                request_headers: edits(f.request_headers)?,
                response_headers: edits(f.response_headers)?,
            }
        }
        types::Decision::Respond(r) => Decision::Respond(direct_response(r)?),
        types::Decision::Unavailable => Decision::Unavailable,
    })
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), Fault> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Fault::Invalid(format!("\"{name}\" is not a header name")))?;
    if is_hop_by_hop(&n) {
        return Err(Fault::Invalid(format!("hop-by-hop header \"{name}\"")));
    }
    let v = HeaderValue::from_str(value)
        .map_err(|_| Fault::Invalid(format!("invalid value for header \"{name}\"")))?;
    Ok((n, v))
}

/// Fields a plugin may not set: they describe one connection (RFC 9110 §7.6.1)
/// or are computed by the host.
fn is_hop_by_hop(n: &HeaderName) -> bool {
    use http::header;
    [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ]
    .contains(n)
        || n == "keep-alive"
        || n == "proxy-connection"
}

pub(super) fn edits(list: Vec<types::HeaderEdit>) -> Result<Vec<HeaderEdit>, Fault> {
    list.into_iter()
        .map(|e| {
            Ok(match e {
                types::HeaderEdit::Set(h) => {
                    let (n, v) = header(&h.name, &h.value)?;
                    HeaderEdit::Set(n, v)
                }
                types::HeaderEdit::Append(h) => {
                    let (n, v) = header(&h.name, &h.value)?;
                    HeaderEdit::Append(n, v)
                }
                types::HeaderEdit::Remove(name) => HeaderEdit::Remove(
                    HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| Fault::Invalid(format!("\"{name}\" is not a header name")))?,
                ),
            })
        })
        .collect()
}

pub(super) fn direct_response(r: types::DirectResponse) -> Result<Response<Body>, Fault> {
    if !(200..=599).contains(&r.status) {
        return Err(Fault::Invalid(format!(
            "status {} is outside 200..=599",
            r.status
        )));
    }
    if r.body.len() > MAX_DIRECT_BODY {
        return Err(Fault::Invalid(format!(
            "a {}-byte body is over the 64 KiB limit",
            r.body.len()
        )));
    }
    let mut resp = Response::new(body::full(Bytes::from(r.body)));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).map_err(|e| Fault::Invalid(e.to_string()))?;
    for h in r.headers {
        let (n, v) = header(&h.name, &h.value)?;
        if n == http::header::CONTENT_LENGTH {
            continue;
        }
        resp.headers_mut().append(n, v);
    }
    Ok(resp)
}
