//! The admin API refuses strangers: a bearer token on everything but the probes.

use edgeward_e2e::{Client, Gateway, Upstream, full};
use http::{Method, Request, StatusCode};

const TOKEN: &str = "s3cret-token-0123456789";

async fn admin(gw: &Gateway, method: Method, path: &str, token: Option<&str>) -> StatusCode {
    let mut req = Request::builder().method(method).uri(gw.admin_url(path));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = if path == "/admin/cache/purge" {
        r#"{"all": true}"#
    } else {
        ""
    };
    Client::h1()
        .fetch(req.body(full(body)).unwrap())
        .await
        .unwrap()
        .status
}

#[tokio::test]
async fn the_admin_token_is_required_everywhere_but_on_the_probes() {
    let up = Upstream::echo("a").await;
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         admin:\n  address: 127.0.0.1:0\n  token: {TOKEN}\n\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n",
        up.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    for path in ["/metrics", "/nope"] {
        assert_eq!(admin(&gw, Method::GET, path, None).await, 401, "{path}");
        assert_eq!(
            admin(&gw, Method::GET, path, Some("wrong-token-0123456789")).await,
            401,
            "{path}"
        );
    }
    assert_eq!(admin(&gw, Method::GET, "/metrics", Some(TOKEN)).await, 200);
    assert_eq!(admin(&gw, Method::GET, "/healthz", None).await, 200);
    assert_eq!(admin(&gw, Method::GET, "/readyz", None).await, 200);
    assert_eq!(
        admin(&gw, Method::POST, "/admin/cache/purge", None).await,
        401
    );
    assert_eq!(
        admin(&gw, Method::POST, "/admin/cache/purge", Some(TOKEN)).await,
        200
    );
    assert_eq!(admin(&gw, Method::POST, "/admin/reload", None).await, 401);
    assert_eq!(gw.readyz_generation().await, Some(1));
    assert_eq!(
        admin(&gw, Method::POST, "/admin/reload", Some(TOKEN)).await,
        200
    );
    assert_eq!(gw.readyz_generation().await, Some(2));
}

#[tokio::test]
async fn a_token_file_works_and_follows_a_reload() {
    let up = Upstream::echo("a").await;
    let yaml = format!(
        "listeners:\n  - name: http\n    address: 127.0.0.1:0\n\
         admin:\n  address: 127.0.0.1:0\n  token-file: admin.token\n\
         upstreams:\n  a:\n    endpoints: [\"{}\"]\nroutes:\n  - upstream: a\n",
        up.addr
    );
    let gw = Gateway::start_with(&yaml, &[("admin.token", format!("{TOKEN}\n").as_bytes())])
        .await
        .unwrap();
    assert_eq!(admin(&gw, Method::GET, "/metrics", None).await, 401);
    assert_eq!(admin(&gw, Method::GET, "/metrics", Some(TOKEN)).await, 200);
    let next = "another-token-9876543210";
    gw.write_file("admin.token", next.as_bytes());
    assert_eq!(
        admin(&gw, Method::POST, "/admin/reload", Some(TOKEN)).await,
        200
    );
    assert_eq!(admin(&gw, Method::GET, "/metrics", Some(TOKEN)).await, 401);
    assert_eq!(admin(&gw, Method::GET, "/metrics", Some(next)).await, 200);
}
