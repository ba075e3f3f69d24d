//! The RFC 9111 shared cache: policy as pure functions ([`policy`], [`key`]),
//! storage bounded by bytes ([`store`]), request coalescing (here), and the
//! counters `/metrics` shows. The pipeline's cache stage drives it.

pub mod decode;
pub mod fanout;
pub mod fill;
pub mod key;
pub mod partial;
pub mod policy;
pub mod range;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub use crate::config::cache::{CacheSettings, RouteCache};
pub use key::CacheKey;
pub use store::{Entry, Purge, Store};

#[derive(Debug, Default)]
pub struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stale: AtomicU64,
    pub revalidated: AtomicU64,
    pub bypass: AtomicU64,
    pub stored: AtomicU64,
    pub evictions: AtomicU64,
    pub expired: AtomicU64,
    pub purged: AtomicU64,
    pub coalesced: AtomicU64,
    pub compressed_variants: AtomicU64,
    /// Storable responses not stored because their body came in a content
    /// coding the cache did not ask for and could not decode.
    pub refused_coded: AtomicU64,
}

/// What a flight has to show its waiters: a fill streaming, once it does.
type Shown = Option<Arc<fanout::Streaming>>;
type Flights = Arc<Mutex<HashMap<Arc<str>, watch::Receiver<Shown>>>>;

/// The node's cache: one per process, shared by every cached route of every
/// generation, so stored entries survive a reload.
pub struct Cache {
    pub settings: CacheSettings,
    pub store: Store,
    pub counters: Arc<Counters>,
    /// Bytes held by fills in progress.
    pub fills: Arc<fill::FillBudget>,
    flights: Flights,
}

/// The one request that fetches a key; waiters wake when it drops.
pub struct Flight {
    flights: Flights,
    key: Arc<str>,
    show: watch::Sender<Shown>,
}

impl Flight {
    /// Lets the waiters stream the fill instead of waiting for its end.
    pub fn publish(&self, s: Arc<fanout::Streaming>) {
        self.show.send_replace(Some(s));
    }
}

/// A request waiting for another one's flight.
pub struct Waiter(watch::Receiver<Shown>);

impl Waiter {
    /// Waits for the flight to end.
    pub async fn done(mut self) {
        while self.0.changed().await.is_ok() {}
    }

    /// The fill to stream from, once the flight publishes one; `None` when
    /// it ended without (nothing storable, or an error before the body).
    pub async fn streaming(mut self) -> Shown {
        self.0
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|s| s.clone())
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if let Ok(mut f) = self.flights.lock() {
            f.remove(&self.key);
        }
    }
}

pub enum Join {
    /// Fetch it; hold the flight until the response is stored (or not).
    Lead(Flight),
    /// Another request is fetching it: stream its fill, or wait for it to
    /// end and look again.
    Wait(Waiter),
}

impl Cache {
    pub fn new(settings: CacheSettings) -> Self {
        let counters = Arc::new(Counters::default());
        Self {
            settings,
            store: Store::new(settings.max_size, counters.clone()),
            counters,
            fills: Arc::new(fill::FillBudget::new(settings.fill_budget)),
            flights: Arc::default(),
        }
    }

    /// Joins the fetch of `key` in flight, or starts it.
    pub fn join(&self, key: &Arc<str>) -> Join {
        let Ok(mut f) = self.flights.lock() else {
            // A poisoned map only costs coalescing.
            let (tx, _) = watch::channel(None);
            return Join::Lead(Flight {
                flights: self.flights.clone(),
                key: key.clone(),
                show: tx,
            });
        };
        if let Some(rx) = f.get(key) {
            return Join::Wait(Waiter(rx.clone()));
        }
        let (tx, rx) = watch::channel(None);
        f.insert(key.clone(), rx);
        Join::Lead(Flight {
            flights: self.flights.clone(),
            key: key.clone(),
            show: tx,
        })
    }

    /// Starts a flight only if none is running (background refresh).
    pub fn try_lead(&self, key: &Arc<str>) -> Option<Flight> {
        match self.join(key) {
            Join::Lead(f) => Some(f),
            Join::Wait(_) => None,
        }
    }

    pub fn count(&self, c: impl Fn(&Counters) -> &AtomicU64) {
        c(&self.counters).fetch_add(1, Relaxed);
    }
}

impl Cache {
    /// The counters and usage now, for `NodeMetrics::set_cache_source`
    /// (e.g. `move || cache.metrics_sample()`); read at scrape time.
    pub fn metrics_sample(&self) -> crate::metrics::CacheSample {
        let c = &self.counters;
        let (bytes, entries) = self.store.usage_now();
        crate::metrics::CacheSample {
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            stale: c.stale.load(Relaxed),
            revalidated: c.revalidated.load(Relaxed),
            bypass: c.bypass.load(Relaxed),
            stored: c.stored.load(Relaxed),
            evictions: c.evictions.load(Relaxed),
            expired: c.expired.load(Relaxed),
            purged: c.purged.load(Relaxed),
            coalesced: c.coalesced.load(Relaxed),
            compressed_variants: c.compressed_variants.load(Relaxed),
            refused_coded: c.refused_coded.load(Relaxed),
            bytes,
            max_bytes: self.settings.max_size,
            entries,
        }
    }
}
