//! Every decision explained: a record kept in a ring per target for the API, a JSON log line, and
//! the autoscaler's metrics.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::plan::Cause;
use super::target::TargetId;
use crate::policy::{MetricDetail, Missing, Policy, Timestamp};

pub const DESIRED: &str = "plimsoll_desired_replicas";
pub const CURRENT: &str = "plimsoll_current_replicas";
pub const SCALE_EVENTS: &str = "plimsoll_scale_events_total";
pub const DECISIONS: &str = "plimsoll_decisions_total";
pub const DECISION_DURATION: &str = "plimsoll_decision_duration_seconds";
pub const CONVERGENCE: &str = "plimsoll_convergence_seconds";
pub const METRIC_MISSING: &str = "plimsoll_metric_missing_total";
pub const SCALE_FAILURES: &str = "plimsoll_scale_failures_total";
pub const POLICY_MIN: &str = "plimsoll_policy_min_replicas";
pub const POLICY_MAX: &str = "plimsoll_policy_max_replicas";
pub const METRIC_TARGET: &str = "plimsoll_policy_metric_target";
pub const METRIC_OBSERVED: &str = "plimsoll_policy_metric_observed";

/// Records kept per target for `GET /api/v1/decisions`.
const RING: usize = 200;

pub fn describe() {
    metrics::describe_gauge!(DESIRED, "Replicas the autoscaler wants for the service.");
    metrics::describe_gauge!(CURRENT, "Replicas the service is asked to run.");
    metrics::describe_counter!(
        SCALE_EVENTS,
        "Scale actions taken, by direction and reason."
    );
    metrics::describe_counter!(DECISIONS, "Decisions made, by reason (holds included).");
    metrics::describe_histogram!(
        DECISION_DURATION,
        metrics::Unit::Seconds,
        "Time to observe, plan and act for one target."
    );
    metrics::describe_counter!(
        METRIC_MISSING,
        "Decisions in which a policy metric had no value, by metric and reason (no_series, not_a_counter...)."
    );
    metrics::describe_counter!(
        SCALE_FAILURES,
        "Scale actions the engine refused or that failed (never counted under --dry-run)."
    );
    metrics::describe_gauge!(POLICY_MIN, "The policy's min replicas.");
    metrics::describe_gauge!(POLICY_MAX, "The policy's max replicas.");
    metrics::describe_gauge!(
        METRIC_TARGET,
        "A policy metric's target, in its kind's unit (percent for utilization, value, seconds for below)."
    );
    metrics::describe_gauge!(
        METRIC_OBSERVED,
        "A policy metric's level at the last decision, in the target's unit."
    );
    metrics::describe_histogram!(
        CONVERGENCE,
        metrics::Unit::Seconds,
        "Time from a scale action until the service runs the new count."
    );
}

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

    /// Logs (actions at info, no-ops at debug) and counts this record.
    pub fn emit(&self, duration: Duration) {
        // `service` as users name it, `target` to tell apart two services of one name.
        let (service, target) = (self.service.clone(), self.target.clone());
        if let Some(ms) = self.converged_after_ms {
            metrics::histogram!(CONVERGENCE).record(ms as f64 / 1000.0);
            tracing::info!(target: "plimsoll::decision", scale_target = %self.target, replicas = self.current, took_ms = ms, "converged");
        }
        metrics::counter!(DECISIONS, "service" => service.clone(), "target" => target.clone(), "reason" => self.reason.as_str()).increment(1);
        for m in &self.metrics {
            if let Some(why) = m.missing {
                metrics::counter!(METRIC_MISSING, "service" => service.clone(), "target" => target.clone(), "metric" => m.name.clone(), "reason" => why.as_str()).increment(1);
            }
        }
        metrics::histogram!(DECISION_DURATION, "service" => service.clone(), "target" => target.clone())
            .record(duration.as_secs_f64());
        for m in &self.metrics {
            if let Some(level) = m.current {
                metrics::gauge!(METRIC_OBSERVED, "service" => service.clone(), "target" => target.clone(), "metric" => m.name.clone(), "kind" => m.target_kind)
                    .set(level);
            }
        }
        if self.action == Action::Failed {
            metrics::counter!(SCALE_FAILURES, "service" => service.clone(), "target" => target.clone()).increment(1);
        }
        metrics::gauge!(DESIRED, "service" => service.clone(), "target" => target.clone())
            .set(f64::from(self.desired));
        metrics::gauge!(CURRENT, "service" => service.clone(), "target" => target.clone())
            .set(f64::from(self.current));
        if self.action == Action::Scaled {
            let direction = if self.desired > self.current {
                "up"
            } else if self.desired < self.current {
                "down"
            } else {
                "converge"
            };
            metrics::counter!(SCALE_EVENTS, "service" => service, "target" => target, "direction" => direction, "reason" => self.reason.as_str()).increment(1);
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

/// The policy of `target` as gauges: its bounds and each metric's target (set every tick, so that a
/// changed policy shows at once).
pub fn emit_policy(target: &TargetId, policy: &Policy) {
    let (service, target) = (target.service().to_string(), target.to_string());
    metrics::gauge!(POLICY_MIN, "service" => service.clone(), "target" => target.clone())
        .set(f64::from(policy.min));
    metrics::gauge!(POLICY_MAX, "service" => service.clone(), "target" => target.clone())
        .set(f64::from(policy.max));
    for m in &policy.metrics {
        metrics::gauge!(METRIC_TARGET, "service" => service.clone(), "target" => target.clone(), "metric" => m.name.clone(), "kind" => m.target.kind())
            .set(m.target.as_f64());
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

    /// The targets with recorded decisions.
    pub fn targets(&self) -> Vec<TargetId> {
        let rings = self.rings.lock().expect("decision log lock");
        rings.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests;
