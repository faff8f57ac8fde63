use metrics_exporter_prometheus::PrometheusBuilder;

use super::*;
use crate::policy::parse_policy;

fn detail(name: &str, kind: &'static str, target: f64, current: Option<f64>) -> MetricDetail {
    MetricDetail {
        current,
        ..MetricDetail::unread(name, kind, target)
    }
}

/// What a closure emits, as the Prometheus text the collector's `/metrics` serves.
fn rendered(f: impl FnOnce()) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, f);
    handle.render()
}

#[test]
fn policy_bounds_targets_observed_levels_and_failures_are_series_per_target() {
    let id = TargetId::Compose {
        project: "shop".into(),
        service: "web".into(),
    };
    let policy = parse_policy(
        "p.yaml",
        "service: web\nmin: 2\nmax: 9\nmetrics:\n  - name: cpu\n    target: { utilization: 70 }\n  - name: queue\n    target: { value: 40 }\n",
    )
    .unwrap();
    let at = Timestamp::from_secs(1_700_000_000);
    let mut failed = DecisionRecord::new(
        &id,
        at,
        3,
        5,
        Cause::Decided(crate::policy::Reason::ScaleUp),
        Action::Failed,
    );
    // queue has no value this tick: no observed series for it.
    failed.metrics = vec![
        detail("cpu", "utilization", 70.0, Some(93.0)),
        detail("queue", "value", 40.0, None),
    ];
    let mut dry = failed.clone();
    dry.action = Action::DryRun;
    let text = rendered(|| {
        emit_policy(&id, &policy);
        failed.emit(Duration::from_millis(3));
        dry.emit(Duration::from_millis(2));
    });
    let labels = r#"service="web",target="compose/shop/web""#;
    for line in [
        format!("plimsoll_policy_min_replicas{{{labels}}} 2"),
        format!("plimsoll_policy_max_replicas{{{labels}}} 9"),
        format!(r#"plimsoll_policy_metric_target{{{labels},metric="cpu",kind="utilization"}} 70"#),
        format!(r#"plimsoll_policy_metric_target{{{labels},metric="queue",kind="value"}} 40"#),
        format!(
            r#"plimsoll_policy_metric_observed{{{labels},metric="cpu",kind="utilization"}} 93"#
        ),
        // The failed action counts; the dry run does not.
        format!("plimsoll_scale_failures_total{{{labels}}} 1"),
        format!("plimsoll_decision_duration_seconds_count{{{labels}}} 2"),
    ] {
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
    assert!(!text.contains(r#"plimsoll_policy_metric_observed{service="web",target="compose/shop/web",metric="queue""#), "{text}");
}
