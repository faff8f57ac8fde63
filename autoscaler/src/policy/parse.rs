//! Policy files (YAML, or the same schema as JSON) into a validated [`Policy`].
//!
//! JSON is read by the same YAML 1.2 parser (JSON is a subset of it), so both formats share one decoder and
//! give the same `file:line:col: message` diagnostics. Decoding never stops at the first problem: every
//! unknown field, type error and validation error is collected and reported at once.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use super::model::{
    check_fallback_replicas, check_interval, Behavior, Fallback, MetricSpec, Policy, PredictMethod,
    Predictive, RateLimit, RatePolicy, ScalingRules, Select, Target, Tolerance,
};

/// Where a problem was found: a position in a file, or a Docker label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// 1-based line and column.
    Position {
        line: usize,
        col: usize,
    },
    Label(String),
}

/// One problem in a policy source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
}

/// Every problem found in one policy source (a file name, or the service whose labels were read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub source_name: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for PolicyError {
    /// One line per diagnostic: `file:line:col: message` (or `source: label KEY: message`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match &d.location {
                Location::Position { line, col } => {
                    write!(f, "{}:{line}:{col}: {}", self.source_name, d.message)?
                }
                Location::Label(key) => {
                    write!(f, "{}: label {key}: {}", self.source_name, d.message)?
                }
            }
        }
        Ok(())
    }
}

/// Parses and validates one policy document. `source_name` is only used in diagnostics.
pub fn parse_policy(source_name: &str, text: &str) -> Result<Policy, PolicyError> {
    let fail = |diagnostics| PolicyError {
        source_name: source_name.to_string(),
        diagnostics,
    };
    let docs = match MarkedYaml::load_from_str(text) {
        Ok(docs) => docs,
        Err(e) => {
            let m = e.marker();
            return Err(fail(vec![Diagnostic {
                location: Location::Position {
                    line: m.line(),
                    col: m.col() + 1,
                },
                message: format!("syntax error: {}", e.info()),
            }]));
        }
    };
    let mut d = Decoder::default();
    let policy = match docs.as_slice() {
        [doc] => d.policy(doc),
        [] => {
            d.error_at(1, 1, "empty document: expected a policy mapping");
            None
        }
        [_, second, ..] => {
            d.error(second, "expected exactly one YAML document per policy file");
            None
        }
    };
    match policy {
        Some(p) if d.diags.is_empty() => Ok(p),
        _ => {
            // Report in reading order, whatever order the checks ran in.
            d.diags.sort_by_key(|d| match d.location {
                Location::Position { line, col } => (line, col),
                Location::Label(_) => (0, 0),
            });
            Err(fail(d.diags))
        }
    }
}

type Node<'a> = MarkedYaml<'a>;

fn position(node: &Node) -> (usize, usize) {
    (node.span.start.line(), node.span.start.col() + 1)
}

/// The fields of a mapping, in document order, with the key nodes kept for positions.
struct Fields<'a, 'n> {
    map: &'n Node<'a>,
    entries: Vec<(String, &'n Node<'a>, &'n Node<'a>)>,
}

impl<'a, 'n> Fields<'a, 'n> {
    fn get(&self, name: &str) -> Option<&'n Node<'a>> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == name)
            .map(|(_, _, v)| *v)
    }
}

#[derive(Default)]
struct Decoder {
    diags: Vec<Diagnostic>,
}

impl Decoder {
    fn error_at(&mut self, line: usize, col: usize, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            location: Location::Position { line, col },
            message: message.into(),
        });
    }

    fn error(&mut self, node: &Node, message: impl Into<String>) {
        let (line, col) = position(node);
        self.error_at(line, col, message);
    }

    /// A mapping whose keys are all in `allowed`; unknown keys are reported, not fatal.
    fn mapping<'a, 'n>(
        &mut self,
        node: &'n Node<'a>,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'a, 'n>> {
        let YamlData::Mapping(map) = &node.data else {
            self.error(node, format!("{what}: expected a mapping"));
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map {
            let Some(key) = scalar_text(k) else {
                self.error(k, format!("{what}: keys must be strings"));
                continue;
            };
            if allowed.contains(&key.as_str()) {
                entries.push((key, k, v));
            } else {
                self.error(
                    k,
                    format!(
                        "{what}: unknown field `{key}`, expected one of: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(Fields { map: node, entries })
    }

    fn required<'a, 'n>(
        &mut self,
        f: &Fields<'a, 'n>,
        name: &str,
        what: &str,
    ) -> Option<&'n Node<'a>> {
        let v = f.get(name);
        if v.is_none() {
            self.error(f.map, format!("{what}: missing field `{name}`"));
        }
        v
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.data {
            YamlData::Value(Scalar::String(s)) if !s.trim().is_empty() => Some(s.to_string()),
            _ => {
                self.error(node, format!("{what}: expected a non-empty string"));
                None
            }
        }
    }

    fn number(&mut self, node: &Node, what: &str) -> Option<f64> {
        match &node.data {
            YamlData::Value(Scalar::Integer(i)) => Some(*i as f64),
            YamlData::Value(Scalar::FloatingPoint(x)) if x.is_finite() => Some(x.into_inner()),
            _ => {
                self.error(node, format!("{what}: expected a number"));
                None
            }
        }
    }

    fn positive_number(&mut self, node: &Node, what: &str) -> Option<f64> {
        let x = self.number(node, what)?;
        if x > 0.0 {
            Some(x)
        } else {
            self.error(node, format!("{what}: must be greater than 0, got {x}"));
            None
        }
    }

    fn integer(&mut self, node: &Node, what: &str, min: u32) -> Option<u32> {
        match &node.data {
            YamlData::Value(Scalar::Integer(i)) => match u32::try_from(*i) {
                Ok(v) if v >= min => Some(v),
                _ => {
                    self.error(
                        node,
                        format!("{what}: must be an integer >= {min}, got {i}"),
                    );
                    None
                }
            },
            _ => {
                self.error(node, format!("{what}: expected an integer"));
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.data {
            YamlData::Value(Scalar::Boolean(b)) => Some(*b),
            _ => {
                self.error(node, format!("{what}: expected true or false"));
                None
            }
        }
    }

    /// Durations carry a unit (`15s`, `5m`, `250ms`); a bare number is ambiguous and rejected.
    fn duration(&mut self, node: &Node, what: &str, allow_zero: bool) -> Option<Duration> {
        let text = match &node.data {
            YamlData::Value(Scalar::String(s)) => s.to_string(),
            YamlData::Value(Scalar::Integer(_) | Scalar::FloatingPoint(_)) => {
                self.error(
                    node,
                    format!("{what}: a duration needs a unit, e.g. 15s, 5m or 250ms"),
                );
                return None;
            }
            _ => {
                self.error(
                    node,
                    format!("{what}: expected a duration such as 15s, 5m or 250ms"),
                );
                return None;
            }
        };
        match humantime::parse_duration(&text) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.error(node, format!("{what}: must be greater than 0"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(node, format!("{what}: invalid duration `{text}`: {e}"));
                None
            }
        }
    }

    fn policy(&mut self, node: &Node) -> Option<Policy> {
        const FIELDS: &[&str] = &[
            "service",
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
        Some(Policy {
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
        let f = self.mapping(node, "metric", &["name", "target"])?;
        let name = self
            .required(&f, "name", "metric")
            .and_then(|n| self.string(n, "metric name"));
        let target = self
            .required(&f, "target", "metric")
            .and_then(|n| self.target(n));
        Some(MetricSpec {
            name: name?,
            target: target?,
        })
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
        let f = self.mapping(node, what, &["stabilization", "select", "policies"])?;
        let stabilization = match f.get("stabilization") {
            Some(n) => self.duration(n, &format!("{what}.stabilization"), true),
            None => Some(default.stabilization),
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
        let f = self.mapping(node, "predictive", &["enabled", "horizon", "method"])?;
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
        Some(Predictive {
            enabled: enabled?,
            horizon: horizon?,
            method: method?,
        })
    }
}

fn scalar_text(node: &Node) -> Option<String> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
