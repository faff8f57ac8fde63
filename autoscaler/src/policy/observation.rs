//! What the shell observed about one service at one instant: the input of a decision.
//!
//! The JSON form is the `plimsoll decide --snapshot` format:
//! `{"service": "web", "current_replicas": 3, "replicas": [{"id": "r1", "ready": true,
//!   "metrics": {"cpu": {"used": 0.6, "capacity": 2.0}, "orders_per_second": 12.5}}, ...]}`
//! plus an optional `"service_metrics": {"queue_depth": 340, "latency_p95": 0.31}` for service-level
//! targets (`value`, and `below` in seconds).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    pub service: String,
    /// Replicas the service is currently asked to run (the Swarm spec), not the ones observed.
    pub current_replicas: u32,
    #[serde(default)]
    pub replicas: Vec<ReplicaObservation>,
    /// Service-level values by metric name: totals for `value` targets, seconds for `below` targets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaObservation {
    pub id: String,
    /// False while starting (within its initialization window) or unhealthy.
    pub ready: bool,
    #[serde(default)]
    pub metrics: BTreeMap<String, Sample>,
    /// Capacity per metric for replicas whose usage sample is absent (needed for utilization fallbacks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, f64>,
}

/// One replica's sample of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Sample {
    /// Usage against capacity, in the metric's unit (CPU cores, memory bytes).
    Usage { used: f64, capacity: f64 },
    /// A plain per-replica value (for `average` targets).
    Value(f64),
}
