//! Fakes of the loop's three edges — Docker ([`FakeActuator`]), the metric source ([`FakeSource`]) and
//! the wall clock ([`PausedClock`]) — for tests that run the real loop under `tokio::time::pause`.
//! They do no I/O, so paused time advances only when every task waits, and runs are reproducible.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::actuator::{Actuator, ActuatorError};
use super::runner::Clock;
use super::source::read::{combine, matches, Owner, SeriesReading};
use super::source::{self, ContainerSample, MetricSource, Request, SourceError};
use super::target::{Health, Replica, TargetId, TargetInfo, TargetState};
use crate::policy::Timestamp;

/// A wall clock that follows tokio's (paused) clock from a fixed start.
#[derive(Debug, Clone, Copy)]
pub struct PausedClock {
    start: Instant,
    wall: Timestamp,
}

impl PausedClock {
    /// Starts at `wall` now; call it inside the paused runtime.
    pub fn new(wall: Timestamp) -> Self {
        PausedClock {
            start: Instant::now(),
            wall,
        }
    }
}

impl Clock for PausedClock {
    fn now(&self) -> Timestamp {
        self.wall.plus(self.start.elapsed())
    }
}

/// One fake target: its spec, and replicas that start running `start_delay` after they are created.
#[derive(Debug, Clone)]
struct FakeTarget {
    info: TargetInfo,
    spec: u32,
    /// (replica number, running from this instant on)
    replicas: Vec<(u32, Instant)>,
    next_number: u32,
    unhealthy: Vec<u32>,
}

/// A call the actuator received, with the (paused) instant it came at.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Observe(TargetId, Instant),
    Scale(TargetId, u32, Instant),
}

#[derive(Debug, Default)]
struct World {
    targets: BTreeMap<TargetId, FakeTarget>,
    calls: Vec<Call>,
    /// The next this many `observe` calls fail as if the engine were unreachable.
    failing_observes: u32,
    /// The next this many `scale` calls are refused.
    failing_scales: u32,
    start_delay: Duration,
}

/// Docker as data: targets with a spec and replicas that run after a delay, scripted failures, and
/// every call recorded.
#[derive(Debug, Clone)]
pub struct FakeActuator {
    world: Arc<Mutex<World>>,
    clock: PausedClock,
}

impl FakeActuator {
    pub fn new(clock: PausedClock) -> Self {
        FakeActuator {
            world: Arc::default(),
            clock,
        }
    }

    /// Adds a target running `replicas` replicas, with labels (policies may come from them).
    pub fn add(&self, id: TargetId, labels: &[(&str, &str)], replicas: u32) {
        let info = TargetInfo {
            id: id.clone(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let long_ago = Instant::now() - Duration::from_secs(3600);
        let t = FakeTarget {
            info,
            spec: replicas,
            replicas: (0..replicas).map(|n| (n, long_ago)).collect(),
            next_number: replicas,
            unhealthy: Vec::new(),
        };
        self.world.lock().unwrap().targets.insert(id, t);
    }

    /// New replicas run this long after the scale call that makes them.
    pub fn set_start_delay(&self, d: Duration) {
        self.world.lock().unwrap().start_delay = d;
    }

    pub fn fail_observes(&self, n: u32) {
        self.world.lock().unwrap().failing_observes = n;
    }

    pub fn fail_scales(&self, n: u32) {
        self.world.lock().unwrap().failing_scales = n;
    }

    /// Marks replica `number` of `id` unhealthy (its health check fails).
    pub fn set_unhealthy(&self, id: &TargetId, number: u32) {
        let mut w = self.world.lock().unwrap();
        w.targets.get_mut(id).unwrap().unhealthy.push(number);
    }

    pub fn spec(&self, id: &TargetId) -> u32 {
        self.world.lock().unwrap().targets[id].spec
    }

    pub fn calls(&self) -> Vec<Call> {
        self.world.lock().unwrap().calls.clone()
    }

    /// The instants of the `observe` calls for `id`.
    pub fn observes(&self, id: &TargetId) -> Vec<Instant> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Observe(t, at) if &t == id => Some(at),
                _ => None,
            })
            .collect()
    }

    /// The `scale` calls for `id`: (replicas, instant).
    pub fn scales(&self, id: &TargetId) -> Vec<(u32, Instant)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Scale(t, n, at) if &t == id => Some((n, at)),
                _ => None,
            })
            .collect()
    }
}

fn resize(t: &mut FakeTarget, replicas: u32, start_delay: Duration) {
    t.spec = replicas;
    t.replicas.truncate(replicas as usize);
    while (t.replicas.len() as u32) < replicas {
        t.replicas
            .push((t.next_number, Instant::now() + start_delay));
        t.next_number += 1;
    }
}

/// The container id of replica `number` of `id`, as the fakes name it.
pub fn container_id(id: &TargetId, number: u32) -> String {
    format!("{id}#{number}")
}

impl Actuator for FakeActuator {
    async fn targets(&self) -> Result<Vec<TargetInfo>, ActuatorError> {
        let w = self.world.lock().unwrap();
        Ok(w.targets.values().map(|t| t.info.clone()).collect())
    }

    async fn observe(&self, id: &TargetId) -> Result<TargetState, ActuatorError> {
        let mut w = self.world.lock().unwrap();
        w.calls.push(Call::Observe(id.clone(), Instant::now()));
        if w.failing_observes > 0 {
            w.failing_observes -= 1;
            return Err(ActuatorError::Unreachable("fake engine down".into()));
        }
        let t = w.targets.get(id).ok_or_else(|| ActuatorError::NotFound {
            target: id.to_string(),
        })?;
        let now = Instant::now();
        let replicas = t
            .replicas
            .iter()
            .map(|&(n, from)| {
                let running = from <= now;
                Replica {
                    id: format!("task{n}"),
                    container_id: Some(container_id(id, n)),
                    running,
                    started_at: running
                        .then(|| self.clock.now().minus(now.saturating_duration_since(from))),
                    health: if t.unhealthy.contains(&n) {
                        Health::Unhealthy
                    } else {
                        Health::None
                    },
                }
            })
            .collect();
        Ok(TargetState {
            spec_replicas: t.spec,
            replicas,
            updating: false,
            pending: 0,
            cpu_reservation_cores: None,
            memory_reservation_bytes: None,
        })
    }

    async fn scale(&self, id: &TargetId, replicas: u32) -> Result<(), ActuatorError> {
        let mut w = self.world.lock().unwrap();
        w.calls
            .push(Call::Scale(id.clone(), replicas, Instant::now()));
        if w.failing_scales > 0 {
            w.failing_scales -= 1;
            return Err(ActuatorError::Failed {
                target: id.to_string(),
                message: "fake refusal".into(),
            });
        }
        let delay = w.start_delay;
        let t = w
            .targets
            .get_mut(id)
            .ok_or_else(|| ActuatorError::NotFound {
                target: id.to_string(),
            })?;
        resize(t, replicas, delay);
        Ok(())
    }
}

/// A business series of the fake source: the value it reads as (a gauge's value or a counter's
/// rate), whose it is, and its labels.
#[derive(Debug, Clone)]
struct FakeSeries {
    metric: String,
    labels: BTreeMap<String, String>,
    /// `Some(target)`: one series per replica of that target; `None`: one unattributed series.
    per_replica_of: Option<TargetId>,
    value: f64,
}

#[derive(Debug, Default)]
struct Readings {
    /// CPU cores used by each replica of a target (1 core limit each).
    cpu: HashMap<String, f64>,
    series: Vec<FakeSeries>,
    /// Fail every read until cleared.
    failing: bool,
    /// Samples are this old when read.
    age: Duration,
}

/// A metric source as data: per-target CPU per replica against a limit of one core, samples of a
/// chosen age, and failures on demand.
#[derive(Debug, Clone)]
pub struct FakeSource {
    readings: Arc<Mutex<Readings>>,
    clock: PausedClock,
}

impl FakeSource {
    pub fn new(clock: PausedClock) -> Self {
        FakeSource {
            readings: Arc::default(),
            clock,
        }
    }

    /// Every replica of `id` uses `cores` of its one-core limit.
    pub fn set_cpu(&self, id: &TargetId, cores: f64) {
        self.readings
            .lock()
            .unwrap()
            .cpu
            .insert(format!("{id}#"), cores);
    }

    /// Every replica of `id` has a series `metric{labels}` that reads as `value`.
    pub fn set_replica_series(
        &self,
        id: &TargetId,
        metric: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        self.set_series(Some(id), metric, labels, value);
    }

    /// One series `metric{labels}` attributed to no container (give it a `service` label to make it
    /// a service's) that reads as `value`.
    pub fn set_unattributed_series(&self, metric: &str, labels: &[(&str, &str)], value: f64) {
        self.set_series(None, metric, labels, value);
    }

    fn set_series(&self, of: Option<&TargetId>, metric: &str, labels: &[(&str, &str)], value: f64) {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut r = self.readings.lock().unwrap();
        r.series.retain(|s| {
            !(s.metric == metric && s.labels == labels && s.per_replica_of.as_ref() == of)
        });
        r.series.push(FakeSeries {
            metric: metric.to_string(),
            labels,
            per_replica_of: of.cloned(),
            value,
        });
    }

    /// Forgets every series of `metric`.
    pub fn remove_series(&self, metric: &str) {
        self.readings
            .lock()
            .unwrap()
            .series
            .retain(|s| s.metric != metric);
    }

    pub fn set_failing(&self, failing: bool) {
        self.readings.lock().unwrap().failing = failing;
    }

    pub fn set_age(&self, age: Duration) {
        self.readings.lock().unwrap().age = age;
    }
}

impl MetricSource for FakeSource {
    async fn sample(&self, req: &Request<'_>) -> Result<source::Readings, SourceError> {
        let r = self.readings.lock().unwrap();
        if r.failing {
            return Err(SourceError::Unavailable("fake source down".into()));
        }
        let at = self.clock.now().minus(r.age);
        let mut out = source::Readings::default();
        for c in req.containers() {
            let Some((prefix, _)) = c.split_once('#') else {
                continue;
            };
            let Some(cores) = r.cpu.get(&format!("{prefix}#")) else {
                continue;
            };
            let sample = ContainerSample {
                at: Some(at),
                cpu_cores: Some(*cores),
                cpu_limit_cores: Some(1.0),
                ..Default::default()
            };
            out.containers.insert(c.to_string(), sample);
        }
        for m in req.metrics {
            let selected = r.series.iter().filter(|s| {
                s.metric == m.query.metric
                    && matches(&m.query.matchers, |k| s.labels.get(k).cloned())
            });
            let mut series = Vec::new();
            for s in selected {
                match &s.per_replica_of {
                    // Container ids of the fake actuator start with the target's identity and `#`.
                    Some(id) => series.extend(
                        req.containers()
                            .filter(|c| c.starts_with(&format!("{id}#")))
                            .map(|c| SeriesReading {
                                owner: Owner::Container(c.to_string()),
                                value: Ok(s.value),
                            }),
                    ),
                    None => series.push(SeriesReading {
                        owner: Owner::from_labels(|k| s.labels.get(k).map(String::as_str)),
                        value: Ok(s.value),
                    }),
                }
            }
            combine(req, m, series, &mut out);
        }
        Ok(out)
    }
}
