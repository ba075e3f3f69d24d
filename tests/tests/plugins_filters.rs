//! Filter plugins on a route: request and response edits, direct answers
//! before the upstream, and responses replaced on the way back.

mod plugin_common;

use edgeward_e2e::client::Client;
use edgeward_e2e::{Gateway, Upstream};
use http::StatusCode;
use hyper::body::Incoming;
use plugin_common::*;

#[tokio::test]
async fn filters_edit_requests_and_responses_and_answer_directly() {
    let up = Upstream::start(|req: http::Request<Incoming>| async move {
        let seen = req
            .headers()
            .get("x-filter")
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        let mut r = http::Response::new(edgeward_e2e::full(seen));
        if req.uri().path() == "/f/teapot" {
            *r.status_mut() = StatusCode::IM_A_TEAPOT;
        }
        r
    })
    .await;
    let wasm = guest("filter-guest").display().to_string();
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         plugins:\n  tagger:\n    path: {wasm}\n    deadline: 1s\n    config: {{tag: t1, deny: /f/denied}}\n\
         upstreams:\n  svc:\n    endpoints: [\"{}\"]\n\
         routes:\n  - match: {{path-prefix: /f}}\n    upstream: svc\n    filters: [tagger]\n\
         \x20 - upstream: svc\n",
        up.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let c = Client::h1();

    let r = c.get(&gw.url("http", "/f/x")).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.text(),
        "t1",
        "the upstream saw the filter's request header"
    );
    assert_eq!(r.header("x-filter-response"), Some("t1"));

    let before = up.hits();
    let r = c.get(&gw.url("http", "/f/denied/1")).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.text(), "denied by t1\n");
    assert_eq!(
        up.hits(),
        before,
        "a direct answer never reaches the upstream"
    );

    let r = c.get(&gw.url("http", "/f/teapot")).await.unwrap();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.text(), "teapot replaced\n");

    // A route without filters is untouched.
    let r = c.get(&gw.url("http", "/other")).await.unwrap();
    assert_eq!(r.text(), "");
    assert_eq!(r.header("x-filter-response"), None);
}
