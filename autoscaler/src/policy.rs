//! The policy engine: policy files and labels, and (in later modules) the pure decision core.

mod labels;
mod model;
mod parse;

pub use labels::{merge_file_and_labels, policy_from_labels, Conflict};
pub use model::{
    Behavior, MetricSpec, Policy, Predictive, RateLimit, RatePolicy, ScalingRules, Select, Target,
    Tolerance, DEFAULT_HORIZON, DEFAULT_SCALE_DOWN_STABILIZATION, DEFAULT_TOLERANCE,
};
pub use parse::{parse_policy, Diagnostic, Location, PolicyError};
