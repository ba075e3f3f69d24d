//! Why a plugin call produced no answer ([`Fault`]), and the guard every
//! call into guest code runs under, which turns traps, deadlines and host
//! panics into one.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Once;

use wasmtime::{Trap, WasmBacktrace};

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

    /// The fault an error from guest code stands for, with a first line a
    /// person can read: wasmtime's own text starts with the backtrace
    /// header ("error while executing at wasm backtrace:"). Memory faults are
    /// told apart by the memory cap, not here (see [`Instance::run`]).
    pub fn from_wasm(e: &wasmtime::Error) -> Self {
        let fault = Self::cause(e);
        match (fault, e.downcast_ref::<WasmBacktrace>().and_then(summary)) {
            (Self::Trap(kind), Some(trace)) => {
                Self::Trap(format!("{kind}; wasm backtrace: {trace}"))
            }
            (fault, _) => fault,
        }
    }

    fn cause(e: &wasmtime::Error) -> Self {
        if let Some(trap) = e.downcast_ref::<Trap>() {
            return match trap {
                Trap::Interrupt => Self::Deadline,
                Trap::StackOverflow => Self::Trap("stack overflow".into()),
                Trap::UnreachableCodeReached => {
                    Self::Trap("wasm `unreachable` executed (how a Rust guest panics)".into())
                }
                Trap::MemoryOutOfBounds => Self::Trap(
                    "out of bounds memory access (in a Rust guest, often deep recursion \
                     overflowing its shadow stack)"
                        .into(),
                ),
                other => Self::Trap(other.to_string()),
            };
        }
        // A host function failed (a WASI call out of handles, say): its own
        // message is the cause.
        let cause = e.root_cause().to_string();
        Self::Trap(cause.lines().next().unwrap_or("").to_owned())
    }
}

/// Frames a fault line names at most; a deeper trace ends in `…`.
const TRACE_FRAMES: usize = 8;

/// The backtrace on one line, innermost frame first, with function names
/// from the guest's name section (`wasm-function[N]` when it was stripped),
/// demangled, symbol hashes dropped and a run of one function (recursion)
/// folded into `name ×N`. `None` when wasmtime captured no frame.
fn summary(trace: &WasmBacktrace) -> Option<String> {
    let mut runs: Vec<(String, usize)> = Vec::new();
    for frame in trace.frames() {
        let name = match frame.func_name() {
            // `{:#}` leaves the symbol hash out; a name that is not a Rust
            // symbol prints as it is.
            Some(n) => without_hash(&format!("{:#}", rustc_demangle::demangle(n))).to_owned(),
            None => format!("wasm-function[{}]", frame.func_index()),
        };
        match runs.last_mut() {
            Some((last, n)) if *last == name => *n += 1,
            _ => runs.push((name, 1)),
        }
    }
    if runs.is_empty() {
        return None;
    }
    let mut parts: Vec<String> = runs
        .iter()
        .take(TRACE_FRAMES)
        .map(|(name, n)| {
            if *n > 1 {
                format!("{name} ×{n}")
            } else {
                name.clone()
            }
        })
        .collect();
    if runs.len() > TRACE_FRAMES {
        parts.push("…".into());
    }
    Some(parts.join(" ← "))
}

/// `crate::f::h0123456789abcdef` → `crate::f`: the hash only tells builds apart.
fn without_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
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
                    "the guest made a blocking WASI call (stdio, poll); plugins may not \
                     (a Rust panic writes its message to stderr this way unless \
                     edgeward-sdk's `export!` hook sends it to the host log)"
                        .into(),
                ));
            }
            let first = msg.lines().next().unwrap_or("").to_owned();
            Err(Fault::Trap(format!(
                "a host call the guest made panicked: {first}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::without_hash;

    #[test]
    fn symbol_hashes_are_dropped_and_other_names_kept() {
        let mangled = "_ZN16sdk_fault_router17runaway_recursion17h0feb91e738040590E";
        assert_eq!(
            format!("{:#}", rustc_demangle::demangle(mangled)),
            "sdk_fault_router::runaway_recursion"
        );
        assert_eq!(
            without_hash("my_router::walk::h0123456789abcdef"),
            "my_router::walk"
        );
        assert_eq!(without_hash("choose"), "choose");
        assert_eq!(without_hash("a::hello"), "a::hello");
    }
}
