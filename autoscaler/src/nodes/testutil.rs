//! Hand-made clusters for the unit tests of placement and decisions.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::cluster::{
    Availability, Cluster, NodeState, NodeView, Resources, Role, TaskNeeds, TaskView,
};
use super::placement::Constraint;

pub const GIB: i64 = 1 << 30;

pub fn res(cpus: f64, mem_gib: f64) -> Resources {
    Resources {
        nano_cpus: (cpus * 1e9).round() as i64,
        memory_bytes: (mem_gib * GIB as f64).round() as i64,
    }
}

/// A Ready, Active worker with `cpus` CPUs and `mem_gib` GiB, in `pool` if given.
pub fn node(id: &str, pool: Option<&str>, cpus: f64, mem_gib: f64) -> NodeView {
    NodeView {
        id: id.into(),
        hostname: format!("host-{id}"),
        role: Role::Worker,
        state: NodeState::Ready,
        availability: Availability::Active,
        labels: pool
            .map(|p| BTreeMap::from([("pool".to_string(), p.to_string())]))
            .unwrap_or_default(),
        engine_labels: BTreeMap::new(),
        os: "linux".into(),
        arch: "x86_64".into(),
        addr: "10.0.0.1".into(),
        resources: res(cpus, mem_gib),
        created_at: None,
    }
}

pub fn manager(id: &str, pool: Option<&str>, cpus: f64, mem_gib: f64) -> NodeView {
    NodeView {
        role: Role::Manager,
        ..node(id, pool, cpus, mem_gib)
    }
}

/// A task of `service` reserving `cpus` and `mem_gib`: running on `node`, or pending for lack of room.
pub fn task(id: &str, service: &str, node: Option<&str>, cpus: f64, mem_gib: f64) -> TaskView {
    TaskView {
        id: id.into(),
        service: service.into(),
        global: false,
        node_id: node.map(str::to_string),
        running: node.is_some(),
        unschedulable: node.is_none(),
        message: node
            .is_none()
            .then(|| "no suitable node (insufficient resources on 1 node)".to_string()),
        needs: Arc::new(TaskNeeds {
            reservations: res(cpus, mem_gib),
            ..TaskNeeds::default()
        }),
    }
}

pub fn constrained(mut t: TaskView, constraints: &[&str]) -> TaskView {
    let mut needs = (*t.needs).clone();
    needs.constraints = constraints
        .iter()
        .map(|c| Constraint::parse(c).expect("a constraint"))
        .collect();
    t.needs = Arc::new(needs);
    t
}

pub fn max_per_node(mut t: TaskView, max: u64) -> TaskView {
    let mut needs = (*t.needs).clone();
    needs.max_replicas_per_node = max;
    t.needs = Arc::new(needs);
    t
}

pub fn cluster(nodes: Vec<NodeView>, tasks: Vec<TaskView>) -> Cluster {
    Cluster { nodes, tasks }
}
