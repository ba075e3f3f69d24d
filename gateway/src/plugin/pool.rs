//! A warm pool of instances of one plugin. An instance serves one call at a
//! time; it goes back to the pool after a clean call and is discarded after a
//! fault, so a trapped or half-run guest never serves again.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

use super::engine::deadline_ticks;
use super::host::{HostState, PluginShared};

/// Time a new instance's `init` may take: it runs once per instance, off the
/// hot path, and interpreters (componentize-py) need far more than a call.
const INIT_DEADLINE: Duration = Duration::from_secs(2);

/// Why a call did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("ran past its deadline")]
    Deadline,
    #[error("exceeded its memory limit")]
    Memory,
    #[error("trapped: {0}")]
    Trap(String),
    #[error("every instance is busy")]
    Busy,
    #[error("returned an invalid answer: {0}")]
    Invalid(String),
    #[error("init failed: {0}")]
    Init(String),
}

impl Fault {
    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::Memory => "memory",
            Self::Trap(_) => "trap",
            Self::Busy => "busy",
            Self::Invalid(_) => "invalid",
            Self::Init(_) => "init",
        }
    }

    pub fn from_wasm(e: &wasmtime::Error) -> Self {
        if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
            return Self::Deadline;
        }
        let msg = format!("{e:#}");
        if msg.contains("growing memory") || msg.contains("memory growth") {
            return Self::Memory;
        }
        let first = msg.lines().next().unwrap_or("").to_owned();
        Self::Trap(first)
    }
}

thread_local! {
    /// Set while this thread runs guest code, so the panic hook stays quiet
    /// for panics that [`guarded`] turns into faults.
    static IN_PLUGIN: Cell<bool> = const { Cell::new(false) };
}

/// Runs guest code. A host function that panics inside it (wasmtime-wasi's
/// blocking calls panic on a Tokio worker thread, and a hostile guest can make
/// them) unwinds to here and becomes a trap: the instance is discarded like
/// any other faulting one.
pub fn guarded<R>(f: impl FnOnce() -> wasmtime::Result<R>) -> Result<R, Fault> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_PLUGIN.with(Cell::get) {
                previous(info);
            }
        }));
    });
    IN_PLUGIN.with(|c| c.set(true));
    let r = std::panic::catch_unwind(AssertUnwindSafe(f));
    IN_PLUGIN.with(|c| c.set(false));
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Fault::from_wasm(&e)),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            // wasmtime-wasi's blocking calls (stdio flush, poll) cannot run on a
            // Tokio worker; plugins have no stdio or I/O to wait on anyway.
            if msg.contains("runtime") {
                return Err(Fault::Trap(
                    "the guest made a blocking WASI call (stdio, poll); plugins may not".into(),
                ));
            }
            let first = msg.lines().next().unwrap_or("").to_owned();
            Err(Fault::Trap(format!(
                "a host call the guest made panicked: {first}"
            )))
        }
    }
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

/// Sizes and limits of one plugin's pool.
#[derive(Debug, Clone)]
pub struct PoolLimits {
    pub deadline: Duration,
    pub memory: usize,
    pub max_instances: u32,
}

pub struct Pool<W: World> {
    engine: Engine,
    pre: W::Pre,
    shared: Arc<PluginShared>,
    config: Vec<(String, String)>,
    limits: PoolLimits,
    ticks: u64,
    idle: Mutex<Vec<Instance<W>>>,
    live: AtomicU32,
}

impl<W: World> Pool<W> {
    pub fn new(
        engine: Engine,
        pre: W::Pre,
        shared: Arc<PluginShared>,
        config: Vec<(String, String)>,
        limits: PoolLimits,
    ) -> Self {
        Self {
            engine,
            pre,
            shared,
            config,
            ticks: deadline_ticks(limits.deadline),
            limits,
            idle: Mutex::new(Vec::new()),
            live: AtomicU32::new(0),
        }
    }

    /// Creates and initialises one instance and keeps it warm; at load this is
    /// where a failing `init` becomes a startup error.
    pub fn warm_up(&self) -> Result<(), Fault> {
        let lease = self.checkout()?;
        lease.release();
        Ok(())
    }

    fn fresh(&self) -> Result<Instance<W>, Fault> {
        let mut store = Store::new(
            &self.engine,
            HostState::new(self.shared.clone(), self.limits.memory),
        );
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(deadline_ticks(INIT_DEADLINE));
        let guest = guarded(|| W::instantiate(&self.pre, &mut store)).map_err(|f| match f {
            Fault::Trap(msg) => Fault::Init(format!("cannot instantiate: {msg}")),
            other => other,
        })?;
        match guarded(|| guest.init(&mut store, &self.config)) {
            Ok(Ok(())) => Ok(Instance { store, guest }),
            Ok(Err(reason)) => Err(Fault::Init(reason)),
            Err(f) => Err(match f {
                Fault::Trap(msg) => Fault::Init(format!("trapped in init: {msg}")),
                other => other,
            }),
        }
    }

    /// An instance for one call, its deadline armed. Dropping the lease
    /// discards the instance; [`Lease::release`] returns it to the pool.
    pub fn checkout(&self) -> Result<Lease<'_, W>, Fault> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut inst = match idle {
            Some(i) => i,
            None => {
                let n = self.live.fetch_add(1, Ordering::AcqRel);
                if n >= self.limits.max_instances {
                    self.live.fetch_sub(1, Ordering::AcqRel);
                    return Err(Fault::Busy);
                }
                match self.fresh() {
                    Ok(i) => i,
                    Err(e) => {
                        self.live.fetch_sub(1, Ordering::AcqRel);
                        return Err(e);
                    }
                }
            }
        };
        inst.store.set_epoch_deadline(self.ticks);
        Ok(Lease {
            pool: self,
            inst: Some(inst),
        })
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
        if let Some(i) = self.inst.take()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push(i);
            return;
        }
        self.pool.live.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<W: World> Drop for Lease<'_, W> {
    fn drop(&mut self) {
        if self.inst.take().is_some() {
            self.pool.live.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
