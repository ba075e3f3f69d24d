//! The three plugin roles as traits, and [`export!`](crate::export) that
//! turns a type implementing one into a component's exports.

use crate::{
    Action, Candidate, Config, Decision, Request, Response, ScaleDecision, ScaleSnapshot, Upstream,
};

/// A router picks the endpoint that serves a request.
///
/// `init` runs once per instance with the plugin's `config:`; the value it
/// returns serves every later call on that instance. Keep shared, mutable
/// state in [`state`](crate::state), not in `self`: instances are pooled and
/// many run at once. Per-instance caches of pure functions are fine.
pub trait Router: Sized + 'static {
    /// Check the config and build the router. An `Err` stops the plugin
    /// from loading and is shown to the operator: name the key and the fix.
    fn init(config: &Config) -> Result<Self, String>;

    /// Choose an endpoint for `request`. `candidates` holds every endpoint of
    /// `upstream` in id order, unhealthy ones included.
    fn choose(
        &self,
        request: &Request<'_>,
        upstream: &Upstream<'_>,
        candidates: &[Candidate],
    ) -> Decision;
}

/// A filter sees a route's requests before routing and responses on the
/// way back. Both hooks default to "carry on unchanged".
pub trait Filter: Sized + 'static {
    /// Check the config and build the filter.
    fn init(config: &Config) -> Result<Self, String>;

    /// Edit the request or answer it directly.
    fn on_request(&self, request: &Request<'_>) -> Action {
        let _ = request;
        Action::pass()
    }

    /// Edit the response headers or replace the response.
    fn on_response(&self, request: &Request<'_>, response: &Response<'_>) -> Action {
        let _ = (request, response);
        Action::pass()
    }
}

/// A scaler turns a service's measurements into a replica count.
pub trait Scaler: Sized + 'static {
    /// Check the config and build the scaler.
    fn init(config: &Config) -> Result<Self, String>;

    /// Decide the desired replica count.
    fn evaluate(&self, snapshot: &ScaleSnapshot) -> ScaleDecision;
}

/// Export a type implementing [`Router`], [`Filter`] or [`Scaler`] as the
/// component's world. Write it once at the crate root:
///
/// ```text
/// edgeward_sdk::export!(router: MyRouter);
/// edgeward_sdk::export!(filter: MyFilter);
/// edgeward_sdk::export!(scaler: MyScaler);
/// ```
///
/// On wasm32 this generates the component's exports; natively it expands to
/// nothing, so the same crate unit-tests with `cargo test` through
/// `edgeward_sdk::testing` (native targets only).
#[macro_export]
macro_rules! export {
    (router: $plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__private::router as __world;
            use $crate::__private::types as __t;
            ::std::thread_local! {
                static __PLUGIN: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            struct __EdgewardExport;
            impl __world::Guest for __EdgewardExport {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::init::<$plugin>(
                        &__PLUGIN,
                        config,
                        <$plugin as $crate::Router>::init,
                    )
                }
                fn choose(
                    req: &__t::Request,
                    target: &__t::Upstream,
                    candidates: ::std::vec::Vec<__t::Candidate>,
                ) -> __t::Decision {
                    $crate::__private::choose::<$plugin>(&__PLUGIN, req, target, candidates)
                }
            }
    __world::export_router_world!(__EdgewardExport with_types_in __world);
        };
    };
    (filter: $plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__private::filter as __world;
            use $crate::__private::types as __t;
            ::std::thread_local! {
                static __PLUGIN: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            struct __EdgewardExport;
            impl __world::Guest for __EdgewardExport {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::init::<$plugin>(
                        &__PLUGIN,
                        config,
                        <$plugin as $crate::Filter>::init,
                    )
                }
                fn on_request(req: &__t::Request) -> __t::Action {
                    $crate::__private::on_request::<$plugin>(&__PLUGIN, req)
                }
                fn on_response(req: &__t::Request, resp: &__t::Response) -> __t::Action {
                    $crate::__private::on_response::<$plugin>(&__PLUGIN, req, resp)
                }
            }
    __world::export_filter_world!(__EdgewardExport with_types_in __world);
        };
    };
    (scaler: $plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__private::scaler as __world;
            use $crate::__private::types as __t;
            ::std::thread_local! {
                static __PLUGIN: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            struct __EdgewardExport;
            impl __world::Guest for __EdgewardExport {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::init::<$plugin>(
                        &__PLUGIN,
                        config,
                        <$plugin as $crate::Scaler>::init,
                    )
                }
                fn evaluate(snapshot: __t::ScaleSnapshot) -> __t::ScaleDecision {
                    $crate::__private::evaluate::<$plugin>(&__PLUGIN, snapshot)
                }
            }
    __world::export_scaler_world!(__EdgewardExport with_types_in __world);
        };
    };
}

/// Glue the [`export!`](crate::export) expansion calls; not a public API.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private {
    use std::cell::RefCell;
    use std::thread::LocalKey;

    pub use crate::wasm::types;
    pub use crate::wasm::{filter, router, scaler};
    use crate::{Config, Filter, Request, Response, Router, Scaler, Upstream};

    type Slot<T> = LocalKey<RefCell<Option<T>>>;

    const NOT_INITIALISED: &str = "plugin called before init succeeded";

    pub fn init<T>(
        slot: &'static Slot<T>,
        config: Vec<(String, String)>,
        build: fn(&Config) -> Result<T, String>,
    ) -> Result<(), String> {
        // Every instance runs `init` before any other export.
        crate::wasm::install_panic_hook();
        let plugin = build(&Config::new(config))?;
        slot.with_borrow_mut(|s| *s = Some(plugin));
        Ok(())
    }

    pub fn choose<T: Router>(
        slot: &'static Slot<T>,
        req: &types::Request,
        target: &types::Upstream,
        candidates: Vec<types::Candidate>,
    ) -> types::Decision {
        // Same layout on both sides, so this collects in place.
        let candidates: Vec<crate::Candidate> = candidates.into_iter().map(Into::into).collect();
        slot.with_borrow(|p| {
            let p = p.as_ref().expect(NOT_INITIALISED);
            p.choose(
                &Request::from_handle(req),
                &Upstream::from_handle(target),
                &candidates,
            )
        })
        .into()
    }

    pub fn on_request<T: Filter>(slot: &'static Slot<T>, req: &types::Request) -> types::Action {
        slot.with_borrow(|p| {
            p.as_ref()
                .expect(NOT_INITIALISED)
                .on_request(&Request::from_handle(req))
        })
        .into()
    }

    pub fn on_response<T: Filter>(
        slot: &'static Slot<T>,
        req: &types::Request,
        resp: &types::Response,
    ) -> types::Action {
        slot.with_borrow(|p| {
            p.as_ref()
                .expect(NOT_INITIALISED)
                .on_response(&Request::from_handle(req), &Response::from_handle(resp))
        })
        .into()
    }

    pub fn evaluate<T: Scaler>(
        slot: &'static Slot<T>,
        snapshot: types::ScaleSnapshot,
    ) -> types::ScaleDecision {
        let snapshot = snapshot.into();
        slot.with_borrow(|p| p.as_ref().expect(NOT_INITIALISED).evaluate(&snapshot))
            .into()
    }
}
