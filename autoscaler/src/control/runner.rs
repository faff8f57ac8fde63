//! The shell of the control loop: discovers targets and their policies, runs one task per target
//! (so two actions on one target can never overlap), and owns the clock, backoff and the global cap.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::actuator::Actuator;
use super::config::ControlConfig;
use super::explain::DecisionLog;
use super::reconcile::{intent, Acted, ActionBudget, Intent, Memory, Now};
use super::source::MetricSource;
use super::target::{TargetId, TargetInfo};
use crate::policy::{
    is_node_policy, merge_file_and_labels, parse_policy, policy_from_labels, Policy, PolicyDir,
    Target, Timestamp,
};

/// The wall clock of the loop: `now` of decisions and the instant sample ages are measured against.
/// Monotonic durations come from `tokio::time::Instant`, so tests can pause both.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }
}

/// Where a target's policy came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyOrigin {
    File {
        path: String,
    },
    Labels,
    /// The file wins; the labels' differing settings are listed in `conflicts`.
    FileOverLabels {
        path: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyEntry {
    pub target: TargetId,
    pub origin: PolicyOrigin,
    pub policy: Policy,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
}

/// What the loop shares with the API.
#[derive(Debug)]
pub struct ControlState {
    pub policies: RwLock<BTreeMap<TargetId, PolicyEntry>>,
    /// Paused services, by name.
    pub paused: RwLock<HashSet<String>>,
    pub decisions: DecisionLog,
    /// The global cap on actions, shared by every target's task.
    budget: Mutex<ActionBudget>,
}

impl ControlState {
    fn new(max_actions_per_minute: u32) -> Self {
        Self {
            policies: RwLock::new(BTreeMap::new()),
            paused: RwLock::new(HashSet::new()),
            decisions: DecisionLog::default(),
            budget: Mutex::new(ActionBudget::new(max_actions_per_minute)),
        }
    }

    pub fn is_paused(&self, service: &str) -> bool {
        self.paused.read().expect("paused lock").contains(service)
    }
}

pub struct Controller<A, S> {
    actuator: Arc<A>,
    source: Arc<S>,
    state: Arc<ControlState>,
    config: ControlConfig,
    clock: Arc<dyn Clock>,
}

impl<A: Actuator, S: MetricSource> Controller<A, S> {
    pub fn new(actuator: A, source: S, config: ControlConfig) -> Self {
        Self::with_clock(actuator, source, config, Arc::new(SystemClock))
    }

    /// A controller reading the wall time from `clock` (tests pass one that follows paused time).
    pub fn with_clock(
        actuator: A,
        source: S,
        config: ControlConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        super::explain::describe();
        let state = Arc::new(ControlState::new(config.max_actions_per_minute));
        Self {
            actuator: Arc::new(actuator),
            source: Arc::new(source),
            state,
            config,
            clock,
        }
    }

    pub fn state(&self) -> Arc<ControlState> {
        self.state.clone()
    }

    /// Runs until the task is dropped: lists targets and policies every discovery interval and keeps
    /// one reconcile task per target that has a policy.
    pub async fn run(self) {
        let mut tasks: HashMap<TargetId, (watch::Sender<Policy>, JoinHandle<()>)> = HashMap::new();
        let mut files = PolicyFiles::default();
        let mut warned_unreachable = false;
        loop {
            let file_policies = match &self.config.policies_dir {
                Some(dir) => files.load(dir),
                None => BTreeMap::new(),
            };
            match self.actuator.targets().await {
                Ok(targets) => {
                    warned_unreachable = false;
                    let targets: Vec<TargetInfo> = targets
                        .into_iter()
                        .filter(|t| in_scope(t, &self.config.projects))
                        .collect();
                    let entries = resolve_policies(&targets, &file_policies);
                    tasks.retain(|id, (_, handle)| {
                        let keep = entries.contains_key(id);
                        if !keep {
                            tracing::info!(target = %id, "target gone or without a policy: stopped");
                            handle.abort();
                        }
                        keep
                    });
                    for (id, entry) in &entries {
                        match tasks.get(id) {
                            Some((tx, _)) => {
                                tx.send_if_modified(|p| {
                                    let changed = *p != entry.policy;
                                    if changed {
                                        tracing::info!(target = %id, "policy changed");
                                        *p = entry.policy.clone();
                                    }
                                    changed
                                });
                            }
                            None => {
                                tracing::info!(target = %id, origin = ?entry.origin, "autoscaling");
                                let (tx, rx) = watch::channel(entry.policy.clone());
                                let task = TargetTask {
                                    id: id.clone(),
                                    actuator: self.actuator.clone(),
                                    source: self.source.clone(),
                                    state: self.state.clone(),
                                    config: self.config.clone(),
                                    clock: self.clock.clone(),
                                };
                                tasks.insert(id.clone(), (tx, tokio::spawn(task.run(rx))));
                            }
                        }
                    }
                    *self.state.policies.write().expect("policies lock") = entries;
                }
                Err(e) => {
                    // Running target tasks keep holding with their own reason; this only delays discovery.
                    if !warned_unreachable {
                        tracing::warn!(error = %e, "listing targets failed");
                        warned_unreachable = true;
                    }
                }
            }
            tokio::time::sleep(self.config.discovery_interval).await;
        }
    }
}

/// Policies from files (by service name) and labels, for the listed targets. A file wins over labels.
/// Whether a target belongs to one of `projects` (a Compose project, or a Swarm stack by its
/// `com.docker.stack.namespace` label); every target does when `projects` is empty.
fn in_scope(t: &TargetInfo, projects: &[String]) -> bool {
    if projects.is_empty() {
        return true;
    }
    let project = match &t.id {
        TargetId::Compose { project, .. } => Some(project.as_str()),
        TargetId::Swarm { .. } => t
            .labels
            .get("com.docker.stack.namespace")
            .map(String::as_str),
    };
    project.is_some_and(|p| projects.iter().any(|x| x == p))
}

fn resolve_policies(
    targets: &[TargetInfo],
    files: &BTreeMap<String, (String, Policy)>,
) -> BTreeMap<TargetId, PolicyEntry> {
    let mut out = BTreeMap::new();
    for t in targets {
        let service = t.id.service();
        let from_labels = t
            .labels
            .keys()
            .any(|k| k.starts_with("plimsoll."))
            .then(|| policy_from_labels(service, &t.labels));
        let labels = match from_labels {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                tracing::warn!(target = %t.id, error = %e, "invalid plimsoll.* labels ignored");
                None
            }
            None => None,
        };
        let entry = match (files.get(service), labels) {
            (Some((path, file)), Some(labels)) => {
                let (policy, conflicts) = merge_file_and_labels(file.clone(), &labels);
                let conflicts: Vec<String> = conflicts.iter().map(|c| format!("{c:?}")).collect();
                if !conflicts.is_empty() {
                    tracing::info!(target = %t.id, file = %path, ?conflicts, "policy file wins over labels");
                }
                PolicyEntry {
                    target: t.id.clone(),
                    origin: PolicyOrigin::FileOverLabels { path: path.clone() },
                    policy,
                    conflicts,
                }
            }
            (Some((path, file)), None) => PolicyEntry {
                target: t.id.clone(),
                origin: PolicyOrigin::File { path: path.clone() },
                policy: file.clone(),
                conflicts: Vec::new(),
            },
            (None, Some(policy)) => PolicyEntry {
                target: t.id.clone(),
                origin: PolicyOrigin::Labels,
                policy,
                conflicts: Vec::new(),
            },
            (None, None) => continue,
        };
        out.insert(t.id.clone(), entry);
    }
    out
}

/// Service policy files of a directory, re-read when they change; errors are logged once per change.
/// Node policies (a top-level `pool`) in the same directory are the node loop's and skipped here.
#[derive(Default)]
struct PolicyFiles {
    dir: PolicyDir<Policy>,
}

impl PolicyFiles {
    /// Service name -> (path, policy) of every valid file.
    fn load(&mut self, dir: &Path) -> BTreeMap<String, (String, Policy)> {
        let mut out = BTreeMap::new();
        let policies = self.dir.load(dir, |path, text| {
            if is_node_policy(text) {
                return Ok(None);
            }
            parse_policy(&path.display().to_string(), text)
                .map(Some)
                .map_err(|e| e.to_string())
        });
        for (path, p) in policies {
            if let Some((other, _)) =
                out.insert(p.service.clone(), (path.display().to_string(), p.clone()))
            {
                tracing::warn!(service = %p.service, first = %other, second = %path.display(), "two policy files for one service; the later one wins");
            }
        }
        out
    }
}

/// The reconcile task of one target: the I/O around the pure step of [`super::reconcile`].
struct TargetTask<A, S> {
    id: TargetId,
    actuator: Arc<A>,
    source: Arc<S>,
    state: Arc<ControlState>,
    config: ControlConfig,
    clock: Arc<dyn Clock>,
}

impl<A: Actuator, S: MetricSource> TargetTask<A, S> {
    async fn run(self, policy: watch::Receiver<Policy>) {
        let mut mem = Memory::new(fastrand::u64(..));
        loop {
            let p = policy.borrow().clone();
            let wait = self.tick(&p, &mut mem).await;
            tokio::time::sleep(wait).await;
        }
    }

    /// One level-triggered pass: read the actual state, plan, act only on a difference. Returns when
    /// to run again.
    async fn tick(&self, policy: &Policy, mem: &mut Memory) -> Duration {
        let now = Now {
            wall: self.clock.now(),
            mono: Instant::now(),
        };
        let interval = policy.interval.unwrap_or(self.config.interval);
        let step = match self.actuator.observe(&self.id).await {
            Err(e) => mem.observe_failed(&self.id, &e, interval, now),
            Ok(state) => {
                let containers: Vec<String> = state
                    .replicas
                    .iter()
                    .filter_map(|r| r.container_id.clone())
                    .collect();
                let custom: Vec<String> = policy
                    .metrics
                    .iter()
                    .filter(|m| matches!(m.target, Target::Average(_)))
                    .map(|m| m.name.clone())
                    .collect();
                let samples = self.source.sample(&containers, &custom).await;
                let paused = self.state.is_paused(self.id.service());
                let planned = mem.plan(policy, &state, samples.as_ref(), paused, interval, now);
                let intent = {
                    let mut budget = self.state.budget.lock().expect("budget lock");
                    intent(&planned, &state, self.config.dry_run, &mut budget, now.mono)
                };
                let acted = match intent {
                    Intent::Scale(n) => match self.actuator.scale(&self.id, n).await {
                        Ok(()) => Acted::Scaled,
                        Err(e) => Acted::Failed(e.to_string()),
                    },
                    other => other.into(),
                };
                mem.settle(&self.id, policy, planned, acted, interval, now)
            }
        };
        step.record.emit(now.mono.elapsed());
        self.state.decisions.push(step.record);
        step.requeue_after
    }
}
