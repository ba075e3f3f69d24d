//! Listener `protocols:` and the `quic:` block (HTTP/3 limits).

use std::time::Duration;

use serde_saphyr::Spanned;

use super::super::model::{ListenerConfig, Protocol};
use super::super::resolved::{Protocols, Quic};
use super::super::units::parse_size;
use super::Checker;

pub(super) fn protocols(c: &mut Checker, i: usize, l: &ListenerConfig) -> Protocols {
    let Some(list) = &l.protocols else {
        return Protocols::default();
    };
    let path = format!("listeners[{i}].protocols");
    if list.value.is_empty() {
        c.issue(
            &list.referenced,
            &path,
            "list at least one protocol: h1, h2 or h3",
        );
        return Protocols::default();
    }
    let has = |p: Protocol| list.value.iter().any(|s| s.value == p);
    let protocols = Protocols {
        h1: has(Protocol::H1),
        h2: has(Protocol::H2),
        h3: has(Protocol::H3),
    };
    if l.tls.is_none() {
        for (j, p) in list.value.iter().enumerate() {
            if p.value == Protocol::H3 {
                c.issue(
                    &p.referenced,
                    format!("{path}[{j}]"),
                    "h3 runs over QUIC, which always uses TLS: add a `tls:` block to this listener",
                );
            }
        }
    }
    if l.tls.is_none() && !protocols.h1 && protocols.h2 {
        c.issue(
            &list.referenced,
            &path,
            "a plaintext listener always serves h1 (h2c is negotiated from it): add h1",
        );
    }
    protocols
}

pub(super) fn settings(
    c: &mut Checker,
    i: usize,
    l: &ListenerConfig,
    max_header_size: usize,
) -> Option<Quic> {
    let h3 = l
        .protocols
        .as_ref()
        .is_some_and(|p| p.value.iter().any(|s| s.value == Protocol::H3));
    let path = |f: &str| format!("listeners[{i}].quic.{f}");
    let raw = match (&l.quic, h3) {
        (Some(q), false) => {
            c.issue(
                &q.referenced,
                format!("listeners[{i}].quic"),
                "has no effect: add h3 to this listener's `protocols` (e.g. [h1, h2, h3])",
            );
            return None;
        }
        (_, false) => return None,
        (q, true) => q.as_ref().map(|q| &q.value),
    };
    let default = Default::default();
    let raw = raw.unwrap_or(&default);
    let max_concurrent_streams = match &raw.max_concurrent_streams {
        Some(n) if n.value == 0 => {
            c.issue(
                &n.referenced,
                path("max-concurrent-streams"),
                "must be at least 1 (RFC 9114 asks for at least 100)",
            );
            100
        }
        Some(n) => n.value,
        None => 100,
    };
    let idle_timeout = c.duration(
        &raw.idle_timeout,
        || path("idle-timeout"),
        Duration::from_secs(30),
    );
    let max_field_section_size = size(
        c,
        &raw.max_field_section_size,
        path("max-field-section-size"),
        1024,
    )
    .unwrap_or(max_header_size as u64);
    let max_request_body = size(c, &raw.max_request_body, path("max-request-body"), 0);
    let alt_svc_max_age = c.duration(
        &raw.alt_svc_max_age,
        || path("alt-svc-max-age"),
        Duration::from_secs(86400),
    );
    Some(Quic {
        max_concurrent_streams,
        idle_timeout,
        max_field_section_size,
        max_request_body,
        retry: raw.retry.unwrap_or(false),
        zero_rtt: raw.zero_rtt.unwrap_or(false),
        alt_svc_max_age,
    })
}

fn size(c: &mut Checker, field: &Option<Spanned<String>>, path: String, min: u64) -> Option<u64> {
    let f = field.as_ref()?;
    match parse_size(&f.value) {
        Ok(n) if n as u64 >= min => Some(n as u64),
        Ok(_) => {
            c.issue(&f.referenced, path, format!("must be at least {min} bytes"));
            None
        }
        Err(e) => {
            c.issue(&f.referenced, path, e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn load(listener: &str) -> Result<crate::config::Config, String> {
        let text = format!(
            "listeners:\n  - address: 127.0.0.1:0\n{listener}\nupstreams:\n  u:\n    endpoints: [127.0.0.1:1]\nroutes:\n  - upstream: u\n"
        );
        crate::config::load_str(&text, Path::new("t.yaml")).map_err(|e| e.to_string())
    }

    const TLS: &str = "    tls:\n      certificates:\n        - self-signed: [localhost]\n";

    #[test]
    fn defaults_to_h1_h2_without_quic() {
        let c = load(TLS).unwrap();
        assert!(c.listeners[0].protocols.h2 && !c.listeners[0].protocols.h3);
        assert!(c.listeners[0].quic.is_none());
    }

    #[test]
    fn h3_gets_default_limits() {
        let c = load(&format!("{TLS}    protocols: [h1, h2, h3]\n")).unwrap();
        let q = c.listeners[0].quic.as_ref().unwrap();
        assert_eq!(q.max_concurrent_streams, 100);
        assert!(!q.zero_rtt && !q.retry);
        assert_eq!(q.max_field_section_size, 64 << 10);
    }

    #[test]
    fn h3_without_tls_is_located() {
        let e = load("    protocols: [h1, h3]\n").unwrap_err();
        assert!(e.starts_with("t.yaml:3:"), "{e}");
        assert!(
            e.contains("listeners[0].protocols[1]: h3 runs over QUIC"),
            "{e}"
        );
    }

    #[test]
    fn quic_block_without_h3_is_an_error() {
        let e = load(&format!("{TLS}    quic: {{retry: true}}\n")).unwrap_err();
        assert!(e.contains("listeners[0].quic: has no effect"), "{e}");
    }

    #[test]
    fn unknown_protocol_and_bad_limits_are_located() {
        let e = load(&format!("{TLS}    protocols: [h1, h4]\n")).unwrap_err();
        assert!(
            e.starts_with("t.yaml:6:21: listeners[0].protocols[1]: \"h4\" is not allowed here"),
            "{e}"
        );
        let e = load(&format!(
            "{TLS}    protocols: [h3]\n    quic:\n      max-request-body: lots\n      idle-timeout: 0s\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("listeners[0].quic.max-request-body: \"lots\" is not a size"),
            "{e}"
        );
        assert!(
            e.contains("listeners[0].quic.idle-timeout: must be greater than zero"),
            "{e}"
        );
    }
}
