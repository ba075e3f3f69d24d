//! Edgeward: a regional edge gateway. See DESIGN.md for the request path.

pub mod admin;
pub mod body;
pub mod cache;
pub mod compress;
pub mod config;
pub mod demo;
pub mod listener;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub mod server;
pub mod upstream;
