//! The process around the node: binds every listener, serves, reloads on
//! request (SIGHUP, `POST /admin/reload`, a changed file with `--watch`), and
//! drains on shutdown. Reloads run one at a time, here, and so do binary
//! upgrades (SIGUSR2, `run --upgrade`; see [`upgrade`]).

mod handover;
mod listeners;
pub mod upgrade;
mod watch_file;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::admin::{self, Readiness, ReloadReply};
use crate::config::{self, Config};
use crate::node::Node;
use listeners::Listeners;

/// How often `--watch` looks at the config file.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Plugin(#[from] crate::plugin::LoadError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Why a reload left the old generation serving. The text is what `edgeward
/// check` prints for the same file.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{0}")]
    Plugin(#[from] crate::plugin::LoadError),
    #[error("{0}")]
    Listener(std::io::Error),
    #[error("this node runs the embedded demo, not a config file: there is nothing to reload")]
    NoFile,
}

/// Where the config came from, and whether to reload when it changes.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: Option<PathBuf>,
    pub watch: bool,
    /// The command line SIGUSR2 starts to take over (program first), or
    /// `None` when this process cannot be upgraded that way.
    pub relaunch: Option<Vec<OsString>>,
}

/// How a process comes up besides its config.
#[derive(Default)]
pub struct Startup {
    /// Where this process listens for a new one to take over (`None`: never).
    pub control: Option<PathBuf>,
    /// With `run --upgrade`: the old process's sockets and the line to it.
    pub takeover: Option<(upgrade::Inherited, upgrade::Handoff)>,
}

/// Why [`Running::serve_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// SIGTERM, SIGINT (the `stop` future).
    Stopped,
    /// A new process (this pid) serves now; this one only drains.
    HandedOver { pid: u32 },
}

/// A node whose sockets are bound and serving.
pub struct Running {
    /// `(listener name, scheme, bound address)`, in configuration order, as started.
    pub listeners: Vec<(String, &'static str, SocketAddr)>,
    pub admin: Option<SocketAddr>,
    pub node: Arc<Node>,
    bound: Listeners,
    ready: Arc<Readiness>,
    stop_admin: watch::Sender<bool>,
    admin_task: Option<tokio::task::JoinHandle<()>>,
    scale_task: tokio::task::JoinHandle<()>,
    discovery_task: tokio::task::JoinHandle<()>,
    reloads: mpsc::Receiver<ReloadReply>,
    hangups: Hangups,
    upgrades: Hangups,
    /// The admin listener's configured address and a descriptor of its socket.
    admin_socket: Option<(SocketAddr, OwnedFd)>,
    control: Option<upgrade::Control>,
    /// The line to the old process until this one confirms it serves.
    handoff: Option<upgrade::Handoff>,
    /// Set once a new process may own the control socket's path.
    handed_over: bool,
}

/// Binds all sockets first, so a port in use fails the start instead of one listener.
pub async fn start(config: Config) -> Result<Running, StartError> {
    start_with(config, Startup::default()).await
}

/// As [`start`]; with a takeover, the old process learns why when this fails.
pub async fn start_with(config: Config, startup: Startup) -> Result<Running, StartError> {
    let (inherited, handoff) = startup.takeover.unzip();
    if let Some(h) = &handoff {
        let from = h.from_pid;
        tracing::info!(from, "taking over the sockets of process {from}");
    }
    match start_inner(config, startup.control, inherited).await {
        Ok(mut running) => {
            running.handoff = handoff;
            Ok(running)
        }
        Err(e) => {
            if let Some(h) = handoff {
                h.failed(&e.to_string()).await;
            }
            Err(e)
        }
    }
}

async fn start_inner(
    config: Config,
    control: Option<PathBuf>,
    mut inherited: Option<upgrade::Inherited>,
) -> Result<Running, StartError> {
    let admin_addr = config.admin;
    let node = Node::new(config)?;
    let (stop_admin, stop_rx) = watch::channel(false);
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let discovery_task = tokio::spawn(crate::node::discovery::run(
        node.clone(),
        stop_rx.clone(),
        Some(first_tx),
    ));
    // Discovered upstreams start with their first answer, not with a 503 for
    // one interval; a name server that does not answer delays the start by
    // at most this much (the loop keeps trying).
    let _ = tokio::time::timeout(Duration::from_secs(5), first_rx).await;
    let generation = node.generation();
    let mut bound = Listeners::default();
    let prepared = bound
        .prepare(&generation.config, inherited.as_mut())
        .await?;
    let admin_socket = match admin_addr {
        Some(addr) => Some(match inherited.as_mut().and_then(|h| h.take_admin(addr)) {
            Some(socket) => {
                socket.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(socket)?
            }
            None => tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("admin: cannot bind {addr}: {e}"))
            })?,
        }),
        None => None,
    };
    let control = match control {
        Some(path) => handover::control_socket(&path, inherited.as_mut()).await,
        None => None,
    };
    if let Some(h) = &inherited {
        for unused in h.unused() {
            tracing::info!(socket = ?unused, "the new configuration does not use this handed-over socket; closing it");
        }
    }
    drop(inherited);
    let admin_fd = match (&admin_socket, admin_addr) {
        (Some(s), Some(addr)) => Some((addr, s.as_fd().try_clone_to_owned()?)),
        _ => None,
    };
    bound.commit(prepared, &node);
    let listeners = bound.announced();
    let (reload_tx, reloads) = mpsc::channel(8);
    let ready = Arc::new(Readiness::default());
    let admin = admin_socket.as_ref().map(|s| s.local_addr()).transpose()?;
    let board = Arc::new(crate::scale::Board::default());
    let scale_task = tokio::spawn(crate::scale::run(
        node.clone(),
        board.clone(),
        stop_rx.clone(),
    ));
    let admin_task = admin_socket.map(|s| {
        tokio::spawn(admin::serve(
            s,
            node.clone(),
            board,
            ready.clone(),
            stop_rx,
            reload_tx,
        ))
    });
    // Before anyone is told the node is ready: from here SIGHUP reloads
    // instead of killing the process.
    let hangups = hangup_signal();
    let upgrades = handover::usr2_signal();
    ready.set(true);
    Ok(Running {
        listeners,
        admin,
        node,
        bound,
        ready,
        stop_admin,
        admin_task,
        scale_task,
        discovery_task,
        reloads,
        hangups,
        upgrades,
        admin_socket: admin_fd,
        control,
        handoff: None,
        handed_over: false,
    })
}

impl Running {
    /// The lines a person (or a test) reads to know where the node listens.
    pub fn announce(&self) {
        for (name, scheme, addr) in &self.listeners {
            println!("listening {name} {scheme}://{addr}");
        }
        if let Some(addr) = self.admin {
            println!("listening admin http://{addr}");
        }
        // Tests and supervisors wait for this line: every socket is bound and serving.
        println!("ready");
    }

    /// Serves, reloading on every trigger, until `stop` resolves or a new
    /// process took over.
    pub async fn serve_until(&mut self, source: &Source, stop: impl Future<Output = ()>) -> Ended {
        let mut watched = source
            .path
            .as_ref()
            .filter(|_| source.watch)
            .map(|p| watch_file::Watched::new(p.clone()));
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return Ended::Stopped,
                Some(asking) = handover::next_asking(self.control.as_ref()) => {
                    if let Some(ended) = self.upgrade(asking, &mut stop).await {
                        return ended;
                    }
                }
                Some(()) = recv_hangup(&mut self.upgrades) => {
                    tracing::info!("SIGUSR2: starting a new process to take over");
                    handover::relaunch(source.relaunch.as_deref());
                }
                Some(()) = recv_hangup(&mut self.hangups) => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let _ = self.reload(source).await;
                }
                Some(reply) = self.reloads.recv() => {
                    let result = self.reload(source).await.map_err(|e| e.to_string());
                    let _ = reply.send(result);
                }
                _ = tick.tick(), if watched.is_some() => {
                    if watched.as_mut().is_some_and(watch_file::Watched::changed) {
                        tracing::info!("the configuration file changed: reloading");
                        let _ = self.reload(source).await;
                    }
                }
            }
        }
    }

    /// Loads, validates and fully builds the next generation — plugins with
    /// their `init`, new listeners bound — and only then swaps it in. On any
    /// failure the current generation keeps serving.
    pub async fn reload(&mut self, source: &Source) -> Result<u64, ReloadError> {
        let result = self.try_reload(source).await;
        self.node.metrics.reloaded(result.is_ok());
        match &result {
            Ok(n) => tracing::info!(generation = n, "reloaded"),
            Err(e) => tracing::error!(
                generation = self.node.generation().number,
                "reload failed; the current configuration keeps serving:\n{e}"
            ),
        }
        result
    }

    async fn try_reload(&mut self, source: &Source) -> Result<u64, ReloadError> {
        let path = source.path.as_ref().ok_or(ReloadError::NoFile)?;
        let path = path.clone();
        // Reading and validating touches the disk (certificates too): off the async threads.
        let config = tokio::task::spawn_blocking(move || config::load_file(&path))
            .await
            .map_err(|e| ReloadError::Listener(std::io::Error::other(e)))??;
        let node = self.node.clone();
        let next = tokio::task::spawn_blocking(move || node.build(config))
            .await
            .map_err(|e| ReloadError::Listener(std::io::Error::other(e)))??;
        let prepared = self
            .bound
            .prepare(&next.config, None)
            .await
            .map_err(ReloadError::Listener)?;
        let generation = self.node.install(next);
        self.bound.commit(prepared, &self.node);
        Ok(generation.number)
    }

    /// Stops accepting, waits up to the drain timeout for in-flight requests.
    /// Returns true when everything finished in time.
    pub async fn shutdown(mut self) -> bool {
        self.ready.set(false);
        if let Some(c) = self.control.take() {
            // After a hand-off the path is the new process's.
            if !self.handed_over {
                c.remove();
            }
        }
        let drain = self.node.generation().config.drain_timeout;
        let drained = self.bound.shutdown(drain).await;
        let _ = self.stop_admin.send(true);
        if let Some(t) = self.admin_task {
            let _ = t.await;
        }
        let _ = self.scale_task.await;
        let _ = self.discovery_task.await;
        drained
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

/// SIGHUP, installed for the process's whole life: from here on it reloads
/// instead of killing the process.
fn hangup_signal() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot install the SIGHUP handler; reload with POST /admin/reload");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

async fn recv_hangup(h: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    match h {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
    #[cfg(not(unix))]
    {
        let _ = h;
        std::future::pending().await
    }
}

/// Installs the SIGTERM/SIGINT handlers now and returns a future that resolves
/// on the first of them. Install before announcing `ready`: a signal that arrives
/// before its handler exists kills the process with in-flight requests.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
