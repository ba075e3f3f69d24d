//! The `admin:` block: its address, its bearer token, and the two mistakes
//! that expose or break it (an open API off loopback, a port shared with a listener).

use std::net::SocketAddr;
use std::sync::Arc;

use super::super::model::AdminConfig;
use super::super::resolved::Listener;
use super::Checker;

/// Shortest token accepted: a guessable token is no token.
const MIN_TOKEN: usize = 16;

pub(super) fn resolve(
    c: &mut Checker,
    admin: Option<&AdminConfig>,
    listeners: &[Listener],
) -> (Option<SocketAddr>, Option<Arc<str>>) {
    let Some(a) = admin else {
        return (None, None);
    };
    let addr = c.socket_addr(&a.address, "admin.address");
    let token = match (&a.token, &a.token_file) {
        (Some(_), Some(f)) => {
            c.issue(
                &f.referenced,
                "admin.token-file",
                "give either `token` or `token-file`, not both",
            );
            None
        }
        (Some(t), None) => Some((t.value.trim().to_owned(), &t.referenced, "admin.token")),
        (None, Some(f)) => match std::fs::read_to_string(c.base.join(&f.value)) {
            Ok(text) => Some((text.trim().to_owned(), &f.referenced, "admin.token-file")),
            Err(e) => {
                c.issue(
                    &f.referenced,
                    "admin.token-file",
                    format!(
                        "cannot read {}: {e} (relative paths start at the config file's directory)",
                        f.value
                    ),
                );
                None
            }
        },
        (None, None) => None,
    };
    let token = token.and_then(|(t, at, path)| {
        if t.len() < MIN_TOKEN || !t.bytes().all(|b| b.is_ascii_graphic()) {
            c.issue(
                at,
                path,
                format!("the token must be at least {MIN_TOKEN} visible ASCII characters (no spaces), e.g. from `openssl rand -hex 32`"),
            );
            return None;
        }
        Some(Arc::<str>::from(t))
    });
    if let Some(addr) = addr {
        let tokenless = a.token.is_none() && a.token_file.is_none();
        if tokenless && !addr.ip().is_loopback() {
            c.issue(
                &a.address.referenced,
                "admin.address",
                format!(
                    "{addr} is reachable from other hosts, and without a token anyone could purge the cache or reload: set `admin.token` (or `token-file`), or bind 127.0.0.1"
                ),
            );
        }
        if let Some(l) = listeners.iter().find(|l| overlaps(l.addr, addr)) {
            c.issue(
                &a.address.referenced,
                "admin.address",
                format!(
                    "{addr} collides with listener {} ({}); give the admin API its own port",
                    l.name, l.addr
                ),
            );
        }
    }
    (addr, token)
}

/// Whether binding both would clash: the same port on the same address or on
/// a wildcard. Port 0 asks the kernel for a fresh port, so it never clashes.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
