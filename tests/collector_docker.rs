//! The collector against the real Docker engine: limits, CPU, memory and network figures of real
//! containers, discovery of starts and stops, and the exposition checked by Prometheus' promtool.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Container, Network, Plimsoll};

/// Mean of the per-second CPU rates of a container over its recent samples.
fn mean_cpu_cores(p: &Plimsoll, name: &str, since: &str) -> Option<f64> {
    let v = p.json(&format!(
        "/api/v1/series?name=container_cpu_usage_seconds_total&container={name}&since={since}"
    ));
    let rates = v["series"][0]["rates"].as_array()?.clone();
    let vals: Vec<f64> = rates.iter().filter_map(|r| r[1].as_f64()).collect();
    (vals.len() >= 3).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
}

#[test]
fn a_container_limited_to_half_a_core_is_reported_at_half_a_core() {
    let name = support::unique("burner");
    let _c = Container::run(
        &name,
        &["--cpus", "0.5"],
        &["sh", "-c", "while :; do :; done"],
    );
    let p = Plimsoll::start("collect", &["--interval", "1s"]);
    p.wait_for("the burner to be tracked", Duration::from_secs(15), |p| {
        p.container(&name).is_some()
    });
    let c = p.container(&name).unwrap();
    assert_eq!(c["cpu_limit_cores"], 0.5, "{c}");
    assert_eq!(c["image"], support::IMAGE);
    assert_eq!(c["source"], "cgroup");
    // Let a few samples accumulate, then average the per-second rates.
    std::thread::sleep(Duration::from_secs(6));
    let cores = mean_cpu_cores(&p, &name, "5s").expect("rates for the burner");
    assert!(
        (cores - 0.5).abs() <= 0.075,
        "burner uses {cores} cores, want 0.5 ±15%"
    );
    let latest = p.container(&name).unwrap()["latest"]["cpu_cores"]
        .as_f64()
        .unwrap();
    assert!(latest > 0.3 && latest < 0.7, "latest cpu_cores {latest}");
    // The throttling counters move for a container running at its quota.
    let thr = p.json(&format!(
        "/api/v1/series?name=container_cpu_cfs_throttled_periods_total&container={name}"
    ));
    let pts = thr["series"][0]["points"].as_array().unwrap();
    assert!(
        pts.last().unwrap()[1].as_f64() > pts.first().unwrap()[1].as_f64(),
        "{thr}"
    );
}

#[test]
fn memory_and_network_counters_move_with_the_container() {
    let name = support::unique("mover");
    let c = Container::run(&name, &["--memory", "256m"], &["sleep", "100000"]);
    let p = Plimsoll::start("collect", &["--interval", "200ms"]);
    p.wait_for(
        "the container to be tracked",
        Duration::from_secs(15),
        |p| {
            p.container(&name)
                .is_some_and(|c| c["latest"]["memory_usage_bytes"].is_number())
        },
    );
    let before = p.container(&name).unwrap();
    assert_eq!(before["memory_limit_bytes"], 256u64 << 20);
    let mem0 = before["latest"]["memory_usage_bytes"].as_f64().unwrap();

    // 48 MiB into the container's tmpfs is charged to its memory cgroup.
    c.exec_ok(&[
        "dd",
        "if=/dev/zero",
        "of=/dev/shm/fill",
        "bs=1048576",
        "count=48",
    ]);
    p.wait_for(
        "memory usage to grow by 40 MiB",
        Duration::from_secs(10),
        |p| {
            p.container(&name)
                .and_then(|c| c["latest"]["memory_usage_bytes"].as_f64())
                .is_some_and(|m| m - mem0 > 40.0 * 1048576.0)
        },
    );

    // ~2 MB over the container's own loopback, served by busybox httpd inside it.
    let lo_rx = |p: &Plimsoll| -> f64 {
        let v = p.json(&format!(
            "/api/v1/series?name=container_network_receive_bytes_total&container={name}"
        ));
        v["series"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["labels"]["interface"] == "lo")
            .filter_map(|s| s["points"].as_array()?.last()?[1].as_f64())
            .sum()
    };
    p.wait_for("network series", Duration::from_secs(5), |p| {
        lo_rx(p) >= 0.0
            && p.get(&format!(
                "/api/v1/series?name=container_network_receive_bytes_total&container={name}"
            ))
            .is_ok_and(|(_, b)| b.contains("\"lo\""))
    });
    let rx0 = lo_rx(&p);
    c.exec_ok(&["sh", "-c", "/bin/busybox httpd -p 127.0.0.1:8080 -h / && /bin/busybox wget -q -O /dev/null http://127.0.0.1:8080/bin/busybox"]);
    p.wait_for(
        "loopback bytes to grow by 1 MB",
        Duration::from_secs(10),
        |p| lo_rx(p) - rx0 > 1e6,
    );
}

#[test]
fn started_and_stopped_containers_come_and_go() {
    let p = Plimsoll::start("collect", &["--interval", "500ms"]);
    let name = support::unique("comer");
    let c = Container::run(
        &name,
        &[
            "--label",
            "com.docker.compose.service=shop",
            "--label",
            "com.docker.compose.project=demo",
        ],
        &["sleep", "100000"],
    );
    p.wait_for(
        "the new container to appear",
        Duration::from_secs(10),
        |p| p.container(&name).is_some(),
    );
    let entry = p.container(&name).unwrap();
    assert_eq!(entry["service"], "shop");
    assert_eq!(entry["compose_project"], "demo");
    assert_eq!(entry["id"], c.id);
    p.wait_for("its series in /metrics", Duration::from_secs(5), |p| {
        p.get("/metrics").is_ok_and(|(_, b)| {
            b.contains(&format!(
                "container_memory_usage_bytes{{id=\"/docker/{}",
                c.id
            ))
        })
    });
    let (_, metrics) = p.get("/metrics").unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("container_memory_usage_bytes{") && l.contains(&name))
        .expect("the container in /metrics");
    assert!(
        line.contains(&format!(
            "name=\"{name}\",image=\"{}\",service=\"shop\",container_label_com_docker_compose_project=\"demo\",container_label_com_docker_compose_service=\"shop\"}}",
            support::IMAGE
        )),
        "{line}"
    );
    support::docker_ok(&["stop", &name]);
    p.wait_for(
        "the stopped container to disappear",
        Duration::from_secs(10),
        |p| p.container(&name).is_none(),
    );
    let (_, metrics) = p.get("/metrics").unwrap();
    assert!(
        !metrics.contains(&name),
        "a stopped container leaves /metrics"
    );
}

#[test]
fn containers_that_die_quickly_are_skipped_quietly() {
    let p = Plimsoll::start("collect", &["--interval", "100ms"]);
    let names: Vec<String> = (0..6)
        .map(|k| format!("{}-{k}", support::unique("brief")))
        .collect();
    let _cs: Vec<Container> = names
        .iter()
        .map(|n| Container::run(n, &[], &["sh", "-c", "sleep 0.5"]))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    p.wait_for(
        "all brief containers to be gone",
        Duration::from_secs(10),
        |p| names.iter().all(|n| p.container(n).is_none()),
    );
    let (code, _) = p.get("/healthz").unwrap();
    assert_eq!(code, 200);
    let logs = p.logs();
    assert!(
        !logs.contains("WARN") && !logs.contains("ERROR"),
        "no log spam for vanished containers:\n{logs}"
    );
}

#[test]
fn metrics_exposition_passes_promtool() {
    let name = support::unique("promtool");
    let _c = Container::run(
        &name,
        &["--cpus", "0.2", "--memory", "64m"],
        &["sleep", "100000"],
    );
    let p = Plimsoll::start("collect", &["--interval", "500ms"]);
    p.wait_for("the container in /metrics", Duration::from_secs(10), |p| {
        p.get("/metrics").is_ok_and(|(_, b)| {
            b.contains(&name) && b.contains("plimsoll_collector_sampling_passes_total")
        })
    });
    let (_, body) = p.get("/metrics").unwrap();
    for want in [
        "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}",
        "node_memory_MemAvailable_bytes",
        "container_memory_working_set_bytes{",
        "container_spec_cpu_quota{",
        "plimsoll_collector_pass_duration_seconds_bucket",
    ] {
        assert!(body.contains(want), "missing {want}");
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed; .ci/run installs it");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // node_exporter's meminfo, netstat and sockstat names (node_memory_MemTotal_bytes,
    // node_netstat_Tcp_CurrEstab, node_sockstat_TCP_inuse, ...) and its entropy names in bits
    // (node_entropy_available_bits, node_entropy_pool_size_bits) are kept for dashboards' sake;
    // promtool flags their camel case and their unit exactly as it does on node_exporter's own
    // output. Nothing else may be reported.
    let other: Vec<&str> = report
        .lines()
        .filter(|l| {
            let camel = ["node_memory_", "node_netstat_", "node_sockstat_"]
                .iter()
                .any(|p| l.starts_with(p))
                && l.ends_with("metric names should be written in 'snake_case' not 'camelCase'");
            let bits = l.starts_with("node_entropy_")
                && l.ends_with("use base unit \"bytes\" instead of \"bits\"");
            !(camel || bits)
        })
        .collect();
    assert!(other.is_empty(), "promtool check metrics:\n{report}");
    assert!(
        report.contains("node_memory_MemTotal_bytes"),
        "the lint list is what we think it is:\n{report}"
    );
}

#[test]
fn without_docker_the_host_is_still_sampled() {
    let p = Plimsoll::start("collect", &["--docker-socket", "/nonexistent/docker.sock"]);
    p.wait_for("host metrics", Duration::from_secs(5), |p| {
        p.get("/metrics")
            .is_ok_and(|(_, b)| b.contains("node_cpu_seconds_total"))
    });
    assert_eq!(p.json("/api/v1/containers"), serde_json::json!([]));
    p.wait_for("a clear log line", Duration::from_secs(5), |p| {
        p.logs().contains("Docker engine not reachable")
    });
}

#[test]
fn unreadable_cgroupfs_falls_back_to_the_stats_api() {
    let name = support::unique("fallback");
    let _c = Container::run(
        &name,
        &["--cpus", "0.3"],
        &["sh", "-c", "while :; do :; done"],
    );
    let p = Plimsoll::start(
        "collect",
        &["--cgroup-root", "/nonexistent", "--interval", "1s"],
    );
    p.wait_for("stats API samples", Duration::from_secs(20), |p| {
        p.container(&name)
            .is_some_and(|c| c["latest"]["cpu_cores"].is_number())
    });
    let c = p.container(&name).unwrap();
    assert_eq!(c["source"], "stats_api");
    assert_eq!(c["cpu_limit_cores"], 0.3);
    let logs = p.logs();
    assert_eq!(
        logs.matches("falling back to the Docker stats API").count(),
        1,
        "logged once:\n{logs}"
    );
}

#[test]
fn swarm_tasks_carry_service_task_and_slot() {
    support::ensure_swarm();
    let service = support::unique("swarmsvc");
    let _svc = support::Service::create(&service, 2, &[]);
    let p = Plimsoll::start("collect", &["--interval", "500ms"]);
    p.wait_for("two tasks of the service", Duration::from_secs(30), |p| {
        p.json("/api/v1/containers")
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["service"] == service.as_str())
            .count()
            == 2
    });
    let containers = p.json("/api/v1/containers");
    let mut slots: Vec<String> = containers
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["service"] == service.as_str())
        .map(|c| {
            assert!(
                c["swarm_task_id"].as_str().is_some_and(|t| t.len() > 10),
                "{c}"
            );
            c["swarm_slot"].as_str().unwrap().to_string()
        })
        .collect();
    slots.sort();
    assert_eq!(slots, vec!["1", "2"]);
    p.wait_for("task labels in /metrics", Duration::from_secs(5), |p| {
        p.get("/metrics").is_ok_and(|(_, b)| {
            b.lines().any(|l| {
                l.starts_with("container_cpu_usage_seconds_total{")
                    && l.contains(&format!("service=\"{service}\",task=\""))
                    && l.contains(",slot=\"2\",")
                    && l.contains(&format!(
                        "container_label_com_docker_swarm_service_name=\"{service}\""
                    ))
            })
        })
    });
}

/// A container's addresses on every network it is attached to, also one it joins after it started,
/// are known to the collector (receivers attribute a sender by its address).
#[test]
fn containers_carry_their_addresses_on_every_network() {
    let (front, back) = (Network::create("front"), Network::create("back"));
    let name = support::unique("addressed");
    let _c = Container::run(&name, &["--network", &front.name], &["sleep", "100000"]);
    let ip_on = |net: &str| {
        support::docker_ok(&[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
            &name,
        ])
    };
    let p = Plimsoll::start("collect", &["--interval", "500ms"]);
    let addrs = |p: &Plimsoll, net: &str| -> Vec<String> {
        p.container(&name)
            .and_then(|c| c["networks"][net].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect()
    };
    let want = ip_on(&front.name);
    p.wait_for(
        "its address on the first network",
        Duration::from_secs(15),
        |p| addrs(p, &front.name) == vec![want.clone()],
    );
    support::docker_ok(&["network", "connect", &back.name, &name]);
    let want = ip_on(&back.name);
    p.wait_for(
        "its address on the network it joined",
        Duration::from_secs(15),
        |p| addrs(p, &back.name) == vec![want.clone()],
    );
    assert!(
        !addrs(&p, &front.name).is_empty(),
        "still on the first network"
    );
}
