//! What a plugin instance's store holds: its WASI context (nothing granted:
//! no preopens, no environment, no sockets, stdio that goes nowhere), its
//! memory cap, and the heads a call lends it. The host interfaces are in
//! `host_api.rs`, the resources' methods in `resources.rs`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;
use wasmtime::ResourceLimiter;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::custom_metrics::CustomMetrics;
use super::limit::LogLimiter;
use super::pool::Fault;
use super::state::SharedState;

/// What every instance of one plugin shares.
pub struct PluginShared {
    pub name: String,
    /// Outlives the generation: a plugin whose name stays keeps its state.
    pub state: Arc<SharedState>,
    pub log: LogLimiter,
    pub metrics: Arc<super::PluginMetrics>,
    /// The metrics the plugin defines; outlives the generation like `state`.
    pub custom: Arc<CustomMetrics>,
    /// Each route's upstream, by route name: a filter's metrics are the
    /// upstream's its request is routed to.
    pub route_upstreams: Arc<HashMap<Arc<str>, Arc<str>>>,
}

/// The store data of one plugin instance.
pub struct HostState {
    wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: MemoryCap,
    pub plugin: Arc<PluginShared>,
    /// The upstream the current call is for (`""` for none, e.g. in `init`):
    /// the label of the metrics it records.
    pub scope: Arc<str>,
}

/// Host-side handles (WASI pollables, our resources) one instance may hold:
/// they live outside the guest's memory cap, so they get their own.
const MAX_HANDLES: usize = 1024;

impl HostState {
    pub fn new(plugin: Arc<PluginShared>, memory: usize) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HANDLES);
        Self {
            // The builder's defaults grant nothing; stdio is closed/discarded.
            wasi: WasiCtxBuilder::new().build(),
            table,
            limits: MemoryCap {
                limit: memory,
                refused: false,
            },
            plugin,
            scope: Arc::from(""),
        }
    }

    /// Records the call's metrics under `upstream` (a scaler's service).
    pub fn set_scope(&mut self, upstream: &Arc<str>) {
        self.scope = upstream.clone();
    }
}

/// The memory cap of one instance. A call asks it afterwards whether memory
/// was refused: that is then the cause of the fault, whichever trap ended the
/// call (a guest may react to the refusal by panicking or by running into its
/// deadline), and it is a fact rather than a match on an error's wording.
pub struct MemoryCap {
    limit: usize,
    refused: bool,
}

impl MemoryCap {
    /// Whether a grow was refused since the last time this was asked.
    pub fn take_refused(&mut self) -> bool {
        std::mem::take(&mut self.refused)
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit || maximum.is_some_and(|m| desired > m) {
            self.refused = true;
            // A trap rather than `memory.grow` returning -1: a guest's
            // allocator would abort on -1 anyway, and this stops it at once.
            wasmtime::bail!(
                "memory cap of {} bytes reached (growing to {desired})",
                self.limit
            );
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.refused = true;
        Err(error.context("growing memory failed"))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|m| desired > m) {
            wasmtime::bail!("table limit reached (growing to {desired} elements)");
        }
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("growing a table failed"))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The downstream request as a `request` resource. The request head is moved
/// in for the call and moved back out afterwards, so nothing is copied unless
/// the guest asks for it.
pub struct RequestView {
    pub parts: http::request::Parts,
    pub client: IpAddr,
    pub scheme: &'static str,
    pub route: Arc<str>,
}

/// The upstream response head as a `response` resource.
pub struct ResponseView {
    pub status: u16,
    pub headers: HeaderMap,
}

/// Why the host could not lend a resource to a call.
fn table_full(e: wasmtime::component::ResourceTableError) -> Fault {
    Fault::Trap(format!(
        "the host cannot lend it the call's resources ({e}); it holds all \
         {MAX_HANDLES} host handles an instance may have: does it leak WASI resources?"
    ))
}

fn empty_parts() -> http::request::Parts {
    http::Request::new(()).into_parts().0
}

/// Lending a head to a call. A table push that fails drops the value it was
/// given, so an empty placeholder goes in first and the real head is swapped
/// in only once its slot exists: whatever fails, the caller's head is either
/// still with the caller or in the table, where [`HostState::take_back_request`]
/// finds it.
impl HostState {
    pub fn lend_request(
        &mut self,
        parts: &mut http::request::Parts,
        client: IpAddr,
        scheme: &'static str,
        route: Arc<str>,
    ) -> Result<Resource<RequestView>, Fault> {
        if let Some(u) = self.plugin.route_upstreams.get(&route) {
            self.scope = u.clone();
        }
        let r = self
            .table
            .push(RequestView {
                parts: empty_parts(),
                client,
                scheme,
                route,
            })
            .map_err(table_full)?;
        if let Ok(v) = self.table.get_mut(&r) {
            std::mem::swap(&mut v.parts, parts);
        }
        Ok(r)
    }

    /// Gives the head lent by [`HostState::lend_request`] back to `parts`.
    /// The swap comes before the delete so that the head is back even if
    /// the entry could not be removed.
    pub fn take_back_request(
        &mut self,
        r: Resource<RequestView>,
        parts: &mut http::request::Parts,
    ) {
        if let Ok(v) = self.table.get_mut(&r) {
            std::mem::swap(&mut v.parts, parts);
        }
        let _ = self.table.delete(r);
    }

    pub fn lend_response(
        &mut self,
        status: u16,
        headers: &mut HeaderMap,
    ) -> Result<Resource<ResponseView>, Fault> {
        let r = self
            .table
            .push(ResponseView {
                status,
                headers: HeaderMap::new(),
            })
            .map_err(table_full)?;
        if let Ok(v) = self.table.get_mut(&r) {
            std::mem::swap(&mut v.headers, headers);
        }
        Ok(r)
    }

    pub fn take_back_response(&mut self, r: Resource<ResponseView>, headers: &mut HeaderMap) {
        if let Ok(v) = self.table.get_mut(&r) {
            std::mem::swap(&mut v.headers, headers);
        }
        let _ = self.table.delete(r);
    }

    pub fn lend_upstream(
        &mut self,
        info: &Arc<UpstreamInfo>,
    ) -> Result<Resource<UpstreamView>, Fault> {
        self.scope = info.scope.clone();
        self.table
            .push(UpstreamView(info.clone()))
            .map_err(table_full)
    }

    pub fn take_back_upstream(&mut self, r: Resource<UpstreamView>) {
        let _ = self.table.delete(r);
    }
}

/// Facts about an upstream that change only on reload.
#[derive(Debug, Default)]
pub struct UpstreamInfo {
    pub name: String,
    /// `name` again, shared, as the label of metrics a router records.
    pub scope: Arc<str>,
    pub addresses: Vec<String>,
    pub tags: Vec<Vec<String>>,
    /// Zone number per endpoint (0 = unknown).
    pub zones: Vec<u32>,
    /// Zone names; zone number `n` is `zone_names[n - 1]`.
    pub zone_names: Vec<String>,
    pub local_zone: u32,
}

pub struct UpstreamView(pub Arc<UpstreamInfo>);
#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostState {
        let metrics = Arc::new(super::super::PluginMetrics::new("p"));
        HostState::new(
            Arc::new(PluginShared {
                name: "p".into(),
                state: Default::default(),
                log: LogLimiter::new(1, 1),
                metrics,
                custom: Arc::new(CustomMetrics::new("p")),
                route_upstreams: Arc::new(HashMap::from([(Arc::from("r"), Arc::from("svc"))])),
            }),
            1 << 20,
        )
    }

    #[test]
    fn metrics_are_labelled_with_the_upstream_of_the_call() {
        let mut h = host();
        assert_eq!(&*h.scope, "", "nothing before a call (init)");
        let mut parts = head();
        let client = IpAddr::from([127, 0, 0, 1]);
        let r = h
            .lend_request(&mut parts, client, "http", Arc::from("r"))
            .unwrap();
        assert_eq!(&*h.scope, "svc", "a filter's route's upstream");
        h.take_back_request(r, &mut parts);
        let info = Arc::new(UpstreamInfo {
            name: "other".into(),
            scope: Arc::from("other"),
            ..UpstreamInfo::default()
        });
        let u = h.lend_upstream(&info).unwrap();
        assert_eq!(&*h.scope, "other", "a router's upstream");
        h.take_back_upstream(u);
        h.set_scope(&Arc::from("scaled"));
        assert_eq!(&*h.scope, "scaled", "a scaler's service");
    }

    fn head() -> http::request::Parts {
        http::Request::get("http://a.example/p?q=1")
            .header("x-client", "kept")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn intact(parts: &http::request::Parts) -> bool {
        parts.uri == "http://a.example/p?q=1" && parts.headers["x-client"] == "kept"
    }

    #[test]
    fn a_full_table_never_takes_the_head() {
        let route: Arc<str> = Arc::from("r");
        let client = IpAddr::from([127, 0, 0, 1]);
        for free in [0, 1] {
            let mut h = host();
            for _ in 0..MAX_HANDLES - free {
                h.table.push(()).unwrap();
            }
            let mut parts = head();
            let lent = h.lend_request(&mut parts, client, "http", route.clone());
            if free == 0 {
                assert!(matches!(lent, Err(Fault::Trap(_))), "{free}");
            } else {
                let r = lent.expect("one slot was free");
                let up = h.lend_upstream(&Arc::new(UpstreamInfo::default()));
                assert!(up.is_err(), "no slot left for the upstream");
                h.take_back_request(r, &mut parts);
            }
            assert!(intact(&parts), "free slots {free}: {parts:?}");
        }
        let mut h = host();
        for _ in 0..MAX_HANDLES - 1 {
            h.table.push(()).unwrap();
        }
        let mut headers = head().headers;
        assert!(h.lend_response(200, &mut headers).is_ok());
        let mut headers = head().headers;
        assert!(h.lend_response(200, &mut headers).is_err());
        assert_eq!(headers["x-client"], "kept");
    }
}
