//! Header rules every proxied message follows (RFC 9110 §7.6): hop-by-hop fields
//! stay on their hop, `Via` and `X-Forwarded-*` say who handled the message.

use std::net::IpAddr;

use http::Version;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Fields that describe one connection and never cross a proxy.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop fields, including those the `Connection` field names.
/// `TE: trailers` survives on requests: it is how a client says it accepts trailers,
/// and HTTP/2 allows exactly that value.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    let te_trailers = keep_te_trailers
        && headers.get_all(header::TE).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            })
        });
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// The protocol token `Via` uses for a message of this version.
pub fn via_protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Appends `<protocol> <node>` to `Via`, keeping earlier hops.
pub fn append_via(headers: &mut HeaderMap, version: Version, node: &str) {
    let protocol = via_protocol(version);
    let prev = headers.get(header::VIA).and_then(|v| v.to_str().ok());
    let mut value =
        String::with_capacity(prev.map_or(0, |p| p.len() + 2) + protocol.len() + 1 + node.len());
    if let Some(p) = prev {
        value.push_str(p);
        value.push_str(", ");
    }
    value.push_str(protocol);
    value.push(' ');
    value.push_str(node);
    if let Some(v) = owned_value(value) {
        headers.insert(header::VIA, v);
    }
}

/// A field value that takes `s`'s buffer instead of copying it.
fn owned_value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(s)).ok()
}

/// `X-Forwarded-For` gains the client address; `-Proto` and `-Host` describe the
/// request as this node received it.
pub fn set_forwarded(headers: &mut HeaderMap, client: IpAddr, scheme: &str, host: Option<&str>) {
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
    let prior: Vec<&str> = headers
        .get_all(&XFF)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let xff = if prior.is_empty() {
        client.to_string()
    } else {
        format!("{}, {client}", prior.join(", "))
    };
    if let Some(v) = owned_value(xff) {
        headers.insert(XFF, v);
    }
    headers.insert(
        XFP,
        HeaderValue::from_static(if scheme == "https" { "https" } else { "http" }),
    );
    if let Some(v) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(XFH, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_listed_and_standard_hop_fields() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip, trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, true);
        assert!(h.get("x-secret").is_none() && h.get("keep-alive").is_none());
        assert_eq!(h.get(header::TE).unwrap(), "trailers");
        assert_eq!(h.get("x-kept").unwrap(), "1");
    }

    #[test]
    fn forwarded_headers_append() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        set_forwarded(
            &mut h,
            "127.0.0.1".parse().unwrap(),
            "https",
            Some("shop.example"),
        );
        assert_eq!(h.get("x-forwarded-for").unwrap(), "203.0.113.9, 127.0.0.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
        append_via(&mut h, Version::HTTP_2, "edge-1");
        append_via(&mut h, Version::HTTP_11, "edge-2");
        assert_eq!(h.get(header::VIA).unwrap(), "2 edge-1, 1.1 edge-2");
    }
}
