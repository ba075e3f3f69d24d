//! The host side of `wit/`: generated once here. Resources map to host types
//! that live in the store's table for the length of one call.

pub use super::host::{RequestView, ResponseView, UpstreamView};

/// The `router` world and the interfaces every world shares.
pub mod router {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "router",
        imports: { default: trappable },
        with: {
            "edgeward:plugin/types.request": super::RequestView,
            "edgeward:plugin/types.response": super::ResponseView,
            "edgeward:plugin/types.upstream": super::UpstreamView,
        },
    });
}

/// The `filter` world, reusing the router's generated interfaces so one host
/// implementation serves both.
pub mod filter {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "filter",
        with: {
            "edgeward:plugin/types": super::router::edgeward::plugin::types,
            "edgeward:plugin/log": super::router::edgeward::plugin::log,
            "edgeward:plugin/clock": super::router::edgeward::plugin::clock,
            "edgeward:plugin/state": super::router::edgeward::plugin::state,
            "edgeward:plugin/metrics": super::router::edgeward::plugin::metrics,
        },
    });
}

pub use router::edgeward::plugin::{clock, log, metrics, state, types};
