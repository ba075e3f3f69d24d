//! The threads that serve TCP connections: one current-thread runtime per
//! core. Each accepts on its own descriptor of every listening socket
//! ([`crate::listener`]), so a connection, its requests, the upstream
//! connections they use ([`index`] picks the worker's own pool) and their
//! timers stay on one thread: no task is woken across threads on the request
//! path, which on a small box is most of what a proxy's CPU goes to.
//!
//! Everything else (admin, reloads, discovery, health checks, HTTP/3) runs on
//! the main runtime; a request reaching a pool from there uses worker 0's.

use std::cell::Cell;
use std::sync::OnceLock;

use tokio::runtime::Handle;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

static WORKERS: OnceLock<Vec<Handle>> = OnceLock::new();

/// How many workers `start` runs: `EDGEWARD_WORKERS` (`auto`: one per core),
/// else none, and connections are served on the main runtime.
///
/// Opt-in for now, until the suite runs with them by default.
pub fn configured() -> Result<usize, String> {
    match std::env::var("EDGEWARD_WORKERS") {
        Ok(v) if v.trim() == "auto" => {
            Ok(std::thread::available_parallelism().map_or(1, |n| n.get()))
        }
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n <= 1024 => Ok(n),
            _ => Err(format!(
                "EDGEWARD_WORKERS={v:?}: expected `auto` or a number of worker threads from 0 to 1024"
            )),
        },
        Err(_) => Ok(0),
    }
}

/// Starts `n` worker threads, each running a current-thread runtime until
/// the process exits. Once per process; later calls change nothing.
pub fn start(n: usize) -> std::io::Result<()> {
    if n == 0 || WORKERS.get().is_some() {
        return Ok(());
    }
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        handles.push(runtime.handle().clone());
        std::thread::Builder::new()
            .name(format!("edgeward-w{i}"))
            .spawn(move || {
                INDEX.with(|c| c.set(i));
                // Tasks spawned on the handle run while this blocks.
                runtime.block_on(std::future::pending::<()>());
            })?;
    }
    let _ = WORKERS.set(handles);
    Ok(())
}

/// The running workers; empty when none were started (in-process tests,
/// benchmarks), where listeners accept on the runtime that serves them.
pub fn handles() -> &'static [Handle] {
    WORKERS.get().map_or(&[], Vec::as_slice)
}

/// How many per-worker copies of a thing (an upstream's pool) to keep.
pub fn count() -> usize {
    handles().len().max(1)
}

/// This thread's worker; 0 off the workers.
pub fn index() -> usize {
    INDEX.with(Cell::get)
}
