//! `edgeward_scale_desired_replicas{service}` and
//! `edgeward_scale_current_replicas{service}`, registered in the node's
//! registry (for KEDA's Prometheus scaler or an HPA through prometheus-adapter),
//! plus the count of evaluations whose policies faulted.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabel {
    service: String,
    policy: String,
}

/// The scale loop's series.
pub struct ScaleGauges {
    desired: Family<ServiceLabel, Gauge>,
    current: Family<ServiceLabel, Gauge>,
    policy_desired: Family<PolicyLabel, Gauge>,
    evaluations: Family<ServiceLabel, Counter>,
}

impl ScaleGauges {
    pub fn register(registry: &mut Registry) -> Self {
        let g = Self {
            desired: Family::default(),
            current: Family::default(),
            policy_desired: Family::default(),
            evaluations: Family::default(),
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
        g
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
