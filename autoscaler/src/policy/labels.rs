//! Policies from Docker service labels, and the file-versus-labels merge.
//!
//! Labels: `plimsoll.min`, `plimsoll.max`, `plimsoll.cpu` / `plimsoll.memory` (utilization percent),
//! `plimsoll.metric.<name>` (average per replica), `plimsoll.fallback.replicas` with
//! `plimsoll.fallback.after` (both or neither), `plimsoll.initialization` and `plimsoll.interval`
//! (durations with a unit). Everything else keeps its default (tolerance 0.1, HPA behavior, no
//! prediction). Labels outside the `plimsoll.` prefix belong to others and are ignored; an unknown
//! `plimsoll.` label is an error, as an unknown field in a file is.

use std::collections::BTreeMap;
use std::time::Duration;

use super::model::{
    check_fallback_replicas, check_interval, Behavior, Fallback, MetricSpec, Policy, Predictive,
    Target, Tolerance,
};
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
    let (mut fallback_replicas, mut fallback_after) = (None, None);
    let (mut initialization, mut interval) = (Duration::ZERO, None);
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
                    metrics.push(MetricSpec::new(name.to_string(), Target::Utilization(p)));
                }
                _ => err(key, format!("expected a utilization percent (integer >= 1), got `{raw}`")),
            },
            "plimsoll.fallback.replicas" | "plimsoll.fallback.after" => match value.parse::<u32>() {
                Ok(v) if v >= 1 => {
                    *(if key == "plimsoll.fallback.replicas" { &mut fallback_replicas } else { &mut fallback_after }) =
                        Some(v)
                }
                _ => err(key, format!("expected an integer >= 1, got `{raw}`")),
            },
            "plimsoll.initialization" => match humantime::parse_duration(value) {
                Ok(d) => initialization = d,
                Err(e) => err(key, format!("expected a duration such as 30s, got `{raw}`: {e}")),
            },
            "plimsoll.interval" => match humantime::parse_duration(value) {
                Ok(d) => match check_interval(d) {
                    Ok(()) => interval = Some(d),
                    Err(e) => err(key, e),
                },
                Err(e) => err(key, format!("expected a duration such as 15s, got `{raw}`: {e}")),
            },
            _ if key.starts_with(METRIC_PREFIX) && key.len() > METRIC_PREFIX.len() => {
                match value.parse::<f64>() {
                    Ok(v) if v > 0.0 && v.is_finite() => {
                        let name = &key[METRIC_PREFIX.len()..];
                        metrics.push(MetricSpec::new(name.to_string(), Target::Average(v)));
                    }
                    _ => err(key, format!("expected a positive average per replica, got `{raw}`")),
                }
            }
            _ => err(
                key,
                "unknown plimsoll label; expected plimsoll.min, plimsoll.max, plimsoll.cpu, plimsoll.memory, \
                 plimsoll.metric.<name>, plimsoll.fallback.replicas, plimsoll.fallback.after, \
                 plimsoll.initialization or plimsoll.interval"
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
    // Both fallback labels or neither: half a fallback is a typo, not a default.
    let fallback = match (fallback_replicas, fallback_after) {
        (Some(replicas), Some(after)) => {
            if let (Some(lo), Some(hi)) = (min, max) {
                if let Err(e) = check_fallback_replicas(replicas, lo, hi) {
                    err("plimsoll.fallback.replicas", e);
                }
            }
            Some(Fallback { replicas, after })
        }
        (Some(_), None) if !labels.contains_key("plimsoll.fallback.after") => {
            err(
                "plimsoll.fallback.after",
                "missing (plimsoll.fallback.replicas is set)".to_string(),
            );
            None
        }
        (None, Some(_)) if !labels.contains_key("plimsoll.fallback.replicas") => {
            err(
                "plimsoll.fallback.replicas",
                "missing (plimsoll.fallback.after is set)".to_string(),
            );
            None
        }
        _ => None,
    };
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
            fallback,
            initialization,
            interval,
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
    /// `min`, `max`, `metric <name>`, `fallback`, `initialization` or `interval`.
    pub setting: String,
    pub file: String,
    pub labels: String,
}

/// Merges a file policy with a label policy for the same service: the file wins on every setting it has,
/// label-only metrics and settings are added, and each disagreement is returned so the caller can log it.
/// An `initialization` of 0s (the default) counts as not set.
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
    let show_fallback =
        |f: &Fallback| format!("{} replicas after {} failed ticks", f.replicas, f.after);
    merged.fallback = merge_setting(
        merged.fallback,
        labels.fallback,
        "fallback",
        show_fallback,
        &mut conflict,
    );
    let show_duration = |d: &Duration| humantime::format_duration(*d).to_string();
    merged.interval = merge_setting(
        merged.interval,
        labels.interval,
        "interval",
        show_duration,
        &mut conflict,
    );
    let file_initialization = (!merged.initialization.is_zero()).then_some(merged.initialization);
    let label_initialization = (!labels.initialization.is_zero()).then_some(labels.initialization);
    merged.initialization = merge_setting(
        file_initialization,
        label_initialization,
        "initialization",
        show_duration,
        &mut conflict,
    )
    .unwrap_or(Duration::ZERO);
    (merged, conflicts)
}

/// An optional setting: the file's if it has one (reporting a different label value), else the labels'.
fn merge_setting<T: Copy>(
    file: Option<T>,
    labels: Option<T>,
    setting: &str,
    show: impl Fn(&T) -> String,
    conflict: &mut impl FnMut(String, String, String),
) -> Option<T> {
    if let (Some(f), Some(l)) = (&file, &labels) {
        conflict(setting.to_string(), show(f), show(l));
    }
    file.or(labels)
}

fn describe(t: &Target) -> String {
    match t {
        Target::Below(d) => format!("below {}", humantime::format_duration(*d)),
        Target::BelowRatio(r) => format!("below {r}"),
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
        assert!(p
            .metrics
            .contains(&MetricSpec::new("cpu", Target::Utilization(75))));
        assert!(p
            .metrics
            .contains(&MetricSpec::new("orders_per_second", Target::Average(50.0))));
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
        file.metrics = vec![MetricSpec::new("cpu", Target::Utilization(80))];
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

    #[test]
    fn fallback_initialization_and_interval_labels() {
        let base = [
            ("plimsoll.min", "2"),
            ("plimsoll.max", "8"),
            ("plimsoll.cpu", "70"),
        ];
        let p = policy_from_labels("web", &labels(&base)).unwrap();
        assert_eq!(
            (p.fallback, p.initialization, p.interval),
            (None, Duration::ZERO, None)
        );
        let mut all = base.to_vec();
        all.extend([
            ("plimsoll.fallback.replicas", "3"),
            ("plimsoll.fallback.after", "5"),
            ("plimsoll.initialization", "45s"),
            ("plimsoll.interval", "250ms"),
        ]);
        let p = policy_from_labels("web", &labels(&all)).unwrap();
        assert_eq!(
            p.fallback,
            Some(Fallback {
                replicas: 3,
                after: 5
            })
        );
        assert_eq!(p.initialization, Duration::from_secs(45));
        assert_eq!(p.interval, Some(Duration::from_millis(250)));
    }

    #[test]
    fn fallback_labels_come_in_pairs_within_bounds() {
        let base = [
            ("plimsoll.min", "2"),
            ("plimsoll.max", "8"),
            ("plimsoll.cpu", "70"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            policy_from_labels("web", &labels(&all))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            with(&[("plimsoll.fallback.replicas", "3")]),
            "service web: label plimsoll.fallback.after: missing (plimsoll.fallback.replicas is set)"
        );
        assert_eq!(
            with(&[("plimsoll.fallback.after", "3")]),
            "service web: label plimsoll.fallback.replicas: missing (plimsoll.fallback.after is set)"
        );
        assert_eq!(
            with(&[("plimsoll.fallback.replicas", "9"), ("plimsoll.fallback.after", "1")]),
            "service web: label plimsoll.fallback.replicas: must be within min..=max (2..=8), got 9"
        );
        // A bad value is reported once, not again as a missing partner.
        assert_eq!(
            with(&[
                ("plimsoll.fallback.replicas", "3"),
                ("plimsoll.fallback.after", "0")
            ]),
            "service web: label plimsoll.fallback.after: expected an integer >= 1, got `0`"
        );
        let text = with(&[
            ("plimsoll.interval", "10m"),
            ("plimsoll.initialization", "soon"),
        ]);
        assert!(
            text.contains("label plimsoll.interval: must be between 100ms and 5m, got 10m"),
            "{text}"
        );
        assert!(
            text.contains(
                "label plimsoll.initialization: expected a duration such as 30s, got `soon`"
            ),
            "{text}"
        );
    }

    #[test]
    fn optional_settings_merge_file_first_then_labels() {
        let from_labels = policy_from_labels(
            "web",
            &labels(&[
                ("plimsoll.min", "1"),
                ("plimsoll.max", "20"),
                ("plimsoll.cpu", "60"),
                ("plimsoll.fallback.replicas", "4"),
                ("plimsoll.fallback.after", "3"),
                ("plimsoll.initialization", "30s"),
                ("plimsoll.interval", "5s"),
            ]),
        )
        .unwrap();
        let mut file = from_labels.clone();
        file.fallback = None;
        file.initialization = Duration::ZERO;
        file.interval = Some(Duration::from_secs(10));
        let (merged, conflicts) = merge_file_and_labels(file, &from_labels);
        assert_eq!(
            merged.fallback,
            Some(Fallback {
                replicas: 4,
                after: 3
            }),
            "label-only"
        );
        assert_eq!(
            merged.initialization,
            Duration::from_secs(30),
            "0s in the file is unset"
        );
        assert_eq!(
            merged.interval,
            Some(Duration::from_secs(10)),
            "the file wins"
        );
        assert_eq!(
            conflicts,
            vec![Conflict {
                setting: "interval".into(),
                file: "10s".into(),
                labels: "5s".into()
            }]
        );
    }
}
