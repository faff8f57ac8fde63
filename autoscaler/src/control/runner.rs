//! The shell of the control loop: discovers targets and their policies, runs one task per target
//! (so two actions on one target can never overlap), and owns the clock, backoff and the global cap.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use plimsoll_collector::telemetry::{describe_all, register_exposition, Exposition};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::actuator::Actuator;
use super::config::ControlConfig;
use super::explain::{DecisionLog, MissingMetrics};
use super::reconcile::{intent, Acted, ActionBudget, Intent, Memory, Now};
use super::resolve::{
    in_scope, resolve, FileReport, FileStatus, PolicyEntry, ReadFile, Resolution,
};
use super::series::Series;
use super::source::read::metric_reads;
use super::source::{MetricSource, ReplicaRef, Request};
use super::target::{TargetId, TargetInfo};
use crate::policy::{is_node_policy, parse_policy_file, Policy, PolicyDir, PolicyFile, Timestamp};

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

/// What the loop shares with the API.
#[derive(Debug)]
pub struct ControlState {
    pub policies: RwLock<BTreeMap<TargetId, PolicyEntry>>,
    /// What became of each policy file at the last discovery.
    pub files: RwLock<Vec<FileReport>>,
    /// Paused targets.
    pub paused: RwLock<HashSet<TargetId>>,
    pub decisions: DecisionLog,
    /// The per-target series of /metrics: a target's go when its task ends.
    pub series: Arc<Series>,
    /// The global cap on actions, shared by every target's task.
    budget: Mutex<ActionBudget>,
}

impl ControlState {
    pub(crate) fn new(max_actions_per_minute: u32) -> Self {
        Self {
            policies: RwLock::new(BTreeMap::new()),
            files: RwLock::new(Vec::new()),
            paused: RwLock::new(HashSet::new()),
            decisions: DecisionLog::default(),
            series: Arc::default(),
            budget: Mutex::new(ActionBudget::new(max_actions_per_minute)),
        }
    }

    pub fn is_paused(&self, target: &TargetId) -> bool {
        self.paused.read().expect("paused lock").contains(target)
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
        describe_all(super::explain::FAMILIES);
        let state = Arc::new(ControlState::new(config.max_actions_per_minute));
        let series: Arc<dyn Exposition> = state.series.clone();
        register_exposition(&series);
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
        let mut dir = PolicyDir::default();
        let mut warned_unreachable = false;
        let mut first_discovery = true;
        loop {
            let files = match &self.config.policies_dir {
                Some(d) => read_service_policies(&mut dir, d),
                None => Vec::new(),
            };
            match self.actuator.targets().await {
                Ok(targets) => {
                    warned_unreachable = false;
                    let targets: Vec<TargetInfo> = targets
                        .into_iter()
                        .filter(|t| in_scope(t, &self.config.projects))
                        .collect();
                    let Resolution { entries, files } = resolve(&targets, &files);
                    self.report_changes(&files);
                    if std::mem::take(&mut first_discovery) {
                        self.report_first_discovery(entries.len(), targets.len());
                    }
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
                    *self.state.files.write().expect("files lock") = files;
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

    /// Says after the first discovery how many targets have a policy, with how to give one a policy
    /// when none does.
    fn report_first_discovery(&self, scaled: usize, in_scope: usize) {
        if scaled > 0 {
            tracing::info!(
                targets = scaled,
                services = in_scope,
                "found {scaled} scaled target(s)"
            );
            return;
        }
        let dir = self.config.policies_dir.as_ref().map_or_else(
            || "the policies folder".to_string(),
            |d| d.display().to_string(),
        );
        tracing::info!(
            targets = 0,
            services = in_scope,
            "found no scaled target among {in_scope} service(s): label one, e.g. `docker service update --label-add plimsoll.min=1 --label-add plimsoll.max=5 --label-add plimsoll.cpu=70 SERVICE` (Compose: the same labels under the service's `labels:`), or add a policy file to {dir}"
        );
    }

    /// Logs what became of a policy file when it changed since the last discovery (invalid files are
    /// logged by the loader).
    fn report_changes(&self, now: &[FileReport]) {
        let before = self.state.files.read().expect("files lock");
        for r in now.iter().filter(|r| !before.contains(r)) {
            let (path, means) = (&r.path, r.means.as_deref().unwrap_or_default());
            match &r.status {
                FileStatus::Applied { target } => {
                    tracing::info!(file = %path, target = %target, "policy file applied")
                }
                FileStatus::Shadowed { target, by } => tracing::warn!(
                    file = %path, target = %target, winner = %by,
                    "two policy files for one target: this one is not applied (the more specific, then the first in path order, wins)"
                ),
                FileStatus::Ambiguous { candidates } => tracing::warn!(
                    file = %path, means, ?candidates,
                    "policy file matches several targets and is applied to none: add `project:`, `stack:` or `kind:`"
                ),
                FileStatus::NoTarget => {
                    tracing::info!(file = %path, means, "policy file matches no target (yet)")
                }
                FileStatus::Invalid { .. } => {}
            }
        }
    }
}

/// The service policy files of `dir` in path order, valid or not. Node policies (a top-level `pool`)
/// in the same folder are the node loop's and left out.
fn read_service_policies(cache: &mut PolicyDir<PolicyFile>, dir: &Path) -> Vec<ReadFile> {
    let valid = cache.load(dir, |path, text| {
        if is_node_policy(text) {
            return Ok(None);
        }
        parse_policy_file(&path.display().to_string(), text)
            .map(Some)
            .map_err(|e| e.to_string())
    });
    let mut files: Vec<ReadFile> = valid.into_iter().map(|(p, f)| (p, Ok(f))).collect();
    files.extend(cache.invalid().into_iter().map(|(p, e)| (p, Err(e))));
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
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
        // However the task ends (aborted when its target goes), its series go with it; dropped
        // after its last poll, so no tick can record after it.
        let _forget = ForgetSeries(self.state.clone(), self.id.clone());
        let mut mem = Memory::new(fastrand::u64(..));
        let mut missing = MissingMetrics::default();
        loop {
            let p = policy.borrow().clone();
            let wait = self.tick(&p, &mut mem, &mut missing).await;
            tokio::time::sleep(wait).await;
        }
    }

    /// One level-triggered pass: read the actual state, plan, act only on a difference. Returns when
    /// to run again.
    async fn tick(
        &self,
        policy: &Policy,
        mem: &mut Memory,
        missing: &mut MissingMetrics,
    ) -> Duration {
        let now = Now {
            wall: self.clock.now(),
            mono: Instant::now(),
        };
        let interval = policy.interval.unwrap_or(self.config.interval);
        let step = match self.actuator.observe(&self.id).await {
            Err(e) => mem.observe_failed(&self.id, &e, interval, now),
            Ok(state) => {
                let replicas: Vec<ReplicaRef> = state
                    .replicas
                    .iter()
                    .filter_map(|r| {
                        Some(ReplicaRef {
                            replica: r.id.clone(),
                            container: r.container_id.clone()?,
                        })
                    })
                    .collect();
                let metrics = metric_reads(policy);
                let req = Request {
                    service: self.id.service(),
                    replicas: &replicas,
                    metrics: &metrics,
                };
                let samples = self.source.sample(&req).await;
                let paused = self.state.is_paused(&self.id);
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
        step.record.emit();
        let series = &self.state.series;
        series.record(&self.id, &step.record, now.mono.elapsed());
        series.policy(&self.id, policy);
        missing.update(&step.record);
        self.state.decisions.push(&self.id, step.record);
        step.requeue_after
    }
}

/// Drops a target's series when its task ends.
struct ForgetSeries(Arc<ControlState>, TargetId);

impl Drop for ForgetSeries {
    fn drop(&mut self) {
        self.0.series.forget(&self.1);
    }
}
