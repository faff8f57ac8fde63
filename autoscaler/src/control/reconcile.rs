//! The pure reconcile step of one target: everything the loop decides around the single I/O call it
//! makes (the actuator's `scale`), from data and an explicit `now`.
//!
//! A tick is `observe` (I/O) → [`Memory::plan`] → [`intent`] → `scale` (I/O, only for
//! [`Intent::Scale`]) → [`Memory::settle`], which returns the tick's [`DecisionRecord`] and when to run
//! next, as kube-runtime's `reconcile` returns its requeue `Action`. When `observe` fails,
//! [`Memory::observe_failed`] gives both instead. The shell (`runner`) only moves data between these
//! and Docker, the metric source, the clock and the API.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::actuator::ActuatorError;
use super::explain::{Action, DecisionRecord};
use super::plan::{plan, Cause, Hold, Plan, SourceReading};
use super::source::{Readings, SourceError};
use super::target::{TargetId, TargetState};
use crate::policy::{Decision, History, Policy, Timestamp};

/// The instant of a tick: wall time for data (sample ages, histories, records) and monotonic time for
/// durations (convergence, the action budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub wall: Timestamp,
    pub mono: Instant,
}

/// Samples older than this many intervals hold the target with reason `stale`.
pub const STALE_INTERVALS: u32 = 3;

/// Longest wait between two attempts of a failing target.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The wait after `failures` failures in a row: the project's one backoff (the collector's, which
/// waits for unreachable spans peers with it too). Service targets and node pools both use it.
pub use plimsoll_collector::backoff::backoff;

/// What the shell must do about a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Nothing to change (or a hold).
    Nothing,
    /// `--dry-run`: the change is recorded, not made.
    DryRun,
    /// The change is needed but the global budget of actions is spent.
    RateCapped,
    /// Call the actuator for this count.
    Scale(u32),
}

/// What came of an intent: the intent itself, or the actuator's answer to [`Intent::Scale`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acted {
    Nothing,
    DryRun,
    RateCapped,
    Scaled,
    Failed(String),
}

impl From<Intent> for Acted {
    /// The outcome of an intent that needs no actuator call. `Scale` must go through the actuator; it is
    /// mapped to `Nothing` here only so the conversion is total.
    fn from(i: Intent) -> Acted {
        match i {
            Intent::DryRun => Acted::DryRun,
            Intent::RateCapped => Acted::RateCapped,
            Intent::Nothing | Intent::Scale(_) => Acted::Nothing,
        }
    }
}

/// A tick's result: what to record and serve, and when to run again.
#[derive(Debug, Clone)]
pub struct Step {
    pub record: DecisionRecord,
    pub requeue_after: Duration,
}

/// A scale action whose convergence is being watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Converging {
    replicas: u32,
    since: Instant,
}

/// What a target's task remembers between ticks.
#[derive(Debug)]
pub struct Memory {
    pub history: History,
    /// Whether the target's state was read once (the history then starts).
    seen: bool,
    /// Ticks in a row whose metric source failed.
    source_failures: u32,
    /// Attempts in a row that failed (Docker unreachable, scale refused): the backoff exponent.
    failures: u32,
    converging: Option<Converging>,
    /// Set by `plan` when the watched action converged this tick; reported by `settle`.
    converged_after: Option<Duration>,
    /// Jitter of the backoff; seeded so that tests are reproducible.
    rng: fastrand::Rng,
}

impl Memory {
    pub fn new(seed: u64) -> Self {
        Memory {
            history: History::default(),
            seen: false,
            source_failures: 0,
            failures: 0,
            converging: None,
            converged_after: None,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Ticks in a row whose metric source failed, this one included once `plan` ran.
    pub fn source_failures(&self) -> u32 {
        self.source_failures
    }

    /// The target's state could not be read: hold with `docker_error` and back off.
    pub fn observe_failed(
        &mut self,
        id: &TargetId,
        error: &ActuatorError,
        interval: Duration,
        now: Now,
    ) -> Step {
        let mut record = DecisionRecord::new(
            id,
            now.wall,
            0,
            0,
            Cause::Hold(Hold::DockerError),
            Action::None,
        );
        record.error = Some(error.to_string());
        Step {
            record,
            requeue_after: self.back_off(interval),
        }
    }

    /// Counts the source's answer, watches convergence, and plans the tick.
    pub fn plan(
        &mut self,
        policy: &Policy,
        state: &TargetState,
        samples: Result<&Readings, &SourceError>,
        paused: bool,
        interval: Duration,
        now: Now,
    ) -> Plan {
        // The count found at the first look is the first recommendation, as the HPA records it: a
        // loop that starts or restarts does not scale down before one scale-down window has passed.
        if !self.seen {
            self.history = History::first_seen(state.spec_replicas, now.wall);
            self.seen = true;
        }
        self.converged_after = None;
        if let Some(c) = self.converging {
            if state.spec_replicas != c.replicas {
                // Someone else changed the count since: this action will never be seen converging.
                self.converging = None;
            } else if state.running() == c.replicas && state.replicas.len() as u32 == c.replicas {
                self.converged_after = Some(now.mono.saturating_duration_since(c.since));
                self.converging = None;
            }
        }
        self.source_failures = match samples {
            Ok(_) => 0,
            Err(_) => self.source_failures.saturating_add(1),
        };
        let reading = SourceReading {
            samples,
            consecutive_failures: self.source_failures,
        };
        plan(
            policy,
            &self.history,
            state,
            reading,
            paused,
            now.wall,
            interval * STALE_INTERVALS,
        )
    }

    /// Records what was done with the plan: the history gets the decision as applied (a change that was
    /// not made — failed, dry run, rate capped — enters as keeping the count, as the HPA records a
    /// failed rescale), the record says why, and the requeue backs off only after a failed action.
    pub fn settle(
        &mut self,
        id: &TargetId,
        policy: &Policy,
        plan: Plan,
        acted: Acted,
        interval: Duration,
        now: Now,
    ) -> Step {
        let Plan {
            current,
            mut desired,
            mut cause,
            decision,
        } = plan;
        if acted == Acted::RateCapped {
            (desired, cause) = (current, Cause::Hold(Hold::RateCapped));
        }
        if let Some(d) = &decision {
            let applied = match acted {
                Acted::Scaled => d.clone(),
                _ => Decision {
                    desired: current,
                    ..d.clone()
                },
            };
            self.history.record(policy, &applied, now.wall);
        }
        let (action, error) = match acted {
            Acted::Nothing | Acted::RateCapped => (Action::None, None),
            Acted::DryRun => (Action::DryRun, None),
            Acted::Scaled => (Action::Scaled, None),
            Acted::Failed(e) => (Action::Failed, Some(e)),
        };
        if action == Action::Scaled {
            self.converging = Some(Converging {
                replicas: desired,
                since: now.mono,
            });
        }
        let mut record = DecisionRecord::new(id, now.wall, current, desired, cause, action);
        if let Some(d) = decision {
            (record.recommendation, record.metrics) = (d.recommendation, d.metrics);
        }
        record.error = error;
        record.converged_after_ms = self.converged_after.take().map(|d| d.as_millis() as u64);
        let requeue_after = if action == Action::Failed {
            self.back_off(interval)
        } else {
            self.failures = 0;
            interval
        };
        Step {
            record,
            requeue_after,
        }
    }

    /// Exponential backoff from `interval`: 2, 4, 8... intervals up to [`MAX_BACKOFF`], ±20% so that
    /// targets that failed together do not retry together.
    fn back_off(&mut self, interval: Duration) -> Duration {
        self.failures = self.failures.saturating_add(1);
        backoff(self.failures, interval, MAX_BACKOFF, self.rng.f64())
    }
}

/// What to do about `plan`: nothing, record a dry run, or take one action from the global budget.
pub fn intent(
    plan: &Plan,
    state: &TargetState,
    dry_run: bool,
    budget: &mut ActionBudget,
    at: Instant,
) -> Intent {
    if !plan.needs_action(state) {
        Intent::Nothing
    } else if dry_run {
        Intent::DryRun
    } else if budget.take(at) {
        Intent::Scale(plan.desired)
    } else {
        Intent::RateCapped
    }
}

/// The global cap on actions per minute, over a sliding minute.
#[derive(Debug)]
pub struct ActionBudget {
    per_minute: u32,
    taken: VecDeque<Instant>,
}

impl ActionBudget {
    pub fn new(per_minute: u32) -> Self {
        ActionBudget {
            per_minute,
            taken: VecDeque::new(),
        }
    }

    /// Takes one action, if fewer than `per_minute` were taken in the minute before `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        while self
            .taken
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(60))
        {
            self.taken.pop_front();
        }
        if self.taken.len() as u32 >= self.per_minute {
            return false;
        }
        self.taken.push_back(now);
        true
    }
}
