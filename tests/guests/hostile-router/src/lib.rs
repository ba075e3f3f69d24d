//! A router that misbehaves as its `mode` setting says:
//! `trap` (panics in choose), `spin` (never returns), `grow` (allocates until
//! the memory cap), `log-flood` (1 000 log lines per call, then a valid
//! choice), `init-fail` (init returns an error), `bad-id` (forwards to an id
//! that is not a candidate), `ok` (first healthy candidate), `leak` (init
//! leaves `handles` host handles allocated, by default all the host still
//! has but one, so it cannot lend this instance a request and an upstream), `hog` (fills
//! memory page by page, slowly, until the cap), `recurse` (unbounded
//! recursion).

wit_bindgen::generate!({ path: "../../../wit", world: "router" });

use std::sync::atomic::{AtomicU8, Ordering};

use edgeward::plugin::log;
use edgeward::plugin::types::Forward;

#[path = "../../leak.rs"]
mod leak;

static MODE: AtomicU8 = AtomicU8::new(0);
const MODES: [&str; 10] = [
    "ok",
    "trap",
    "spin",
    "grow",
    "log-flood",
    "init-fail",
    "bad-id",
    "leak",
    "hog",
    "recurse",
];

struct Hostile;

impl Guest for Hostile {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let mode = config
            .iter()
            .find(|(k, _)| k == "mode")
            .map_or("ok", |(_, v)| v.as_str());
        let Some(i) = MODES.iter().position(|m| *m == mode) else {
            return Err(format!("unknown mode {mode:?}"));
        };
        if mode == "init-fail" {
            return Err("init-fail: this plugin refuses every configuration".into());
        }
        if mode == "leak" {
            let n = match config.iter().find(|(k, _)| k == "handles") {
                Some((_, v)) => v.parse().map_err(|_| format!("handles: {v:?}"))?,
                None => leak::FREE_AT_INIT - 1,
            };
            leak::leak_handles(n);
        }
        MODE.store(i as u8, Ordering::Relaxed);
        Ok(())
    }

    fn choose(_req: &Request, _target: &Upstream, candidates: Vec<Candidate>) -> Decision {
        match MODES[usize::from(MODE.load(Ordering::Relaxed))] {
            "trap" => panic!("hostile router: trap"),
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow" => {
                // 1 MiB steps, as an allocator would, until the host stops it
                // (the memory cap makes a failed grow a trap).
                loop {
                    if core::arch::wasm32::memory_grow::<0>(16) == usize::MAX {
                        panic!("memory.grow failed without a trap");
                    }
                }
            }
            "log-flood" => {
                for i in 0..1_000 {
                    log::log(log::Level::Error, &format!("flood line {i}"));
                }
                first_healthy(&candidates)
            }
            "bad-id" => forward(u32::MAX),
            "hog" => {
                // Touching every page makes the growth slow enough that a
                // short deadline can pass while memory is what runs out.
                let mut kept: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut page = vec![0u8; 64 << 10];
                    for b in page.iter_mut().step_by(4096) {
                        *b = 1;
                    }
                    kept.push(std::hint::black_box(page));
                }
            }
            "recurse" => {
                let depth = recurse(std::hint::black_box(1));
                forward(depth)
            }
            _ => first_healthy(&candidates),
        }
    }
}

/// Deep recursion on the Wasm call stack: scalar frames, so the call stack
/// runs out long before the shadow stack in linear memory does.
fn recurse(n: u32) -> u32 {
    // Unreachable in practice: the stack runs out first.
    if n == u32::MAX {
        return 0;
    }
    recurse(n.wrapping_add(1)).wrapping_mul(3).wrapping_add(n)
}

fn forward(endpoint: u32) -> Decision {
    Decision::Forward(Forward {
        endpoint,
        request_headers: Vec::new(),
        response_headers: Vec::new(),
    })
}

fn first_healthy(candidates: &[Candidate]) -> Decision {
    match candidates.iter().find(|c| c.healthy) {
        Some(c) => forward(c.id),
        None => Decision::Unavailable,
    }
}

export!(Hostile);
