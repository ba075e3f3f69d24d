//! A warm pool of instances of one plugin. An instance serves one call at a
//! time; it goes back to the pool after a clean call and is discarded after a
//! fault, so a trapped or half-run guest never serves again.
//!
//! Instances are created off the request path. Creating one runs the guest's
//! `init` (up to the plugin's `init-deadline`, default 2 s), which must not
//! stall a runtime worker, so:
//! - at load, [`Pool::start`] creates the pool's warm size on the loading
//!   thread (a failing `init` is a startup error there);
//! - afterwards one refill thread per pool creates every instance: it brings
//!   the pool back to its warm size after faults discard instances, and adds
//!   one (up to the plugin's `instances`) whenever a checkout takes the last
//!   idle one, so the pool grows ahead of the concurrency it sees;
//! - a checkout that finds nothing idle waits briefly (see [`checkout_wait`])
//!   for a refill or a returned instance, and fails with [`Fault::Busy`] when
//!   the wait runs out, or at once when nothing can come (no instance is
//!   leased or being created, and the refill thread is backing off after
//!   failed `init`s);
//! - a background `init` that fails is counted
//!   (`edgeward_plugin_instance_failures_total`), logged once per burst, and
//!   retried after a growing pause, never in a tight loop.
//!
//! The warm size is [`warm_size`] of the plugin's `instances` (whose default
//! is max(2 × CPUs, 4)): one instance per CPU, at least two, never more than
//! `instances`. Calls run synchronously on the runtime workers (one per CPU),
//! so about that many can be in flight at once; the headroom up to
//! `instances` is grown on demand, and instances are never shrunk away.

#[cfg(test)]
use std::cell::Cell;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

use super::FAULT_LOG_WINDOW;
use super::engine::deadline_ticks;
use super::host::{HostState, PluginShared};
use super::limit::BurstLog;

pub use super::fault::{Fault, guarded};

/// Longest a checkout waits for an instance. A refill takes tens of
/// microseconds for a Rust guest and about a millisecond for an interpreter,
/// so this leaves room for a loaded machine; it is reached only by a plugin
/// that faults faster than it can be refilled or is saturated, whose calls
/// hold workers at least as long.
const MAX_CHECKOUT_WAIT: Duration = Duration::from_millis(50);

/// Pause after the first failed background instantiation; it doubles with
/// each further failure in a row, up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(10);

#[cfg(test)]
thread_local! {
    /// Instances created on this thread, so tests can tell that a checkout
    /// never instantiates on its caller's thread.
    static CREATED_HERE: Cell<u64> = const { Cell::new(0) };
}

/// How one world is instantiated and initialised from its generated bindings.
pub trait World: Sized + Send + 'static {
    type Pre: Clone + Send + Sync + 'static;
    /// Pre-links `component`; fails when it is not a component of this world.
    fn pre(linker: &Linker<HostState>, component: &Component) -> wasmtime::Result<Self::Pre>;
    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self>;
    fn init(
        &self,
        store: &mut Store<HostState>,
        config: &[(String, String)],
    ) -> wasmtime::Result<Result<(), String>>;
}

pub struct Instance<W> {
    pub store: Store<HostState>,
    pub guest: W,
}

impl<W> Instance<W> {
    /// Runs guest code on this instance (under [`guarded`]). A grow the
    /// memory cap refused during the call makes its fault [`Fault::Memory`],
    /// whatever trap or deadline then ended it.
    pub fn run<R>(
        &mut self,
        f: impl FnOnce(&W, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        run(&mut self.store, |store| f(&self.guest, store))
    }
}

fn run<R>(
    store: &mut Store<HostState>,
    f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
) -> Result<R, Fault> {
    store.data_mut().limits.take_refused();
    let r = guarded(|| f(store));
    let refused = store.data_mut().limits.take_refused();
    r.map_err(|fault| if refused { Fault::Memory } else { fault })
}

/// Sizes and limits of one plugin's pool.
#[derive(Debug, Clone)]
pub struct PoolLimits {
    pub deadline: Duration,
    /// Time one instance's instantiation and `init` may take.
    pub init_deadline: Duration,
    pub memory: usize,
    pub max_instances: u32,
    /// Instances kept alive even when idle; see the module docs.
    pub warm: u32,
    /// How long a checkout that finds nothing idle waits.
    pub checkout_wait: Duration,
}

impl PoolLimits {
    pub fn new(
        deadline: Duration,
        init_deadline: Duration,
        memory: usize,
        max_instances: u32,
    ) -> Self {
        Self {
            deadline,
            init_deadline,
            memory,
            max_instances,
            warm: warm_size(max_instances),
            checkout_wait: checkout_wait(deadline),
        }
    }
}

/// The warm size for a plugin allowed `max_instances`: one per CPU, at least
/// two, never more than the plugin's `instances`.
pub fn warm_size(max_instances: u32) -> u32 {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    cpus.max(2).min(max_instances).max(1)
}

/// How long a checkout that finds nothing idle waits: no longer than one call
/// may run, since the wait is spent from the same request's budget.
fn checkout_wait(deadline: Duration) -> Duration {
    deadline.min(MAX_CHECKOUT_WAIT)
}

pub struct Pool<W: World> {
    inner: Arc<Inner<W>>,
}

struct Inner<W: World> {
    engine: Engine,
    pre: W::Pre,
    shared: Arc<PluginShared>,
    config: Vec<(String, String)>,
    limits: PoolLimits,
    ticks: u64,
    state: Mutex<State<W>>,
    /// Checkouts waiting for an instance.
    ready: Condvar,
    /// The refill thread waiting for work.
    work: Condvar,
    refill_log: BurstLog,
}

struct State<W> {
    idle: Vec<Instance<W>>,
    /// Instances that exist: idle, leased, or being created by the refill
    /// thread (counted from the start so the cap holds).
    live: u32,
    creating: bool,
    /// The refill thread does not create before this, after failures.
    retry_at: Option<Instant>,
    failures: u32,
    waiters: u32,
    closed: bool,
}

impl<W> State<W> {
    fn wants_more(&self, l: &PoolLimits) -> bool {
        self.live < l.max_instances && (self.live < l.warm || self.idle.is_empty())
    }

    /// Whether waiting for an instance can succeed: one is leased (it comes
    /// back or is replaced), being created, or about to be.
    fn something_will_come(&self, l: &PoolLimits) -> bool {
        let leased = (self.live as usize)
            .saturating_sub(self.idle.len())
            .saturating_sub(usize::from(self.creating));
        leased > 0 || self.creating || (self.retry_at.is_none() && self.wants_more(l))
    }
}

impl<W: World> Inner<W> {
    fn lock(&self) -> MutexGuard<'_, State<W>> {
        // Nothing panics while holding the lock, so a poisoned state is whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh(&self) -> Result<Instance<W>, Fault> {
        #[cfg(test)]
        CREATED_HERE.with(|c| c.set(c.get() + 1));
        let mut store = Store::new(
            &self.engine,
            HostState::new(self.shared.clone(), self.limits.memory),
        );
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(deadline_ticks(self.limits.init_deadline));
        let guest = run(&mut store, |s| W::instantiate(&self.pre, s)).map_err(|f| match f {
            Fault::Trap(msg) => Fault::Init(format!("cannot instantiate: {msg}")),
            other => other,
        })?;
        match run(&mut store, |s| guest.init(s, &self.config)) {
            Ok(Ok(())) => {
                self.shared.metrics.instance_created();
                Ok(Instance { store, guest })
            }
            Ok(Err(reason)) => Err(Fault::Init(reason)),
            Err(f) => Err(match f {
                Fault::Trap(msg) => Fault::Init(format!("trapped in init: {msg}")),
                other => other,
            }),
        }
    }

    /// The refill thread: creates what [`State::wants_more`] asks for until
    /// the pool is dropped.
    fn refill(&self) {
        let mut st = self.lock();
        loop {
            if st.closed {
                return;
            }
            if let Some(at) = st.retry_at {
                let now = Instant::now();
                if now < at {
                    st = self
                        .work
                        .wait_timeout(st, at - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    continue;
                }
                st.retry_at = None;
            }
            if !st.wants_more(&self.limits) {
                st = self.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.live += 1;
            st.creating = true;
            drop(st);
            let made = self.fresh();
            st = self.lock();
            st.creating = false;
            let failed = match made {
                Ok(inst) => {
                    st.idle.push(inst);
                    st.failures = 0;
                    None
                }
                Err(fault) => {
                    st.live -= 1;
                    st.failures += 1;
                    let pause = RETRY_FIRST
                        .saturating_mul(1u32 << (st.failures - 1).min(16))
                        .min(RETRY_MAX);
                    st.retry_at = Some(Instant::now() + pause);
                    Some((fault, pause))
                }
            };
            if st.waiters > 0 {
                // Wakes them for the new instance, or to give up when a
                // failure means nothing is coming.
                self.ready.notify_all();
            }
            if let Some((fault, pause)) = failed {
                drop(st);
                self.refill_failed(&fault, pause);
                st = self.lock();
            }
        }
    }

    fn refill_failed(&self, fault: &Fault, pause: Duration) {
        self.shared.metrics.instance_failed();
        if let Some(suppressed) = self.refill_log.admit() {
            tracing::warn!(
                plugin = %self.shared.name,
                fault = fault.kind(),
                retry_in_ms = pause.as_millis() as u64,
                suppressed_since_last = suppressed,
                "plugin instance could not be created to refill its pool: {fault}"
            );
        }
    }
}

impl<W: World> Pool<W> {
    /// Creates the pool's warm instances on this thread (where a failing
    /// `init` becomes a load error) and starts its refill thread.
    pub fn start(
        engine: Engine,
        pre: W::Pre,
        shared: Arc<PluginShared>,
        config: Vec<(String, String)>,
        limits: PoolLimits,
    ) -> Result<Self, String> {
        let inner = Arc::new(Inner {
            engine,
            pre,
            shared,
            config,
            ticks: deadline_ticks(limits.deadline),
            limits,
            state: Mutex::new(State {
                idle: Vec::new(),
                live: 0,
                creating: false,
                retry_at: None,
                failures: 0,
                waiters: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            work: Condvar::new(),
            refill_log: BurstLog::new(FAULT_LOG_WINDOW),
        });
        for _ in 0..inner.limits.warm.max(1) {
            let inst = inner.fresh().map_err(|f| match f {
                Fault::Init(reason) => format!("init failed: {reason}"),
                other => format!("init failed: the plugin {other}"),
            })?;
            let mut st = inner.lock();
            st.live += 1;
            st.idle.push(inst);
        }
        let worker = inner.clone();
        std::thread::Builder::new()
            .name("edgeward-plugin-refill".into())
            .spawn(move || {
                // On the request path guests run inside a Tokio runtime, where
                // wasmtime-wasi's blocking calls panic and `guarded` makes them
                // traps; running inside one here too keeps a guest's `init`
                // from parking this thread in a WASI sleep.
                match tokio::runtime::Builder::new_current_thread().build() {
                    Ok(rt) => rt.block_on(async { worker.refill() }),
                    Err(_) => worker.refill(),
                }
            })
            .map_err(|e| format!("cannot start the thread that refills its instance pool: {e}"))?;
        Ok(Self { inner })
    }

    /// An instance for one call, its deadline armed. Dropping the lease
    /// discards the instance; [`Lease::release`] returns it to the pool.
    pub fn checkout(&self) -> Result<Lease<'_, W>, Fault> {
        let inner = &*self.inner;
        let mut st = inner.lock();
        if st.idle.is_empty() {
            if st.wants_more(&inner.limits) {
                inner.work.notify_one();
            }
            if !st.something_will_come(&inner.limits) {
                return Err(Fault::Busy);
            }
            st.waiters += 1;
            st = inner
                .ready
                .wait_timeout_while(st, inner.limits.checkout_wait, |s| {
                    s.idle.is_empty() && s.something_will_come(&inner.limits)
                })
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            st.waiters -= 1;
        }
        let Some(mut inst) = st.idle.pop() else {
            return Err(Fault::Busy);
        };
        if st.idle.is_empty() && st.wants_more(&inner.limits) {
            inner.work.notify_one();
        }
        drop(st);
        inst.store.set_epoch_deadline(inner.ticks);
        Ok(Lease {
            pool: self,
            inst: Some(inst),
        })
    }

    #[cfg(test)]
    fn counts(&self) -> (u32, usize) {
        let st = self.inner.lock();
        (st.live, st.idle.len())
    }
}

impl<W: World> Drop for Pool<W> {
    fn drop(&mut self) {
        // The refill thread holds the rest of the pool; it lets go once it
        // sees this (after finishing an instance it may be creating).
        self.inner.lock().closed = true;
        self.inner.work.notify_all();
    }
}

impl<W: World> Drop for Inner<W> {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        for _ in st.idle.drain(..) {
            self.shared.metrics.instance_discarded();
        }
    }
}

pub struct Lease<'a, W: World> {
    pool: &'a Pool<W>,
    inst: Option<Instance<W>>,
}

impl<W: World> Lease<'_, W> {
    pub fn get(&mut self) -> &mut Instance<W> {
        self.inst
            .as_mut()
            .expect("a lease holds its instance until consumed")
    }

    /// The call went well: keep the instance warm.
    pub fn release(mut self) {
        if let Some(i) = self.inst.take() {
            let inner = &*self.pool.inner;
            let mut st = inner.lock();
            st.idle.push(i);
            if st.waiters > 0 {
                inner.ready.notify_one();
            }
        }
    }
}

impl<W: World> Drop for Lease<'_, W> {
    fn drop(&mut self) {
        let Some(inst) = self.inst.take() else {
            return;
        };
        drop(inst);
        let inner = &*self.pool.inner;
        inner.shared.metrics.instance_discarded();
        let mut st = inner.lock();
        st.live -= 1;
        if st.wants_more(&inner.limits) {
            inner.work.notify_one();
        }
        if st.waiters > 0 {
            inner.ready.notify_all();
        }
    }
}

#[cfg(test)]
mod tests;
