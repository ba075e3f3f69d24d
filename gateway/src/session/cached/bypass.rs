//! Requests the cache must not answer, and the entries an unsafe request
//! leaves out of date.

use http::header::{self, HeaderMap};
use http::{Request, Uri};

use super::Did;
use crate::body::Body;
use crate::cache::{Purge, key};
use crate::session::{Answer, Session};

impl Session {
    /// Unsafe methods, ranges and requests with bodies skip the cache; a
    /// successful unsafe request invalidates what it may have changed (RFC 9111 §4.4).
    pub(super) async fn bypass(&self, req: Request<Body>) -> Answer {
        self.node.cache.count(|c| &c.bypass);
        let method = req.method().clone();
        let host = key::request_host(req.uri(), req.headers());
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let fwd = if method.is_safe() { "bypass" } else { "method" };
        let _ = self.learnt.cache_fwd.set(fwd);
        let mut resp = self.forward(req).await?;
        self.label(&mut resp, Did::Bypass(fwd), None);
        if !method.is_safe() && (resp.status().is_success() || resp.status().is_redirection()) {
            self.invalidate(&host, &path, resp.headers()).await;
        }
        Ok(self.compressed(resp, &method))
    }

    async fn invalidate(&self, host: &str, path: &str, headers: &HeaderMap) {
        let mut targets = vec![path.to_owned()];
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let Some(uri) = headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.parse::<Uri>().ok())
            else {
                continue;
            };
            // Only the same origin: another host's cache entries are not this response's to clear.
            let same = uri
                .authority()
                .is_none_or(|a| a.as_str().eq_ignore_ascii_case(host));
            if let Some(pq) = uri
                .path_and_query()
                .filter(|pq| same && pq.as_str().starts_with('/'))
            {
                targets.push(pq.as_str().to_owned());
            }
        }
        for path in targets {
            let n = self
                .node
                .cache
                .store
                .purge(&Purge::Url {
                    host: Some(host.to_owned()),
                    path,
                })
                .await;
            self.node
                .cache
                .counters
                .purged
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
