//! Edgeward: a regional edge gateway. See DESIGN.md for the request path.
//!
//! Modules depend downwards only: policy leaves ([`matching`], `cache::policy`,
//! [`encoding`], config units) → [`config`] → stages ([`cache`],
//! [`compress`], [`upstream`], [`plugin`], [`metrics`]) → [`node`] (what lives
//! for the process, and the swappable generation) → [`session`] (one request,
//! phase by phase) and [`scale`] (the scale-signal loop) → [`listener`] /
//! [`admin`] → [`server`] (binding, reload, the loops, drain).

pub mod admin;
pub mod body;
pub mod builtins;
pub mod cache;
pub mod compress;
pub mod config;
pub mod demo;
pub mod encoding;
#[doc(hidden)]
pub mod fuzz;
pub mod listener;
pub mod matching;
pub mod metrics;
pub mod node;
pub mod plugin;
pub mod scale;
pub mod server;
pub mod session;
pub mod upstream;
pub mod workers;
