//! `GET /admin/scale`: the scale loop's board as JSON, shaped for KEDA's
//! `metrics-api` scaler (`valueLocation: services.<name>.desiredReplicas`).
//! `GET /admin/scale/<service>` returns one service's object.

use http::{Method, Request, Response, StatusCode};

use crate::body::{Body, local_response};
use crate::scale::Board;

const JSON: &str = "application/json";

pub fn handle<B>(req: &Request<B>, board: &Board) -> Response<Body> {
    if !matches!(req.method(), &Method::GET | &Method::HEAD) {
        return local_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n",
        );
    }
    let view = board.view();
    let path = req.uri().path().trim_end_matches('/');
    let body = match path.strip_prefix("/admin/scale/") {
        None => serde_json::to_string_pretty(&view),
        Some(name) => match view.services.get(name) {
            Some(s) => serde_json::to_string_pretty(s),
            None => {
                return local_response(
                    StatusCode::NOT_FOUND,
                    "text/plain; charset=utf-8",
                    format!("no scaled service \"{name}\"\n"),
                );
            }
        },
    };
    match body {
        Ok(mut b) => {
            b.push('\n');
            local_response(StatusCode::OK, JSON, b)
        }
        Err(e) => local_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("cannot encode the board: {e}\n"),
        ),
    }
}
