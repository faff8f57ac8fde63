//! The swarm as the node loop reads and changes it, behind [`SwarmApi`] so that the loop is tested with
//! a fake; [`DockerSwarm`] is the real one (a manager's Docker API through bollard).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use bollard::models::{
    NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState as DockerNodeState, TaskState,
};
use bollard::query_parameters::{
    DeleteNodeOptions, ListNodesOptions, ListServicesOptions, ListTasksOptions, UpdateNodeOptions,
};
use bollard::Docker;

use super::cluster::{
    Availability, Cluster, NodeState, NodeView, Resources, Role, TaskNeeds, TaskView,
};
use super::placement::Constraint;
use crate::control::parse_docker_time;

#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error("Docker engine unreachable: {0}")]
    Unreachable(String),
    #[error("{what}: {message}")]
    Failed { what: String, message: String },
}

/// What the node loop needs from a Swarm manager.
pub trait SwarmApi: Send + Sync + 'static {
    /// Every node, and every task meant to run.
    fn cluster(&self) -> impl Future<Output = Result<Cluster, SwarmError>> + Send;
    /// The worker join token and the manager address new nodes join (`manager` if given).
    fn join_info(
        &self,
        manager: Option<String>,
    ) -> impl Future<Output = Result<(String, String), SwarmError>> + Send;
    fn set_availability(
        &self,
        node: &str,
        availability: Availability,
    ) -> impl Future<Output = Result<(), SwarmError>> + Send;
    fn add_label(
        &self,
        node: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), SwarmError>> + Send;
    /// `docker node rm --force`; a node already gone is fine.
    fn remove_node(&self, node: &str) -> impl Future<Output = Result<(), SwarmError>> + Send;
}

/// The swarm of the engine at a unix socket (it must be a manager).
pub struct DockerSwarm {
    socket: String,
    docker: tokio::sync::OnceCell<Docker>,
}

impl DockerSwarm {
    pub fn new(socket: &str) -> Self {
        DockerSwarm {
            socket: socket.to_string(),
            docker: tokio::sync::OnceCell::new(),
        }
    }

    async fn docker(&self) -> Result<&Docker, SwarmError> {
        self.docker
            .get_or_try_init(|| plimsoll_collector::sources::docker::connect(&self.socket))
            .await
            .map_err(|e| SwarmError::Unreachable(e.to_string()))
    }

    /// Changes a node's spec at its current version (retried once if another writer raced us).
    async fn update_spec(
        &self,
        node: &str,
        change: impl Fn(&mut bollard::models::NodeSpec),
    ) -> Result<(), SwarmError> {
        let docker = self.docker().await?;
        let mut last = None;
        for _ in 0..3 {
            let n = docker
                .inspect_node(node)
                .await
                .map_err(|e| failed(&format!("inspecting node {node}"), e))?;
            let version = n.version.and_then(|v| v.index).unwrap_or(0) as i64;
            let mut spec = n.spec.unwrap_or_default();
            change(&mut spec);
            match docker
                .update_node(node, spec, UpdateNodeOptions { version })
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if e.to_string().contains("out of sequence") => last = Some(e),
                Err(e) => return Err(failed(&format!("updating node {node}"), e)),
            }
        }
        Err(failed(
            &format!("updating node {node}"),
            last.expect("a failed attempt"),
        ))
    }
}

fn failed(what: &str, e: bollard::errors::Error) -> SwarmError {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            message,
            status_code,
        } => SwarmError::Failed {
            what: what.to_string(),
            message: format!("{status_code}: {message}"),
        },
        other => SwarmError::Unreachable(other.to_string()),
    }
}

impl SwarmApi for DockerSwarm {
    async fn cluster(&self) -> Result<Cluster, SwarmError> {
        let docker = self.docker().await?;
        let nodes = docker
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|e| failed("listing nodes", e))?;
        let services = docker
            .list_services(None::<ListServicesOptions>)
            .await
            .map_err(|e| failed("listing services", e))?;
        let tasks = docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(HashMap::from([(
                    "desired-state".to_string(),
                    vec!["running".to_string()],
                )])),
            }))
            .await
            .map_err(|e| failed("listing tasks", e))?;
        // Service id -> (name, global).
        let services: HashMap<String, (String, bool)> = services
            .into_iter()
            .filter_map(|s| {
                let spec = s.spec?;
                let global = spec.mode.as_ref().is_some_and(|m| m.global.is_some());
                Some((s.id?, (spec.name.unwrap_or_default(), global)))
            })
            .collect();
        Ok(Cluster {
            nodes: nodes.into_iter().filter_map(node_view).collect(),
            tasks: tasks
                .into_iter()
                .filter_map(|t| task_view(t, &services))
                .collect(),
        })
    }

    async fn join_info(&self, manager: Option<String>) -> Result<(String, String), SwarmError> {
        let docker = self.docker().await?;
        let swarm = docker
            .inspect_swarm()
            .await
            .map_err(|e| failed("inspecting the swarm", e))?;
        let token = swarm
            .join_tokens
            .and_then(|t| t.worker)
            .ok_or_else(|| SwarmError::Failed {
                what: "inspecting the swarm".into(),
                message: "no worker join token (is this engine a manager?)".into(),
            })?;
        if let Some(m) = manager {
            return Ok((token, m));
        }
        let info = docker
            .info()
            .await
            .map_err(|e| failed("reading the engine's info", e))?;
        let swarm = info.swarm.unwrap_or_default();
        let me = swarm.node_id.unwrap_or_default();
        let addr = swarm
            .remote_managers
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.node_id.as_deref() == Some(me.as_str()))
            .and_then(|p| p.addr)
            .or_else(|| swarm.node_addr.map(|a| format!("{a}:2377")))
            .ok_or_else(|| SwarmError::Failed {
                what: "reading the engine's info".into(),
                message: "no manager address".into(),
            })?;
        Ok((token, addr))
    }

    async fn set_availability(
        &self,
        node: &str,
        availability: Availability,
    ) -> Result<(), SwarmError> {
        let a = match availability {
            Availability::Active => NodeSpecAvailabilityEnum::ACTIVE,
            Availability::Pause => NodeSpecAvailabilityEnum::PAUSE,
            Availability::Drain => NodeSpecAvailabilityEnum::DRAIN,
        };
        self.update_spec(node, |s| s.availability = Some(a)).await
    }

    async fn add_label(&self, node: &str, key: &str, value: &str) -> Result<(), SwarmError> {
        self.update_spec(node, |s| {
            s.labels
                .get_or_insert_with(HashMap::new)
                .insert(key.to_string(), value.to_string());
        })
        .await
    }

    async fn remove_node(&self, node: &str) -> Result<(), SwarmError> {
        let docker = self.docker().await?;
        match docker
            .delete_node(node, Some(DeleteNodeOptions { force: true }))
            .await
        {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(failed(&format!("removing node {node}"), e)),
        }
    }
}

fn node_view(n: bollard::models::Node) -> Option<NodeView> {
    let spec = n.spec.unwrap_or_default();
    let desc = n.description.unwrap_or_default();
    let status = n.status.unwrap_or_default();
    let resources = desc.resources.unwrap_or_default();
    let platform = desc.platform.unwrap_or_default();
    Some(NodeView {
        id: n.id?,
        hostname: desc.hostname.unwrap_or_default(),
        role: match spec.role {
            Some(NodeSpecRoleEnum::MANAGER) => Role::Manager,
            _ => Role::Worker,
        },
        state: match status.state {
            Some(DockerNodeState::READY) => NodeState::Ready,
            Some(DockerNodeState::DOWN) => NodeState::Down,
            Some(DockerNodeState::DISCONNECTED) => NodeState::Disconnected,
            _ => NodeState::Unknown,
        },
        availability: match spec.availability {
            Some(NodeSpecAvailabilityEnum::DRAIN) => Availability::Drain,
            Some(NodeSpecAvailabilityEnum::PAUSE) => Availability::Pause,
            _ => Availability::Active,
        },
        labels: spec.labels.unwrap_or_default().into_iter().collect(),
        engine_labels: desc
            .engine
            .and_then(|e| e.labels)
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        os: platform.os.unwrap_or_default(),
        arch: platform.architecture.unwrap_or_default(),
        addr: status.addr.unwrap_or_default(),
        resources: Resources {
            nano_cpus: resources.nano_cpus.unwrap_or(0),
            memory_bytes: resources.memory_bytes.unwrap_or(0),
        },
        created_at: n.created_at.as_deref().and_then(parse_docker_time),
    })
}

/// Swarm's message for a task no node can take ("no suitable node (insufficient resources on 2 nodes)").
const NO_SUITABLE_NODE: &str = "no suitable node";

fn task_view(
    t: bollard::models::Task,
    services: &HashMap<String, (String, bool)>,
) -> Option<TaskView> {
    let (service, global) = services.get(t.service_id.as_deref()?)?.clone();
    let status = t.status.unwrap_or_default();
    let spec = t.spec.unwrap_or_default();
    let reservations = spec
        .resources
        .and_then(|r| r.reservations)
        .unwrap_or_default();
    let placement = spec.placement.unwrap_or_default();
    let node_id = t.node_id.filter(|n| !n.is_empty());
    let state = status.state;
    let message = status.err.filter(|e| !e.is_empty());
    Some(TaskView {
        id: t.id?,
        service,
        global,
        unschedulable: node_id.is_none()
            && state == Some(TaskState::PENDING)
            && message
                .as_deref()
                .is_some_and(|m| m.starts_with(NO_SUITABLE_NODE)),
        running: state == Some(TaskState::RUNNING),
        node_id,
        message,
        needs: Arc::new(TaskNeeds {
            reservations: Resources {
                nano_cpus: reservations.nano_cpus.unwrap_or(0),
                memory_bytes: reservations.memory_bytes.unwrap_or(0),
            },
            constraints: placement
                .constraints
                .unwrap_or_default()
                .iter()
                .filter_map(|c| Constraint::parse(c))
                .collect(),
            max_replicas_per_node: placement.max_replicas.unwrap_or(0).max(0) as u64,
        }),
    })
}
