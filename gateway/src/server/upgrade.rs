//! Zero-downtime binary upgrade: the running process hands its listening
//! sockets to a new one over a Unix socket (SCM_RIGHTS), as HAProxy, Envoy and
//! Pingora do. The sockets themselves are shared, not re-bound, so their
//! accept queues survive the hand-off and no connection is refused.
//!
//! The conversation, one line each way, on the old process's control socket:
//! 1. new → old: `edgeward-upgrade 1`
//! 2. old → new: the [`Offer`] as one JSON line, the descriptors attached;
//! 3. new → old: `ready` once its generation is built and its TCP listeners
//!    accept (or `failed: <why>`, or it hangs up: the old keeps serving);
//! 4. old → new: `released` once it stopped accepting and gave up its QUIC
//!    sockets, which only one process may read at a time.
//!
//! Only a process of the same user may ask (checked with SO_PEERCRED).

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{UnixListener, UnixStream};

const HELLO: &str = "edgeward-upgrade 1";
/// Linux's limit of descriptors in one message (SCM_MAX_FD).
const MAX_FDS: usize = 253;
/// A line of the conversation is small; a longer one is a confused peer.
const MAX_LINE: usize = 1 << 20;
/// How long each side waits for the other's next line where the other has
/// nothing slow to do (the new process's start-up has its own limit).
const STEP: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("upgrade socket {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the hand-off: {0}")]
    Io(#[from] std::io::Error),
    #[error("the hand-off: {0}")]
    Protocol(String),
    /// What the new process said when it gave up.
    #[error("{0}")]
    Refused(String),
}

fn protocol<T>(msg: impl Into<String>) -> Result<T, UpgradeError> {
    Err(UpgradeError::Protocol(msg.into()))
}

/// What a handed socket is, so the new process finds it by its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A TCP listener of `listeners:` (plaintext or TLS).
    Tcp,
    /// The UDP socket of a listener's HTTP/3.
    Udp,
    /// The admin listener.
    Admin,
    /// The control socket this conversation runs on.
    Control,
}

/// One handed socket: its descriptor travels beside, in the same order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handed {
    pub kind: Kind,
    /// The listener's name (empty for admin and control).
    pub name: String,
    /// The address its config names (`127.0.0.1:0` stays itself across processes).
    pub addr: Option<SocketAddr>,
    /// The control socket's path.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Offer {
    pid: u32,
    sockets: Vec<Handed>,
}

/// The default control socket of a config file: per user (in
/// `$XDG_RUNTIME_DIR` when set) and per config file, so `run --upgrade` with
/// the same `--config` finds the process serving it.
pub fn default_socket(config: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    // A stable hash: the new binary may be built by another compiler.
    let key = crate::upstream::stats::fnv1a(&canonical.to_string_lossy());
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    dir.join(format!("edgeward-{key:016x}.sock"))
}

fn same_user(stream: &UnixStream) -> std::io::Result<u32> {
    let peer = rustix::net::sockopt::socket_peercred(stream)?;
    if peer.uid != rustix::process::geteuid() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "process {} of user {} may not take over this node",
                peer.pid.as_raw_nonzero(),
                peer.uid.as_raw()
            ),
        ));
    }
    Ok(peer.pid.as_raw_nonzero().get().unsigned_abs())
}

async fn read_line(stream: &mut UnixStream, limit: Duration) -> Result<String, UpgradeError> {
    match read_line_or_eof(stream, limit).await? {
        Some(line) => Ok(line),
        None => protocol("the other process hung up"),
    }
}

/// `None` when the other side hung up before sending a byte.
async fn read_line_or_eof(
    stream: &mut UnixStream,
    limit: Duration,
) -> Result<Option<String>, UpgradeError> {
    let mut line = Vec::new();
    let read = async {
        let mut byte = [0u8; 1];
        loop {
            if stream.read(&mut byte).await? == 0 {
                return Ok::<_, std::io::Error>(false);
            }
            if byte[0] == b'\n' {
                return Ok(true);
            }
            if line.len() >= MAX_LINE {
                return Err(std::io::Error::other("line too long"));
            }
            line.push(byte[0]);
        }
    };
    match tokio::time::timeout(limit, read).await {
        Ok(Ok(true)) => Ok(Some(String::from_utf8_lossy(&line).into_owned())),
        Ok(Ok(false)) if line.is_empty() => Ok(None),
        Ok(Ok(false)) => protocol("the other process hung up"),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => protocol(format!("no answer within {limit:?}")),
    }
}

async fn write_line(stream: &mut UnixStream, line: &str) -> std::io::Result<()> {
    stream.write_all(format!("{line}\n").as_bytes()).await
}

/// The listening control socket of a running process.
pub struct Control {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's inode when we bound or adopted it: at exit we remove
    /// the path only if it is still ours.
    inode: Option<(u64, u64)>,
}

fn inode(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_socket())
        .map(|m| (m.dev(), m.ino()))
}

impl Control {
    /// Binds `path`, replacing a stale socket file. `Ok(None)` when a live
    /// process already listens there (this one then cannot be upgraded).
    pub async fn bind(path: &Path) -> Result<Option<Self>, UpgradeError> {
        let err = |source| UpgradeError::Socket {
            path: path.to_path_buf(),
            source,
        };
        if inode(path).is_some() {
            if UnixStream::connect(path).await.is_ok() {
                return Ok(None);
            }
            std::fs::remove_file(path).map_err(err)?;
        }
        let listener = UnixListener::bind(path).map_err(err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        Ok(Some(Self {
            listener,
            path: path.to_path_buf(),
            inode: inode(path),
        }))
    }

    /// Takes over the old process's control socket at the same path.
    fn adopt(fd: OwnedFd, path: &Path) -> std::io::Result<Self> {
        let std = std::os::unix::net::UnixListener::from(fd);
        std.set_nonblocking(true)?;
        Ok(Self {
            listener: UnixListener::from_std(std)?,
            path: path.to_path_buf(),
            inode: inode(path),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// The next process asking to take over, checked to be of our user.
    pub async fn accept(&self) -> std::io::Result<(UnixStream, u32)> {
        let (stream, _) = self.listener.accept().await?;
        let pid = same_user(&stream)?;
        Ok((stream, pid))
    }

    /// At a normal exit: the path goes, unless another process bound it since.
    pub fn remove(self) {
        if self.inode.is_some() && inode(&self.path) == self.inode {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The old process's side, after it sent its sockets.
pub struct Offered {
    stream: UnixStream,
    pub pid: u32,
}

/// Answers one asking process with `sockets` (descriptions and descriptors).
/// `None`: it hung up without a word (a starting process probing whether the
/// socket is live).
pub async fn offer(
    mut stream: UnixStream,
    pid: u32,
    sockets: &[(Handed, BorrowedFd<'_>)],
) -> Result<Option<Offered>, UpgradeError> {
    let Some(hello) = read_line_or_eof(&mut stream, STEP).await? else {
        return Ok(None);
    };
    if hello != HELLO {
        return protocol(format!("unexpected greeting {hello:?}"));
    }
    if sockets.len() > MAX_FDS {
        return protocol(format!(
            "{} sockets to hand over; at most {MAX_FDS} fit one message",
            sockets.len()
        ));
    }
    let offer = Offer {
        pid: std::process::id(),
        sockets: sockets.iter().map(|(h, _)| h.clone()).collect(),
    };
    let mut line = serde_json::to_vec(&offer).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let fds: Vec<BorrowedFd<'_>> = sockets.iter().map(|(_, fd)| *fd).collect();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return protocol("the descriptors do not fit the control buffer");
    }
    // The descriptors ride with the first byte; the rest follows as a stream.
    let first = tokio::time::timeout(
        STEP,
        stream.async_io(Interest::WRITABLE, || {
            rustix::net::sendmsg(
                &stream,
                &[IoSlice::new(&line)],
                &mut control,
                SendFlags::NOSIGNAL,
            )
            .map_err(std::io::Error::from)
        }),
    )
    .await
    .map_err(|_| UpgradeError::Protocol("the new process reads nothing".into()))??;
    stream.write_all(&line[first..]).await?;
    Ok(Some(Offered { stream, pid }))
}

impl Offered {
    /// Waits (up to `limit`) until the new process says it serves.
    /// `Err` says why it will not.
    pub async fn ready(&mut self, limit: Duration) -> Result<(), UpgradeError> {
        let line = read_line(&mut self.stream, limit).await?;
        match line.as_str() {
            "ready" => Ok(()),
            other => match other.strip_prefix("failed: ") {
                Some(why) => Err(UpgradeError::Refused(why.replace("\\n", "\n"))),
                None => protocol(format!("unexpected answer {other:?}")),
            },
        }
    }

    /// Tells the new process this one no longer accepts nor reads QUIC.
    pub async fn released(mut self) -> std::io::Result<()> {
        write_line(&mut self.stream, "released").await
    }
}

/// The new process's side: the sockets it was handed, taken by its config.
pub struct Inherited {
    sockets: Vec<(Handed, Option<OwnedFd>)>,
    pub from_pid: u32,
}

/// The new process's open line to the old one.
pub struct Handoff {
    stream: UnixStream,
    pub from_pid: u32,
}

/// Asks the process listening on `path` for its sockets.
pub async fn take_over(path: &Path) -> Result<(Inherited, Handoff), UpgradeError> {
    let mut stream = UnixStream::connect(path)
        .await
        .map_err(|source| UpgradeError::Socket {
            path: path.to_path_buf(),
            source,
        })?;
    same_user(&stream)?;
    write_line(&mut stream, HELLO).await?;
    let mut line = Vec::new();
    let mut fds = Vec::new();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let receive = async {
        while !line.ends_with(b"\n") {
            if line.len() > MAX_LINE {
                return protocol("the offer is too long");
            }
            let mut buf = [0u8; 8192];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = stream
                .async_io(Interest::READABLE, || {
                    rustix::net::recvmsg(
                        &stream,
                        &mut [IoSliceMut::new(&mut buf)],
                        &mut control,
                        RecvFlags::CMSG_CLOEXEC,
                    )
                    .map_err(std::io::Error::from)
                })
                .await?;
            for msg in control.drain() {
                if let RecvAncillaryMessage::ScmRights(received) = msg {
                    fds.extend(received);
                }
            }
            if got.flags.contains(ReturnFlags::CTRUNC) {
                return protocol("descriptors were lost (control data truncated)");
            }
            if got.bytes == 0 {
                return protocol("the running process hung up");
            }
            line.extend_from_slice(&buf[..got.bytes]);
        }
        Ok(())
    };
    tokio::time::timeout(STEP, receive)
        .await
        .map_err(|_| UpgradeError::Protocol(format!("no offer within {STEP:?}")))??;
    let offer: Offer = serde_json::from_slice(&line)
        .map_err(|e| UpgradeError::Protocol(format!("the offer is not understood: {e}")))?;
    if offer.sockets.len() != fds.len() {
        return protocol(format!(
            "{} sockets described but {} descriptors received",
            offer.sockets.len(),
            fds.len()
        ));
    }
    let sockets = offer.sockets.into_iter().zip(fds.into_iter().map(Some));
    Ok((
        Inherited {
            sockets: sockets.collect(),
            from_pid: offer.pid,
        },
        Handoff {
            stream,
            from_pid: offer.pid,
        },
    ))
}

impl Inherited {
    /// The handed socket of `kind` that the config knows as `name` at `addr`
    /// (by name and address first, then by address alone).
    fn take(&mut self, kind: Kind, name: &str, addr: Option<SocketAddr>) -> Option<OwnedFd> {
        let exact = self
            .sockets
            .iter()
            .position(|(h, fd)| fd.is_some() && h.kind == kind && h.addr == addr && h.name == name);
        let any = || {
            self.sockets
                .iter()
                .position(|(h, fd)| fd.is_some() && h.kind == kind && h.addr == addr)
        };
        let i = exact.or_else(any)?;
        self.sockets[i].1.take()
    }

    pub fn take_tcp(&mut self, name: &str, addr: SocketAddr) -> Option<std::net::TcpListener> {
        self.take(Kind::Tcp, name, Some(addr))
            .map(std::net::TcpListener::from)
    }

    pub fn take_udp(&mut self, name: &str, addr: SocketAddr) -> Option<std::net::UdpSocket> {
        self.take(Kind::Udp, name, Some(addr))
            .map(std::net::UdpSocket::from)
    }

    pub fn take_admin(&mut self, addr: SocketAddr) -> Option<std::net::TcpListener> {
        self.take(Kind::Admin, "", Some(addr))
            .map(std::net::TcpListener::from)
    }

    /// The control socket, when this process uses the same path as the old one.
    pub fn take_control(&mut self, path: &Path) -> Option<std::io::Result<Control>> {
        let i = self
            .sockets
            .iter()
            .position(|(h, fd)| fd.is_some() && h.kind == Kind::Control)?;
        if self.sockets[i].0.path.as_deref() != Some(path) {
            return None;
        }
        let fd = self.sockets[i].1.take()?;
        Some(Control::adopt(fd, path))
    }

    /// What the new config does not use; closed here, the old process closes its
    /// own copies once it drained.
    pub fn unused(&self) -> impl Iterator<Item = &Handed> {
        self.sockets
            .iter()
            .filter(|(_, fd)| fd.is_some())
            .map(|(h, _)| h)
    }
}

impl Handoff {
    /// Says this process serves, then waits (bounded) for the old one to
    /// release its sockets. `Err` when it did not say so in time.
    pub async fn ready(mut self) -> Result<(), UpgradeError> {
        write_line(&mut self.stream, "ready").await?;
        match read_line(&mut self.stream, STEP).await?.as_str() {
            "released" => Ok(()),
            other => protocol(format!("unexpected answer {other:?}")),
        }
    }

    /// Tells the old process why this one will not serve.
    pub async fn failed(mut self, why: &str) {
        let line = format!("failed: {}", why.replace('\n', "\\n"));
        let _ = tokio::time::timeout(STEP, write_line(&mut self.stream, &line)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_socket_is_one_per_config_file_and_stable() {
        let a = default_socket(Path::new("/etc/edgeward/a.yaml"));
        assert_eq!(a, default_socket(Path::new("/etc/edgeward/a.yaml")));
        assert_ne!(a, default_socket(Path::new("/etc/edgeward/b.yaml")));
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        // FNV-1a of the path: the same in every build, so a new binary finds the old.
        let key = crate::upstream::stats::fnv1a("/etc/edgeward/a.yaml");
        assert_eq!(name, format!("edgeward-{key:016x}.sock"));
    }

    #[tokio::test]
    async fn sockets_cross_to_another_owner_and_still_accept() {
        let dir =
            std::env::temp_dir().join(format!("edgeward-upgrade-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let control = Control::bind(&path).await.unwrap().unwrap();
        // A second bind sees the live one.
        assert!(Control::bind(&path).await.unwrap().is_none());
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = tcp.local_addr().unwrap();
        let configured: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let old = tokio::spawn(async move {
            let sockets = [
                (
                    Handed {
                        kind: Kind::Tcp,
                        name: "web".into(),
                        addr: Some(configured),
                        path: None,
                    },
                    tcp.as_fd(),
                ),
                (
                    Handed {
                        kind: Kind::Control,
                        name: String::new(),
                        addr: None,
                        path: Some(control.path().to_path_buf()),
                    },
                    control.fd(),
                ),
            ];
            // The first asker is the probe of the second bind above.
            let mut offered = loop {
                let (stream, pid) = control.accept().await.unwrap();
                if let Some(o) = offer(stream, pid, &sockets).await.unwrap() {
                    break o;
                }
            };
            offered.ready(STEP).await.unwrap();
            offered.released().await.unwrap();
        });
        let (mut inherited, handoff) = take_over(&path).await.unwrap();
        assert_eq!(inherited.from_pid, std::process::id());
        assert!(
            inherited
                .take_tcp("web", "127.0.0.1:1".parse().unwrap())
                .is_none()
        );
        let listener = inherited.take_tcp("other-name", configured).unwrap();
        assert_eq!(listener.local_addr().unwrap(), local);
        assert!(inherited.take_control(&path).unwrap().is_ok());
        assert_eq!(inherited.unused().count(), 0);
        handoff.ready().await.unwrap();
        old.await.unwrap();
        // The inherited descriptor is the same listening socket.
        let client = std::net::TcpStream::connect(local).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        drop(accepted);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_failing_new_process_says_why() {
        let dir =
            std::env::temp_dir().join(format!("edgeward-upgrade-fail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let control = Control::bind(&path).await.unwrap().unwrap();
        let old = tokio::spawn(async move {
            let (stream, pid) = control.accept().await.unwrap();
            let mut offered = offer(stream, pid, &[]).await.unwrap().unwrap();
            let err = offered.ready(STEP).await.unwrap_err();
            control.remove();
            err.to_string()
        });
        let (_, handoff) = take_over(&path).await.unwrap();
        handoff.failed("plugin x: init failed\nline two").await;
        let err = old.await.unwrap();
        assert!(err.contains("plugin x: init failed\nline two"), "{err}");
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
