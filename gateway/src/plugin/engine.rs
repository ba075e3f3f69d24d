//! The wasmtime engine plugins run on: Cranelift, epoch interruption, an on-disk
//! compile cache, and a pooling allocator sized from what the loaded components
//! actually need.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::ResourcesRequired;
use wasmtime::component::Component;
use wasmtime::{Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy};
use wasmtime::{OptLevel, PoolingAllocationConfig};

/// How often the epoch advances. Deadlines are whole ticks, so a call may run up
/// to one tick past its deadline; finer ticks cost a wake-up each.
pub const EPOCH_TICK: Duration = Duration::from_micros(500);

/// Core instances one component may create. A Rust guest needs a handful
/// (module, WASI adapter, shims); componentize-py needs about 14.
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;

/// Guest stack: a router's call chain is shallow; recursion bombs trap early.
const MAX_WASM_STACK: usize = 512 << 10;

/// Table elements a component's tables may hold (Rust guests need a few hundred).
const TABLE_ELEMENTS: usize = 20_000;

/// Where compiled components are cached: `$EDGEWARD_CACHE_DIR` (empty or `off`
/// disables it), else `$XDG_CACHE_HOME/edgeward/wasm`, else
/// `$HOME/.cache/edgeward/wasm`. `None` when no directory is writable: plugins
/// are then compiled at every start, which is slower but correct.
pub fn cache_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("EDGEWARD_CACHE_DIR") {
        Some(d) if d.is_empty() || d == "off" => return None,
        Some(d) => PathBuf::from(d),
        None => {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            base.join("edgeward").join("wasm")
        }
    };
    match writable(&dir) {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "plugin compile cache disabled: directory is not writable");
            None
        }
    }
}

fn writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// One cache handle per process: each `Cache` starts a worker thread.
fn cache() -> Option<Cache> {
    static CACHE: OnceLock<Option<Cache>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            let dir = cache_dir()?;
            let mut cfg = CacheConfig::new();
            cfg.with_directory(&dir);
            Cache::new(cfg)
                .map_err(|e| tracing::warn!(error = %e, "plugin compile cache disabled"))
                .ok()
        })
        .clone()
}

/// Settings that decide the generated code; both engines share them so a
/// component compiled by one is a cache hit for the other.
fn base_config() -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed)
        .max_wasm_stack(MAX_WASM_STACK)
        .cache(cache());
    c
}

/// An engine with the on-demand allocator, used once at load to compile each
/// component and read its [`ResourcesRequired`] before the pool is sized.
pub fn probe_engine() -> Result<Engine, String> {
    Engine::new(&base_config()).map_err(|e| format!("cannot create the wasm engine: {e:#}"))
}

/// What one plugin asks of the pool.
pub struct Demand {
    pub resources: ResourcesRequired,
    /// Live instances the plugin may have at once.
    pub instances: u32,
    /// Memory cap of one instance, bytes.
    pub memory: usize,
}

/// The serving engine: its pooling allocator has exactly the slots the loaded
/// plugins need (every slot reserves address space, so none are spare).
pub fn pooled_engine(demands: &[Demand]) -> Result<Engine, String> {
    let mut pool = PoolingAllocationConfig::new();
    let instances: u32 = demands.iter().map(|d| d.instances).sum::<u32>().max(1);
    let memories: u32 = demands
        .iter()
        .map(|d| d.instances * d.resources.num_memories)
        .sum::<u32>()
        .max(1);
    let tables: u32 = demands
        .iter()
        .map(|d| d.instances * d.resources.num_tables)
        .sum::<u32>()
        .max(1);
    let per_memories = demands
        .iter()
        .map(|d| d.resources.num_memories)
        .max()
        .unwrap_or(1)
        .max(1);
    let per_tables = demands
        .iter()
        .map(|d| d.resources.num_tables)
        .max()
        .unwrap_or(1)
        .max(1);
    let max_memory = demands.iter().map(|d| d.memory).max().unwrap_or(1 << 20);
    let table_elements = demands
        .iter()
        .filter_map(|d| d.resources.max_initial_table_size)
        .max()
        .map_or(TABLE_ELEMENTS, |t| (t as usize).max(TABLE_ELEMENTS));
    pool.total_component_instances(instances)
        .total_core_instances(instances * CORE_INSTANCES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(memories)
        .max_memories_per_component(per_memories)
        .max_memories_per_module(per_memories)
        .total_tables(tables)
        .max_tables_per_component(per_tables)
        .max_tables_per_module(per_tables)
        .table_elements(table_elements)
        .max_memory_size(max_memory)
        .total_stacks(0);
    let mut c = base_config();
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine =
        Engine::new(&c).map_err(|e| format!("cannot create the pooled wasm engine: {e:#}"))?;
    start_ticker(&engine);
    Ok(engine)
}

/// Compiles (or loads from the disk cache) a component.
pub fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, String> {
    Component::new(engine, bytes).map_err(|e| format!("{e:#}"))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    let started = Arc::new(AtomicBool::new(false));
    let flag = started.clone();
    let spawned = std::thread::Builder::new()
        .name("edgeward-epoch".into())
        .spawn(move || {
            flag.store(true, Ordering::Relaxed);
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        // Without a ticker every deadline is infinite: say so loudly.
        tracing::error!(error = %e, "cannot start the epoch ticker; plugin deadlines will not fire");
    }
}

/// Epoch ticks that cover `deadline` (at least one full tick).
pub fn deadline_ticks(deadline: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos();
    (deadline.as_nanos().div_ceil(tick) as u64).max(1) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_whole_ticks() {
        assert_eq!(deadline_ticks(Duration::from_millis(2)), 5);
        assert_eq!(deadline_ticks(Duration::from_micros(1)), 2);
    }

    #[test]
    fn unwritable_cache_dir_is_refused() {
        assert!(writable(Path::new("/proc/edgeward-cannot-exist")).is_err());
    }
}
