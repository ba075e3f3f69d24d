//! Answers without an upstream (`config/actions.rs`): a redirect to HTTPS and
//! a route's fixed `respond:`.

use http::{HeaderValue, Request, Response, StatusCode, header};

use super::{ConnInfo, ProxyError};
use crate::body::{Body, full, local_response};
use crate::config::actions::{HttpsRedirect, Respond};
use crate::node::Generation;

/// The same URL over HTTPS (RFC 9110 §15.4): the client's host, the
/// configured port (left out when 443), the path and query unchanged. A
/// request whose host is not a valid authority gets 400: it cannot be sent
/// anywhere, and echoing it would be an open redirect.
pub fn https_redirect<B>(req: &Request<B>, to: &HttpsRedirect) -> Response<Body> {
    let host = crate::matching::request_host(req).unwrap_or("");
    let authority = if to.port == 443 {
        host.to_owned()
    } else {
        format!("{host}:{}", to.port)
    };
    let valid = !host.is_empty()
        && authority
            .parse::<http::uri::Authority>()
            .is_ok_and(|a| a.as_str() == authority);
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{authority}{path}");
    let Some(location) = valid
        .then(|| HeaderValue::from_str(&location).ok())
        .flatten()
    else {
        return local_response(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "a redirect to HTTPS needs a valid Host\n",
        );
    };
    let mut resp = local_response(to.status, "text/plain; charset=utf-8", "moved to HTTPS\n");
    resp.headers_mut().insert(header::LOCATION, location);
    resp
}

/// The route's fixed answer.
pub fn respond(r: &Respond) -> Response<Body> {
    let mut resp = Response::new(full(r.body.clone()));
    *resp.status_mut() = r.status;
    let h = resp.headers_mut();
    if let Some(t) = &r.content_type {
        h.insert(header::CONTENT_TYPE, t.clone());
    }
    if let Some(l) = &r.location {
        h.insert(header::LOCATION, l.clone());
    }
    resp
}

/// The answer a request gets without an upstream, if any: its plaintext
/// listener's redirect (matched route or not), else its route's `respond:`
/// or, on plaintext, the route's redirect. Inbound errors keep their own answer.
pub fn local_answer<B>(
    generation: &Generation,
    conn: &ConnInfo,
    req: &Request<B>,
    routed: &Result<usize, ProxyError>,
) -> Option<Response<Body>> {
    let plaintext = conn.scheme == "http";
    if plaintext && matches!(routed, Ok(_) | Err(ProxyError::NoRoute)) {
        let listener = generation
            .config
            .listeners
            .iter()
            .find(|l| *l.name == *conn.listener);
        if let Some(to) = listener.and_then(|l| l.https_redirect.as_ref()) {
            return Some(https_redirect(req, to));
        }
    }
    let route = &generation.config.routes[*routed.as_ref().ok()?];
    match (&route.respond, &route.https_redirect) {
        (Some(fixed), _) => Some(respond(fixed)),
        (None, Some(to)) if plaintext => Some(https_redirect(req, to)),
        _ => None,
    }
}
