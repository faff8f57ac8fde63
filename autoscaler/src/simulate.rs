//! Replays a demand trace against a modelled service driven by the real [`decide`].
//!
//! The model: each replica serves `capacity_per_replica` units of demand; the ready replicas share the
//! demand evenly, so utilization = demand / (ready × capacity) and is reported to every per-replica metric
//! of the policy (`used`/`capacity` for utilization targets, demand per ready replica for averages; the
//! whole demand for `value` targets). Utilization is not capped at 100%, as for a request-rate metric or
//! CPU against a reservation. A replica added at `t` is ready at `t + startup`; scale-downs remove
//! starting replicas first. Decisions run every `tick`, and their history is kept as a control loop would.

mod chart;
mod trace;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::policy::{
    decide, interpolate, Behavior, History, LoadSample, Observation, Policy, Predictive,
    ReplicaObservation, Sample, Target, Timestamp, Tolerance,
};

pub use chart::draw_chart;
pub use trace::parse_trace;

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
            ..policy.predictive
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
            Target::Below(_) => return Err(SimulateError::UnsupportedMetric(m.name.clone())),
        };
        strictest = strictest.min(load);
    }
    Ok(strictest)
}

/// Replays `trace` under `policy`.
pub fn replay(
    policy: &Policy,
    trace: &[LoadSample],
    model: &Model,
) -> Result<Replay, SimulateError> {
    let per_replica_at_target = load_at_target(policy, model)?;
    let (start, end) = (trace[0].at, trace[trace.len() - 1].at);
    let initial =
        ((trace[0].value / per_replica_at_target).ceil() as u32).clamp(policy.min, policy.max);
    // Ready-at instant of each running replica, oldest first.
    let mut replicas: Vec<Timestamp> = vec![start; initial as usize];
    let mut history = History::default();
    let mut ticks = Vec::new();
    let (tick_h, tick_min) = (
        model.tick.as_secs_f64() / 3600.0,
        model.tick.as_secs_f64() / 60.0,
    );
    let mut s = Summary {
        replica_hours: 0.0,
        overloaded_minutes: 0.0,
        minutes_above_target: 0.0,
        scale_events: 0,
        peak_replicas: initial,
        mean_replicas: 0.0,
        hours: 0.0,
    };
    let mut now = start;
    while now <= end {
        let demand = interpolate(trace, now);
        let ready = replicas.iter().filter(|r| **r <= now).count() as u32;
        let obs = observe(policy, model, &replicas, ready, demand, now);
        let d = decide(policy, &obs, &history, now);
        history.record(policy, &d, now);
        let current = replicas.len() as u32;
        if d.desired != current {
            s.scale_events += 1;
        }
        if d.desired > current {
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
        ticks.push(Tick {
            at: now,
            demand,
            replicas: running,
            ready: ready_after,
        });
        now = now.plus(model.tick);
    }
    s.mean_replicas = if s.hours > 0.0 {
        s.replica_hours / s.hours
    } else {
        0.0
    };
    Ok(Replay { summary: s, ticks })
}

fn observe(
    policy: &Policy,
    model: &Model,
    replicas: &[Timestamp],
    ready: u32,
    demand: f64,
    now: Timestamp,
) -> Observation {
    let share = demand / f64::from(ready.max(1));
    let current_replicas = replicas.len() as u32;
    let replicas = replicas
        .iter()
        .enumerate()
        .map(|(i, ready_at)| {
            let is_ready = *ready_at <= now;
            let mut metrics = BTreeMap::new();
            let mut capacity = BTreeMap::new();
            for m in &policy.metrics {
                match m.target {
                    Target::Utilization(_) if is_ready => {
                        metrics.insert(
                            m.name.clone(),
                            Sample::Usage {
                                used: share,
                                capacity: model.capacity_per_replica,
                            },
                        );
                    }
                    Target::Utilization(_) => {
                        capacity.insert(m.name.clone(), model.capacity_per_replica);
                    }
                    Target::Average(_) if is_ready => {
                        metrics.insert(m.name.clone(), Sample::Value(share));
                    }
                    _ => {}
                }
            }
            ReplicaObservation {
                id: i.to_string(),
                ready: is_ready,
                metrics,
                capacity,
            }
        })
        .collect();
    let service_metrics = policy
        .metrics
        .iter()
        .filter(|m| matches!(m.target, Target::Value(_)))
        .map(|m| (m.name.clone(), demand))
        .collect();
    Observation {
        service: policy.service.clone(),
        current_replicas,
        replicas,
        service_metrics,
    }
}

#[cfg(test)]
mod tests;
