//! The bound sockets, across generations. A listener is known by the address
//! its config names (so `127.0.0.1:0` stays itself across reloads): one whose
//! address stays keeps its socket and its open connections and takes the new
//! settings (certificates included) for new connections; a new one is bound
//! before the new generation is installed; a removed one stops accepting and
//! drains its connections in the background.
//!
//! After a binary upgrade the first `prepare` takes the sockets the old
//! process handed over instead of binding; QUIC ones start reading only when
//! the old process has let go of them ([`Listeners::start_adopted_quic`]).

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::upgrade::{Handed, Inherited, Kind as HandedKind};
use crate::config::Config;
use crate::listener::quic::{self, QuicServer};
use crate::listener::{ConnSettings, TcpServer};
use crate::node::Node;

struct Bound {
    /// As configured.
    addr: SocketAddr,
    name: String,
    scheme: &'static str,
    local: SocketAddr,
    kind: Kind,
    /// The listening socket, to hand to a new process.
    fd: OwnedFd,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

enum Kind {
    Tcp(Arc<ArcSwap<ConnSettings>>),
    Quic(quinn::Endpoint),
}

/// What a reload needs before it may install its generation.
pub struct Prepared {
    tcp_updates: Vec<(usize, ConnSettings)>,
    quic_updates: Vec<(usize, quinn::ServerConfig)>,
    new_tcp: Vec<TcpServer>,
    new_quic: Vec<QuicServer>,
    /// Handed-over UDP sockets: served once the old process stopped reading them.
    adopted_quic: Vec<(crate::config::Listener, std::net::UdpSocket)>,
    /// Indices into `bound` that the new config no longer has.
    removed: Vec<usize>,
}

/// HTTP/3's "no error" (RFC 9114 §8.1), as a QUIC application close code.
const H3_NO_ERROR: quinn::VarInt = quinn::VarInt::from_u32(0x100);

#[derive(Default)]
pub struct Listeners {
    bound: Vec<Bound>,
    /// Removed listeners still finishing their connections.
    draining: Vec<JoinHandle<()>>,
    adopted_quic: Vec<(crate::config::Listener, std::net::UdpSocket)>,
}

impl Listeners {
    fn find(&self, addr: SocketAddr, tcp: bool) -> Option<usize> {
        self.bound
            .iter()
            .position(|b| b.addr == addr && matches!(b.kind, Kind::Tcp(_)) == tcp)
    }

    /// Binds what `config` adds and builds the settings of what it keeps;
    /// changes nothing that serves. Dropping the result unbinds the new sockets.
    /// Sockets `inherited` from an old process are taken before any is bound.
    pub async fn prepare(
        &self,
        config: &Config,
        mut inherited: Option<&mut Inherited>,
    ) -> std::io::Result<Prepared> {
        let mut p = Prepared {
            tcp_updates: Vec::new(),
            quic_updates: Vec::new(),
            new_tcp: Vec::new(),
            new_quic: Vec::new(),
            adopted_quic: Vec::new(),
            removed: Vec::new(),
        };
        let mut kept = Vec::new();
        for l in &config.listeners {
            // UDP binds the port TCP got, so `:0` still yields one shared port.
            let mut quic_addr = l.addr;
            if l.protocols.tcp() {
                match self.find(l.addr, true) {
                    Some(i) => {
                        quic_addr = self.bound[i].local;
                        p.tcp_updates
                            .push((i, ConnSettings::build(l, self.bound[i].local.port())?));
                        kept.push(i);
                    }
                    None => {
                        let handed = inherited.as_mut().and_then(|h| h.take_tcp(&l.name, l.addr));
                        let s = match handed {
                            Some(socket) => TcpServer::adopt(l.clone(), socket)?,
                            None => TcpServer::bind(l.clone()).await?,
                        };
                        quic_addr = s.local_addr()?;
                        p.new_tcp.push(s);
                    }
                }
            }
            if l.protocols.h3 {
                match self.find(l.addr, false) {
                    Some(i) => {
                        let (server, _) = quic::server_config(l)?;
                        p.quic_updates.push((i, server));
                        kept.push(i);
                    }
                    None => match inherited.as_mut().and_then(|h| h.take_udp(&l.name, l.addr)) {
                        Some(socket) => {
                            // Fail now on what would fail later (the certificates).
                            quic::server_config(l)?;
                            p.adopted_quic.push((l.clone(), socket));
                        }
                        None => p.new_quic.push(QuicServer::bind(l.clone(), quic_addr)?),
                    },
                }
            }
        }
        p.removed = (0..self.bound.len())
            .filter(|i| !kept.contains(i))
            .collect();
        Ok(p)
    }

    /// Applies `p`: new settings to kept listeners, new ones start serving,
    /// removed ones stop accepting and drain.
    pub fn commit(&mut self, p: Prepared, node: &Arc<Node>) {
        // At start `Running::announce` prints the listening lines; later ones are logged.
        let initial = self.bound.is_empty() && self.draining.is_empty();
        for (i, settings) in p.tcp_updates {
            if let Kind::Tcp(s) = &self.bound[i].kind {
                s.store(Arc::new(settings));
            }
        }
        for (i, server) in p.quic_updates {
            if let Kind::Quic(e) = &self.bound[i].kind {
                e.set_server_config(Some(server));
            }
        }
        for i in p.removed.into_iter().rev() {
            let b = self.bound.remove(i);
            tracing::info!(listener = %b.name, address = %b.local, "listener removed; draining its connections");
            let _ = b.stop.send(true);
            self.draining.push(b.task);
        }
        self.adopted_quic.extend(p.adopted_quic);
        for s in p.new_tcp {
            let (stop, rx) = watch::channel(false);
            let Ok(local) = s.local_addr() else { continue };
            let Ok(fd) = s.dup_fd() else { continue };
            let scheme = if s.config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let (addr, name, kind) = (
                s.config.addr,
                s.config.name.clone(),
                Kind::Tcp(s.settings()),
            );
            let task = tokio::spawn(s.serve(node.clone(), rx));
            if !initial {
                tracing::info!(listener = %name, "listening {scheme}://{local}");
            }
            self.bound.push(Bound {
                addr,
                name,
                scheme,
                local,
                kind,
                fd,
                stop,
                task,
            });
        }
        for s in p.new_quic {
            self.serve_quic(s, node, initial);
        }
    }

    fn serve_quic(&mut self, s: QuicServer, node: &Arc<Node>, initial: bool) {
        let (stop, rx) = watch::channel(false);
        let Ok(local) = s.local_addr() else { return };
        let Ok(fd) = s.dup_fd() else { return };
        let (addr, name) = (s.config.addr, format!("{}/h3", s.config.name));
        let kind = Kind::Quic(s.endpoint());
        let task = tokio::spawn(s.serve(node.clone(), rx));
        if !initial {
            tracing::info!(listener = %name, "listening h3://{local}");
        }
        self.bound.push(Bound {
            addr,
            name,
            scheme: "h3",
            local,
            kind,
            fd,
            stop,
            task,
        });
    }

    /// Starts HTTP/3 on the UDP sockets an old process handed over, once it
    /// no longer reads them. The old process is draining by then: a failure
    /// here costs that listener its HTTP/3 (logged), not the node.
    pub fn start_adopted_quic(&mut self, node: &Arc<Node>) {
        let initial = self.draining.is_empty();
        for (config, socket) in std::mem::take(&mut self.adopted_quic) {
            let name = config.name.clone();
            match QuicServer::adopt(config, socket) {
                Ok(s) => self.serve_quic(s, node, initial),
                Err(e) => tracing::error!(listener = %name, "HTTP/3 does not start: {e}"),
            }
        }
    }

    /// Every listening socket, described for a new process.
    pub fn handed(&self) -> Vec<(Handed, std::os::fd::BorrowedFd<'_>)> {
        self.bound
            .iter()
            .map(|b| {
                let kind = match b.kind {
                    Kind::Tcp(_) => HandedKind::Tcp,
                    Kind::Quic(_) => HandedKind::Udp,
                };
                let name = match b.kind {
                    // `name/h3` is how it is announced; the config knows `name`.
                    Kind::Quic(_) => b.name.trim_end_matches("/h3").to_owned(),
                    Kind::Tcp(_) => b.name.clone(),
                };
                let handed = Handed {
                    kind,
                    name,
                    addr: Some(b.addr),
                    path: None,
                };
                (handed, b.fd.as_fd())
            })
            .collect()
    }

    /// A new process took over: accept nothing more, and let go of the QUIC
    /// sockets. A QUIC connection cannot follow its socket (its keys live
    /// here), and while this process reads the socket it steals the new
    /// process's datagrams, so its QUIC connections close now (`H3_NO_ERROR`;
    /// their clients reconnect, to the new process) and its endpoints stop
    /// reading, waiting up to `limit` for the close to reach the clients.
    pub async fn hand_over(&mut self, limit: Duration) {
        let mut quic = Vec::new();
        for b in std::mem::take(&mut self.bound) {
            let _ = b.stop.send(true);
            match &b.kind {
                Kind::Quic(e) => {
                    e.set_server_config(None);
                    e.close(H3_NO_ERROR, b"handed over to a new process");
                    // The serve task holds the last handle: when it ends, so does reading.
                    quic.push(b.task);
                }
                Kind::Tcp(_) => self.bound.push(b),
            }
        }
        let _ = tokio::time::timeout(limit, futures_util::future::join_all(quic.iter_mut())).await;
        self.draining
            .extend(quic.into_iter().filter(|t| !t.is_finished()));
    }

    /// `(name, scheme, bound address)` of every listener, in the order bound.
    pub fn announced(&self) -> Vec<(String, &'static str, SocketAddr)> {
        self.bound
            .iter()
            .map(|b| (b.name.clone(), b.scheme, b.local))
            .collect()
    }

    /// Stops every listener and waits up to `drain` for their connections.
    pub async fn shutdown(self, drain: Duration) -> bool {
        let mut tasks = self.draining;
        for b in self.bound {
            let _ = b.stop.send(true);
            tasks.push(b.task);
        }
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        let drained = tokio::time::timeout(drain, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await
        .is_ok();
        if !drained {
            tracing::warn!(
                ?drain,
                "drain timeout reached; closing the remaining connections"
            );
            for a in aborts {
                a.abort();
            }
        }
        drained
    }
}
