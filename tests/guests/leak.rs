//! Shared by the guests that exhaust their host-side handle table: each
//! `leak_handles(n)` makes the host hold `n` more entries for this instance
//! that it never gives back, so a later host `push` into the same table fails.

wit_bindgen::generate!({ path: "../wit/leak.wit", world: "leak", generate_all });

use wasi::cli::stdout::get_stdout;

/// Handles still free when `init` starts: the host allows one instance 1024
/// (`MAX_HANDLES` in the gateway's `plugin/host.rs`) and holds none yet.
#[allow(dead_code)]
pub const FREE_AT_INIT: u32 = 1024;

pub fn leak_handles(n: u32) {
    for _ in 0..n {
        std::mem::forget(get_stdout());
    }
}
