//! What a plugin instance's store holds, and the host half of the contract:
//! `log`, `clock`, `state`, and the `request` / `response` / `upstream`
//! resources. Guests get WASI p2 with nothing granted: no preopens, no
//! environment, no sockets, and stdio that goes nowhere.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use http::HeaderMap;
use wasmtime::ResourceLimiter;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{clock, log, state, types};
use super::limit::LogLimiter;
use super::pool::Fault;
use super::state::{SharedState, StateError};

/// Longest log line a guest may write, bytes.
const MAX_LOG_LINE: usize = 1024;

/// What every instance of one plugin shares.
pub struct PluginShared {
    pub name: String,
    /// Outlives the generation: a plugin whose name stays keeps its state.
    pub state: Arc<SharedState>,
    pub log: LogLimiter,
    pub metrics: Arc<super::PluginMetrics>,
}

/// The store data of one plugin instance.
pub struct HostState {
    wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: MemoryCap,
    pub plugin: Arc<PluginShared>,
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
        }
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
    pub addresses: Vec<String>,
    pub tags: Vec<Vec<String>>,
    /// Zone number per endpoint (0 = unknown).
    pub zones: Vec<u32>,
    /// Zone names; zone number `n` is `zone_names[n - 1]`.
    pub zone_names: Vec<String>,
    pub local_zone: u32,
}

pub struct UpstreamView(pub Arc<UpstreamInfo>);

fn lossy(v: &http::HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

/// The first `name=value` pair among the `cookie` fields (RFC 6265 §5.4).
pub fn find_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = std::str::from_utf8(pair).ok()?.trim();
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
}

impl RequestView {
    fn header_all(&self, name: &str) -> Vec<String> {
        self.parts.headers.get_all(name).iter().map(lossy).collect()
    }
}

fn req<'a>(
    table: &'a ResourceTable,
    r: &Resource<RequestView>,
) -> wasmtime::Result<&'a RequestView> {
    Ok(table.get(r)?)
}

impl types::HostRequest for HostState {
    fn method(&mut self, r: Resource<RequestView>) -> wasmtime::Result<String> {
        Ok(req(&self.table, &r)?.parts.method.as_str().to_owned())
    }
    fn scheme(&mut self, r: Resource<RequestView>) -> wasmtime::Result<String> {
        Ok(req(&self.table, &r)?.scheme.to_owned())
    }
    fn authority(&mut self, r: Resource<RequestView>) -> wasmtime::Result<Option<String>> {
        let v = req(&self.table, &r)?;
        Ok(v.parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| v.parts.headers.get(http::header::HOST).map(lossy)))
    }
    fn path(&mut self, r: Resource<RequestView>) -> wasmtime::Result<String> {
        Ok(req(&self.table, &r)?.parts.uri.path().to_owned())
    }
    fn query(&mut self, r: Resource<RequestView>) -> wasmtime::Result<Option<String>> {
        Ok(req(&self.table, &r)?.parts.uri.query().map(str::to_owned))
    }
    fn header(
        &mut self,
        r: Resource<RequestView>,
        name: String,
    ) -> wasmtime::Result<Option<String>> {
        Ok(req(&self.table, &r)?
            .parts
            .headers
            .get(name.as_str())
            .map(lossy))
    }
    fn header_all(
        &mut self,
        r: Resource<RequestView>,
        name: String,
    ) -> wasmtime::Result<Vec<String>> {
        Ok(req(&self.table, &r)?.header_all(&name))
    }
    fn cookie(
        &mut self,
        r: Resource<RequestView>,
        name: String,
    ) -> wasmtime::Result<Option<String>> {
        Ok(find_cookie(&req(&self.table, &r)?.parts.headers, &name))
    }
    fn client_addr(&mut self, r: Resource<RequestView>) -> wasmtime::Result<types::IpAddress> {
        Ok(match req(&self.table, &r)?.client {
            IpAddr::V4(a) => {
                let [a, b, c, d] = a.octets();
                types::IpAddress::Ipv4((a, b, c, d))
            }
            IpAddr::V6(a) => {
                let [a, b, c, d, e, f, g, h] = a.segments();
                types::IpAddress::Ipv6((a, b, c, d, e, f, g, h))
            }
        })
    }
    fn http_version(&mut self, r: Resource<RequestView>) -> wasmtime::Result<types::HttpVersion> {
        use http::Version;
        Ok(match req(&self.table, &r)?.parts.version {
            Version::HTTP_09 | Version::HTTP_10 => types::HttpVersion::Http10,
            Version::HTTP_2 => types::HttpVersion::Http2,
            Version::HTTP_3 => types::HttpVersion::Http3,
            _ => types::HttpVersion::Http11,
        })
    }
    fn route(&mut self, r: Resource<RequestView>) -> wasmtime::Result<String> {
        Ok(req(&self.table, &r)?.route.to_string())
    }
    fn drop(&mut self, r: Resource<RequestView>) -> wasmtime::Result<()> {
        // Borrowed handles are deleted by the call site; an owned one (never
        // handed out today) would be cleaned up here.
        if r.owned() {
            self.table.delete(r)?;
        }
        Ok(())
    }
}

impl types::HostResponse for HostState {
    fn status(&mut self, r: Resource<ResponseView>) -> wasmtime::Result<u16> {
        Ok(self.table.get(&r)?.status)
    }
    fn header(
        &mut self,
        r: Resource<ResponseView>,
        name: String,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&r)?.headers.get(name.as_str()).map(lossy))
    }
    fn header_all(
        &mut self,
        r: Resource<ResponseView>,
        name: String,
    ) -> wasmtime::Result<Vec<String>> {
        Ok(self
            .table
            .get(&r)?
            .headers
            .get_all(name.as_str())
            .iter()
            .map(lossy)
            .collect())
    }
    fn drop(&mut self, r: Resource<ResponseView>) -> wasmtime::Result<()> {
        if r.owned() {
            self.table.delete(r)?;
        }
        Ok(())
    }
}

impl types::HostUpstream for HostState {
    fn name(&mut self, r: Resource<UpstreamView>) -> wasmtime::Result<String> {
        Ok(self.table.get(&r)?.0.name.clone())
    }
    fn address(&mut self, r: Resource<UpstreamView>, id: u32) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&r)?.0.addresses.get(id as usize).cloned())
    }
    fn zone_name(
        &mut self,
        r: Resource<UpstreamView>,
        zone: u32,
    ) -> wasmtime::Result<Option<String>> {
        let info = &self.table.get(&r)?.0;
        Ok(zone
            .checked_sub(1)
            .and_then(|z| info.zone_names.get(z as usize))
            .cloned())
    }
    fn local_zone(&mut self, r: Resource<UpstreamView>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&r)?.0.local_zone)
    }
    fn tags(&mut self, r: Resource<UpstreamView>, id: u32) -> wasmtime::Result<Vec<String>> {
        Ok(self
            .table
            .get(&r)?
            .0
            .tags
            .get(id as usize)
            .cloned()
            .unwrap_or_default())
    }
    fn tagged(&mut self, r: Resource<UpstreamView>, tag: String) -> wasmtime::Result<Vec<u32>> {
        let info = &self.table.get(&r)?.0;
        Ok(info
            .tags
            .iter()
            .enumerate()
            .filter(|(_, t)| t.contains(&tag))
            .map(|(i, _)| i as u32)
            .collect())
    }
    fn drop(&mut self, r: Resource<UpstreamView>) -> wasmtime::Result<()> {
        if r.owned() {
            self.table.delete(r)?;
        }
        Ok(())
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn enabled(&mut self, level: log::Level) -> wasmtime::Result<bool> {
        Ok(enabled(level))
    }

    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        if !enabled(level) {
            return Ok(());
        }
        let plugin = &self.plugin;
        let Some(dropped) = plugin.log.admit() else {
            plugin.metrics.log_dropped();
            return Ok(());
        };
        if dropped > 0 {
            tracing::warn!(plugin = %plugin.name, dropped, "plugin log lines dropped by the rate limit");
        }
        let mut msg = message.as_str();
        if msg.len() > MAX_LOG_LINE {
            let mut end = MAX_LOG_LINE;
            while !msg.is_char_boundary(end) {
                end -= 1;
            }
            msg = &msg[..end];
        }
        let name = plugin.name.as_str();
        match level {
            log::Level::Trace => {
                tracing::trace!(target: "edgeward::plugin", plugin = name, "{msg}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "edgeward::plugin", plugin = name, "{msg}")
            }
            log::Level::Info => tracing::info!(target: "edgeward::plugin", plugin = name, "{msg}"),
            log::Level::Warn => tracing::warn!(target: "edgeward::plugin", plugin = name, "{msg}"),
            log::Level::Error => {
                tracing::error!(target: "edgeward::plugin", plugin = name, "{msg}")
            }
        }
        Ok(())
    }
}

fn enabled(level: log::Level) -> bool {
    match level {
        log::Level::Trace => tracing::enabled!(target: "edgeward::plugin", tracing::Level::TRACE),
        log::Level::Debug => tracing::enabled!(target: "edgeward::plugin", tracing::Level::DEBUG),
        log::Level::Info => tracing::enabled!(target: "edgeward::plugin", tracing::Level::INFO),
        log::Level::Warn => tracing::enabled!(target: "edgeward::plugin", tracing::Level::WARN),
        log::Level::Error => tracing::enabled!(target: "edgeward::plugin", tracing::Level::ERROR),
    }
}

/// The zero of `monotonic-now`, shared by every instance in the process.
fn process_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl clock::Host for HostState {
    fn monotonic_now(&mut self) -> wasmtime::Result<u64> {
        Ok(process_start().elapsed().as_nanos() as u64)
    }
    fn wall_now(&mut self) -> wasmtime::Result<u64> {
        Ok(SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64))
    }
}

impl state::Host for HostState {
    fn counter_get(&mut self, key: String) -> wasmtime::Result<i64> {
        Ok(self.plugin.state.counter_get(&key))
    }
    fn counter_add(&mut self, key: String, delta: i64) -> wasmtime::Result<i64> {
        Ok(self.plugin.state.counter_add(&key, delta))
    }
    fn counter_set(&mut self, key: String, value: i64) -> wasmtime::Result<()> {
        self.plugin.state.counter_set(&key, value);
        Ok(())
    }
    fn counter_compare_and_swap(
        &mut self,
        key: String,
        expected: i64,
        new: i64,
    ) -> wasmtime::Result<bool> {
        Ok(self.plugin.state.counter_cas(&key, expected, new))
    }
    fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.plugin.state.kv_get(&key))
    }
    fn kv_set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<Result<(), state::StateError>> {
        let ttl = ttl_ms.map(Duration::from_millis);
        Ok(self
            .plugin
            .state
            .kv_set(&key, value, ttl)
            .map_err(|e| match e {
                StateError::TooLarge => state::StateError::TooLarge,
                StateError::Full => state::StateError::Full,
            }))
    }
    fn kv_delete(&mut self, key: String) -> wasmtime::Result<bool> {
        Ok(self.plugin.state.kv_delete(&key))
    }
}

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
            }),
            1 << 20,
        )
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

    #[test]
    fn cookies_are_found_across_fields() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; ew=\"x\"".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        assert_eq!(find_cookie(&h, "ew").as_deref(), Some("\"x\""));
        assert_eq!(find_cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(find_cookie(&h, "c"), None);
    }
}
