//! `edgeward_scale_desired_replicas{service}` and
//! `edgeward_scale_current_replicas{service}`, registered in the node's
//! registry (for KEDA's Prometheus scaler or an HPA through prometheus-adapter),
//! plus the count of evaluations whose policies faulted, and the
//! scale-from-zero hold: `edgeward_scale_held_requests{service}` (held now),
//! `edgeward_scale_hold_seconds{service}` (how long each hold lasted) and
//! `edgeward_scale_hold_refused_total{service,reason="full"|"timeout"}`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabel {
    service: String,
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabel {
    service: String,
    reason: &'static str,
}

/// The scale loop's series.
pub struct ScaleGauges {
    desired: Family<ServiceLabel, Gauge>,
    current: Family<ServiceLabel, Gauge>,
    policy_desired: Family<PolicyLabel, Gauge>,
    evaluations: Family<ServiceLabel, Counter>,
    held: Family<ServiceLabel, Gauge>,
    hold_seconds: Family<ServiceLabel, Histogram>,
    hold_refused: Family<RefusedLabel, Counter>,
}

/// One service's scale-from-zero series, resolved once per generation. The
/// same service name gives the same series, so a reload keeps the count of
/// requests held across both generations.
#[derive(Clone, Debug)]
pub struct HoldHandles {
    /// Requests held now.
    pub held: Gauge,
    pub hold_seconds: Histogram,
    pub refused_full: Counter,
    pub refused_timeout: Counter,
}

impl ScaleGauges {
    pub fn register(registry: &mut Registry) -> Self {
        let g = Self {
            desired: Family::default(),
            current: Family::default(),
            policy_desired: Family::default(),
            evaluations: Family::default(),
            held: Family::default(),
            hold_seconds: Family::default(),
            hold_refused: Family::default(),
        };
        registry.register(
            "edgeward_scale_desired_replicas",
            "Replicas the scale loop decided a service should have",
            g.desired.clone(),
        );
        registry.register(
            "edgeward_scale_current_replicas",
            "Replicas a scaled service had at its last evaluation",
            g.current.clone(),
        );
        registry.register(
            "edgeward_scale_policy_desired_replicas",
            "Replicas each scaler policy asked for at its last evaluation",
            g.policy_desired.clone(),
        );
        registry.register(
            "edgeward_scale_evaluations",
            "Evaluations of a scaled service",
            g.evaluations.clone(),
        );
        registry.register(
            "edgeward_scale_held_requests",
            "Requests of a scale-from-zero service held now, waiting for a healthy endpoint",
            g.held.clone(),
        );
        registry.register(
            "edgeward_scale_hold_seconds",
            "How long requests of a scale-from-zero service were held",
            g.hold_seconds.clone(),
        );
        registry.register(
            "edgeward_scale_hold_refused",
            "Held requests answered 503: the queue was full, or the hold timed out",
            g.hold_refused.clone(),
        );
        g
    }

    /// The hold series of `service`; call at setup.
    pub fn hold_handles(&self, service: &str) -> HoldHandles {
        let l = ServiceLabel {
            service: service.to_owned(),
        };
        let refused = |reason| {
            self.hold_refused.get_or_create_owned(&RefusedLabel {
                service: service.to_owned(),
                reason,
            })
        };
        HoldHandles {
            held: self.held.get_or_create_owned(&l),
            hold_seconds: self.hold_seconds.get_or_create_owned(&l),
            refused_full: refused("full"),
            refused_timeout: refused("timeout"),
        }
    }

    /// Requests `service` holds now (0 when it never held any).
    pub fn held(&self, service: &str) -> u32 {
        let l = ServiceLabel {
            service: service.to_owned(),
        };
        // A missing series is not created just to be read.
        self.held
            .get(&l)
            .map_or(0, |g| u32::try_from(g.get()).unwrap_or(0))
    }

    pub fn set(&self, service: &str, current: u32, desired: u32, policies: &[(&str, u32)]) {
        let l = ServiceLabel {
            service: service.to_owned(),
        };
        self.current.get_or_create(&l).set(i64::from(current));
        self.desired.get_or_create(&l).set(i64::from(desired));
        self.evaluations.get_or_create(&l).inc();
        for (p, d) in policies {
            let l = PolicyLabel {
                service: service.to_owned(),
                policy: (*p).to_owned(),
            };
            self.policy_desired.get_or_create(&l).set(i64::from(*d));
        }
    }

    /// Drops the series of a service no longer scaled.
    pub fn forget(&self, service: &str) {
        let l = ServiceLabel {
            service: service.to_owned(),
        };
        self.current.remove(&l);
        self.desired.remove(&l);
    }
}
