//! Compose services: the containers sharing `com.docker.compose.project` and `com.docker.compose.service`.
//!
//! Scaled up with clones of a running replica labelled `plimsoll.managed=true`, scaled down by
//! removing the newest of those. Every fact lives in the engine (labels, states, deterministic names),
//! so a restarted autoscaler finishes what a crashed one began: no orphans, no duplicates.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, ContainerSummaryStateEnum,
    EndpointSettings, HealthStatusEnum, HostConfig, NetworkConnectRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use tokio::task::JoinSet;

use super::docker_error;
use crate::control::actuator::ActuatorError;
use crate::control::source::parse_docker_time;
use crate::control::target::{Health, Replica, TargetId, TargetInfo, TargetState};

const PROJECT: &str = "com.docker.compose.project";
const SERVICE: &str = "com.docker.compose.service";
const ONEOFF: &str = "com.docker.compose.oneoff";
const NUMBER: &str = "com.docker.compose.container-number";
/// Marks the containers this actuator created: the only ones it ever removes.
const MANAGED: &str = "plimsoll.managed";
/// The engine's own default when a container sets no stop timeout.
const DEFAULT_STOP_TIMEOUT_SECS: i64 = 10;

/// A container of a Compose service, as the list API shows it.
struct Member {
    id: String,
    state: ContainerSummaryStateEnum,
    managed: bool,
    /// Seconds since the epoch.
    created: i64,
    number: u32,
    labels: HashMap<String, String>,
}

impl Member {
    /// None for one-off containers (`docker compose run`) and for answers without an id or state.
    fn from_summary(c: ContainerSummary) -> Option<Member> {
        let labels = c.labels.unwrap_or_default();
        if labels
            .get(ONEOFF)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return None;
        }
        Some(Member {
            id: c.id?,
            state: c.state?,
            managed: labels.get(MANAGED).is_some_and(|v| v == "true"),
            created: c.created.unwrap_or(0),
            number: labels.get(NUMBER).and_then(|n| n.parse().ok()).unwrap_or(0),
            labels,
        })
    }

    fn running(&self) -> bool {
        self.state == ContainerSummaryStateEnum::RUNNING
    }

    /// Ours, created but never started: work a crash left unfinished.
    fn pending(&self) -> bool {
        self.managed && self.state == ContainerSummaryStateEnum::CREATED
    }

    /// A replica the service runs or will run once its pending start is done.
    fn counts(&self) -> bool {
        matches!(
            self.state,
            ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING
        ) || self.pending()
    }

    /// Ours and finished: never to run again, so removed.
    fn leftover(&self) -> bool {
        self.managed
            && matches!(
                self.state,
                ContainerSummaryStateEnum::EXITED | ContainerSummaryStateEnum::DEAD
            )
    }
}

/// A container's `State.Health.Status`.
fn health(status: HealthStatusEnum) -> Health {
    match status {
        HealthStatusEnum::STARTING => Health::Starting,
        HealthStatusEnum::HEALTHY => Health::Healthy,
        HealthStatusEnum::UNHEALTHY => Health::Unhealthy,
        HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => Health::None,
    }
}

/// Maps a bollard error with what was being done; connection problems stay `Unreachable`.
fn failed(target: &TargetId, what: &str, e: BollardError) -> ActuatorError {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => ActuatorError::Failed {
            target: target.to_string(),
            message: format!("{what}: {status_code}: {message}"),
        },
        other => docker_error(target, other),
    }
}

async fn list(docker: &Docker, labels: Vec<String>) -> Result<Vec<Member>, BollardError> {
    let filters = HashMap::from([("label".to_string(), labels)]);
    let opts = ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..Default::default()
    };
    Ok(docker
        .list_containers(Some(opts))
        .await?
        .into_iter()
        .filter_map(Member::from_summary)
        .collect())
}

async fn members(
    docker: &Docker,
    target: &TargetId,
    project: &str,
    service: &str,
) -> Result<Vec<Member>, ActuatorError> {
    list(
        docker,
        vec![
            format!("{PROJECT}={project}"),
            format!("{SERVICE}={service}"),
        ],
    )
    .await
    .map_err(|e| failed(target, "listing containers", e))
}

async fn inspect(
    docker: &Docker,
    target: &TargetId,
    id: &str,
) -> Result<ContainerInspectResponse, ActuatorError> {
    docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| failed(target, &format!("inspecting container {id}"), e))
}

/// Every service with a container in any state. Its labels are those of a running replica, preferably
/// one Compose created (it carries the compose file's labels as written), without our own marker,
/// which is no policy label.
pub(super) async fn targets(docker: &Docker) -> Result<Vec<TargetInfo>, ActuatorError> {
    let all = list(docker, vec![PROJECT.to_string(), SERVICE.to_string()])
        .await
        .map_err(|e| ActuatorError::Unreachable(format!("listing Compose containers: {e}")))?;
    let mut best: BTreeMap<(String, String), Member> = BTreeMap::new();
    let rank = |m: &Member| (!m.running(), m.managed);
    for m in all {
        let (Some(project), Some(service)) = (m.labels.get(PROJECT), m.labels.get(SERVICE)) else {
            continue;
        };
        let key = (project.clone(), service.clone());
        if best.get(&key).is_none_or(|b| rank(&m) < rank(b)) {
            best.insert(key, m);
        }
    }
    Ok(best
        .into_iter()
        .map(|((project, service), m)| {
            let labels = m.labels.into_iter().filter(|(k, _)| k != MANAGED).collect();
            TargetInfo {
                id: TargetId::Compose { project, service },
                labels,
            }
        })
        .collect())
}

pub(super) async fn observe(
    docker: &Docker,
    target: &TargetId,
    project: &str,
    service: &str,
) -> Result<TargetState, ActuatorError> {
    let mut members = members(docker, target, project, service).await?;
    if members.is_empty() {
        return Err(ActuatorError::NotFound {
            target: target.to_string(),
        });
    }
    members.sort_by_key(|m| (m.number, m.created));
    let mut replicas = Vec::new();
    let mut pending = 0;
    for m in members.iter().filter(|m| m.counts()) {
        let (started_at, health) = if m.running() {
            match docker
                .inspect_container(&m.id, None::<InspectContainerOptions>)
                .await
            {
                Ok(c) => {
                    let state = c.state.unwrap_or_default();
                    let health = state
                        .health
                        .and_then(|h| h.status)
                        .map_or(Health::None, health);
                    let started = state.started_at.as_deref().and_then(parse_docker_time);
                    (started, health)
                }
                // Removed since the listing: not a replica any more.
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => continue,
                Err(e) => return Err(failed(target, &format!("inspecting container {}", m.id), e)),
            }
        } else {
            (None, Health::None)
        };
        pending += u32::from(m.pending());
        replicas.push(Replica {
            id: m.id.clone(),
            container_id: Some(m.id.clone()),
            running: m.running(),
            started_at,
            health,
        });
    }
    Ok(TargetState {
        spec_replicas: replicas.len() as u32,
        replicas,
        updating: false,
        pending,
        cpu_reservation_cores: None,
        memory_reservation_bytes: None,
    })
}

pub(super) async fn scale(
    docker: &Docker,
    target: &TargetId,
    project: &str,
    service: &str,
    replicas: u32,
) -> Result<(), ActuatorError> {
    let members = members(docker, target, project, service).await?;
    if members.is_empty() {
        return Err(ActuatorError::NotFound {
            target: target.to_string(),
        });
    }
    let leftovers: Vec<String> = members
        .iter()
        .filter(|m| m.leftover())
        .map(|m| m.id.clone())
        .collect();
    stop_and_remove_all(docker, target, leftovers).await?;

    // Oldest first, so the newest are at the end.
    let mut counted: Vec<&Member> = members.iter().filter(|m| m.counts()).collect();
    counted.sort_by_key(|m| (m.created, m.number));
    let want = replicas as usize;
    if counted.len() > want {
        let excess = counted.len() - want;
        let victims: Vec<String> = counted
            .iter()
            .rev()
            .filter(|m| m.managed)
            .take(excess)
            .map(|m| m.id.clone())
            .collect();
        stop_and_remove_all(docker, target, victims.clone()).await?;
        if victims.len() < excess {
            return Err(ActuatorError::Failed {
                target: target.to_string(),
                message: format!(
                    "cannot scale to {replicas}: {} replicas were not created by Plimsoll (no {MANAGED} label) and are left \
                     running; lower them with docker compose",
                    counted.len() - victims.len()
                ),
            });
        }
        counted.retain(|m| !victims.contains(&m.id));
    }

    // A running replica to copy; the ones Compose made carry the compose file's configuration first-hand.
    let source = match counted
        .iter()
        .filter(|m| m.running())
        .min_by_key(|m| m.managed)
    {
        Some(m) => Some(inspect(docker, target, &m.id).await?),
        None => None,
    };
    let endpoints = source
        .as_ref()
        .map(|s| endpoints(s, service))
        .unwrap_or_default();
    for m in counted.iter().filter(|m| m.pending()) {
        finish(docker, target, &m.id, &endpoints).await?;
    }
    if counted.len() >= want {
        return Ok(());
    }
    let Some(source) = source else {
        return Err(ActuatorError::Failed {
            target: target.to_string(),
            message: format!("cannot scale to {replicas}: no running replica to clone"),
        });
    };
    let first = 1 + members.iter().map(|m| m.number).max().unwrap_or(0);
    for number in first..first + (want - counted.len()) as u32 {
        create_clone(
            docker, target, project, service, &source, &endpoints, number,
        )
        .await?;
    }
    Ok(())
}

/// Creates and starts replica `number`. The name is deterministic, so a retry after a crash meets the
/// container it made before (409) and finishes it instead of making a second one.
async fn create_clone(
    docker: &Docker,
    target: &TargetId,
    project: &str,
    service: &str,
    source: &ContainerInspectResponse,
    endpoints: &[(String, EndpointSettings)],
    number: u32,
) -> Result<(), ActuatorError> {
    let name = format!("{project}-{service}-{number}");
    let body = clone_body(source, endpoints, number);
    let opts = CreateContainerOptions {
        name: Some(name.clone()),
        ..Default::default()
    };
    let id = match docker.create_container(Some(opts), body).await {
        Ok(created) => created.id,
        Err(BollardError::DockerResponseServerError {
            status_code: 409, ..
        }) => {
            let existing = inspect(docker, target, &name).await?;
            let labels = existing.config.as_ref().and_then(|c| c.labels.as_ref());
            let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
            if label(PROJECT) != Some(project) || label(SERVICE) != Some(service) {
                return Err(ActuatorError::Failed {
                    target: target.to_string(),
                    message: format!(
                        "container name {name} is taken by a container outside the service"
                    ),
                });
            }
            existing.id.unwrap_or(name)
        }
        Err(e) => return Err(failed(target, &format!("creating {name}"), e)),
    };
    finish(docker, target, &id, endpoints).await
}

/// Connects the networks a replica lacks (only one can be given at creation on older engines, so a
/// crash can leave a created container with fewer) and starts it.
async fn finish(
    docker: &Docker,
    target: &TargetId,
    id: &str,
    endpoints: &[(String, EndpointSettings)],
) -> Result<(), ActuatorError> {
    let c = inspect(docker, target, id).await?;
    let attached = c
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    for (network, endpoint) in endpoints.iter().filter(|(n, _)| !attached.contains_key(n)) {
        let req = NetworkConnectRequest {
            container: id.to_string(),
            endpoint_config: Some(endpoint.clone()),
        };
        docker.connect_network(network, req).await.map_err(|e| {
            failed(
                target,
                &format!("connecting container {id} to network {network}"),
                e,
            )
        })?;
    }
    docker
        .start_container(id, None::<StartContainerOptions>)
        .await
        .map_err(|e| failed(target, &format!("starting container {id}"), e))
}

/// The create request of a clone: the source's configuration, our labels, and its host configuration
/// without what cannot be shared between two containers.
fn clone_body(
    source: &ContainerInspectResponse,
    endpoints: &[(String, EndpointSettings)],
    number: u32,
) -> ContainerCreateBody {
    let config = source.config.clone().unwrap_or_default();
    let mut labels = config.labels.unwrap_or_default();
    labels.insert(MANAGED.to_string(), "true".to_string());
    labels.insert(NUMBER.to_string(), number.to_string());
    let host_config = source.host_config.clone().map(shareable);
    let mode = host_config
        .as_ref()
        .and_then(|h| h.network_mode.as_deref())
        .unwrap_or("default");
    // One network at creation (all an API 1.41 engine takes); `finish` connects the others.
    let primary = endpoints
        .iter()
        .find(|(name, ep)| is_network_mode(mode, name, ep))
        .cloned();
    ContainerCreateBody {
        // The image as the compose file names it, as `docker compose up --scale` would.
        image: config.image,
        cmd: config.cmd,
        entrypoint: config.entrypoint,
        env: config.env,
        labels: Some(labels),
        healthcheck: config.healthcheck,
        stop_signal: config.stop_signal,
        stop_timeout: config.stop_timeout,
        user: config.user,
        working_dir: config.working_dir,
        exposed_ports: config.exposed_ports,
        // Anonymous volumes: each clone gets its own, as with `--scale`.
        volumes: config.volumes,
        tty: config.tty,
        open_stdin: config.open_stdin,
        host_config,
        networking_config: primary.map(|p| NetworkingConfig {
            endpoints_config: Some(HashMap::from([p])),
        }),
        ..Default::default()
    }
}

/// A host configuration a second container can be created with.
fn shareable(mut hc: HostConfig) -> HostConfig {
    // A host port can be bound only once; bindings to an ephemeral port (none given) stay.
    if let Some(ports) = hc.port_bindings.as_mut() {
        for bindings in ports.values_mut().flatten() {
            bindings.retain(|b| {
                b.host_port
                    .as_deref()
                    .is_none_or(|p| p.is_empty() || p == "0")
            });
        }
        ports.retain(|_, b| b.as_ref().is_some_and(|b| !b.is_empty()));
    }
    // Inspect shows links as "/target:/this-container/alias"; create takes "target:alias".
    if let Some(links) = hc.links.as_mut() {
        for link in links.iter_mut() {
            if let Some((to, alias)) = link.split_once(':') {
                *link = format!(
                    "{}:{}",
                    to.trim_start_matches('/'),
                    alias.rsplit('/').next().unwrap_or(alias)
                );
            }
        }
    }
    // The CLI's --cidfile: a file the CLI wrote for the source.
    hc.container_id_file = None;
    hc
}

/// Whether network `name` is the one `network_mode` names ("default" is the default bridge).
fn is_network_mode(mode: &str, name: &str, ep: &EndpointSettings) -> bool {
    mode == name
        || (mode == "default" && name == "bridge")
        || ep
            .network_id
            .as_deref()
            .is_some_and(|id| !mode.is_empty() && id.starts_with(mode))
}

/// The networks of the source as a clone joins them: the same aliases except the source's own, and the
/// service name as an alias, so the service's DNS name reaches every replica. The default bridge takes
/// no aliases; host, none and another container's namespace have no endpoints to copy.
fn endpoints(source: &ContainerInspectResponse, service: &str) -> Vec<(String, EndpointSettings)> {
    let mode = source
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.as_deref())
        .unwrap_or("default");
    if mode == "host" || mode == "none" || mode.starts_with("container:") {
        return Vec::new();
    }
    let id = source.id.as_deref().unwrap_or_default();
    let name = source
        .name
        .as_deref()
        .unwrap_or_default()
        .trim_start_matches('/');
    // The engine adds the short id as an alias of its own; that one names the source, not the service.
    let own = |a: &str| a == name || (a.len() >= 12 && id.starts_with(a));
    let networks = source
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref());
    networks
        .into_iter()
        .flatten()
        .map(|(network, ep)| {
            let aliases = (network != "bridge").then(|| {
                let mut a: Vec<String> = ep
                    .aliases
                    .iter()
                    .flatten()
                    .filter(|a| !own(a))
                    .cloned()
                    .collect();
                if !a.iter().any(|a| a == service) {
                    a.push(service.to_string());
                }
                a
            });
            let settings = EndpointSettings {
                aliases,
                links: ep.links.clone(),
                driver_opts: ep.driver_opts.clone(),
                network_id: ep.network_id.clone(),
                ..Default::default()
            };
            (network.clone(), settings)
        })
        .collect()
}

/// Stops (gracefully, within each container's stop timeout) and removes containers, all at once.
async fn stop_and_remove_all(
    docker: &Docker,
    target: &TargetId,
    ids: Vec<String>,
) -> Result<(), ActuatorError> {
    let mut tasks = JoinSet::new();
    for id in ids {
        let (docker, target) = (docker.clone(), target.clone());
        tasks.spawn(async move { stop_and_remove(&docker, &target, &id).await });
    }
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let result = done.unwrap_or_else(|e| {
            Err(ActuatorError::Failed {
                target: target.to_string(),
                message: format!("removal task: {e}"),
            })
        });
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn stop_and_remove(
    docker: &Docker,
    target: &TargetId,
    id: &str,
) -> Result<(), ActuatorError> {
    let gone = |e: &BollardError| {
        matches!(
            e,
            BollardError::DockerResponseServerError {
                status_code: 404,
                ..
            }
        )
    };
    let c = match docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        Ok(c) => c,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(failed(target, &format!("inspecting container {id}"), e)),
    };
    let timeout = c
        .config
        .and_then(|c| c.stop_timeout)
        .filter(|t| *t >= 0)
        .unwrap_or(DEFAULT_STOP_TIMEOUT_SECS);
    let t = i32::try_from(timeout).unwrap_or(i32::MAX);
    // The request lasts as long as the grace period: give it that on top of the usual timeout.
    let patient = docker
        .clone()
        .with_timeout(docker.timeout() + Duration::from_secs(timeout as u64));
    match patient
        .stop_container(
            id,
            Some(StopContainerOptions {
                t: Some(t),
                signal: None,
            }),
        )
        .await
    {
        Ok(()) => {}
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(failed(target, &format!("stopping container {id}"), e)),
    }
    // Its anonymous volumes go with it: nothing else will ever use them.
    let opts = RemoveContainerOptions {
        v: true,
        force: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(opts)).await {
        Ok(()) => Ok(()),
        Err(e) if gone(&e) => Ok(()),
        // Another remover got there first.
        Err(BollardError::DockerResponseServerError {
            status_code: 409,
            message,
        }) if message.contains("in progress") => Ok(()),
        Err(e) => Err(failed(target, &format!("removing container {id}"), e)),
    }
}
