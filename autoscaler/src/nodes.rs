//! Node autoscaling for Docker Swarm: pools of nodes (`node.labels.pool=NAME`) grown when tasks are
//! pending for lack of room or reservations pass the capacity target, and shrunk one drained node at a
//! time when a node has stayed unneeded and its tasks fit elsewhere.
//!
//! The shape is the service half's: a policy file per pool (`model`, `parse`), a pure decision with
//! `now` passed in (`decide`, with the placement simulation of `placement`), and a shell per pool
//! that observes the swarm, runs provider calls off its loop and explains every decision.

mod api;
pub mod cluster;
mod controller;
mod decide;
mod explain;
mod model;
mod parse;
pub mod placement;
pub mod provider;
mod swarm;

#[cfg(test)]
pub(crate) mod testutil;

pub use api::router;
pub use controller::{NodeConfig, NodeControlState, NodeController, PoolEntry, ProviderFactory};
pub use decide::{decide, NodeAction, NodeDecision, NodeReason, PoolMemory, PoolStatus};
pub use explain::{NodeRecord, Step};
pub use model::{
    CapacityTarget, NodePolicy, Provider, ProviderKind, ScaleDown, ScaleUp, POOL_LABEL,
};
pub use parse::parse_node_policy;
pub use swarm::{DockerSwarm, SwarmApi, SwarmError};
