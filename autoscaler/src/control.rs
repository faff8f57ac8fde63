//! The control loop: level-triggered and idempotent, one task per target.
//!
//! Each tick a target's task reads the actual replicas from Docker ([`Actuator`]), their samples from
//! a [`MetricSource`], plans with the pure [`plan`] (which calls the policy engine's `decide`), acts
//! only on a difference, explains the outcome ([`DecisionRecord`]) and schedules the next tick. Errors
//! back off per target with jitter; a global cap bounds actions per minute; `--dry-run` never acts.

mod actuator;
mod api;
mod docker;
mod explain;
mod plan;
mod runner;
mod source;
mod target;

pub use actuator::{Actuator, ActuatorError};
pub use api::{router, ApiToken};
pub use docker::DockerActuator;
pub use explain::{Action, DecisionLog, DecisionRecord};
pub use plan::{observation, plan, Cause, Hold, Plan, SourceReading};
pub use runner::{ControlConfig, ControlState, Controller, PolicyEntry, PolicyOrigin};
pub use source::{
    parse_docker_time, CollectorsSource, ContainerSample, EmbeddedSource, MetricSource,
    PrometheusSource, SourceError,
};
pub use target::{Replica, TargetId, TargetInfo, TargetState};
