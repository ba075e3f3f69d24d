//! Helpers for the end-to-end tests: the real `edgeward` binary, real upstream
//! servers and real clients, all on loopback ports chosen by the kernel.
//!
//! Kept in its own crate (as linkerd2-proxy does) because it is costly to compile
//! and shared by every test file in `tests/tests/`.

pub mod certs;
pub mod client;
pub mod counting;
pub mod gateway;
pub mod h3client;
pub mod load;
pub mod prom;
pub mod upstream;

pub use certs::TestCert;
pub use client::{Client, TlsClient};
pub use gateway::{Gateway, edgeward_bin, free_addr, free_addrs};
pub use upstream::{Reply, Upstream};

/// The body type used by test servers and clients.
pub type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub fn full(bytes: impl Into<bytes::Bytes>) -> Body {
    use http_body_util::BodyExt;
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    full(bytes::Bytes::new())
}
