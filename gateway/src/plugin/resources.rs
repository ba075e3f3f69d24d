//! The resources a call lends the guest: the downstream `request`, the
//! upstream's `response` head and the `upstream` a router chooses for. Each
//! method copies only what the guest asks for.

use std::net::IpAddr;

use http::HeaderMap;
use wasmtime::component::{Resource, ResourceTable};

use super::bindings::types;
use super::host::{HostState, RequestView, ResponseView, UpstreamView};

fn lossy(v: &http::HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

/// The first `name=value` pair among the `cookie` fields (RFC 6265 §5.4).
pub fn find_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = std::str::from_utf8(pair).ok()?.trim();
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
}

impl RequestView {
    fn header_all(&self, name: &str) -> Vec<String> {
        self.parts.headers.get_all(name).iter().map(lossy).collect()
    }
}

fn req<'a>(
    table: &'a ResourceTable,
    r: &Resource<RequestView>,
) -> wasmtime::Result<&'a RequestView> {
    Ok(table.get(r)?)
}

impl types::HostRequest for HostState {
    fn method(&mut self, r: Resource<RequestView>) -> wasmtime::Result<String> {
        Ok(req(&self.table, &r)?.parts.method.as_str().to_owned())
    }
    fn scheme(&mut self, r: Resource<RequestView>) -> wasmtime::Result<String> {
        Ok(req(&self.table, &r)?.scheme.to_owned())
    }
    fn authority(&mut self, r: Resource<RequestView>) -> wasmtime::Result<Option<String>> {
        let v = req(&self.table, &r)?;
        Ok(v.parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| v.parts.headers.get(http::header::HOST).map(lossy)))
    }
    fn path(&mut self, r: Resource<RequestView>) -> wasmtime::Result<String> {
        Ok(req(&self.table, &r)?.parts.uri.path().to_owned())
    }
    fn query(&mut self, r: Resource<RequestView>) -> wasmtime::Result<Option<String>> {
        Ok(req(&self.table, &r)?.parts.uri.query().map(str::to_owned))
    }
    fn header(
        &mut self,
        r: Resource<RequestView>,
        name: String,
    ) -> wasmtime::Result<Option<String>> {
        Ok(req(&self.table, &r)?
            .parts
            .headers
            .get(name.as_str())
            .map(lossy))
    }
    fn header_all(
        &mut self,
        r: Resource<RequestView>,
        name: String,
    ) -> wasmtime::Result<Vec<String>> {
        Ok(req(&self.table, &r)?.header_all(&name))
    }
    fn cookie(
        &mut self,
        r: Resource<RequestView>,
        name: String,
    ) -> wasmtime::Result<Option<String>> {
        Ok(find_cookie(&req(&self.table, &r)?.parts.headers, &name))
    }
    fn client_addr(&mut self, r: Resource<RequestView>) -> wasmtime::Result<types::IpAddress> {
        Ok(match req(&self.table, &r)?.client {
            IpAddr::V4(a) => {
                let [a, b, c, d] = a.octets();
                types::IpAddress::Ipv4((a, b, c, d))
            }
            IpAddr::V6(a) => {
                let [a, b, c, d, e, f, g, h] = a.segments();
                types::IpAddress::Ipv6((a, b, c, d, e, f, g, h))
            }
        })
    }
    fn http_version(&mut self, r: Resource<RequestView>) -> wasmtime::Result<types::HttpVersion> {
        use http::Version;
        Ok(match req(&self.table, &r)?.parts.version {
            Version::HTTP_09 | Version::HTTP_10 => types::HttpVersion::Http10,
            Version::HTTP_2 => types::HttpVersion::Http2,
            Version::HTTP_3 => types::HttpVersion::Http3,
            _ => types::HttpVersion::Http11,
        })
    }
    fn route(&mut self, r: Resource<RequestView>) -> wasmtime::Result<String> {
        Ok(req(&self.table, &r)?.route.to_string())
    }
    fn drop(&mut self, r: Resource<RequestView>) -> wasmtime::Result<()> {
        // Borrowed handles are deleted by the call site; an owned one (never
        // handed out today) would be cleaned up here.
        if r.owned() {
            self.table.delete(r)?;
        }
        Ok(())
    }
}

impl types::HostResponse for HostState {
    fn status(&mut self, r: Resource<ResponseView>) -> wasmtime::Result<u16> {
        Ok(self.table.get(&r)?.status)
    }
    fn header(
        &mut self,
        r: Resource<ResponseView>,
        name: String,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&r)?.headers.get(name.as_str()).map(lossy))
    }
    fn header_all(
        &mut self,
        r: Resource<ResponseView>,
        name: String,
    ) -> wasmtime::Result<Vec<String>> {
        Ok(self
            .table
            .get(&r)?
            .headers
            .get_all(name.as_str())
            .iter()
            .map(lossy)
            .collect())
    }
    fn drop(&mut self, r: Resource<ResponseView>) -> wasmtime::Result<()> {
        if r.owned() {
            self.table.delete(r)?;
        }
        Ok(())
    }
}

impl types::HostUpstream for HostState {
    fn name(&mut self, r: Resource<UpstreamView>) -> wasmtime::Result<String> {
        Ok(self.table.get(&r)?.0.name.clone())
    }
    fn address(&mut self, r: Resource<UpstreamView>, id: u32) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&r)?.0.addresses.get(id as usize).cloned())
    }
    fn zone_name(
        &mut self,
        r: Resource<UpstreamView>,
        zone: u32,
    ) -> wasmtime::Result<Option<String>> {
        let info = &self.table.get(&r)?.0;
        Ok(zone
            .checked_sub(1)
            .and_then(|z| info.zone_names.get(z as usize))
            .cloned())
    }
    fn local_zone(&mut self, r: Resource<UpstreamView>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&r)?.0.local_zone)
    }
    fn tags(&mut self, r: Resource<UpstreamView>, id: u32) -> wasmtime::Result<Vec<String>> {
        Ok(self
            .table
            .get(&r)?
            .0
            .tags
            .get(id as usize)
            .cloned()
            .unwrap_or_default())
    }
    fn tagged(&mut self, r: Resource<UpstreamView>, tag: String) -> wasmtime::Result<Vec<u32>> {
        let info = &self.table.get(&r)?.0;
        Ok(info
            .tags
            .iter()
            .enumerate()
            .filter(|(_, t)| t.contains(&tag))
            .map(|(i, _)| i as u32)
            .collect())
    }
    fn drop(&mut self, r: Resource<UpstreamView>) -> wasmtime::Result<()> {
        if r.owned() {
            self.table.delete(r)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_across_fields() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; ew=\"x\"".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        assert_eq!(find_cookie(&h, "ew").as_deref(), Some("\"x\""));
        assert_eq!(find_cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(find_cookie(&h, "c"), None);
    }
}
