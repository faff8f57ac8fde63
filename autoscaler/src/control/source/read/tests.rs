use std::time::Duration;

use super::*;
use crate::control::source::{ContainerSample, ReplicaRef};
use crate::policy::parse_policy;

const C1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const C2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const OTHER: &str = "3333333333333333333333333333333333333333333333333333333333333333";

fn replicas() -> Vec<ReplicaRef> {
    vec![
        ReplicaRef {
            replica: "task1".into(),
            container: C1.into(),
        },
        ReplicaRef {
            replica: "task2".into(),
            container: C2.into(),
        },
    ]
}

fn metric(scope: Scope, matchers: &[(&str, &str)]) -> MetricRead {
    let rate = Read::Rate(Duration::from_secs(60));
    MetricRead::new("orders", "orders_total", rate, scope, matchers)
}

fn reading(owner: Owner, value: Result<f64, Missing>) -> SeriesReading {
    SeriesReading { owner, value }
}

fn container(c: &str) -> Owner {
    Owner::Container(c.into())
}

fn run(m: &MetricRead, series: Vec<SeriesReading>) -> Readings {
    let reps = replicas();
    let req = Request {
        service: "shop_web",
        replicas: &reps,
        metrics: std::slice::from_ref(m),
    };
    let mut out = Readings::default();
    combine(&req, m, series, &mut out);
    out
}

fn every_kind_of_series() -> Vec<SeriesReading> {
    vec![
        // Two series of replica 1 (status codes, say), one of replica 2 by its task label.
        reading(container(C1), Ok(3.0)),
        reading(container(C1), Ok(1.0)),
        reading(Owner::Task("task2".into()), Ok(5.0)),
        // The service's own, attributed to no container (e.g. sent from outside a replica).
        reading(Owner::Service("shop_web".into()), Ok(10.0)),
        // Not ours: another container, another service, host-level.
        reading(container(OTHER), Ok(100.0)),
        reading(Owner::Service("shop_api".into()), Ok(1000.0)),
        reading(Owner::Unattributed, Ok(10000.0)),
    ]
}

#[test]
fn per_replica_values_sum_a_replicas_series_and_ignore_everything_else() {
    let out = run(&metric(Scope::Replica, &[]), every_kind_of_series());
    assert_eq!(out.containers.len(), 2);
    assert_eq!(out.containers[C1].values["orders"], 4.0);
    assert_eq!(out.containers[C2].values["orders"], 5.0);
    assert!(out.service.is_empty() && out.missing.is_empty());
}

#[test]
fn the_service_total_is_its_replicas_plus_its_unattributed_series() {
    let out = run(&metric(Scope::Service, &[]), every_kind_of_series());
    assert_eq!(out.service["orders"], 4.0 + 5.0 + 10.0);
    assert!(
        out.containers.is_empty(),
        "a service metric sets no replica values"
    );
    // A query naming a service reads what it selects, whoever emitted it (a worker scaled on the
    // queue depth its producer reports): the source has already applied the matcher.
    let out = run(
        &metric(Scope::Service, &[("service", "shop_api")]),
        vec![
            reading(Owner::Service("shop_api".into()), Ok(7.0)),
            reading(container(OTHER), Ok(2.0)),
        ],
    );
    assert_eq!(out.service["orders"], 9.0);
}

#[test]
fn a_metric_without_value_says_why() {
    let m = metric(Scope::Service, &[]);
    assert_eq!(run(&m, vec![]).missing["orders"], Missing::NoSeries);
    // Series that are not ours are as good as none.
    let theirs = vec![reading(container(OTHER), Ok(1.0))];
    assert_eq!(run(&m, theirs).missing["orders"], Missing::NoSeries);
    let stale = vec![reading(container(C1), Err(Missing::NoRecentSample))];
    assert_eq!(run(&m, stale).missing["orders"], Missing::NoRecentSample);
    // "not a counter" tells more than "no recent sample".
    let mixed = vec![
        reading(container(C1), Err(Missing::NoRecentSample)),
        reading(container(C2), Err(Missing::NotACounter)),
    ];
    let out = run(&metric(Scope::Replica, &[]), mixed);
    assert_eq!(out.missing["orders"], Missing::NotACounter);
    assert!(out.containers.is_empty());
    // One replica with a value is enough: the others are the engine's missing replicas.
    let some = vec![
        reading(container(C1), Ok(2.0)),
        reading(container(C2), Err(Missing::NoRecentSample)),
    ];
    let out = run(&metric(Scope::Replica, &[]), some);
    assert!(out.missing.is_empty());
    assert_eq!(out.containers[C1].values["orders"], 2.0);
    assert!(!out.containers.contains_key(C2));
}

#[test]
fn values_join_the_samples_a_source_already_has() {
    let m = metric(Scope::Replica, &[]);
    let reps = replicas();
    let req = Request {
        service: "shop_web",
        replicas: &reps,
        metrics: std::slice::from_ref(&m),
    };
    let mut out = Readings::default();
    out.containers.insert(
        C1.into(),
        ContainerSample {
            cpu_cores: Some(0.5),
            ..Default::default()
        },
    );
    combine(&req, &m, vec![reading(container(C1), Ok(2.0))], &mut out);
    assert_eq!(out.containers[C1].cpu_cores, Some(0.5));
    assert_eq!(out.containers[C1].values["orders"], 2.0);
}

#[test]
fn owners_from_labels_as_prometheus_shows_them() {
    let owner = |labels: &[(&str, &str)]| {
        Owner::from_labels(|k| labels.iter().find(|(n, _)| *n == k).map(|(_, v)| *v))
    };
    let cgroup = format!("/system.slice/docker-{C1}.scope");
    assert_eq!(owner(&[("id", &cgroup), ("service", "web")]), container(C1));
    assert_eq!(owner(&[("container_id", C2)]), container(C2));
    assert_eq!(
        owner(&[("task", "t1"), ("service", "web")]),
        Owner::Task("t1".into())
    );
    assert_eq!(
        owner(&[("id", "/"), ("service", "web")]),
        Owner::Service("web".into())
    );
    assert_eq!(owner(&[("container_id", "short")]), Owner::Unattributed);
    assert_eq!(owner(&[]), Owner::Unattributed);
}

#[test]
fn a_policys_metric_reads_are_its_non_built_in_metrics() {
    let p = parse_policy(
        "p.yaml",
        "service: web\nmin: 1\nmax: 4\nmetrics:\n  - { name: cpu, target: { utilization: 50 } }\n  - { name: orders, query: { metric: orders_total, rate: 1m }, target: { value: 5 } }\n  - { name: jobs_total, target: { average: 2 } }\n",
    )
    .unwrap();
    let reads = metric_reads(&p);
    let got: Vec<(&str, &str, Scope)> = reads
        .iter()
        .map(|m| (m.name.as_str(), m.query.metric.as_str(), m.scope))
        .collect();
    assert_eq!(
        got,
        [
            ("orders", "orders_total", Scope::Service),
            ("jobs_total", "jobs_total", Scope::Replica)
        ]
    );
    assert_eq!(
        window_of(&reads[1].query.read, Duration::from_secs(2)),
        Duration::from_secs(2)
    );
    assert_eq!(
        window_of(&reads[0].query.read, Duration::from_secs(2)),
        Duration::from_secs(60)
    );
}
