//! The upstream stage: turn the client's request into the upstream's, send it
//! over the pooled client, and turn the answer back. Bodies stream through.

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme, Uri};
use http::{Request, Response, Version};
use http_body::Body as _;

use super::error::ProxyError;
use super::{ConnInfo, Gateway, headers, route};
use crate::body::{self, Body};
use crate::config::{Route, UpstreamProtocol};
use crate::plugin::{CallContext, HeaderEdit};
use crate::upstream::Pick;

/// Endpoints tried for one request whose body is empty (a connect failure
/// moves it to the next endpoint; a request with a body is never replayed).
const MAX_ATTEMPTS: usize = 3;

type Forwarded = (Result<Response<Body>, ProxyError>, Option<String>);

impl Gateway {
    pub(super) async fn forward(&self, r: usize, req: Request<Body>, conn: &ConnInfo) -> Forwarded {
        let route = &self.config.routes[r];
        let pool = &self.upstreams[route.upstream];
        let cfg_upstream = &self.config.upstreams[route.upstream];
        let (mut parts, body) = req.into_parts();
        let client_version = parts.version;

        let authority = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .or_else(|| parts.headers.get(header::HOST).cloned());
        let host = authority
            .as_ref()
            .and_then(|a| a.to_str().ok())
            .map(str::to_owned);
        let path_and_query = match rewrite(route, &parts.uri) {
            Ok(pq) => pq,
            Err(e) => return (Err(e), None),
        };

        let h = &mut parts.headers;
        headers::strip_hop_by_hop(h, true);
        headers::set_forwarded(h, conn.client.ip(), conn.scheme, host.as_deref());
        headers::append_via(h, client_version, &self.config.node.name);
        if let Some(a) = authority {
            h.insert(header::HOST, a);
        }
        route.request_headers.apply(h);

        parts.version = match cfg_upstream.protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::H2c => Version::HTTP_2,
        };
        let replayable = body.is_end_stream() && pool.endpoints.len() > 1;
        let mut body = Some(body);
        let mut last_err = None;
        let ctx = CallContext {
            client: conn.client.ip(),
            scheme: conn.scheme,
            route: self.route_names[r].clone(),
        };
        let mut tried = Vec::new();
        for _attempt in 0..MAX_ATTEMPTS.min(pool.endpoints.len()) {
            let (idx, request_edits, response_edits) = match pool.choose(&mut parts, &ctx, &tried) {
                Pick::Endpoint {
                    idx,
                    request_headers,
                    response_headers,
                } => (idx, request_headers, response_headers),
                Pick::Respond(resp) => return (Ok(resp), None),
                Pick::Unavailable => {
                    return (
                        Err(ProxyError::Unavailable {
                            upstream: pool.name.clone(),
                        }),
                        None,
                    );
                }
                Pick::Failed { plugin, fault } => {
                    return (Err(ProxyError::Plugin { plugin, fault }), None);
                }
            };
            tried.push(idx);
            let endpoint = &pool.endpoints[idx];
            let endpoint_name = endpoint.authority.to_string();
            let uri = Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(endpoint.authority.clone())
                .path_and_query(path_and_query.clone())
                .build();
            let Ok(uri) = uri else {
                return (
                    Err(ProxyError::BadRequest(
                        "request target cannot be forwarded\n",
                    )),
                    None,
                );
            };
            let mut out = Request::new(body.take().unwrap_or_else(body::empty));
            *out.method_mut() = parts.method.clone();
            *out.uri_mut() = uri;
            *out.version_mut() = parts.version;
            // A replayable request keeps its head for the router's next call and the
            // next attempt; any other is sent once, so its headers move out.
            *out.headers_mut() = if replayable {
                parts.headers.clone()
            } else {
                std::mem::take(&mut parts.headers)
            };
            HeaderEdit::apply_all(&request_edits, out.headers_mut());

            let stats = &pool.stats[idx];
            let in_flight = stats.start();
            let started = std::time::Instant::now();
            let sent = tokio::time::timeout(route.timeout, pool.client().request(out)).await;
            drop(in_flight);
            let err = match sent {
                Ok(Ok(resp)) => {
                    stats.succeeded(started.elapsed());
                    let mut resp = self.response(route, resp, client_version);
                    HeaderEdit::apply_all(&response_edits, resp.headers_mut());
                    return (Ok(resp), Some(endpoint_name));
                }
                Err(_) => ProxyError::Timeout {
                    upstream: pool.name.clone(),
                    endpoint: endpoint_name.clone(),
                    timeout: route.timeout,
                },
                Ok(Err(e)) if super::inbound::is_over_limit(&e) => ProxyError::TooLarge {
                    limit: route.max_request_body.unwrap_or_default(),
                },
                Ok(Err(e)) if e.is_connect() => ProxyError::Connect {
                    upstream: pool.name.clone(),
                    endpoint: endpoint_name.clone(),
                    source: Box::new(e),
                },
                Ok(Err(e)) => ProxyError::Upstream {
                    upstream: pool.name.clone(),
                    endpoint: endpoint_name.clone(),
                    source: Box::new(e),
                },
            };
            if matches!(err, ProxyError::Connect { .. })
                && stats.connect_failed(pool.now_ms(), cfg_upstream.unhealthy_cool_down)
            {
                tracing::warn!(upstream = %pool.name, endpoint = %endpoint_name, "endpoint marked unhealthy after a connect failure");
            }
            let retry = replayable && matches!(err, ProxyError::Connect { .. });
            if retry {
                tracing::warn!(error = %err, "trying the next endpoint");
                self.metrics
                    .upstream_connect_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            last_err = Some((err, endpoint_name));
            if !retry {
                break;
            }
        }
        match last_err {
            Some((e, ep)) => (Err(e), Some(ep)),
            None => (Err(ProxyError::BadRequest("no endpoint\n")), None),
        }
    }

    fn response(
        &self,
        route: &Route,
        resp: Response<hyper::body::Incoming>,
        client_version: Version,
    ) -> Response<Body> {
        let (mut parts, incoming) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, false);
        headers::append_via(&mut parts.headers, parts.version, &self.config.node.name);
        route.response_headers.apply(&mut parts.headers);
        parts.version = client_version;
        Response::from_parts(parts, body::boxed(incoming))
    }
}

/// The path and query sent upstream, with the route's prefix rewrite applied.
fn rewrite(route: &Route, uri: &Uri) -> Result<PathAndQuery, ProxyError> {
    let original = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let Some((from, to)) = &route.rewrite else {
        return original
            .parse()
            .map_err(|_| ProxyError::BadRequest("malformed request target\n"));
    };
    let path = uri.path();
    if !route::prefix_matches(from, path) {
        return original
            .parse()
            .map_err(|_| ProxyError::BadRequest("malformed request target\n"));
    }
    let rest = &path[from.len()..];
    let mut out = String::with_capacity(to.len() + original.len());
    out.push_str(to);
    if out.ends_with('/') && rest.starts_with('/') {
        out.pop();
    }
    if out.is_empty() && !rest.starts_with('/') {
        out.push('/');
    }
    out.push_str(rest);
    if out.is_empty() {
        out.push('/');
    }
    if let Some(q) = uri.query() {
        out.push('?');
        out.push_str(q);
    }
    out.parse()
        .map_err(|_| ProxyError::BadRequest("malformed request target\n"))
}
