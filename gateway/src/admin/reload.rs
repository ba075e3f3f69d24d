//! `POST /admin/reload`: reloads the config file as SIGHUP does and says how
//! it went. Answer: `200 {"generation": N}` once generation N serves, or
//! `422 {"error": "<what edgeward check prints>", "generation": <still serving>}`.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use tokio::sync::{mpsc, oneshot};

use crate::body::{self, Body};
use crate::node::Node;

/// Where the server answers one reload request: the new generation's number,
/// or the error that left the current one serving.
pub type ReloadReply = oneshot::Sender<Result<u64, String>>;

/// A reload compiles plugins and runs their `init`; far longer means stuck.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

fn json(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    body::local_response(status, "application/json", format!("{v}\n"))
}

pub async fn handle<B>(
    req: Request<B>,
    node: &Node,
    reloads: &mpsc::Sender<ReloadReply>,
) -> Response<Body> {
    if req.method() != Method::POST {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({ "error": "use POST" }),
        );
    }
    let (tx, rx) = oneshot::channel();
    if reloads.send(tx).await.is_err() {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "error": "the node is shutting down" }),
        );
    }
    match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
        Ok(Ok(Ok(n))) => json(StatusCode::OK, serde_json::json!({ "generation": n })),
        Ok(Ok(Err(e))) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({ "error": e, "generation": node.generation().number }),
        ),
        Ok(Err(_)) | Err(_) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "error": "the reload did not finish", "generation": node.generation().number }),
        ),
    }
}
