//! Phases 3 and 7, the filter plugins: a route's filters see the request head
//! before the cache and the upstream (in order), and the upstream's response
//! head before compression and cache store (in reverse order, so the first
//! filter has the last word). Their response edits are therefore what the
//! cache stores; a cache hit is served as stored, without calling them again.
//! A route with no filters costs nothing.

use std::sync::Arc;

use http::{Request, Response};

use super::error::ProxyError;
use super::{Answer, Session};
use crate::body::Body;
use crate::config::OnError;
use crate::plugin::{CallContext, FilterAction, FilterPlugin, HeaderEdit};

pub enum Step {
    Continue(Request<Body>),
    /// A filter answered the client itself.
    Respond(Response<Body>),
}

impl Session {
    fn call_context(&self) -> CallContext {
        CallContext {
            client: self.conn.client.ip(),
            scheme: self.conn.scheme,
            route: self.route_rt().name.clone(),
        }
    }

    /// Phase 3.
    pub(super) fn on_request(&mut self, req: Request<Body>) -> Result<Step, ProxyError> {
        let filters = &self.generation.routes[self.r].filters;
        if filters.is_empty() {
            return Ok(Step::Continue(req));
        }
        let ctx = self.call_context();
        let (mut parts, body) = req.into_parts();
        // A `rate-limit:` block is the route's first filter (config/limits.rs).
        let limiter = self.route().rate_limit.is_some();
        for (i, f) in filters.iter().enumerate() {
            match f.on_request(&mut parts, &ctx) {
                Ok(FilterAction::Continue(edits)) => {
                    HeaderEdit::apply_all(&edits, &mut parts.headers)
                }
                Ok(FilterAction::Respond(resp)) => {
                    if limiter && i == 0 && resp.status() == http::StatusCode::TOO_MANY_REQUESTS {
                        self.node.metrics.rate_limited.inc();
                    }
                    return Ok(Step::Respond(resp));
                }
                Err(fault) => policy(f, fault)?,
            }
        }
        // on-response reads the request too; the forwarded head is consumed.
        self.kept = Some(Arc::new(head_copy(&parts)));
        Ok(Step::Continue(Request::from_parts(parts, body)))
    }

    /// Phase 7, on the upstream's response (or a router's direct answer).
    pub(super) fn on_response(&self, mut resp: Response<Body>) -> Answer {
        let filters = &self.generation.routes[self.r].filters;
        let Some(kept) = &self.kept else {
            return Ok(resp);
        };
        let ctx = self.call_context();
        let mut head = head_copy(kept);
        for f in filters.iter().rev() {
            let status = resp.status().as_u16();
            match f.on_response(&mut head, &ctx, status, resp.headers_mut()) {
                Ok(FilterAction::Continue(edits)) => {
                    HeaderEdit::apply_all(&edits, resp.headers_mut())
                }
                Ok(FilterAction::Respond(replacement)) => resp = replacement,
                Err(fault) => policy(f, fault)?,
            }
        }
        Ok(resp)
    }
}

/// `fallback`: carry on unfiltered; `fail`: the request fails.
fn policy(f: &Arc<FilterPlugin>, fault: crate::plugin::Fault) -> Result<(), ProxyError> {
    f.metrics.policy(f.on_error);
    match f.on_error {
        OnError::Fallback | OnError::FallbackTagged => Ok(()),
        OnError::Fail => Err(ProxyError::Plugin {
            plugin: f.name().to_owned(),
            fault,
        }),
    }
}

fn head_copy(parts: &http::request::Parts) -> http::request::Parts {
    let mut head = Request::new(());
    *head.method_mut() = parts.method.clone();
    *head.uri_mut() = parts.uri.clone();
    *head.version_mut() = parts.version;
    *head.headers_mut() = parts.headers.clone();
    head.into_parts().0
}
