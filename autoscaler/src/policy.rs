//! The policy engine: policies (files and labels) and the pure decision core.
//!
//! # Using it from a control loop
//!
//! ```text
//! let policy = parse_policy("web.yaml", &text)?;           // or policy_from_labels / merge_file_and_labels
//! let mut history = History::default();                    // one per service, kept across ticks
//! every tick:
//!     let obs: Observation = /* built from the metric store: replicas, readiness, samples */;
//!     let now = Timestamp::from_system_time(SystemTime::now());   // the shell owns the clock
//!     let decision = decide(&policy, &obs, &history, now);
//!     /* scale the service to decision.desired, log decision.reason */
//!     history.record(&policy, &decision, now);
//! ```
//!
//! The loop, not [`decide`], applies three settings of [`Policy`]: `fallback` (after `after` consecutive
//! ticks whose metrics could not be read, scale to `replicas`), `initialization` (mark replicas started
//! less than this ago as not ready in the [`Observation`]) and `interval` (this service's tick period,
//! else the loop's own).
//!
//! [`decide`] reads nothing but its arguments: the same inputs give the same [`Decision`], which is what
//! makes scenario tests and `plimsoll simulate` trustworthy. Semantics mirror the Kubernetes HPA
//! (`replica_calculator.go` for metric votes, `horizontal.go` for behavior); see each module.

mod behavior;
mod calc;
mod decide;
mod files;
mod labels;
mod model;
mod observation;
mod parse;
mod predict;
mod selector;
mod time;

#[cfg(test)]
mod testutil;

pub use behavior::{History, LoadSample, TimedReplicas, LOAD_RESOLUTION, LOAD_RETENTION};
pub use calc::{MetricDetail, MetricStatus};
pub use decide::{decide, recommend, Decision, Reason};
pub use files::{is_node_policy, policy_files, PolicyDir};
pub use labels::{merge_file_and_labels, policy_from_labels, Conflict};
pub(crate) use model::serialize_duration;
pub use model::{
    Behavior, Fallback, MetricSpec, Policy, PredictMethod, Predictive, RateLimit, RatePolicy, Read,
    ScalingRules, Scope, Select, SeriesQuery, Target, Tolerance, DEFAULT_HORIZON,
    DEFAULT_SCALE_DOWN_STABILIZATION, DEFAULT_TOLERANCE, MAX_INTERVAL, MAX_RATE_WINDOW,
    MIN_INTERVAL, MIN_RATE_WINDOW,
};
pub use observation::{Missing, Observation, ReplicaObservation, Sample};
pub use parse::{parse_policy, parse_policy_file, Diagnostic, Location, PolicyError};
pub use predict::{forecast, interpolate, ramp, TREND_WINDOW};
pub use selector::{check_project_name, PolicyFile, Selector, TargetKind};
pub use time::Timestamp;
