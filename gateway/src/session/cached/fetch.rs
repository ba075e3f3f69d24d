//! One upstream exchange on the cache's behalf: the response stored when it may
//! be, a stored entry freshened by a 304, and the outcome turned into the
//! client's answer.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::coded::Coded;
use super::ranged::{self, Ranged};
use super::{About, Did};
use crate::body::{self, Body};
use crate::cache::decode;
use crate::cache::fanout::{self, Fanout, Reader, Streaming};
use crate::cache::fill::{
    Head, OnBody, X_CACHE, etag, freshened, read_limited, stored_since, take_tags, upstream_request,
};
use crate::cache::policy::{self, CacheControl, Times};
use crate::cache::{CacheKey, Entry, Flight, RouteCache};
use crate::session::error::ProxyError;
use crate::session::{Answer, Session};

/// What fetching from upstream for the cache produced.
pub(super) enum Outcome {
    /// The response was stored, less the `Set-Cookie` lines it had (sent to
    /// this client only).
    Stored(Arc<str>, Arc<Entry>, Vec<HeaderValue>),
    Revalidated(Arc<str>, Arc<Entry>),
    /// Not storable: sent on as it came.
    Passed(Response<Body>),
    /// Storable: the body streams to the client and is stored at its end
    /// (unless it turns out too big).
    Streaming(Response<Body>, std::time::Duration),
    /// Upstream failed (an error, or a 5xx when revalidating).
    Failed(Answer),
}

impl Session {
    /// One upstream exchange on the cache's behalf (phases 5–7), then phase 9,
    /// cache store: a full GET, or a conditional one when `stored` has validators.
    pub(super) async fn fetch(
        &self,
        policy: &RouteCache,
        key: &CacheKey,
        head: &Head,
        req_cc: &CacheControl,
        stored: Option<&Arc<Entry>>,
        flight: Option<Flight>,
    ) -> Outcome {
        let request_time = SystemTime::now();
        let resp = self
            .forward(upstream_request(head, stored.map(|e| &**e)))
            .await;
        let times = Times {
            request_time,
            response_time: SystemTime::now(),
        };
        let resp = match resp {
            Ok(resp) if stored.is_some() && resp.status().is_server_error() => {
                return Outcome::Failed(Ok(resp));
            }
            Ok(resp) => resp,
            Err(e) => return Outcome::Failed(Err(e)),
        };
        let cache = &self.node.cache;
        if let Some(entry) = stored.filter(|_| resp.status() == StatusCode::NOT_MODIFIED) {
            let fresh = freshened(entry, policy, resp.headers(), times);
            let full = cache.store.full_key(&key.primary, &head.headers).await;
            let fresh = cache.store.put(full.clone(), fresh).await;
            return Outcome::Revalidated(full, fresh);
        }
        let status = resp.status();
        let resp_cc = CacheControl::parse_response(resp.headers());
        let lifetime = policy::freshness_lifetime(
            status,
            resp.headers(),
            &resp_cc,
            policy.ttl,
            times.response_time,
        );
        // A route that opts in stores responses with Set-Cookie, without it.
        let without_cookies;
        let checked = if policy.store_set_cookie && resp.headers().contains_key(header::SET_COOKIE)
        {
            let mut h = resp.headers().clone();
            h.remove(header::SET_COOKIE);
            without_cookies = h;
            &without_cookies
        } else {
            resp.headers()
        };
        if let Err(why) = policy::storable(
            &Method::GET,
            &head.headers,
            req_cc,
            status,
            checked,
            &resp_cc,
            lifetime,
        ) {
            tracing::debug!(?why, key = %key.primary, "response not stored");
            if status == StatusCode::OK && ranged::wants_range(head) {
                // Not kept, so not worth fetching whole: upstream takes the range.
                drop(resp);
                return passed(self.pass_range(head).await);
            }
            let codings = decode::codings(resp.headers());
            if codings.is_empty() || decode::accepts(&head.headers, &codings) {
                return Outcome::Passed(resp);
            }
            // We asked for identity on this client's behalf: it gets identity.
            let (client, incoming) = resp.into_parts();
            let coded = Coded {
                codings,
                entry: None,
                client,
                cookies: Vec::new(),
            };
            return self.fill_coded(key, head, coded, incoming, flight).await;
        }
        let (mut parts, incoming) = resp.into_parts();
        let limit = cache.settings.max_object_size;
        let initial_age = policy::initial_age(&parts.headers, times);
        let tags = take_tags(&mut parts.headers);
        // What the client gets when the body streams to it: as upstream sent
        // it, less the cache's own fields.
        let mut client = parts.clone();
        client.headers.remove(X_CACHE);
        client.headers.insert(
            header::AGE,
            HeaderValue::from(initial_age.as_secs().min(1 << 31)),
        );
        let h = &mut parts.headers;
        // The client whose request filled the entry still gets its cookies.
        let cookies: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
        h.remove(header::SET_COOKIE);
        let length = h
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        h.remove(header::CONTENT_LENGTH);
        h.remove(header::AGE);
        h.remove(X_CACHE);
        if !h.contains_key(header::DATE)
            && let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(times.response_time))
        {
            h.insert(header::DATE, v);
        }
        let entry = Entry {
            status,
            etag: etag(h),
            last_modified: policy::last_modified(h),
            vary: policy::vary_names(h).unwrap_or_default(),
            headers: parts.headers,
            body: bytes::Bytes::new(),
            variants: Vec::new(),
            stored_at: Instant::now() - stored_since(times.response_time),
            initial_age,
            lifetime,
            cc: resp_cc,
            tags,
            host: key.host.as_str().into(),
            path: key.path.as_str().into(),
            keep_stale: policy.stale_if_unreachable.unwrap_or_default(),
        };
        let codings = decode::codings(&entry.headers);
        if !codings.is_empty() {
            let coded = Coded {
                codings,
                entry: Some(entry),
                client,
                cookies,
            };
            return self.fill_coded(key, head, coded, incoming, flight).await;
        }
        if length.is_some_and(|n| n > limit) {
            if status == StatusCode::OK && ranged::wants_range(head) {
                drop(incoming);
                return self.pass_range_keeping(head).await;
            }
            // Too big to keep: it streams through, uncached.
            return Outcome::Passed(Response::from_parts(client, incoming));
        }
        // A plain GET streams from the fill as it arrives, and so do the
        // waiters coalesced behind it; a HEAD (no body for the client) or a
        // conditional request (answered from the entry) reads the body first.
        if head.method == Method::GET && !conditional(&head.headers) {
            let (node, primary, req) =
                (self.node.clone(), key.primary.clone(), head.headers.clone());
            let mut waiters = client.headers.clone();
            waiters.remove(header::SET_COOKIE);
            let shown = Arc::new(Streaming {
                status,
                headers: waiters,
                lifetime,
                secondary: policy::secondary_key(&entry.vary, &head.headers),
                vary: entry.vary.clone(),
                fan: Fanout::new(),
            });
            let on_body: OnBody = Box::new(move |body| {
                Box::pin(async move {
                    let mut entry = entry;
                    entry.body = body;
                    node.cache.store.insert(&primary, &req, entry).await;
                    node.cache.count(|c| &c.stored);
                })
            });
            let Some(reader) = shown.fan.attach() else {
                return Outcome::Failed(Err(ProxyError::Internal("a new fill refused its reader")));
            };
            if let Some(f) = &flight {
                f.publish(shown.clone());
            }
            tokio::spawn(fanout::run(
                shown.fan.clone(),
                incoming,
                limit,
                cache.fills.clone(),
                on_body,
                flight,
            ));
            return Outcome::Streaming(Response::from_parts(client, body::boxed(reader)), lifetime);
        }
        let body = match read_limited(incoming, limit as usize).await {
            Ok(Ok(b)) => b,
            Ok(Err(prefixed)) => {
                if status == StatusCode::OK && ranged::wants_range(head) {
                    drop(prefixed);
                    return self.pass_range_keeping(head).await;
                }
                return Outcome::Passed(Response::from_parts(client, prefixed));
            }
            Err(source) => {
                let endpoint = self.endpoint_name().unwrap_or_default();
                return Outcome::Failed(Err(ProxyError::from_body(
                    source,
                    &self.pool().name,
                    &endpoint,
                )));
            }
        };
        let entry = Entry { body, ..entry };
        let (full, entry) = cache.store.insert(&key.primary, &head.headers, entry).await;
        cache.count(|c| &c.stored);
        drop(flight);
        Outcome::Stored(full, entry, cookies)
    }

    /// A coalesced waiter's answer, streamed from the fill it joined.
    pub(super) async fn collapsed(
        &self,
        s: &Streaming,
        reader: Reader,
        head: &Head,
        key: &CacheKey,
    ) -> Answer {
        let mut resp = Response::new(body::boxed(reader));
        *resp.status_mut() = s.status;
        *resp.headers_mut() = s.headers.clone();
        let mut resp = match self.ranged(resp, head).await? {
            Ranged::Answer(resp) => resp,
            Ranged::TooBig => {
                let outcome = self.pass_range_keeping(head).await;
                return Box::pin(self.deliver(outcome, head, "uri-miss")).await;
            }
        };
        let about = About {
            status: s.status,
            lifetime: s.lifetime,
            age: age_of(resp.headers()),
            host: &key.host,
            path: &key.path,
        };
        self.label(&mut resp, Did::Collapsed("uri-miss"), Some(about));
        Ok(self.compressed(resp, &head.method))
    }

    fn key_host(&self, head: &Head) -> String {
        crate::cache::key::request_host(&head.uri, &head.headers)
    }

    /// The client's answer from an exchange forwarded for the reason `fwd`
    /// (RFC 9211: `uri-miss`, `stale`, `request`).
    pub(super) async fn deliver(&self, outcome: Outcome, head: &Head, fwd: &'static str) -> Answer {
        match outcome {
            Outcome::Stored(full, e, cookies) => {
                let mut resp = self.respond(full, e, head, Did::Stored(fwd)).await;
                for c in cookies {
                    resp.headers_mut().append(header::SET_COOKIE, c);
                }
                Ok(resp)
            }
            Outcome::Revalidated(full, e) => {
                Ok(self.respond(full, e, head, Did::Revalidated).await)
            }
            Outcome::Streaming(resp, lifetime) => {
                let age = age_of(resp.headers());
                let status = resp.status();
                let mut resp = match self.ranged(resp, head).await? {
                    Ranged::Answer(resp) => resp,
                    Ranged::TooBig => {
                        // Its Cache-Status is the part's, not the fill's.
                        let outcome = self.pass_range_keeping(head).await;
                        return Box::pin(self.deliver(outcome, head, fwd)).await;
                    }
                };
                let (host, path) = (
                    self.key_host(head),
                    head.uri
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_owned(),
                );
                let about = About {
                    status,
                    lifetime,
                    age,
                    host: &host,
                    path: &path,
                };
                self.label(&mut resp, Did::Stored(fwd), Some(about));
                Ok(self.compressed(resp, &head.method))
            }
            Outcome::Passed(mut resp) | Outcome::Failed(Ok(mut resp)) => {
                self.label(&mut resp, Did::Miss(fwd), None);
                if head.method == Method::HEAD {
                    // The cache fetched a GET for this HEAD: keep the head, drop
                    // the body (HTTP/2 treats DATA on a HEAD as a protocol error).
                    *resp.body_mut() = body::empty();
                    return Ok(resp);
                }
                Ok(self.compressed(resp, &head.method))
            }
            Outcome::Failed(Err(e)) => {
                let _ = self.learnt.cache_fwd.set(fwd);
                Err(e)
            }
        }
    }
}

/// A range forwarded as it came: its answer, passed on uncached.
fn passed(answer: Answer) -> Outcome {
    match answer {
        Ok(resp) => Outcome::Passed(resp),
        Err(e) => Outcome::Failed(Err(e)),
    }
}

fn age_of(h: &http::HeaderMap) -> std::time::Duration {
    h.get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .map_or(std::time::Duration::ZERO, std::time::Duration::from_secs)
}

/// Whether the client's request is conditional: it is answered from the
/// stored entry, so it waits for the fill to end.
pub(super) fn conditional(h: &http::HeaderMap) -> bool {
    [
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
    ]
    .iter()
    .any(|n| h.contains_key(n))
}
