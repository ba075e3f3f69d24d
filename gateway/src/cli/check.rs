//! `edgeward plugin check`: which world a `.wasm` implements, and whether the
//! gateway loads it: compiled, linked, instantiated and `init` run, exactly
//! as `plugins:` would. A router is then timed over a few calls, so an author
//! sees the cost per call and per instance before choosing `deadline`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgeward::config;
use edgeward::plugin::{CallContext, Plugins};
use edgeward::upstream::UpstreamPool;

use super::WorldKind;

const COMPONENT: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
const TIMED_CALLS: u32 = 2_000;

const WRONG_TARGET: &str = "build for wasm32-wasip2: `cargo build --release --target wasm32-wasip2` \
    (wasm32-unknown-unknown and wasm32-wasip1 give core modules), or the Python/JS SDK's build";

/// A config that uses the plugin in its world, with generous limits: this
/// checks loading, not whether the author's `deadline` suffices.
fn yaml(file: &Path, world: WorldKind, pairs: &[(String, String)], instances: u32) -> String {
    let cfg: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}: {}",
                serde_json::Value::from(k.as_str()),
                serde_json::Value::from(v.as_str())
            )
        })
        .collect();
    let mut y = format!(
        "listeners: [{{address: \"127.0.0.1:0\"}}]\nplugins:\n  p:\n    path: {}\n    deadline: 1s\n    memory: 512MiB\n    instances: {instances}\n    config: {{{}}}\n",
        serde_json::Value::from(file.display().to_string()),
        cfg.join(", ")
    );
    y.push_str(match world {
        WorldKind::Router => "upstreams:\n  svc:\n    balancer: p\n    endpoints: [\"10.0.0.1:80\", \"10.0.0.2:80\", \"10.0.0.3:80\"]\nroutes:\n  - upstream: svc\n",
        WorldKind::Filter => "upstreams:\n  svc:\n    endpoints: [\"10.0.0.1:80\"]\nroutes:\n  - upstream: svc\n    filters: [p]\n",
        WorldKind::Scaler => "upstreams:\n  svc:\n    endpoints: [\"10.0.0.1:80\"]\nroutes:\n  - upstream: svc\nscaling:\n  services:\n    svc:\n      max: 5\n      policies: [p]\n",
    });
    y
}

fn load(
    file: &Path,
    world: WorldKind,
    pairs: &[(String, String)],
    instances: u32,
) -> Result<(config::Config, Plugins), String> {
    let cfg = config::load_str(
        &yaml(file, world, pairs, instances),
        Path::new("plugin-check.yaml"),
    )
    .map_err(|e| format!("{e}"))?;
    let plugins = Plugins::load(&cfg).map_err(|e| e.reason)?;
    Ok((cfg, plugins))
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

pub fn run(file: &Path, config: &[String]) -> Result<(), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let shown = file.display();
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(format!("{shown}: not a WebAssembly file; {WRONG_TARGET}"));
    }
    if bytes[..8] != COMPONENT {
        return Err(format!(
            "{shown}: a core WebAssembly module, not a component; {WRONG_TARGET}"
        ));
    }
    let pairs = config
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("--config {kv}: expected KEY=VALUE"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Loading for each world in turn: the gateway's own loader says whether
    // the exports fit, and its on-disk compile cache makes the second and
    // third tries (and the gateway's next start) cheap.
    let mut misfits = Vec::new();
    let mut found = None;
    let started = Instant::now();
    for world in [WorldKind::Router, WorldKind::Filter, WorldKind::Scaler] {
        match load(file, world, &pairs, 1) {
            Ok(loaded) => {
                found = Some((world, loaded));
                break;
            }
            Err(e) if e.contains("not a component of the") => misfits.push(e),
            Err(e) => {
                return Err(format!(
                    "{shown}: implements `{}` but does not load: {e}",
                    world.name()
                ));
            }
        }
    }
    let Some((world, (cfg, plugins))) = found else {
        let http = misfits.iter().any(|e| e.contains("wasi:http"));
        return Err(format!(
            "{shown}: a component, but of none of the edgeward:plugin@0.1.0 worlds \
             (router exports `choose`, filter `on-request`/`on-response`, scaler `evaluate`, all `init`){}\n{}",
            if http {
                "; a componentize-js build needs `fetch-event` disabled (sdk-js/build.mjs does it)"
            } else {
                ""
            },
            misfits.join("\n")
        ));
    };
    println!(
        "{shown}: a `{}` component of edgeward:plugin@0.1.0 ({} KiB)",
        world.name(),
        bytes.len() / 1024
    );
    println!(
        "loads: ok (compiled or cached, instantiated, init ran: {:.1?})",
        started.elapsed()
    );
    if world == WorldKind::Router {
        time_router(&cfg, &plugins);
    }
    drop(plugins);
    // Two loads from the disk cache, with one and two warm instances: the
    // difference in resident memory they add is one instance (after `init`).
    let added = |n: u32| {
        let before = rss_bytes()?;
        let (_, p) = load(file, world, &pairs, n).ok()?;
        let after = rss_bytes()?;
        drop(p);
        Some(after.saturating_sub(before))
    };
    if let (Some(one), Some(two)) = (added(1), added(2)) {
        println!(
            "memory: about {:.1} MiB resident per instance after init",
            two.saturating_sub(one) as f64 / f64::from(1 << 20)
        );
    }
    Ok(())
}

fn time_router(cfg: &config::Config, plugins: &Plugins) {
    let pool = UpstreamPool::with_router(&cfg.upstreams[0], plugins.router("p").cloned(), None);
    let (mut parts, _) = http::Request::get("http://example.test/api/items/1?x=1")
        .header("user-agent", "edgeward-plugin-check")
        .body(())
        .unwrap_or_default()
        .into_parts();
    let ctx = CallContext {
        client: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        scheme: "http",
        route: Arc::from("check"),
    };
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    for _ in 0..TIMED_CALLS {
        let t = Instant::now();
        std::hint::black_box(pool.choose(&mut parts, &ctx, &[]));
        worst = worst.max(t.elapsed());
    }
    let mean = started.elapsed() / TIMED_CALLS;
    println!(
        "calls: {TIMED_CALLS} choose calls, mean {mean:.1?}, slowest {worst:.1?} (set `deadline:` well above the slowest)"
    );
}
