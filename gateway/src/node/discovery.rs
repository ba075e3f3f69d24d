//! The discovery loop: resolves each discovered upstream every `interval` and,
//! when its addresses change, installs a generation with the new endpoint set.
//!
//! That generation is the current one with only those endpoints changed
//! (same number, same plugins). An endpoint whose address stays keeps its
//! stats through the registry. A removed one drains: requests that started
//! on an older generation finish there, new ones never see it. A failed
//! resolution keeps the last good set; it is counted and logged at most once
//! a minute per upstream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::Node;
use crate::config::discovery::Discovery;
use crate::config::{Config, Endpoint};
use crate::upstream::discovery::{self as dns, Answer, Resolver};

/// How often the loop looks for due upstreams and for a reload that added,
/// changed or removed a `discovery:` block.
const TICK: Duration = Duration::from_millis(250);

/// Shortest gap between two failure lines for one upstream.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The last good set per upstream name, with the block that found it.
#[derive(Default)]
pub struct Known(HashMap<String, (Discovery, Vec<Endpoint>)>);

impl Known {
    /// Gives each discovered upstream of `config` the endpoints last found for
    /// the same name, port, family and name server (none if it is new).
    pub(super) fn fill(&self, config: &mut Config) {
        for u in &mut config.upstreams {
            let Some(d) = &u.discovery else { continue };
            if let Some((known, endpoints)) = self.0.get(&u.name)
                && same_source(known, d)
            {
                u.endpoints = endpoints.clone();
            }
        }
    }
}

fn same_source(a: &Discovery, b: &Discovery) -> bool {
    (&a.name, a.port, a.family, a.nameserver) == (&b.name, b.port, b.family, b.nameserver)
}

impl Node {
    /// Records `addrs` as `upstream`'s endpoints and, when the serving
    /// generation has others, installs one with these. True when it did.
    fn discovered(&self, upstream: &str, source: &Discovery, addrs: &[SocketAddr]) -> bool {
        let endpoints = dns::endpoints(addrs);
        self.discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .insert(upstream.to_owned(), (source.clone(), endpoints.clone()));
        let _swap = self.swap.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.generation();
        let Some(i) = current.config.upstreams.iter().position(|u| {
            u.name == upstream && u.discovery.as_ref().is_some_and(|d| same_source(d, source))
        }) else {
            return false;
        };
        if dns::same_set(&current.config.upstreams[i].endpoints, addrs) {
            return false;
        }
        let mut config = Config::clone(&current.config);
        config.upstreams[i].endpoints = endpoints;
        let next = current.with_endpoints(config, &self.upstreams, &self.metrics);
        self.install_locked(next);
        true
    }
}

struct Watched {
    resolver: Resolver,
    due: Instant,
    last_log: Option<Instant>,
    suppressed: u64,
    failing: bool,
}

/// Runs until `stop` turns true. `first` is told once every discovered
/// upstream has had its first answer (or failure), so a node can start with
/// endpoints instead of answering 503 until the first interval.
pub async fn run(
    node: Arc<Node>,
    mut stop: watch::Receiver<bool>,
    mut first: Option<oneshot::Sender<()>>,
) {
    let mut watched: HashMap<String, Watched> = HashMap::new();
    let mut unbuilt: HashMap<String, Instant> = HashMap::new();
    loop {
        pass(&node, &mut watched, &mut unbuilt).await;
        if let Some(tx) = first.take() {
            let _ = tx.send(());
        }
        tokio::select! {
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

/// `unbuilt`: upstreams whose resolver could not be made (no readable
/// resolv.conf), with when to try again.
async fn pass(
    node: &Node,
    watched: &mut HashMap<String, Watched>,
    unbuilt: &mut HashMap<String, Instant>,
) {
    let generation = node.generation();
    let config = &generation.config;
    watched.retain(|name, w| {
        config
            .upstreams
            .iter()
            .any(|u| &u.name == name && u.discovery.as_ref() == Some(w.resolver.target()))
    });
    let now = Instant::now();
    let mut due = Vec::new();
    for u in &config.upstreams {
        let Some(d) = &u.discovery else { continue };
        if !watched.contains_key(&u.name) {
            if unbuilt.get(&u.name).is_some_and(|retry| now < *retry) {
                continue;
            }
            match Resolver::new(d) {
                Ok(resolver) => {
                    unbuilt.remove(&u.name);
                    watched.insert(
                        u.name.clone(),
                        Watched {
                            resolver,
                            due: now,
                            last_log: None,
                            suppressed: 0,
                            failing: false,
                        },
                    );
                }
                Err(e) => {
                    node.metrics.discovery.resolved(&u.name, "error");
                    // Once a minute: the system's configuration does not fix itself.
                    if unbuilt.insert(u.name.clone(), now + LOG_EVERY).is_none() {
                        tracing::warn!(upstream = %u.name, "discovery: {e}; retrying every minute");
                    }
                    continue;
                }
            }
        }
        if watched.get(&u.name).is_some_and(|w| w.due <= now) {
            due.push(u.name.clone());
        }
    }
    let answers = futures_util::future::join_all(due.iter().map(|name| {
        let w = &watched[name];
        async move { (name, w.resolver.resolve().await) }
    }))
    .await;
    for (name, answer) in answers {
        let Some(w) = watched.get_mut(name) else {
            continue;
        };
        w.due = Instant::now() + w.resolver.target().interval;
        let target = w.resolver.target().clone();
        match answer {
            Answer::Addresses(addrs) => {
                let result = if addrs.is_empty() { "empty" } else { "ok" };
                node.metrics.discovery.resolved(name, result);
                if std::mem::take(&mut w.failing) {
                    tracing::info!(upstream = %name, dns = %target.target(), "discovery: resolving again");
                }
                if node.discovered(name, &target, &addrs) {
                    node.metrics.discovery.changed(name, addrs.len());
                    tracing::info!(
                        upstream = %name,
                        dns = %target.target(),
                        endpoints = addrs.len(),
                        "discovery: endpoint set changed"
                    );
                }
            }
            Answer::Failed(e) => {
                node.metrics.discovery.resolved(name, "error");
                w.failing = true;
                let now = Instant::now();
                if w.last_log
                    .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
                {
                    tracing::warn!(
                        upstream = %name,
                        dns = %target.target(),
                        suppressed = std::mem::take(&mut w.suppressed),
                        "discovery: cannot resolve, keeping the last good endpoints: {e}"
                    );
                    w.last_log = Some(now);
                } else {
                    w.suppressed += 1;
                }
            }
        }
    }
}
