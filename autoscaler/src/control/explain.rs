//! Every decision explained: a record kept in a ring per target for the API, a JSON log line, and
//! the autoscaler's metrics (the per-target ones through [`super::series`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use plimsoll_collector::telemetry::Family;
use serde::Serialize;

use super::plan::Cause;
use super::target::TargetId;
use crate::policy::{MetricDetail, Missing, Timestamp};

/// Records kept per target for `GET /api/v1/decisions`.
const RING: usize = 200;

/// The loop's metric families that are recorded through the `metrics` facade (the per-target ones
/// are in [`super::series`]).
pub const FAMILIES: &[Family] = &[Family::seconds(
    "plimsoll_convergence_seconds",
    "Time from a scale action until the service runs the new count.",
)];

/// What the loop did with a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing to do.
    None,
    /// The actuator was asked for the new count.
    Scaled,
    /// `--dry-run`: the action was decided and logged, not taken.
    DryRun,
    /// The actuator failed; the loop backs off.
    Failed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Scaled => "scaled",
            Action::DryRun => "dry_run",
            Action::Failed => "failed",
        }
    }
}

/// One tick of one target, as the API and the logs show it.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    pub at: Timestamp,
    pub target: String,
    pub service: String,
    pub current: u32,
    pub desired: u32,
    pub reason: Cause,
    /// `decided`, `hold` or `fallback`.
    pub reason_kind: &'static str,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The scale action of an earlier tick was seen converged this tick (every replica of the new count
    /// running), this long after it was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converged_after_ms: Option<u64>,
}

impl DecisionRecord {
    /// A record without a decision's details.
    pub fn new(
        target: &TargetId,
        at: Timestamp,
        current: u32,
        desired: u32,
        reason: Cause,
        action: Action,
    ) -> Self {
        DecisionRecord {
            at,
            target: target.to_string(),
            service: target.service().to_string(),
            current,
            desired,
            reason,
            reason_kind: reason.kind(),
            action,
            recommendation: None,
            metrics: Vec::new(),
            error: None,
            converged_after_ms: None,
        }
    }

    /// Logs this record (actions at info, no-ops at debug); its per-target counts are kept by
    /// [`super::series::Series::record`].
    pub fn emit(&self) {
        if let Some(ms) = self.converged_after_ms {
            metrics::histogram!(FAMILIES[0].name).record(ms as f64 / 1000.0);
            tracing::info!(target: "plimsoll::decision", scale_target = %self.target, replicas = self.current, took_ms = ms, "converged");
        }
        if self.action == Action::None
            && !tracing::enabled!(target: "plimsoll::decision", tracing::Level::DEBUG)
        {
            return;
        }
        // Inputs as one JSON field; the rest as plain fields, so JSON logs can be filtered on them.
        let inputs = serde_json::to_string(&self.metrics).unwrap_or_default();
        macro_rules! log {
            ($level:ident, $msg:literal) => {
                tracing::$level!(
                    target: "plimsoll::decision",
                    scale_target = %self.target,
                    service = %self.service,
                    current = self.current,
                    desired = self.desired,
                    reason = self.reason.as_str(),
                    action = self.action.as_str(),
                    recommendation = ?self.recommendation,
                    error = self.error.as_deref(),
                    inputs = %inputs,
                    $msg
                )
            };
        }
        match self.action {
            Action::None => log!(debug, "no change"),
            Action::Failed => log!(warn, "scale failed"),
            _ => log!(info, "scale"),
        }
    }
}

/// The policy metrics of one target that had no value at its last decision, so that a metric is
/// logged when it goes missing (at start: the metrics no source has) and when it is found again,
/// not every tick.
#[derive(Debug, Default)]
pub struct MissingMetrics(BTreeMap<String, Missing>);

impl MissingMetrics {
    /// Compares a tick's record with the last decision's and logs the changes. Ticks without a
    /// decision (holds) change nothing.
    pub fn update(&mut self, r: &DecisionRecord) {
        if r.metrics.is_empty() {
            return;
        }
        let now: BTreeMap<String, Missing> = r
            .metrics
            .iter()
            .filter_map(|m| m.missing.map(|why| (m.name.clone(), why)))
            .collect();
        for (name, why) in &now {
            if self.0.get(name) != Some(why) {
                let problem = r
                    .metrics
                    .iter()
                    .find(|m| &m.name == name)
                    .and_then(|m| m.problem.as_deref())
                    .unwrap_or_default();
                tracing::warn!(scale_target = %r.target, metric = %name, reason = why.as_str(), problem, "policy metric cannot be read: it does not vote");
            }
        }
        for name in self.0.keys().filter(|n| !now.contains_key(*n)) {
            tracing::info!(scale_target = %r.target, metric = %name, "policy metric found again");
        }
        self.0 = now;
    }
}

/// Recent decisions per target.
#[derive(Debug, Default)]
pub struct DecisionLog {
    rings: Mutex<HashMap<TargetId, VecDeque<DecisionRecord>>>,
}

impl DecisionLog {
    pub fn push(&self, target: &TargetId, r: DecisionRecord) {
        let mut rings = self.rings.lock().expect("decision log lock");
        let ring = rings.entry(target.clone()).or_default();
        if ring.len() == RING {
            ring.pop_front();
        }
        ring.push_back(r);
    }

    /// Oldest first; all targets when `target` is None.
    pub fn recent(&self, target: Option<&TargetId>) -> Vec<DecisionRecord> {
        let rings = self.rings.lock().expect("decision log lock");
        let mut out: Vec<DecisionRecord> = match target {
            Some(t) => rings
                .get(t)
                .map(|r| r.iter().cloned().collect())
                .unwrap_or_default(),
            None => rings.values().flat_map(|r| r.iter().cloned()).collect(),
        };
        out.sort_by_key(|r| r.at);
        out
    }

    /// The replicas `target` had at its latest decision.
    pub fn latest_current(&self, target: &TargetId) -> Option<u32> {
        let rings = self.rings.lock().expect("decision log lock");
        rings.get(target)?.back().map(|r| r.current)
    }

    /// The targets with recorded decisions.
    pub fn targets(&self) -> Vec<TargetId> {
        let rings = self.rings.lock().expect("decision log lock");
        rings.keys().cloned().collect()
    }
}
