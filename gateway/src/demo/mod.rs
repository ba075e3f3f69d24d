//! `edgeward demo`: a complete node with its own upstream services, so a new user
//! sees routing, TLS, h2 and balancing work before writing any configuration.

mod upstreams;

use std::path::Path;

pub use upstreams::{DemoService, spawn_service};

/// The demo configuration, printed by `edgeward demo --print-config`.
pub const CONFIG: &str = include_str!("demo.yaml");

/// The demo's services: name, instance addresses (must match [`CONFIG`]).
pub const SERVICES: [(&str, &[&str]); 3] = [
    (
        "product",
        &["127.0.0.1:18101", "127.0.0.1:18102", "127.0.0.1:18103"],
    ),
    ("order", &["127.0.0.1:18201", "127.0.0.1:18202"]),
    ("auth", &["127.0.0.1:18301"]),
];

/// Starts every demo upstream instance and returns them (they stop when dropped).
pub async fn start_upstreams() -> std::io::Result<Vec<DemoService>> {
    let mut running = Vec::new();
    for (service, addrs) in SERVICES {
        for (i, addr) in addrs.iter().enumerate() {
            let addr = addr.parse().expect("demo addresses are valid");
            let instance = format!("{service}-{}", i + 1);
            running.push(spawn_service(service, &instance, addr).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("demo upstream {instance}: cannot bind {addr}: {e}"),
                )
            })?);
        }
    }
    Ok(running)
}

/// The demo config, validated like any other file.
pub fn config() -> Result<crate::config::Config, crate::config::ConfigError> {
    crate::config::load_str(CONFIG, Path::new("<demo>/edgeward.yaml"))
}
