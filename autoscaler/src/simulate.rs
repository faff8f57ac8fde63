//! Replays a demand trace against a modelled service driven by the real [`decide`].
//!
//! The model: each replica serves `capacity_per_replica` units of demand; the ready replicas share the
//! demand evenly, so utilization = demand / (ready × capacity) and is reported to every per-replica metric
//! of the policy (`used`/`capacity` for utilization targets, demand per ready replica for averages; the
//! whole demand for `value` targets). Utilization is not capped at 100%, as for a request-rate metric or
//! CPU against a reservation. A replica added at `t` is ready at `t + startup`; scale-downs remove
//! starting replicas first. Decisions run every `tick`, and their history is kept as a control loop would.
//! Between two trace points demand follows [`Interpolation`]: a straight line, or the earlier value held
//! until the next point (bursty demand, the hard case for a ramp forecast).

mod chart;
mod trace;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::policy::{
    decide, Behavior, History, LoadSample, Observation, Policy, Predictive, ReplicaObservation,
    Sample, Target, Timestamp, Tolerance,
};

pub use chart::draw_chart;
pub use trace::{parse_trace, read_traces, Trace};

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("{name}:{line}: {message}")]
    Trace {
        name: String,
        line: usize,
        message: String,
    },
    #[error("simulate cannot model metric `{0}`: a latency target does not follow from demand")]
    UnsupportedMetric(String),
    #[error("chart: {0}")]
    Chart(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// How the service is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Model {
    /// Demand one replica can serve, in the trace's unit.
    pub capacity_per_replica: f64,
    #[serde(serialize_with = "as_secs")]
    pub startup: Duration,
    #[serde(serialize_with = "as_secs")]
    pub tick: Duration,
    pub interpolation: Interpolation,
    /// Zero for a real policy. Otherwise the policy is shown the highest demand of the coming
    /// `oracle_lookahead` instead of the current demand: it knows the future, so it is no policy, but with
    /// the same start-up it bounds what any policy could do (overload is still counted on the current
    /// demand). The HPA baseline of [`compare`] never gets it.
    #[serde(serialize_with = "as_secs")]
    pub oracle_lookahead: Duration,
}

impl Model {
    fn without_oracle(&self) -> Model {
        Model {
            oracle_lookahead: Duration::ZERO,
            ..*self
        }
    }
}

/// Demand between two trace points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// A straight line from one point to the next.
    #[default]
    Linear,
    /// Each point's value held until the next point: demand arrives in steps.
    Step,
}

impl Interpolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Interpolation::Linear => "linear",
            Interpolation::Step => "step",
        }
    }
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The service state at one tick, for charts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    pub at: Timestamp,
    pub demand: f64,
    pub replicas: u32,
    pub ready: u32,
}

/// Totals of one replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub replica_hours: f64,
    /// Minutes with demand above the ready replicas' capacity.
    pub overloaded_minutes: f64,
    /// Minutes with demand above what the ready replicas serve at the policy's target.
    pub minutes_above_target: f64,
    /// Decisions that changed the replica count.
    pub scale_events: u32,
    /// Of those, the ones that added replicas (the rest removed some).
    pub scale_ups: u32,
    pub peak_replicas: u32,
    pub mean_replicas: f64,
    pub hours: f64,
}

/// One replay: the totals and the per-tick states.
#[derive(Debug, Clone)]
pub struct Replay {
    pub summary: Summary,
    pub ticks: Vec<Tick>,
}

/// The HPA with its default behavior and tolerance, and the same targets and bounds as `policy`.
pub fn hpa_baseline(policy: &Policy) -> Policy {
    Policy {
        tolerance: Tolerance::default(),
        behavior: Behavior::hpa_default(),
        predictive: Predictive {
            enabled: false,
            ..policy.predictive.clone()
        },
        ..policy.clone()
    }
}

/// Demand one ready replica serves at target: the strictest over the policy's metrics.
fn load_at_target(policy: &Policy, model: &Model) -> Result<f64, SimulateError> {
    let mut strictest = f64::INFINITY;
    for m in &policy.metrics {
        let load = match m.target {
            Target::Utilization(pct) => model.capacity_per_replica * f64::from(pct) / 100.0,
            Target::Average(v) | Target::Value(v) => v,
            Target::Below(_) | Target::BelowRatio(_) => {
                return Err(SimulateError::UnsupportedMetric(m.name.clone()))
            }
        };
        strictest = strictest.min(load);
    }
    Ok(strictest)
}

/// Replays `trace` under `policy`, keeping every tick (for charts).
pub fn replay(
    policy: &Policy,
    trace: &[LoadSample],
    model: &Model,
) -> Result<Replay, SimulateError> {
    let mut ticks = Vec::new();
    let summary = run(policy, trace, model, Some(&mut ticks))?;
    Ok(Replay { summary, ticks })
}

/// Replays `trace` under `policy` for its totals only.
pub fn summarize(
    policy: &Policy,
    trace: &[LoadSample],
    model: &Model,
) -> Result<Summary, SimulateError> {
    run(policy, trace, model, None)
}

/// The same trace under `policy` and under the HPA's default behavior ([`hpa_baseline`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub policy: Summary,
    pub hpa: Summary,
}

impl Comparison {
    pub fn replica_hours_ratio(&self) -> f64 {
        self.policy.replica_hours / self.hpa.replica_hours
    }

    /// `None` when the HPA does not overload at all.
    pub fn overloaded_ratio(&self) -> Option<f64> {
        (self.hpa.overloaded_minutes > 0.0)
            .then(|| self.policy.overloaded_minutes / self.hpa.overloaded_minutes)
    }

    /// `None` when the HPA makes no scale event.
    pub fn scale_events_ratio(&self) -> Option<f64> {
        (self.hpa.scale_events > 0)
            .then(|| f64::from(self.policy.scale_events) / f64::from(self.hpa.scale_events))
    }
}

/// Replays `trace` under `policy` and under the HPA baseline.
pub fn compare(
    policy: &Policy,
    trace: &[LoadSample],
    model: &Model,
) -> Result<Comparison, SimulateError> {
    Ok(Comparison {
        policy: summarize(policy, trace, model)?,
        hpa: summarize(&hpa_baseline(policy), trace, &model.without_oracle())?,
    })
}

/// Demand at `now`, `cursor` being the index of the last trace point at or before `now` (moved forward
/// as `now` advances: replays are sequential, so no search per tick).
fn demand_at(trace: &[LoadSample], cursor: &mut usize, now: Timestamp, how: Interpolation) -> f64 {
    while *cursor + 1 < trace.len() && trace[*cursor + 1].at <= now {
        *cursor += 1;
    }
    let a = trace[*cursor];
    match (how, trace.get(*cursor + 1)) {
        (Interpolation::Linear, Some(b)) if now > a.at => {
            let f = (now.millis() - a.at.millis()) as f64 / (b.at.millis() - a.at.millis()) as f64;
            a.value + f * (b.value - a.value)
        }
        _ => a.value,
    }
}

/// The highest demand in `[now, until]`: at its ends or at a trace point inside, under either
/// interpolation.
fn peak_between(trace: &[LoadSample], now: Timestamp, until: Timestamp, how: Interpolation) -> f64 {
    let mut cursor = trace.partition_point(|p| p.at <= now).saturating_sub(1);
    let ends =
        demand_at(trace, &mut cursor, now, how).max(demand_at(trace, &mut cursor, until, how));
    let inside = trace.partition_point(|p| p.at <= now)..trace.partition_point(|p| p.at <= until);
    trace[inside].iter().map(|p| p.value).fold(ends, f64::max)
}

fn run(
    policy: &Policy,
    trace: &[LoadSample],
    model: &Model,
    mut ticks: Option<&mut Vec<Tick>>,
) -> Result<Summary, SimulateError> {
    let per_replica_at_target = load_at_target(policy, model)?;
    let (start, end) = (trace[0].at, trace[trace.len() - 1].at);
    let initial =
        ((trace[0].value / per_replica_at_target).ceil() as u32).clamp(policy.min, policy.max);
    // Ready-at instant of each running replica, oldest first.
    let mut replicas: Vec<Timestamp> = vec![start; initial as usize];
    let mut history = History::default();
    let mut obs = Observed::new(policy, model);
    let (tick_h, tick_min) = (
        model.tick.as_secs_f64() / 3600.0,
        model.tick.as_secs_f64() / 60.0,
    );
    let mut s = Summary {
        replica_hours: 0.0,
        overloaded_minutes: 0.0,
        minutes_above_target: 0.0,
        scale_events: 0,
        scale_ups: 0,
        peak_replicas: initial,
        mean_replicas: 0.0,
        hours: 0.0,
    };
    let mut cursor = 0;
    let mut now = start;
    while now <= end {
        let demand = demand_at(trace, &mut cursor, now, model.interpolation);
        let seen = if model.oracle_lookahead.is_zero() {
            demand
        } else {
            peak_between(
                trace,
                now,
                now.plus(model.oracle_lookahead),
                model.interpolation,
            )
        };
        let d = decide(policy, obs.update(&replicas, seen, now), &history, now);
        history.record(policy, &d, now);
        let current = replicas.len() as u32;
        if d.desired != current {
            s.scale_events += 1;
        }
        if d.desired > current {
            s.scale_ups += 1;
            replicas.extend(std::iter::repeat_n(
                now.plus(model.startup),
                (d.desired - current) as usize,
            ));
        } else {
            // Newest (possibly still starting) replicas go first.
            replicas.truncate(d.desired as usize);
        }
        // The tick is accounted with the replicas and readiness in force during it.
        let ready_after = replicas.iter().filter(|r| **r <= now).count() as u32;
        let running = replicas.len() as u32;
        s.replica_hours += f64::from(running) * tick_h;
        if demand > f64::from(ready_after) * model.capacity_per_replica {
            s.overloaded_minutes += tick_min;
        }
        if demand > f64::from(ready_after) * per_replica_at_target {
            s.minutes_above_target += tick_min;
        }
        s.peak_replicas = s.peak_replicas.max(running);
        s.hours += tick_h;
        if let Some(t) = ticks.as_deref_mut() {
            t.push(Tick {
                at: now,
                demand,
                replicas: running,
                ready: ready_after,
            });
        }
        now = now.plus(model.tick);
    }
    s.mean_replicas = if s.hours > 0.0 {
        s.replica_hours / s.hours
    } else {
        0.0
    };
    Ok(s)
}

/// The observation of the modelled service, kept across ticks and updated in place: replicas only
/// change on scale events and readiness, so a tick touches sample values and allocates nothing.
struct Observed<'p> {
    policy: &'p Policy,
    capacity: f64,
    obs: Observation,
}

impl<'p> Observed<'p> {
    fn new(policy: &'p Policy, model: &Model) -> Self {
        let service_metrics = policy
            .metrics
            .iter()
            .filter(|m| matches!(m.target, Target::Value(_)))
            .map(|m| (m.name.clone(), 0.0))
            .collect();
        Observed {
            policy,
            capacity: model.capacity_per_replica,
            obs: Observation {
                service: policy.service.clone(),
                current_replicas: 0,
                replicas: Vec::new(),
                service_metrics,
                missing: Default::default(),
            },
        }
    }

    /// The ready replicas share the demand evenly; starting ones report nothing.
    fn update(&mut self, ready_at: &[Timestamp], demand: f64, now: Timestamp) -> &Observation {
        let ready = ready_at.iter().filter(|r| **r <= now).count();
        let share = demand / ready.max(1) as f64;
        let obs = &mut self.obs;
        obs.current_replicas = ready_at.len() as u32;
        obs.replicas.truncate(ready_at.len());
        while obs.replicas.len() < ready_at.len() {
            obs.replicas.push(ReplicaObservation {
                id: obs.replicas.len().to_string(),
                ready: false,
                unhealthy: false,
                metrics: BTreeMap::new(),
                capacity: self
                    .policy
                    .metrics
                    .iter()
                    .filter(|m| matches!(m.target, Target::Utilization(_)))
                    .map(|m| (m.name.clone(), self.capacity))
                    .collect(),
            });
        }
        for (r, at) in obs.replicas.iter_mut().zip(ready_at) {
            let is_ready = *at <= now;
            if is_ready != r.ready {
                r.ready = is_ready;
                r.metrics.clear();
                if is_ready {
                    for m in &self.policy.metrics {
                        if matches!(m.target, Target::Utilization(_) | Target::Average(_)) {
                            r.metrics.insert(m.name.clone(), Sample::Value(0.0));
                        }
                    }
                }
            }
            if is_ready {
                for m in &self.policy.metrics {
                    let sample = match m.target {
                        Target::Utilization(_) => Sample::Usage {
                            used: share,
                            capacity: self.capacity,
                        },
                        Target::Average(_) => Sample::Value(share),
                        _ => continue,
                    };
                    if let Some(s) = r.metrics.get_mut(&m.name) {
                        *s = sample;
                    }
                }
            }
        }
        for v in obs.service_metrics.values_mut() {
            *v = demand;
        }
        &self.obs
    }
}

#[cfg(test)]
mod tests;
