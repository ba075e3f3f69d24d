//! The running process's part in a binary upgrade: it answers a new process
//! on its control socket, keeps serving until that one is ready, then stops
//! accepting and drains; SIGUSR2 starts the new process itself. And the new
//! process's last step: confirm it serves, then start reading QUIC.

use std::ffi::OsString;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::UnixStream;

use super::upgrade::{self, Control, Handed, Inherited, Kind};
use super::{Ended, Hangups, Running};

/// How long the old process waits for the new one to be ready (config
/// loaded, plugins compiled and initialised, listeners serving).
pub const READY_LIMIT: Duration = Duration::from_secs(60);
/// How long the old process waits for its QUIC endpoints to stop reading
/// before the new one starts: new QUIC handshakes wait (their Initial is
/// retransmitted) rather than land on a process that leaves.
const QUIC_RELEASE_LIMIT: Duration = Duration::from_secs(2);

/// The control socket at `path`: the old process's when it handed it over,
/// else bound here. A failure only costs the ability to be upgraded.
pub async fn control_socket(path: &Path, inherited: Option<&mut Inherited>) -> Option<Control> {
    if let Some(adopted) = inherited.and_then(|h| h.take_control(path)) {
        match adopted {
            Ok(c) => return Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot adopt the handed-over upgrade socket; binding it again");
            }
        }
    }
    match Control::bind(path).await {
        Ok(Some(c)) => Some(c),
        Ok(None) => {
            tracing::warn!(
                path = %path.display(),
                "another edgeward listens on this upgrade socket, so this process cannot be upgraded; \
                 take over from that one with `run --upgrade`, or give each node its own `--upgrade-socket`"
            );
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "this process cannot be upgraded");
            None
        }
    }
}

/// The next process asking to take over; never resolves without a control socket.
pub async fn next_asking(control: Option<&Control>) -> Option<(UnixStream, u32)> {
    let Some(control) = control else {
        return std::future::pending().await;
    };
    match control.accept().await {
        Ok(asking) => Some(asking),
        Err(e) => {
            // Only local processes reach this socket; still, never spin.
            tracing::warn!(error = %e, "upgrade socket: a process was refused");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

/// SIGUSR2, for the process's whole life.
pub fn usr2_signal() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::user_defined2()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot install the SIGUSR2 handler; upgrade with `edgeward run --upgrade`");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

/// Starts `argv` (this binary's path, which now holds the new one, and our
/// own arguments with `--upgrade`); it asks for our sockets like any
/// `run --upgrade`. Its failure to start is logged here, its refusal to
/// serve by the conversation.
pub fn relaunch(argv: Option<&[OsString]>) {
    let Some((program, args)) = argv.and_then(<[OsString]>::split_first) else {
        tracing::error!("this process was not started by `edgeward run`; SIGUSR2 does nothing");
        return;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).stdin(std::process::Stdio::null());
    match cmd.spawn() {
        Ok(mut child) => {
            let pid = child.id().unwrap_or(0);
            tracing::info!(pid, program = %Path::new(program).display(), "started the new process");
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(s) if s.success() => tracing::info!(pid, "the new process exited: {s}"),
                    Ok(s) => tracing::error!(pid, "the new process exited: {s}"),
                    Err(e) => tracing::warn!(pid, error = %e, "cannot wait for the new process"),
                }
            });
        }
        Err(e) => tracing::error!(
            program = %Path::new(program).display(),
            error = %e,
            "SIGUSR2: cannot start the new process; this process keeps serving"
        ),
    }
}

impl Running {
    /// Every socket a new process needs, described.
    fn handed(&self) -> Vec<(Handed, std::os::fd::BorrowedFd<'_>)> {
        use std::os::fd::AsFd;
        let mut sockets = self.bound.handed();
        if let Some((addr, fd)) = &self.admin_socket {
            let admin = Handed {
                kind: Kind::Admin,
                name: String::new(),
                addr: Some(*addr),
                path: None,
            };
            sockets.push((admin, fd.as_fd()));
        }
        if let Some(c) = &self.control {
            let control = Handed {
                kind: Kind::Control,
                name: String::new(),
                addr: None,
                path: Some(c.path().to_path_buf()),
            };
            sockets.push((control, c.fd()));
        }
        sockets
    }

    /// One upgrade conversation. `Some` when this process should stop serving.
    pub(super) async fn upgrade(
        &mut self,
        (stream, pid): (UnixStream, u32),
        stop: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> Option<Ended> {
        let offered = upgrade::offer(stream, pid, &self.handed()).await;
        let mut offered = match offered {
            Ok(Some(o)) => o,
            Ok(None) => {
                tracing::debug!(pid, "upgrade socket: a process probed it");
                return None;
            }
            Err(e) => {
                tracing::error!(pid, "upgrade failed: {e}; this process keeps serving");
                return None;
            }
        };
        tracing::info!(
            pid,
            "process {pid} took this node's sockets; serving until it is ready"
        );
        let ready = tokio::select! {
            r = offered.ready(READY_LIMIT) => r,
            () = stop.as_mut() => {
                // The new process has our control socket and may serve it: its path stays.
                self.handed_over = true;
                return Some(Ended::Stopped);
            }
        };
        if let Err(e) = ready {
            tracing::error!(
                pid,
                "upgrade failed: the new process (pid {pid}) will not serve: {e}\nthis process keeps serving"
            );
            return None;
        }
        // Nothing new from here: the new process accepts on the same sockets.
        self.ready.set(false);
        let _ = self.stop_admin.send(true);
        self.bound.hand_over(QUIC_RELEASE_LIMIT).await;
        self.handed_over = true;
        if let Err(e) = offered.released().await {
            tracing::warn!(pid, error = %e, "could not tell the new process its QUIC sockets are free");
        }
        tracing::info!(pid, "process {pid} serves now; draining");
        Some(Ended::HandedOver { pid })
    }

    /// After `run --upgrade`: tells the old process this one serves, and
    /// starts HTTP/3 on the handed UDP sockets once it let go of them.
    pub async fn complete_takeover(&mut self) {
        if let Some(handoff) = self.handoff.take() {
            let from = handoff.from_pid;
            match handoff.ready().await {
                Ok(()) => tracing::info!(from, "process {from} handed over; it drains"),
                Err(e) => tracing::warn!(
                    from,
                    "process {from} did not confirm the hand-off ({e}); serving anyway"
                ),
            }
        }
        self.bound.start_adopted_quic(&self.node);
    }
}
