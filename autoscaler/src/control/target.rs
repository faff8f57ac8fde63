//! What the control loop scales: Swarm services and Compose services, and what it observes of them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::policy::{PolicyFile, TargetKind, Timestamp};

/// A scalable service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetId {
    /// A replicated Swarm service, by name.
    Swarm { service: String },
    /// The containers labelled `com.docker.compose.project` = project and `com.docker.compose.service` = service.
    Compose { project: String, service: String },
}

impl TargetId {
    /// The service name policies refer to.
    pub fn service(&self) -> &str {
        match self {
            TargetId::Swarm { service } | TargetId::Compose { service, .. } => service,
        }
    }

    pub fn kind(&self) -> TargetKind {
        match self {
            TargetId::Swarm { .. } => TargetKind::Swarm,
            TargetId::Compose { .. } => TargetKind::Compose,
        }
    }
}

/// The full identity as the API, logs and metric labels write it: `swarm/<service>` or
/// `compose/<project>/<service>` (neither names may contain a `/`).
impl FromStr for TargetId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            ["swarm", service] if !service.is_empty() => Ok(TargetId::Swarm {
                service: service.to_string(),
            }),
            ["compose", project, service] if !project.is_empty() && !service.is_empty() => {
                Ok(TargetId::Compose {
                    project: project.to_string(),
                    service: service.to_string(),
                })
            }
            _ => Err(format!(
                "{s:?} is not a target: expected swarm/SERVICE or compose/PROJECT/SERVICE"
            )),
        }
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetId::Swarm { service } => write!(f, "swarm/{service}"),
            TargetId::Compose { project, service } => write!(f, "compose/{project}/{service}"),
        }
    }
}

/// A target as discovery lists it, with the labels a policy may come from.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetInfo {
    pub id: TargetId,
    pub labels: BTreeMap<String, String>,
}

/// The label `docker stack deploy` puts on the services of a stack.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";

impl TargetInfo {
    /// The Compose project, or the Swarm stack of a service deployed with `docker stack deploy`.
    pub fn project(&self) -> Option<&str> {
        match &self.id {
            TargetId::Compose { project, .. } => Some(project),
            TargetId::Swarm { .. } => self.labels.get(STACK_LABEL).map(String::as_str),
        }
    }

    /// Whether the policy file `file` means this target: the same service name (for a Swarm stack,
    /// the full name `<stack>_<service>` or the name in the stack file) and no target field that
    /// says otherwise.
    pub fn matches(&self, file: &PolicyFile) -> bool {
        let (sel, name) = (&file.selector, file.policy.service.as_str());
        if sel.kind().is_some_and(|k| k != self.id.kind()) {
            return false;
        }
        match &self.id {
            TargetId::Compose { project, service } => {
                service == name && sel.project.as_ref().is_none_or(|p| p == project)
            }
            TargetId::Swarm { service } => match &sel.stack {
                None => service == name,
                Some(stack) => {
                    self.project() == Some(stack.as_str())
                        && (service == name || *service == format!("{stack}_{name}"))
                }
            },
        }
    }
}

/// One replica: a Swarm task or a Compose container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replica {
    /// Task id (Swarm) or container id (Compose).
    pub id: String,
    /// The container that runs it, once there is one.
    pub container_id: Option<String>,
    /// Running now (a task in state running, a container in state running).
    pub running: bool,
    /// When it started running, when known.
    pub started_at: Option<Timestamp>,
    /// Its health check, as the engine reports it.
    pub health: Health,
}

/// A replica's health check, read from Docker by the actuator (never from the metric source, so every
/// source judges readiness the same way).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No health check, or none the engine reports: readiness follows the running state alone.
    #[default]
    None,
    /// The check has not passed yet.
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    /// Whether the check lets the replica count as ready.
    pub fn allows_ready(self) -> bool {
        matches!(self, Health::None | Health::Healthy)
    }
}

/// What the actuator sees of a target at one instant. Level-triggered: read afresh every tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetState {
    /// Replicas the target is asked to run: the Swarm spec, or the Compose containers that exist to run.
    pub spec_replicas: u32,
    pub replicas: Vec<Replica>,
    /// A rolling update (or rollback) is in progress: scaling waits for it.
    pub updating: bool,
    /// Work the actuator left unfinished (e.g. a created but not started container after a crash);
    /// the loop asks the actuator to converge even when the count is right.
    pub pending: u32,
    /// Per-replica reservations, used as capacity where a container has no limit.
    pub cpu_reservation_cores: Option<f64>,
    pub memory_reservation_bytes: Option<f64>,
}

impl TargetState {
    /// Replicas running now.
    pub fn running(&self) -> u32 {
        self.replicas.iter().filter(|r| r.running).count() as u32
    }
}
