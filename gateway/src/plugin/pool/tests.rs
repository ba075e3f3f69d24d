//! The pool against a world with no Wasm in it: checkout, waits, retries
//! and the warm floor, on cue.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::*;
use crate::plugin::PluginMetrics;
use crate::plugin::limit::LogLimiter;
use wasmtime::Trap;

/// A world with no Wasm in it, whose `init` succeeds or fails on cue, so
/// the pool's bookkeeping is tested on its own and quickly.
struct Fake(Arc<Script>);

#[derive(Default)]
struct Script {
    fail: AtomicBool,
    inits: AtomicU32,
    /// Inits that ran where a blocking WASI call would trap.
    in_runtime: AtomicU32,
}

impl World for Fake {
    type Pre = Arc<Script>;
    fn pre(_: &Linker<HostState>, _: &Component) -> wasmtime::Result<Self::Pre> {
        wasmtime::bail!("the fake world is never linked")
    }
    fn instantiate(pre: &Self::Pre, _: &mut Store<HostState>) -> wasmtime::Result<Self> {
        Ok(Self(pre.clone()))
    }
    fn init(
        &self,
        _: &mut Store<HostState>,
        _: &[(String, String)],
    ) -> wasmtime::Result<Result<(), String>> {
        self.0.inits.fetch_add(1, Ordering::SeqCst);
        if tokio::runtime::Handle::try_current().is_ok() {
            self.0.in_runtime.fetch_add(1, Ordering::SeqCst);
        }
        Ok(if self.0.fail.load(Ordering::SeqCst) {
            Err("scripted failure".into())
        } else {
            Ok(())
        })
    }
}

struct Setup {
    pool: Pool<Fake>,
    script: Arc<Script>,
    metrics: Arc<PluginMetrics>,
}

fn pool(max: u32, warm: u32, checkout_wait: Duration) -> Setup {
    let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
    let metrics = Arc::new(PluginMetrics::new("fake"));
    let shared = Arc::new(PluginShared {
        name: "fake".into(),
        state: Default::default(),
        log: LogLimiter::new(1, 1),
        metrics: metrics.clone(),
        custom: Arc::new(super::super::CustomMetrics::new("fake")),
        route_upstreams: Default::default(),
    });
    let script = Arc::new(Script::default());
    let limits = PoolLimits {
        deadline: Duration::from_secs(1),
        init_deadline: Duration::from_secs(2),
        memory: 1 << 20,
        max_instances: max,
        warm,
        checkout_wait,
    };
    let pool = Pool::start(engine, script.clone(), shared, Vec::new(), limits)
        .expect("the fake world initialises");
    Setup {
        pool,
        script,
        metrics,
    }
}

/// Waits (without any deadline a healthy run could miss) until the
/// refill thread has brought the pool to `(live, idle)`.
fn settle(pool: &Pool<Fake>, want: (u32, usize)) {
    let start = Instant::now();
    while pool.counts() != want {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the pool stayed at {:?}, not {want:?}",
            pool.counts()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn created_here() -> u64 {
    CREATED_HERE.with(Cell::get)
}

#[test]
fn discarded_instances_are_replaced_off_the_calling_thread() {
    let before = created_here();
    let s = pool(2, 2, Duration::from_secs(30));
    assert_eq!(created_here() - before, 2, "the warm instances, at load");
    assert_eq!(s.pool.counts(), (2, 2));
    let at_load = created_here();
    for _ in 0..20 {
        settle(&s.pool, (2, 2));
        let a = s.pool.checkout().expect("a warm instance");
        let b = s.pool.checkout().expect("a warm instance");
        // Dropped, not released: as after a fault.
        drop((a, b));
        let c = s.pool.checkout().expect("a refilled instance");
        c.release();
    }
    settle(&s.pool, (2, 2));
    assert_eq!(created_here(), at_load, "no checkout instantiated here");
    assert_eq!(s.script.inits.load(Ordering::SeqCst), 2 + 20 * 2);
    assert_eq!(s.script.in_runtime.load(Ordering::SeqCst), 20 * 2);
    assert_eq!(s.metrics.instance_counts(), (2, 0));
}

#[test]
fn a_checkout_waits_for_an_instance_rather_than_failing() {
    let s = pool(1, 1, Duration::from_secs(30));
    let held = s.pool.checkout().expect("the warm instance");
    std::thread::scope(|t| {
        let waiter = t.spawn(|| {
            let lease = s.pool.checkout();
            let created = created_here();
            lease.map(Lease::release).map(|()| created)
        });
        // Discarded: the waiter gets the refill thread's replacement.
        drop(held);
        assert_eq!(waiter.join().unwrap(), Ok(0), "served, not created there");
    });
    settle(&s.pool, (1, 1));
}

#[test]
fn the_pool_grows_ahead_of_demand_up_to_its_cap() {
    let s = pool(3, 1, Duration::from_millis(20));
    let a = s.pool.checkout().unwrap();
    settle(&s.pool, (2, 1));
    let b = s.pool.checkout().unwrap();
    settle(&s.pool, (3, 1));
    let c = s.pool.checkout().unwrap();
    assert_eq!(s.pool.counts(), (3, 0), "at the cap, nothing more is made");
    assert_eq!(s.pool.checkout().err(), Some(Fault::Busy));
    for l in [a, b, c] {
        l.release();
    }
    assert_eq!(s.pool.counts(), (3, 3));
}

#[test]
fn a_failing_background_init_is_counted_and_retried_slowly() {
    let s = pool(1, 1, Duration::from_secs(30));
    s.script.fail.store(true, Ordering::SeqCst);
    drop(s.pool.checkout().unwrap());
    let start = Instant::now();
    while s.metrics.instance_counts().1 == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "no failure seen");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Nothing idle, nothing leased, and the refill is backing off: no
    // point waiting out the 30 s.
    let asked = Instant::now();
    assert_eq!(s.pool.checkout().err(), Some(Fault::Busy));
    assert!(asked.elapsed() < Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let failures = s.metrics.instance_counts().1;
    assert!(
        (1..=6).contains(&failures),
        "{failures} attempts in 300 ms: the retry must back off"
    );
    s.script.fail.store(false, Ordering::SeqCst);
    settle(&s.pool, (1, 1));
    assert_eq!(s.metrics.instance_counts().0, 1);
}

fn store(memory: usize) -> Store<HostState> {
    let s = pool(1, 1, Duration::from_secs(1));
    let mut store = Store::new(
        &s.pool.inner.engine,
        HostState::new(s.pool.inner.shared.clone(), memory),
    );
    store.limiter(|h| &mut h.limits);
    store
}

#[test]
fn a_refused_grow_is_the_cause_whatever_ended_the_call() {
    let mut store = store(1 << 20);
    let r: Result<(), Fault> = run(&mut store, |s| {
        let grow = wasmtime::ResourceLimiter::memory_growing(
            &mut s.data_mut().limits,
            1 << 20,
            2 << 20,
            None,
        );
        assert!(grow.is_err(), "over the cap");
        // The guest's reaction (here: running out of time) is not the cause.
        Err(Trap::Interrupt.into())
    });
    assert_eq!(r, Err(Fault::Memory));
    let r: Result<(), Fault> = run(&mut store, |_| Err(Trap::Interrupt.into()));
    assert_eq!(r, Err(Fault::Deadline), "the next call starts afresh");
}

#[test]
fn faults_read_as_their_cause() {
    // As wasmtime reports a trap: the code, under a backtrace.
    let trap = |t: Trap| {
        wasmtime::Error::from(t).context("error while executing at wasm backtrace:\n 0: f")
    };
    assert_eq!(
        Fault::from_wasm(&trap(Trap::StackOverflow)),
        Fault::Trap("stack overflow".into())
    );
    assert_eq!(Fault::from_wasm(&trap(Trap::Interrupt)), Fault::Deadline);
    let Fault::Trap(oob) = Fault::from_wasm(&trap(Trap::MemoryOutOfBounds)) else {
        panic!("a trap")
    };
    assert!(oob.starts_with("out of bounds memory access"), "{oob}");
    let host = wasmtime::Error::msg("resource table has no free keys")
        .context("error while executing at wasm backtrace:\n 0: f");
    assert_eq!(
        Fault::from_wasm(&host),
        Fault::Trap("resource table has no free keys".into())
    );
}

#[test]
fn warm_size_is_bounded_by_the_cap() {
    assert_eq!(warm_size(1), 1);
    assert_eq!(warm_size(2), 2);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    assert_eq!(warm_size(1024), cpus.max(2));
    assert_eq!(checkout_wait(Duration::from_secs(5)), MAX_CHECKOUT_WAIT);
    assert_eq!(
        checkout_wait(Duration::from_millis(2)),
        Duration::from_millis(2)
    );
}
