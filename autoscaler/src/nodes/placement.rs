//! Where tasks could run: Swarm's placement constraints, its resource filter and
//! `--replicas-max-per-node`, and two simulations built on them — whether a node's tasks fit on the
//! other nodes (checked before a node is drained, so a node whose tasks fit nowhere else is kept:
//! kubernetes/autoscaler#4125), and how many new nodes pending tasks need (first fit decreasing, as
//! cluster-autoscaler's binpacking estimator).
//!
//! Placement preferences (`spread=...`) only order Swarm's choice among nodes that fit; they never make
//! a task unplaceable, so the simulations leave them out. A fit found here is a real assignment, so
//! "fits" is never wrong about capacity; "does not fit" can be (bin packing is greedy here), which only
//! ever keeps a node that could have gone.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::cluster::{Cluster, NodeView, Resources, Role, TaskView};

/// One `--constraint` of a service: `KEY==VALUE` or `KEY!=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub key: ConstraintKey,
    pub equal: bool,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstraintKey {
    Id,
    Hostname,
    Role,
    Ip,
    Os,
    Arch,
    NodeLabel(String),
    EngineLabel(String),
    /// A key Swarm does not know; Swarm refuses such services, so it never matches here.
    Unknown(String),
}

impl Constraint {
    /// Parses Swarm's syntax; keys are case-insensitive, label names are not.
    pub fn parse(text: &str) -> Option<Constraint> {
        let (at, equal) = match (text.find("=="), text.find("!=")) {
            (Some(e), Some(n)) if n < e => (n, false),
            (Some(e), _) => (e, true),
            (None, Some(n)) => (n, false),
            (None, None) => return None,
        };
        let key = text[..at].trim();
        let value = text[at + 2..].trim().to_string();
        let lower = key.to_ascii_lowercase();
        let key = match lower.as_str() {
            "node.id" => ConstraintKey::Id,
            "node.hostname" => ConstraintKey::Hostname,
            "node.role" => ConstraintKey::Role,
            "node.ip" => ConstraintKey::Ip,
            "node.platform.os" => ConstraintKey::Os,
            "node.platform.arch" => ConstraintKey::Arch,
            _ if lower.starts_with("node.labels.") => {
                ConstraintKey::NodeLabel(key["node.labels.".len()..].to_string())
            }
            _ if lower.starts_with("engine.labels.") => {
                ConstraintKey::EngineLabel(key["engine.labels.".len()..].to_string())
            }
            _ => ConstraintKey::Unknown(key.to_string()),
        };
        Some(Constraint { key, equal, value })
    }

    /// Swarm's `constraint.Match`: values compare case-insensitively, a missing label is "".
    pub fn matches(&self, node: &NodeView) -> bool {
        let role = match node.role {
            Role::Manager => "manager",
            Role::Worker => "worker",
        };
        let same = |v: &str| v.eq_ignore_ascii_case(&self.value);
        let hit = match &self.key {
            ConstraintKey::Id => same(&node.id),
            ConstraintKey::Hostname => same(&node.hostname),
            ConstraintKey::Role => same(role),
            ConstraintKey::Ip => ip_matches(&node.addr, &self.value),
            ConstraintKey::Os => same(&node.os),
            ConstraintKey::Arch => same(&node.arch),
            ConstraintKey::NodeLabel(k) => same(node.labels.get(k).map_or("", String::as_str)),
            ConstraintKey::EngineLabel(k) => {
                same(node.engine_labels.get(k).map_or("", String::as_str))
            }
            ConstraintKey::Unknown(_) => return false,
        };
        hit == self.equal
    }
}

/// `node.ip==ADDR` or `node.ip==NET/BITS` (IPv4).
fn ip_matches(addr: &str, want: &str) -> bool {
    let Ok(addr) = addr.parse::<Ipv4Addr>() else {
        return false;
    };
    match want.split_once('/') {
        None => want.parse::<Ipv4Addr>().is_ok_and(|w| w == addr),
        Some((net, bits)) => match (net.parse::<Ipv4Addr>(), bits.parse::<u32>()) {
            (Ok(net), Ok(bits)) if bits <= 32 => {
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(addr) & mask
            }
            _ => false,
        },
    }
}

/// Room left on nodes, and how many tasks of each service they run, as a simulation places tasks.
#[derive(Debug, Clone)]
pub struct Room<'c> {
    nodes: Vec<&'c NodeView>,
    free: BTreeMap<&'c str, Resources>,
    per_service: BTreeMap<(&'c str, &'c str), u64>,
}

impl<'c> Room<'c> {
    /// The schedulable nodes of `cluster` for which `keep` holds, with what their tasks leave free.
    pub fn of(cluster: &'c Cluster, keep: impl Fn(&NodeView) -> bool) -> Room<'c> {
        let nodes: Vec<&NodeView> = cluster
            .nodes
            .iter()
            .filter(|n| n.schedulable() && keep(n))
            .collect();
        let mut free: BTreeMap<&str, Resources> =
            nodes.iter().map(|n| (n.id.as_str(), n.resources)).collect();
        let mut per_service = BTreeMap::new();
        for t in &cluster.tasks {
            let Some(node) = t.node_id.as_deref() else {
                continue;
            };
            if let Some(f) = free.get_mut(node) {
                *f = f.minus(t.needs.reservations);
                *per_service.entry((node, t.service.as_str())).or_insert(0) += 1;
            }
        }
        Room {
            nodes,
            free,
            per_service,
        }
    }

    /// Whether `task` could go on `node` now.
    pub fn fits(&self, task: &TaskView, node: &NodeView) -> bool {
        fits_on(
            task,
            node,
            self.free.get(node.id.as_str()).copied().unwrap_or_default(),
            self.per_service
                .get(&(node.id.as_str(), task.service.as_str()))
                .copied()
                .unwrap_or(0),
        )
    }

    /// Places `task` on the fitting node with the least CPU left after it (best fit), and books it.
    pub fn place(&mut self, task: &'c TaskView) -> Option<&'c str> {
        let best = self
            .nodes
            .iter()
            .filter(|n| self.fits(task, n))
            .min_by_key(|n| {
                let left = self.free[n.id.as_str()].minus(task.needs.reservations);
                (left.nano_cpus, left.memory_bytes, n.id.as_str())
            })?;
        let id = best.id.as_str();
        let f = self.free.get_mut(id).expect("a node of the room");
        *f = f.minus(task.needs.reservations);
        *self
            .per_service
            .entry((id, task.service.as_str()))
            .or_insert(0) += 1;
        Some(id)
    }
}

fn fits_on(task: &TaskView, node: &NodeView, free: Resources, same_service: u64) -> bool {
    let n = &task.needs;
    free.holds(n.reservations)
        && n.constraints.iter().all(|c| c.matches(node))
        && (n.max_replicas_per_node == 0 || same_service < n.max_replicas_per_node)
}

/// Largest reservations first (first fit decreasing), then by id for a stable order.
fn decreasing(tasks: &mut [&TaskView]) {
    tasks.sort_by(|a, b| {
        let (ra, rb) = (a.needs.reservations, b.needs.reservations);
        (rb.nano_cpus, rb.memory_bytes, &a.id).cmp(&(ra.nano_cpus, ra.memory_bytes, &b.id))
    });
}

/// Where the tasks of `node_id` would go if it left: `Ok` with an assignment when every task of a
/// replicated service fits on another schedulable node, `Err` with the tasks that fit nowhere.
/// Global services' tasks are not moved (each node runs its own), so they are left out.
pub fn relocate<'c>(
    cluster: &'c Cluster,
    node_id: &str,
) -> Result<Vec<(&'c str, &'c str)>, Vec<&'c str>> {
    let mut room = Room::of(cluster, |n| n.id != node_id);
    let mut tasks: Vec<&TaskView> = cluster
        .tasks
        .iter()
        .filter(|t| t.node_id.as_deref() == Some(node_id) && !t.global)
        .collect();
    decreasing(&mut tasks);
    let mut placed = Vec::new();
    let mut stuck = Vec::new();
    for t in tasks {
        match room.place(t) {
            Some(n) => placed.push((t.id.as_str(), n)),
            None => stuck.push(t.id.as_str()),
        }
    }
    if stuck.is_empty() {
        Ok(placed)
    } else {
        Err(stuck)
    }
}

/// How many new nodes like `template` (its resources, labels, role and platform; empty) the `pending`
/// tasks need, and which of them would not fit even an empty one (they do not count for this pool).
pub fn nodes_needed<'t>(template: &NodeView, pending: &[&'t TaskView]) -> (u32, Vec<&'t TaskView>) {
    let mut tasks = pending.to_vec();
    decreasing(&mut tasks);
    // Each new node: what is left on it, and its tasks per service.
    let mut bins: Vec<(Resources, BTreeMap<&str, u64>)> = Vec::new();
    let mut unfit = Vec::new();
    for t in tasks {
        let slot = bins.iter().position(|(free, per)| {
            fits_on(
                t,
                template,
                *free,
                per.get(t.service.as_str()).copied().unwrap_or(0),
            )
        });
        let i = match slot {
            Some(i) => i,
            None if fits_on(t, template, template.resources, 0) => {
                bins.push((template.resources, BTreeMap::new()));
                bins.len() - 1
            }
            None => {
                unfit.push(t);
                continue;
            }
        };
        let (free, per) = &mut bins[i];
        *free = free.minus(t.needs.reservations);
        *per.entry(t.service.as_str()).or_insert(0) += 1;
    }
    (bins.len() as u32, unfit)
}

#[cfg(test)]
mod tests;
