//! The Docker actuator: Swarm services through the service API, Compose services by container labels.

mod compose;
mod swarm;

use bollard::Docker;

use super::actuator::{Actuator, ActuatorError};
use super::target::{TargetId, TargetInfo, TargetState};

/// Scales Swarm and Compose services on one Docker engine.
pub struct DockerActuator {
    socket: String,
    /// Connected (API version agreed) on first use, so the loop starts and holds while the engine is down.
    docker: tokio::sync::OnceCell<Docker>,
}

impl DockerActuator {
    /// An actuator for the engine at the unix socket `socket`; nothing is connected yet.
    pub fn new(socket: &str) -> Self {
        Self {
            socket: socket.to_string(),
            docker: tokio::sync::OnceCell::new(),
        }
    }

    async fn docker(&self) -> Result<&Docker, ActuatorError> {
        self.docker
            .get_or_try_init(|| plimsoll_collector::sources::docker::connect(&self.socket))
            .await
            .map_err(|e| ActuatorError::Unreachable(e.to_string()))
    }
}

/// Maps a bollard error; connection-level failures become `Unreachable` so the loop can tell them apart.
pub(crate) fn docker_error(target: &TargetId, e: bollard::errors::Error) -> ActuatorError {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError {
            status_code: 404, ..
        } => ActuatorError::NotFound {
            target: target.to_string(),
        },
        E::DockerResponseServerError {
            status_code,
            message,
        } => ActuatorError::Failed {
            target: target.to_string(),
            message: format!("{status_code}: {message}"),
        },
        other => ActuatorError::Unreachable(other.to_string()),
    }
}

impl Actuator for DockerActuator {
    async fn targets(&self) -> Result<Vec<TargetInfo>, ActuatorError> {
        let docker = self.docker().await?;
        let mut all = swarm::targets(docker).await?;
        all.extend(compose::targets(docker).await?);
        Ok(all)
    }

    async fn observe(&self, target: &TargetId) -> Result<TargetState, ActuatorError> {
        let docker = self.docker().await?;
        match target {
            TargetId::Swarm { service } => swarm::observe(docker, target, service).await,
            TargetId::Compose { project, service } => {
                compose::observe(docker, target, project, service).await
            }
        }
    }

    async fn scale(&self, target: &TargetId, replicas: u32) -> Result<(), ActuatorError> {
        let docker = self.docker().await?;
        match target {
            TargetId::Swarm { service } => swarm::scale(docker, target, service, replicas).await,
            TargetId::Compose { project, service } => {
                compose::scale(docker, target, project, service, replicas).await
            }
        }
    }
}
