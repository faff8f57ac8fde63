//! HPA `behavior`: stabilization windows and rate policies over an explicit [`History`].
//!
//! Mirrors `stabilizeRecommendationWithBehaviors`, `convertDesiredReplicasWithBehaviorRate`,
//! `calculateScaleUpLimitWithScalingRules` and `calculateScaleDownLimitWithBehaviors` of the HPA's
//! `horizontal.go`, with the controller's in-memory maps replaced by plain data passed in and out.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::decide::Decision;
use super::model::{Policy, RateLimit, ScalingRules, Select};
use super::time::Timestamp;

/// Everything a decision needs from earlier ticks of one service. Keep one per service across ticks and
/// update it with [`History::record`] after each decision; it prunes itself to what can still matter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Unstabilized recommendations (the HPA's `recommendations`).
    #[serde(default)]
    pub recommendations: Vec<TimedReplicas>,
    /// Replicas added per scale-up (the HPA's `scaleUpEvents`).
    #[serde(default)]
    pub scale_up_events: Vec<TimedReplicas>,
    /// Replicas removed per scale-down (the HPA's `scaleDownEvents`).
    #[serde(default)]
    pub scale_down_events: Vec<TimedReplicas>,
    /// Demand per metric, at most one sample per [`LOAD_RESOLUTION`]; input of prediction.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub load: BTreeMap<String, Vec<LoadSample>>,
    /// When the count last changed, in either direction (for `cooldown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale: Option<Timestamp>,
}

/// A replica count (a recommendation, or the size of a scale event) at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedReplicas {
    pub at: Timestamp,
    pub replicas: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSample {
    pub at: Timestamp,
    pub value: f64,
}

/// Demand history is kept at this resolution: fine enough for forecasting minutes ahead, coarse enough
/// that eight days of it stay small (2,304 samples per metric).
pub const LOAD_RESOLUTION: Duration = Duration::from_secs(300);
/// Demand history covers a week plus a day, so a weekly seasonal lag still finds data.
pub const LOAD_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

impl History {
    /// The history of a target seen for the first time, running `current` replicas: the HPA records the
    /// current count as a first recommendation (`recordInitialRecommendation`), so that a controller that
    /// starts or restarts does not scale down before one scale-down window has passed.
    pub fn first_seen(current: u32, now: Timestamp) -> History {
        History {
            recommendations: vec![TimedReplicas {
                at: now,
                replicas: current,
            }],
            ..History::default()
        }
    }

    /// Records what `decision` did at `now`: its recommendation (if any), a scale event when it changed
    /// the count, and demand samples; then drops entries no window or period of `policy` can reach.
    /// Call it once the decision is applied; if scaling failed, record a copy with `desired = current`.
    pub fn record(&mut self, policy: &Policy, decision: &Decision, now: Timestamp) {
        let (recommendation, from, to) =
            (decision.recommendation, decision.current, decision.desired);
        let b = &policy.behavior;
        if let Some(r) = recommendation {
            let keep = b.scale_up.stabilization.max(b.scale_down.stabilization);
            self.recommendations.retain(|x| x.at > now.minus(keep));
            self.recommendations.push(TimedReplicas {
                at: now,
                replicas: r,
            });
        }
        if to != from {
            self.last_scale = Some(now);
        }
        if to > from {
            let keep = b.scale_up.longest_period();
            self.scale_up_events.retain(|x| x.at > now.minus(keep));
            self.scale_up_events.push(TimedReplicas {
                at: now,
                replicas: to - from,
            });
        } else if to < from {
            let keep = b.scale_down.longest_period();
            self.scale_down_events.retain(|x| x.at > now.minus(keep));
            self.scale_down_events.push(TimedReplicas {
                at: now,
                replicas: from - to,
            });
        }
        for (metric, value) in decision.loads() {
            let series = self.load.entry(metric).or_default();
            if series
                .last()
                .is_none_or(|last| now.since(last.at) >= LOAD_RESOLUTION)
            {
                let cutoff = now.minus(LOAD_RETENTION);
                let stale = series.iter().take_while(|s| s.at < cutoff).count();
                series.drain(..stale);
                series.push(LoadSample { at: now, value });
            }
        }
    }
}

/// Why behavior changed the recommendation, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    None,
    /// A rate policy (`ScaleUpLimit` / `ScaleDownLimit`).
    Rate,
    /// `max` (`TooManyReplicas`).
    Max,
    /// `min` (`TooFewReplicas`).
    Min,
    /// The direction's `cooldown` since the last scale event (not in the HPA).
    Cooldown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalized {
    /// After the stabilization windows.
    pub stabilized: u32,
    /// After rate policies and the min/max bounds: the replicas to run.
    pub replicas: u32,
    pub limit: Limit,
}

/// `normalizeDesiredReplicasWithBehaviors`: stabilize `desired`, then apply rate policies and bounds.
pub fn normalize(
    policy: &Policy,
    history: &History,
    current: u32,
    desired: u32,
    now: Timestamp,
) -> Normalized {
    let stabilized = stabilize(policy, history, current, desired, now);
    let b = &policy.behavior;
    let cooldown = match stabilized.cmp(&current) {
        std::cmp::Ordering::Greater => b.scale_up.cooldown,
        std::cmp::Ordering::Less => b.scale_down.cooldown,
        std::cmp::Ordering::Equal => Duration::ZERO,
    };
    if !cooldown.is_zero()
        && history
            .last_scale
            .is_some_and(|at| at > now.minus(cooldown))
    {
        return Normalized {
            stabilized,
            replicas: current,
            limit: Limit::Cooldown,
        };
    }
    let (replicas, limit) = limit_rate(policy, history, current, stabilized, now);
    Normalized {
        stabilized,
        replicas,
        limit,
    }
}

/// `stabilizeRecommendationWithBehaviors`: the result lies between the lowest recommendation in the
/// scale-up window and the highest in the scale-down window, as close to `current` as that allows.
fn stabilize(
    policy: &Policy,
    history: &History,
    current: u32,
    desired: u32,
    now: Timestamp,
) -> u32 {
    let up_cutoff = now.minus(policy.behavior.scale_up.stabilization);
    let down_cutoff = now.minus(policy.behavior.scale_down.stabilization);
    let (mut up, mut down) = (desired, desired);
    for rec in &history.recommendations {
        if rec.at > up_cutoff {
            up = up.min(rec.replicas);
        }
        if rec.at > down_cutoff {
            down = down.max(rec.replicas);
        }
    }
    current.max(up).min(down)
}

/// `convertDesiredReplicasWithBehaviorRate`.
fn limit_rate(
    policy: &Policy,
    history: &History,
    current: u32,
    desired: u32,
    now: Timestamp,
) -> (u32, Limit) {
    let (current_i, desired_i) = (i64::from(current), i64::from(desired));
    if desired > current {
        let rate =
            scale_up_limit(current_i, history, &policy.behavior.scale_up, now).max(current_i);
        let (allowed, limit) = if i64::from(policy.max) > rate {
            (rate, Limit::Rate)
        } else {
            (i64::from(policy.max), Limit::Max)
        };
        if desired_i > allowed {
            return (to_u32(allowed), limit);
        }
    } else if desired < current {
        let rate =
            scale_down_limit(current_i, history, &policy.behavior.scale_down, now).min(current_i);
        let (allowed, limit) = if i64::from(policy.min) < rate {
            (rate, Limit::Rate)
        } else {
            (i64::from(policy.min), Limit::Min)
        };
        if desired_i < allowed {
            return (to_u32(allowed), limit);
        }
    }
    (desired, Limit::None)
}

fn to_u32(x: i64) -> u32 {
    x.clamp(0, i64::from(u32::MAX)) as u32
}

/// `getReplicasChangePerPeriod`: replicas changed by events strictly inside the last `period`.
fn change_in_period(events: &[TimedReplicas], period: Duration, now: Timestamp) -> i64 {
    let cutoff = now.minus(period);
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| i64::from(e.replicas))
        .sum()
}

/// The replica count at the start of `period`, reconstructed from the scale events inside it.
fn period_start(current: i64, history: &History, period: Duration, now: Timestamp) -> i64 {
    current - change_in_period(&history.scale_up_events, period, now)
        + change_in_period(&history.scale_down_events, period, now)
}

/// `calculateScaleUpLimitWithScalingRules`.
fn scale_up_limit(current: i64, history: &History, rules: &ScalingRules, now: Timestamp) -> i64 {
    let proposals = rules.policies.iter().map(|p| {
        let start = period_start(current, history, p.period, now);
        match p.limit {
            RateLimit::Replicas(n) => start + i64::from(n),
            // Rounded up so that a small percentage of a small count still allows one more replica.
            RateLimit::Percent(pct) => {
                (start as f64 * (1.0 + f64::from(pct) / 100.0)).ceil() as i64
            }
        }
    });
    match rules.select {
        Select::Disabled => current,
        Select::Min => proposals.min().unwrap_or(current),
        Select::Max => proposals.max().unwrap_or(current),
    }
}

/// `calculateScaleDownLimitWithBehaviors`.
fn scale_down_limit(current: i64, history: &History, rules: &ScalingRules, now: Timestamp) -> i64 {
    let proposals = rules.policies.iter().map(|p| {
        let start = period_start(current, history, p.period, now);
        match p.limit {
            RateLimit::Replicas(n) => start - i64::from(n),
            // Truncated toward zero, as the HPA's int32 conversion does.
            RateLimit::Percent(pct) => (start as f64 * (1.0 - f64::from(pct) / 100.0)) as i64,
        }
    });
    match rules.select {
        Select::Disabled => current,
        // For scaling down the smallest change is the highest count, and the largest change the lowest.
        Select::Min => proposals.max().unwrap_or(current),
        Select::Max => proposals.min().unwrap_or(current),
    }
}

#[cfg(test)]
mod tests;
