//! The autoscaler's per-target metrics, kept with the loop's state and rendered when /metrics is
//! scraped, so that every series of a target goes when the target goes (a removed service, a deleted
//! policy). Recorded through the `metrics` facade they would stay forever: its Prometheus recorder
//! cannot forget a series.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use plimsoll_collector::telemetry::{Buckets, Exposition, Family, SECONDS_BUCKETS};

use super::explain::{Action, DecisionRecord};
use super::target::TargetId;
use crate::policy::Policy;

#[cfg(test)]
mod tests;

pub const DESIRED: Family = Family::gauge(
    "plimsoll_desired_replicas",
    "Replicas the autoscaler wants for the service.",
);
pub const CURRENT: Family = Family::gauge(
    "plimsoll_current_replicas",
    "Replicas the service is asked to run.",
);
pub const POLICY_MIN: Family =
    Family::gauge("plimsoll_policy_min_replicas", "The policy's min replicas.");
pub const POLICY_MAX: Family =
    Family::gauge("plimsoll_policy_max_replicas", "The policy's max replicas.");
pub const METRIC_TARGET: Family = Family::gauge(
    "plimsoll_policy_metric_target",
    "A policy metric's target, in its kind's unit (percent for utilization, value, seconds for below).",
);
pub const METRIC_OBSERVED: Family = Family::gauge(
    "plimsoll_policy_metric_observed",
    "A policy metric's level at the last decision, in the target's unit.",
);
pub const DECISIONS: Family = Family::counter(
    "plimsoll_decisions_total",
    "Decisions made, by reason (holds included).",
);
pub const SCALE_EVENTS: Family = Family::counter(
    "plimsoll_scale_events_total",
    "Scale actions taken, by direction and reason.",
);
pub const METRIC_MISSING: Family = Family::counter(
    "plimsoll_metric_missing_total",
    "Decisions in which a policy metric had no value, by metric and reason (no_series, not_a_counter...).",
);
pub const SCALE_FAILURES: Family = Family::counter(
    "plimsoll_scale_failures_total",
    "Scale actions the engine refused or that failed (never counted under --dry-run).",
);
pub const DECISION_DURATION: Family = Family::seconds(
    "plimsoll_decision_duration_seconds",
    "Time to observe, plan and act for one target.",
);

/// Each policy metric's (name, kind, target).
type MetricTargets = Vec<(String, &'static str, f64)>;

/// What /metrics shows of one target.
#[derive(Debug, Clone)]
struct TargetSeries {
    desired: u32,
    current: u32,
    /// Min, max and each metric's (name, kind, target), from the policy of the last tick.
    policy: Option<(u32, u32, MetricTargets)>,
    /// Last level seen of each metric, by (name, kind): kept while a metric has no value.
    observed: BTreeMap<(String, &'static str), f64>,
    decisions: BTreeMap<&'static str, u64>,
    /// By (direction, reason).
    scale_events: BTreeMap<(&'static str, &'static str), u64>,
    /// By (metric, reason).
    missing: BTreeMap<(String, &'static str), u64>,
    failures: u64,
    duration: Buckets,
}

impl TargetSeries {
    fn new() -> Self {
        TargetSeries {
            desired: 0,
            current: 0,
            policy: None,
            observed: BTreeMap::new(),
            decisions: BTreeMap::new(),
            scale_events: BTreeMap::new(),
            missing: BTreeMap::new(),
            failures: 0,
            duration: Buckets::new(SECONDS_BUCKETS),
        }
    }
}

/// The series of every live target.
#[derive(Debug, Default)]
pub struct Series(Mutex<BTreeMap<TargetId, TargetSeries>>);

impl Series {
    fn with<R>(&self, id: &TargetId, f: impl FnOnce(&mut TargetSeries) -> R) -> R {
        let mut all = self.0.lock().expect("series lock");
        f(all.entry(id.clone()).or_insert_with(TargetSeries::new))
    }

    /// Counts one tick's record; `duration` is the time the tick took.
    pub fn record(&self, id: &TargetId, r: &DecisionRecord, duration: Duration) {
        self.with(id, |s| {
            *s.decisions.entry(r.reason.as_str()).or_default() += 1;
            for m in &r.metrics {
                let key = (m.name.clone(), m.target_kind);
                if let Some(why) = m.missing {
                    *s.missing.entry((m.name.clone(), why.as_str())).or_default() += 1;
                }
                if let Some(level) = m.current {
                    s.observed.insert(key, level);
                }
            }
            s.duration.record(duration.as_secs_f64());
            if r.action == Action::Failed {
                s.failures += 1;
            }
            (s.desired, s.current) = (r.desired, r.current);
            if r.action == Action::Scaled {
                let direction = match r.desired.cmp(&r.current) {
                    std::cmp::Ordering::Greater => "up",
                    std::cmp::Ordering::Less => "down",
                    std::cmp::Ordering::Equal => "converge",
                };
                *s.scale_events
                    .entry((direction, r.reason.as_str()))
                    .or_default() += 1;
            }
        });
    }

    /// The policy of `id` as gauges: its bounds and each metric's target (set every tick, so that a
    /// changed policy shows at once).
    pub fn policy(&self, id: &TargetId, policy: &Policy) {
        let metrics = policy
            .metrics
            .iter()
            .map(|m| (m.name.clone(), m.target.kind(), m.target.as_f64()))
            .collect();
        self.with(id, |s| s.policy = Some((policy.min, policy.max, metrics)));
    }

    /// Drops every series of `id`.
    pub fn forget(&self, id: &TargetId) {
        self.0.lock().expect("series lock").remove(id);
    }
}

impl Exposition for Series {
    fn render(&self, out: &mut String) {
        let all = self.0.lock().expect("series lock").clone();
        if all.is_empty() {
            return;
        }
        // Every series carries `service` as users name it and `target` to tell apart two services
        // of one name.
        let ids: BTreeMap<&TargetId, (String, String)> = all
            .keys()
            .map(|id| (id, (id.service().to_string(), id.to_string())))
            .collect();
        type Samples<'a> = &'a dyn Fn(&[(&str, &str)], &TargetSeries, &mut String);
        // A family's header, then its samples; nothing when it has none yet.
        let each = |family: &Family, out: &mut String, f: Samples| {
            let mut samples = String::new();
            for (id, s) in &all {
                let (service, target) = &ids[id];
                f(&[("service", service), ("target", target)], s, &mut samples);
            }
            if !samples.is_empty() {
                family.header(out);
                out.push_str(&samples);
            }
        };
        let with = |base: &[(&str, &str)], more: &[(&str, &str)]| -> Vec<(String, String)> {
            base.iter()
                .chain(more)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let sample = |family: &Family, out: &mut String, labels: &[(String, String)], v: f64| {
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            family.sample(out, &labels, v);
        };
        each(&DESIRED, out, &|l, s, out| {
            DESIRED.sample(out, l, f64::from(s.desired))
        });
        each(&CURRENT, out, &|l, s, out| {
            CURRENT.sample(out, l, f64::from(s.current))
        });
        each(&POLICY_MIN, out, &|l, s, out| {
            if let Some((min, _, _)) = &s.policy {
                POLICY_MIN.sample(out, l, f64::from(*min));
            }
        });
        each(&POLICY_MAX, out, &|l, s, out| {
            if let Some((_, max, _)) = &s.policy {
                POLICY_MAX.sample(out, l, f64::from(*max));
            }
        });
        each(&METRIC_TARGET, out, &|l, s, out| {
            for (name, kind, v) in s.policy.iter().flat_map(|p| &p.2) {
                sample(
                    &METRIC_TARGET,
                    out,
                    &with(l, &[("metric", name), ("kind", kind)]),
                    *v,
                );
            }
        });
        each(&METRIC_OBSERVED, out, &|l, s, out| {
            for ((name, kind), v) in &s.observed {
                sample(
                    &METRIC_OBSERVED,
                    out,
                    &with(l, &[("metric", name), ("kind", kind)]),
                    *v,
                );
            }
        });
        each(&DECISIONS, out, &|l, s, out| {
            for (reason, n) in &s.decisions {
                sample(&DECISIONS, out, &with(l, &[("reason", reason)]), *n as f64);
            }
        });
        each(&SCALE_EVENTS, out, &|l, s, out| {
            for ((direction, reason), n) in &s.scale_events {
                let labels = with(l, &[("direction", direction), ("reason", reason)]);
                sample(&SCALE_EVENTS, out, &labels, *n as f64);
            }
        });
        each(&METRIC_MISSING, out, &|l, s, out| {
            for ((metric, reason), n) in &s.missing {
                let labels = with(l, &[("metric", metric), ("reason", reason)]);
                sample(&METRIC_MISSING, out, &labels, *n as f64);
            }
        });
        each(&SCALE_FAILURES, out, &|l, s, out| {
            SCALE_FAILURES.sample(out, l, s.failures as f64)
        });
        each(&DECISION_DURATION, out, &|l, s, out| {
            s.duration.write(&DECISION_DURATION, out, l)
        });
    }
}
