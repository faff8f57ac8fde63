//! What the node decision sees of the swarm: plain data the shell reads from the Docker API, so the
//! decision and the placement simulation are tested with hand-made clusters.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::placement::Constraint;
use crate::policy::Timestamp;

/// Every node of the swarm and every task that is meant to run.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub nodes: Vec<NodeView>,
    pub tasks: Vec<TaskView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Manager,
    Worker,
}

/// Swarm's `Status.State` of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Ready,
    Down,
    Disconnected,
    Unknown,
}

/// Swarm's `Spec.Availability` of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Active,
    Pause,
    Drain,
}

/// CPU in nano-CPUs and memory in bytes, as Swarm counts reservations and node resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Resources {
    pub nano_cpus: i64,
    pub memory_bytes: i64,
}

impl Resources {
    pub fn plus(self, o: Resources) -> Resources {
        Resources {
            nano_cpus: self.nano_cpus.saturating_add(o.nano_cpus),
            memory_bytes: self.memory_bytes.saturating_add(o.memory_bytes),
        }
    }

    pub fn minus(self, o: Resources) -> Resources {
        Resources {
            nano_cpus: self.nano_cpus.saturating_sub(o.nano_cpus),
            memory_bytes: self.memory_bytes.saturating_sub(o.memory_bytes),
        }
    }

    /// Whether `need` fits in `self` (Swarm's resource filter: both dimensions).
    pub fn holds(self, need: Resources) -> bool {
        need.nano_cpus <= self.nano_cpus && need.memory_bytes <= self.memory_bytes
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub id: String,
    pub hostname: String,
    pub role: Role,
    pub state: NodeState,
    pub availability: Availability,
    /// `node.labels.*` (set by managers; the pool label is one of them).
    pub labels: BTreeMap<String, String>,
    /// `engine.labels.*` (set in the node's daemon configuration).
    pub engine_labels: BTreeMap<String, String>,
    pub os: String,
    pub arch: String,
    /// `Status.Addr`, matched by `node.ip` constraints.
    pub addr: String,
    pub resources: Resources,
    pub created_at: Option<Timestamp>,
}

impl NodeView {
    /// The pool this node belongs to (`node.labels.pool`).
    pub fn pool(&self) -> Option<&str> {
        self.labels.get(super::POOL_LABEL).map(String::as_str)
    }

    /// Ready and accepting new tasks.
    pub fn schedulable(&self) -> bool {
        self.state == NodeState::Ready && self.availability == Availability::Active
    }
}

/// What placing a task requires, shared by the tasks of one service version.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskNeeds {
    pub reservations: Resources,
    pub constraints: Vec<Constraint>,
    /// `--replicas-max-per-node`; 0 for no limit.
    pub max_replicas_per_node: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    pub id: String,
    pub service: String,
    /// A global service's task belongs to its node and is never moved.
    pub global: bool,
    /// The node it is assigned to, if any.
    pub node_id: Option<String>,
    pub running: bool,
    /// Pending because the scheduler found no node with room for it ("no suitable node ...").
    pub unschedulable: bool,
    /// The scheduler's message, for explanations.
    pub message: Option<String>,
    pub needs: Arc<TaskNeeds>,
}
