//! Policy files (YAML, or the same schema as JSON) into a validated [`Policy`].
//!
//! JSON is read by the same YAML 1.2 parser (JSON is a subset of it), so both formats share one decoder and
//! give the same `file:line:col: message` diagnostics. Decoding never stops at the first problem: every
//! unknown field, type error and validation error is collected and reported at once.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use plimsoll_collector::store::{check_label_name, is_metric_name};
use plimsoll_collector::yaml::{self, scalar_text, Fields, Node};
use saphyr::{Scalar, YamlData};

use super::behavior::LOAD_RETENTION;
use super::model::{
    check_fallback_replicas, check_interval, Behavior, Fallback, MetricSpec, Policy, PredictMethod,
    Predictive, RateLimit, RatePolicy, Read, ScalingRules, Select, SeriesQuery, Target, Tolerance,
    MAX_RATE_WINDOW, MIN_RATE_WINDOW,
};
use super::selector::{check_project_name, PolicyFile, Selector, TargetKind};

pub use plimsoll_collector::yaml::{Diagnostic, Location, SourceErrors as PolicyError};

/// Parses and validates one policy document. `source_name` is only used in diagnostics.
pub fn parse_policy(source_name: &str, text: &str) -> Result<Policy, PolicyError> {
    parse_policy_file(source_name, text).map(|f| f.policy)
}

/// Parses and validates one policy document with the target fields (`kind`, `project`, `stack`) that
/// say which target it means.
pub fn parse_policy_file(source_name: &str, text: &str) -> Result<PolicyFile, PolicyError> {
    let mut d = Decoder::default();
    let file = match yaml::load_one(text, "a policy mapping") {
        Ok(doc) => d.policy(&doc),
        Err(diag) => {
            d.diags.push(diag);
            None
        }
    };
    d.0.finish(source_name, file)
}

/// The shared strict decoder, extended with the policy schema.
#[derive(Default)]
struct Decoder(yaml::Decoder);

impl Deref for Decoder {
    type Target = yaml::Decoder;
    fn deref(&self) -> &yaml::Decoder {
        &self.0
    }
}

impl DerefMut for Decoder {
    fn deref_mut(&mut self) -> &mut yaml::Decoder {
        &mut self.0
    }
}

impl Decoder {
    fn policy(&mut self, node: &Node) -> Option<PolicyFile> {
        const FIELDS: &[&str] = &[
            "service",
            "kind",
            "project",
            "stack",
            "min",
            "max",
            "tolerance",
            "metrics",
            "behavior",
            "predictive",
            "fallback",
            "initialization",
            "interval",
        ];
        let f = self.mapping(node, "policy", FIELDS)?;
        let service = self
            .required(&f, "service", "policy")
            .and_then(|n| self.string(n, "service"));
        let min = self
            .required(&f, "min", "policy")
            .and_then(|n| self.integer(n, "min", 1));
        let max_node = self.required(&f, "max", "policy");
        let max = max_node.and_then(|n| self.integer(n, "max", 1));
        if let (Some(lo), Some(hi), Some(n)) = (min, max, max_node) {
            if lo > hi {
                self.error(n, format!("max: must be >= min ({lo}), got {hi}"));
            }
        }
        let tolerance = match f.get("tolerance") {
            Some(n) => self.tolerance(n),
            None => Some(Tolerance::default()),
        };
        let metrics = self
            .required(&f, "metrics", "policy")
            .and_then(|n| self.metrics(n));
        let behavior = match f.get("behavior") {
            Some(n) => self.behavior(n),
            None => Some(Behavior::hpa_default()),
        };
        let predictive = match f.get("predictive") {
            Some(n) => self.predictive(n),
            None => Some(Predictive::default()),
        };
        let fallback = match f.get("fallback") {
            // Bounds are checked only once both are known, so a bad min or max is not reported twice.
            Some(n) => self.fallback(n, min.zip(max)).map(Some),
            None => Some(None),
        };
        let initialization = match f.get("initialization") {
            Some(n) => self.duration(n, "initialization", true),
            None => Some(Duration::ZERO),
        };
        let interval = match f.get("interval") {
            Some(n) => self.interval(n).map(Some),
            None => Some(None),
        };
        let selector = self.selector(&f);
        let policy = Policy {
            service: service?,
            min: min?,
            max: max?,
            tolerance: tolerance?,
            metrics: metrics?,
            behavior: behavior?,
            predictive: predictive?,
            fallback: fallback?,
            initialization: initialization?,
            interval: interval?,
        };
        Some(PolicyFile {
            policy,
            selector: selector?,
        })
    }

    /// `kind`, `project` and `stack`: each valid, and not contradicting one another.
    fn selector(&mut self, f: &Fields) -> Option<Selector> {
        let kind_node = f.get("kind");
        let kind = match kind_node {
            Some(n) => match scalar_text(n).as_deref() {
                Some("swarm") => Some(Some(TargetKind::Swarm)),
                Some("compose") => Some(Some(TargetKind::Compose)),
                _ => {
                    self.error(n, "kind: expected swarm or compose");
                    None
                }
            },
            None => Some(None),
        };
        let name = |d: &mut Self, field: &str| -> Option<Option<String>> {
            let Some(n) = f.get(field) else {
                return Some(None);
            };
            let v = d.string(n, field)?;
            match check_project_name(&v) {
                Ok(()) => Some(Some(v)),
                Err(e) => {
                    d.error(n, format!("{field}: {e}"));
                    None
                }
            }
        };
        let project = name(self, "project");
        let stack = name(self, "stack");
        let (kind, project, stack) = (kind?, project?, stack?);
        let contradiction = match (&project, &stack, kind) {
            (Some(_), Some(_), _) => Some((
                "stack",
                "`project` names a Compose project and `stack` a Swarm stack: give one of them",
            )),
            (Some(_), None, Some(TargetKind::Swarm)) => Some((
                "project",
                "`project` names a Compose project, but `kind` is swarm (use `stack` for a Swarm stack)",
            )),
            (None, Some(_), Some(TargetKind::Compose)) => Some((
                "stack",
                "`stack` names a Swarm stack, but `kind` is compose (use `project` for a Compose project)",
            )),
            _ => None,
        };
        if let Some((field, message)) = contradiction {
            let node = f.get(field).expect("present");
            self.error(node, format!("{field}: {message}"));
            return None;
        }
        Some(Selector {
            kind,
            project,
            stack,
        })
    }

    fn fallback(&mut self, node: &Node, bounds: Option<(u32, u32)>) -> Option<Fallback> {
        let f = self.mapping(node, "fallback", &["replicas", "after"])?;
        let replicas_node = self.required(&f, "replicas", "fallback");
        let replicas = replicas_node.and_then(|n| self.integer(n, "fallback.replicas", 1));
        if let (Some(r), Some(n), Some((min, max))) = (replicas, replicas_node, bounds) {
            if let Err(e) = check_fallback_replicas(r, min, max) {
                self.error(n, format!("fallback.replicas: {e}"));
            }
        }
        let after = self
            .required(&f, "after", "fallback")
            .and_then(|n| self.integer(n, "fallback.after (failed ticks)", 1));
        Some(Fallback {
            replicas: replicas?,
            after: after?,
        })
    }

    fn interval(&mut self, node: &Node) -> Option<Duration> {
        let d = self.duration(node, "interval", true)?;
        match check_interval(d) {
            Ok(()) => Some(d),
            Err(e) => {
                self.error(node, format!("interval: {e}"));
                None
            }
        }
    }

    fn tolerance_value(&mut self, node: &Node, what: &str) -> Option<f64> {
        let t = self.number(node, what)?;
        if (0.0..1.0).contains(&t) {
            Some(t)
        } else {
            self.error(node, format!("{what}: must be in [0, 1), got {t}"));
            None
        }
    }

    fn tolerance(&mut self, node: &Node) -> Option<Tolerance> {
        if let YamlData::Mapping(_) = node.data {
            let f = self.mapping(node, "tolerance", &["up", "down"])?;
            let up = self
                .required(&f, "up", "tolerance")
                .and_then(|n| self.tolerance_value(n, "tolerance.up"));
            let down = self
                .required(&f, "down", "tolerance")
                .and_then(|n| self.tolerance_value(n, "tolerance.down"));
            Some(Tolerance {
                up: up?,
                down: down?,
            })
        } else {
            self.tolerance_value(node, "tolerance")
                .map(Tolerance::symmetric)
        }
    }

    fn metrics(&mut self, node: &Node) -> Option<Vec<MetricSpec>> {
        let YamlData::Sequence(items) = &node.data else {
            self.error(node, "metrics: expected a list");
            return None;
        };
        if items.is_empty() {
            self.error(node, "metrics: at least one metric is required");
            return None;
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            match self.metric(item) {
                Some(m) => {
                    if !seen.insert(m.name.clone()) {
                        self.error(item, format!("metrics: duplicate metric `{}`", m.name));
                        ok = false;
                    }
                    out.push(m);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn metric(&mut self, node: &Node) -> Option<MetricSpec> {
        let f = self.mapping(node, "metric", &["name", "target", "query"])?;
        let name = self
            .required(&f, "name", "metric")
            .and_then(|n| self.string(n, "metric name"));
        let target = self
            .required(&f, "target", "metric")
            .and_then(|n| self.target(n));
        let query = match f.get("query") {
            Some(n) => self.query(n, target).map(Some),
            None => Some(None),
        };
        Some(MetricSpec {
            name: name?,
            target: target?,
            query: query?,
        })
    }

    /// `query: {metric: NAME, matchers: {LABEL: VALUE...}, rate: WINDOW}`, or instead of `rate`
    /// `quantile: PHI` or `error_ratio: {LABEL: VALUE...}` with `window: WINDOW`. `target` (when it
    /// parsed) says which queries make sense.
    fn query(&mut self, node: &Node, target: Option<Target>) -> Option<SeriesQuery> {
        const FIELDS: &[&str] = &[
            "metric",
            "matchers",
            "rate",
            "quantile",
            "error_ratio",
            "window",
        ];
        let f = self.mapping(node, "query", FIELDS)?;
        let metric_node = self.required(&f, "metric", "query");
        let metric = metric_node.and_then(|n| {
            let name = self.string(n, "query.metric")?;
            if is_metric_name(&name) {
                Some(name)
            } else {
                self.error(
                    n,
                    format!(
                        "query.metric: `{name}` is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
                    ),
                );
                None
            }
        });
        let matchers = match f.get("matchers") {
            Some(n) => self.matchers(n, "query.matchers"),
            None => Some(BTreeMap::new()),
        };
        if let Some(Target::Utilization(_)) = target {
            self.error(
                node,
                "query: a utilization target reads the built-in `cpu` or `memory`; `query` is for \
                 average, value and below targets",
            );
            return None;
        }
        let reads: Vec<&str> = ["rate", "quantile", "error_ratio"]
            .into_iter()
            .filter(|k| f.get(k).is_some())
            .collect();
        if reads.len() > 1 {
            self.error(
                node,
                format!(
                    "query: give one of rate, quantile or error_ratio, not {}",
                    reads.join(" and ")
                ),
            );
            return None;
        }
        let window = match (f.get("window"), reads.first().copied()) {
            (Some(n), Some("quantile" | "error_ratio")) => self.window(n, "query.window"),
            (Some(n), _) => {
                self.error(
                    n,
                    "query.window: is the window of a quantile or an error_ratio (a counter's rate \
                     takes its window as `rate: 1m`)",
                );
                None
            }
            (None, Some(k @ ("quantile" | "error_ratio"))) => {
                self.error(
                    node,
                    format!("query: missing field `window` (the window of the {k})"),
                );
                None
            }
            (None, _) => Some(Duration::ZERO),
        };
        let read = match reads.first().copied() {
            Some("rate") => self.rate_window(f.get("rate").expect("present"), target),
            Some("quantile") => {
                let n = f.get("quantile").expect("present");
                self.quantile(n, metric.as_deref(), metric_node, target, window?)
            }
            Some(_) => {
                let n = f.get("error_ratio").expect("present");
                self.error_ratio(n, target, window?)
            }
            None => match target {
                Some(Target::BelowRatio(_)) => {
                    self.error(
                        node,
                        "query: a `below` ratio target bounds an error_ratio (or a gauge without \
                         query)",
                    );
                    None
                }
                _ => Some(Read::Auto),
            },
        };
        Some(SeriesQuery {
            metric: metric?,
            matchers: matchers?,
            read: read?,
        })
    }

    fn window(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let w = self.duration(node, what, false)?;
        if (MIN_RATE_WINDOW..=MAX_RATE_WINDOW).contains(&w) {
            Some(w)
        } else {
            self.error(
                node,
                format!(
                    "{what}: must be between {} and {}, got {}",
                    humantime::format_duration(MIN_RATE_WINDOW),
                    humantime::format_duration(MAX_RATE_WINDOW),
                    humantime::format_duration(w)
                ),
            );
            None
        }
    }

    /// `quantile: PHI` of a histogram whose unit its name says, for a `below` duration target.
    fn quantile(
        &mut self,
        node: &Node,
        metric: Option<&str>,
        metric_node: Option<&Node>,
        target: Option<Target>,
        window: Duration,
    ) -> Option<Read> {
        let phi = self.number(node, "query.quantile")?;
        if !(phi > 0.0 && phi < 1.0) {
            self.error(
                node,
                format!("query.quantile: must be between 0 and 1 (exclusive), got {phi}"),
            );
            return None;
        }
        if matches!(target, Some(t) if !matches!(t, Target::Below(_))) {
            self.error(
                node,
                "query.quantile: a quantile is a latency: give it a `below` duration target (e.g. \
                 below: 300ms)",
            );
            return None;
        }
        let metric = metric?;
        let scale = if metric.ends_with("_seconds") {
            1.0
        } else if metric.ends_with("_milliseconds") {
            0.001
        } else {
            self.error(
                metric_node.unwrap_or(node),
                format!(
                    "query.metric: a quantile needs the histogram's unit in its name (`_seconds` or \
                     `_milliseconds`), got `{metric}`"
                ),
            );
            return None;
        };
        Some(Read::Quantile { phi, window, scale })
    }

    /// `error_ratio: {LABEL: VALUE...}`: which of the selected counters are errors, for a `below`
    /// ratio target.
    fn error_ratio(
        &mut self,
        node: &Node,
        target: Option<Target>,
        window: Duration,
    ) -> Option<Read> {
        let errors = self.matchers(node, "query.error_ratio")?;
        if errors.is_empty() {
            self.error(
                node,
                "query.error_ratio: name the labels of the errors, e.g. { status_code: STATUS_CODE_ERROR }",
            );
            return None;
        }
        if matches!(target, Some(t) if !matches!(t, Target::BelowRatio(_))) {
            self.error(
                node,
                "query.error_ratio: give it a `below` ratio target (e.g. below: 0.01)",
            );
            return None;
        }
        Some(Read::ErrorRatio { errors, window })
    }

    fn matchers(&mut self, node: &Node, what: &str) -> Option<BTreeMap<String, String>> {
        let entries = self.string_map(node, what)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, k, v) in entries {
            if let Err(e) = check_label_name(&key) {
                self.error(k, format!("{what}: {e}"));
                ok = false;
                continue;
            }
            match self.scalar_string(v, &format!("{what}.{key}")) {
                Some(value) => {
                    out.insert(key, value);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn rate_window(&mut self, node: &Node, target: Option<Target>) -> Option<Read> {
        let w = self.window(node, "query.rate")?;
        if let Some(Target::Below(_) | Target::BelowRatio(_)) = target {
            self.error(
                node,
                "query.rate: a `below` target bounds a duration in seconds (a latency), not a \
                 per-second rate: use `value` or `average`",
            );
            return None;
        }
        Some(Read::Rate(w))
    }

    fn target(&mut self, node: &Node) -> Option<Target> {
        const KINDS: &[&str] = &["utilization", "average", "value", "below"];
        let f = self.mapping(node, "target", KINDS)?;
        let [(kind, _, value)] = f.entries.as_slice() else {
            let is_empty = matches!(&node.data, YamlData::Mapping(m) if m.is_empty());
            // An unknown key alone was already reported; only an empty or over-full target needs a message.
            if is_empty || f.entries.len() > 1 {
                self.error(
                    node,
                    format!("target: expected exactly one of: {}", KINDS.join(", ")),
                );
            }
            return None;
        };
        match kind.as_str() {
            "utilization" => self
                .integer(value, "target.utilization (percent)", 1)
                .map(Target::Utilization),
            "average" => self
                .positive_number(value, "target.average")
                .map(Target::Average),
            "value" => self
                .positive_number(value, "target.value")
                .map(Target::Value),
            _ if is_number(value) => {
                let r = self.number(value, "target.below")?;
                if r > 0.0 && r <= 1.0 {
                    Some(Target::BelowRatio(r))
                } else {
                    self.error(
                        value,
                        format!(
                            "target.below: a number is a ratio bound (an error_ratio, 0 < r <= 1), \
                             got {r}; a latency needs a unit, e.g. 250ms"
                        ),
                    );
                    None
                }
            }
            _ => self
                .duration(value, "target.below", false)
                .map(Target::Below),
        }
    }

    fn behavior(&mut self, node: &Node) -> Option<Behavior> {
        let f = self.mapping(node, "behavior", &["scale_up", "scale_down"])?;
        let up = match f.get("scale_up") {
            Some(n) => self.rules(n, "scale_up", ScalingRules::hpa_default_up()),
            None => Some(ScalingRules::hpa_default_up()),
        };
        let down = match f.get("scale_down") {
            Some(n) => self.rules(n, "scale_down", ScalingRules::hpa_default_down()),
            None => Some(ScalingRules::hpa_default_down()),
        };
        Some(Behavior {
            scale_up: up?,
            scale_down: down?,
        })
    }

    /// Fields left out take the HPA default for that direction, as the HPA's API defaulting does.
    fn rules(&mut self, node: &Node, what: &str, default: ScalingRules) -> Option<ScalingRules> {
        let f = self.mapping(
            node,
            what,
            &["stabilization", "cooldown", "select", "policies"],
        )?;
        let stabilization = match f.get("stabilization") {
            Some(n) => self.duration(n, &format!("{what}.stabilization"), true),
            None => Some(default.stabilization),
        };
        let cooldown = match f.get("cooldown") {
            Some(n) => self.duration(n, &format!("{what}.cooldown"), true),
            None => Some(default.cooldown),
        };
        let select = match f.get("select") {
            Some(n) => self.select(n, what),
            None => Some(default.select),
        };
        let policies = match f.get("policies") {
            Some(n) => self.rate_policies(n, what),
            None => Some(default.policies),
        };
        Some(ScalingRules {
            stabilization: stabilization?,
            cooldown: cooldown?,
            select: select?,
            policies: policies?,
        })
    }

    fn select(&mut self, node: &Node, what: &str) -> Option<Select> {
        match scalar_text(node).as_deref() {
            Some("max") => Some(Select::Max),
            Some("min") => Some(Select::Min),
            Some("disabled") => Some(Select::Disabled),
            _ => {
                self.error(
                    node,
                    format!("{what}.select: expected max, min or disabled"),
                );
                None
            }
        }
    }

    fn rate_policies(&mut self, node: &Node, what: &str) -> Option<Vec<RatePolicy>> {
        let YamlData::Sequence(items) = &node.data else {
            self.error(node, format!("{what}.policies: expected a list"));
            return None;
        };
        if items.is_empty() {
            self.error(
                node,
                format!("{what}.policies: at least one policy is required"),
            );
            return None;
        }
        let parsed: Vec<_> = items
            .iter()
            .map(|item| self.rate_policy(item, what))
            .collect();
        parsed.into_iter().collect()
    }

    fn rate_policy(&mut self, node: &Node, what: &str) -> Option<RatePolicy> {
        let f = self.mapping(
            node,
            &format!("{what} policy"),
            &["replicas", "percent", "period"],
        )?;
        let limit = match (f.get("replicas"), f.get("percent")) {
            (Some(n), None) => self
                .integer(n, &format!("{what} policy replicas"), 1)
                .map(RateLimit::Replicas),
            (None, Some(n)) => self
                .integer(n, &format!("{what} policy percent"), 1)
                .map(RateLimit::Percent),
            _ => {
                self.error(
                    node,
                    format!("{what} policy: expected exactly one of `replicas` or `percent`"),
                );
                None
            }
        };
        let period = self
            .required(&f, "period", &format!("{what} policy"))
            .and_then(|n| self.duration(n, &format!("{what} policy period"), false));
        Some(RatePolicy {
            limit: limit?,
            period: period?,
        })
    }

    fn predictive(&mut self, node: &Node) -> Option<Predictive> {
        #[rustfmt::skip]
        let f = self.mapping(node, "predictive", &["enabled", "horizon", "method", "seasonal_rise"])?;
        let enabled = match f.get("enabled") {
            Some(n) => self.boolean(n, "predictive.enabled"),
            None => Some(true),
        };
        let horizon = match f.get("horizon") {
            Some(n) => self.duration(n, "predictive.horizon", false),
            None => Some(Predictive::default().horizon),
        };
        let method = match f.get("method") {
            Some(n) => match scalar_text(n).as_deref() {
                Some("seasonal") => Some(PredictMethod::Seasonal),
                Some("ramp") => Some(PredictMethod::Ramp),
                _ => {
                    self.error(n, "predictive.method: expected seasonal or ramp");
                    None
                }
            },
            None => Some(Predictive::default().method),
        };
        let seasonal_rise = match (f.get("seasonal_rise"), horizon) {
            (Some(n), Some(h)) => self.seasons(n, h),
            (None, _) => Some(Vec::new()),
            (Some(_), None) => None,
        };
        Some(Predictive {
            enabled: enabled?,
            horizon: horizon?,
            method: method?,
            seasonal_rise: seasonal_rise?,
        })
    }

    /// `predictive.seasonal_rise`: a list of periods, each longer than the horizon and short enough that
    /// the kept demand history (`LOAD_RETENTION`) still covers one period plus the horizon.
    fn seasons(&mut self, node: &Node, horizon: Duration) -> Option<Vec<Duration>> {
        let what = "predictive.seasonal_rise";
        let YamlData::Sequence(items) = &node.data else {
            self.error(
                node,
                format!("{what}: expected a list of periods (`[1d, 7d]`)"),
            );
            return None;
        };
        let mut seasons = Some(Vec::new());
        for item in items {
            let season = self.duration(item, what, false).and_then(|p| {
                if p <= horizon {
                    self.error(item, format!("{what}: a period must be longer than the horizon"));
                    None
                } else if p + horizon > LOAD_RETENTION {
                    #[rustfmt::skip]
                    self.error(item, format!("{what}: at most {} (demand history is kept for {})",
                        humantime::format_duration(LOAD_RETENTION - horizon), humantime::format_duration(LOAD_RETENTION)));
                    None
                } else {
                    Some(p)
                }
            });
            match (&mut seasons, season) {
                (Some(all), Some(p)) => all.push(p),
                _ => seasons = None,
            }
        }
        seasons
    }
}

fn is_number(node: &Node) -> bool {
    matches!(
        node.data,
        YamlData::Value(Scalar::Integer(_) | Scalar::FloatingPoint(_))
    )
}

#[cfg(test)]
mod tests;
