//! rustls server configuration: certificates chosen by SNI, ALPN `h2` and `http/1.1`.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::TlsCert;

/// Picks the certificate whose `server-names` match the client's SNI; the first
/// certificate answers clients that send no SNI or an unknown name.
#[derive(Debug)]
struct SniResolver {
    certs: Vec<TlsCert>,
}

fn name_matches(pattern: &str, sni: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => sni
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix)),
        None => pattern.eq_ignore_ascii_case(sni),
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello.server_name().and_then(|sni| {
            // Exact names win over wildcards.
            self.certs
                .iter()
                .find(|c| {
                    c.server_names
                        .iter()
                        .any(|n| !n.starts_with('*') && name_matches(n, sni))
                })
                .or_else(|| {
                    self.certs
                        .iter()
                        .find(|c| c.server_names.iter().any(|n| name_matches(n, sni)))
                })
        });
        chosen.or(self.certs.first()).map(|c| c.key.clone())
    }
}

/// A server config offering `alpn` (e.g. `h2`, `http/1.1`) in preference order.
pub fn server_config(certs: &[TlsCert], alpn: &[&[u8]]) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver {
            certs: certs.to_vec(),
        }));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn wildcard_covers_one_label() {
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(name_matches("api.example.com", "API.example.com"));
    }
}
