//! What the shell observed about one service at one instant: the input of a decision.
//!
//! The JSON form is the `plimsoll decide --snapshot` format:
//! `{"service": "web", "current_replicas": 3, "replicas": [{"id": "r1", "ready": true,
//!   "metrics": {"cpu": {"used": 0.6, "capacity": 2.0}, "orders_per_second": 12.5}}, ...]}`
//! plus an optional `"service_metrics": {"queue_depth": 340, "latency_p95": 0.31}` for service-level
//! targets (`value`, and `below` in seconds), and an optional `"missing": {"orders": "no_series"}`:
//! the metrics the source could not read, with why (see [`Missing`]).

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
    /// Metrics the source could not read at all this tick, by name, with why. A metric that is
    /// absent here and has no value is reported by the engine with its own reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub missing: BTreeMap<String, Missing>,
}

/// Why a metric has no value: the typed reason a decision record, log line and
/// `plimsoll_metric_missing_total{reason}` carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// The source has no series of this name matching the query's matchers (for a per-replica
    /// metric: none attributed to any replica of the service; for a service metric: none of the
    /// service at all).
    NoSeries,
    /// `rate` or `error_ratio` asked of series that are not counters.
    NotACounter,
    /// `quantile` asked of series that are not histograms.
    NotAHistogram,
    /// The metric source cannot serve this read (a quantile from a collector whose JSON API serves
    /// no histogram buckets: one older than the reader).
    NotServed,
    /// Series exist but none has a fresh sample (or, for a rate, two samples in its window).
    NoRecentSample,
    /// Per-replica: replicas reported the metric, but none that counts (ready, or for `cpu` only
    /// started and healthy).
    NoReadyReplica,
    /// A sample of the wrong shape for the target (a plain value for a utilization target...).
    WrongShape,
    /// Utilization: the replicas' capacity sums to zero.
    ZeroCapacity,
    /// Service-level: the observation holds no value for it and the source gave no reason.
    NoServiceValue,
}

impl Missing {
    pub fn as_str(self) -> &'static str {
        match self {
            Missing::NoSeries => "no_series",
            Missing::NotACounter => "not_a_counter",
            Missing::NotAHistogram => "not_a_histogram",
            Missing::NotServed => "not_served",
            Missing::NoRecentSample => "no_recent_sample",
            Missing::NoReadyReplica => "no_ready_replica",
            Missing::WrongShape => "wrong_shape",
            Missing::ZeroCapacity => "zero_capacity",
            Missing::NoServiceValue => "no_service_value",
        }
    }
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaObservation {
    pub id: String,
    /// False while starting (within its initialization window) or unhealthy.
    pub ready: bool,
    /// Not ready because it fails its health check, not merely because it is starting: the control loop
    /// sets it for a replica Docker reports `unhealthy`, or still `starting` after the policy's
    /// `initialization`. When no replica is ready, the CPU of such replicas is evidence of overload
    /// (see `calc`: `all_replicas_unready`); otherwise it is treated as any not-ready replica.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unhealthy: bool,
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
