//! Stored responses on a moka cache bounded by bytes, with an index by path and
//! by tag so purges find every `Vary` variant.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};
use moka::Expiry;
use moka::notification::RemovalCause;

use super::Counters;
use super::policy::CacheControl;
use crate::compress::Encoding;

/// How long a stale entry with a validator is kept for revalidation.
const KEEP_REVALIDATABLE: Duration = Duration::from_secs(600);
/// Bookkeeping bytes charged per entry on top of bodies and fields.
const ENTRY_OVERHEAD: usize = 256;

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
    pub host: String,
    pub path: String,
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

    fn weight(&self, key: &str) -> u32 {
        let fields: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        let variants: usize = self.variants.iter().map(|(_, b)| b.len()).sum();
        let total = ENTRY_OVERHEAD + key.len() + fields + self.body.len() + variants;
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
        fresh_left + swr.max(sie).max(keep)
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

/// Full keys by path (with their host) and by tag.
#[derive(Default)]
struct Index {
    by_path: BTreeMap<String, HashMap<Arc<str>, String>>,
    by_tag: HashMap<String, Vec<Arc<str>>>,
}

impl Index {
    fn add(&mut self, key: &Arc<str>, e: &Entry) {
        self.by_path
            .entry(e.path.clone())
            .or_default()
            .insert(key.clone(), e.host.clone());
        for t in &e.tags {
            let keys = self.by_tag.entry(t.clone()).or_default();
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
    }

    fn remove(&mut self, key: &str, e: &Entry) {
        if let Some(m) = self.by_path.get_mut(&e.path) {
            m.remove(key);
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
    /// Primary key → the field names its responses vary on.
    vary: moka::future::Cache<Arc<str>, Arc<[HeaderName]>>,
    index: Arc<Mutex<Index>>,
}

impl Store {
    pub fn new(max_bytes: u64, counters: Arc<Counters>) -> Self {
        let index = Arc::new(Mutex::new(Index::default()));
        let idx = index.clone();
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
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
            .max_capacity(1 << 20)
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
        let names: Arc<[HeaderName]> = entry.vary.clone().into();
        let full = super::key::full(primary, &super::policy::secondary_key(&names, req));
        self.vary.insert(primary.clone(), names).await;
        let entry = Arc::new(entry);
        self.put(full.clone(), entry.clone()).await;
        (full, entry)
    }

    /// Replaces the entry under `full` (a new encoded variant or a freshened copy).
    pub async fn put(&self, full: Arc<str>, entry: Arc<Entry>) {
        if let Ok(mut i) = self.index.lock() {
            i.add(&full, &entry);
        }
        self.entries.insert(full, entry).await;
        // Size-based eviction runs in moka's housekeeping; run it now so the byte
        // bound holds as soon as the insert returns.
        self.entries.run_pending_tasks().await;
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
                    .get(path)
                    .into_iter()
                    .flatten()
                    .filter(|(_, h)| host_ok(host, h))
                    .map(|(k, _)| k.clone())
                    .collect(),
                Purge::Prefix { host, path } => i
                    .by_path
                    .range(path.clone()..)
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
            self.entries.run_pending_tasks().await;
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

    /// (bytes, entries) after pending housekeeping.
    pub async fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks().await;
        (self.entries.weighted_size(), self.entries.entry_count())
    }

    /// Approximate (bytes, entries) without waiting.
    pub fn usage_now(&self) -> (u64, u64) {
        (self.entries.weighted_size(), self.entries.entry_count())
    }
}
