//! Fake requests and responses, built like the gateway would see them.

use std::net::{IpAddr, Ipv4Addr};

use crate::HttpVersion;

/// A request as the gateway would present it to a plugin.
///
/// Defaults: `GET http://example.test/` over HTTP/1.1 from `192.0.2.1`
/// (a documentation address), route `default`.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    method: String,
    scheme: String,
    authority: Option<String>,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    client: IpAddr,
    version: HttpVersion,
    route: String,
}

impl Default for FakeRequest {
    fn default() -> Self {
        Self {
            method: "GET".to_owned(),
            scheme: "http".to_owned(),
            authority: Some("example.test".to_owned()),
            path: "/".to_owned(),
            query: None,
            headers: Vec::new(),
            client: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            version: HttpVersion::Http11,
            route: "default".to_owned(),
        }
    }
}

impl FakeRequest {
    /// `GET` of `target` (a path, optionally with `?query`).
    pub fn get(target: &str) -> Self {
        Self::default().with_target(target)
    }

    /// Set the path and query from `target`, e.g. `/search?q=1`.
    pub fn with_target(mut self, target: &str) -> Self {
        match target.split_once('?') {
            Some((p, q)) => {
                self.path = p.to_owned();
                self.query = Some(q.to_owned());
            }
            None => {
                self.path = target.to_owned();
                self.query = None;
            }
        }
        self
    }

    /// Set the method.
    pub fn with_method(mut self, method: &str) -> Self {
        self.method = method.to_owned();
        self
    }

    /// Set the scheme (`http` or `https`).
    pub fn with_scheme(mut self, scheme: &str) -> Self {
        self.scheme = scheme.to_owned();
        self
    }

    /// Set (or with `None`, remove) the authority.
    pub fn with_authority(mut self, authority: Option<&str>) -> Self {
        self.authority = authority.map(str::to_owned);
        self
    }

    /// Add a header field (the name is lowercased).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Add a cookie to the `cookie` header.
    pub fn with_cookie(mut self, name: &str, value: &str) -> Self {
        match self.headers.iter_mut().find(|(n, _)| n == "cookie") {
            Some((_, v)) => {
                v.push_str("; ");
                v.push_str(name);
                v.push('=');
                v.push_str(value);
            }
            None => self
                .headers
                .push(("cookie".to_owned(), format!("{name}={value}"))),
        }
        self
    }

    /// Set the client address, e.g. `[10, 0, 0, 7]` or an `Ipv6Addr`.
    pub fn with_client(mut self, addr: impl Into<IpAddr>) -> Self {
        self.client = addr.into();
        self
    }

    /// Set the HTTP version.
    pub fn with_version(mut self, version: HttpVersion) -> Self {
        self.version = version;
        self
    }

    /// Set the route name.
    pub fn with_route(mut self, route: &str) -> Self {
        self.route = route.to_owned();
        self
    }

    pub(crate) fn method(&self) -> String {
        self.method.clone()
    }

    pub(crate) fn scheme(&self) -> String {
        self.scheme.clone()
    }

    pub(crate) fn authority(&self) -> Option<String> {
        self.authority.clone()
    }

    pub(crate) fn path(&self) -> String {
        self.path.clone()
    }

    pub(crate) fn query(&self) -> Option<String> {
        self.query.clone()
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        header(&self.headers, name)
    }

    pub(crate) fn header_all(&self, name: &str) -> Vec<String> {
        header_all(&self.headers, name)
    }

    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        self.header_all("cookie")
            .iter()
            .find_map(|h| crate::cookie::get(h, name).map(str::to_owned))
    }

    pub(crate) fn client_addr(&self) -> IpAddr {
        self.client
    }

    pub(crate) fn http_version(&self) -> HttpVersion {
        self.version
    }

    pub(crate) fn route(&self) -> String {
        self.route.clone()
    }
}

/// A response as a filter's `on_response` would see it.
#[derive(Debug, Clone)]
pub struct FakeResponse {
    status: u16,
    headers: Vec<(String, String)>,
}

impl FakeResponse {
    /// A response with this status and no headers.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
        }
    }

    /// Add a header field (the name is lowercased).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub(crate) fn status(&self) -> u16 {
        self.status
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        header(&self.headers, name)
    }

    pub(crate) fn header_all(&self, name: &str) -> Vec<String> {
        header_all(&self.headers, name)
    }
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn header_all(headers: &[(String, String)], name: &str) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}
