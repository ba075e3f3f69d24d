//! Route matching: pure functions over the request head, no I/O.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// How a route's host condition is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// `api.example.com` (compared case-insensitively, port ignored).
    Exact(String),
    /// `*.example.com`: any host ending in `.example.com` with at least one more label.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Matches the prefix itself and anything below it on a `/` boundary.
    Prefix(String),
    Exact(String),
}

/// Every present condition must hold.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    pub host: Option<HostMatch>,
    pub path: Option<PathMatch>,
    pub methods: Vec<Method>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl HostMatch {
    /// Parses `example.com` or `*.example.com`; the caller reports the error.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let p = pattern.trim().to_ascii_lowercase();
        let (wild, name) = match p.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, p.as_str()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(format!(
                "\"{pattern}\" is not a host name; write e.g. \"api.example.com\" or \"*.example.com\""
            ));
        }
        Ok(if wild {
            Self::Suffix(format!(".{name}"))
        } else {
            Self::Exact(name.to_owned())
        })
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => host.eq_ignore_ascii_case(name),
            Self::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

impl PathMatch {
    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => path == p,
            Self::Prefix(p) => prefix_matches(p, path),
        }
    }
}

/// `/api` matches `/api`, `/api/` and `/api/x`, never `/apix`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

impl RouteMatch {
    /// `host` is the request's host without port, already taken from `:authority` or `Host`.
    pub fn matches(&self, method: &Method, host: &str, path: &str, headers: &HeaderMap) -> bool {
        self.host.as_ref().is_none_or(|h| h.matches(host))
            && self.path.as_ref().is_none_or(|p| p.matches(path))
            && (self.methods.is_empty() || self.methods.contains(method))
            && self
                .headers
                .iter()
                .all(|(name, value)| headers.get_all(name).iter().any(|v| v == value))
    }
}

/// The host a request is for, lower-cased semantics left to the matcher: the URI
/// authority (HTTP/2 and HTTP/3 `:authority`, absolute-form HTTP/1.1) wins over `Host`.
pub fn request_host<B>(req: &http::Request<B>) -> Option<&str> {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => req.headers().get(http::header::HOST)?.to_str().ok()?,
    };
    Some(strip_port(raw))
}

fn strip_port(authority: &str) -> &str {
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Why a request target was refused before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("a '%' in the path is not followed by two hex digits")]
    BadPercent,
    /// `%2F`, `%5C`, `\` or `%00`: an upstream may read them as a separator (or a
    /// string end) where we saw none, so no route decision on them would be safe.
    #[error("the path holds an encoded '/', a '\\' or a NUL")]
    Ambiguous,
}

/// The path a route is matched on and the upstream is sent, so that spellings an
/// origin would read as the same resource cannot select a different route:
/// percent-encoded unreserved characters are decoded and other escapes upper-cased
/// (RFC 3986 §6.2.2.1–2), `.` and `..` segments are removed (§5.2.4; `..` stops at
/// the root) and empty segments (`//`) are merged. Paths that do not start with `/`
/// (`*`, authority-form) are left alone. Borrowed when already normal.
pub fn normalize_path(path: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    use std::borrow::Cow;
    if !path.starts_with('/') {
        return Ok(Cow::Borrowed(path));
    }
    if path.contains('\\') {
        return Err(PathError::Ambiguous);
    }
    if !path.contains('%') && !path.contains("//") && !path.contains("/.") {
        return Ok(Cow::Borrowed(path));
    }
    // 1. escapes, so that `%2e%2e` is a dot segment below.
    let bytes = path.as_bytes();
    // Bytes, not chars: a non-ASCII byte is copied as it is, an escape decodes to ASCII.
    let mut decoded: Vec<u8> = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            decoded.push(b);
            i += 1;
            continue;
        }
        let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
        let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
            return Err(PathError::BadPercent);
        };
        let c = (hi * 16 + lo) as u8;
        match c {
            b'/' | b'\\' | 0 => return Err(PathError::Ambiguous),
            c if c.is_ascii_alphanumeric() || b"-._~".contains(&c) => decoded.push(c),
            c => decoded.extend_from_slice(format!("%{c:02X}").as_bytes()),
        }
        i += 3;
    }
    // 2. segments: `//` and `.` dropped, `..` pops; a trailing dot segment or
    // slash keeps the trailing slash (`/a/.` is `/a/`).
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::BadPercent)?;
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded[1..].split('/').collect();
    let last = segments.len() - 1;
    let mut trailing = false;
    for (n, seg) in segments.into_iter().enumerate() {
        match seg {
            "" | "." => trailing = n == last,
            ".." => {
                out.pop();
                trailing = n == last;
            }
            s => {
                out.push(s);
                trailing = false;
            }
        }
    }
    let mut normal = String::with_capacity(decoded.len());
    for s in &out {
        normal.push('/');
        normal.push_str(s);
    }
    if trailing || out.is_empty() {
        normal.push('/');
    }
    Ok(if normal == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(normal)
    })
}

/// `uri` with its path normalised ([`normalize_path`]); `None` when it already is.
/// The query is kept byte for byte.
pub fn normalize_uri(uri: &http::Uri) -> Result<Option<http::Uri>, PathError> {
    let path = uri.path();
    let std::borrow::Cow::Owned(normal) = normalize_path(path)? else {
        return Ok(None);
    };
    let pq = match uri.query() {
        Some(q) => format!("{normal}?{q}"),
        None => normal,
    };
    let mut parts = uri.clone().into_parts();
    // Every byte of a normal path came from a valid path or is an upper-case escape.
    parts.path_and_query = Some(pq.parse().map_err(|_| PathError::BadPercent)?);
    Ok(http::Uri::from_parts(parts).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, path: Option<PathMatch>) -> RouteMatch {
        RouteMatch {
            host: host.map(|h| HostMatch::parse(h).unwrap()),
            path,
            ..RouteMatch::default()
        }
    }

    #[test]
    fn wildcard_host_needs_a_label() {
        let r = route(Some("*.example.com"), None);
        let h = HeaderMap::new();
        assert!(r.matches(&Method::GET, "a.example.com", "/", &h));
        assert!(r.matches(&Method::GET, "A.B.Example.COM", "/", &h));
        assert!(!r.matches(&Method::GET, "example.com", "/", &h));
        assert!(!r.matches(&Method::GET, "badexample.com", "/", &h));
    }

    #[test]
    fn prefix_on_segment_boundary() {
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/x"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(prefix_matches("/api/", "/api/x"));
        assert!(prefix_matches("/", "/anything"));
    }

    #[test]
    fn methods_and_headers() {
        let r = RouteMatch {
            methods: vec![Method::POST],
            headers: vec![(
                HeaderName::from_static("x-tenant"),
                HeaderValue::from_static("blue"),
            )],
            ..RouteMatch::default()
        };
        let mut h = HeaderMap::new();
        assert!(!r.matches(&Method::POST, "h", "/", &h));
        h.insert("x-tenant", HeaderValue::from_static("blue"));
        assert!(r.matches(&Method::POST, "h", "/", &h));
        assert!(!r.matches(&Method::GET, "h", "/", &h));
    }

    #[test]
    fn host_from_authority_or_header() {
        let req = http::Request::get("http://Shop.example.com:8080/x")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), Some("Shop.example.com"));
        let req = http::Request::get("/x")
            .header("host", "[::1]:80")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), Some("[::1]"));
    }

    #[test]
    fn paths_are_normalised_like_an_origin_reads_them() {
        let n = |p: &str| normalize_path(p).map(|c| c.into_owned());
        for (raw, want) in [
            ("/a/b", "/a/b"),
            ("/", "/"),
            ("/a/../b", "/b"),
            ("/a/./b", "/a/b"),
            ("//a", "/a"),
            ("/a//b/", "/a/b/"),
            ("/%61dmin", "/admin"),
            ("/x/../admin", "/admin"),
            ("/x/%2e%2E/admin", "/admin"),
            ("/../../a", "/a"),
            ("/a/..", "/"),
            ("/a/.", "/a/"),
            ("/a%3ab", "/a%3Ab"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/.well-known/x", "/.well-known/x"),
            ("/..a/b.", "/..a/b."),
        ] {
            assert_eq!(n(raw).as_deref(), Ok(want), "{raw}");
        }
        assert_eq!(n("/a%2"), Err(PathError::BadPercent));
        assert_eq!(n("/a%zz"), Err(PathError::BadPercent));
        assert_eq!(n("/a%2fb"), Err(PathError::Ambiguous));
        assert_eq!(n("/a%5cb"), Err(PathError::Ambiguous));
        assert_eq!(n("/a%00"), Err(PathError::Ambiguous));
        assert_eq!(n("/a\\b"), Err(PathError::Ambiguous));
        assert!(matches!(
            normalize_path("/a/b"),
            Ok(std::borrow::Cow::Borrowed(_))
        ));
        assert_eq!(n("*").as_deref(), Ok("*"));
    }

    #[test]
    fn uri_keeps_its_query_and_authority() {
        let u: http::Uri = "http://h.example/a/../%62?x=/../%61".parse().unwrap();
        let n = normalize_uri(&u).unwrap().unwrap();
        assert_eq!(n.to_string(), "http://h.example/b?x=/../%61");
        assert_eq!(normalize_uri(&"/b?q".parse().unwrap()), Ok(None));
    }
}
