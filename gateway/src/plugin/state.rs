//! Host-owned plugin state: atomic counters and a small key-value store with
//! TTL, shared by every instance of one plugin. Sizes are bounded so a guest
//! cannot grow the gateway's memory without limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub const MAX_KEY: usize = 256;
pub const MAX_VALUE: usize = 4096;
/// Counters and entries a plugin may hold, each.
pub const MAX_ENTRIES: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    TooLarge,
    Full,
}

#[derive(Default)]
pub struct SharedState {
    counters: RwLock<HashMap<String, Arc<AtomicI64>>>,
    kv: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

impl SharedState {
    /// The counter, created at 0; `None` when the key is too long or the
    /// table is full (reads then see 0 and writes are dropped).
    fn counter(&self, key: &str) -> Option<Arc<AtomicI64>> {
        if let Some(c) = self.counters.read().ok()?.get(key) {
            return Some(c.clone());
        }
        if key.len() > MAX_KEY {
            return None;
        }
        let mut map = self.counters.write().ok()?;
        if map.len() >= MAX_ENTRIES && !map.contains_key(key) {
            return None;
        }
        Some(map.entry(key.to_owned()).or_default().clone())
    }

    pub fn counter_get(&self, key: &str) -> i64 {
        self.counters
            .read()
            .ok()
            .and_then(|m| m.get(key).map(|c| c.load(Ordering::Relaxed)))
            .unwrap_or(0)
    }

    pub fn counter_add(&self, key: &str, delta: i64) -> i64 {
        match self.counter(key) {
            Some(c) => c.fetch_add(delta, Ordering::Relaxed).wrapping_add(delta),
            None => delta,
        }
    }

    pub fn counter_set(&self, key: &str, value: i64) {
        if let Some(c) = self.counter(key) {
            c.store(value, Ordering::Relaxed);
        }
    }

    pub fn counter_cas(&self, key: &str, expected: i64, new: i64) -> bool {
        self.counter(key).is_some_and(|c| {
            c.compare_exchange(expected, new, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    }

    pub fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let map = self.kv.lock().ok()?;
        map.get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.clone())
    }

    pub fn kv_set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), StateError> {
        if key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return Err(StateError::TooLarge);
        }
        let now = Instant::now();
        let mut map = self.kv.lock().map_err(|_| StateError::Full)?;
        if map.len() >= MAX_ENTRIES && !map.contains_key(key) {
            map.retain(|_, e| e.live(now));
            if map.len() >= MAX_ENTRIES {
                return Err(StateError::Full);
            }
        }
        let expires = ttl.and_then(|t| now.checked_add(t));
        map.insert(key.to_owned(), Entry { value, expires });
        Ok(())
    }

    pub fn kv_delete(&self, key: &str) -> bool {
        let now = Instant::now();
        let Ok(mut map) = self.kv.lock() else {
            return false;
        };
        map.remove(key).is_some_and(|e| e.live(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_shared_and_atomic() {
        let s = SharedState::default();
        assert_eq!(s.counter_get("rr"), 0);
        assert_eq!(s.counter_add("rr", 1), 1);
        assert_eq!(s.counter_add("rr", 1), 2);
        assert!(s.counter_cas("rr", 2, 10));
        assert!(!s.counter_cas("rr", 2, 11));
        s.counter_set("rr", -1);
        assert_eq!(s.counter_get("rr"), -1);
        assert_eq!(s.counter_add("big", i64::MAX), i64::MAX);
        assert_eq!(s.counter_add("big", 1), i64::MIN);
    }

    #[test]
    fn kv_expires_and_bounds_sizes() {
        let s = SharedState::default();
        s.kv_set("a", b"1".to_vec(), None).unwrap();
        s.kv_set("b", b"2".to_vec(), Some(Duration::ZERO)).unwrap();
        assert_eq!(s.kv_get("a").as_deref(), Some(&b"1"[..]));
        assert_eq!(s.kv_get("b"), None);
        assert!(!s.kv_delete("b"));
        assert!(s.kv_delete("a"));
        assert_eq!(
            s.kv_set("k", vec![0; MAX_VALUE + 1], None),
            Err(StateError::TooLarge)
        );
        assert_eq!(
            s.kv_set(&"k".repeat(MAX_KEY + 1), vec![], None),
            Err(StateError::TooLarge)
        );
    }
}
