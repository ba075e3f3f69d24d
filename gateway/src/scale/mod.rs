//! The scale-signal loop: every `interval` per scaled service (`scaling:` in
//! the YAML), a snapshot from the upstream's sliding window and endpoints,
//! each policy (a `scaler` plugin) asked for a replica count, the answers
//! combined with the HPA's semantics ([`decide`]), and the result kept on the
//! [`Board`] for `/admin/scale` and the `edgeward_scale_*` gauges.
//!
//! The loop reads the current generation at every tick, so a reload swaps the
//! services and plugins it uses; a service's history and stabilisation window
//! survive a reload that keeps its name. A policy that faults (trap, deadline,
//! memory) is counted in `edgeward_plugin_faults_total`; its previous answer
//! stands, marked with the fault.

mod custom;
pub mod decide;
mod process;
mod webhook;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::watch;

pub use crate::metrics::ScaleGauges;
pub use custom::CustomValue;
pub use decide::{Decision, Direction, Limits, PolicyAnswer, Stabilizer};

use crate::config::scaling::ScaledService;
use crate::node::{Generation, Node};
use crate::plugin::{CustomMetric, MetricKind, ScaleDirection, ScaleSnapshot};

/// How often the loop looks for services that are due.
const TICK: Duration = Duration::from_millis(200);

/// What the gateway measured for a service, as `/admin/scale` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inputs {
    pub at_ms: u64,
    pub window_ms: u64,
    pub current_replicas: u32,
    pub healthy_replicas: u32,
    /// Requests the window counted, and of those 5xx or failed.
    pub requests: u64,
    pub errors: u64,
    pub request_rate: f64,
    pub error_rate: f64,
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
    pub in_flight: u32,
    pub queue_depth: u32,
    pub gateway_cpu: f64,
    pub gateway_memory_bytes: u64,
    /// The service's own load from its endpoints' ORCA reports, averaged
    /// over the window (fractions); `None` without reports.
    pub service_cpu: Option<f64>,
    pub service_memory: Option<f64>,
    pub load_reports: u64,
    /// Plugins' metrics for the service's upstream, by `<plugin>/<name>`.
    pub custom_metrics: BTreeMap<String, CustomValue>,
}

impl Inputs {
    fn to_wit(&self, service: &str) -> ScaleSnapshot {
        ScaleSnapshot {
            service: service.to_owned(),
            at_ms: self.at_ms,
            window_ms: self.window_ms,
            current_replicas: self.current_replicas,
            healthy_replicas: self.healthy_replicas,
            request_rate: self.request_rate,
            error_rate: self.error_rate,
            latency_p50_ms: self.latency_p50_ms,
            latency_p90_ms: self.latency_p90_ms,
            latency_p99_ms: self.latency_p99_ms,
            in_flight: self.in_flight,
            queue_depth: self.queue_depth,
            gateway_cpu: self.gateway_cpu,
            gateway_memory_bytes: self.gateway_memory_bytes,
            service_cpu: self.service_cpu,
            service_memory: self.service_memory,
            custom_metrics: self
                .custom_metrics
                .iter()
                .map(|(name, v)| CustomMetric {
                    name: name.clone(),
                    kind: match v.kind {
                        "counter" => MetricKind::Counter,
                        "gauge" => MetricKind::Gauge,
                        _ => MetricKind::Histogram,
                    },
                    value: v.value,
                })
                .collect(),
        }
    }
}

/// One scaled service's view on the board.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    pub upstream: String,
    pub min: u32,
    pub max: u32,
    pub interval_ms: u64,
    /// The decision, flat, for KEDA's `valueLocation`
    /// (`services.<name>.desiredReplicas`).
    pub desired_replicas: u32,
    pub current_replicas: u32,
    pub direction: Direction,
    pub reason: String,
    pub evaluations: u64,
    pub inputs: Option<Inputs>,
    pub policies: Vec<PolicyAnswer>,
    /// The last decisions, oldest first.
    pub history: Vec<Decision>,
}

/// The whole board, as `GET /admin/scale` returns it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BoardView {
    pub generated_at_ms: u64,
    pub services: BTreeMap<String, ServiceView>,
}

struct ServiceState {
    config: ScaledService,
    next_due: Option<Instant>,
    inputs: Option<Inputs>,
    /// The last good answer of each policy, by plugin name.
    answers: HashMap<String, PolicyAnswer>,
    decision: Option<Decision>,
    history: VecDeque<Decision>,
    stab: Stabilizer,
    evaluations: u64,
    custom: custom::History,
}

impl ServiceState {
    fn new(config: ScaledService) -> Self {
        Self {
            config,
            next_due: None,
            inputs: None,
            answers: HashMap::new(),
            decision: None,
            history: VecDeque::new(),
            stab: Stabilizer::default(),
            evaluations: 0,
            custom: custom::History::default(),
        }
    }
}

/// The scale loop's state. The server owns it for the whole process, so it
/// outlives generations; `/admin/scale` reads it.
#[derive(Default)]
pub struct Board {
    services: Mutex<BTreeMap<String, ServiceState>>,
    cpu: Mutex<process::CpuMeter>,
    /// Changes of decision not yet sent to the webhook.
    changes: Mutex<Vec<Change>>,
}

/// A change of a service's decision, as the webhook receives it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub service: String,
    /// The desired count before; `None` for a service's first decision.
    pub previous_replicas: Option<u32>,
    #[serde(flatten)]
    pub decision: Decision,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ServiceState>> {
        self.services.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Evaluates every service whose interval has passed at `now` (an
    /// instant of the metrics' clock; `at_ms` is the same in wall time), and forgets services the
    /// current generation no longer scales. Returns how many were evaluated.
    pub fn tick(&self, node: &Node, now: Instant, at_ms: u64) -> usize {
        let generation = node.generation();
        let scaling = &generation.config.scaling;
        let (cpu, memory) = {
            let mut m = self.cpu.lock().unwrap_or_else(PoisonError::into_inner);
            (m.sample(now), process::resident_bytes())
        };
        let mut services = self.lock();
        services.retain(|name, _| {
            let keep = scaling.services.iter().any(|s| &s.name == name);
            if !keep {
                node.metrics.scale.forget(name);
            }
            keep
        });
        let defined = generation.plugins.defined_samples();
        let mut evaluated = 0;
        for cfg in &scaling.services {
            let st = services
                .entry(cfg.name.clone())
                .or_insert_with(|| ServiceState::new(cfg.clone()));
            if st.config != *cfg {
                st.config = cfg.clone();
                st.next_due = None;
            }
            // A held request of a service at zero asks for a replica now,
            // not at the next interval.
            let held = node.metrics.scale.held(&cfg.name);
            let at_zero = st.decision.as_ref().is_none_or(|d| d.desired_replicas == 0);
            let urgent = cfg.hold.is_some() && held > 0 && at_zero;
            if st.next_due.is_some_and(|due| now < due) && !urgent {
                continue;
            }
            st.next_due = Some(now + cfg.interval);
            let mut inputs = measure(node, &generation, cfg, now, at_ms, cpu, memory);
            let load = node
                .load_reports
                .of(&cfg.upstream)
                .averages(now, cfg.window);
            inputs.service_cpu = load.cpu;
            inputs.service_memory = load.mem;
            inputs.load_reports = load.reports;
            inputs.custom_metrics = st.custom.update(&defined, &cfg.upstream, now, cfg.window);
            let before = st.decision.as_ref().map(|d| d.desired_replicas);
            evaluate(node, &generation, st, inputs, scaling.history);
            evaluated += 1;
            if let Some(d) = &st.decision
                && before != Some(d.desired_replicas)
                && scaling.webhook.is_some()
            {
                let mut changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
                if changes.len() < 1000 {
                    changes.push(Change {
                        service: cfg.name.clone(),
                        previous_replicas: before,
                        decision: d.clone(),
                    });
                }
            }
        }
        evaluated
    }

    /// The changes of decision since the last call, oldest first.
    pub fn take_changes(&self) -> Vec<Change> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// True when no service is on the board.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Everything `/admin/scale` shows.
    pub fn view(&self) -> BoardView {
        let services = self
            .lock()
            .iter()
            .map(|(name, st)| {
                let d = st.decision.as_ref();
                let policies = st
                    .config
                    .policies
                    .iter()
                    .filter_map(|p| st.answers.get(p).cloned())
                    .collect();
                let view = ServiceView {
                    upstream: st.config.upstream.clone(),
                    min: st.config.min,
                    max: st.config.max,
                    interval_ms: u64::try_from(st.config.interval.as_millis()).unwrap_or(u64::MAX),
                    desired_replicas: d.map_or(0, |d| d.desired_replicas),
                    current_replicas: d.map_or(0, |d| d.current_replicas),
                    direction: d.map_or(Direction::Hold, |d| d.direction),
                    reason: d.map_or_else(|| "not evaluated yet".into(), |d| d.reason.clone()),
                    evaluations: st.evaluations,
                    inputs: st.inputs.clone(),
                    policies,
                    history: st.history.iter().cloned().collect(),
                };
                (name.clone(), view)
            })
            .collect();
        BoardView {
            generated_at_ms: wall_ms(),
            services,
        }
    }
}

/// The snapshot of `cfg`'s upstream at `at_ms`.
fn measure(
    node: &Node,
    generation: &Generation,
    cfg: &ScaledService,
    now: Instant,
    at_ms: u64,
    gateway_cpu: f64,
    gateway_memory_bytes: u64,
) -> Inputs {
    let metrics = node.metrics.upstream(&cfg.upstream);
    let w = metrics.window().snapshot(now, cfg.window);
    let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let now_ms = crate::upstream::stats::now_ms();
    let pool = generation.upstreams.iter().find(|u| u.name == cfg.upstream);
    let (endpoints, healthy, in_flight, connecting) = pool.map_or((0, 0, 0, 0), |p| {
        let healthy = p.stats.iter().filter(|s| s.healthy(now_ms)).count();
        let in_flight: u32 = p.stats.iter().map(|s| s.in_flight()).sum();
        // A connection being opened holds a pending slot: a request waits on it.
        let connecting = p.breaker.open(crate::upstream::breaker::Limit::Pending);
        (p.endpoints.len(), healthy, in_flight, connecting)
    });
    // Waiting for an endpoint: held by scale from zero, or for a connection.
    let queue_depth = node
        .metrics
        .scale
        .held(&cfg.name)
        .saturating_add(connecting);
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let current = cfg.replicas.unwrap_or(count(endpoints));
    Inputs {
        at_ms,
        window_ms: w.seconds * 1000,
        current_replicas: current,
        healthy_replicas: cfg.replicas.map_or(count(healthy), |r| {
            // An operator-supplied count behind healthy endpoints: all of it,
            // or none when no endpoint is healthy.
            if healthy > 0 { r } else { 0 }
        }),
        requests: w.requests,
        errors: w.errors,
        request_rate: w.rate_per_sec,
        error_rate: w.error_rate,
        latency_p50_ms: ms(w.p50),
        latency_p90_ms: ms(w.quantile(0.90)),
        latency_p95_ms: ms(w.p95),
        latency_p99_ms: ms(w.p99),
        in_flight,
        queue_depth,
        gateway_cpu,
        gateway_memory_bytes,
        service_cpu: None,
        service_memory: None,
        load_reports: 0,
        custom_metrics: BTreeMap::new(),
    }
}

fn evaluate(
    node: &Node,
    generation: &Generation,
    st: &mut ServiceState,
    inputs: Inputs,
    history: usize,
) {
    let cfg = &st.config;
    let snapshot = inputs.to_wit(&cfg.name);
    let upstream: Arc<str> = Arc::from(cfg.upstream.as_str());
    for name in &cfg.policies {
        let Some(plugin) = generation.plugins.scaler(name) else {
            continue;
        };
        match plugin.evaluate(&snapshot, &upstream) {
            Ok(d) => {
                st.answers.insert(
                    name.clone(),
                    PolicyAnswer {
                        plugin: name.clone(),
                        desired_replicas: d.desired_replicas,
                        direction: match d.direction {
                            ScaleDirection::Up => Direction::Up,
                            ScaleDirection::Down => Direction::Down,
                            ScaleDirection::Hold => Direction::Hold,
                        },
                        reason: d.reason,
                        fault: None,
                    },
                );
            }
            Err(fault) => {
                if let Some(a) = st.answers.get_mut(name) {
                    a.fault = Some(fault.to_string());
                }
            }
        }
    }
    let mut answers: Vec<PolicyAnswer> = cfg
        .policies
        .iter()
        .filter_map(|p| st.answers.get(p).cloned())
        .collect();
    // Scale from zero: traffic for a service with no healthy replica asks
    // for one at once, whatever the policies say.
    let waiting = inputs.requests + u64::from(inputs.in_flight) + u64::from(inputs.queue_depth);
    if cfg.min == 0 && inputs.healthy_replicas == 0 && waiting > 0 {
        // First, so it names the decision when a policy agrees.
        answers.insert(
            0,
            PolicyAnswer {
                plugin: "scale-from-zero".into(),
                desired_replicas: 1,
                direction: Direction::of(inputs.current_replicas, 1),
                reason: if inputs.queue_depth > 0 {
                    format!(
                        "{} requests held and no healthy replica",
                        inputs.queue_depth
                    )
                } else {
                    format!("{waiting} requests and no healthy replica")
                },
                fault: None,
            },
        );
    }
    let limits = Limits {
        min: cfg.min,
        max: cfg.max,
        tolerance: cfg.tolerance,
        up_stabilization: cfg.up_stabilization,
        down_stabilization: cfg.down_stabilization,
    };
    let current = inputs.current_replicas;
    let decision = decide::combine(inputs.at_ms, current, &answers, &limits, &mut st.stab);
    let per_policy: Vec<(&str, u32)> = answers
        .iter()
        .map(|a| (a.plugin.as_str(), a.desired_replicas))
        .collect();
    node.metrics
        .scale
        .set(&cfg.name, current, decision.desired_replicas, &per_policy);
    if st
        .decision
        .as_ref()
        .map(|d| (d.desired_replicas, &d.reason))
        != Some((decision.desired_replicas, &decision.reason))
    {
        tracing::info!(
            service = %cfg.name,
            current,
            desired = decision.desired_replicas,
            reason = %decision.reason,
            "scale decision"
        );
    }
    st.history.push_back(decision.clone());
    while st.history.len() > history {
        st.history.pop_front();
    }
    st.decision = Some(decision);
    st.inputs = Some(inputs);
    st.evaluations += 1;
}

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs the loop until `stop` turns true. Plugins are called off the async
/// threads.
pub async fn run(node: Arc<Node>, board: Arc<Board>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut webhook_task: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if node.generation().config.scaling.services.is_empty() && board.is_empty() {
                    continue;
                }
                let (n, b) = (node.clone(), board.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    b.tick(&n, Instant::now(), wall_ms())
                })
                .await;
                let changes = board.take_changes();
                if let Some(url) = node.generation().config.scaling.webhook.clone()
                    && !changes.is_empty()
                {
                    // Chained, so changes arrive in order however slow one POST is.
                    let previous = webhook_task.take();
                    webhook_task = Some(tokio::spawn(async move {
                        if let Some(p) = previous {
                            let _ = p.await;
                        }
                        webhook::send(url, changes).await;
                    }));
                }
            }
            _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => return,
        }
    }
}

#[cfg(test)]
mod tests;
