//! A listener: its timeouts and limits, and its TLS certificates (files or
//! generated at start).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_saphyr::Spanned;

use super::super::model;
use super::super::resolved::*;
use super::super::units::parse_size;
use super::{Checker, quic};

pub(super) fn listener(
    c: &mut Checker,
    i: usize,
    l: &model::ListenerConfig,
    addr: SocketAddr,
) -> Option<Listener> {
    let path = |f: &str| format!("listeners[{i}].{f}");
    let header_read_timeout = c.duration(
        &l.header_read_timeout,
        || path("header-read-timeout"),
        Duration::from_secs(10),
    );
    let idle_timeout = c.duration(
        &l.idle_timeout,
        || path("idle-timeout"),
        Duration::from_secs(60),
    );
    let send_timeout = c.duration(
        &l.send_timeout,
        || path("send-timeout"),
        Duration::from_secs(30),
    );
    let max_header_size = match &l.max_header_size {
        None => 64 << 10,
        Some(s) => match parse_size(&s.value) {
            Ok(n) if n >= 8192 => n,
            Ok(_) => {
                c.issue(
                    &s.referenced,
                    path("max-header-size"),
                    "must be at least 8KiB",
                );
                64 << 10
            }
            Err(e) => {
                c.issue(&s.referenced, path("max-header-size"), e);
                64 << 10
            }
        },
    };
    let tls = l.tls.as_ref().map(|t| {
        if t.certificates.is_empty() {
            c.issue(
                &l.address.referenced,
                path("tls.certificates"),
                "a TLS listener needs at least one certificate",
            );
        }
        t.certificates
            .iter()
            .enumerate()
            .filter_map(|(j, cert)| {
                certificate(c, &format!("listeners[{i}].tls.certificates[{j}]"), cert)
            })
            .collect::<Vec<_>>()
    });
    let https_redirect = l.https_redirect.as_ref().and_then(|y| {
        if l.tls.is_some() {
            c.issue(
                &y.referenced,
                path("https-redirect"),
                "this listener already serves HTTPS; redirect from a plaintext listener",
            );
            return None;
        }
        let mut found = Vec::new();
        let r = super::super::actions::https_redirect(y, &path("https-redirect"), &mut found);
        for e in found {
            c.issue(&e.at, e.path, e.message);
        }
        r
    });
    Some(Listener {
        https_redirect,
        name: l.name.clone().unwrap_or_else(|| addr.to_string()),
        addr,
        tls,
        header_read_timeout,
        idle_timeout,
        send_timeout,
        max_header_size,
        max_concurrent_streams: l.max_concurrent_streams.unwrap_or(256).max(1),
        keep_alive: l.keep_alive.unwrap_or(true),
        trust_request_id: l.trust_request_id.unwrap_or(false),
        max_connections: l.max_connections.unwrap_or(20_000).max(1),
        max_connections_per_ip: l.max_connections_per_ip.unwrap_or(1024).max(1),
        protocols: quic::protocols(c, i, l),
        quic: quic::settings(c, i, l, max_header_size),
    })
}

fn certificate(
    c: &mut Checker,
    path: &str,
    cert: &Spanned<model::CertificateConfig>,
) -> Option<TlsCert> {
    let v = &cert.value;
    let key = match (&v.cert, &v.key, &v.self_signed) {
        (None, None, Some(names)) => self_signed(names)
            .map_err(|e| c.issue(&cert.referenced, format!("{path}.self-signed"), e))
            .ok()?,
        (Some(cert_file), Some(key_file), None) => {
            let chain = read_chain(&c.base.join(&cert_file.value))
                .map_err(|e| c.issue(&cert_file.referenced, format!("{path}.cert"), e))
                .ok();
            let key = read_key(&c.base.join(&key_file.value))
                .map_err(|e| c.issue(&key_file.referenced, format!("{path}.key"), e))
                .ok();
            let (chain, key) = (chain?, key?);
            let provider = rustls::crypto::ring::default_provider();
            match CertifiedKey::from_der(chain, key, &provider) {
                Ok(k) => k,
                Err(e) => {
                    c.issue(
                        &key_file.referenced,
                        format!("{path}.key"),
                        format!("does not fit the certificate: {e}"),
                    );
                    return None;
                }
            }
        }
        _ => {
            c.issue(
                &cert.referenced,
                path,
                "give either `cert` and `key` (PEM files) or `self-signed: [names…]`",
            );
            return None;
        }
    };
    Some(TlsCert {
        key: Arc::new(key),
        server_names: v
            .server_names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect(),
    })
}

/// A certificate generated at start, for development and the demo.
pub fn self_signed(names: &[String]) -> Result<CertifiedKey, String> {
    if names.is_empty() {
        return Err("list at least one name, e.g. [localhost, 127.0.0.1]".into());
    }
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| format!("cannot generate a certificate: {e}"))?;
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .map_err(|e| e.to_string())?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| e.to_string())?;
    Ok(CertifiedKey::new(
        vec![generated.cert.der().clone()],
        signer,
    ))
}

fn read_chain(file: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<_> = CertificateDer::pem_file_iter(file)
        .map_err(|e| {
            format!(
                "cannot read {}: {e} (relative paths start at the config file's directory)",
                file.display()
            )
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", file.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no CERTIFICATE block", file.display()));
    }
    Ok(chain)
}

fn read_key(file: &PathBuf) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(file)
        .map_err(|e| format!("cannot read a private key from {}: {e} (relative paths start at the config file's directory)", file.display()))
}
