//! One tick's plan for one target, from data only: what the actuator and the source reported, the
//! policy, the history and `now`. The runner does the I/O around it; this is what the tests pin down.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::source::{Readings, SourceError};
use super::target::{Health, TargetState};
use crate::policy::{
    decide, Decision, History, Observation, Policy, Reason, ReplicaObservation, Sample, Target,
    Timestamp,
};

/// Why the loop did not follow a fresh decision this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// An operator paused the policy through the API.
    Paused,
    /// A rolling update or rollback of the service is in progress.
    UpdateInProgress,
    /// The metric source failed this tick (and no fallback applies yet).
    SourceError,
    /// The newest samples are older than three intervals.
    Stale,
    /// Docker could not be asked for the target's state.
    DockerError,
    /// The global cap on actions per minute is reached.
    RateCapped,
}

/// The typed reason of a tick's outcome: logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    Decided(Reason),
    /// The source failed for `fallback.after` ticks: the policy's fallback count applies.
    Fallback,
    Hold(Hold),
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Decided(r) => r.as_str(),
            Cause::Fallback => "fallback",
            Cause::Hold(Hold::Paused) => "paused",
            Cause::Hold(Hold::UpdateInProgress) => "update_in_progress",
            Cause::Hold(Hold::SourceError) => "source_error",
            Cause::Hold(Hold::Stale) => "stale",
            Cause::Hold(Hold::DockerError) => "docker_error",
            Cause::Hold(Hold::RateCapped) => "rate_capped",
        }
    }
}

impl Cause {
    /// Whether the policy engine decided, the loop held, or the fallback applied.
    pub fn kind(self) -> &'static str {
        match self {
            Cause::Decided(_) => "decided",
            Cause::Fallback => "fallback",
            Cause::Hold(_) => "hold",
        }
    }
}

/// Serialized as its stable string, the same one logs and metric labels carry.
impl Serialize for Cause {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The plan of one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub current: u32,
    /// The count to converge to (the current one when holding).
    pub desired: u32,
    pub cause: Cause,
    /// The decision, when the core ran.
    pub decision: Option<Decision>,
}

impl Plan {
    fn hold(current: u32, why: Hold) -> Plan {
        Plan {
            current,
            desired: current,
            cause: Cause::Hold(why),
            decision: None,
        }
    }

    /// Whether the actuator must be called: a new count, or unfinished work at the same count.
    pub fn needs_action(&self, state: &TargetState) -> bool {
        match self.cause {
            Cause::Hold(_) => false,
            _ => self.desired != self.current || state.pending > 0,
        }
    }
}

/// What the source answered this tick, and how many ticks in a row it has failed (this one included).
pub struct SourceReading<'a> {
    pub samples: Result<&'a Readings, &'a SourceError>,
    pub consecutive_failures: u32,
}

/// Plans one tick. `stale_after` is three loop intervals.
pub fn plan(
    policy: &Policy,
    history: &History,
    state: &TargetState,
    source: SourceReading<'_>,
    paused: bool,
    now: Timestamp,
    stale_after: Duration,
) -> Plan {
    let current = state.spec_replicas;
    if paused {
        return Plan::hold(current, Hold::Paused);
    }
    if state.updating {
        return Plan::hold(current, Hold::UpdateInProgress);
    }
    let samples = match source.samples {
        Ok(s) => s,
        Err(_) => {
            return match policy.fallback {
                Some(f) if source.consecutive_failures >= f.after => Plan {
                    current,
                    desired: f.replicas.clamp(policy.min, policy.max),
                    cause: Cause::Fallback,
                    decision: None,
                },
                _ => Plan::hold(current, Hold::SourceError),
            };
        }
    };
    let obs = match observation(policy, state, samples, now, stale_after) {
        Ok(o) => o,
        Err(h) => return Plan::hold(current, h),
    };
    let decision = decide(policy, &obs, history, now);
    Plan {
        current,
        desired: decision.desired,
        cause: Cause::Decided(decision.reason),
        decision: Some(decision),
    }
}

/// The observation the decision core reads, built from the actuator's replicas and the source's samples.
pub fn observation(
    policy: &Policy,
    state: &TargetState,
    readings: &Readings,
    now: Timestamp,
    stale_after: Duration,
) -> Result<Observation, Hold> {
    let samples = &readings.containers;
    let oldest_allowed = now.minus(stale_after);
    let mut replicas = Vec::with_capacity(state.replicas.len());
    for r in &state.replicas {
        let sample = r.container_id.as_ref().and_then(|c| samples.get(c));
        if let Some(at) = sample.and_then(|s| s.at) {
            if r.running && at < oldest_allowed {
                return Err(Hold::Stale);
            }
        }
        let initialized = r
            .started_at
            .is_some_and(|t| t.plus(policy.initialization) <= now);
        let mut metrics = BTreeMap::new();
        let mut capacity = BTreeMap::new();
        for m in &policy.metrics {
            let (used, cap) = match (m.name.as_str(), m.target) {
                ("cpu", Target::Utilization(_)) => (
                    sample.and_then(|s| s.cpu_cores),
                    sample
                        .and_then(|s| s.cpu_limit_cores)
                        .or(state.cpu_reservation_cores),
                ),
                ("memory", Target::Utilization(_)) => (
                    sample.and_then(|s| s.memory_bytes),
                    sample
                        .and_then(|s| s.memory_limit_bytes)
                        .or(state.memory_reservation_bytes),
                ),
                (name, Target::Average(_)) => {
                    if let Some(v) = sample.and_then(|s| s.values.get(name)) {
                        metrics.insert(name.to_string(), Sample::Value(*v));
                    }
                    continue;
                }
                // Service-level targets are not per replica.
                _ => continue,
            };
            match (used, cap) {
                (Some(used), Some(capacity)) => {
                    metrics.insert(m.name.clone(), Sample::Usage { used, capacity });
                }
                (None, Some(c)) => {
                    capacity.insert(m.name.clone(), c);
                }
                // Without a capacity a utilization cannot be computed: the replica's metric is missing.
                _ => {}
            }
        }
        // Failing its check, as opposed to starting: `unhealthy`, or not yet healthy although its
        // initialization time has passed (Swarm shows a task whose check fails as `starting` until it
        // replaces it).
        let failing = match r.health {
            Health::Unhealthy => true,
            Health::Starting => initialized,
            Health::None | Health::Healthy => false,
        };
        replicas.push(ReplicaObservation {
            id: r.id.clone(),
            ready: r.running && initialized && r.health.allows_ready() && sample.is_some(),
            // A Swarm task whose check has not passed is `starting`, not `running`, but its container
            // runs: it fails its check all the same (Compose reports health only for running ones).
            unhealthy: (r.running || r.health == Health::Starting) && failing,
            metrics,
            capacity,
        });
    }
    Ok(Observation {
        service: policy.service.clone(),
        current_replicas: state.spec_replicas,
        replicas,
        service_metrics: readings.service.clone(),
        missing: readings.missing.clone(),
    })
}
