//! `POST /admin/cache/purge`: removes stored responses by exact URL, URL
//! prefix, tag (`Cache-Tag` / `Surrogate-Key`), or all of them. Every `Vary`
//! variant and every key extra of a matching URL goes.
//!
//! Body (JSON, exactly one field): `{"url": "https://host/path?q"}` or
//! `{"url": "/path?q"}` (any host), `{"prefix": "/api/"}`, `{"tag": "product-1"}`,
//! `{"all": true}`. Answer: `{"purged": <entries removed>}`.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::body::{self, Body};
use crate::cache::Purge;
use crate::node::Node;

const MAX_BODY: usize = 64 << 10;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    url: Option<String>,
    prefix: Option<String>,
    tag: Option<String>,
    all: Option<bool>,
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    body::local_response(status, "application/json", format!("{v}\n"))
}

fn bad(message: String) -> Response<Body> {
    json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({ "error": message }),
    )
}

/// `(host, path)` of a purge target; a target starting with `/` matches any host.
/// The path is normalised as request paths are before they become cache keys
/// (`crate::matching::normalize_path`), so `/a/../b` purges what `/b` stored.
fn target(s: &str) -> Result<(Option<String>, String), String> {
    if s.starts_with('/') {
        return Ok((None, normal(s, s)?));
    }
    let uri: Uri = s
        .parse()
        .map_err(|_| format!("\"{s}\" is not a URL; write e.g. \"https://shop.example/api/products/1\" or \"/api/products/1\""))?;
    if uri.scheme().is_none() {
        return Err(format!(
            "\"{s}\" is neither a path nor an absolute URL; write \"/path\" or \"https://host/path\""
        ));
    }
    let host = uri
        .authority()
        .map(|a| a.as_str().to_ascii_lowercase())
        .ok_or_else(|| format!("\"{s}\" has no host; start it with '/' to match every host"))?;
    // Not `path_and_query()`: for `https://h?q` that is `?q`, with no path.
    let path = match uri.query() {
        Some(q) => format!("{}?{q}", uri.path()),
        None => uri.path().to_owned(),
    };
    Ok((Some(host), normal(&path, s)?))
}

fn normal(path_and_query: &str, s: &str) -> Result<String, String> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let path = crate::matching::normalize_path(path).map_err(|e| format!("\"{s}\": {e}"))?;
    Ok(match query {
        Some(q) => format!("{path}?{q}"),
        None => path.into_owned(),
    })
}

pub(crate) fn parse(body: &Bytes) -> Result<Purge, String> {
    let req: PurgeRequest = serde_json::from_slice(body).map_err(|e| {
        format!("the body must be JSON like {{\"url\": \"/api/products/1\"}}, {{\"prefix\": \"/api/\"}}, {{\"tag\": \"t\"}} or {{\"all\": true}}: {e}")
    })?;
    match (req.url, req.prefix, req.tag, req.all) {
        (Some(u), None, None, None) => target(&u).map(|(host, path)| Purge::Url { host, path }),
        (None, Some(p), None, None) => target(&p).map(|(host, path)| Purge::Prefix { host, path }),
        (None, None, Some(t), None) if !t.trim().is_empty() => Ok(Purge::Tag(t.trim().to_owned())),
        (None, None, None, Some(true)) => Ok(Purge::All),
        _ => Err(
            "give exactly one of \"url\", \"prefix\", \"tag\" (non-empty) or \"all\": true".into(),
        ),
    }
}

pub async fn handle(req: Request<Incoming>, node: &Node) -> Response<Body> {
    if req.method() != http::Method::POST {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({ "error": "use POST with a JSON body" }),
        );
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad(format!("cannot read the body (at most 64KiB): {e}")),
    };
    let what = match parse(&body) {
        Ok(w) => w,
        Err(e) => return bad(e),
    };
    let n = node.cache.store.purge(&what).await;
    node.cache.counters.purged.fetch_add(n as u64, Relaxed);
    tracing::info!(?what, purged = n, "cache purge");
    json(StatusCode::OK, serde_json::json!({ "purged": n }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_form() {
        let p = |s: &str| parse(&Bytes::from(s.to_owned()));
        assert_eq!(
            p(r#"{"url":"https://Shop.example:8443/a?b=1"}"#),
            Ok(Purge::Url {
                host: Some("shop.example:8443".into()),
                path: "/a?b=1".into()
            })
        );
        assert_eq!(
            p(r#"{"prefix":"/api/"}"#),
            Ok(Purge::Prefix {
                host: None,
                path: "/api/".into()
            })
        );
        assert_eq!(p(r#"{"tag":"p1"}"#), Ok(Purge::Tag("p1".into())));
        assert_eq!(p(r#"{"all":true}"#), Ok(Purge::All));
        assert!(p(r#"{"all":false}"#).is_err());
        assert!(p(r#"{"url":"/a","tag":"x"}"#).is_err());
        assert!(p(r#"{"urll":"/a"}"#).is_err());
        assert!(p("not json").is_err());
        assert!(p(r#"{"url":"relative"}"#).is_err());
        assert_eq!(
            p(r#"{"url":"https://h.example?q=1"}"#),
            Ok(Purge::Url {
                host: Some("h.example".into()),
                path: "/?q=1".into()
            })
        );
        assert_eq!(
            p(r#"{"prefix":"/a/../%62/"}"#),
            Ok(Purge::Prefix {
                host: None,
                path: "/b/".into()
            })
        );
    }
}
