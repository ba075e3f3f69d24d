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
}
