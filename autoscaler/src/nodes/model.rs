//! The resolved node policy: every default filled in, every value validated. Built by `parse`; the
//! decision code only ever sees this form.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::policy::serialize_duration;

/// The node label that says which pool a node belongs to: `node.labels.pool=NAME`.
pub const POOL_LABEL: &str = "pool";
/// A node is unneeded while its reserved CPU and memory are both under this percentage
/// (cluster-autoscaler's `--scale-down-utilization-threshold`, 0.5).
pub const DEFAULT_BELOW: u32 = 50;
/// How long a node must stay unneeded before it is removed (cluster-autoscaler's
/// `--scale-down-unneeded-time`).
pub const DEFAULT_UNNEEDED_FOR: Duration = Duration::from_secs(600);
/// No scale-down this long after a node was added (cluster-autoscaler's `--scale-down-delay-after-add`).
pub const DEFAULT_DELAY_AFTER_ADD: Duration = Duration::from_secs(600);
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(300);
/// A node that has not joined the swarm this long after the provider made it is failed
/// (cluster-autoscaler's `--max-node-provision-time` is 15m; Swarm nodes join faster).
pub const DEFAULT_PROVISION_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_ATTEMPTS: u32 = 3;
pub const DEFAULT_REMOVE_DOWN_AFTER: Duration = Duration::from_secs(300);
pub const DEFAULT_NODE_INTERVAL: Duration = Duration::from_secs(10);

/// One node pool and how it scales.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodePolicy {
    /// The nodes labelled `pool=<pool>`.
    pub pool: String,
    pub min: u32,
    pub max: u32,
    pub provider: Provider,
    pub target: CapacityTarget,
    pub scale_up: ScaleUp,
    pub scale_down: ScaleDown,
    /// Empty nodes (no task) kept ready on top of what the tasks need.
    pub spare: u32,
    /// A pool node that has been down this long is deleted through the provider and removed from
    /// the swarm (a replacement is added as soon as the pool is under `min`).
    #[serde(serialize_with = "serialize_duration")]
    pub remove_down_after: Duration,
    /// Time between two decisions for this pool.
    #[serde(serialize_with = "serialize_duration")]
    pub interval: Duration,
}

/// How nodes are made and deleted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provider {
    pub kind: ProviderKind,
    /// One call's time limit; a call still running then is killed and counts as failed.
    #[serde(serialize_with = "serialize_duration")]
    pub timeout: Duration,
    /// Tries of a failing call, with exponential backoff between them.
    pub attempts: u32,
    /// From the end of a successful `create` until each new node is Ready in the swarm.
    #[serde(serialize_with = "serialize_duration")]
    pub provision_timeout: Duration,
    /// The manager address new nodes join (`HOST:PORT`); default: this manager's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// A command; plimsoll appends `create ...` or `delete ...` and reads JSON from its stdout.
    Exec { command: Vec<String> },
    /// An HTTP endpoint that gets the same requests as JSON POSTs, with a bearer token.
    Webhook {
        url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        token_file: Option<PathBuf>,
    },
}

/// Percent of the pool's capacity that tasks may reserve; more (pending tasks included) adds nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CapacityTarget {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScaleUp {
    /// Add nodes for tasks pending because no node has room for them ("no suitable node").
    pub pending: bool,
    /// Most nodes added by one decision.
    pub max_nodes_per_step: u32,
}

impl Default for ScaleUp {
    fn default() -> Self {
        ScaleUp {
            pending: true,
            max_nodes_per_step: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScaleDown {
    pub enabled: bool,
    /// Percent: a node whose reserved CPU and memory are both under it is unneeded.
    pub below: u32,
    #[serde(serialize_with = "serialize_duration")]
    pub unneeded_for: Duration,
    #[serde(serialize_with = "serialize_duration")]
    pub delay_after_add: Duration,
    /// How long a drained node's tasks may take to run elsewhere before the removal is given up
    /// and the node made active again.
    #[serde(serialize_with = "serialize_duration")]
    pub drain_timeout: Duration,
}

impl Default for ScaleDown {
    fn default() -> Self {
        ScaleDown {
            enabled: true,
            below: DEFAULT_BELOW,
            unneeded_for: DEFAULT_UNNEEDED_FOR,
            delay_after_add: DEFAULT_DELAY_AFTER_ADD,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}
