//! # edgeward-sdk
//!
//! Write Edgeward gateway plugins in Rust:
//! routers that pick an endpoint per request, filters that edit or answer
//! requests, and scalers that turn measurements into replica counts. A plugin
//! is a WebAssembly component built for `wasm32-wasip2` against the WIT
//! package `edgeward:plugin@0.1.0` (shipped in this crate's `wit/`).
//!
//! - Implement [`Router`], [`Filter`] or [`Scaler`] and export it with
//!   [`export!`].
//! - Read the request through [`Request`] and the upstream through
//!   [`Upstream`]: each method is one host call, so read only what you need.
//! - Keep anything shared between requests in [`state`] (host-owned
//!   counters and a key-value store with TTL), never in a `static`.
//! - Count what matters to your business with [`metrics`] (counters, gauges,
//!   histograms on the gateway's `/metrics`, and in scale snapshots so a
//!   scaler can target them).
//! - Read time through [`clock`] only: the gateway's clock in a component,
//!   the fake host's simulated one in tests.
//! - Use the helpers: [`hash`] (stable hashing), [`rendezvous`] (affinity
//!   that survives endpoint changes), [`cookie`], [`select`], [`Config`].
//! - Test natively with `testing::FakeHost`: `cargo test`, no wasm (the
//!   `testing` module exists on non-wasm targets only).
//!
//! ## Depending on the SDK
//!
//! Until `edgeward-sdk` is on crates.io, depend on it by path (a checkout of
//! the Edgeward repository) or by `git`; keep `version` so the same line
//! resolves from crates.io once `path`/`git` is dropped:
//!
//! ```toml
//! [dependencies]
//! edgeward-sdk = { version = "0.1", path = "/path/to/edgeward/sdk" }
//! # or: edgeward-sdk = { version = "0.1", git = "<the Edgeward repository URL>" }
//! # once published: edgeward-sdk = "0.1"
//! ```
//!
//! `edgeward plugin new NAME --lang rust --world router` writes a project
//! with that line filled in, a passing test and a config that loads it.
//!
//! ## A complete router
//!
//! Round robin over the healthy endpoints, with the cursor in host state so
//! every instance shares it:
//!
//! ```
//! use edgeward_sdk::{select, state, Candidate, Config, Decision, Request, Router, Upstream};
//!
//! pub struct RoundRobin;
//!
//! impl Router for RoundRobin {
//!     fn init(config: &Config) -> Result<Self, String> {
//!         config.allow_only(&[])?;
//!         Ok(RoundRobin)
//!     }
//!
//!     fn choose(&self, _req: &Request<'_>, upstream: &Upstream<'_>, candidates: &[Candidate]) -> Decision {
//!         let healthy: Vec<&Candidate> = select::healthy(candidates).collect();
//!         if healthy.is_empty() {
//!             return Decision::Unavailable;
//!         }
//!         let i = state::next_index(&upstream.state_key("rr", candidates), healthy.len());
//!         Decision::forward(healthy[i])
//!     }
//! }
//!
//! edgeward_sdk::export!(router: RoundRobin);
//!
//! // The test half: a fake host plays the gateway.
//! use edgeward_sdk::testing::{FakeHost, FakeRequest, FakeUpstream};
//!
//! let host = FakeHost::new();
//! let rr: RoundRobin = host.router(&[]).unwrap();
//! let mut upstream = FakeUpstream::new("app")
//!     .with_endpoint("10.0.0.1:80")
//!     .with_endpoint("10.0.0.2:80")
//!     .with_endpoint("10.0.0.3:80");
//! upstream.set_healthy(1, false);
//! let picks: Vec<_> = (0..4)
//!     .map(|_| host.choose(&rr, &FakeRequest::get("/"), &upstream).endpoint().unwrap())
//!     .collect();
//! assert_eq!(picks, [0, 2, 0, 2]);
//! assert!(host.router::<RoundRobin>(&[("typo", "1")]).is_err());
//! ```
//!
//! ## Building the component
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib", "rlib"]   # cdylib for the component, rlib for tests
//!
//! [profile.release]
//! opt-level = "s"
//! lto = true
//! strip = true
//! panic = "abort"
//! ```
//!
//! ```text
//! rustup target add wasm32-wasip2
//! cargo build --release --target wasm32-wasip2
//! # -> target/wasm32-wasip2/release/<crate_name>.wasm, a component
//! ```
//!
//! The gateway loads it with a `plugins:` entry (`path:` plus `config:`);
//! `init` receives that `config:` map. A panic traps the instance: the
//! gateway discards it and applies the plugin's `on-error` policy.

pub mod clock;
pub mod config;
pub mod cookie;
pub mod hash;
pub mod log;
pub mod metrics;
mod plugin;
pub mod rendezvous;
mod request;
pub mod select;
pub mod state;
mod types;

#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[cfg(target_arch = "wasm32")]
mod wasm;

pub use config::Config;
pub use plugin::{Filter, Router, Scaler};
pub use request::{Request, Response, Upstream};
pub use types::{
    Action, Candidate, CustomMetric, Decision, DirectResponse, Forward, Header, HeaderEdit,
    HttpVersion, MetricKind, ScaleDecision, ScaleDirection, ScaleSnapshot,
};

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub use plugin::__private;

/// The WIT contract this SDK was built against, file name and text, for
/// tools and tests that want to check a host against it.
pub const WIT: &[(&str, &str)] = &[
    ("host.wit", include_str!("../wit/host.wit")),
    ("types.wit", include_str!("../wit/types.wit")),
    ("worlds.wit", include_str!("../wit/worlds.wit")),
];
