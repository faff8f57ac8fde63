//! Every node decision and operation step explained: a record kept per pool for
//! `GET /api/v1/node-decisions`, a log line, and the node metrics.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use plimsoll_collector::telemetry::Family;
use serde::Serialize;

use super::decide::{NodeAction, NodeReason, PoolStatus};
use crate::policy::Timestamp;

pub const NODES: &str = "plimsoll_nodes";
pub const NODE_SCALE_EVENTS: &str = "plimsoll_node_scale_events_total";
pub const NODE_DECISIONS: &str = "plimsoll_node_decisions_total";
pub const PENDING_TASKS: &str = "plimsoll_pending_tasks";
pub const PROVIDER_SECONDS: &str = "plimsoll_node_provider_seconds";

/// Records kept per pool.
const RING: usize = 200;

pub const FAMILIES: &[Family] = &[
    Family::gauge(
        NODES,
        "Nodes of a pool by state: ready, draining, down, provisioning.",
    ),
    Family::counter(
        NODE_SCALE_EVENTS,
        "Node operations started, by direction (up, down) and reason.",
    ),
    Family::counter(
        NODE_DECISIONS,
        "Node pool decisions, by reason (holds included).",
    ),
    Family::gauge(
        PENDING_TASKS,
        "Tasks of a service pending because no node has room for them (\"no suitable node\").",
    ),
    Family::seconds(
        PROVIDER_SECONDS,
        "Time of node provider calls, by pool, call (create, delete) and outcome.",
    ),
];

/// A decision of the pool's loop, or a step of an operation it started.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NodeRecord {
    Decision {
        at: Timestamp,
        pool: String,
        action: NodeAction,
        reason: NodeReason,
        /// `--dry-run`: the action was decided, not taken.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        dry_run: bool,
        status: PoolStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    Operation {
        at: Timestamp,
        pool: String,
        /// `add` or `remove`.
        operation: &'static str,
        step: Step,
        /// Why the operation was started (the decision's reason).
        reason: NodeReason,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        nodes: Vec<NodeRef>,
        /// Time spent in provider calls so far.
        #[serde(skip_serializing_if = "Option::is_none")]
        provider_ms: Option<u64>,
        /// Time since the operation started.
        elapsed_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl NodeRecord {
    pub fn pool(&self) -> &str {
        match self {
            NodeRecord::Decision { pool, .. } | NodeRecord::Operation { pool, .. } => pool,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            NodeRecord::Decision { at, .. } | NodeRecord::Operation { at, .. } => *at,
        }
    }

    /// Logs (actions and steps at info, failures at warn, holds at debug) and counts.
    pub fn emit(&self) {
        match self {
            NodeRecord::Decision {
                pool,
                action,
                reason,
                dry_run,
                status,
                error,
                ..
            } => {
                metrics::counter!(NODE_DECISIONS, "pool" => pool.clone(), "reason" => reason.as_str())
                    .increment(1);
                for (state, n) in [
                    ("ready", status.ready - status.draining),
                    ("draining", status.draining),
                    ("down", status.down),
                ] {
                    metrics::gauge!(NODES, "pool" => pool.clone(), "state" => state)
                        .set(f64::from(n));
                }
                let direction = match action {
                    NodeAction::None => None,
                    NodeAction::Add { .. } => Some("up"),
                    NodeAction::Remove { .. } => Some("down"),
                };
                if let (Some(direction), false) = (direction, *dry_run) {
                    metrics::counter!(NODE_SCALE_EVENTS, "pool" => pool.clone(), "direction" => direction, "reason" => reason.as_str()).increment(1);
                }
                let status_json = serde_json::to_string(status).unwrap_or_default();
                let action_json = serde_json::to_string(action).unwrap_or_default();
                if let Some(e) = error {
                    tracing::warn!(target: "plimsoll::nodes", pool = %pool, reason = reason.as_str(), error = %e, "node pool hold");
                } else if direction.is_some() {
                    tracing::info!(target: "plimsoll::nodes", pool = %pool, action = %action_json, reason = reason.as_str(), dry_run, status = %status_json, "node pool decision");
                } else {
                    tracing::debug!(target: "plimsoll::nodes", pool = %pool, reason = reason.as_str(), status = %status_json, "node pool steady");
                }
            }
            NodeRecord::Operation {
                pool,
                operation,
                step,
                nodes,
                provider_ms,
                elapsed_ms,
                error,
                ..
            } => {
                let nodes: Vec<&str> = nodes.iter().map(|n| n.hostname.as_str()).collect();
                match error {
                    Some(e) => {
                        tracing::warn!(target: "plimsoll::nodes", pool = %pool, operation, step = step.as_str(), ?nodes, provider_ms, elapsed_ms, error = %e, "node operation")
                    }
                    None => {
                        tracing::info!(target: "plimsoll::nodes", pool = %pool, operation, step = step.as_str(), ?nodes, provider_ms, elapsed_ms, "node operation")
                    }
                }
            }
        }
    }
}

/// The steps of node operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The provider made the nodes; waiting for them to join.
    Provisioned,
    /// Every new node is Ready in the swarm and labelled with the pool.
    Joined,
    /// A new node did not join within `provision_timeout`; it was deleted.
    JoinTimeout,
    /// The node is drained and its tasks run elsewhere.
    Drained,
    /// Its tasks did not run elsewhere within `drain_timeout`; the node was made active again.
    DrainTimeout,
    /// The provider deleted the node and it left the swarm.
    Removed,
    /// A provider or Docker call failed (after its retries).
    Failed,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Provisioned => "provisioned",
            Step::Joined => "joined",
            Step::JoinTimeout => "join_timeout",
            Step::Drained => "drained",
            Step::DrainTimeout => "drain_timeout",
            Step::Removed => "removed",
            Step::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRef {
    pub hostname: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
}

/// Recent records per pool, and the services whose pending gauge was last set.
#[derive(Debug, Default)]
pub struct NodeLog {
    rings: Mutex<HashMap<String, VecDeque<NodeRecord>>>,
    pending: Mutex<BTreeSet<String>>,
}

impl NodeLog {
    pub fn push(&self, r: NodeRecord) {
        r.emit();
        let mut rings = self.rings.lock().expect("node log lock");
        let ring = rings.entry(r.pool().to_string()).or_default();
        if ring.len() == RING {
            ring.pop_front();
        }
        ring.push_back(r);
    }

    /// Oldest first; every pool when `pool` is None.
    pub fn recent(&self, pool: Option<&str>) -> Vec<NodeRecord> {
        let rings = self.rings.lock().expect("node log lock");
        let mut out: Vec<NodeRecord> = match pool {
            Some(p) => rings
                .get(p)
                .map(|r| r.iter().cloned().collect())
                .unwrap_or_default(),
            None => rings.values().flat_map(|r| r.iter().cloned()).collect(),
        };
        out.sort_by_key(NodeRecord::at);
        out
    }

    /// Sets `plimsoll_pending_tasks` for every service with pending tasks, and back to 0 for the
    /// services that had some last time and have none now.
    pub fn set_pending(&self, by_service: &HashMap<String, u32>) {
        let mut last = self.pending.lock().expect("pending lock");
        for s in last.iter().filter(|s| !by_service.contains_key(*s)) {
            metrics::gauge!(PENDING_TASKS, "service" => s.clone()).set(0.0);
        }
        for (s, n) in by_service {
            metrics::gauge!(PENDING_TASKS, "service" => s.clone()).set(f64::from(*n));
        }
        *last = by_service.keys().cloned().collect();
    }
}
