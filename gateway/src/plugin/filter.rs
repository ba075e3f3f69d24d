//! Calling a filter plugin on a route's request and response heads.

use std::sync::Arc;

use http::Response;
use wasmtime::Store;
use wasmtime::component::{Component, Linker, Resource};

use super::bindings::filter::{Filter, FilterPre};
use super::bindings::types;
use super::host::{HostState, RequestView, ResponseView};
use super::metrics::PluginMetrics;
use super::pool::{Fault, Instance, Pool, World};
use super::router::{CallContext, HeaderEdit, direct_response, edits};
use crate::body::Body;
use crate::config::OnError;

impl World for Filter {
    type Pre = FilterPre<HostState>;

    fn pre(linker: &Linker<HostState>, component: &Component) -> wasmtime::Result<Self::Pre> {
        FilterPre::new(linker.instantiate_pre(component)?)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }

    fn init(
        &self,
        store: &mut Store<HostState>,
        config: &[(String, String)],
    ) -> wasmtime::Result<Result<(), String>> {
        self.call_init(store, config)
    }
}

/// What a filter decided.
#[derive(Debug)]
pub enum FilterAction {
    Continue(Vec<HeaderEdit>),
    Respond(Response<Body>),
}

pub struct FilterPlugin {
    pool: Pool<Filter>,
    pub on_error: OnError,
    pub(crate) metrics: Arc<PluginMetrics>,
}

impl FilterPlugin {
    pub(super) fn new(pool: Pool<Filter>, on_error: OnError, metrics: Arc<PluginMetrics>) -> Self {
        Self {
            pool,
            on_error,
            metrics,
        }
    }

    pub fn name(&self) -> &str {
        &self.metrics.name
    }

    /// `on-request`; the head is lent to the guest and handed back, whatever
    /// the outcome (so `on-error: fallback` carries on with it).
    pub fn on_request(
        &self,
        parts: &mut http::request::Parts,
        ctx: &CallContext,
    ) -> Result<FilterAction, Fault> {
        let r = self.call(parts, ctx, None);
        self.metrics
            .record(&r.as_ref().map(|_| ()).map_err(Clone::clone));
        r
    }

    /// `on-response`, with the request head kept from before forwarding;
    /// both heads are handed back whatever the outcome.
    pub fn on_response(
        &self,
        parts: &mut http::request::Parts,
        ctx: &CallContext,
        status: u16,
        headers: &mut http::HeaderMap,
    ) -> Result<FilterAction, Fault> {
        let r = self.call(parts, ctx, Some((status, headers)));
        self.metrics
            .record(&r.as_ref().map(|_| ()).map_err(Clone::clone));
        r
    }

    fn call(
        &self,
        parts: &mut http::request::Parts,
        ctx: &CallContext,
        response: Option<(u16, &mut http::HeaderMap)>,
    ) -> Result<FilterAction, Fault> {
        let mut lease = self.pool.checkout()?;
        let inst = lease.get();
        let req =
            inst.store
                .data_mut()
                .lend_request(parts, ctx.client, ctx.scheme, ctx.route.clone())?;
        // Whatever the call did, the heads come back before anything returns:
        // the on-error fallback carries on with them.
        let answer = call(inst, &req, response);
        inst.store.data_mut().take_back_request(req, parts);
        let action = match answer? {
            types::Action::Continue(list) => FilterAction::Continue(edits(list)?),
            types::Action::Respond(r) => FilterAction::Respond(direct_response(r)?),
        };
        lease.release();
        Ok(action)
    }
}

fn call(
    inst: &mut Instance<Filter>,
    req: &Resource<RequestView>,
    response: Option<(u16, &mut http::HeaderMap)>,
) -> Result<types::Action, Fault> {
    let req_borrow = Resource::<RequestView>::new_borrow(req.rep());
    let Some((status, headers)) = response else {
        return inst.run(|guest, store| guest.call_on_request(store, req_borrow));
    };
    let resp = inst.store.data_mut().lend_response(status, headers)?;
    let resp_borrow = Resource::<ResponseView>::new_borrow(resp.rep());
    let answer = inst.run(|guest, store| guest.call_on_response(store, req_borrow, resp_borrow));
    inst.store.data_mut().take_back_response(resp, headers);
    answer
}
