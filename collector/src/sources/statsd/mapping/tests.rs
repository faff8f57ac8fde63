use super::*;

fn parse(text: &str) -> Mapper {
    Mapper::parse("mapping.yml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> String {
    Mapper::parse("mapping.yml", text).unwrap_err().to_string()
}

fn map<'m>(m: &'m Mapper, name: &str, kind: Kind) -> Mapped<'m> {
    m.map(name, kind, &mut Vec::new())
}

fn mapped(m: &Mapper, name: &str, kind: Kind) -> (String, Vec<(String, String)>) {
    match map(m, name, kind) {
        Mapped::Map { name, labels, .. } => (
            name,
            labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ),
        other => panic!("{name}: {other:?}"),
    }
}

fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn glob_captures_become_name_and_labels() {
    let m = parse(
        r#"
mappings:
  - match: "api.*.requests"
    name: "api_requests"
    labels: { service: "$1" }
  - match: "client.*.*.size"
    name: "${2}_size_$1"
    labels:
      client: "$1"
      op: "op-${2}"
      raw: "$0"
"#,
    );
    assert_eq!(m.len(), 2);
    assert_eq!(
        mapped(&m, "api.checkout.requests", Kind::Counter),
        ("api_requests".into(), l(&[("service", "checkout")]))
    );
    assert_eq!(
        mapped(&m, "client.web.get.size", Kind::Histogram),
        (
            "get_size_web".into(),
            l(&[
                ("client", "web"),
                ("op", "op-get"),
                ("raw", "client.web.get.size")
            ])
        )
    );
    // A `*` covers exactly one segment.
    assert_eq!(map(&m, "api.a.b.requests", Kind::Counter), Mapped::Unmapped);
    assert_eq!(map(&m, "api..requests", Kind::Counter), Mapped::Unmapped);
    assert_eq!(
        map(&m, "api.x.requests.more", Kind::Counter),
        Mapped::Unmapped
    );
}

#[test]
fn partial_segment_wildcards_match_within_the_segment() {
    let m = parse(
        r#"
mappings:
  - match: "http.req_*_by_*.count"
    name: "http_requests"
    labels: { method: "$1", code: "$2" }
"#,
    );
    assert_eq!(
        mapped(&m, "http.req_get_by_200.count", Kind::Counter),
        (
            "http_requests".into(),
            l(&[("method", "get"), ("code", "200")])
        )
    );
    assert_eq!(
        map(&m, "http.req__by_200.count", Kind::Counter),
        Mapped::Unmapped
    );
}

#[test]
fn first_match_wins_and_type_filters_apply() {
    let m = parse(
        r#"
mappings:
  - match: "jobs.*"
    match_metric_type: gauge
    name: "jobs_gauge"
  - match: "jobs.*"
    name: "jobs"
    labels: { job: "$1" }
  - match: "jobs.special"
    name: "never"
"#,
    );
    assert_eq!(mapped(&m, "jobs.a", Kind::Gauge).0, "jobs_gauge");
    assert_eq!(mapped(&m, "jobs.a", Kind::Set).0, "jobs_gauge");
    assert_eq!(mapped(&m, "jobs.special", Kind::Counter).0, "jobs");
    assert_eq!(mapped(&m, "jobs.a", Kind::Timer).0, "jobs");
}

#[test]
fn regex_mappings_and_drops() {
    let m = parse(
        r#"
mappings:
  - match: "debug.*"
    action: drop
  - match: '^db\.(\w+)\.(select|insert)\.time$'
    match_type: regex
    name: "db_query"
    labels: { table: "$1", op: "${2}" }
    histogram_options: { buckets: [0.001, 0.01, 0.1] }
    ttl: 30s
    help: "Database query time."
"#,
    );
    assert_eq!(map(&m, "debug.anything", Kind::Counter), Mapped::Drop);
    let Mapped::Map { rule, name, labels } = map(&m, "db.users.select.time", Kind::Timer) else {
        panic!("regex should match");
    };
    assert_eq!(name, "db_query");
    assert_eq!(
        labels,
        vec![("table", "users".to_string()), ("op", "select".to_string())]
    );
    assert_eq!(rule.buckets.as_deref(), Some(&[0.001, 0.01, 0.1][..]));
    assert_eq!(rule.ttl, Some(Duration::from_secs(30)));
    assert_eq!(rule.help.as_deref(), Some("Database query time."));
    assert_eq!(
        map(&m, "db.users.update.time", Kind::Timer),
        Mapped::Unmapped
    );
}

#[test]
fn defaults_are_read() {
    let m = parse(
        r#"
defaults:
  ttl: 10m
  match_type: glob
  observer_type: histogram
  histogram_options:
    buckets: [0.5, 1, 2]
mappings: []
"#,
    );
    assert_eq!(m.defaults.ttl, Some(Duration::from_secs(600)));
    assert_eq!(m.defaults.buckets.as_deref(), Some(&[0.5, 1.0, 2.0][..]));
    assert!(m.is_empty());
}

#[test]
fn every_problem_is_reported_with_its_position() {
    let text = r#"defaults:
  ttl: 5
  colour: blue
mappings:
  - match: "api.*.requests"
    name: "api.requests"
    labels: { "bad-label": "$1", ok: "$2" }
  - match: "a..b"
    name: x
  - match: "(unclosed"
    match_type: regex
    name: y
  - name: z
  - match: "ok"
    name: "q"
    observer_type: summary
    histogram_options: { buckets: [1, 0.5] }
    action: keep
    scale: -1
    match_metric_type: meter
"#;
    let e = errors(text);
    let want = [
        "mapping.yml:2:8: defaults.ttl: a duration needs a unit",
        "mapping.yml:3:3: defaults: unknown field `colour`",
        "mapping.yml:6:11: name: `.` cannot appear in a metric name",
        "mapping.yml:7:15: labels: `bad-label` is not a valid label name",
        "mapping.yml:7:38: labels.ok: refers to $2 but the match has 1 capture(s)",
        "mapping.yml:8:12: match: `a..b`: empty segment",
        "mapping.yml:10:12: match: invalid regex `(unclosed`: unclosed group",
        "mapping.yml:13:5: mapping: missing field `match`",
        "mapping.yml:16:20: observer_type: summaries are not produced",
        "mapping.yml:17:39: histogram_options.buckets: must be strictly increasing, got 0.5 after 1",
        "mapping.yml:18:13: action: expected map or drop",
        "mapping.yml:19:12: scale: must be greater than 0",
        "mapping.yml:20:24: match_metric_type: expected counter, gauge or observer",
    ];
    for w in want {
        assert!(e.contains(w), "missing {w:?} in:\n{e}");
    }
    assert_eq!(e.lines().count(), want.len(), "{e}");
}

#[test]
fn syntax_errors_and_wrong_shapes() {
    assert!(errors("mappings: [").starts_with("mapping.yml:"));
    assert!(errors("").contains("empty document"));
    assert!(errors("- a\n- b\n").contains("mapping file: expected a mapping"));
    assert!(errors("mappings: {}\n").contains("mappings: expected a list"));
    assert!(
        errors("mappings:\n  - match: a\n    name: '$x'\n").contains("only numbered references")
    );
    assert!(errors("mappings:\n  - match: a\n    name: '${1'\n").contains("unclosed"));
    assert!(
        errors("mappings:\n  - match: 'a.b c'\n    name: x\n").contains("cannot appear in a glob")
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let e = Mapper::load(Path::new("/nonexistent/mapping.yml")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/mapping.yml:1:1: cannot read the mapping file"),
        "{e}"
    );
}
