//! Scale from zero, on the request path: before phase 5, a request for a
//! `min: 0` service with no healthy endpoint waits in the service's bounded
//! hold ([`crate::upstream::hold`]) instead of failing; a full queue or a
//! hold that outlasts its timeout is a 503 with `Retry-After`.
//!
//! An endpoint that passive health still counts as healthy may refuse the
//! connection (the replica is gone, or not listening yet). A request whose
//! head can be sent again (no body, no upgrade) then goes back to the hold
//! until its deadline, rather than failing the first client after a scale
//! to zero. Services without a hold go straight to [`Session::exchange`].

use std::time::Instant;

use http::Request;
use http_body::Body as _;

use super::error::ProxyError;
use super::{Answer, Session};
use crate::body::{self, Body};
use crate::node::Generation;
use crate::upstream::UpstreamPool;

fn any_healthy(pool: &UpstreamPool) -> bool {
    let now = pool.now_ms();
    pool.stats.iter().any(|s| s.healthy(now))
}

/// A copy of the head for another attempt, when nothing else is lost by
/// sending it again: no body, and no upgrade riding on the connection.
fn replayable(req: &Request<Body>) -> Option<http::request::Parts> {
    let upgrade = req.headers().contains_key(http::header::UPGRADE)
        || req.extensions().get::<hyper::ext::Protocol>().is_some();
    if upgrade || !req.body().is_end_stream() {
        return None;
    }
    let mut copy = Request::new(());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy.into_parts().0)
}

impl Session {
    /// The generation a held request should look at: the node's current one
    /// when it differs from ours only in discovered endpoints (DNS brought the
    /// replica back), else ours — a reload's new routes are not this request's.
    fn followed(&self) -> std::sync::Arc<Generation> {
        let current = self.node.generation();
        if current.same_but_endpoints(&self.generation) {
            current
        } else {
            self.generation.clone()
        }
    }

    /// Phases 5 and 6, through the scale-from-zero hold when the route's
    /// upstream has one.
    pub(super) async fn exchange_held(&self, req: Request<Body>) -> Answer {
        let up = self.route().upstream;
        let Some(hold) = self.generation.holds[up].clone() else {
            return self.exchange(req).await;
        };
        let healthy = || any_healthy(&self.followed().upstreams[up]);
        let deadline = Instant::now() + hold.settings.timeout;
        let again = replayable(&req);
        let mut req = Some(req);
        loop {
            hold.wait(healthy, deadline)
                .await
                .map_err(|refusal| ProxyError::Held {
                    service: hold.service.clone(),
                    refusal,
                    retry_after: hold.settings.retry_after,
                })?;
            let Some(r) = req.take() else {
                return Err(ProxyError::Internal("a held request was sent twice"));
            };
            let followed = self.followed();
            let answer = if std::sync::Arc::ptr_eq(&followed, &self.generation) {
                self.exchange(r).await
            } else {
                let mut moved = self.clone();
                moved.generation = followed;
                moved.exchange(r).await
            };
            let refused = matches!(
                answer,
                Err(ProxyError::Connect { .. } | ProxyError::Unavailable { .. })
            );
            match &again {
                Some(head) if refused && Instant::now() < deadline && !healthy() => {
                    req = Some(Request::from_parts(head.clone(), body::empty()));
                }
                _ => return answer,
            }
        }
    }
}
