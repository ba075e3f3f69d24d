//! The filter stage: a route's filter plugins see the request head before
//! routing (in order) and the response head on the way back (in reverse
//! order, so the first filter has the last word). A stage with no filters
//! costs nothing.

use std::sync::Arc;

use http::{Request, Response};

use super::error::ProxyError;
use super::{ConnInfo, Gateway};
use crate::body::Body;
use crate::config::OnError;
use crate::plugin::{CallContext, FilterAction, FilterPlugin, HeaderEdit};

type Forwarded = (Result<Response<Body>, ProxyError>, Option<String>);

impl Gateway {
    pub(super) async fn filtered(
        &self,
        r: usize,
        req: Request<Body>,
        conn: &ConnInfo,
    ) -> Forwarded {
        let filters = &self.route_filters[r];
        if filters.is_empty() {
            return self.edge(r, req, conn).await;
        }
        let ctx = CallContext {
            client: conn.client.ip(),
            scheme: conn.scheme,
            route: self.route_names[r].clone(),
        };
        let (mut parts, body) = req.into_parts();
        for f in filters {
            match f.on_request(&mut parts, &ctx) {
                Ok(FilterAction::Continue(edits)) => {
                    HeaderEdit::apply_all(&edits, &mut parts.headers)
                }
                Ok(FilterAction::Respond(resp)) => return (Ok(resp), None),
                Err(fault) => {
                    if let Some(e) = policy(f, fault) {
                        return (Err(e), None);
                    }
                }
            }
        }
        // on-response reads the request too; the forwarded head is consumed.
        let mut kept = head_copy(&parts);
        let (resp, endpoint) = self.edge(r, Request::from_parts(parts, body), conn).await;
        let Ok(mut resp) = resp else {
            return (resp, endpoint);
        };
        for f in filters.iter().rev() {
            let status = resp.status().as_u16();
            match f.on_response(&mut kept, &ctx, status, resp.headers_mut()) {
                Ok(FilterAction::Continue(edits)) => {
                    HeaderEdit::apply_all(&edits, resp.headers_mut())
                }
                Ok(FilterAction::Respond(replacement)) => resp = replacement,
                Err(fault) => {
                    if let Some(e) = policy(f, fault) {
                        return (Err(e), endpoint);
                    }
                }
            }
        }
        (Ok(resp), endpoint)
    }
}

/// `fallback`: carry on unfiltered; `fail`: the request fails.
fn policy(f: &Arc<FilterPlugin>, fault: crate::plugin::Fault) -> Option<ProxyError> {
    f.metrics.policy(f.on_error);
    match f.on_error {
        OnError::Fallback => None,
        OnError::Fail => Some(ProxyError::Plugin {
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
