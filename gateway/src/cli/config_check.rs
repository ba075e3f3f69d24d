//! `edgeward check FILE`: every problem of a configuration file in one run,
//! then what deserves a look but does not stop it from serving (warnings),
//! including endpoints whose host name does not resolve from here.

use std::net::ToSocketAddrs;
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edgeward::config::{self, ConfigIssue, Hostname};

/// How long `check` waits for host names to resolve, all of them together.
/// A name that takes longer is reported like one that does not resolve.
const RESOLVE_WAIT: Duration = Duration::from_secs(2);

pub fn run(path: &Path) -> ExitCode {
    let checked = match config::check_file(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // Plugins are loaded for real: a bad component or a failing init is
    // found here rather than at the next start.
    if let Err(e) = edgeward::plugin::Plugins::load(&checked.config) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let mut warnings = checked.warnings;
    warnings.issues.extend(unresolved(&checked.hostnames));
    warnings.issues.sort_by_key(|w| (w.line, w.column));
    eprint!("{warnings}");
    println!("ok");
    ExitCode::SUCCESS
}

/// The endpoints whose host name the system resolver does not turn into an
/// address within [`RESOLVE_WAIT`]. Without a network every name is
/// reported, as a warning: the gateway resolves again when it connects.
fn unresolved(hosts: &[Hostname]) -> Vec<ConfigIssue> {
    let mut names: Vec<(&str, u16)> = hosts.iter().map(|h| (h.host.as_str(), h.port)).collect();
    names.sort_unstable();
    names.dedup();
    let (tx, rx) = mpsc::channel();
    for (i, (host, port)) in names.iter().enumerate() {
        let (tx, host, port) = (tx.clone(), (*host).to_owned(), *port);
        // getaddrinfo blocks and has no timeout of its own: each lookup gets
        // a thread, and the ones still running at the deadline are left
        // behind when `check` exits.
        std::thread::spawn(move || {
            let found = (host.as_str(), port)
                .to_socket_addrs()
                .is_ok_and(|mut a| a.next().is_some());
            let _ = tx.send((i, found));
        });
    }
    drop(tx);
    let mut resolved = vec![false; names.len()];
    let deadline = Instant::now() + RESOLVE_WAIT;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((i, found)) => resolved[i] = found,
            Err(_) => break,
        }
    }
    hosts
        .iter()
        .filter(|h| {
            let i = names.binary_search(&(h.host.as_str(), h.port));
            !i.is_ok_and(|i| resolved[i])
        })
        .map(|h| ConfigIssue {
            line: h.line,
            column: h.column,
            path: h.path.clone(),
            message: format!(
                "\"{}\" does not resolve to an address from here (system resolver, {}s); requests routed to this endpoint fail until it does",
                h.host,
                RESOLVE_WAIT.as_secs()
            ),
        })
        .collect()
}
