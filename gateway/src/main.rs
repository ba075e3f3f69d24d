//! The `edgeward` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edgeward::{config, demo, server};

mod cli;

/// mimalloc, not glibc's malloc: per-thread heaps that need no lock (with
/// one glibc arena the workers fought over its lock: 1.25 futex calls a
/// request, ~25 % of the proxy's CPU), and freed pages go back to the system
/// whichever thread frees them (with an arena per thread, memory a cache
/// purge freed on one worker stayed out of reach of fills on another, and
/// RSS grew past the cache's bound). Built with `no_thp`: asking for
/// transparent huge pages on its arenas doubled the proxy's PSS (66 MiB
/// against 32 MiB after the same load). Measured in `notes/perf-profile.md`
/// and `tests/tests/cache_memory.rs`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Shown under every `--help`: what the process reacts to and reads
/// besides its arguments. Kept to what the code does (`server.rs`,
/// `server/handover.rs`, `plugin/engine.rs`, `server/upgrade.rs`, `cli/sdk.rs`).
const AFTER_HELP: &str = "\
Signals (edgeward run):
  SIGHUP           reload the configuration file; if it does not validate, the running one keeps serving
  SIGUSR2          binary upgrade: start the binary at the same path with `--upgrade`, hand the sockets over, drain
  SIGTERM, SIGINT  stop accepting, finish in-flight requests (up to `shutdown.drain-timeout`, default 30s), exit

Environment:
  RUST_LOG            log filter when --log is not given (default: info)
  EDGEWARD_CACHE_DIR  compiled-plugin cache directory; empty or `off` disables it
                      (default: $XDG_CACHE_HOME/edgeward/wasm, else $HOME/.cache/edgeward/wasm)
  XDG_RUNTIME_DIR     where the upgrade socket lives (default: the temp dir, $TMPDIR)
  EDGEWARD_SDK_ROOT   the checkout holding sdk/, sdk-python/, sdk-js/ for `edgeward plugin`
  EDGEWARD_WORKERS    `auto` or N: serve TCP on one current-thread runtime per core (or N)
                      instead of the main runtime (default: unset, the main runtime)

Configuration reference: docs/configuration.md (every key, its type, default and an example).
Check a file with `edgeward check FILE` before `edgeward run FILE`.";

#[derive(Parser)]
#[command(name = "edgeward", version, about = "Edgeward: a regional edge gateway", long_about = None, after_help = AFTER_HELP)]
struct Cli {
    /// Log filter, e.g. `info`, `edgeward=debug`. Overrides RUST_LOG. The access log (`access-log:`) is apart from it.
    #[arg(long, global = true)]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic with the routes, listeners and upstreams of a config file.
    /// Stops on SIGTERM/SIGINT after in-flight requests finish (up to `shutdown.drain-timeout`).
    /// Reloads the file on SIGHUP and `POST /admin/reload`; a file that does not
    /// validate leaves the running configuration serving. SIGUSR2 starts the
    /// binary at the same path again with `--upgrade` (a binary upgrade).
    #[command(after_help = AFTER_HELP)]
    Run {
        /// The YAML configuration file (or give it with --config).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// The YAML configuration file, as the positional FILE.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Also reload whenever the file's content changes (checked every second).
        #[arg(long)]
        watch: bool,
        /// Take over the listening sockets of the edgeward running on the upgrade
        /// socket: serve once ready, then the old process stops accepting and drains.
        #[arg(long)]
        upgrade: bool,
        /// The Unix socket a new process asks for this one's sockets on.
        /// Default: `edgeward-<hash of the config path>.sock` in `$XDG_RUNTIME_DIR`, else in the temp dir.
        #[arg(long, value_name = "PATH")]
        upgrade_socket: Option<PathBuf>,
    },
    /// Validate a config file: prints every problem as `file:line:column:
    /// field: message` and exits 1, or prints `ok` and exits 0. Warnings
    /// (`warning: file:line:column: …`: an upstream no route uses, a plugin
    /// nothing runs, an endpoint host name that does not resolve) do not fail it.
    #[command(after_help = AFTER_HELP)]
    Check {
        /// The YAML configuration file (or give it with --config).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// The YAML configuration file, as the positional FILE.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run a complete demo node: in-process upstreams (product ×3, order ×2, auth ×1),
    /// a generated certificate, https://127.0.0.1:8443 (h1+h2, and h3 on 8443/udp), http://127.0.0.1:8080
    /// (h1+h2c) and admin on 127.0.0.1:9901.
    Demo {
        /// Print the embedded demo configuration and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Print the JSON Schema of the config file (for editors:
    /// `edgeward schema > edgeward.schema.json`), or with `--markdown` the
    /// configuration reference (docs/configuration.md).
    Schema {
        /// Print the configuration reference as Markdown instead.
        #[arg(long)]
        markdown: bool,
    },
    /// Write, build and check plugins: `plugin new NAME --lang rust|python|js
    /// --world router|filter|scaler`, `plugin build [DIR]`, `plugin check FILE`.
    #[command(subcommand)]
    Plugin(cli::PluginCommand),
}

/// Logs go to stderr through a writer thread, so a slow or blocked stderr
/// (a full pipe, a stalled terminal) never stalls the request path; when its
/// buffer is full, lines are dropped rather than waited for. Keep the guard
/// alive until exit: dropping it flushes what is buffered.
fn init_logs(filter: Option<&str>) -> tracing_appender::non_blocking::WorkerGuard {
    let text = filter
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    let mut filter = tracing_subscriber::EnvFilter::new(&text);
    // What the protocol crates warn about is mostly what a peer did (a flood
    // of PINGs, a slow head): a peer must not be able to write our log, so
    // they log errors only unless the filter names them.
    for krate in [
        "h2",
        "hyper",
        "hyper_util",
        "h3",
        "quinn",
        "quinn_proto",
        "rustls",
    ] {
        if !text.contains(krate)
            && let Ok(d) = format!("{krate}=error").parse()
        {
            filter = filter.add_directive(d);
        }
    }
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    guard
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plugin(cmd) => cli::run(cmd),
        Command::Schema { markdown } => cli::schema::run(markdown),
        Command::Check { file, config } => match config_path(file, config) {
            Ok(path) => cli::config_check::run(&path),
            Err(code) => code,
        },
        Command::Demo { print_config: true } => {
            print!("{}", demo::CONFIG);
            ExitCode::SUCCESS
        }
        Command::Run {
            file,
            config,
            watch,
            upgrade,
            upgrade_socket,
        } => {
            let config = match config_path(file, config) {
                Ok(path) => path,
                Err(code) => return code,
            };
            let _logs = init_logs(cli.log.as_deref());
            let control =
                upgrade_socket.unwrap_or_else(|| server::upgrade::default_socket(&config));
            let cfg = match config::load_file(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let source = server::Source {
                path: Some(config),
                watch,
                relaunch: relaunch_command(),
            };
            let startup = Startup {
                control: Some(control),
                upgrade,
                demo: false,
            };
            serve(cfg, source, startup)
        }
        Command::Demo {
            print_config: false,
        } => {
            let _logs = init_logs(cli.log.as_deref());
            let source = server::Source {
                path: None,
                watch: false,
                relaunch: None,
            };
            match demo::config() {
                Ok(cfg) => serve(
                    cfg,
                    source,
                    Startup {
                        demo: true,
                        ..Startup::default()
                    },
                ),
                Err(e) => {
                    eprintln!("the embedded demo config is invalid (a bug): {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The configuration file, given as FILE or `--config FILE` (both only if
/// they agree); a usage error (exit 2, as clap's own) otherwise.
fn config_path(file: Option<PathBuf>, flag: Option<PathBuf>) -> Result<PathBuf, ExitCode> {
    match (file, flag) {
        (Some(f), Some(c)) if f != c => {
            eprintln!(
                "error: two configuration files given: {} and --config {}; give one",
                f.display(),
                c.display()
            );
            Err(ExitCode::from(2))
        }
        (Some(f), _) | (None, Some(f)) => Ok(f),
        (None, None) => {
            eprintln!(
                "error: which configuration file? Give it as FILE (e.g. `edgeward check edgeward.yaml`) or with --config FILE"
            );
            Err(ExitCode::from(2))
        }
    }
}

/// How `serve` comes up: `run` listens for upgrades (and may take over
/// with `--upgrade`); the demo does neither and starts its upstreams.
#[derive(Default)]
struct Startup {
    control: Option<PathBuf>,
    upgrade: bool,
    demo: bool,
}

/// What SIGUSR2 starts: this binary's path as it was exec'd (a new binary
/// installed there since is what runs) with our arguments and `--upgrade`.
fn relaunch_command() -> Option<Vec<std::ffi::OsString>> {
    let exe = std::env::current_exe().ok()?;
    let mut argv: Vec<_> = std::iter::once(exe.into_os_string())
        .chain(std::env::args_os().skip(1))
        .collect();
    if !argv.iter().any(|a| a == "--upgrade") {
        argv.push("--upgrade".into());
    }
    Some(argv)
}

fn serve(cfg: config::Config, source: server::Source, startup: Startup) -> ExitCode {
    let with_demo = startup.demo;
    let workers = match edgeward::workers::configured() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = edgeward::workers::start(workers) {
        eprintln!("cannot start the worker threads: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let stop = match server::shutdown_signal() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot install the SIGTERM/SIGINT handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let _demo = if with_demo {
            match demo::start_upstreams().await {
                Ok(d) => Some(d),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            None
        };
        let takeover = match (&startup.control, startup.upgrade) {
            (Some(path), true) => match server::upgrade::take_over(path).await {
                Ok(t) => Some(t),
                Err(e) => {
                    eprintln!("--upgrade: no running edgeward handed over its sockets: {e}");
                    return ExitCode::FAILURE;
                }
            },
            _ => None,
        };
        let startup = server::Startup {
            control: startup.control,
            takeover,
        };
        let mut running = match server::start_with(cfg, startup).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        running.complete_takeover().await;
        running.announce();
        if with_demo {
            println!("\nEdgeward demo is up. Try:");
            println!("  curl -sk --http2 https://127.0.0.1:8443/api/products/1   (cached: repeat with -D- for X-Cache: HIT)");
            println!("  curl -s http://127.0.0.1:8080/api/products                (not cached: instances rotate)");
            println!("  curl -s --http2-prior-knowledge http://127.0.0.1:8080/api/orders/7");
            println!("  python3 tests/h3/aioquic_get.py 127.0.0.1 8443 /api/products/1   (HTTP/3, 8443/udp)");
            println!("Admin: curl -s http://127.0.0.1:9901/metrics   (Ctrl-C stops)");
        }
        match running.serve_until(&source, stop).await {
            server::Ended::Stopped => tracing::info!("shutdown requested; draining"),
            server::Ended::HandedOver { pid } => {
                tracing::info!(pid, "handed over to process {pid}; draining")
            }
        }
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}
