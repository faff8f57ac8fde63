use super::*;
use crate::control::plan::Cause;
use crate::policy::{parse_policy, MetricDetail, Missing, Reason, Timestamp};

fn detail(name: &str, kind: &'static str, target: f64, current: Option<f64>) -> MetricDetail {
    MetricDetail {
        current,
        missing: current.is_none().then_some(Missing::NoSeries),
        ..MetricDetail::unread(name, kind, target)
    }
}

fn rendered(series: &Series) -> String {
    let mut out = String::new();
    series.render(&mut out);
    out
}

fn compose(project: &str) -> TargetId {
    TargetId::Compose {
        project: project.into(),
        service: "web".into(),
    }
}

/// A failed scale-up of `id` from 3 to 5 with cpu at 93 and queue unread, and the same as a dry run.
fn two_ticks(series: &Series, id: &TargetId) {
    let policy = parse_policy(
        "p.yaml",
        "service: web\nmin: 2\nmax: 9\nmetrics:\n  - name: cpu\n    target: { utilization: 70 }\n  - name: queue\n    target: { value: 40 }\n",
    )
    .unwrap();
    let at = Timestamp::from_secs(1_700_000_000);
    let mut failed = DecisionRecord::new(
        id,
        at,
        3,
        5,
        Cause::Decided(Reason::ScaleUp),
        Action::Failed,
    );
    failed.metrics = vec![
        detail("cpu", "utilization", 70.0, Some(93.0)),
        detail("queue", "value", 40.0, None),
    ];
    let mut dry = failed.clone();
    dry.action = Action::DryRun;
    series.policy(id, &policy);
    series.record(id, &failed, Duration::from_millis(3));
    series.record(id, &dry, Duration::from_millis(2));
}

#[test]
fn policy_bounds_targets_observed_levels_and_failures_are_series_per_target() {
    let (series, id) = (Series::default(), compose("shop"));
    two_ticks(&series, &id);
    let text = rendered(&series);
    let labels = r#"service="web",target="compose/shop/web""#;
    for line in [
        "# TYPE plimsoll_desired_replicas gauge".to_string(),
        format!("plimsoll_desired_replicas{{{labels}}} 5"),
        format!("plimsoll_current_replicas{{{labels}}} 3"),
        format!("plimsoll_policy_min_replicas{{{labels}}} 2"),
        format!("plimsoll_policy_max_replicas{{{labels}}} 9"),
        format!(r#"plimsoll_policy_metric_target{{{labels},metric="cpu",kind="utilization"}} 70"#),
        format!(r#"plimsoll_policy_metric_target{{{labels},metric="queue",kind="value"}} 40"#),
        format!(
            r#"plimsoll_policy_metric_observed{{{labels},metric="cpu",kind="utilization"}} 93"#
        ),
        format!(r#"plimsoll_decisions_total{{{labels},reason="scale_up"}} 2"#),
        format!(r#"plimsoll_metric_missing_total{{{labels},metric="queue",reason="no_series"}} 2"#),
        // The failed action counts; the dry run does not.
        format!("plimsoll_scale_failures_total{{{labels}}} 1"),
        format!(r#"plimsoll_decision_duration_seconds_bucket{{{labels},le="0.0025"}} 1"#),
        format!(r#"plimsoll_decision_duration_seconds_bucket{{{labels},le="+Inf"}} 2"#),
        format!("plimsoll_decision_duration_seconds_count{{{labels}}} 2"),
    ] {
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
    // queue had no value: no observed series for it.
    assert!(
        !text.contains(&format!(
            r#"plimsoll_policy_metric_observed{{{labels},metric="queue""#
        )),
        "{text}"
    );
    // No scale action was taken: the family is left out rather than shown empty.
    assert!(!text.contains("plimsoll_scale_events_total"), "{text}");
}

#[test]
fn a_forgotten_target_loses_every_series_and_the_others_keep_theirs() {
    let series = Series::default();
    let (gone, kept) = (compose("gone"), compose("kept"));
    two_ticks(&series, &gone);
    two_ticks(&series, &kept);
    assert!(rendered(&series).contains(r#"target="compose/gone/web""#));
    series.forget(&gone);
    let text = rendered(&series);
    assert!(!text.contains("compose/gone/web"), "{text}");
    assert_eq!(
        text.matches(r#"target="compose/kept/web""#).count(),
        // desired, current, min, max, 2 metric targets, 1 observed, 1 decisions, 1 missing,
        // failures; the buckets, +Inf, sum and count.
        10 + SECONDS_BUCKETS.len() + 3,
        "{text}"
    );
    series.forget(&kept);
    assert_eq!(rendered(&series), "");
}
