//! State shared by every instance of the plugin, owned by the host.
//!
//! Instances are pooled, run concurrently and are thrown away after a fault,
//! so anything that must outlive one call (a round-robin cursor, an affinity
//! table, a sustain window) lives here, never in a `static`. Each operation
//! is atomic on its own. Keys are per plugin: include the upstream name
//! ([`Upstream::name`](crate::Upstream::name)) in keys that are per upstream.

use std::fmt;
use std::time::Duration;

/// The largest key the host accepts, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// The largest value the host accepts, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;

/// Why the host refused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// Key or value larger than the host allows.
    TooLarge,
    /// The plugin holds as many entries as the host allows.
    Full,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLarge => "key or value too large for the plugin state store",
            Self::Full => "plugin state store is full",
        })
    }
}

impl std::error::Error for StateError {}

#[cfg(target_arch = "wasm32")]
use crate::wasm::state as host;

/// Counter `key`; 0 if never written.
pub fn counter_get(key: &str) -> i64 {
    #[cfg(target_arch = "wasm32")]
    {
        host::counter_get(key)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.counter_get(key))
    }
}

/// Add `delta` to counter `key` (created at 0); returns the new value,
/// wrapping on overflow. A shared cursor is `counter_add(key, 1) - 1`.
pub fn counter_add(key: &str, delta: i64) -> i64 {
    #[cfg(target_arch = "wasm32")]
    {
        host::counter_add(key, delta)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.counter_add(key, delta))
    }
}

/// Set counter `key`.
pub fn counter_set(key: &str, value: i64) {
    #[cfg(target_arch = "wasm32")]
    {
        host::counter_set(key, value);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.counter_set(key, value));
    }
}

/// Set counter `key` to `new` if it holds `expected` (a missing counter
/// holds 0); returns whether it did.
pub fn counter_compare_and_swap(key: &str, expected: i64, new: i64) -> bool {
    #[cfg(target_arch = "wasm32")]
    {
        host::counter_compare_and_swap(key, expected, new)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.counter_compare_and_swap(key, expected, new))
    }
}

/// A shared round-robin cursor: `0, 1, 2, …` across all instances, reduced
/// modulo `n`. Returns 0 when `n` is 0.
pub fn next_index(key: &str, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let ticket = counter_add(key, 1).wrapping_sub(1);
    // rem_euclid keeps the sequence going after the counter wraps negative.
    ticket.rem_euclid(n as i64) as usize
}

/// The value under `key`; `None` if absent or expired.
pub fn kv_get(key: &str) -> Option<Vec<u8>> {
    #[cfg(target_arch = "wasm32")]
    {
        host::kv_get(key)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.kv_get(key))
    }
}

/// Store `value` under `key`, expiring after `ttl` (or living until evicted).
pub fn kv_set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StateError> {
    let ttl_ms = ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
    #[cfg(target_arch = "wasm32")]
    {
        host::kv_set(key, value, ttl_ms).map_err(|e| match e {
            host::StateError::TooLarge => StateError::TooLarge,
            host::StateError::Full => StateError::Full,
        })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.kv_set(key, value, ttl_ms))
    }
}

/// Remove `key`; returns whether it was present.
pub fn kv_delete(key: &str) -> bool {
    #[cfg(target_arch = "wasm32")]
    {
        host::kv_delete(key)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::with_host(|h| h.kv_delete(key))
    }
}

/// [`kv_get`] as UTF-8 text; `None` if absent, expired or not UTF-8.
pub fn kv_get_str(key: &str) -> Option<String> {
    kv_get(key).and_then(|v| String::from_utf8(v).ok())
}
