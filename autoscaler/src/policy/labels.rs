//! Policies from Docker service labels, and the file-versus-labels merge.
//!
//! Labels: `plimsoll.min`, `plimsoll.max`, `plimsoll.cpu` / `plimsoll.memory` (utilization percent),
//! `plimsoll.metric.<name>` (average per replica). Everything else keeps its default (tolerance 0.1, HPA
//! behavior, no prediction). Labels outside the `plimsoll.` prefix belong to others and are ignored; an
//! unknown `plimsoll.` label is an error, as an unknown field in a file is.

use std::collections::BTreeMap;

use super::model::{Behavior, MetricSpec, Policy, Predictive, Target, Tolerance};
use super::parse::{Diagnostic, Location, PolicyError};

const PREFIX: &str = "plimsoll.";
const METRIC_PREFIX: &str = "plimsoll.metric.";

/// Builds a policy for `service` from its labels, reporting every bad label at once.
pub fn policy_from_labels(
    service: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Policy, PolicyError> {
    let mut errors = Vec::new();
    let mut err = |key: &str, message: String| {
        errors.push(Diagnostic {
            location: Location::Label(key.to_string()),
            message,
        });
    };
    let (mut min, mut max) = (None, None);
    let mut metrics = Vec::new();
    for (key, raw) in labels.iter().filter(|(k, _)| k.starts_with(PREFIX)) {
        let value = raw.trim();
        match key.as_str() {
            "plimsoll.min" | "plimsoll.max" => match value.parse::<u32>() {
                Ok(v) if v >= 1 => *(if key == "plimsoll.min" { &mut min } else { &mut max }) = Some(v),
                _ => err(key, format!("expected an integer >= 1, got `{raw}`")),
            },
            "plimsoll.cpu" | "plimsoll.memory" => match value.trim_end_matches('%').parse::<u32>() {
                Ok(p) if p >= 1 => {
                    let name = &key[PREFIX.len()..];
                    metrics.push(MetricSpec { name: name.to_string(), target: Target::Utilization(p) });
                }
                _ => err(key, format!("expected a utilization percent (integer >= 1), got `{raw}`")),
            },
            _ if key.starts_with(METRIC_PREFIX) && key.len() > METRIC_PREFIX.len() => {
                match value.parse::<f64>() {
                    Ok(v) if v > 0.0 && v.is_finite() => {
                        let name = &key[METRIC_PREFIX.len()..];
                        metrics.push(MetricSpec { name: name.to_string(), target: Target::Average(v) });
                    }
                    _ => err(key, format!("expected a positive average per replica, got `{raw}`")),
                }
            }
            _ => err(
                key,
                "unknown plimsoll label; expected plimsoll.min, plimsoll.max, plimsoll.cpu, plimsoll.memory \
                 or plimsoll.metric.<name>"
                    .to_string(),
            ),
        }
    }
    if min.is_none() && !labels.contains_key("plimsoll.min") {
        err("plimsoll.min", "missing".to_string());
    }
    if max.is_none() && !labels.contains_key("plimsoll.max") {
        err("plimsoll.max", "missing".to_string());
    }
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            err(
                "plimsoll.max",
                format!("must be >= plimsoll.min ({lo}), got {hi}"),
            );
        }
    }
    if metrics.is_empty()
        && !labels
            .keys()
            .any(|k| k.starts_with(METRIC_PREFIX) || is_resource(k))
    {
        err(
            "plimsoll.cpu",
            "no metric: set plimsoll.cpu, plimsoll.memory or plimsoll.metric.<name>".to_string(),
        );
    }
    match (min, max) {
        (Some(min), Some(max)) if errors.is_empty() => Ok(Policy {
            service: service.to_string(),
            min,
            max,
            tolerance: Tolerance::default(),
            metrics,
            behavior: Behavior::hpa_default(),
            predictive: Predictive::default(),
        }),
        _ => Err(PolicyError {
            source_name: format!("service {service}"),
            diagnostics: errors,
        }),
    }
}

fn is_resource(key: &str) -> bool {
    key == "plimsoll.cpu" || key == "plimsoll.memory"
}

/// A setting given by both the file and the labels with different values; the file's value is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// `min`, `max` or `metric <name>`.
    pub setting: String,
    pub file: String,
    pub labels: String,
}

/// Merges a file policy with a label policy for the same service: the file wins on every setting it has,
/// label-only metrics are added, and each disagreement is returned so the caller can log it.
pub fn merge_file_and_labels(file: Policy, labels: &Policy) -> (Policy, Vec<Conflict>) {
    let mut conflicts = Vec::new();
    let mut conflict = |setting: String, f: String, l: String| {
        if f != l {
            conflicts.push(Conflict {
                setting,
                file: f,
                labels: l,
            });
        }
    };
    conflict("min".into(), file.min.to_string(), labels.min.to_string());
    conflict("max".into(), file.max.to_string(), labels.max.to_string());
    let mut merged = file;
    for lm in &labels.metrics {
        match merged.metrics.iter().find(|m| m.name == lm.name) {
            Some(fm) => conflict(
                format!("metric {}", lm.name),
                describe(&fm.target),
                describe(&lm.target),
            ),
            None => merged.metrics.push(lm.clone()),
        }
    }
    (merged, conflicts)
}

fn describe(t: &Target) -> String {
    match t {
        Target::Below(d) => format!("below {}", humantime::format_duration(*d)),
        other => format!("{} {}", other.kind(), other.as_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn full_label_set_builds_policy() {
        let p = policy_from_labels(
            "web",
            &labels(&[
                ("plimsoll.min", "2"),
                ("plimsoll.max", "10"),
                ("plimsoll.cpu", "75"),
                ("plimsoll.metric.orders_per_second", "50"),
                ("com.docker.stack.namespace", "shop"),
            ]),
        )
        .unwrap();
        assert_eq!((p.min, p.max), (2, 10));
        assert_eq!(p.metrics.len(), 2);
        assert!(p.metrics.contains(&MetricSpec {
            name: "cpu".into(),
            target: Target::Utilization(75)
        }));
        assert!(p.metrics.contains(&MetricSpec {
            name: "orders_per_second".into(),
            target: Target::Average(50.0)
        }));
        assert_eq!(p.behavior, Behavior::hpa_default());
    }

    #[test]
    fn every_bad_label_is_reported() {
        let e = policy_from_labels(
            "web",
            &labels(&[
                ("plimsoll.min", "zero"),
                ("plimsoll.max", "3"),
                ("plimsoll.cpu", "-5"),
                ("plimsoll.colour", "blue"),
            ]),
        )
        .unwrap_err();
        let text = e.to_string();
        assert_eq!(e.diagnostics.len(), 3, "{text}");
        assert!(
            text.contains("service web: label plimsoll.min: expected an integer"),
            "{text}"
        );
        assert!(
            text.contains("label plimsoll.cpu: expected a utilization percent"),
            "{text}"
        );
        assert!(
            text.contains("label plimsoll.colour: unknown plimsoll label"),
            "{text}"
        );
    }

    #[test]
    fn missing_bounds_and_metrics_are_errors() {
        let e = policy_from_labels(
            "web",
            &labels(&[("plimsoll.max", "1"), ("plimsoll.min", "2")]),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("plimsoll.max: must be >= plimsoll.min (2), got 1"),
            "{text}"
        );
        assert!(text.contains("no metric"), "{text}");
        let e = policy_from_labels("web", &labels(&[("plimsoll.cpu", "80")])).unwrap_err();
        assert_eq!(e.diagnostics.len(), 2, "{e}");
    }

    #[test]
    fn file_wins_and_conflicts_are_returned() {
        let from_labels = policy_from_labels(
            "web",
            &labels(&[
                ("plimsoll.min", "1"),
                ("plimsoll.max", "20"),
                ("plimsoll.cpu", "60"),
                ("plimsoll.memory", "70"),
            ]),
        )
        .unwrap();
        let mut file = from_labels.clone();
        file.max = 12;
        file.metrics = vec![MetricSpec {
            name: "cpu".into(),
            target: Target::Utilization(80),
        }];
        let (merged, conflicts) = merge_file_and_labels(file, &from_labels);
        assert_eq!(merged.max, 12);
        assert_eq!(merged.metrics[0].target, Target::Utilization(80));
        assert_eq!(
            merged.metrics[1].name, "memory",
            "label-only metric is added"
        );
        assert_eq!(
            conflicts,
            vec![
                Conflict {
                    setting: "max".into(),
                    file: "12".into(),
                    labels: "20".into()
                },
                Conflict {
                    setting: "metric cpu".into(),
                    file: "utilization 80".into(),
                    labels: "utilization 60".into()
                },
            ]
        );
    }
}
