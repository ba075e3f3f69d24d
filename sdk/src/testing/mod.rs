//! A fake host for native unit tests: plain `cargo test`, no wasm involved.
//!
//! [`FakeHost`] plays the gateway's part: it owns the plugin's shared
//! [`state`](crate::state), a [`clock`](crate::clock) that moves only when
//! the test says so, and the captured [`log`](crate::log) lines. Build
//! requests with [`FakeRequest`] and upstreams with [`FakeUpstream`], then
//! call the plugin through the host. The host checks decisions as the
//! gateway would (a `forward` must name a candidate, a direct response must
//! be valid) and panics with the reason when a plugin breaks the contract.
//!
//! Two plugin values made by the same `FakeHost` behave like two pooled
//! instances: they share state and nothing else.
//!
//! ```
//! use edgeward_sdk::testing::{FakeHost, FakeRequest, FakeUpstream};
//! use edgeward_sdk::{state, Candidate, Config, Decision, Request, Router, Upstream};
//!
//! struct First;
//! impl Router for First {
//!     fn init(_: &Config) -> Result<Self, String> { Ok(First) }
//!     fn choose(&self, _: &Request<'_>, _: &Upstream<'_>, c: &[Candidate]) -> Decision {
//!         state::counter_add("calls", 1);
//!         Decision::forward_or_unavailable(c.iter().find(|c| c.healthy))
//!     }
//! }
//!
//! let host = FakeHost::new();
//! let router: First = host.router(&[]).unwrap();
//! let mut upstream = FakeUpstream::new("app").with_endpoint("10.0.0.1:80").with_endpoint("10.0.0.2:80");
//! upstream.set_healthy(0, false);
//! let d = host.choose(&router, &FakeRequest::get("/"), &upstream);
//! assert_eq!(d.endpoint(), Some(1));
//! assert_eq!(host.counter("calls"), 1);
//! ```

mod request;
mod store;
mod upstream;

pub use request::{FakeRequest, FakeResponse};
pub use upstream::{FakeEndpoint, FakeUpstream};

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::log::Level;
use crate::metrics::MetricError;
use crate::state::StateError;
use crate::{
    Action, Config, Decision, Filter, Request, Response, Router, ScaleDecision, ScaleSnapshot,
    Scaler, Upstream,
};
use store::Store;

/// The monotonic clock of a fresh `FakeHost`, nanoseconds (1 s).
const START_MONOTONIC: u64 = 1_000_000_000;

/// Wall time a fresh `FakeHost` starts at: 2026-01-01T00:00:00Z.
pub const START_WALL: Duration = Duration::from_secs(1_767_225_600);

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<HostState>>>> = const { RefCell::new(None) };
}

/// What the host functions see while a `FakeHost` runs plugin code.
#[derive(Debug)]
pub(crate) struct HostState {
    monotonic: u64,
    wall: u64,
    store: Store,
    logs: Vec<(Level, String)>,
    min_level: Level,
    metrics: BTreeMap<String, FakeMetric>,
}

/// A metric the plugin defined, as the fake host holds it: one series per
/// name (the gateway keeps one per upstream).
#[derive(Debug, Clone, PartialEq)]
enum FakeMetric {
    Counter(u64),
    Gauge(f64),
    Histogram(Vec<f64>),
}

/// One call of the `metrics` interface.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MetricUpdate {
    Add(u64),
    Set(f64),
    GaugeAdd(f64),
    Observe(f64),
}

impl HostState {
    /// The host `metrics` interface, with the gateway's rules and limits.
    pub(crate) fn metric(&mut self, name: &str, update: MetricUpdate) -> Result<(), MetricError> {
        if let MetricUpdate::Set(v) | MetricUpdate::GaugeAdd(v) | MetricUpdate::Observe(v) = update
            && !v.is_finite()
        {
            return Err(MetricError::InvalidValue);
        }
        if !self.metrics.contains_key(name) {
            if !crate::metrics::valid_name(name) {
                return Err(MetricError::InvalidName);
            }
            if self.metrics.len() >= crate::metrics::MAX_METRICS {
                return Err(MetricError::TooMany);
            }
            let fresh = match update {
                MetricUpdate::Add(_) => FakeMetric::Counter(0),
                MetricUpdate::Set(_) | MetricUpdate::GaugeAdd(_) => FakeMetric::Gauge(0.0),
                MetricUpdate::Observe(_) => FakeMetric::Histogram(Vec::new()),
            };
            self.metrics.insert(name.to_owned(), fresh);
        }
        let Some(m) = self.metrics.get_mut(name) else {
            return Err(MetricError::InvalidName);
        };
        match (m, update) {
            (FakeMetric::Counter(n), MetricUpdate::Add(d)) => {
                *n = n.checked_add(d).ok_or(MetricError::InvalidValue)?;
            }
            (FakeMetric::Gauge(g), MetricUpdate::Set(v)) => *g = v,
            (FakeMetric::Gauge(g), MetricUpdate::GaugeAdd(d)) => *g += d,
            (FakeMetric::Histogram(h), MetricUpdate::Observe(v)) => h.push(v),
            _ => return Err(MetricError::WrongKind),
        }
        Ok(())
    }

    pub(crate) fn monotonic_ns(&self) -> u64 {
        self.monotonic
    }

    pub(crate) fn wall_ns(&self) -> u64 {
        self.wall
    }

    pub(crate) fn log_enabled(&self, level: Level) -> bool {
        level >= self.min_level
    }

    pub(crate) fn log_line(&mut self, level: Level, message: &str) {
        if self.log_enabled(level) {
            let mut line = message.to_owned();
            if line.len() > 1024 {
                let mut cut = 1024;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
            }
            self.logs.push((level, line));
        }
    }

    pub(crate) fn counter_get(&mut self, key: &str) -> i64 {
        self.store.counter_get(key)
    }

    pub(crate) fn counter_add(&mut self, key: &str, delta: i64) -> i64 {
        self.store.counter_add(key, delta)
    }

    pub(crate) fn counter_set(&mut self, key: &str, value: i64) {
        self.store.counter_set(key, value);
    }

    pub(crate) fn counter_compare_and_swap(&mut self, key: &str, expected: i64, new: i64) -> bool {
        self.store.counter_compare_and_swap(key, expected, new)
    }

    pub(crate) fn kv_get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.store.kv_get(key, self.monotonic)
    }

    pub(crate) fn kv_set(
        &mut self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<(), StateError> {
        self.store.kv_set(key, value, ttl_ms, self.monotonic)
    }

    pub(crate) fn kv_delete(&mut self, key: &str) -> bool {
        self.store.kv_delete(key, self.monotonic)
    }
}

/// Run `f` against the host of the `FakeHost` call in progress.
pub(crate) fn with_host<R>(f: impl FnOnce(&mut HostState) -> R) -> R {
    CURRENT.with_borrow(|current| {
        let host = current.as_ref().expect(
            "edgeward-sdk: a host function (state, clock, log) was called outside a FakeHost; \
             call the plugin through edgeward_sdk::testing::FakeHost (e.g. host.choose(..) or host.run(..))",
        );
        f(&mut host.borrow_mut())
    })
}

/// The gateway's part in a native test: state, clock and log for one plugin.
#[derive(Debug, Clone)]
pub struct FakeHost {
    state: Rc<RefCell<HostState>>,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHost {
    /// A host with empty state, the monotonic clock at 1 s, wall time at
    /// [`START_WALL`], every log level enabled, and the gateway's default
    /// state limit of 10 000 entries.
    pub fn new() -> Self {
        Self {
            state: Rc::new(RefCell::new(HostState {
                monotonic: START_MONOTONIC,
                wall: START_WALL.as_nanos() as u64,
                store: Store::new(10_000),
                logs: Vec::new(),
                min_level: Level::Trace,
                metrics: BTreeMap::new(),
            })),
        }
    }

    /// Limit the number of state entries (counters plus keys).
    pub fn with_max_entries(self, max: usize) -> Self {
        self.state.borrow_mut().store.set_max_entries(max);
        self
    }

    /// Only keep log lines at `level` or above ([`log::enabled`](crate::log::enabled) follows).
    pub fn with_log_level(self, level: Level) -> Self {
        self.state.borrow_mut().min_level = level;
        self
    }

    /// Run plugin code with this host answering its host calls.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<Rc<RefCell<HostState>>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with_borrow_mut(|c| *c = previous);
            }
        }
        let previous = CURRENT.with_borrow_mut(|c| c.replace(self.state.clone()));
        let _restore = Restore(previous);
        f()
    }

    /// Create a router instance, as the gateway does, by calling its `init`.
    pub fn router<T: Router>(&self, config: &[(&str, &str)]) -> Result<T, String> {
        self.run(|| T::init(&Config::from_pairs(config)))
    }

    /// Create a filter instance by calling its `init`.
    pub fn filter<T: Filter>(&self, config: &[(&str, &str)]) -> Result<T, String> {
        self.run(|| T::init(&Config::from_pairs(config)))
    }

    /// Create a scaler instance by calling its `init`.
    pub fn scaler<T: Scaler>(&self, config: &[(&str, &str)]) -> Result<T, String> {
        self.run(|| T::init(&Config::from_pairs(config)))
    }

    /// Call `choose` with every endpoint of `upstream` as candidates.
    ///
    /// # Panics
    /// When the decision breaks the contract (the gateway would apply the
    /// plugin's `on-error` policy instead): a `forward` to an id that is not
    /// a candidate, or an invalid direct response.
    pub fn choose<T: Router>(
        &self,
        router: &T,
        request: &FakeRequest,
        upstream: &FakeUpstream,
    ) -> Decision {
        let candidates = upstream.candidates();
        let decision = self.run(|| {
            router.choose(
                &Request::from_handle(request),
                &Upstream::from_handle(upstream),
                &candidates,
            )
        });
        match &decision {
            Decision::Forward(f) => assert!(
                candidates.iter().any(|c| c.id == f.endpoint),
                "plugin forwarded to endpoint id {} but the candidates are ids 0..{}",
                f.endpoint,
                candidates.len()
            ),
            Decision::Respond(r) => {
                if let Err(e) = r.check() {
                    panic!("plugin answered with an invalid direct response: {e}");
                }
            }
            Decision::Unavailable => {}
        }
        decision
    }

    /// Call `choose` and return the chosen endpoint's address (`None` when
    /// the decision is not a forward).
    pub fn choose_address<T: Router>(
        &self,
        router: &T,
        request: &FakeRequest,
        upstream: &FakeUpstream,
    ) -> Option<String> {
        self.choose(router, request, upstream)
            .endpoint()
            .and_then(|id| upstream.address(id))
    }

    /// Call a filter's `on_request`.
    pub fn on_request<T: Filter>(&self, filter: &T, request: &FakeRequest) -> Action {
        let action = self.run(|| filter.on_request(&Request::from_handle(request)));
        check_action(&action);
        action
    }

    /// Call a filter's `on_response`.
    pub fn on_response<T: Filter>(
        &self,
        filter: &T,
        request: &FakeRequest,
        response: &FakeResponse,
    ) -> Action {
        let action = self.run(|| {
            filter.on_response(
                &Request::from_handle(request),
                &Response::from_handle(response),
            )
        });
        check_action(&action);
        action
    }

    /// Call a scaler's `evaluate`.
    pub fn evaluate<T: Scaler>(&self, scaler: &T, snapshot: &ScaleSnapshot) -> ScaleDecision {
        self.run(|| scaler.evaluate(snapshot))
    }

    /// Move both clocks forward (expiring state entries whose TTL passes).
    pub fn advance(&self, by: Duration) {
        let mut s = self.state.borrow_mut();
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        s.monotonic = s.monotonic.saturating_add(ns);
        s.wall = s.wall.saturating_add(ns);
    }

    /// Move both clocks forward so that `elapsed` has passed since this host
    /// was created: a test writes a timeline of absolute times
    /// (`advance_to(120 s)`, then `advance_to(300 s)`).
    ///
    /// # Panics
    /// When that is earlier than the clock already is: time does not go back.
    pub fn advance_to(&self, elapsed: Duration) {
        let target =
            START_MONOTONIC.saturating_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        let now = self.state.borrow().monotonic;
        assert!(
            target >= now,
            "FakeHost::advance_to({elapsed:?}): the clock is already {:?} past the start",
            Duration::from_nanos(now - START_MONOTONIC)
        );
        self.advance(Duration::from_nanos(target - now));
    }

    /// Set the wall clock (the monotonic clock does not move).
    pub fn set_wall_time(&self, at: SystemTime) {
        let ns = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        self.state.borrow_mut().wall = ns;
    }

    /// Counter `key` as the plugin would see it.
    pub fn counter(&self, key: &str) -> i64 {
        self.state.borrow_mut().counter_get(key)
    }

    /// Set counter `key` (e.g. to start a cursor near wrap-around).
    pub fn set_counter(&self, key: &str, value: i64) {
        self.state.borrow_mut().counter_set(key, value);
    }

    /// The value under `key`, if present and not expired.
    pub fn kv(&self, key: &str) -> Option<Vec<u8>> {
        self.state.borrow_mut().kv_get(key)
    }

    /// How many state entries (counters plus live keys) the plugin holds.
    pub fn state_entries(&self) -> usize {
        let mut s = self.state.borrow_mut();
        let now = s.monotonic;
        s.store.len(now)
    }

    /// Counter `name` the plugin defined (0 if it never counted).
    pub fn metric_counter(&self, name: &str) -> u64 {
        match self.state.borrow().metrics.get(name) {
            Some(FakeMetric::Counter(n)) => *n,
            _ => 0,
        }
    }

    /// Gauge `name` the plugin defined, if it set one.
    pub fn metric_gauge(&self, name: &str) -> Option<f64> {
        match self.state.borrow().metrics.get(name) {
            Some(FakeMetric::Gauge(v)) => Some(*v),
            _ => None,
        }
    }

    /// Every observation of histogram `name`, in order.
    pub fn metric_observations(&self, name: &str) -> Vec<f64> {
        match self.state.borrow().metrics.get(name) {
            Some(FakeMetric::Histogram(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    /// A snapshot of `service` stamped with this host's wall clock: a 60 s
    /// window, `current` replicas, all healthy, nothing else measured. Set
    /// the fields a test is about, then [`FakeHost::evaluate`]; move the
    /// clock with [`FakeHost::advance`] between evaluations, as the gateway's
    /// interval would.
    pub fn snapshot(&self, service: &str, current: u32) -> ScaleSnapshot {
        ScaleSnapshot {
            service: service.to_owned(),
            at_ms: self.state.borrow().wall / 1_000_000,
            window_ms: 60_000,
            current_replicas: current,
            healthy_replicas: current,
            ..ScaleSnapshot::default()
        }
    }

    /// Log lines written so far, oldest first.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state.borrow().logs.clone()
    }

    /// Forget captured log lines.
    pub fn clear_logs(&self) {
        self.state.borrow_mut().logs.clear();
    }
}

fn check_action(action: &Action) {
    if let Action::Respond(r) = action
        && let Err(e) = r.check()
    {
        panic!("plugin answered with an invalid direct response: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Candidate, state};

    struct Cursor;
    impl Router for Cursor {
        fn init(_: &Config) -> Result<Self, String> {
            Ok(Cursor)
        }
        fn choose(&self, _: &Request<'_>, u: &Upstream<'_>, c: &[Candidate]) -> Decision {
            let i = state::next_index(&u.state_key("cur", c), c.len());
            Decision::forward_or_unavailable(c.get(i))
        }
    }

    #[test]
    fn state_key_fetches_the_name_once_per_endpoint_set() {
        let host = FakeHost::new();
        let r: Cursor = host.router(&[]).unwrap();
        let a = FakeUpstream::new("a")
            .with_endpoint("10.0.0.1:80")
            .with_endpoint("10.0.0.2:80");
        let b = FakeUpstream::new("b").with_endpoint("10.0.0.3:80");
        for _ in 0..3 {
            host.choose(&r, &FakeRequest::get("/"), &a);
            host.choose(&r, &FakeRequest::get("/"), &b);
        }
        assert_eq!((a.name_lookups(), b.name_lookups()), (1, 1));
        assert_eq!((host.counter("cur/a"), host.counter("cur/b")), (3, 3));
        // Health does not change the set; membership does.
        let mut a2 = a.clone();
        a2.set_healthy(0, false);
        host.choose(&r, &FakeRequest::get("/"), &a2);
        assert_eq!(a2.name_lookups(), 1);
        a2.remove("10.0.0.2:80");
        host.choose(&r, &FakeRequest::get("/"), &a2);
        assert_eq!(a2.name_lookups(), 2);
    }

    #[test]
    fn fake_upstream_numbers_zones_and_finds_tags() {
        let up = FakeUpstream::new("a")
            .with_local_zone("eu-1a")
            .with(FakeEndpoint::new("10.0.0.1:80").zone("eu-1b").tag("canary"))
            .with(FakeEndpoint::new("10.0.0.2:80").zone("eu-1a"))
            .with_endpoint("10.0.0.3:80");
        let c = up.candidates();
        assert_eq!(c.iter().map(|c| c.zone).collect::<Vec<_>>(), [2, 1, 0]);
        assert_eq!(c[0].key, crate::hash::fnv1a64(b"10.0.0.1:80"));
        let view = Upstream::from_handle(&up);
        assert_eq!(view.local_zone(), 1);
        assert_eq!(view.zone_name(2).as_deref(), Some("eu-1b"));
        assert_eq!(view.zone_name(0), None);
        assert_eq!(view.tagged("canary"), [0]);
        assert_eq!(view.tags(0), ["canary"]);
        assert_eq!(view.address(2).as_deref(), Some("10.0.0.3:80"));
        assert_eq!(view.address(3), None);
    }

    #[test]
    fn fake_request_reads_like_the_host() {
        let req = FakeRequest::get("/p?q=1")
            .with_header("X-Test", "a")
            .with_header("x-test", "b")
            .with_cookie("a", "1")
            .with_cookie("pin", "x");
        let view = Request::from_handle(&req);
        assert_eq!(
            (view.path(), view.query().as_deref()),
            ("/p".to_owned(), Some("q=1"))
        );
        assert_eq!(view.header("x-TEST").as_deref(), Some("a"));
        assert_eq!(view.header_all("x-test"), ["a", "b"]);
        assert_eq!(view.cookie("pin").as_deref(), Some("x"));
        assert_eq!(view.method(), "GET");
        assert_eq!(view.http_version(), crate::HttpVersion::Http11);
    }

    #[test]
    fn contract_breaches_panic_with_the_reason() {
        struct Bad;
        impl Router for Bad {
            fn init(_: &Config) -> Result<Self, String> {
                Ok(Bad)
            }
            fn choose(&self, _: &Request<'_>, _: &Upstream<'_>, _: &[Candidate]) -> Decision {
                Decision::Forward(crate::Forward::to(9))
            }
        }
        let host = FakeHost::new();
        let r: Bad = host.router(&[]).unwrap();
        let up = FakeUpstream::new("a").with_endpoint("10.0.0.1:80");
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            host.choose(&r, &FakeRequest::get("/"), &up)
        }))
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("endpoint id 9"), "{msg}");
    }

    #[test]
    fn state_has_the_hosts_ttl_and_limits() {
        let host = FakeHost::new().with_max_entries(2);
        host.run(|| {
            state::kv_set("k", b"v", Some(Duration::from_secs(1))).unwrap();
            assert_eq!(state::kv_get_str("k").as_deref(), Some("v"));
            assert!(state::counter_compare_and_swap("c", 0, 5));
            assert!(!state::counter_compare_and_swap("c", 0, 6));
            assert_eq!(state::kv_set("x", b"", None), Err(StateError::Full));
            assert_eq!(
                state::kv_set(&"k".repeat(300), b"", None),
                Err(StateError::TooLarge)
            );
            crate::info!("hello {}", 1);
            assert!(crate::clock::monotonic_now() > 0);
        });
        host.advance(Duration::from_millis(1001));
        assert_eq!(host.kv("k"), None);
        assert_eq!(host.state_entries(), 1);
        assert_eq!(host.logs(), vec![(Level::Info, "hello 1".to_owned())]);
        assert_eq!(host.counter("c"), 5);
    }
}
