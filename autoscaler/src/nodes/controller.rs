//! The shell of node autoscaling: reads node policies from `--policies`, runs one loop per pool, and
//! runs each pool's node operations (add, remove) in tasks of their own, so that a slow or failing
//! provider holds its pool and nothing else — not the service loop, not the other pools, not even the
//! pool's own decisions, which go on being recorded (`operation_in_progress`).
//!
//! An add asks the provider for nodes, waits until each has joined the swarm and labels it with the
//! pool (a node not Ready within `provision_timeout` is deleted again). A removal drains the node,
//! waits until the tasks it ran run elsewhere (within `drain_timeout`, else the node is made active
//! again), has the provider delete it and removes it from the swarm. A failed operation backs the pool
//! off with the loop's backoff.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::cluster::{Availability, Cluster, NodeState, NodeView};
use super::decide::{decide, NodeAction, NodeReason, PoolMemory, PoolStatus};
use super::explain::{NodeLog, NodeRecord, NodeRef, Step, NODES, PROVIDER_SECONDS};
use super::model::{NodePolicy, Provider, POOL_LABEL};
use super::parse::parse_node_policy;
use super::provider::{self, with_retries, CreateRequest, DeleteRequest, NodeProvider};
use super::swarm::{DockerSwarm, SwarmApi};
use crate::control::{backoff, Clock, SystemClock};
use crate::policy::{is_node_policy, PolicyDir, Timestamp};

/// Longest backoff of a pool whose operations keep failing.
pub const MAX_POOL_BACKOFF: Duration = Duration::from_secs(600);
/// How often an operation looks at the swarm while it waits for a join or a drain.
const POLL: Duration = Duration::from_millis(500);
/// The first wait between two tries of a provider call.
const RETRY_BASE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node policy files are read from here (with the service policies); None: no node autoscaling.
    pub policies_dir: Option<PathBuf>,
    /// Decide and record, never call a provider or change a node.
    pub dry_run: bool,
    /// How often policy files are read again.
    pub discovery_interval: Duration,
}

/// Makes the provider a policy names (tests swap in fakes).
pub type ProviderFactory = Arc<dyn Fn(&Provider) -> Arc<dyn NodeProvider> + Send + Sync>;

/// A pool as `GET /api/v1/pools` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PoolEntry {
    pub pool: String,
    pub file: String,
    pub policy: NodePolicy,
    /// As the last decision saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<PoolStatus>,
    /// The operation in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    pub memory: PoolMemory,
}

#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    /// `add` or `remove`.
    pub operation: &'static str,
    pub reason: NodeReason,
    pub started_at: Timestamp,
}

/// What the pool loops share with the API.
#[derive(Debug, Default)]
pub struct NodeControlState {
    pub pools: RwLock<BTreeMap<String, PoolEntry>>,
    pub log: NodeLog,
}

pub struct NodeController<S> {
    swarm: Arc<S>,
    state: Arc<NodeControlState>,
    config: NodeConfig,
    providers: ProviderFactory,
    clock: Arc<dyn Clock>,
}

impl NodeController<DockerSwarm> {
    /// Node autoscaling on the engine at `socket` (a Swarm manager), with the real providers.
    pub fn docker(socket: &str, config: NodeConfig) -> Self {
        NodeController::new(
            DockerSwarm::new(socket),
            config,
            Arc::new(provider::build),
            Arc::new(SystemClock),
        )
    }
}

impl<S: SwarmApi> NodeController<S> {
    pub fn new(
        swarm: S,
        config: NodeConfig,
        providers: ProviderFactory,
        clock: Arc<dyn Clock>,
    ) -> Self {
        plimsoll_collector::telemetry::describe_all(super::explain::FAMILIES);
        NodeController {
            swarm: Arc::new(swarm),
            state: Arc::new(NodeControlState::default()),
            config,
            providers,
            clock,
        }
    }

    pub fn state(&self) -> Arc<NodeControlState> {
        self.state.clone()
    }

    /// Runs until dropped: reads the node policies every discovery interval and keeps one loop per pool.
    pub async fn run(self) {
        let Some(dir) = self.config.policies_dir.clone() else {
            return;
        };
        let mut files: PolicyDir<NodePolicy> = PolicyDir::default();
        let mut loops: HashMap<String, (watch::Sender<FilePolicy>, JoinHandle<()>)> =
            HashMap::new();
        loop {
            let mut policies: BTreeMap<String, (String, NodePolicy)> = BTreeMap::new();
            for (path, p) in files.load(&dir, |path, text| {
                if !is_node_policy(text) {
                    return Ok(None);
                }
                parse_node_policy(&path.display().to_string(), text)
                    .map(Some)
                    .map_err(|e| e.to_string())
            }) {
                let path = path.display().to_string();
                // Files come sorted by name: the first one for a pool wins, whatever the listing order.
                match policies.get(&p.pool) {
                    Some((first, _)) => {
                        tracing::warn!(pool = %p.pool, first = %first, ignored = %path, "two node policy files for one pool; the first by name is used")
                    }
                    None => {
                        policies.insert(p.pool.clone(), (path, p));
                    }
                }
            }
            loops.retain(|pool, (_, handle)| {
                let keep = policies.contains_key(pool);
                if !keep {
                    tracing::info!(pool = %pool, "node policy gone: pool no longer scaled");
                    handle.abort();
                    self.state.pools.write().expect("pools lock").remove(pool);
                }
                keep
            });
            for (pool, (path, policy)) in policies {
                match loops.get(&pool) {
                    Some((tx, _)) => {
                        tx.send_if_modified(|cur| {
                            let changed = cur.1 != policy || cur.0 != path;
                            if changed {
                                tracing::info!(pool = %pool, "node policy changed");
                                *cur = (path.clone(), policy.clone());
                            }
                            changed
                        });
                    }
                    None => {
                        tracing::info!(pool = %pool, file = %path, "node autoscaling");
                        let (tx, rx) = watch::channel((path, policy));
                        let task = PoolLoop {
                            pool: pool.clone(),
                            swarm: self.swarm.clone(),
                            state: self.state.clone(),
                            providers: self.providers.clone(),
                            clock: self.clock.clone(),
                            dry_run: self.config.dry_run,
                        };
                        loops.insert(pool, (tx, tokio::spawn(task.run(rx))));
                    }
                }
            }
            tokio::time::sleep(self.config.discovery_interval).await;
        }
    }
}

/// A node policy and the file it came from.
type FilePolicy = (String, NodePolicy);

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Added,
    Removed,
    Failed,
}

struct PoolLoop<S> {
    pool: String,
    swarm: Arc<S>,
    state: Arc<NodeControlState>,
    providers: ProviderFactory,
    clock: Arc<dyn Clock>,
    dry_run: bool,
}

impl<S: SwarmApi> PoolLoop<S> {
    async fn run(self, rx: watch::Receiver<FilePolicy>) {
        let mut memory = PoolMemory::default();
        let mut failures = 0u32;
        let mut running: Option<(JoinHandle<Outcome>, Operation)> = None;
        let mut rng = fastrand::Rng::new();
        loop {
            let (file, policy) = rx.borrow().clone();
            let now = self.clock.now();
            if running.as_ref().is_some_and(|(h, _)| h.is_finished()) {
                let (handle, _) = running.take().expect("a finished operation");
                match handle.await.unwrap_or(Outcome::Failed) {
                    Outcome::Added => {
                        failures = 0;
                        memory.last_add = Some(now);
                    }
                    Outcome::Removed => failures = 0,
                    Outcome::Failed => {
                        failures += 1;
                        let wait = backoff(failures, policy.interval, MAX_POOL_BACKOFF, rng.f64());
                        memory.hold_until = Some(now.plus(wait));
                    }
                }
            }
            let status = match self.swarm.cluster().await {
                Err(e) => {
                    self.state.log.push(NodeRecord::Decision {
                        at: now,
                        pool: self.pool.clone(),
                        action: NodeAction::None,
                        reason: NodeReason::DockerError,
                        dry_run: false,
                        status: PoolStatus::default(),
                        error: Some(e.to_string()),
                    });
                    None
                }
                Ok(cluster) => {
                    self.state.log.set_pending(&pending_by_service(&cluster));
                    let d = decide(&policy, &cluster, &memory, running.is_some(), now);
                    memory = d.memory.clone();
                    let act = !self.dry_run && d.action != NodeAction::None;
                    self.state.log.push(NodeRecord::Decision {
                        at: now,
                        pool: self.pool.clone(),
                        action: d.action.clone(),
                        reason: d.reason,
                        dry_run: self.dry_run && d.action != NodeAction::None,
                        status: d.status.clone(),
                        error: None,
                    });
                    if act {
                        let op = Op {
                            pool: self.pool.clone(),
                            policy: policy.clone(),
                            reason: d.reason,
                            swarm: self.swarm.clone(),
                            provider: (self.providers)(&policy.provider),
                            state: self.state.clone(),
                            clock: self.clock.clone(),
                            started: Instant::now(),
                            provider_time: Duration::ZERO,
                        };
                        let (name, handle) = match d.action.clone() {
                            NodeAction::Add { count } => ("add", tokio::spawn(op.add(count))),
                            NodeAction::Remove {
                                node,
                                hostname,
                                drain,
                            } => ("remove", tokio::spawn(op.remove(node, hostname, drain))),
                            NodeAction::None => unreachable!("act only on an action"),
                        };
                        let count = match d.action {
                            NodeAction::Add { count } => count,
                            _ => 0,
                        };
                        metrics::gauge!(NODES, "pool" => self.pool.clone(), "state" => "provisioning")
                            .set(f64::from(count));
                        running = Some((
                            handle,
                            Operation {
                                operation: name,
                                reason: d.reason,
                                started_at: now,
                            },
                        ));
                    } else if running.is_none() {
                        metrics::gauge!(NODES, "pool" => self.pool.clone(), "state" => "provisioning")
                            .set(0.0);
                    }
                    Some(d.status)
                }
            };
            self.state.pools.write().expect("pools lock").insert(
                self.pool.clone(),
                PoolEntry {
                    pool: self.pool.clone(),
                    file,
                    policy: policy.clone(),
                    status,
                    operation: running.as_ref().map(|(_, o)| o.clone()),
                    memory: memory.clone(),
                },
            );
            tokio::time::sleep(policy.interval).await;
        }
    }
}

/// Tasks pending for lack of room, per service.
fn pending_by_service(cluster: &Cluster) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    for t in cluster.tasks.iter().filter(|t| t.unschedulable) {
        *out.entry(t.service.clone()).or_insert(0) += 1;
    }
    out
}

/// One node operation of a pool, run in a task of its own.
struct Op<S> {
    pool: String,
    policy: NodePolicy,
    reason: NodeReason,
    swarm: Arc<S>,
    provider: Arc<dyn NodeProvider>,
    state: Arc<NodeControlState>,
    clock: Arc<dyn Clock>,
    started: Instant,
    /// Time spent in provider calls, retries included.
    provider_time: Duration,
}

impl<S: SwarmApi> Op<S> {
    fn record(
        &self,
        operation: &'static str,
        step: Step,
        nodes: Vec<NodeRef>,
        error: Option<String>,
    ) {
        self.state.log.push(NodeRecord::Operation {
            at: self.clock.now(),
            pool: self.pool.clone(),
            operation,
            step,
            reason: self.reason,
            nodes,
            provider_ms: Some(self.provider_time.as_millis() as u64),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            error,
        });
    }

    async fn create(
        &mut self,
        req: CreateRequest,
    ) -> Result<Vec<provider::NewNode>, provider::ProviderError> {
        let t = Instant::now();
        let p = self.provider.clone();
        let r = with_retries(self.policy.provider.attempts, RETRY_BASE, move || {
            let (p, req) = (p.clone(), req.clone());
            Box::pin(async move { p.create(&req).await })
        })
        .await;
        self.provider_time += t.elapsed();
        let outcome = if r.is_ok() { "ok" } else { "error" };
        metrics::histogram!(PROVIDER_SECONDS, "pool" => self.pool.clone(), "call" => "create", "outcome" => outcome)
            .record(t.elapsed().as_secs_f64());
        r
    }

    async fn delete(&mut self, node: &str, hostname: &str) -> Result<(), provider::ProviderError> {
        let t = Instant::now();
        let p = self.provider.clone();
        let req = DeleteRequest {
            pool: self.pool.clone(),
            node: node.to_string(),
            hostname: hostname.to_string(),
        };
        let r = with_retries(self.policy.provider.attempts, RETRY_BASE, move || {
            let (p, req) = (p.clone(), req.clone());
            Box::pin(async move { p.delete(&req).await })
        })
        .await;
        self.provider_time += t.elapsed();
        let outcome = if r.is_ok() { "ok" } else { "error" };
        metrics::histogram!(PROVIDER_SECONDS, "pool" => self.pool.clone(), "call" => "delete", "outcome" => outcome)
            .record(t.elapsed().as_secs_f64());
        r
    }

    async fn add(mut self, count: u32) -> Outcome {
        let (join_token, manager) = match self
            .swarm
            .join_info(self.policy.provider.manager.clone())
            .await
        {
            Ok(j) => j,
            Err(e) => {
                self.record("add", Step::Failed, Vec::new(), Some(e.to_string()));
                return Outcome::Failed;
            }
        };
        let req = CreateRequest {
            pool: self.pool.clone(),
            count,
            join_token,
            manager,
        };
        let made = match self.create(req).await {
            Ok(m) => m,
            Err(e) => {
                self.record("add", Step::Failed, Vec::new(), Some(e.to_string()));
                return Outcome::Failed;
            }
        };
        let refs = |nodes: &[(provider::NewNode, Option<String>)]| -> Vec<NodeRef> {
            nodes
                .iter()
                .map(|(n, id)| NodeRef {
                    hostname: n.hostname.clone(),
                    id: id.clone().or(n.id.clone()).unwrap_or_default(),
                })
                .collect()
        };
        let mut waiting: Vec<(provider::NewNode, Option<String>)> =
            made.into_iter().map(|n| (n, None)).collect();
        self.record("add", Step::Provisioned, refs(&waiting), None);
        let deadline = Instant::now() + self.policy.provider.provision_timeout;
        let mut joined = Vec::new();
        loop {
            if let Ok(cluster) = self.swarm.cluster().await {
                let mut still = Vec::new();
                for (n, _) in waiting {
                    let found = find_node(&cluster, &n).cloned();
                    let Some(found) = found else {
                        still.push((n, None));
                        continue;
                    };
                    if found.pool() != Some(self.pool.as_str()) {
                        if let Err(e) = self
                            .swarm
                            .add_label(&found.id, POOL_LABEL, &self.pool)
                            .await
                        {
                            tracing::warn!(pool = %self.pool, node = %found.id, error = %e, "labelling a new node failed; retrying");
                            still.push((n, Some(found.id)));
                            continue;
                        }
                    }
                    if found.state == NodeState::Ready {
                        joined.push((n, Some(found.id)));
                    } else {
                        still.push((n, Some(found.id)));
                    }
                }
                waiting = still;
            }
            if waiting.is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        if !waiting.is_empty() {
            // Not joined in time: failed, and deleted so that no half-made machine is left behind.
            let mut errors = Vec::new();
            for (n, id) in &waiting {
                let id = id.clone().or(n.id.clone()).unwrap_or_default();
                if let Err(e) = self.delete(&id, &n.hostname).await {
                    errors.push(format!("deleting {}: {e}", n.hostname));
                }
                if !id.is_empty() {
                    if let Err(e) = self.swarm.remove_node(&id).await {
                        errors.push(format!("removing {id}: {e}"));
                    }
                }
            }
            let why = format!(
                "not Ready within {}{}",
                humantime::format_duration(self.policy.provider.provision_timeout),
                if errors.is_empty() {
                    String::new()
                } else {
                    format!("; {}", errors.join("; "))
                }
            );
            self.record("add", Step::JoinTimeout, refs(&waiting), Some(why));
        }
        if joined.is_empty() {
            return Outcome::Failed;
        }
        self.record("add", Step::Joined, refs(&joined), None);
        if waiting.is_empty() {
            Outcome::Added
        } else {
            Outcome::Failed
        }
    }

    async fn remove(mut self, node: String, hostname: String, drain: bool) -> Outcome {
        let me = vec![NodeRef {
            hostname: hostname.clone(),
            id: node.clone(),
        }];
        if drain {
            if let Err(e) = self.drain(&node).await {
                let step = if e.is_empty() {
                    Step::DrainTimeout
                } else {
                    Step::Failed
                };
                let why = if e.is_empty() {
                    format!(
                        "its tasks did not run elsewhere within {}; the node is active again",
                        humantime::format_duration(self.policy.scale_down.drain_timeout)
                    )
                } else {
                    e
                };
                self.record("remove", step, me, Some(why));
                return Outcome::Failed;
            }
            self.record("remove", Step::Drained, me.clone(), None);
        }
        if let Err(e) = self.delete(&node, &hostname).await {
            if drain {
                let _ = self
                    .swarm
                    .set_availability(&node, Availability::Active)
                    .await;
            }
            self.record(
                "remove",
                Step::Failed,
                me,
                Some(format!("provider delete: {e}")),
            );
            return Outcome::Failed;
        }
        if let Err(e) = self.swarm.remove_node(&node).await {
            self.record("remove", Step::Failed, me, Some(e.to_string()));
            return Outcome::Failed;
        }
        self.record("remove", Step::Removed, me, None);
        Outcome::Removed
    }

    /// Drains `node` and waits until none of the replicated tasks meant to run is on it and every
    /// service that had one there runs all its tasks. Err("") on timeout (the node is made active
    /// again), Err(message) when Docker failed.
    async fn drain(&self, node: &str) -> Result<(), String> {
        let services: Vec<String> = match self.swarm.cluster().await {
            Ok(c) => c
                .tasks
                .iter()
                .filter(|t| t.node_id.as_deref() == Some(node) && !t.global)
                .map(|t| t.service.clone())
                .collect(),
            Err(e) => return Err(e.to_string()),
        };
        self.swarm
            .set_availability(node, Availability::Drain)
            .await
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + self.policy.scale_down.drain_timeout;
        loop {
            if let Ok(c) = self.swarm.cluster().await {
                let moved = c.tasks.iter().all(|t| {
                    let on_it = t.node_id.as_deref() == Some(node) && !t.global;
                    let settled = !services.contains(&t.service) || t.running;
                    !on_it && settled
                });
                if moved {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let _ = self
                    .swarm
                    .set_availability(node, Availability::Active)
                    .await;
                return Err(String::new());
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The swarm node a provider's answer names: by ID when given, else the newest node with that
/// hostname that is not down (a hostname can come back after an old node with it went down).
fn find_node<'c>(cluster: &'c Cluster, n: &provider::NewNode) -> Option<&'c NodeView> {
    if let Some(id) = &n.id {
        return cluster.nodes.iter().find(|x| &x.id == id);
    }
    cluster
        .nodes
        .iter()
        .filter(|x| x.hostname == n.hostname && x.state != NodeState::Down)
        .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
}

#[cfg(test)]
mod tests;
