//! Replicas proposed by one metric: a mirror of the HPA's `replica_calculator.go`.
//!
//! Per-replica metrics (`utilization`, `average`) follow `GetResourceReplicas` / `calcPlainMetricReplicas`:
//! values are taken in milli-units and combined with integer arithmetic as the HPA does, ready replicas
//! without a sample are "missing" (0 on scale-up, max(100%, target) of capacity or the target on
//! scale-down, left out at a ratio of exactly 1), not-ready replicas are "unready" (0 on scale-up, left
//! out on scale-down), and the ratio is recomputed with them; a recomputed ratio inside the tolerance or
//! on the other side of 1 keeps the current count. As in the HPA's `groupPods`, readiness matters for
//! the `cpu` metric only: a not-ready replica that reports any other metric is counted like a ready one.
//! Service-level metrics follow `GetExternalPerPodMetricReplicas` (`value`) and `GetObjectMetricReplicas`
//! (`below`, ratio times ready replicas). `autoscaler/tests/hpa/` replays the HPA's own test tables.
//!
//! Two additions to the HPA:
//! - A proposal never moves against its ratio's direction, also in the fast path (the HPA can, when
//!   fewer replicas are observed than the spec asks for).
//! - When no replica is ready for `cpu`, the HPA has no metric and never scales (its issue #64088: every
//!   pod turned unready under load). Plimsoll then looks at the replicas that fail their health check
//!   ([`ReplicaObservation::unhealthy`]) and still report CPU: if they use more than the target (beyond
//!   the tolerance), it votes to scale up as the HPA would with them counted at their measured usage and
//!   every other replica (starting, silent) at 0, never down, with status `all_replicas_unready`;
//!   replicas it added count at 0 while they start, so the vote stops growing until they are ready or
//!   fail in turn. If they use no more than the target, the failures are not load, and it does not vote
//!   (`missing_data_hold`, as before). Behavior (rate policies, stabilization) and `max` bound it as any vote.

use serde::Serialize;

use super::model::{MetricSpec, SeriesQuery, Target, Tolerance};
use super::observation::{Missing, Observation, ReplicaObservation, Sample};

/// The metric the HPA's readiness rules apply to (see [`per_replica`]).
const CPU: &str = "cpu";

/// How one metric voted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricStatus {
    /// Ratio inside the tolerance band: keep the current count.
    WithinTolerance,
    ScaleUp,
    ScaleDown,
    /// The ratio points one way but counting missing or not-ready replicas points the other (or into the
    /// tolerance band): keep the current count, as the HPA does.
    DirectionHold,
    /// Outside the tolerance band, but the computed count equals the current one.
    Steady,
    /// No usable sample: this metric does not vote.
    Missing,
    /// No replica is ready and the unhealthy ones use more than the target: the vote comes from their
    /// measured usage, and only ever keeps or raises the count.
    AllReplicasUnready,
}

/// The outcome of one metric, also used as the per-metric detail of a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDetail {
    pub name: String,
    /// `utilization`, `average`, `value` or `below`.
    pub target_kind: &'static str,
    /// The target (percent, value, or seconds for `below`).
    pub target: f64,
    /// The observed level in the target's unit (integer percent for utilization), before fallbacks.
    pub current: Option<f64>,
    /// Observed / target, before fallbacks.
    pub ratio: Option<f64>,
    /// Replicas this metric asks for; `None` when it has no usable data.
    pub proposal: Option<u32>,
    pub status: MetricStatus,
    /// Replicas that entered the final computation.
    pub counted: u32,
    /// Why the metric has no usable data, typed (`no_series`, `no_ready_replica`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Missing>,
    /// Why the metric has no usable data, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Total demand behind this metric (sum over ready replicas, or the service value); input of prediction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
    /// Demand one replica serves when exactly on target: `load / this` is the replicas needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_per_replica_at_target: Option<f64>,
    /// The policy's `query`, when it has one: the record then says what `current` is (the series
    /// and matchers, and a quantile's φ and window or an error ratio's errors), not just its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<SeriesQuery>,
}

impl MetricDetail {
    /// A metric not computed (yet): no level, no vote.
    pub fn unread(name: &str, target_kind: &'static str, target: f64) -> Self {
        MetricDetail {
            name: name.to_string(),
            target_kind,
            target,
            current: None,
            ratio: None,
            proposal: None,
            status: MetricStatus::Missing,
            counted: 0,
            missing: None,
            problem: None,
            load: None,
            load_per_replica_at_target: None,
            query: None,
        }
    }
}

/// Computes one metric's vote. `current` is the service's current replica count (> 0).
pub fn compute(
    spec: &MetricSpec,
    obs: &Observation,
    tolerance: Tolerance,
    current: u32,
) -> MetricDetail {
    let mut detail = MetricDetail::unread(&spec.name, spec.target.kind(), spec.target.as_f64());
    detail.query = spec.query.clone();
    // What the source could not read is reported as the source saw it.
    if let Some(&why) = obs.missing.get(&spec.name) {
        detail.missing = Some(why);
        detail.problem = Some(format!("{}: {}", spec.name, missing_text(why)));
        return detail;
    }
    let result = match spec.target {
        Target::Utilization(pct) => per_replica(
            spec,
            obs,
            Kind::Utilization(i64::from(pct)),
            tolerance,
            current,
        ),
        Target::Average(t) => per_replica(spec, obs, Kind::Average(milli(t)), tolerance, current),
        Target::Value(t) => service_value(spec, obs, t, tolerance, current),
        Target::Below(bound) => service_below(spec, obs, bound.as_secs_f64(), tolerance),
        Target::BelowRatio(bound) => service_below(spec, obs, bound, tolerance),
    };
    match result {
        Ok(v) => {
            detail.current = Some(v.level);
            detail.ratio = Some(v.ratio);
            detail.counted = v.counted;
            detail.load = v.load;
            detail.load_per_replica_at_target = v.load_per_replica;
            let (proposal, status) = guard_direction(v.ratio, v.proposal, current);
            detail.proposal = Some(proposal);
            detail.status = status;
        }
        Err((why, problem)) => {
            detail.missing = Some(why);
            detail.problem = Some(problem);
        }
    }
    detail
}

fn missing_text(why: Missing) -> &'static str {
    match why {
        Missing::NoSeries => "no series of the service matches the metric's query",
        Missing::NotACounter => "rate asked of series that are not counters",
        Missing::NotAHistogram => "quantile asked of series that are not histograms",
        Missing::NotServed => "the metric source cannot serve this read",
        Missing::NoRecentSample => "no fresh sample (or too few for a rate) in the window",
        Missing::NoReadyReplica => "no ready replica reported it",
        Missing::WrongShape => "a sample of the wrong shape for the target",
        Missing::ZeroCapacity => "total capacity is zero",
        Missing::NoServiceValue => "no service value",
    }
}

/// Why a metric did not vote: the typed reason and the words.
type NoVote = (Missing, String);

struct Vote {
    level: f64,
    ratio: f64,
    proposal: Proposal,
    counted: u32,
    load: Option<f64>,
    load_per_replica: Option<f64>,
}

enum Proposal {
    Keep(MetricStatus),
    Replicas(u32),
    /// From the unhealthy replicas when none is ready: at least the current count.
    Unready(u32),
}

/// Turns a proposal into replicas and a status, never moving against the ratio's direction.
fn guard_direction(ratio: f64, proposal: Proposal, current: u32) -> (u32, MetricStatus) {
    match proposal {
        Proposal::Keep(status) => (current, status),
        Proposal::Unready(n) => (n.max(current), MetricStatus::AllReplicasUnready),
        Proposal::Replicas(n) if (ratio > 1.0 && n < current) || (ratio < 1.0 && n > current) => {
            (current, MetricStatus::DirectionHold)
        }
        Proposal::Replicas(n) if n > current => (n, MetricStatus::ScaleUp),
        Proposal::Replicas(n) if n < current => (n, MetricStatus::ScaleDown),
        Proposal::Replicas(n) => (n, MetricStatus::Steady),
    }
}

/// Per-replica metric kinds, in the HPA's milli-unit integer arithmetic.
#[derive(Clone, Copy)]
enum Kind {
    /// Target percent; points are (used, capacity) in milli-units.
    Utilization(i64),
    /// Target in milli-units; points are (value, 1).
    Average(i64),
}

/// Sums over a set of replicas, which is all the HPA's ratio functions use of them: kept as running
/// totals so that a decision allocates nothing per replica.
#[derive(Clone, Copy, Default)]
struct Totals {
    /// Milli-units used (utilization) or reported (average).
    value: i64,
    /// Milli-units of capacity (utilization), or 1 per replica (average).
    weight: i64,
    count: i64,
}

impl Totals {
    fn add(&mut self, value: i64, weight: i64) {
        self.value += value;
        self.weight += weight;
        self.count += 1;
    }
}

fn milli(x: f64) -> i64 {
    (x * 1000.0).round() as i64
}

fn ceil_u32(x: f64) -> u32 {
    x.ceil().clamp(0.0, f64::from(u32::MAX)) as u32
}

impl Kind {
    /// (level, ratio) as `GetResourceUtilizationRatio` / `GetMetricUtilizationRatio` compute them.
    fn ratio(self, t: Totals) -> Option<(i64, f64)> {
        match self {
            Kind::Utilization(target) => (t.weight > 0).then(|| {
                let utilization = t.value * 100 / t.weight;
                (utilization, utilization as f64 / target as f64)
            }),
            Kind::Average(target) => (t.count > 0).then(|| {
                let average = t.value / t.count;
                (average, average as f64 / target as f64)
            }),
        }
    }

    /// A replica's weight: its capacity (utilization), or 1 (average). `sample` is its sample of `metric`,
    /// already looked up (one map search per replica); without a usage sample the capacity comes from
    /// the replica-level map.
    fn weight(self, r: &ReplicaObservation, sample: Option<&Sample>, metric: &str) -> Option<i64> {
        match (self, sample) {
            (Kind::Average(_), _) => Some(1),
            (Kind::Utilization(_), Some(Sample::Usage { capacity, .. })) => Some(milli(*capacity)),
            (Kind::Utilization(_), _) => r.capacity.get(metric).copied().map(milli),
        }
    }

    /// A sample as (value, weight) in milli-units; `None` when it has the wrong shape for the target.
    fn point(self, sample: &Sample) -> Option<(i64, i64)> {
        match (self, sample) {
            (Kind::Utilization(_), Sample::Usage { used, capacity }) => {
                Some((milli(*used), milli(*capacity)))
            }
            (Kind::Average(_), Sample::Value(v)) => Some((milli(*v), 1)),
            _ => None,
        }
    }

    /// A level from [`Kind::ratio`] in the target's unit (integer percent, or the average).
    fn shown(self, level: i64) -> f64 {
        match self {
            Kind::Utilization(_) => level as f64,
            Kind::Average(_) => level as f64 / 1000.0,
        }
    }

    fn sample_shape(self) -> &'static str {
        match self {
            Kind::Utilization(_) => "{used, capacity} for a utilization target",
            Kind::Average(_) => "a plain value for an average target",
        }
    }

    /// What a ready replica without a sample is assumed to use on a scale-down.
    fn scale_down_fallback(self, weight: i64) -> i64 {
        match self {
            Kind::Utilization(target) => weight * target.max(100) / 100,
            Kind::Average(target) => target,
        }
    }
}

/// Replicas sorted as the HPA's `groupPods` sorts pods, for one metric.
#[derive(Default)]
struct Groups {
    /// Replicas whose sample counts.
    ready: Totals,
    /// Ready replicas without a sample, by weight (`None`: capacity unknown).
    missing: Vec<Option<i64>>,
    /// Replicas not ready (starting) whose sample does not count: 0 on a scale-up, left out on a
    /// scale-down.
    unready: Vec<Option<i64>>,
    /// The samples of the unready replicas that fail their health check (also in `unready`): used only
    /// when no replica is ready.
    unhealthy: Totals,
}

fn per_replica(
    spec: &MetricSpec,
    obs: &Observation,
    kind: Kind,
    tolerance: Tolerance,
    current: u32,
) -> Result<Vote, NoVote> {
    let name = spec.name.as_str();
    // The HPA applies readiness to CPU only, whose start-up bursts it guards against: for any other
    // metric a replica that reports is counted, ready or not.
    let readiness_matters = matches!(kind, Kind::Utilization(_)) && name == CPU;
    let mut g = Groups::default();
    for r in &obs.replicas {
        let sample = r.metrics.get(name);
        match sample {
            None if r.ready => g.missing.push(kind.weight(r, sample, name)),
            None => g.unready.push(kind.weight(r, sample, name)),
            Some(s) if !r.ready && readiness_matters => {
                g.unready.push(kind.weight(r, sample, name));
                if r.unhealthy {
                    if let Some((value, weight)) = kind.point(s) {
                        g.unhealthy.add(value, weight);
                    }
                }
            }
            Some(s) => {
                let (value, weight) = kind.point(s).ok_or_else(|| {
                    (
                        Missing::WrongShape,
                        format!("replica {}: {name} needs {}", r.id, kind.sample_shape()),
                    )
                })?;
                g.ready.add(value, weight);
            }
        }
    }
    if g.ready.count == 0 {
        if g.unhealthy.count > 0 {
            return all_unready_vote(name, kind, g, tolerance);
        }
        return Err((
            Missing::NoReadyReplica,
            format!("no ready replica reported {name}"),
        ));
    }
    hpa_vote(name, kind, g, tolerance, current)
}

/// The vote when no replica is ready but some fail their health check while reporting usage (see the
/// module doc): scale up as if the unhealthy replicas were ready and the other unready or silent ones used
/// nothing; no vote when the unhealthy ones are not above the target.
fn all_unready_vote(
    name: &str,
    kind: Kind,
    g: Groups,
    tolerance: Tolerance,
) -> Result<Vote, NoVote> {
    let zero = || {
        (
            Missing::ZeroCapacity,
            format!("{name}: total capacity is zero"),
        )
    };
    let unhealthy = g.unhealthy;
    let (level, ratio) = kind.ratio(unhealthy).ok_or_else(zero)?;
    let level_shown = kind.shown(level);
    if ratio <= 1.0 + tolerance.up {
        return Err((
            Missing::NoReadyReplica,
            format!(
                "no ready replica reported {name}; the {} unhealthy ones are at {level_shown} \
                 (ratio {ratio:.2}), not above the target: no sign of overload",
                unhealthy.count
            ),
        ));
    }
    let mean_weight = unhealthy.weight / unhealthy.count;
    let mut all = unhealthy;
    // Every other replica, unready (starting, or unhealthy without a usable sample) or silent, counts as
    // idle: the HPA's rule for a scale-up. The unhealthy replicas are in `unready` as well.
    let others = g.unready.len() + g.missing.len() - unhealthy.count as usize;
    for _ in 0..others {
        all.add(0, mean_weight);
    }
    let (_, new_ratio) = kind.ratio(all).ok_or_else(zero)?;
    let proposal = if new_ratio <= 1.0 + tolerance.up {
        // What was added is still starting: wait for it.
        Proposal::Unready(0)
    } else {
        Proposal::Unready(ceil_u32(new_ratio * all.count as f64))
    };
    Ok(Vote {
        level: level_shown,
        ratio,
        proposal,
        counted: all.count as u32,
        load: Some(unhealthy.value as f64 / 1000.0),
        load_per_replica: Some(load_per_replica(kind, mean_weight)),
    })
}

/// Demand one replica serves when exactly on target.
fn load_per_replica(kind: Kind, mean_weight: i64) -> f64 {
    match kind {
        Kind::Utilization(target) => mean_weight as f64 / 1000.0 * target as f64 / 100.0,
        Kind::Average(target) => target as f64 / 1000.0,
    }
}

/// `GetResourceReplicas` / `calcPlainMetricReplicas` on grouped replicas.
fn hpa_vote(
    name: &str,
    kind: Kind,
    g: Groups,
    tolerance: Tolerance,
    current: u32,
) -> Result<Vote, NoVote> {
    let ready = g.ready;
    // Replicas of one service share one spec, so one whose capacity is unknown is given the mean of the
    // others (the HPA reads it from the pod spec, which Swarm tasks do not always expose).
    let mean_weight = ready.weight / ready.count;

    let (level, ratio) = kind.ratio(ready).ok_or_else(|| {
        (
            Missing::ZeroCapacity,
            format!("{name}: total capacity is zero"),
        )
    })?;
    let load = ready.value as f64 / 1000.0;
    let load_per_replica = load_per_replica(kind, mean_weight);
    let level_shown = kind.shown(level);
    let vote = |proposal, counted: i64| Vote {
        level: level_shown,
        ratio,
        proposal,
        counted: counted as u32,
        load: Some(load),
        load_per_replica: Some(load_per_replica),
    };

    let rebalance_unready = !g.unready.is_empty() && ratio > 1.0;
    if !rebalance_unready && g.missing.is_empty() {
        if tolerance.contains(ratio) {
            return Ok(vote(
                Proposal::Keep(MetricStatus::WithinTolerance),
                ready.count,
            ));
        }
        return Ok(vote(
            Proposal::Replicas(ceil_u32(ratio * ready.count as f64)),
            ready.count,
        ));
    }

    let mut all = ready;
    // Missing replicas count as full on a scale-down and as idle on a scale-up; at a ratio of exactly 1
    // the HPA leaves them out, so that they cannot turn "on target" into a scale-down.
    if ratio != 1.0 {
        for w in g.missing.into_iter().map(|w| w.unwrap_or(mean_weight)) {
            let value = if ratio < 1.0 {
                kind.scale_down_fallback(w)
            } else {
                0
            };
            all.add(value, w);
        }
    }
    if rebalance_unready {
        for w in g.unready.into_iter().map(|w| w.unwrap_or(mean_weight)) {
            all.add(0, w);
        }
    }
    let (_, new_ratio) = kind.ratio(all).ok_or_else(|| {
        (
            Missing::ZeroCapacity,
            format!("{name}: total capacity is zero"),
        )
    })?;
    let flipped = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if tolerance.contains(new_ratio) || flipped {
        return Ok(vote(Proposal::Keep(MetricStatus::DirectionHold), all.count));
    }
    let proposal = ceil_u32(new_ratio * all.count as f64);
    if (new_ratio < 1.0 && proposal > current) || (new_ratio > 1.0 && proposal < current) {
        return Ok(vote(Proposal::Keep(MetricStatus::DirectionHold), all.count));
    }
    Ok(vote(Proposal::Replicas(proposal), all.count))
}

fn service_value(
    spec: &MetricSpec,
    obs: &Observation,
    target: f64,
    tolerance: Tolerance,
    current: u32,
) -> Result<Vote, NoVote> {
    let value = *obs
        .service_metrics
        .get(&spec.name)
        .ok_or_else(|| no_service_value(spec))?;
    let (value_m, target_m) = (milli(value) as f64, milli(target) as f64);
    let ratio = value_m / (target_m * f64::from(current));
    let proposal = if tolerance.contains(ratio) {
        Proposal::Keep(MetricStatus::WithinTolerance)
    } else {
        Proposal::Replicas(ceil_u32(value_m / target_m))
    };
    Ok(Vote {
        level: value,
        ratio,
        proposal,
        counted: current,
        load: Some(value),
        load_per_replica: Some(target),
    })
}

fn no_service_value(spec: &MetricSpec) -> NoVote {
    (
        Missing::NoServiceValue,
        format!("no service value for {}", spec.name),
    )
}

fn service_below(
    spec: &MetricSpec,
    obs: &Observation,
    bound_secs: f64,
    tolerance: Tolerance,
) -> Result<Vote, NoVote> {
    let observed = *obs
        .service_metrics
        .get(&spec.name)
        .ok_or_else(|| no_service_value(spec))?;
    let ratio = observed / bound_secs;
    let ready = obs.replicas.iter().filter(|r| r.ready).count();
    let proposal = if tolerance.contains(ratio) {
        Proposal::Keep(MetricStatus::WithinTolerance)
    } else {
        Proposal::Replicas(ceil_u32(ratio * ready as f64))
    };
    // Latency is not proportional to demand, so it offers no load for prediction.
    Ok(Vote {
        level: observed,
        ratio,
        proposal,
        counted: ready as u32,
        load: None,
        load_per_replica: None,
    })
}

#[cfg(test)]
mod tests;
