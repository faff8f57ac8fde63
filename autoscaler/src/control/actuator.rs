//! The small trait behind which the control loop reaches Docker, so the loop's logic is tested with a fake.

use std::future::Future;

use super::target::{TargetId, TargetInfo, TargetState};

#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    #[error("Docker engine unreachable: {0}")]
    Unreachable(String),
    #[error("{target} not found")]
    NotFound { target: String },
    #[error("{target}: {message}")]
    Failed { target: String, message: String },
}

pub trait Actuator: Send + Sync + 'static {
    /// Every target this actuator can scale, with its labels.
    fn targets(&self) -> impl Future<Output = Result<Vec<TargetInfo>, ActuatorError>> + Send;

    /// The current state of one target.
    fn observe(
        &self,
        target: &TargetId,
    ) -> impl Future<Output = Result<TargetState, ActuatorError>> + Send;

    /// Brings the target to `replicas`, finishing any pending work. Idempotent: calling it again with
    /// the same count after a crash or a partial failure converges without duplicates.
    fn scale(
        &self,
        target: &TargetId,
        replicas: u32,
    ) -> impl Future<Output = Result<(), ActuatorError>> + Send;
}
