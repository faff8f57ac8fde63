//! The pure decision of one node pool: it reads the policy, the cluster, what the pool remembers and
//! `now`, never a clock or Docker, and returns one action with a typed reason and the pool's new memory.
//!
//! Up (at most `max_nodes_per_step` per decision, never past `max`): to reach `min`; for tasks pending
//! for lack of room that would fit a new node of the pool (first fit decreasing on a copy of a pool
//! node, as cluster-autoscaler's estimator); to bring the reservations of the pool's tasks, pending ones
//! included, under the capacity target; to keep `spare` empty nodes.
//!
//! Down, one node at a time: a node down for `remove_down_after` is deleted; otherwise a worker whose
//! reserved CPU and memory have both stayed under `scale_down.below` for `unneeded_for`, not sooner than
//! `delay_after_add` after the last add, if the pool keeps `min`, the target and its spare nodes without
//! it, and only if every task it runs fits on another node (placement simulation). Among candidates the
//! one with the fewest tasks goes first. Managers are never removed.

use std::collections::BTreeMap;

use serde::Serialize;

use super::cluster::{Cluster, NodeState, NodeView, Resources, Role, TaskView};
use super::model::NodePolicy;
use super::placement::{nodes_needed, relocate};
use crate::policy::Timestamp;

/// What a pool remembers between decisions; `decide` returns the next value, the shell adds what
/// operations did (`last_add`, `hold_until`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolMemory {
    /// Since when each pool node has been under the scale-down threshold.
    pub unneeded_since: BTreeMap<String, Timestamp>,
    /// Since when each pool node has been down (not Ready).
    pub down_since: BTreeMap<String, Timestamp>,
    /// When the last add operation finished with nodes joined.
    pub last_add: Option<Timestamp>,
    /// No new operation before this: the provider failed and the pool backs off.
    pub hold_until: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NodeAction {
    None,
    Add {
        count: u32,
    },
    /// Drain (unless the node is down), wait for its tasks to run elsewhere, delete, `node rm`.
    Remove {
        node: String,
        hostname: String,
        drain: bool,
    },
}

/// Why: every decision carries one, logged, counted and served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeReason {
    /// Fewer Ready nodes than `min`.
    BelowMin,
    /// Tasks wait for room that a new node of the pool would give.
    PendingTasks,
    /// Reservations (pending tasks included) over the capacity target.
    AboveTarget,
    /// Fewer empty nodes than `spare`.
    Spare,
    /// A node under the threshold for `unneeded_for`, whose tasks fit elsewhere.
    Unneeded,
    /// A node down for `remove_down_after`.
    NodeDown,
    /// Nothing to do.
    WithinTarget,
    /// More nodes are needed but the pool is at `max`.
    AtMax,
    /// Unneeded nodes are kept because some of their tasks fit on no other node.
    TasksFitNowhere,
    /// An unneeded node waits: a node was added less than `delay_after_add` ago.
    DelayAfterAdd,
    /// A node operation of this pool is still running (never two at once).
    OperationInProgress,
    /// The provider failed; the pool waits before trying again.
    ProviderBackoff,
    /// The swarm could not be read (set by the loop, never by `decide`).
    DockerError,
}

impl NodeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeReason::BelowMin => "below_min",
            NodeReason::PendingTasks => "pending_tasks",
            NodeReason::AboveTarget => "above_target",
            NodeReason::Spare => "spare",
            NodeReason::Unneeded => "unneeded",
            NodeReason::NodeDown => "node_down",
            NodeReason::WithinTarget => "within_target",
            NodeReason::AtMax => "at_max",
            NodeReason::TasksFitNowhere => "tasks_fit_nowhere",
            NodeReason::DelayAfterAdd => "delay_after_add",
            NodeReason::OperationInProgress => "operation_in_progress",
            NodeReason::ProviderBackoff => "provider_backoff",
            NodeReason::DockerError => "docker_error",
        }
    }
}

/// The pool as the decision saw it: the inputs of every record.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolStatus {
    /// Ready nodes (draining ones included).
    pub ready: u32,
    pub draining: u32,
    pub down: u32,
    /// Ready, active nodes with no task of a replicated service.
    pub empty: u32,
    /// Of the Ready, active nodes.
    pub capacity: Resources,
    /// By the tasks on the Ready, active nodes.
    pub reserved: Resources,
    /// Reserved (pending tasks of the pool included) as percent of capacity.
    pub cpu_percent: f64,
    pub memory_percent: f64,
    /// Tasks pending for lack of room that a new node of this pool would take.
    pub pending_tasks: u32,
    /// Pending tasks that would not fit even an empty node of this pool.
    #[serde(skip_serializing_if = "is_zero")]
    pub pending_elsewhere: u32,
    /// Nodes the pool should have.
    pub needed: u32,
    /// Unneeded nodes kept because these tasks of theirs fit nowhere else.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub blocked: BTreeMap<String, Vec<String>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeDecision {
    pub action: NodeAction,
    pub reason: NodeReason,
    pub status: PoolStatus,
    #[serde(skip)]
    pub memory: PoolMemory,
}

/// One decision for `policy`'s pool. `busy`: an operation of the pool is still running.
pub fn decide(
    policy: &NodePolicy,
    cluster: &Cluster,
    memory: &PoolMemory,
    busy: bool,
    now: Timestamp,
) -> NodeDecision {
    let pool: Vec<&NodeView> = cluster
        .nodes
        .iter()
        .filter(|n| n.pool() == Some(policy.pool.as_str()))
        .collect();
    let ready: Vec<&NodeView> = pool
        .iter()
        .copied()
        .filter(|n| n.state == NodeState::Ready)
        .collect();
    let active: Vec<&NodeView> = ready.iter().copied().filter(|n| n.schedulable()).collect();
    let down: Vec<&NodeView> = pool
        .iter()
        .copied()
        .filter(|n| n.state != NodeState::Ready)
        .collect();
    let live = ready.len() as u32;

    let mut reserved: BTreeMap<&str, (Resources, u32)> = active
        .iter()
        .map(|n| (n.id.as_str(), Default::default()))
        .collect();
    for t in &cluster.tasks {
        if let Some(e) = t.node_id.as_deref().and_then(|n| reserved.get_mut(n)) {
            e.0 = e.0.plus(t.needs.reservations);
            e.1 += u32::from(!t.global);
        }
    }
    let capacity = active
        .iter()
        .fold(Resources::default(), |a, n| a.plus(n.resources));
    let reserved_total = reserved
        .values()
        .fold(Resources::default(), |a, (r, _)| a.plus(*r));
    let empty = reserved.values().filter(|(_, tasks)| *tasks == 0).count() as u32;

    // Memory: how long each node has been unneeded, or down.
    let mut next = memory.clone();
    next.down_since
        .retain(|id, _| down.iter().any(|n| &n.id == id));
    for n in &down {
        next.down_since.entry(n.id.clone()).or_insert(now);
    }
    let under: Vec<&str> = active
        .iter()
        .filter(|n| n.role == Role::Worker)
        .filter(|n| {
            percent_of(reserved[n.id.as_str()].0, n.resources) < f64::from(policy.scale_down.below)
        })
        .map(|n| n.id.as_str())
        .collect();
    next.unneeded_since
        .retain(|id, _| under.contains(&id.as_str()));
    for id in &under {
        next.unneeded_since.entry(id.to_string()).or_insert(now);
    }

    // Pending tasks this pool could take.
    let pending: Vec<&TaskView> = cluster
        .tasks
        .iter()
        .filter(|t| t.unschedulable && t.node_id.is_none())
        .collect();
    let template = newest(&active)
        .or_else(|| newest(&ready))
        .map(|n| NodeView {
            id: String::new(),
            hostname: String::new(),
            addr: String::new(),
            role: Role::Worker,
            ..n.clone()
        });
    let (new_for_pending, pool_pending, elsewhere) = match &template {
        Some(t) => {
            let (n, unfit) = nodes_needed(t, &pending);
            let ours: Vec<&TaskView> = pending
                .iter()
                .copied()
                .filter(|p| !unfit.iter().any(|u| u.id == p.id))
                .collect();
            (n, ours, unfit.len() as u32)
        }
        // No node to copy: a task whose constraints a pool node would meet counts, one node at a time.
        None => {
            let blank = blank_node(&policy.pool);
            let ours: Vec<&TaskView> = pending
                .iter()
                .copied()
                .filter(|p| p.needs.constraints.iter().all(|c| c.matches(&blank)))
                .collect();
            (
                u32::from(!ours.is_empty()),
                ours.clone(),
                (pending.len() - ours.len()) as u32,
            )
        }
    };
    let pending_res = pool_pending
        .iter()
        .fold(Resources::default(), |a, t| a.plus(t.needs.reservations));
    let demand = reserved_total.plus(pending_res);

    let by_target = |capacity: Resources, nodes: u32| -> u32 {
        needed_by_target(policy, demand, capacity, nodes)
    };
    let target_need = by_target(capacity, active.len() as u32);
    let pending_need = if policy.scale_up.pending && !pool_pending.is_empty() {
        active.len() as u32 + new_for_pending
    } else {
        0
    };
    let spare_need = if empty < policy.spare {
        live + (policy.spare - empty)
    } else {
        0
    };
    let needed = target_need
        .max(pending_need)
        .max(spare_need)
        .max(policy.min);

    let mut status = PoolStatus {
        ready: live,
        draining: (ready.len() - active.len()) as u32,
        down: down.len() as u32,
        empty,
        capacity,
        reserved: reserved_total,
        cpu_percent: round1(percent(demand.nano_cpus, capacity.nano_cpus)),
        memory_percent: round1(percent(demand.memory_bytes, capacity.memory_bytes)),
        pending_tasks: pool_pending.len() as u32,
        pending_elsewhere: elsewhere,
        needed: needed.min(policy.max),
        blocked: BTreeMap::new(),
    };
    let hold = |reason, status| NodeDecision {
        action: NodeAction::None,
        reason,
        status,
        memory: next.clone(),
    };
    if busy {
        return hold(NodeReason::OperationInProgress, status);
    }
    if memory.hold_until.is_some_and(|t| now < t) {
        return hold(NodeReason::ProviderBackoff, status);
    }

    // Up.
    if needed > live {
        let reason = if live < policy.min {
            NodeReason::BelowMin
        } else if pending_need == needed {
            NodeReason::PendingTasks
        } else if target_need == needed {
            NodeReason::AboveTarget
        } else {
            NodeReason::Spare
        };
        let room = policy.max.saturating_sub(live);
        if room == 0 {
            return hold(NodeReason::AtMax, status);
        }
        let count = (needed - live)
            .min(policy.scale_up.max_nodes_per_step)
            .min(room);
        return NodeDecision {
            action: NodeAction::Add { count },
            reason,
            status,
            memory: next,
        };
    }

    // A dead node goes, whatever the load: its tasks already run elsewhere or wait for room.
    if let Some((id, _)) = next
        .down_since
        .iter()
        .filter(|(_, since)| now.since(**since) >= policy.remove_down_after)
        .min_by_key(|(id, since)| (**since, id.as_str()))
    {
        let node = pool.iter().find(|n| &n.id == id).expect("a down pool node");
        return NodeDecision {
            action: NodeAction::Remove {
                node: node.id.clone(),
                hostname: node.hostname.clone(),
                drain: false,
            },
            reason: NodeReason::NodeDown,
            status,
            memory: next,
        };
    }

    // Down: one unneeded node whose tasks fit elsewhere.
    if !policy.scale_down.enabled || !pool_pending.is_empty() {
        return hold(NodeReason::WithinTarget, status);
    }
    let mut candidates: Vec<(&NodeView, u32, f64, Timestamp)> = active
        .iter()
        .filter_map(|n| {
            let since = *next.unneeded_since.get(&n.id)?;
            (now.since(since) >= policy.scale_down.unneeded_for).then(|| {
                let (r, tasks) = reserved[n.id.as_str()];
                (*n, tasks, percent_of(r, n.resources), since)
            })
        })
        .collect();
    candidates.sort_by(|a, b| {
        (a.1, a.2, a.3, &a.0.id)
            .partial_cmp(&(b.1, b.2, b.3, &b.0.id))
            .expect("finite utilizations")
    });
    let mut removable = None;
    for (n, tasks, _, _) in &candidates {
        if live <= policy.min {
            break;
        }
        if by_target(capacity.minus(n.resources), active.len() as u32 - 1) > live - 1 {
            continue;
        }
        match relocate(cluster, &n.id) {
            Ok(moves) => {
                // Spare nodes are the empty ones: neither the removed node nor the nodes its tasks
                // would land on may take the pool under `spare`.
                let filled: std::collections::BTreeSet<&str> = moves
                    .iter()
                    .map(|(_, to)| *to)
                    .filter(|to| reserved.get(to).is_some_and(|(_, t)| *t == 0))
                    .collect();
                let empty_after = empty - u32::from(*tasks == 0) - filled.len() as u32;
                if empty_after < policy.spare {
                    continue;
                }
                removable = Some(*n);
                break;
            }
            Err(stuck) => {
                status
                    .blocked
                    .insert(n.id.clone(), stuck.iter().map(|s| s.to_string()).collect());
            }
        }
    }
    let just_added = memory
        .last_add
        .is_some_and(|t| now.since(t) < policy.scale_down.delay_after_add);
    match removable {
        Some(_) if just_added => hold(NodeReason::DelayAfterAdd, status),
        Some(n) => NodeDecision {
            action: NodeAction::Remove {
                node: n.id.clone(),
                hostname: n.hostname.clone(),
                drain: true,
            },
            reason: NodeReason::Unneeded,
            status,
            memory: next,
        },
        None if !status.blocked.is_empty() => hold(NodeReason::TasksFitNowhere, status),
        None => hold(NodeReason::WithinTarget, status),
    }
}

/// Nodes of the pool's average size that keep `demand` at or under the capacity target: the larger of
/// the CPU and memory answers; 0 without a target.
fn needed_by_target(
    policy: &NodePolicy,
    demand: Resources,
    capacity: Resources,
    nodes: u32,
) -> u32 {
    let one = |target: Option<u32>, demand: i64, capacity: i64| -> u32 {
        let Some(t) = target else { return 0 };
        if demand <= 0 {
            return 0;
        }
        if nodes == 0 || capacity <= 0 {
            return 1;
        }
        let per_node = capacity as f64 / f64::from(nodes) * f64::from(t) / 100.0;
        // Tiny epsilon: 80% of 10 nodes is exactly 8 nodes' worth, not 9.
        ((demand as f64 / per_node) - 1e-9).ceil().max(1.0) as u32
    };
    one(policy.target.cpu, demand.nano_cpus, capacity.nano_cpus).max(one(
        policy.target.memory,
        demand.memory_bytes,
        capacity.memory_bytes,
    ))
}

fn percent(used: i64, capacity: i64) -> f64 {
    if capacity <= 0 {
        if used > 0 {
            100.0
        } else {
            0.0
        }
    } else {
        used as f64 * 100.0 / capacity as f64
    }
}

/// The larger of a node's reserved CPU and memory percentages.
fn percent_of(reserved: Resources, capacity: Resources) -> f64 {
    percent(reserved.nano_cpus, capacity.nano_cpus)
        .max(percent(reserved.memory_bytes, capacity.memory_bytes))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The most recently created node (a new node is most like it), by id when no creation time is known.
fn newest<'n>(nodes: &[&'n NodeView]) -> Option<&'n NodeView> {
    nodes
        .iter()
        .copied()
        .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
}

/// A node of the pool whose size is unknown (the pool has no node to copy).
fn blank_node(pool: &str) -> NodeView {
    NodeView {
        id: String::new(),
        hostname: String::new(),
        role: Role::Worker,
        state: NodeState::Ready,
        availability: super::cluster::Availability::Active,
        labels: BTreeMap::from([(super::POOL_LABEL.to_string(), pool.to_string())]),
        engine_labels: BTreeMap::new(),
        os: "linux".into(),
        arch: String::new(),
        addr: String::new(),
        resources: Resources {
            nano_cpus: i64::MAX,
            memory_bytes: i64::MAX,
        },
        created_at: None,
    }
}

#[cfg(test)]
mod tests;
