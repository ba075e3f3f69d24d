//! The fake host's state store, with the gateway's semantics and limits.

use std::collections::HashMap;

use crate::state::{MAX_KEY_LEN, MAX_VALUE_LEN, StateError};

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    /// Monotonic nanoseconds after which the entry is gone.
    expires: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Store {
    counters: HashMap<String, i64>,
    kv: HashMap<String, Entry>,
    max_entries: usize,
}

impl Store {
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            counters: HashMap::new(),
            kv: HashMap::new(),
            max_entries,
        }
    }

    pub(crate) fn set_max_entries(&mut self, max: usize) {
        self.max_entries = max;
    }

    fn purge(&mut self, now: u64) {
        self.kv.retain(|_, e| e.expires.is_none_or(|t| t > now));
    }

    pub(crate) fn len(&mut self, now: u64) -> usize {
        self.purge(now);
        self.counters.len() + self.kv.len()
    }

    // Counters never fail in the WIT; an over-long key or a full store makes
    // the write a no-op there, and here it panics so the test finds the bug.
    fn counter_slot(&mut self, key: &str) -> &mut i64 {
        assert!(
            key.len() <= MAX_KEY_LEN,
            "state key of {} bytes exceeds {MAX_KEY_LEN}",
            key.len()
        );
        if !self.counters.contains_key(key) {
            assert!(
                self.counters.len() + self.kv.len() < self.max_entries,
                "plugin state is full ({} entries)",
                self.max_entries
            );
        }
        self.counters.entry(key.to_owned()).or_insert(0)
    }

    pub(crate) fn counter_get(&self, key: &str) -> i64 {
        self.counters.get(key).copied().unwrap_or(0)
    }

    pub(crate) fn counter_add(&mut self, key: &str, delta: i64) -> i64 {
        let slot = self.counter_slot(key);
        *slot = slot.wrapping_add(delta);
        *slot
    }

    pub(crate) fn counter_set(&mut self, key: &str, value: i64) {
        *self.counter_slot(key) = value;
    }

    pub(crate) fn counter_compare_and_swap(&mut self, key: &str, expected: i64, new: i64) -> bool {
        if self.counter_get(key) != expected {
            return false;
        }
        *self.counter_slot(key) = new;
        true
    }

    pub(crate) fn kv_get(&mut self, key: &str, now: u64) -> Option<Vec<u8>> {
        self.purge(now);
        self.kv.get(key).map(|e| e.value.clone())
    }

    pub(crate) fn kv_set(
        &mut self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        now: u64,
    ) -> Result<(), StateError> {
        if key.len() > MAX_KEY_LEN || value.len() > MAX_VALUE_LEN {
            return Err(StateError::TooLarge);
        }
        self.purge(now);
        if !self.kv.contains_key(key) && self.counters.len() + self.kv.len() >= self.max_entries {
            return Err(StateError::Full);
        }
        let expires = ttl_ms.map(|ms| now.saturating_add(ms.saturating_mul(1_000_000)));
        self.kv.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                expires,
            },
        );
        Ok(())
    }

    pub(crate) fn kv_delete(&mut self, key: &str, now: u64) -> bool {
        self.purge(now);
        self.kv.remove(key).is_some()
    }
}
