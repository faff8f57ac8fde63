use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::policy::Scope;

const EXAMPLE: &str = include_str!("../../../../policies/examples/web.yaml");
const EXAMPLE_JSON: &str = include_str!("../../../../policies/examples/web.json");

fn errors(text: &str) -> Vec<String> {
    parse_policy("p.yaml", text)
        .unwrap_err()
        .to_string()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn example_policy_parses_with_every_field() {
    let p = parse_policy("web.yaml", EXAMPLE).unwrap();
    assert_eq!(p.service, "web");
    assert_eq!((p.min, p.max), (2, 20));
    assert_eq!(
        p.tolerance,
        Tolerance {
            up: 0.05,
            down: 0.1
        }
    );
    let targets: Vec<_> = p
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m.target))
        .collect();
    assert_eq!(
        targets,
        vec![
            ("cpu", Target::Utilization(80)),
            ("orders_per_second", Target::Average(50.0)),
            ("queue_depth", Target::Value(100.0)),
            ("latency_p95", Target::Below(Duration::from_millis(250))),
        ]
    );
    assert_eq!(
        p.behavior,
        Behavior::hpa_default(),
        "the example spells out the HPA defaults"
    );
    assert_eq!(
        p.predictive,
        Predictive {
            enabled: false,
            horizon: Duration::from_secs(600),
            method: PredictMethod::Seasonal,
            seasonal_rise: Vec::new(),
        }
    );
    assert_eq!(
        p.fallback,
        Some(Fallback {
            replicas: 4,
            after: 3
        })
    );
    assert_eq!(p.initialization, Duration::from_secs(30));
    assert_eq!(p.interval, Some(Duration::from_secs(15)));
}

#[test]
fn json_uses_the_same_schema_and_defaults() {
    let p = parse_policy("web.json", EXAMPLE_JSON).unwrap();
    assert_eq!(p.tolerance, Tolerance::symmetric(0.1));
    assert_eq!(p.metrics.len(), 2);
    assert_eq!(
        p.behavior.scale_up,
        ScalingRules::hpa_default_up(),
        "omitted direction takes HPA default"
    );
    assert_eq!(
        p.behavior.scale_down.select,
        Select::Max,
        "omitted select takes HPA default"
    );
}

#[test]
fn json_errors_have_positions_too() {
    let e = parse_policy("p.json", "{\n  \"service\": \"web\", \"min\": 1, \"max\": 2,\n  \"colour\": 1,\n  \"metrics\": []\n}")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("p.json:3:3: policy: unknown field `colour`"),
        "{e}"
    );
    assert!(
        e.contains("p.json:4:14: metrics: at least one metric is required"),
        "{e}"
    );
}

#[test]
fn all_errors_are_reported_at_once_with_line_and_column() {
    let text = "\
service: web
min: 0
max: 20
tolerance: 1.5
surprise: true
metrics:
  - name: cpu
    target: { utilization: 80, average: 3 }
  - name: cpu
    target: { average: -1 }
  - name: latency
    target: { below: 250 }
behavior:
  scale_up: { select: fastest, policies: [ { percent: 0, period: 0s } ] }
  scale_down: { stabilization: 5 minutes please }
predictive: { horizon: 10m, enabled: yes }
";
    let errs = errors(text);
    let expected = [
        "p.yaml:2:6: min: must be an integer >= 1, got 0",
        "p.yaml:4:12: tolerance: must be in [0, 1), got 1.5",
        "p.yaml:5:1: policy: unknown field `surprise`",
        "p.yaml:8:13: target: expected exactly one of: utilization, average, value, below",
        "p.yaml:10:24: target.average: must be greater than 0, got -1",
        "p.yaml:12:22: target.below: a number is a ratio bound (an error_ratio, 0 < r <= 1), got 250; a latency needs a unit, e.g. 250ms",
        "p.yaml:14:23: scale_up.select: expected max, min or disabled",
        "p.yaml:14:55: scale_up policy percent: must be an integer >= 1, got 0",
        "p.yaml:14:66: scale_up policy period: must be greater than 0",
        "p.yaml:15:32: scale_down.stabilization: invalid duration `5 minutes please`",
        "p.yaml:16:38: predictive.enabled: expected true or false",
    ];
    for want in expected {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "missing `{want}` in:\n{}",
            errs.join("\n")
        );
    }
    assert_eq!(errs.len(), expected.len(), "{}", errs.join("\n"));
}

#[test]
fn duplicate_metric_names_and_min_above_max() {
    let errs = errors(
        "service: web\nmin: 5\nmax: 3\nmetrics:\n  - { name: cpu, target: { utilization: 50 } }\n  - { name: cpu, target: { utilization: 60 } }\n",
    );
    assert_eq!(
        errs,
        vec![
            "p.yaml:3:6: max: must be >= min (5), got 3",
            "p.yaml:6:5: metrics: duplicate metric `cpu`"
        ]
    );
}

#[test]
fn missing_required_fields_point_at_the_mapping() {
    let errs = errors("service: web\nmetrics:\n  - name: cpu\n");
    assert_eq!(
        errs,
        vec![
            "p.yaml:1:1: policy: missing field `min`",
            "p.yaml:1:1: policy: missing field `max`",
            "p.yaml:3:5: metric: missing field `target`",
        ]
    );
}

#[test]
fn rate_policy_needs_exactly_one_limit() {
    let errs = errors(
        "service: w\nmin: 1\nmax: 2\nmetrics: [ { name: cpu, target: { utilization: 50 } } ]\n\
         behavior: { scale_up: { policies: [ { replicas: 1, percent: 5, period: 15s } ] } }\n",
    );
    assert_eq!(
        errs,
        vec!["p.yaml:5:37: scale_up policy: expected exactly one of `replicas` or `percent`"]
    );
}

#[test]
fn syntax_errors_and_duplicate_keys_have_positions() {
    let errs = errors("service: web\nmin: [1\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("p.yaml:3:"), "{errs:?}");
    let errs = errors("service: web\nservice: api\n");
    assert!(
        errs[0].starts_with("p.yaml:2:1: syntax error: duplicated key"),
        "{errs:?}"
    );
}

#[test]
fn empty_and_non_mapping_documents() {
    assert_eq!(
        errors(""),
        vec!["p.yaml:1:1: empty document: expected a policy mapping"]
    );
    assert_eq!(
        errors("- 1\n"),
        vec!["p.yaml:1:1: policy: expected a mapping"]
    );
}

#[test]
fn fallback_initialization_and_interval_parse_and_default() {
    let base =
        "service: w\nmin: 2\nmax: 10\nmetrics: [ { name: cpu, target: { utilization: 50 } } ]\n";
    let p = parse_policy("p.yaml", base).unwrap();
    assert_eq!(
        (p.fallback, p.initialization, p.interval),
        (None, Duration::ZERO, None)
    );
    let text =
        format!("{base}fallback: {{ replicas: 4, after: 3 }}\ninitialization: 30s\ninterval: 5s\n");
    let p = parse_policy("p.yaml", &text).unwrap();
    assert_eq!(
        p.fallback,
        Some(Fallback {
            replicas: 4,
            after: 3
        })
    );
    assert_eq!(p.initialization, Duration::from_secs(30));
    assert_eq!(p.interval, Some(Duration::from_secs(5)));
}

#[test]
fn fallback_initialization_and_interval_errors_have_positions() {
    let text = "\
service: w
min: 2
max: 10
metrics: [ { name: cpu, target: { utilization: 50 } } ]
fallback: { replicas: 11, after: 0, colour: red }
initialization: 30
interval: 50ms
";
    assert_eq!(
        errors(text),
        vec![
            "p.yaml:5:23: fallback.replicas: must be within min..=max (2..=10), got 11",
            "p.yaml:5:34: fallback.after (failed ticks): must be an integer >= 1, got 0",
            "p.yaml:5:37: fallback: unknown field `colour`, expected one of: replicas, after",
            "p.yaml:6:17: initialization: a duration needs a unit, e.g. 15s, 5m or 250ms",
            "p.yaml:7:11: interval: must be between 100ms and 5m, got 50ms",
        ]
    );
    let errs = errors(
        "service: w\nmin: 1\nmax: 2\nmetrics: [ { name: cpu, target: { utilization: 50 } } ]\n\
         fallback: { replicas: 1 }\ninterval: 6m\n",
    );
    assert_eq!(
        errs,
        vec![
            "p.yaml:5:11: fallback: missing field `after`",
            "p.yaml:6:11: interval: must be between 100ms and 5m, got 6m",
        ]
    );
}

#[test]
fn fallback_bounds_are_not_rechecked_when_min_or_max_is_invalid() {
    let errs = errors(
        "service: w\nmin: 0\nmax: 2\nmetrics: [ { name: cpu, target: { utilization: 50 } } ]\n\
         fallback: { replicas: 9, after: 1 }\n",
    );
    assert_eq!(
        errs,
        vec!["p.yaml:2:6: min: must be an integer >= 1, got 0"]
    );
}

#[test]
fn predictive_method_is_seasonal_by_default_or_ramp() {
    let base =
        "service: w\nmin: 1\nmax: 9\nmetrics: [ { name: cpu, target: { utilization: 50 } } ]\n";
    let p = parse_policy(
        "p.yaml",
        &format!("{base}predictive: {{ horizon: 90s, method: ramp }}\n"),
    )
    .unwrap();
    assert_eq!(
        p.predictive,
        Predictive {
            enabled: true,
            horizon: Duration::from_secs(90),
            method: PredictMethod::Ramp,
            seasonal_rise: Vec::new(),
        }
    );
    assert_eq!(
        errors(&format!("{base}predictive: {{ method: psychic }}\n")),
        vec!["p.yaml:5:23: predictive.method: expected seasonal or ramp"]
    );
    let p = parse_policy(
        "p.yaml",
        &format!("{base}predictive: {{ horizon: 75s, method: ramp, seasonal_rise: [1d, 7d] }}\n"),
    )
    .unwrap();
    assert_eq!(
        p.predictive.seasonal_rise,
        vec![Duration::from_secs(86_400), Duration::from_secs(7 * 86_400)]
    );
    // Every bad period is reported at once.
    assert_eq!(
        errors(&format!(
            "{base}predictive: {{ horizon: 2m, seasonal_rise: [1m, 8d, soon] }}\n"
        )),
        vec![
            "p.yaml:5:44: predictive.seasonal_rise: a period must be longer than the horizon",
            "p.yaml:5:48: predictive.seasonal_rise: at most 7days 23h 58m (demand history is kept for 8days)",
            "p.yaml:5:52: predictive.seasonal_rise: invalid duration `soon`: expected number at 0",
        ]
    );
    assert_eq!(
        errors(&format!("{base}predictive: {{ seasonal_rise: 1d }}\n")),
        vec!["p.yaml:5:30: predictive.seasonal_rise: expected a list of periods (`[1d, 7d]`)"]
    );
}

const BASE: &str = "min: 1\nmax: 3\nmetrics:\n  - name: cpu\n    target: { utilization: 50 }\n";

fn file(head: &str) -> Result<PolicyFile, PolicyError> {
    parse_policy_file("p.yaml", &format!("{head}{BASE}"))
}

#[test]
fn target_fields_say_which_target_a_file_means() {
    let f = file("service: web\n").unwrap();
    assert_eq!(f.selector, Selector::default());
    assert_eq!((f.selector.kind(), f.selector.specificity()), (None, 0));
    assert_eq!(f.to_string(), "service web");
    let f = file("service: web\nproject: shop\n").unwrap();
    assert_eq!(f.selector.project.as_deref(), Some("shop"));
    assert_eq!(
        (f.selector.kind(), f.selector.specificity()),
        (Some(TargetKind::Compose), 2)
    );
    assert_eq!(f.to_string(), "service web of Compose project shop");
    let f = file("service: web\nkind: compose\nproject: shop\n").unwrap();
    assert_eq!(f.selector.kind, Some(TargetKind::Compose));
    let f = file("service: web\nstack: shop\nkind: swarm\n").unwrap();
    assert_eq!(
        (f.selector.kind(), f.selector.specificity()),
        (Some(TargetKind::Swarm), 2)
    );
    assert_eq!(f.to_string(), "service web of Swarm stack shop");
    let f = file("service: api\nkind: swarm\n").unwrap();
    assert_eq!(
        (f.selector.kind(), f.selector.specificity()),
        (Some(TargetKind::Swarm), 1)
    );
    assert_eq!(f.to_string(), "Swarm service api");
    // parse_policy accepts the same files and keeps the policy.
    assert_eq!(
        parse_policy("p.yaml", &format!("service: web\nproject: shop\n{BASE}"))
            .unwrap()
            .service,
        "web"
    );
}

#[test]
fn contradicting_or_invalid_target_fields_are_reported_where_they_are() {
    let lines = |head: &str| -> Vec<String> {
        file(head)
            .unwrap_err()
            .to_string()
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        lines("service: web\nproject: a\nstack: b\n"),
        ["p.yaml:3:8: stack: `project` names a Compose project and `stack` a Swarm stack: give one of them"]
    );
    assert_eq!(
        lines("service: web\nkind: swarm\nproject: a\n"),
        ["p.yaml:3:10: project: `project` names a Compose project, but `kind` is swarm (use `stack` for a Swarm stack)"]
    );
    assert_eq!(
        lines("service: web\nstack: a\nkind: compose\n"),
        ["p.yaml:2:8: stack: `stack` names a Swarm stack, but `kind` is compose (use `project` for a Compose project)"]
    );
    // Every problem at once, with the rest of the file's.
    let all = lines("service: web\nkind: k8s\nproject: My Shop\nstack: \"\"\ninterval: 10m\n");
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all[0], "p.yaml:2:7: kind: expected swarm or compose");
    assert!(
        all[1].starts_with(
            "p.yaml:3:10: project: \"My Shop\" is not a Compose project or Swarm stack name"
        ),
        "{all:?}"
    );
    assert_eq!(all[2], "p.yaml:4:8: stack: expected a non-empty string");
    assert!(
        all[3].starts_with("p.yaml:5:11: interval: must be between"),
        "{all:?}"
    );
}

const QUERY_HEAD: &str = "service: shop\nmin: 1\nmax: 10\nmetrics:\n";

#[test]
fn a_query_selects_series_by_name_and_labels_and_reads_a_rate() {
    let p = parse_policy(
        "p.yaml",
        &format!(
            "{QUERY_HEAD}  - name: orders\n    query: {{ metric: orders_total, rate: 1m, matchers: {{ status: ok, code: 200 }} }}\n    target: {{ value: 50 }}\n  - name: queue_depth\n    target: {{ value: 100 }}\n  - name: jobs\n    query: {{ metric: \"jobs:processed_total\" }}\n    target: {{ average: 2 }}\n"
        ),
    )
    .unwrap();
    let orders = &p.metrics[0];
    assert_eq!(orders.scope(), Scope::Service);
    let q = orders.query.clone().unwrap();
    assert_eq!(q.metric, "orders_total");
    assert_eq!(q.read, Read::Rate(Duration::from_secs(60)));
    assert_eq!(
        q.matchers,
        BTreeMap::from([
            ("code".to_string(), "200".to_string()),
            ("status".to_string(), "ok".to_string())
        ]),
        "a number is a label value as text"
    );
    assert_eq!(orders.series(), Some(q.clone()));
    assert_eq!(
        q.describe(),
        "rate(orders_total{code=\"200\",status=\"ok\"}[1m])"
    );
    // Without a query, the metric reads the series of its own name, gauges as they are and counters
    // as rates over the loop's window.
    let depth = &p.metrics[1];
    assert_eq!(depth.query, None);
    assert_eq!(
        depth.series(),
        Some(SeriesQuery {
            metric: "queue_depth".into(),
            matchers: BTreeMap::new(),
            read: Read::Auto
        })
    );
    let jobs = &p.metrics[2];
    assert_eq!(jobs.scope(), Scope::Replica);
    assert_eq!(jobs.series().unwrap().read, Read::Auto);
    // Built-in utilization reads no series.
    let cpu = parse_policy(
        "p.yaml",
        &format!("{QUERY_HEAD}  - {{ name: cpu, target: {{ utilization: 80 }} }}\n"),
    )
    .unwrap();
    assert_eq!(cpu.metrics[0].series(), None);
    assert_eq!(cpu.metrics[0].scope(), Scope::Replica);
}

#[test]
fn bad_queries_are_reported_where_they_are_all_at_once() {
    let all = errors(&format!(
        "{QUERY_HEAD}  - name: a\n    query: {{ metric: orders.total, rate: 0s, matchers: {{ __name__: x, 1st: y, ok: [1] }}, sum: true }}\n    target: {{ value: 1 }}\n"
    ));
    assert_eq!(
        all,
        [
            "p.yaml:6:22: query.metric: `orders.total` is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
            "p.yaml:6:42: query.rate: must be greater than 0",
            "p.yaml:6:58: query.matchers: label name \"__name__\" is reserved (starts with __)",
            "p.yaml:6:71: query.matchers: label name \"1st\" is not a valid Prometheus label name",
            "p.yaml:6:83: query.matchers.ok: expected a string",
            "p.yaml:6:90: query: unknown field `sum`, expected one of: metric, matchers, rate, quantile, error_ratio, window",
        ]
    );
    let window = errors(&format!(
        "{QUERY_HEAD}  - {{ name: a, query: {{ metric: x_total, rate: 2h }}, target: {{ average: 1 }} }}\n"
    ));
    assert_eq!(
        window,
        ["p.yaml:5:48: query.rate: must be between 1s and 1h, got 2h"]
    );
    let missing = errors(&format!(
        "{QUERY_HEAD}  - {{ name: a, query: {{ rate: 1m }}, target: {{ average: 1 }} }}\n"
    ));
    assert_eq!(missing, ["p.yaml:5:23: query: missing field `metric`"]);
}

#[test]
fn a_query_must_fit_its_target() {
    assert_eq!(
        errors(&format!(
            "{QUERY_HEAD}  - {{ name: cpu, query: {{ metric: x }}, target: {{ utilization: 80 }} }}\n"
        )),
        ["p.yaml:5:25: query: a utilization target reads the built-in `cpu` or `memory`; `query` is for average, value and below targets"]
    );
    assert_eq!(
        errors(&format!(
            "{QUERY_HEAD}  - {{ name: p95, query: {{ metric: x, rate: 1m }}, target: {{ below: 300ms }} }}\n"
        )),
        ["p.yaml:5:44: query.rate: a `below` target bounds a duration in seconds (a latency), not a per-second rate: use `value` or `average`"]
    );
}

#[test]
fn cooldown_is_a_duration_per_direction_zero_by_default() {
    let base =
        "service: web\nmin: 1\nmax: 4\nmetrics:\n  - name: cpu\n    target: { utilization: 50 }\n";
    let p = parse_policy("p.yaml", base).unwrap();
    assert_eq!(p.behavior.scale_down.cooldown, Duration::ZERO);
    let p = parse_policy(
        "p.yaml",
        &format!("{base}behavior:\n  scale_down: {{ stabilization: 60s, cooldown: 5m }}\n"),
    )
    .unwrap();
    assert_eq!(p.behavior.scale_down.cooldown, Duration::from_secs(300));
    assert_eq!(p.behavior.scale_down.stabilization, Duration::from_secs(60));
    assert_eq!(p.behavior.scale_up.cooldown, Duration::ZERO);
    let e = parse_policy(
        "p.yaml",
        &format!("{base}behavior:\n  scale_up: {{ cooldown: soon }}\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("scale_up.cooldown: invalid duration `soon`"),
        "{e}"
    );
}

#[test]
fn a_latency_quantile_and_an_error_ratio_for_below_targets() {
    let p = parse_policy(
        "p.yaml",
        &format!(
            "{QUERY_HEAD}  - name: p95\n    query: {{ metric: traces_span_metrics_duration_milliseconds, quantile: 0.95, window: 5m, matchers: {{ service_name: checkout }} }}\n    target: {{ below: 300ms }}\n  - name: errors\n    query: {{ metric: traces_span_metrics_calls_total, error_ratio: {{ status_code: STATUS_CODE_ERROR }}, window: 1m, matchers: {{ service_name: checkout }} }}\n    target: {{ below: 0.01 }}\n  - name: lat\n    query: {{ metric: http_request_duration_seconds, quantile: 0.5, window: 30s }}\n    target: {{ below: 1s }}\n"
        ),
    )
    .unwrap();
    assert_eq!(
        p.metrics[0].query.as_ref().unwrap().read,
        Read::Quantile {
            phi: 0.95,
            window: Duration::from_secs(300),
            scale: 0.001
        }
    );
    assert_eq!(
        p.metrics[0].target,
        Target::Below(Duration::from_millis(300))
    );
    assert_eq!(p.metrics[0].scope(), Scope::Service);
    assert_eq!(
        p.metrics[1].query.as_ref().unwrap().read,
        Read::ErrorRatio {
            errors: BTreeMap::from([("status_code".into(), "STATUS_CODE_ERROR".into())]),
            window: Duration::from_secs(60)
        }
    );
    assert_eq!(p.metrics[1].target, Target::BelowRatio(0.01));
    assert_eq!(p.metrics[1].target.kind(), "below");
    match &p.metrics[2].query.as_ref().unwrap().read {
        Read::Quantile { scale, .. } => assert_eq!(*scale, 1.0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn quantiles_and_error_ratios_are_checked_against_their_target_and_window() {
    let one = |query: &str, target: &str| {
        errors(&format!(
            "{QUERY_HEAD}  - {{ name: m, query: {query}, target: {target} }}\n"
        ))
    };
    assert_eq!(
        one("{ metric: x_seconds, quantile: 0.95 }", "{ below: 1s }"),
        ["p.yaml:5:23: query: missing field `window` (the window of the quantile)"]
    );
    assert_eq!(
        one(
            "{ metric: x_seconds, quantile: 1.5, window: 1m }",
            "{ below: 1s }"
        ),
        ["p.yaml:5:54: query.quantile: must be between 0 and 1 (exclusive), got 1.5"]
    );
    assert_eq!(
        one("{ metric: latency, quantile: 0.9, window: 1m }", "{ below: 1s }"),
        ["p.yaml:5:33: query.metric: a quantile needs the histogram's unit in its name (`_seconds` or `_milliseconds`), got `latency`"]
    );
    assert_eq!(
        one("{ metric: x_seconds, quantile: 0.9, window: 1m }", "{ value: 3 }"),
        ["p.yaml:5:54: query.quantile: a quantile is a latency: give it a `below` duration target (e.g. below: 300ms)"]
    );
    assert_eq!(
        one(
            "{ metric: calls_total, error_ratio: { status: error }, window: 1m }",
            "{ below: 300ms }"
        ),
        ["p.yaml:5:59: query.error_ratio: give it a `below` ratio target (e.g. below: 0.01)"]
    );
    assert_eq!(
        one("{ metric: calls_total, error_ratio: {}, window: 1m }", "{ below: 0.1 }"),
        ["p.yaml:5:59: query.error_ratio: name the labels of the errors, e.g. { status_code: STATUS_CODE_ERROR }"]
    );
    assert_eq!(
        one(
            "{ metric: calls_total, rate: 1m, quantile: 0.5 }",
            "{ value: 1 }"
        ),
        ["p.yaml:5:23: query: give one of rate, quantile or error_ratio, not rate and quantile"]
    );
    assert_eq!(
        one("{ metric: calls_total, window: 1m }", "{ value: 1 }"),
        ["p.yaml:5:54: query.window: is the window of a quantile or an error_ratio (a counter's rate takes its window as `rate: 1m`)"]
    );
    assert_eq!(
        one("{ metric: depth }", "{ below: 0.5 }"),
        ["p.yaml:5:23: query: a `below` ratio target bounds an error_ratio (or a gauge without query)"]
    );
}
