//! The control loop: level-triggered and idempotent, one task per target.
//!
//! Each tick a target's task reads the actual replicas from Docker ([`Actuator`]) and their samples
//! from a [`MetricSource`]; everything else is the pure step of `reconcile`: [`Memory::plan`] (which
//! calls [`plan`] and the policy engine's `decide`), [`intent`] (act, dry run or rate cap), then, after
//! the actuator's answer, [`Memory::settle`]: the [`DecisionRecord`] and when to run next. Errors back
//! off per target with jitter; a global cap bounds actions per minute; `--dry-run` never acts. The
//! fakes of `testing` run the same loop in paused time.

mod actuator;
mod api;
mod config;
mod docker;
mod explain;
mod plan;
mod reconcile;
mod resolve;
mod runner;
mod series;
mod source;
mod target;
#[cfg(test)]
pub(crate) mod testing;
mod topology;

pub use actuator::{Actuator, ActuatorError};
pub use api::{router, ApiToken};
pub use config::{show as show_duration, ConfigError, ControlConfig, Problem, Problems};
pub use docker::DockerActuator;
pub use explain::{Action, DecisionLog, DecisionRecord};
pub use plan::{observation, plan, Cause, Hold, Plan, SourceReading};
pub use reconcile::{
    backoff, intent, Acted, ActionBudget, Intent, Memory, Now, Step, MAX_BACKOFF, STALE_INTERVALS,
};
pub use resolve::{
    in_scope, resolve, FileReport, FileStatus, PolicyEntry, PolicyOrigin, Resolution,
};
pub use runner::{Clock, ControlState, Controller, SystemClock};
pub use source::{
    collectors, parse_docker_time, read, CollectorsSource, ContainerSample, EmbeddedSource,
    MetricRead, MetricSource, PrometheusSource, Readings, ReplicaRef, Request, SourceError,
};
pub use target::{Health, Replica, TargetId, TargetInfo, TargetState, STACK_LABEL};
