//! Assembles a running node from a validated config: binds every listener,
//! serves, and drains on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin::{self, Readiness};
use crate::config::Config;
use crate::listener::TcpServer;
use crate::listener::quic::QuicServer;
use crate::pipeline::Gateway;

/// A node whose sockets are bound and serving.
pub struct Running {
    /// `(listener name, scheme, bound address)`, in configuration order.
    pub listeners: Vec<(String, &'static str, SocketAddr)>,
    pub admin: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    ready: Arc<Readiness>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    admin_task: Option<tokio::task::JoinHandle<()>>,
}

/// Binds all sockets first, so a port in use fails the start instead of one listener.
pub async fn start(config: Config) -> std::io::Result<Running> {
    let plugins =
        crate::plugin::Plugins::load(&config).map_err(|e| std::io::Error::other(e.to_string()))?;
    let config = Arc::new(config);
    let gateway = Arc::new(Gateway::with_plugins(config.clone(), plugins));
    let _ = gateway.cache.owner.set(Arc::downgrade(&gateway));
    let mut servers = Vec::new();
    let mut quic_servers = Vec::new();
    for l in &config.listeners {
        // UDP binds the port TCP got, so `:0` in tests still yields one shared port.
        let mut quic_addr = l.addr;
        if l.protocols.tcp() {
            let s = TcpServer::bind(l.clone()).await?;
            quic_addr = s.local_addr()?;
            servers.push(s);
        }
        if l.protocols.h3 {
            quic_servers.push(QuicServer::bind(l.clone(), quic_addr)?);
        }
    }
    let admin_socket = match config.admin {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("admin: cannot bind {addr}: {e}"))
        })?),
        None => None,
    };

    let (stop, stop_rx) = watch::channel(false);
    let ready = Arc::new(Readiness::default());
    let mut listeners = Vec::new();
    let mut tasks = JoinSet::new();
    for s in servers {
        let scheme = if s.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        listeners.push((s.config.name.clone(), scheme, s.local_addr()?));
        tasks.spawn(s.serve(gateway.clone(), stop_rx.clone()));
    }
    for s in quic_servers {
        listeners.push((format!("{}/h3", s.config.name), "h3", s.local_addr()?));
        tasks.spawn(s.serve(gateway.clone(), stop_rx.clone()));
    }
    let admin = admin_socket.as_ref().map(|s| s.local_addr()).transpose()?;
    let admin_task = admin_socket.map(|s| {
        tokio::spawn(admin::serve(
            s,
            gateway.clone(),
            ready.clone(),
            stop_rx.clone(),
        ))
    });
    ready.set(true);
    Ok(Running {
        listeners,
        admin,
        gateway,
        ready,
        stop,
        tasks,
        admin_task,
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

    /// Stops accepting, waits up to the drain timeout for in-flight requests.
    /// Returns true when everything finished in time.
    pub async fn shutdown(mut self) -> bool {
        self.ready.set(false);
        let _ = self.stop.send(true);
        let drain = self.gateway.config.drain_timeout;
        let drained = tokio::time::timeout(drain, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !drained {
            tracing::warn!(
                ?drain,
                "drain timeout reached; closing the remaining connections"
            );
            self.tasks.abort_all();
        }
        if let Some(t) = self.admin_task {
            let _ = t.await;
        }
        drained
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
