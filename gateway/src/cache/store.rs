//! Stored responses on a moka cache bounded by bytes, with an index by path and
//! by tag so purges find every `Vary` variant.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use moka::Expiry;
use moka::notification::RemovalCause;

use super::Counters;
use super::policy::CacheControl;
use crate::compress::Encoding;

/// How long a stale entry with a validator is kept for revalidation.
const KEEP_REVALIDATABLE: Duration = Duration::from_secs(600);
/// Bytes an entry costs besides its key, fields, tags and bodies: the entry
/// itself, moka's bookkeeping for it (its node in the hash table, the access
/// and write deques and the timer wheel) and its rows in the path index.
/// Measured: see `tests/tests/cache_memory.rs`.
const ENTRY_OVERHEAD: usize = 640;
/// What one stored field line costs besides its name and value bytes: its
/// bucket in the `HeaderMap` and its slot in the map's index table.
const FIELD_OVERHEAD: usize = 128;
/// What one row of the `Vary` table costs besides its key and names.
const VARY_OVERHEAD: usize = 384;
/// The share of `max-size` the `Vary` table may take (the rest is for entries).
const VARY_SHARE: u64 = 16;

/// One stored response (one `Vary` variant).
#[derive(Debug, Clone)]
pub struct Entry {
    pub status: StatusCode,
    /// Response fields as the client will see them, minus `Content-Length`.
    pub headers: HeaderMap,
    /// The identity body.
    pub body: Bytes,
    /// Encoded forms made so far; each is made once.
    pub variants: Vec<(Encoding, Bytes)>,
    pub stored_at: Instant,
    pub initial_age: Duration,
    pub lifetime: Duration,
    pub cc: CacheControl,
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
    pub tags: Vec<String>,
    pub vary: Vec<HeaderName>,
    pub host: Arc<str>,
    pub path: Arc<str>,
    /// How long past its freshness the route may still serve it (its
    /// `stale-if-unreachable`), so it is kept that long.
    pub keep_stale: Duration,
}

/// A copy of `h` whose values live in one allocation of their own, sized to
/// fit. Values hyper parsed are slices of its read buffer: keeping them would
/// keep that whole buffer (kilobytes) alive for every stored entry.
pub fn compact(h: &HeaderMap) -> HeaderMap {
    let total: usize = h.iter().map(|(_, v)| v.len()).sum();
    let mut buf = BytesMut::with_capacity(total);
    for (_, v) in h {
        buf.extend_from_slice(v.as_bytes());
    }
    let blob = buf.freeze();
    let mut out = HeaderMap::with_capacity(h.keys_len());
    let mut at = 0;
    for (name, v) in h {
        let bytes = blob.slice(at..at + v.len());
        at += v.len();
        let mut value = HeaderValue::from_maybe_shared(bytes).unwrap_or_else(|_| v.clone());
        value.set_sensitive(v.is_sensitive());
        let name =
            HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or_else(|_| name.clone());
        out.append(name, value);
    }
    out
}

impl Entry {
    pub fn age(&self) -> Duration {
        self.initial_age + self.stored_at.elapsed()
    }

    /// How far past its freshness the entry is; zero while fresh.
    pub fn staleness(&self) -> Duration {
        self.age().saturating_sub(self.lifetime)
    }

    pub fn is_fresh(&self) -> bool {
        self.age() < self.lifetime
    }

    pub fn variant(&self, e: Encoding) -> Option<Bytes> {
        match e {
            Encoding::Identity => Some(self.body.clone()),
            _ => self
                .variants
                .iter()
                .find(|(v, _)| *v == e)
                .map(|(_, b)| b.clone()),
        }
    }

    /// Every byte the stored entry holds: what [`Store`] charges for it.
    /// Exact for the bodies, the key and the strings; measured for the rest.
    pub fn weight(&self, key: &str) -> u32 {
        let fields: usize = self
            .headers
            .iter()
            .map(|(k, v)| FIELD_OVERHEAD + k.as_str().len() + v.len())
            .sum();
        let index_slots = self.headers.capacity().next_power_of_two() * 4;
        let variants: usize = self.variants.iter().map(|(_, b)| b.len() + 48).sum();
        let strings = self.etag.as_ref().map_or(0, |e| e.len())
            + self.tags.iter().map(|t| t.len() + 24 + 48).sum::<usize>()
            + self.vary.len() * 40
            + self.host.len()
            + self.path.len()
            + 2 * 16;
        let total = ENTRY_OVERHEAD
            + key.len()
            + 16
            + fields
            + index_slots
            + self.body.len()
            + variants
            + strings;
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    /// Time the store keeps the entry from now: until stale, plus any window
    /// in which a stale copy is still useful.
    fn retention(&self) -> Duration {
        let fresh_left = self.lifetime.saturating_sub(self.age());
        let swr = Duration::from_secs(self.cc.stale_while_revalidate.unwrap_or(0));
        let sie = Duration::from_secs(self.cc.stale_if_error.unwrap_or(0));
        let keep = if self.etag.is_some() || self.last_modified.is_some() {
            KEEP_REVALIDATABLE
        } else {
            Duration::ZERO
        };
        fresh_left + swr.max(sie).max(keep).max(self.keep_stale)
    }
}

struct Retention;

impl Expiry<Arc<str>, Arc<Entry>> for Retention {
    fn expire_after_create(&self, _: &Arc<str>, v: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(v.retention())
    }

    fn expire_after_update(
        &self,
        _: &Arc<str>,
        v: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.retention())
    }
}

/// A full key and the host its entry is for.
type KeyAndHost = (Arc<str>, Arc<str>);

/// Full keys by path (with their host) and by tag. Its rows share the
/// entries' strings; what they cost is part of [`ENTRY_OVERHEAD`].
#[derive(Default)]
struct Index {
    by_path: BTreeMap<Arc<str>, Vec<KeyAndHost>>,
    by_tag: HashMap<String, Vec<Arc<str>>>,
}

impl Index {
    fn add(&mut self, key: &Arc<str>, e: &Entry) {
        let keys = self.by_path.entry(e.path.clone()).or_default();
        if !keys.iter().any(|(k, _)| k == key) {
            keys.push((key.clone(), e.host.clone()));
        }
        for t in &e.tags {
            let keys = self.by_tag.entry(t.clone()).or_default();
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
    }

    fn remove(&mut self, key: &str, e: &Entry) {
        if let Some(m) = self.by_path.get_mut(&e.path) {
            m.retain(|(k, _)| &**k != key);
            if m.is_empty() {
                self.by_path.remove(&e.path);
            }
        }
        for t in &e.tags {
            if let Some(keys) = self.by_tag.get_mut(t) {
                keys.retain(|k| &**k != key);
                if keys.is_empty() {
                    self.by_tag.remove(t);
                }
            }
        }
    }
}

fn vary_weight(primary: &str, names: &[HeaderName]) -> u32 {
    let names: usize = names.iter().map(|n| n.as_str().len() + 40).sum();
    u32::try_from(VARY_OVERHEAD + primary.len() + 16 + names).unwrap_or(u32::MAX)
}

/// What a purge removes. `host: None` matches every host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    Url { host: Option<String>, path: String },
    Prefix { host: Option<String>, path: String },
    Tag(String),
    All,
}

pub struct Store {
    entries: moka::future::Cache<Arc<str>, Arc<Entry>>,
    /// Primary key → the field names its responses vary on, for the primary
    /// keys whose responses vary at all (no row means "on nothing"). Bounded
    /// by bytes, by a share of `max-size`.
    vary: moka::future::Cache<Arc<str>, Arc<[HeaderName]>>,
    index: Arc<Mutex<Index>>,
}

impl Store {
    pub fn new(max_bytes: u64, counters: Arc<Counters>) -> Self {
        let index = Arc::new(Mutex::new(Index::default()));
        let idx = index.clone();
        let vary_bytes = (max_bytes / VARY_SHARE).max(1);
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes - vary_bytes)
            .weigher(|k: &Arc<str>, v: &Arc<Entry>| v.weight(k))
            .expire_after(Retention)
            .eviction_listener(move |k: Arc<Arc<str>>, v: Arc<Entry>, cause| {
                match cause {
                    // A replacement keeps the key (a refreshed entry or a new variant).
                    RemovalCause::Replaced => return,
                    RemovalCause::Size => _ = counters.evictions.fetch_add(1, Relaxed),
                    RemovalCause::Expired => _ = counters.expired.fetch_add(1, Relaxed),
                    RemovalCause::Explicit => {}
                }
                if let Ok(mut i) = idx.lock() {
                    i.remove(&k, &v);
                }
            })
            .build();
        let vary = moka::future::Cache::builder()
            .max_capacity(vary_bytes)
            .weigher(|k: &Arc<str>, v: &Arc<[HeaderName]>| vary_weight(k, v))
            .time_to_idle(Duration::from_secs(3600))
            .build();
        Self {
            entries,
            vary,
            index,
        }
    }

    /// The full key for a request: primary plus the request's `Vary` values.
    pub async fn full_key(&self, primary: &Arc<str>, req: &HeaderMap) -> Arc<str> {
        let secondary = match self.vary.get(primary).await {
            Some(names) => super::policy::secondary_key(&names, req),
            None => String::new(),
        };
        super::key::full(primary, &secondary)
    }

    pub async fn get(&self, full: &Arc<str>) -> Option<Arc<Entry>> {
        self.entries.get(full).await
    }

    /// Stores `entry` for a request with headers `req`; returns its full key and
    /// the entry (which the store may already have declined to keep: moka's
    /// admission policy can refuse a newcomer in favour of busier entries).
    pub async fn insert(
        &self,
        primary: &Arc<str>,
        req: &HeaderMap,
        entry: Entry,
    ) -> (Arc<str>, Arc<Entry>) {
        let full = super::key::full(primary, &super::policy::secondary_key(&entry.vary, req));
        if entry.vary.is_empty() {
            self.vary.invalidate(primary).await;
        } else {
            let names: Arc<[HeaderName]> = entry.vary.clone().into();
            self.vary.insert(primary.clone(), names).await;
            self.vary.run_pending_tasks().await;
        }
        let entry = self.put(full.clone(), entry).await;
        (full, entry)
    }

    /// Stores `entry` under `full`, replacing what was there (a new encoded
    /// variant or a freshened copy). Its fields are copied out of whatever
    /// buffers they were parsed from first (see [`compact`]).
    pub async fn put(&self, full: Arc<str>, mut entry: Entry) -> Arc<Entry> {
        entry.headers = compact(&entry.headers);
        let entry = Arc::new(entry);
        if let Ok(mut i) = self.index.lock() {
            i.add(&full, &entry);
        }
        self.entries.insert(full, entry.clone()).await;
        // Size-based eviction runs in moka's housekeeping; run it now so the byte
        // bound holds as soon as the insert returns.
        self.entries.run_pending_tasks().await;
        entry
    }

    /// Removes what is stored under `full`, if anything.
    pub async fn remove(&self, full: &Arc<str>) {
        self.entries.invalidate(full).await;
    }

    pub async fn purge(&self, what: &Purge) -> usize {
        let keys: Vec<Arc<str>> = {
            let Ok(i) = self.index.lock() else { return 0 };
            let host_ok = |want: &Option<String>, host: &str| {
                want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(host))
            };
            match what {
                Purge::Url { host, path } => i
                    .by_path
                    .get(path.as_str())
                    .into_iter()
                    .flatten()
                    .filter(|(_, h)| host_ok(host, h))
                    .map(|(k, _)| k.clone())
                    .collect(),
                Purge::Prefix { host, path } => i
                    .by_path
                    .range::<str, _>((Bound::Included(path.as_str()), Bound::Unbounded))
                    .take_while(|(p, _)| p.starts_with(path.as_str()))
                    .flat_map(|(_, m)| m.iter())
                    .filter(|(_, h)| host_ok(host, h))
                    .map(|(k, _)| k.clone())
                    .collect(),
                Purge::Tag(t) => i.by_tag.get(t).cloned().unwrap_or_default(),
                Purge::All => Vec::new(),
            }
        };
        if *what == Purge::All {
            self.entries.run_pending_tasks().await;
            let n = self.entries.entry_count() as usize;
            self.entries.invalidate_all();
            self.vary.invalidate_all();
            if let Ok(mut i) = self.index.lock() {
                *i = Index::default();
            }
            // moka removes invalidated entries in batches, in housekeeping: run
            // it until they are gone, so the memory is freed now, not on later
            // traffic.
            for _ in 0..100_000 {
                self.entries.run_pending_tasks().await;
                self.vary.run_pending_tasks().await;
                if self.entries.entry_count() == 0 && self.vary.entry_count() == 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            return n;
        }
        let mut n = 0;
        for k in keys {
            if self.entries.remove(&k).await.is_some() {
                n += 1;
            }
        }
        n
    }

    /// (bytes, entries) after pending housekeeping; the bytes include the
    /// `Vary` table's.
    pub async fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks().await;
        self.vary.run_pending_tasks().await;
        self.usage_now()
    }

    /// Approximate (bytes, entries) without waiting.
    pub fn usage_now(&self) -> (u64, u64) {
        (
            self.entries.weighted_size() + self.vary.weighted_size(),
            self.entries.entry_count(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_copies_values_out_of_the_buffer_they_were_parsed_from() {
        // Values as hyper makes them: slices of one big read buffer.
        let buffer = Bytes::from(format!("{}max-age=60text/plain", "x".repeat(8192)));
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_maybe_shared(buffer.slice(8192..8202)).unwrap(),
        );
        h.append(
            "x-custom",
            HeaderValue::from_maybe_shared(buffer.slice(8202..)).unwrap(),
        );
        let c = compact(&h);
        assert_eq!(c, h);
        let range = buffer.as_ptr_range();
        for v in c.values() {
            assert!(
                !range.contains(&v.as_bytes().as_ptr()),
                "still in the read buffer"
            );
        }
        // Both values share one allocation of exactly their size.
        let a = c.get("cache-control").unwrap().as_bytes().as_ptr();
        let b = c.get("x-custom").unwrap().as_bytes().as_ptr();
        assert_eq!(a.wrapping_add(10), b);
    }
}
