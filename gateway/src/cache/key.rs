//! Cache keys: the primary key (RFC 9111 §4: method and target URI, plus the
//! route's version and listed headers/cookies) and the full key that adds the
//! `Vary` secondary key.

use std::sync::Arc;

use http::HeaderMap;
use http::header;

use super::RouteCache;

/// Where a stored response came from, for lookups and purges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// Everything but the `Vary` part.
    pub primary: Arc<str>,
    /// Lower-case host with any port, as the client named it.
    pub host: String,
    /// Path and query, as the client sent them.
    pub path: String,
}

/// The host as the client named it (`:authority`, else `Host`), lower-case.
pub fn request_host(uri: &http::Uri, headers: &HeaderMap) -> String {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// GET and HEAD share entries: a HEAD is answered from the stored GET.
pub fn build(policy: &RouteCache, scheme: &str, uri: &http::Uri, headers: &HeaderMap) -> CacheKey {
    let host = request_host(uri, headers);
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let mut primary = format!("v{}|GET|{scheme}://{host}{path}", policy.version);
    for name in &policy.key_headers {
        primary.push_str("|h:");
        primary.push_str(name.as_str());
        primary.push('=');
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        primary.push_str(&values.join(","));
    }
    for name in &policy.key_cookies {
        primary.push_str("|c:");
        primary.push_str(name);
        primary.push('=');
        if let Some(v) = cookie(headers, name) {
            primary.push_str(v);
        }
    }
    CacheKey {
        primary: primary.into(),
        host,
        path,
    }
}

/// The value of cookie `name` from the request's `Cookie` lines.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        // Pair by pair, as the plugin host reads them: one pair with non-ASCII
        // bytes must not hide the others on its line.
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(|pair| std::str::from_utf8(pair).ok()?.split_once('='))
        // Whitespace around the name and the value is not part of them (RFC 6265 §5.2).
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim())
}

/// The key one stored variant lives under.
pub fn full(primary: &str, secondary: &str) -> Arc<str> {
    let mut k = String::with_capacity(primary.len() + 1 + secondary.len());
    k.push_str(primary);
    k.push('\0');
    k.push_str(secondary);
    k.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Uri};

    #[test]
    fn keys_include_version_and_extras() {
        let mut p = RouteCache {
            key_headers: vec![http::HeaderName::from_static("x-tenant")],
            key_cookies: vec!["lang".into()],
            ..RouteCache::default()
        };
        let uri: Uri = "/a?b=1".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("Shop.Example"));
        h.insert("x-tenant", HeaderValue::from_static("t1"));
        h.insert(header::COOKIE, HeaderValue::from_static("sid=9; lang=fr"));
        let k1 = build(&p, "https", &uri, &h);
        assert_eq!(
            &*k1.primary,
            "v|GET|https://shop.example/a?b=1|h:x-tenant=t1|c:lang=fr"
        );
        assert_eq!(
            (k1.host.as_str(), k1.path.as_str()),
            ("shop.example", "/a?b=1")
        );
        h.insert(header::COOKIE, HeaderValue::from_static("sid=10; lang=fr"));
        assert_eq!(build(&p, "https", &uri, &h).primary, k1.primary);
        h.insert(header::COOKIE, HeaderValue::from_static("lang=de"));
        assert_ne!(build(&p, "https", &uri, &h).primary, k1.primary);
        p.version = "2".into();
        assert!(build(&p, "https", &uri, &h).primary.starts_with("v2|"));
    }
}
