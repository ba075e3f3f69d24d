//! The optional webhook: one JSON POST per change of decision
//! (`scaling.webhook`), sent in order, each bounded in time; a failure is
//! logged, never retried (the next change carries the whole state again).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::Change;

/// Time one POST may take.
const TIMEOUT: Duration = Duration::from_secs(2);

pub async fn send(url: http::Uri, changes: Vec<Change>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    for c in changes {
        let body = match serde_json::to_vec(&c) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "scale webhook: cannot encode the change");
                continue;
            }
        };
        let req = http::Request::post(url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)));
        let Ok(req) = req else { continue };
        match tokio::time::timeout(TIMEOUT, client.request(req)).await {
            Ok(Ok(resp)) if resp.status().is_success() => {}
            Ok(Ok(resp)) => {
                tracing::warn!(url = %url, status = %resp.status(), service = %c.service, "scale webhook refused the change");
            }
            Ok(Err(e)) => {
                tracing::warn!(url = %url, error = %e, service = %c.service, "scale webhook failed");
            }
            Err(_) => {
                tracing::warn!(url = %url, service = %c.service, "scale webhook timed out after {TIMEOUT:?}");
            }
        }
    }
}
