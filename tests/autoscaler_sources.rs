//! The cluster sources of `plimsoll run`: the same loop fed by `plimsoll collect` over its JSON API,
//! or by a real Prometheus server (Debian's package) scraping that collector.

mod support;

use std::time::Duration;

use support::{replicas, BurnerService, Plimsoll, Prometheus, Service};

/// A loaded Swarm service (1 replica, 0.25 CPU, burning from the start) and its policy.
fn loaded_service(prefix: &str) -> (BurnerService, tempfile::TempDir) {
    let service = support::unique(prefix);
    let policies = support::policy_dir(&format!("service: {service}\nmin: 1\nmax: 2\nmetrics:\n  - name: cpu\n    target: {{ utilization: 50 }}\n"));
    (BurnerService::create(&service, "0.25", true), policies)
}

fn scaled_on_cpu(p: &Plimsoll, service: &str) -> bool {
    p.decisions(service)
        .iter()
        .any(|r| r["action"] == "scaled" && r["desired"] == 2 && r["metrics"][0]["name"] == "cpu")
}

#[test]
fn run_scales_on_the_json_api_of_remote_collectors() {
    let (svc, policies) = loaded_service("srccoll");
    let collector = Plimsoll::start("collect", &["--interval", "1s"]);
    let url = format!("collectors=http://{}", collector.addr);
    let p = Plimsoll::run(policies.path(), &["--source", &url]);
    p.wait_for(
        "a scale-up from remote samples",
        Duration::from_secs(40),
        |p| scaled_on_cpu(p, svc.name()),
    );
    assert_eq!(replicas(svc.name()), 2);
    let (_, metrics) = p.get("/metrics").unwrap();
    assert!(
        !metrics.contains("container_cpu_usage_seconds_total"),
        "no embedded collector in cluster mode"
    );
    assert!(metrics.contains("plimsoll_decisions_total"));
}

#[test]
fn run_scales_on_promql_from_a_real_prometheus() {
    let (svc, policies) = loaded_service("srcprom");
    let collector = Plimsoll::start("collect", &["--interval", "1s"]);
    let prom = Prometheus::start(collector.addr);
    let url = format!("prometheus=http://{}", prom.addr);
    let p = Plimsoll::run(policies.path(), &["--source", &url, "--rate-window", "5s"]);
    p.wait_for("a scale-up from PromQL", Duration::from_secs(60), |p| {
        scaled_on_cpu(p, svc.name())
    });
    assert_eq!(replicas(svc.name()), 2);
}

#[test]
fn a_lost_source_holds_then_applies_the_policy_fallback() {
    let service = support::unique("srcfall");
    let policies = support::policy_dir(&format!("service: {service}\nmin: 1\nmax: 3\nfallback: {{ replicas: 3, after: 3 }}\nmetrics:\n  - name: cpu\n    target: {{ utilization: 50 }}\n"));
    let svc = Service::create(&service, 1, &["--limit-cpu", "0.1"]);
    let collector = Plimsoll::start("collect", &["--interval", "1s"]);
    let url = format!("collectors=http://{}", collector.addr);
    let p = Plimsoll::run(policies.path(), &["--source", &url]);
    let reasons = |p: &Plimsoll| -> Vec<String> {
        p.decisions(&svc.name)
            .iter()
            .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    p.wait_for(
        "a decision from the collector",
        Duration::from_secs(20),
        |p| reasons(p).iter().any(|r| r != "source_error"),
    );
    drop(collector); // the only collector goes away
    p.wait_for("the fallback", Duration::from_secs(30), |_| {
        replicas(&svc.name) == 3
    });
    let seen = reasons(&p);
    let first_error = seen
        .iter()
        .position(|r| r == "source_error")
        .expect("holds with source_error first");
    let fallback = seen
        .iter()
        .position(|r| r == "fallback")
        .expect("then the fallback");
    assert!(fallback > first_error, "{seen:?}");
}

#[test]
fn with_prometheus_an_unhealthy_replica_is_not_counted_ready() {
    // Two replicas of one Compose service: an idle healthy one and a busy one whose health check
    // fails. Prometheus has CPU series for both and no notion of health; the actuator reads the
    // health from Docker, so the busy replica is left out of the ready set.
    let project = support::unique("srchealth");
    let _cleanup = support::ProjectCleanup(project.clone());
    let (idle_ctl, busy_ctl) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(busy_ctl.path().join("on"), "").unwrap();
    let _idle = support::compose_burner(&project, "web", 1, "0.25", idle_ctl.path(), &[]);
    #[rustfmt::skip]
    let _sick = support::compose_burner(&project, "web", 2, "0.25", busy_ctl.path(),
        &["-v", "/bin/busybox:/bin/sh:ro", "--health-cmd", "/bin/busybox false", "--health-interval", "1s", "--health-retries", "1"]);
    let policies = support::policy_dir(
        "service: web\nmin: 2\nmax: 3\nmetrics:\n  - name: cpu\n    target: { utilization: 50 }\n",
    );
    let collector = Plimsoll::start("collect", &["--interval", "1s"]);
    let prom = Prometheus::start(collector.addr);
    let url = format!("prometheus=http://{}", prom.addr);
    #[rustfmt::skip]
    let p = Plimsoll::run(policies.path(), &["--source", &url, "--rate-window", "5s", "--project", &project]);
    // Utilization of the ready replicas, per decision that had CPU figures.
    let levels = |p: &Plimsoll| -> Vec<f64> {
        p.decisions("web")
            .iter()
            .filter_map(|r| r["metrics"][0]["current"].as_f64())
            .collect()
    };
    p.wait_for(
        "5 decisions with CPU figures",
        Duration::from_secs(60),
        |p| levels(p).len() >= 5,
    );
    let seen = levels(&p);
    // Counted ready, the busy replica (100% of its 0.25 CPU) would lift the average to about 50%.
    assert!(
        seen[seen.len() - 3..].iter().all(|l| *l < 25.0),
        "the busy unhealthy replica was counted: {seen:?}"
    );
    assert!(
        p.decisions("web").iter().all(|r| r["action"] != "scaled"),
        "{:?}",
        p.decisions("web")
    );
    assert_eq!(support::compose_members(&project).len(), 2);
}
