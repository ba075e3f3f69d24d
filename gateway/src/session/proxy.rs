//! Phases 5 and 6, choose an endpoint and send the request upstream: turn the
//! client's request into the upstream's, send it over the pooled client, and
//! turn the answer back; then phase 7 (on-response filters) on the answer.
//! Bodies stream through.

use std::sync::atomic::Ordering;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme, Uri};
use http::{Request, Response, Version};
use http_body::Body as _;

use super::error::ProxyError;
use super::{Answer, Session, headers};
use crate::body::{self, Body};
use crate::config::{Route, UpstreamProtocol};
use crate::plugin::{CallContext, HeaderEdit};
use crate::upstream::Pick;

/// Endpoints tried for one request whose body is empty (a connect failure
/// moves it to the next endpoint; a request with a body is never replayed).
const MAX_ATTEMPTS: usize = 3;

impl Session {
    /// Phases 5–7 for one request.
    pub(super) async fn forward(&self, req: Request<Body>) -> Answer {
        let resp = self.exchange(req).await?;
        self.on_response(resp)
    }

    async fn exchange(&self, req: Request<Body>) -> Answer {
        let route = self.route();
        let pool = self.pool();
        let upstream_metrics = &self.generation.upstream_metrics[route.upstream];
        let cfg_upstream = &self.generation.config.upstreams[route.upstream];
        let node_name = &self.generation.config.node.name;
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
        let path_and_query = rewrite(route, &parts.uri)?;
        let mut upgrade = super::upgrade::take(&mut parts);

        let h = &mut parts.headers;
        headers::strip_hop_by_hop(h, true);
        if let Some(u) = &upgrade {
            super::upgrade::restore(u, h);
        }
        headers::set_forwarded(h, self.conn.client.ip(), self.conn.scheme, host.as_deref());
        headers::append_via(h, client_version, node_name);
        if let Some(a) = authority {
            h.insert(header::HOST, a);
        }
        route.request_headers.apply(h);

        parts.version = match cfg_upstream.protocol {
            // An upgrade is an HTTP/1.1 mechanism (RFC 8441 maps it back to one).
            UpstreamProtocol::H2c if upgrade.is_none() => Version::HTTP_2,
            _ => Version::HTTP_11,
        };
        let replayable = body.is_end_stream() && pool.endpoints.len() > 1;
        let mut body = Some(body);
        let mut last_err = None;
        let ctx = CallContext {
            client: self.conn.client.ip(),
            scheme: self.conn.scheme,
            route: self.route_rt().name.clone(),
        };
        let mut tried = Vec::new();
        for attempt in 0..MAX_ATTEMPTS.min(pool.endpoints.len()) {
            // 5. choose
            let (idx, request_edits, response_edits) = match pool.choose(&mut parts, &ctx, &tried) {
                Pick::Endpoint {
                    idx,
                    request_headers,
                    response_headers,
                } => (idx, request_headers, response_headers),
                Pick::Respond(resp) => return Ok(resp),
                Pick::Unavailable => {
                    return Err(ProxyError::Unavailable {
                        upstream: pool.name.clone(),
                    });
                }
                Pick::Failed { plugin, fault } => {
                    return Err(ProxyError::Plugin { plugin, fault });
                }
            };
            if attempt > 0 {
                upstream_metrics.retry();
            }
            tried.push(idx);
            self.endpoint.store(idx + 1, Ordering::Relaxed);
            let endpoint = &pool.endpoints[idx];
            let uri = Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(endpoint.authority.clone())
                .path_and_query(path_and_query.clone())
                .build()
                .map_err(|_| ProxyError::BadRequest("request target cannot be forwarded\n"))?;
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
            super::interim::attach(&parts.extensions, &mut out);

            // 6. upstream
            let stats = &pool.stats[idx];
            let endpoint_busy = stats.start();
            let upstream_busy = upstream_metrics.start();
            let started = Instant::now();
            let sent = tokio::time::timeout(route.timeout, pool.client().request(out)).await;
            let err = match sent {
                Ok(Ok(mut resp)) => {
                    let switched = match upgrade.take() {
                        Some(u) if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS => {
                            Some((
                                u,
                                resp.headers().get(header::UPGRADE).cloned(),
                                hyper::upgrade::on(&mut resp),
                            ))
                        }
                        _ => None,
                    };
                    self.node
                        .load_reports
                        .record(&pool.name, resp.headers_mut());
                    let ttfb = started.elapsed();
                    self.upstream_us.store(
                        u64::try_from(ttfb.as_micros()).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                    stats.succeeded(ttfb);
                    upstream_metrics.first_byte(ttfb);
                    let status = resp.status();
                    let metrics = upstream_metrics.clone();
                    let mut resp = self.response(route, resp, client_version, move |bytes, _| {
                        // In flight, for the endpoint and the service, until the body ends.
                        drop((endpoint_busy, upstream_busy));
                        metrics.finish(status, started.elapsed(), 0, bytes);
                    });
                    HeaderEdit::apply_all(&response_edits, resp.headers_mut());
                    if let Some((u, protocol, on)) = switched {
                        let counter = self.node.metrics.upgrades.clone();
                        super::upgrade::switched(u, protocol, on, &mut resp, counter);
                    }
                    return Ok(resp);
                }
                Err(_) => {
                    upstream_metrics.timeout();
                    ProxyError::Timeout {
                        upstream: pool.name.clone(),
                        endpoint: endpoint.authority.to_string(),
                        timeout: route.timeout,
                    }
                }
                Ok(Err(e)) => ProxyError::from_exchange(
                    e,
                    &pool.name,
                    endpoint.authority.as_str(),
                    route.max_request_body,
                ),
            };
            // A failed attempt counts in the service's latency and error window too.
            drop((endpoint_busy, upstream_busy));
            upstream_metrics.finish(err.status(), started.elapsed(), 0, 0);
            if let ProxyError::Connect { .. } = &err {
                upstream_metrics.connect_error();
                if stats.connect_failed(pool.now_ms(), cfg_upstream.unhealthy_cool_down) {
                    tracing::warn!(upstream = %pool.name, endpoint = %endpoint.authority, "endpoint marked unhealthy after a connect failure");
                }
            }
            let retry = replayable && err.retryable();
            if retry {
                tracing::debug!(error = %err, "trying the next endpoint");
            }
            last_err = Some(err);
            if !retry {
                break;
            }
        }
        Err(last_err.unwrap_or(ProxyError::Internal("no endpoint was tried")))
    }

    fn response(
        &self,
        route: &Route,
        resp: Response<hyper::body::Incoming>,
        client_version: Version,
        done: impl FnOnce(u64, bool) + Send + 'static,
    ) -> Response<Body> {
        let (mut parts, incoming) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, false);
        headers::append_via(
            &mut parts.headers,
            parts.version,
            &self.generation.config.node.name,
        );
        route.response_headers.apply(&mut parts.headers);
        parts.version = client_version;
        Response::from_parts(parts, body::on_end(body::boxed(incoming), done))
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
    if !crate::matching::prefix_matches(from, path) {
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
