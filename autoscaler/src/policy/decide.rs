//! The decision: metric votes, the HPA's out-of-range and missing-data rules, then behavior.

use std::fmt;

use serde::Serialize;

use super::behavior::{normalize, History, Limit, Normalized};
use super::calc::{compute, MetricDetail, MetricStatus};
use super::model::Policy;
use super::observation::Observation;
use super::predict::predict;
use super::time::Timestamp;

/// Why a decision came out as it did. The string form is stable: use it in logs and as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Every voting metric is inside its tolerance band.
    WithinTolerance,
    /// The metrics ask for the current count (e.g. a ratio outside tolerance that rounds back to it, or a
    /// recomputation with missing or not-ready replicas that would reverse the direction).
    Steady,
    ScaleUp,
    ScaleDown,
    /// Prediction asked for more than the reactive metrics.
    PredictedScaleUp,
    /// A stabilization window kept the count from following the latest recommendation.
    Stabilized,
    /// A rate policy capped the change.
    LimitedByRate,
    ClampedToMin,
    ClampedToMax,
    /// Metrics are missing: no metric could vote, or some could not and the rest would scale down.
    MissingDataHold,
    /// The service runs 0 replicas: autoscaling is off for it (as the HPA does when the target is at 0).
    ScalingDisabled,
    /// A behavior `cooldown` holds the count: the last scale event was too recent (not in the HPA).
    Cooldown,
    /// No replica is ready and the unhealthy ones use more than the target (the HPA's issue #64088): the
    /// count follows their usage upward (or holds while the replicas added for it start).
    AllReplicasUnready,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::WithinTolerance => "within_tolerance",
            Reason::Steady => "steady",
            Reason::ScaleUp => "scale_up",
            Reason::ScaleDown => "scale_down",
            Reason::PredictedScaleUp => "predicted_scale_up",
            Reason::Stabilized => "stabilized",
            Reason::LimitedByRate => "limited_by_rate",
            Reason::ClampedToMin => "clamped_to_min",
            Reason::ClampedToMax => "clamped_to_max",
            Reason::MissingDataHold => "missing_data_hold",
            Reason::ScalingDisabled => "scaling_disabled",
            Reason::AllReplicasUnready => "all_replicas_unready",
            Reason::Cooldown => "cooldown",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision for one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub service: String,
    /// Replicas before the decision.
    pub current: u32,
    /// Replicas to run.
    pub desired: u32,
    pub reason: Reason,
    /// The unstabilized recommendation (max over metric votes, raised by prediction); `None` when the HPA
    /// would not compute one (out-of-range count, missing data, scaling disabled).
    pub recommendation: Option<u32>,
    /// What prediction asked for, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted: Option<u32>,
    pub metrics: Vec<MetricDetail>,
}

impl Decision {
    /// Demand per metric, for [`History::record`].
    pub fn loads(&self) -> impl Iterator<Item = (String, f64)> + '_ {
        self.metrics
            .iter()
            .filter_map(|m| m.load.map(|l| (m.name.clone(), l)))
    }
}

/// One tick of the autoscaler: HPA-exact metric votes, then the policy's behavior against `history`.
/// Pure: `now` is the decision instant, and nothing is read or written besides the arguments.
pub fn decide(policy: &Policy, obs: &Observation, history: &History, now: Timestamp) -> Decision {
    run(policy, obs, Some((history, now)))
}

/// The metric recommendation clamped to `[min, max]`, without behavior or prediction: a first decision
/// with no history (`plimsoll decide` without `--history`).
pub fn recommend(policy: &Policy, obs: &Observation) -> Decision {
    run(policy, obs, None)
}

fn run(policy: &Policy, obs: &Observation, behavior: Option<(&History, Timestamp)>) -> Decision {
    let current = obs.current_replicas;
    let metrics: Vec<MetricDetail> = policy
        .metrics
        .iter()
        .map(|spec| compute(spec, obs, policy.tolerance, current.max(1)))
        .collect();
    let mut decision = Decision {
        service: obs.service.clone(),
        current,
        desired: current,
        reason: Reason::Steady,
        recommendation: None,
        predicted: None,
        metrics,
    };
    // The HPA's reconcileAutoscaler checks these before looking at metrics.
    if current == 0 {
        decision.reason = Reason::ScalingDisabled;
        return decision;
    }
    if current > policy.max || current < policy.min {
        let (desired, reason) = if current > policy.max {
            (policy.max, Reason::ClampedToMax)
        } else {
            (policy.min, Reason::ClampedToMin)
        };
        decision.desired = desired;
        decision.reason = reason;
        return decision;
    }
    let votes = decision.metrics.iter().map(|m| m.proposal);
    let any_invalid = votes.clone().any(|v| v.is_none());
    let reactive = match votes.flatten().max() {
        Some(max) if !any_invalid || max >= current => max,
        _ => {
            decision.reason = Reason::MissingDataHold;
            return decision;
        }
    };
    let normalized = match behavior {
        Some((history, now)) => {
            if policy.predictive.enabled {
                decision.predicted = predict(policy, history, &decision.metrics, current, now);
            }
            // Prediction only ever raises the recommendation: never below the reactive answer.
            let recommendation = decision.predicted.map_or(reactive, |p| p.max(reactive));
            decision.recommendation = Some(recommendation);
            normalize(policy, history, current, recommendation, now)
        }
        None => {
            decision.recommendation = Some(reactive);
            clamp(policy, reactive)
        }
    };
    decision.desired = normalized.replicas;
    decision.reason = reason(&decision, &normalized, reactive);
    decision
}

fn clamp(policy: &Policy, desired: u32) -> Normalized {
    let (replicas, limit) = if desired > policy.max {
        (policy.max, Limit::Max)
    } else if desired < policy.min {
        (policy.min, Limit::Min)
    } else {
        (desired, Limit::None)
    };
    Normalized {
        stabilized: desired,
        replicas,
        limit,
    }
}

fn reason(d: &Decision, n: &Normalized, reactive: u32) -> Reason {
    let recommendation = d.recommendation.unwrap_or(reactive);
    // The count follows a vote from unhealthy replicas (or waits for the replicas it added): said even
    // when a rate policy or max bounds it, since it is the more surprising part; the metric's
    // `all_replicas_unready` status and the recommendation show the rest.
    let unready = recommendation == reactive
        && d.metrics
            .iter()
            .any(|m| m.status == MetricStatus::AllReplicasUnready && m.proposal == Some(reactive));
    match n.limit {
        Limit::Rate | Limit::Max if unready && d.desired >= d.current => Reason::AllReplicasUnready,
        Limit::Rate => Reason::LimitedByRate,
        Limit::Cooldown => Reason::Cooldown,
        Limit::Max => Reason::ClampedToMax,
        Limit::Min => Reason::ClampedToMin,
        Limit::None if n.stabilized != recommendation => Reason::Stabilized,
        Limit::None if unready && d.desired >= d.current => Reason::AllReplicasUnready,
        Limit::None if d.desired > d.current && recommendation > reactive => {
            Reason::PredictedScaleUp
        }
        Limit::None if d.desired > d.current => Reason::ScaleUp,
        Limit::None if d.desired < d.current => Reason::ScaleDown,
        Limit::None => {
            let voting = d.metrics.iter().filter(|m| m.proposal.is_some());
            if voting
                .clone()
                .all(|m| m.status == MetricStatus::WithinTolerance)
            {
                Reason::WithinTolerance
            } else {
                Reason::Steady
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
