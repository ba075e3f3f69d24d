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
    /// Phases 5 and 6, through the scale-from-zero hold when the route's
    /// upstream has one.
    pub(super) async fn exchange_held(&self, req: Request<Body>) -> Answer {
        let Some(hold) = &self.generation.holds[self.route().upstream] else {
            return self.exchange(req).await;
        };
        let pool = self.pool();
        let deadline = Instant::now() + hold.settings.timeout;
        let again = replayable(&req);
        let mut req = Some(req);
        loop {
            hold.wait(|| any_healthy(pool), deadline)
                .await
                .map_err(|refusal| ProxyError::Held {
                    service: hold.service.clone(),
                    refusal,
                    retry_after: hold.settings.retry_after,
                })?;
            let Some(r) = req.take() else {
                return Err(ProxyError::Internal("a held request was sent twice"));
            };
            let answer = self.exchange(r).await;
            let refused = matches!(
                answer,
                Err(ProxyError::Connect { .. } | ProxyError::Unavailable { .. })
            );
            match &again {
                Some(head) if refused && Instant::now() < deadline && !any_healthy(pool) => {
                    req = Some(Request::from_parts(head.clone(), body::empty()));
                }
                _ => return answer,
            }
        }
    }
}
