//! Phases 5 and 6, choose an endpoint and send the request upstream: turn the
//! client's request into the upstream's, send it over the pooled client, and
//! turn the answer back; then phase 7 (on-response filters) on the answer.
//! Bodies stream through, under the route's idle timeouts and deadline.

use std::sync::atomic::Ordering;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme, Uri};
use http::{Request, Response, Version};

use super::error::ProxyError;
use super::outgoing::{Outgoing, wants_retry};
use super::{Answer, Session, headers};
use crate::body::{self, Body, Side};
use crate::config::{Route, UpstreamProtocol};
use crate::plugin::{CallContext, HeaderEdit};
use crate::upstream::Pick;
use crate::upstream::breaker::Limit;

impl Session {
    /// Phases 5–7 for one request.
    pub(super) async fn forward(&self, req: Request<Body>) -> Answer {
        let resp = self.exchange_held(req).await?;
        self.on_response(resp)
    }

    /// Phases 5 and 6: tries on up to `retries.max-retries + 1` endpoints,
    /// within the retry budget, the breaker's limits and the route's timeouts.
    pub(super) async fn exchange(&self, req: Request<Body>) -> Answer {
        let route = self.route();
        let pool = self.pool();
        let upstream_metrics = &self.generation.upstream_metrics[route.upstream];
        let cfg_upstream = &self.generation.config.upstreams[route.upstream];
        let node_name = &self.generation.config.node.name;
        let timeouts = route.body_timeouts;
        let started_all = tokio::time::Instant::now();
        let deadline = timeouts.deadline.map(|d| started_all + d);
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
        let mut upgrade = super::upgrade::take(&mut parts, self.conn.hold.as_ref());

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
        // No endpoint is chosen, and no upstream connection taken, before the
        // request body has started.
        let body = body::timed(body, Side::Request, timeouts.request_idle, None);
        let mut outgoing = Outgoing::start(body, route.max_request_body).await?;
        let policy = &pool.resilience.retries;
        let Some(requests_slot) = pool.breaker.acquire(Limit::Requests) else {
            upstream_metrics.overflow(Limit::Requests as usize);
            return Err(ProxyError::Overloaded {
                upstream: pool.name.clone(),
                limit: Limit::Requests,
            });
        };
        let active = pool.budget.request();
        let mut held = Some((requests_slot, active));
        // The route's `timeout` runs from the send, not from the client's first byte.
        let sending = tokio::time::Instant::now();
        let head_deadline =
            deadline.map_or(sending + route.timeout, |d| d.min(sending + route.timeout));
        let per_try = policy.per_try_timeout.unwrap_or(route.timeout);
        let ctx = CallContext {
            client: self.conn.client.ip(),
            scheme: self.conn.scheme,
            route: self.route_rt().name.clone(),
        };
        let max_tries = (policy.max_retries as usize + 1).min(pool.endpoints.len());
        let mut tried = Vec::new();
        let mut last: Option<Answer> = None;
        for attempt in 0..max_tries {
            // A retry after a refused connection is free: nothing reached the
            // application, so it cannot amplify an outage.
            let free = matches!(last, Some(Err(ProxyError::Connect { .. })));
            let _retrying = if attempt > 0 && !free {
                let Some(slot) = pool
                    .budget
                    .retry(policy.budget_percent, policy.min_concurrent)
                else {
                    upstream_metrics.retry_budget_exhausted();
                    break;
                };
                Some(slot)
            } else {
                None
            };
            // 5. choose
            let (idx, request_edits, response_edits) = match pool.choose(&mut parts, &ctx, &tried) {
                Pick::Endpoint {
                    idx,
                    request_headers,
                    response_headers,
                } => (idx, request_headers, response_headers),
                Pick::Respond(resp) => return Ok(resp),
                Pick::Unavailable if attempt > 0 => break,
                Pick::Unavailable => {
                    return Err(ProxyError::Unavailable {
                        upstream: pool.name.clone(),
                    });
                }
                Pick::Failed { plugin, fault } => {
                    return Err(ProxyError::Plugin { plugin, fault });
                }
            };
            let left = head_deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            if attempt > 0 {
                upstream_metrics.retry();
            }
            tried.push(idx);
            self.learnt.endpoint.store(idx + 1, Ordering::Relaxed);
            let endpoint = &pool.endpoints[idx];
            let uri = Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(endpoint.authority.clone())
                .path_and_query(path_and_query.clone())
                .build()
                .map_err(|_| ProxyError::BadRequest("request target cannot be forwarded\n"))?;
            let mut out = Request::new(outgoing.next());
            *out.method_mut() = parts.method.clone();
            *out.uri_mut() = uri;
            *out.version_mut() = parts.version;
            // A replayable request with a try left keeps its head for the router's
            // next call and that try; any other is sent once, so its headers move out.
            *out.headers_mut() = if outgoing.replayable() && attempt + 1 < max_tries {
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
            let try_timeout = per_try.min(left);
            let sent = tokio::time::timeout(try_timeout, pool.client().request(out)).await;
            let outcome = match sent {
                Ok(Ok(mut resp)) => {
                    let status = resp.status();
                    let switched = match status {
                        http::StatusCode::SWITCHING_PROTOCOLS => upgrade.take().map(|u| {
                            (
                                u,
                                resp.headers().get(header::UPGRADE).cloned(),
                                hyper::upgrade::on(&mut resp),
                            )
                        }),
                        _ => None,
                    };
                    self.node
                        .load_reports
                        .record(&pool.name, stats, resp.headers_mut());
                    let ttfb = started.elapsed();
                    self.learnt.upstream_us.store(
                        u64::try_from(ttfb.as_micros()).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                    stats.succeeded(ttfb);
                    pool.answered(idx, status);
                    upstream_metrics.first_byte(ttfb);
                    let metrics = upstream_metrics.clone();
                    let retry = switched.is_none()
                        && attempt + 1 < max_tries
                        && outgoing.replayable()
                        && wants_retry(policy, &parts.method, Ok(status));
                    // The last try's answer keeps the request's slots until its body ends.
                    let slots = if retry { None } else { held.take() };
                    let body_timeouts = (timeouts.response_idle, deadline);
                    let mut resp = self.response(
                        route,
                        resp,
                        client_version,
                        body_timeouts,
                        move |bytes, _| {
                            // In flight, for the endpoint and the service, until the body ends.
                            drop((endpoint_busy, upstream_busy, slots));
                            metrics.finish(status, started.elapsed(), 0, bytes);
                        },
                    );
                    HeaderEdit::apply_all(&response_edits, resp.headers_mut());
                    if let Some((u, protocol, on)) = switched {
                        let counter = self.node.metrics.upgrades.clone();
                        super::upgrade::switched(u, protocol, on, &mut resp, counter);
                    }
                    if !retry {
                        return Ok(resp);
                    }
                    tracing::debug!(%status, "trying the next endpoint");
                    last = Some(Ok(resp));
                    continue;
                }
                Err(_) => {
                    upstream_metrics.timeout();
                    ProxyError::Timeout {
                        upstream: pool.name.clone(),
                        endpoint: endpoint.authority.to_string(),
                        timeout: try_timeout,
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
            upstream_metrics.finish(outcome.status(), started.elapsed(), 0, 0);
            match &outcome {
                ProxyError::Connect { .. } => upstream_metrics.connect_error(),
                ProxyError::Overloaded { limit, .. } => upstream_metrics.overflow(*limit as usize),
                _ => {}
            }
            if let Some(reason) = outcome.endpoint_failure() {
                pool.failed(idx, reason);
            }
            let retry = outgoing.replayable() && wants_retry(policy, &parts.method, Err(&outcome));
            if retry {
                tracing::debug!(error = %outcome, "trying the next endpoint");
            }
            last = Some(Err(outcome));
            if !retry {
                break;
            }
        }
        // Nothing tried with no endpoint at all: DNS discovery found no record.
        if last.is_none() && pool.endpoints.is_empty() {
            return Err(ProxyError::Unavailable {
                upstream: pool.name.clone(),
            });
        }
        last.unwrap_or(Err(ProxyError::Timeout {
            upstream: pool.name.clone(),
            endpoint: self.endpoint_name().unwrap_or_default(),
            timeout: route.timeout,
        }))
    }

    fn response(
        &self,
        route: &Route,
        resp: Response<hyper::body::Incoming>,
        client_version: Version,
        (idle, deadline): (std::time::Duration, Option<tokio::time::Instant>),
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
        let timed = body::timed(body::boxed(incoming), Side::Response, idle, deadline);
        Response::from_parts(parts, body::on_end(timed, done))
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
