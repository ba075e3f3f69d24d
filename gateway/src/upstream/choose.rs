//! Which endpoint serves a request: the upstream's router plugin decides from
//! the candidates (with the host's live in-flight, latency and health), and
//! the native smooth round robin stands in when there is no plugin or the
//! plugin faulted under `on-error: fallback` (or `fallback-tagged`, over the
//! endpoints carrying one of its tags).

use std::sync::atomic::Ordering;

use http::Response;

use super::UpstreamPool;
use crate::body::Body;
use crate::config::{self, OnError};
use crate::plugin::{CallContext, Candidate, Decision, Fault, HeaderEdit, UpstreamInfo};

/// The outcome of endpoint choice for one attempt.
#[derive(Debug)]
pub enum Pick {
    Endpoint {
        idx: usize,
        request_headers: Vec<HeaderEdit>,
        response_headers: Vec<HeaderEdit>,
    },
    /// The router answered the client itself.
    Respond(Response<Body>),
    /// No endpoint can take the request (503).
    Unavailable,
    /// The router faulted and its policy is `fail`.
    Failed { plugin: String, fault: Fault },
}

impl Pick {
    fn native(idx: usize) -> Self {
        Self::Endpoint {
            idx,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
        }
    }
}

impl UpstreamPool {
    /// Chooses an endpoint for `parts`; endpoints in `tried` (earlier attempts
    /// of this request) are offered as unhealthy so a retry goes elsewhere.
    pub fn choose(
        &self,
        parts: &mut http::request::Parts,
        ctx: &CallContext,
        tried: &[usize],
    ) -> Pick {
        let now = super::stats::now_ms();
        let Some(router) = &self.router else {
            return self.native(now, tried);
        };
        let candidates = self.candidates(now, tried);
        match router.choose(parts, ctx, &self.info, &candidates) {
            Ok(Decision::Forward {
                endpoint,
                request_headers,
                response_headers,
            }) => Pick::Endpoint {
                idx: endpoint,
                request_headers,
                response_headers,
            },
            Ok(Decision::Respond(r)) => Pick::Respond(r),
            Ok(Decision::Unavailable) => Pick::Unavailable,
            Err(fault) => {
                router.count_policy();
                match router.on_error {
                    OnError::Fallback => self.native(now, tried),
                    OnError::FallbackTagged => self.native_among(now, tried, |i| {
                        self.endpoints[i]
                            .tags
                            .iter()
                            .any(|t| router.fallback_tags.contains(t))
                    }),
                    OnError::Fail => Pick::Failed {
                        plugin: router.name().to_owned(),
                        fault,
                    },
                }
            }
        }
    }

    /// Whether health is ignored right now (Envoy's panic threshold; NGINX
    /// ignores failures in one-server groups): when fewer than
    /// `panic-threshold` percent of the endpoints are healthy, or none not yet
    /// tried is. Health may be stale, and refusing everyone helps no one.
    fn panicking(&self, now_ms: u64, tried: &[usize]) -> bool {
        let n = self.endpoints.len();
        let healthy = |i: &usize| self.stats[*i].healthy(now_ms);
        let share = (0..n).filter(healthy).count() * 100;
        share < self.resilience.panic_threshold as usize * n
            || !(0..n).filter(|i| !tried.contains(i)).any(|i| healthy(&i))
    }

    /// The candidates a router sees right now; under the panic threshold all
    /// are offered as healthy.
    pub fn candidates(&self, now_ms: u64, tried: &[usize]) -> Vec<Candidate> {
        let panic = self.panicking(now_ms, tried);
        self.endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let s = &self.stats[i];
                let (cpu_utilization, mem_utilization) = s.load();
                Candidate {
                    id: i as u32,
                    key: self.keys[i],
                    weight: e.weight,
                    healthy: (panic || s.healthy(now_ms)) && !tried.contains(&i),
                    in_flight: s.in_flight(),
                    latency_ewma_us: s.latency_ewma_us(),
                    zone: self.zones[i],
                    cpu_utilization,
                    mem_utilization,
                }
            })
            .collect()
    }

    /// Smooth weighted round robin over healthy, untried endpoints; under the
    /// panic threshold, over all untried ones.
    fn native(&self, now_ms: u64, tried: &[usize]) -> Pick {
        self.native_among(now_ms, tried, |_| true)
    }

    /// [`Self::native`] restricted to the endpoints `allowed` admits
    /// (`on-error: fallback-tagged`): none of them left is `Unavailable`,
    /// never another endpoint.
    fn native_among(&self, now_ms: u64, tried: &[usize], allowed: impl Fn(usize) -> bool) -> Pick {
        let panic = self.panicking(now_ms, tried);
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let cycle = self.schedule.len().max(1);
        let mut fallback = None;
        for k in 0..cycle {
            let i = self.schedule.at(start.wrapping_add(k));
            if tried.contains(&i) || !allowed(i) {
                continue;
            }
            if panic || self.stats[i].healthy(now_ms) {
                return Pick::native(i);
            }
            fallback.get_or_insert(i);
        }
        let untried = |i: &usize| !tried.contains(i) && allowed(*i);
        match fallback.or_else(|| (0..self.endpoints.len()).find(untried)) {
            Some(i) => Pick::native(i),
            None => Pick::Unavailable,
        }
    }

    /// Milliseconds on the clock endpoint health is kept on.
    pub fn now_ms(&self) -> u64 {
        super::stats::now_ms()
    }
}

/// The facts a router may ask about, and each endpoint's zone number.
pub(super) fn upstream_info(
    cfg: &config::Upstream,
    local_zone: Option<&str>,
) -> (UpstreamInfo, Vec<u32>) {
    let mut zone_names: Vec<String> = Vec::new();
    let mut number = |z: Option<&str>| -> u32 {
        let Some(z) = z else { return 0 };
        match zone_names.iter().position(|n| n == z) {
            Some(i) => i as u32 + 1,
            None => {
                zone_names.push(z.to_owned());
                zone_names.len() as u32
            }
        }
    };
    let local = number(local_zone);
    let zones: Vec<u32> = cfg
        .endpoints
        .iter()
        .map(|e| number(e.zone.as_deref()))
        .collect();
    let info = UpstreamInfo {
        name: cfg.name.clone(),
        scope: std::sync::Arc::from(cfg.name.as_str()),
        addresses: cfg
            .endpoints
            .iter()
            .map(|e| e.authority.to_string())
            .collect(),
        tags: cfg.endpoints.iter().map(|e| e.tags.clone()).collect(),
        zones: zones.clone(),
        zone_names,
        local_zone: local,
    };
    (info, zones)
}
