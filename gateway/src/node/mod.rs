//! The long-lived node and its swappable generations.
//!
//! A [`Node`] owns what must survive a reload: the cache store, the metrics
//! registry, upstream clients and endpoint stats ([`upstream::Registry`]),
//! plugin `state` and counters ([`plugin::Carry`]). A [`Generation`] is an
//! immutable snapshot built from one validated config: routes, upstream pools,
//! loaded plugins with their warm instances. The current generation sits behind
//! an atomic pointer; a request takes it once when it starts and finishes on
//! it, however many reloads happen meanwhile. Building the next generation
//! happens off to the side and only a complete one is installed.
//!
//! DNS discovery (`discovery.rs`) installs generations too: the current one
//! with only a discovered upstream's endpoints changed (same number, same
//! plugins). The node keeps each discovered upstream's last good set, so a
//! reload's generation starts from it.
//!
//! Not carried across a reload (each is rebuilt or fixed at start, and why):
//! - plugin instances and their engine: `init` runs again with the new
//!   `config:`, so a plugin's guest globals start fresh (its `state` does not);
//! - the round-robin cursor of the native balancer: a new endpoint list has
//!   a new schedule;
//! - `cache.max-size`, `node.name` and `node.region`: the store and the
//!   metric labels are made once per process; a change needs a restart;
//! - the admin listener's address: bound once at start.

pub mod discovery;
mod generation;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

pub use generation::{Generation, RouteRt};

use crate::cache::Cache;
use crate::config::Config;
use crate::metrics::NodeMetrics;
use crate::plugin::{self, LoadError};
use crate::upstream;

pub struct Node {
    pub metrics: NodeMetrics,
    pub cache: Cache,
    /// The scale loop's decisions (they outlive generations).
    /// ORCA load reports of upstream responses, read by the scale loop.
    pub load_reports: crate::upstream::load_report::Registry,
    upstreams: upstream::Registry,
    plugins: Mutex<plugin::Carry>,
    current: ArcSwap<Generation>,
    /// The last good endpoint set of each discovered upstream, which a
    /// reloaded config (whose file lists none) starts from.
    discovered: Mutex<discovery::Known>,
    /// Held while a discovery change builds and installs its generation, so
    /// it never derives from a generation a reload is replacing.
    swap: Mutex<()>,
}

impl Node {
    /// A node serving `config` as generation 1. A plugin that cannot load or
    /// fails its `init` fails the start.
    pub fn new(mut config: Config) -> Result<Arc<Self>, LoadError> {
        let metrics = NodeMetrics::new(&config.node.name, &config.node.region);
        let cache = Cache::new(config.cache);
        let upstreams = upstream::Registry::default();
        let mut carry = plugin::Carry::default();
        let discovered = discovery::Known::default();
        discovered.fill(&mut config);
        let first = Generation::build(1, config, &upstreams, &mut carry, &metrics)?;
        carry.retain(&first.plugins);
        metrics.set_generation(1);
        let node = Arc::new(Self {
            metrics,
            cache,
            load_reports: Default::default(),
            upstreams,
            plugins: Mutex::new(carry),
            current: ArcSwap::from_pointee(first),
            discovered: Mutex::new(discovered),
            swap: Mutex::new(()),
        });
        node.scraped_from_here();
        Ok(node)
    }

    /// Tells the metrics where the series read at scrape time come from: the
    /// cache, and the endpoints and plugins of whatever generation is current
    /// then. Weak, because the metrics are the node's own.
    fn scraped_from_here(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        self.metrics.set_cache_source(Arc::new(move || {
            weak.upgrade()
                .map(|n| n.cache.metrics_sample())
                .unwrap_or_default()
        }));
        let weak = Arc::downgrade(self);
        self.metrics.set_endpoint_source(Arc::new(move || {
            weak.upgrade()
                .map(|n| n.generation().endpoint_samples())
                .unwrap_or_default()
        }));
        let weak = Arc::downgrade(self);
        self.metrics.set_plugin_source(Arc::new(move || {
            weak.upgrade()
                .map(|n| n.generation().plugins.metrics_samples())
                .unwrap_or_default()
        }));
        let weak = Arc::downgrade(self);
        self.metrics.set_defined_source(Arc::new(move || {
            weak.upgrade()
                .map(|n| n.generation().plugins.defined_samples())
                .unwrap_or_default()
        }));
    }

    /// The generation a request starts on.
    pub fn generation(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Builds the next generation from `config` — plugins loaded and their
    /// `init` run — without installing it. The caller installs it once
    /// everything else it needs (new listeners) is ready too.
    pub fn build(&self, mut config: Config) -> Result<Generation, LoadError> {
        self.discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fill(&mut config);
        let mut carry = self.plugins.lock().unwrap_or_else(|p| p.into_inner());
        // Reloads are serialised by the server, so this number is the next one.
        let number = self.generation().number + 1;
        Generation::build(number, config, &self.upstreams, &mut carry, &self.metrics)
    }

    /// Makes `next` the generation new requests start on; requests already
    /// running finish on the one they took.
    pub fn install(&self, next: Generation) -> Arc<Generation> {
        let _swap = self.swap.lock().unwrap_or_else(|p| p.into_inner());
        self.install_locked(next)
    }

    fn install_locked(&self, next: Generation) -> Arc<Generation> {
        let next = Arc::new(next);
        self.upstreams.retain(&next.config);
        self.plugins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(&next.plugins);
        self.metrics.set_generation(next.number);
        self.current.store(next.clone());
        next
    }
}
