//! Builders shared by the policy unit tests.

use std::collections::BTreeMap;
use std::time::Duration;

use super::model::{Behavior, MetricSpec, Policy, Predictive, Target, Tolerance};
use super::observation::{Observation, ReplicaObservation, Sample};

pub fn policy(min: u32, max: u32, metrics: &[(&str, Target)]) -> Policy {
    Policy {
        service: "web".into(),
        min,
        max,
        tolerance: Tolerance::default(),
        metrics: metrics
            .iter()
            .map(|(n, t)| MetricSpec::new(n.to_string(), *t))
            .collect(),
        behavior: Behavior::hpa_default(),
        predictive: Predictive::default(),
        fallback: None,
        initialization: Duration::ZERO,
        interval: None,
    }
}

pub fn obs(current: u32, replicas: Vec<ReplicaObservation>) -> Observation {
    Observation {
        service: "web".into(),
        current_replicas: current,
        replicas,
        service_metrics: BTreeMap::new(),
        missing: BTreeMap::new(),
    }
}

/// A ready replica using `used` of `capacity` for `metric`.
pub fn usage(id: &str, metric: &str, used: f64, capacity: f64) -> ReplicaObservation {
    replica(id, true, &[(metric, Sample::Usage { used, capacity })])
}

/// A ready replica reporting a plain value for `metric`.
pub fn value(id: &str, metric: &str, v: f64) -> ReplicaObservation {
    replica(id, true, &[(metric, Sample::Value(v))])
}

/// A replica without samples, with a known capacity for `metric`.
pub fn silent(id: &str, ready: bool, metric: &str, capacity: f64) -> ReplicaObservation {
    let mut r = replica(id, ready, &[]);
    r.capacity.insert(metric.to_string(), capacity);
    r
}

/// A replica failing its health check (not ready, `unhealthy`) using `used` of `capacity` for `metric`.
pub fn unhealthy(id: &str, metric: &str, used: f64, capacity: f64) -> ReplicaObservation {
    let mut r = replica(id, false, &[(metric, Sample::Usage { used, capacity })]);
    r.unhealthy = true;
    r
}

/// A replica still starting (not ready, not unhealthy) using `used` of `capacity` for `metric`.
pub fn starting(id: &str, metric: &str, used: f64, capacity: f64) -> ReplicaObservation {
    replica(id, false, &[(metric, Sample::Usage { used, capacity })])
}

pub fn replica(id: &str, ready: bool, samples: &[(&str, Sample)]) -> ReplicaObservation {
    ReplicaObservation {
        id: id.into(),
        ready,
        unhealthy: false,
        metrics: samples.iter().map(|(m, s)| (m.to_string(), *s)).collect(),
        capacity: BTreeMap::new(),
    }
}
