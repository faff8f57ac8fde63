//! Cluster mode on a real Swarm: `plimsoll collect` runs in a container as a global service on the host
//! network, with the host's /proc, /sys/fs/cgroup and Docker socket mounted (as deploy/plimsoll-stack.yml
//! runs it), and `plimsoll run --source collectors=...` scales a service from its figures.

mod support;

use std::time::Duration;

use support::{Plimsoll, Service};

const COLLECTOR_IMAGE: &str = "plimsoll-test-collector:1";

fn get_json(addr: std::net::SocketAddr, path: &str) -> Option<serde_json::Value> {
    let (code, body) = support::http_get(addr, path).ok()?;
    (code == 200)
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

#[test]
fn a_containerized_global_collector_feeds_the_autoscaler() {
    support::ensure_swarm();
    support::build_plimsoll_image(COLLECTOR_IMAGE);
    let addr = support::free_addr();
    let collector = support::unique("collector");
    let listen = addr.to_string();
    let _collector_svc = Service::create_with_image(
        &collector,
        COLLECTOR_IMAGE,
        &[
            "--mode",
            "global",
            "--network",
            "host",
            "--mount",
            "type=bind,src=/proc,dst=/host/proc,readonly",
            "--mount",
            "type=bind,src=/sys/fs/cgroup,dst=/host/sys/fs/cgroup,readonly",
            "--mount",
            "type=bind,src=/var/run/docker.sock,dst=/var/run/docker.sock",
        ],
        &[
            "collect",
            "--proc-root",
            "/host/proc",
            "--cgroup-root",
            "/host/sys/fs/cgroup",
            "--listen",
            &listen,
            // On the host network: the OTLP ports may be in use by a test running alongside.
            "--otlp-grpc",
            "off",
            "--otlp-http",
            "off",
        ],
    );
    let start = std::time::Instant::now();
    while get_json(addr, "/healthz").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the containerized collector did not come up"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let loaded = support::unique("clusterload");
    let _svc = support::BurnerService::create(&loaded, "0.25", true);
    // From inside its container, the collector sees the task through the host's /proc and cgroups.
    let seen = |v: &serde_json::Value| {
        v.as_array().unwrap().iter().any(|c| {
            c["service"] == loaded.as_str()
                && c["cpu_limit_cores"] == 0.25
                && c["latest"]["cpu_cores"].as_f64().is_some_and(|x| x > 0.1)
        })
    };
    let start = std::time::Instant::now();
    while !get_json(addr, "/api/v1/containers").is_some_and(|v| seen(&v)) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the containerized collector never sampled the task: {:?}",
            get_json(addr, "/api/v1/containers")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (_, metrics) = support::http_get(addr, "/metrics").unwrap();
    assert!(
        metrics.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}"),
        "host metrics from /host/proc"
    );

    let policies = support::policy_dir(&format!("service: {loaded}\nmin: 1\nmax: 2\nmetrics:\n  - name: cpu\n    target: {{ utilization: 50 }}\n"));
    let source = format!("collectors=http://{addr}");
    let p = Plimsoll::run(policies.path(), &["--source", &source]);
    p.wait_for(
        "a scale-up from the containerized collector",
        Duration::from_secs(40),
        |p| {
            p.decisions(&loaded)
                .iter()
                .any(|r| r["action"] == "scaled" && r["desired"] == 2)
        },
    );
}
