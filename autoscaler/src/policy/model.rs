//! The resolved policy: every default filled in, every value validated. Built by `parse` (files) or
//! `labels` (Docker labels); the decision code only ever sees this form.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// HPA default tolerance (`--horizontal-pod-autoscaler-tolerance`).
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// HPA default scale-down stabilization window (`--horizontal-pod-autoscaler-downscale-stabilization`).
pub const DEFAULT_SCALE_DOWN_STABILIZATION: Duration = Duration::from_secs(300);
/// Default prediction horizon when `predictive` is given without one.
pub const DEFAULT_HORIZON: Duration = Duration::from_secs(600);
/// Shortest per-policy decision interval: below this, metric samples barely change between ticks.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest per-policy decision interval: beyond this, the behavior windows (15 s periods, 300 s
/// stabilization) no longer mean what they say.
pub const MAX_INTERVAL: Duration = Duration::from_secs(300);

/// One autoscaling policy for one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// Swarm service or Compose service name.
    pub service: String,
    pub min: u32,
    pub max: u32,
    pub tolerance: Tolerance,
    pub metrics: Vec<MetricSpec>,
    pub behavior: Behavior,
    pub predictive: Predictive,
    /// What to do when the metric source keeps failing; `None`: keep the current replica count.
    pub fallback: Option<Fallback>,
    /// A replica whose container started less than this ago counts as not ready (the HPA's initial
    /// readiness delay), so that start-up CPU bursts do not trigger scale-ups. Zero by default.
    #[serde(serialize_with = "serialize_duration")]
    pub initialization: Duration,
    /// Decision interval for this service; `None`: the control loop's global interval.
    #[serde(serialize_with = "serialize_optional_duration")]
    pub interval: Option<Duration>,
}

/// KEDA-style fallback: after `after` consecutive ticks whose metrics could not be read, scale to
/// `replicas` (within the policy's bounds). Applied by the control loop; the decision core never sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fallback {
    pub replicas: u32,
    /// Consecutive failed ticks, at least 1.
    pub after: u32,
}

/// Why a fallback replica count is out of the policy's bounds (shared by files and labels).
pub(crate) fn check_fallback_replicas(replicas: u32, min: u32, max: u32) -> Result<(), String> {
    if (min..=max).contains(&replicas) {
        Ok(())
    } else {
        Err(format!(
            "must be within min..=max ({min}..={max}), got {replicas}"
        ))
    }
}

/// Why an interval is out of [`MIN_INTERVAL`]..=[`MAX_INTERVAL`] (shared by files and labels).
pub(crate) fn check_interval(interval: Duration) -> Result<(), String> {
    if (MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        Ok(())
    } else {
        Err(format!(
            "must be between {} and {}, got {}",
            humantime::format_duration(MIN_INTERVAL),
            humantime::format_duration(MAX_INTERVAL),
            humantime::format_duration(interval)
        ))
    }
}

/// Band around a ratio of 1.0 inside which the replica count is kept: `1 - down <= ratio <= 1 + up`
/// (the HPA's configurable tolerance; a single number sets both).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tolerance {
    pub up: f64,
    pub down: f64,
}

impl Tolerance {
    pub const fn symmetric(t: f64) -> Self {
        Tolerance { up: t, down: t }
    }

    /// Mirrors the HPA's `tolerances.isWithin`.
    pub fn contains(&self, ratio: f64) -> bool {
        (1.0 - self.down) <= ratio && ratio <= (1.0 + self.up)
    }
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance::symmetric(DEFAULT_TOLERANCE)
    }
}

/// A metric and what "on target" means for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSpec {
    /// The name decisions, logs and the observation know the metric by. Without a `query`, also the
    /// name of the series read (`cpu` and `memory` with a utilization target are built in).
    pub name: String,
    pub target: Target,
    /// Which series to read and how; `None`: the series named `name`, as [`MetricSpec::series`] says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<SeriesQuery>,
}

impl MetricSpec {
    /// A metric read from the series named `name` (or built in, for `cpu` and `memory` utilization).
    pub fn new(name: impl Into<String>, target: Target) -> Self {
        MetricSpec {
            name: name.into(),
            target,
            query: None,
        }
    }

    /// The series this metric reads: its `query`, else the family named like the metric with no
    /// matchers, read as [`Read::Auto`]. `None` for the built-in `cpu` and `memory` utilization.
    pub fn series(&self) -> Option<SeriesQuery> {
        if let Target::Utilization(_) = self.target {
            return None;
        }
        Some(self.query.clone().unwrap_or_else(|| SeriesQuery {
            metric: self.name.clone(),
            matchers: BTreeMap::new(),
            read: Read::Auto,
        }))
    }

    /// Whether the metric is read per replica (`average`) or for the whole service (`value`, `below`).
    pub fn scope(&self) -> Scope {
        match self.target {
            Target::Utilization(_) | Target::Average(_) => Scope::Replica,
            Target::Value(_) | Target::Below(_) | Target::BelowRatio(_) => Scope::Service,
        }
    }
}

/// Where a metric's value comes from: each replica's series, or the service's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Series attributed to a replica's container (its cgroup, scrape target, StatsD sender...).
    Replica,
    /// The service total: every series of the service's replicas plus the series that carry the
    /// service's `service` label and belong to no container.
    Service,
}

/// Longest window a policy's `rate` may cover.
pub const MAX_RATE_WINDOW: Duration = Duration::from_secs(3600);
/// Shortest window a policy's `rate` may cover: two samples at the collector's fastest interval.
pub const MIN_RATE_WINDOW: Duration = Duration::from_secs(1);

/// Which series a metric reads (`{metric: orders_total, rate: 1m, matchers: {status: ok}}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesQuery {
    /// The family name, as `/metrics` shows it (`orders_total`).
    pub metric: String,
    /// Label equality matchers: only series whose label has this value (an absent label is "").
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub matchers: BTreeMap<String, String>,
    pub read: Read,
}

/// How the selected series become one number.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Read {
    /// A gauge as it is; a counter as its per-second rate over the loop's `--rate-window`.
    Auto,
    /// The per-second rate of a counter over this window (reset-aware, as PromQL's `rate`); a series
    /// that is not a counter is reported as such, not read.
    #[serde(serialize_with = "serialize_duration")]
    Rate(Duration),
    /// The φ-quantile of a histogram's observations over the window, summed across the selected
    /// series (`histogram_quantile(φ, sum by (le) (rate(x_bucket[w])))`), in seconds: `scale`
    /// converts the histogram's unit (1 for `_seconds`, 0.001 for `_milliseconds`).
    Quantile {
        phi: f64,
        #[serde(serialize_with = "serialize_duration")]
        window: Duration,
        scale: f64,
    },
    /// Errors over all: the summed rate of the selected counters that also match `errors`, over the
    /// summed rate of all of them, over the window (0 with no errors, missing with no calls).
    ErrorRatio {
        errors: BTreeMap<String, String>,
        #[serde(serialize_with = "serialize_duration")]
        window: Duration,
    },
}

impl Read {
    /// The window of the read, `None` for [`Read::Auto`] (the loop's `--rate-window`).
    pub fn window(&self) -> Option<Duration> {
        match self {
            Read::Auto => None,
            Read::Rate(w)
            | Read::Quantile { window: w, .. }
            | Read::ErrorRatio { window: w, .. } => Some(*w),
        }
    }
}

impl SeriesQuery {
    /// The query as PromQL-like text for logs: `rate(orders_total{status="ok"}[1m])`.
    pub fn describe(&self) -> String {
        let mut sel = self.metric.clone();
        if !self.matchers.is_empty() {
            let m: Vec<String> = self
                .matchers
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            sel = format!("{sel}{{{}}}", m.join(","));
        }
        match &self.read {
            Read::Auto => sel,
            Read::Rate(w) => format!("rate({sel}[{}])", humantime::format_duration(*w)),
            Read::Quantile { phi, window, .. } => format!(
                "histogram_quantile({phi}, rate({sel}[{}]))",
                humantime::format_duration(*window)
            ),
            Read::ErrorRatio { errors, window } => {
                let e: Vec<String> = errors.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                format!(
                    "error_ratio({sel}, {{{}}}[{}])",
                    e.join(","),
                    humantime::format_duration(*window)
                )
            }
        }
    }
}

/// Target kinds. The first two are per replica, the last two describe the whole service.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Integer percent of each replica's capacity (limit or reservation), as the HPA's `Utilization`.
    Utilization(u32),
    /// Mean value per counted replica, as the HPA's `AverageValue` for pods metrics.
    Average(f64),
    /// Service-level total: desired = ceil(value / target), as the HPA's external `AverageValue`.
    Value(f64),
    /// Service-level value that must stay below the bound (latency); ratio = observed / bound.
    #[serde(serialize_with = "serialize_duration")]
    Below(Duration),
    /// Service-level unitless value that must stay below the bound (an error ratio), written
    /// `below: 0.01`; ratio = observed / bound.
    #[serde(rename = "below")]
    BelowRatio(f64),
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Utilization(_) => "utilization",
            Target::Average(_) => "average",
            Target::Value(_) => "value",
            Target::Below(_) | Target::BelowRatio(_) => "below",
        }
    }

    /// The target as a plain number (percent, value, or seconds for `below`).
    pub fn as_f64(&self) -> f64 {
        match *self {
            Target::Utilization(p) => f64::from(p),
            Target::Average(v) | Target::Value(v) | Target::BelowRatio(v) => v,
            Target::Below(d) => d.as_secs_f64(),
        }
    }
}

/// HPA `behavior`: one set of rules per direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Behavior {
    pub scale_up: ScalingRules,
    pub scale_down: ScalingRules,
}

impl Behavior {
    /// The defaults the HPA applies when `behavior` (or one direction of it) is not given.
    pub fn hpa_default() -> Self {
        Behavior {
            scale_up: ScalingRules::hpa_default_up(),
            scale_down: ScalingRules::hpa_default_down(),
        }
    }
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior::hpa_default()
    }
}

/// HPA `HPAScalingRules`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalingRules {
    #[serde(serialize_with = "serialize_duration")]
    pub stabilization: Duration,
    /// Not in the HPA: no change in this direction sooner than this after the last scale event in either
    /// direction (the Swarm autoscalers' cooldown). Zero (the default) is the HPA.
    #[serde(serialize_with = "serialize_duration")]
    pub cooldown: Duration,
    pub select: Select,
    pub policies: Vec<RatePolicy>,
}

impl ScalingRules {
    /// Scale up: no stabilization, max of {100% per 15s, 4 replicas per 15s}.
    pub fn hpa_default_up() -> Self {
        ScalingRules {
            stabilization: Duration::ZERO,
            cooldown: Duration::ZERO,
            select: Select::Max,
            policies: vec![
                RatePolicy {
                    limit: RateLimit::Percent(100),
                    period: Duration::from_secs(15),
                },
                RatePolicy {
                    limit: RateLimit::Replicas(4),
                    period: Duration::from_secs(15),
                },
            ],
        }
    }

    /// Scale down: 300s stabilization, 100% per 15s.
    pub fn hpa_default_down() -> Self {
        ScalingRules {
            stabilization: DEFAULT_SCALE_DOWN_STABILIZATION,
            cooldown: Duration::ZERO,
            select: Select::Max,
            policies: vec![RatePolicy {
                limit: RateLimit::Percent(100),
                period: Duration::from_secs(15),
            }],
        }
    }

    /// Longest policy period: scale events older than this can no longer limit anything.
    pub fn longest_period(&self) -> Duration {
        self.policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// HPA `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The policy allowing the largest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// HPA `HPAScalingPolicy`: at most `limit` change per sliding `period`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RatePolicy {
    pub limit: RateLimit,
    #[serde(serialize_with = "serialize_duration")]
    pub period: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimit {
    Replicas(u32),
    Percent(u32),
}

/// Predictive scaling switch, horizon and forecasting method.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Predictive {
    pub enabled: bool,
    #[serde(serialize_with = "serialize_duration")]
    pub horizon: Duration,
    pub method: PredictMethod,
    /// Periods after which demand repeats its rises (`1d`, `7d`): also expect, over the horizon, the rise
    /// demand made over the same stretch one period earlier (see `predict::seasonal_rise`). Empty: off.
    #[serde(
        serialize_with = "serialize_durations",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub seasonal_rise: Vec<Duration>,
}

impl Default for Predictive {
    fn default() -> Self {
        Predictive {
            enabled: false,
            horizon: DEFAULT_HORIZON,
            method: PredictMethod::Seasonal,
            seasonal_rise: Vec::new(),
        }
    }
}

/// How demand one horizon ahead is forecast (see the `predict` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictMethod {
    /// Seasonal naive plus a two-hour trend plus a residual margin: for horizons of many minutes on
    /// demand with daily or weekly patterns.
    Seasonal,
    /// The current rise extrapolated over the horizon, only while demand rises: covers the actuation
    /// lag (replica start-up plus a tick), so new replicas are ready when the demand arrives.
    Ramp,
}

/// A duration as humantime text (`5m`, `1s 500ms`), as policy files write them.
pub(crate) fn serialize_duration<S: serde::Serializer>(
    d: &Duration,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn serialize_durations<S: serde::Serializer>(d: &[Duration], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(d.len()))?;
    for d in d {
        seq.serialize_element(&humantime::format_duration(*d).to_string())?;
    }
    seq.end()
}

fn serialize_optional_duration<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serialize_duration(d, s),
        None => s.serialize_none(),
    }
}
