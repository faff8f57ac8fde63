//! Swarm services: scaled by sending back the full inspected spec with only the replica count changed,
//! at the inspected version (a partial spec is rejected; a stale version is retried).

use std::collections::HashMap;

use bollard::models::{ServiceUpdateStatusStateEnum, Task, TaskState};
use bollard::query_parameters::{
    InspectServiceOptions, ListServicesOptions, ListTasksOptions, UpdateServiceOptions,
};
use bollard::Docker;

use super::docker_error;
use crate::control::actuator::ActuatorError;
use crate::control::source::parse_docker_time;
use crate::control::target::{Health, Replica, TargetId, TargetInfo, TargetState};

/// Attempts of an update that races with another writer of the same service.
const UPDATE_ATTEMPTS: usize = 5;

/// Replicated services; none when this engine is not a Swarm manager.
pub(super) async fn targets(docker: &Docker) -> Result<Vec<TargetInfo>, ActuatorError> {
    let services = match docker.list_services(None::<ListServicesOptions>).await {
        Ok(s) => s,
        // 503 "This node is not a swarm manager": nothing to scale here.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 503, ..
        }) => return Ok(Vec::new()),
        Err(e) => return Err(ActuatorError::Unreachable(e.to_string())),
    };
    Ok(services
        .into_iter()
        .filter_map(|s| {
            let spec = s.spec?;
            spec.mode.as_ref()?.replicated.as_ref()?;
            Some(TargetInfo {
                id: TargetId::Swarm {
                    service: spec.name?,
                },
                labels: spec.labels.unwrap_or_default().into_iter().collect(),
            })
        })
        .collect())
}

pub(super) async fn observe(
    docker: &Docker,
    target: &TargetId,
    service: &str,
) -> Result<TargetState, ActuatorError> {
    let svc = docker
        .inspect_service(service, None::<InspectServiceOptions>)
        .await
        .map_err(|e| docker_error(target, e))?;
    let spec = svc.spec.as_ref();
    let spec_replicas = spec
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(0)
        .max(0) as u32;
    let updating = matches!(
        svc.update_status.as_ref().and_then(|u| u.state),
        Some(ServiceUpdateStatusStateEnum::UPDATING)
            | Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED)
    );
    let reservations = spec
        .and_then(|s| s.task_template.as_ref())
        .and_then(|t| t.resources.as_ref())
        .and_then(|r| r.reservations.as_ref());
    let filters = HashMap::from([
        ("service".to_string(), vec![service.to_string()]),
        ("desired-state".to_string(), vec!["running".to_string()]),
    ]);
    let tasks = docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|e| docker_error(target, e))?;
    let replicas = tasks.into_iter().filter_map(replica).collect();
    Ok(TargetState {
        spec_replicas,
        replicas,
        updating,
        pending: 0,
        cpu_reservation_cores: reservations
            .and_then(|r| r.nano_cpus)
            .filter(|n| *n > 0)
            .map(|n| n as f64 / 1e9),
        memory_reservation_bytes: reservations
            .and_then(|r| r.memory_bytes)
            .filter(|m| *m > 0)
            .map(|m| m as f64),
    })
}

/// One task as a replica. Swarm reports a task with a health check as `starting` until the check passes,
/// and replaces it once the check fails: the task state is its health. A `starting` task's container
/// runs (and uses CPU) although the task is not `running`: its start is kept, so that one whose check
/// keeps failing past the policy's `initialization` counts as failing it (see `plan::observation`).
fn replica(t: Task) -> Option<Replica> {
    let status = t.status?;
    let running = status.state == Some(TaskState::RUNNING);
    let starting = status.state == Some(TaskState::STARTING);
    Some(Replica {
        id: t.id?,
        container_id: status
            .container_status
            .and_then(|c| c.container_id)
            .filter(|c| !c.is_empty()),
        running,
        started_at: if running || starting {
            status.timestamp.as_deref().and_then(parse_docker_time)
        } else {
            None
        },
        health: if starting {
            Health::Starting
        } else {
            Health::None
        },
    })
}

pub(super) async fn scale(
    docker: &Docker,
    target: &TargetId,
    service: &str,
    replicas: u32,
) -> Result<(), ActuatorError> {
    let mut last = None;
    for _ in 0..UPDATE_ATTEMPTS {
        let svc = docker
            .inspect_service(service, None::<InspectServiceOptions>)
            .await
            .map_err(|e| docker_error(target, e))?;
        let version = svc
            .version
            .and_then(|v| v.index)
            .ok_or_else(|| ActuatorError::Failed {
                target: target.to_string(),
                message: "service has no version".into(),
            })?;
        let mut spec = svc.spec.ok_or_else(|| ActuatorError::Failed {
            target: target.to_string(),
            message: "service has no spec".into(),
        })?;
        let Some(rep) = spec.mode.as_mut().and_then(|m| m.replicated.as_mut()) else {
            return Err(ActuatorError::Failed {
                target: target.to_string(),
                message: "not a replicated service".into(),
            });
        };
        if rep.replicas == Some(i64::from(replicas)) {
            return Ok(());
        }
        rep.replicas = Some(i64::from(replicas));
        let opts = UpdateServiceOptions {
            version: version as i32,
            ..Default::default()
        };
        match docker.update_service(service, spec, opts, None).await {
            Ok(_) => return Ok(()),
            // Someone else updated the service since we inspected it: inspect again.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message,
            }) if message.contains("out of sequence") => {
                last = Some(message);
            }
            Err(e) => return Err(docker_error(target, e)),
        }
    }
    Err(ActuatorError::Failed {
        target: target.to_string(),
        message: format!("update kept racing: {}", last.unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerStatus, TaskStatus};

    use super::*;

    fn task(state: TaskState) -> Task {
        Task {
            id: Some("t1".into()),
            status: Some(TaskStatus {
                state: Some(state),
                timestamp: Some("2026-11-29T14:00:00.5Z".into()),
                container_status: Some(ContainerStatus {
                    container_id: Some("c1".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_starting_task_keeps_its_start_and_container() {
        let started = parse_docker_time("2026-11-29T14:00:00.5Z");
        assert!(started.is_some());
        let r = replica(task(TaskState::STARTING)).unwrap();
        assert_eq!(
            (r.running, r.health, r.started_at, r.container_id.as_deref()),
            (false, Health::Starting, started, Some("c1"))
        );
        let r = replica(task(TaskState::RUNNING)).unwrap();
        assert_eq!(
            (r.running, r.health, r.started_at),
            (true, Health::None, started)
        );
        let r = replica(task(TaskState::PREPARING)).unwrap();
        assert_eq!(
            (r.running, r.health, r.started_at),
            (false, Health::None, None)
        );
    }
}
