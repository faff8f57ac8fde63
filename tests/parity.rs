//! Drop-in for node_exporter and cAdvisor, proven on one real Prometheus (Debian's package): every
//! metric family Debian's node_exporter exposes on this machine is in Plimsoll's output too, except
//! a short documented list; and the container series carry cAdvisor's `container_label_*` labels of a
//! real Swarm stack task and a real Compose container, `container_last_seen`,
//! `container_start_time_seconds` and the root cgroup as `id="/"`, queried as Swarm dashboards do.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{NodeExporter, Plimsoll, Prometheus};

/// node_exporter families Plimsoll leaves out on purpose, by name or name prefix (ending in `_`), with
/// the reason; README.md ("What is left out of node_exporter") lists the same. The test fails when one
/// of them is not missing any more, or when something else is missing.
const LEFT_OUT: &[(&str, &str)] = &[
    (
        "go_",
        "node_exporter's Go runtime; Plimsoll is not a Go program",
    ),
    (
        "promhttp_",
        "the Go client library's /metrics handler instrumentation",
    ),
    (
        "process_",
        "the exporter's own process; Plimsoll reports its own cost as plimsoll_collector_*",
    ),
    ("node_exporter_build_info", "node_exporter's own version"),
    (
        "node_scrape_collector_",
        "node_exporter's per-collector scrape health; Plimsoll counts failed reads in plimsoll_collector_errors_total{kind}",
    ),
    (
        "node_textfile_scrape_error",
        "the textfile collector; custom metrics come in through Plimsoll's receivers (scrape, StatsD, OTLP)",
    ),
];

/// Collectors node_exporter enables by default that only have series where the hardware or a kernel
/// module is there (sensors, RAID, NFS, ...). Plimsoll does not implement them; on a machine that has
/// them, node_exporter exposes these families and the test accepts that they are missing (and says so).
const HARDWARE: &[&str] = &[
    "node_hwmon_",
    "node_thermal_zone_",
    "node_cooling_device_",
    "node_power_supply_",
    "node_rapl_",
    "node_edac_",
    "node_nvme_",
    "node_md_",
    "node_bonding_",
    "node_infiniband_",
    "node_fibrechannel_",
    "node_tape_",
    "node_btrfs_",
    "node_xfs_",
    "node_zfs_",
    "node_nfs_",
    "node_nfsd_",
    "node_ipvs_",
    "node_cpu_scaling_",
    "node_cpu_frequency_",
    "node_cpu_core_throttles_total",
    "node_cpu_package_throttles_total",
];

fn matches(entry: &str, name: &str) -> bool {
    if entry.ends_with('_') {
        name.starts_with(entry)
    } else {
        name == entry
    }
}

fn instant(prom: &Prometheus, q: &str) -> Vec<Value> {
    prom.api("/api/v1/query", &[("query", q)])
        .unwrap_or_else(|e| panic!("{q}: {e}"))["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_until(what: &str, timeout: Duration, prom: &Prometheus, cond: impl FnMut() -> bool) {
    prom.wait_until(what, timeout, cond)
}

/// The metric names a job's latest scrape stored.
fn names_of(prom: &Prometheus, job: &str) -> BTreeSet<String> {
    instant(prom, &format!("count by (__name__) ({{job=\"{job}\"}})"))
        .iter()
        .map(|s| s["metric"]["__name__"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn plimsoll_has_every_node_exporter_family_but_the_documented_ones() {
    let exporter = NodeExporter::start();
    let p = Plimsoll::start("collect", &["--interval", "1s"]);
    let prom = Prometheus::start_config(&format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{}']\n  - job_name: plimsoll\n    static_configs:\n      - targets: ['{}']\n",
        exporter.addr, p.addr
    ));
    wait_until(
        "a few scrapes of both",
        Duration::from_secs(60),
        &prom,
        || {
            ["node", "plimsoll"].iter().all(|job| {
                !instant(
                    &prom,
                    &format!("count_over_time(up{{job=\"{job}\"}}[1m]) >= 3 and up{{job=\"{job}\"}} == 1"),
                )
                .is_empty()
            })
        },
    );
    let node = names_of(&prom, "node");
    let plimsoll = names_of(&prom, "plimsoll");
    assert!(node.len() > 150, "node_exporter's output: {node:?}");
    let missing: Vec<&String> = node.difference(&plimsoll).collect();
    let mut unexpected = Vec::new();
    let mut hardware = Vec::new();
    for n in &missing {
        if LEFT_OUT.iter().any(|(e, _)| matches(e, n)) {
            continue;
        }
        if HARDWARE.iter().any(|e| matches(e, n)) {
            hardware.push(n.as_str());
            continue;
        }
        unexpected.push(n.as_str());
    }
    let not_missing: Vec<&str> = LEFT_OUT
        .iter()
        .filter(|(e, _)| !missing.iter().any(|n| matches(e, n)))
        .map(|(e, _)| *e)
        .collect();
    eprintln!(
        "node_exporter: {} families, Plimsoll: {}; missing on purpose: {}; hardware collectors this machine has: {hardware:?}",
        node.len(),
        plimsoll.len(),
        LEFT_OUT.len()
    );
    assert!(
        unexpected.is_empty(),
        "node_exporter families Plimsoll lacks and that are not documented as left out: {unexpected:?}"
    );
    assert!(
        not_missing.is_empty(),
        "listed as left out but Plimsoll has them (or node_exporter does not): {not_missing:?}"
    );
    assert!(LEFT_OUT.len() <= 6, "the left-out list stays short");
    // Every entry is documented with its reason in the README.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    for (e, _) in LEFT_OUT {
        assert!(
            readme.contains(&format!("`{e}")),
            "README.md does not document the left-out {e}"
        );
    }
}

/// `docker-compose` (Debian's package) down with its volumes when dropped.
struct ComposeProject {
    name: String,
    file: std::path::PathBuf,
}

impl ComposeProject {
    fn up(name: &str, yaml: &str, dir: &Path) -> ComposeProject {
        let file = dir.join(format!("{name}.yml"));
        std::fs::write(&file, yaml).unwrap();
        let out = Command::new("docker-compose")
            .args(["-p", name, "-f"])
            .arg(&file)
            .args(["up", "-d"])
            .output()
            .expect(
                "docker-compose (Debian package) must be installed; tests/setup.sh installs it",
            );
        assert!(
            out.status.success(),
            "docker-compose up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ComposeProject {
            name: name.to_string(),
            file,
        }
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .args(["-p", &self.name, "-f"])
            .arg(&self.file)
            .args(["down", "-t", "1"])
            .output();
    }
}

/// A Swarm stack (`docker stack deploy`), removed when dropped.
struct Stack(String);

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = support::docker(&["stack", "rm", &self.0]);
    }
}

#[test]
fn container_series_carry_cadvisor_labels_last_seen_start_time_and_the_root_cgroup() {
    support::ensure_image();
    support::ensure_swarm();
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let (stack_name, project) = (
        format!("parity-stack-{pid}"),
        format!("parity-compose-{pid}"),
    );
    let stack_file = dir.path().join("stack.yml");
    std::fs::write(
        &stack_file,
        format!(
            "version: '3.8'\nservices:\n  web:\n    image: {}\n    command: [\"sleep\", \"100000\"]\n    stop_grace_period: 1s\n    deploy:\n      placement:\n        constraints: [\"node.id == {}\"]\n",
            support::IMAGE,
            support::local_node_id()
        ),
    )
    .unwrap();
    support::docker_ok(&[
        "stack",
        "deploy",
        "--resolve-image",
        "never",
        "-c",
        stack_file.to_str().unwrap(),
        &stack_name,
    ]);
    let _stack = Stack(stack_name.clone());
    let _compose = ComposeProject::up(
        &project,
        &format!(
            "version: '2.4'\nservices:\n  web:\n    image: {}\n    command: [\"sleep\", \"100000\"]\n    labels:\n      org.example.team: payments\n      maintainer: someone\n",
            support::IMAGE
        ),
        dir.path(),
    );
    // One more label copied by prefix; `maintainer` is not asked for and stays out.
    let p = Plimsoll::start(
        "collect",
        &["--interval", "1s", "--container-labels", "org.example.*"],
    );
    let prom = Prometheus::start(p.addr);
    let service = format!("{stack_name}_web");
    let sel = format!("container_label_com_docker_swarm_service_name=\"{service}\"");
    // As Swarm dashboards chart a service: summed by cAdvisor's service label.
    wait_until(
        "the stack's task by its Swarm labels",
        Duration::from_secs(90),
        &prom,
        || {
            !instant(
                &prom,
                &format!("sum by (container_label_com_docker_swarm_service_name) (rate(container_cpu_usage_seconds_total{{{sel}}}[5s]))"),
            )
            .is_empty()
        },
    );
    let task = instant(&prom, &format!("container_memory_usage_bytes{{{sel}}}"));
    assert_eq!(task.len(), 1, "{task:?}");
    let l = &task[0]["metric"];
    assert_eq!(
        l["container_label_com_docker_stack_namespace"],
        stack_name.as_str()
    );
    assert_eq!(
        l["container_label_com_docker_swarm_node_id"],
        support::local_node_id().as_str()
    );
    assert!(
        l["container_label_com_docker_swarm_task_name"]
            .as_str()
            .is_some_and(|t| t.starts_with(&format!("{service}.1."))),
        "{l}"
    );
    for k in ["service_id", "task_id"] {
        assert!(
            l[format!("container_label_com_docker_swarm_{k}")]
                .as_str()
                .is_some_and(|v| v.len() > 10),
            "{k}: {l}"
        );
    }
    let task_container = l["name"].as_str().unwrap().to_string();

    let csel = format!("container_label_com_docker_compose_project=\"{project}\"");
    wait_until(
        "the Compose container by its Compose labels",
        Duration::from_secs(30),
        &prom,
        || !instant(&prom, &format!("container_memory_usage_bytes{{{csel}}}")).is_empty(),
    );
    let compose = instant(&prom, &format!("container_memory_usage_bytes{{{csel}}}"));
    let l = &compose[0]["metric"];
    assert_eq!(
        l["container_label_com_docker_compose_service"], "web",
        "{l}"
    );
    assert_eq!(
        l["container_label_com_docker_compose_container_number"], "1",
        "{l}"
    );
    assert_eq!(l["container_label_org_example_team"], "payments", "{l}");
    assert!(
        l["container_label_maintainer"].is_null(),
        "not asked for: {l}"
    );
    let compose_container = l["name"].as_str().unwrap().to_string();

    // container_last_seen is recent and container_start_time_seconds is Docker's start time.
    for name in [&task_container, &compose_container] {
        let seen = instant(
            &prom,
            &format!("time() - container_last_seen{{name=\"{name}\"}}"),
        );
        let age = seen[0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap();
        assert!((0.0..10.0).contains(&age), "{name} last seen {age} s ago");
        let started = instant(
            &prom,
            &format!("container_start_time_seconds{{name=\"{name}\"}}"),
        );
        let got = started[0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap();
        let docker = support::docker_ok(&["inspect", "-f", "{{.State.StartedAt}}", name]);
        let want = humantime::parse_rfc3339_weak(&docker)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            (got - want).abs() < 0.01,
            "{name}: {got} vs Docker's {docker}"
        );
    }

    // The whole machine as cAdvisor's id="/": CPU busy, memory in use, the host's interfaces.
    let busy = instant(
        &prom,
        "rate(container_cpu_usage_seconds_total{id=\"/\"}[5s]) > 0",
    );
    assert_eq!(busy.len(), 1, "{busy:?}");
    assert!(!instant(&prom, "container_memory_working_set_bytes{id=\"/\"} > 0").is_empty());
    let cores = instant(&prom, "machine_cpu_cores");
    let nproc = String::from_utf8(Command::new("nproc").output().unwrap().stdout).unwrap();
    assert_eq!(
        cores[0]["value"][1].as_str().unwrap(),
        nproc.trim(),
        "machine_cpu_cores"
    );
    // The machine's memory holds the root's working set, as dashboards divide one by the other.
    let q = "machine_memory_bytes > ignoring(id) container_memory_working_set_bytes{id=\"/\"}";
    assert_eq!(instant(&prom, q).len(), 1, "{q}");
    let ifaces = instant(&prom, "container_network_receive_bytes_total{id=\"/\"}");
    assert!(!ifaces.is_empty());
    for s in &ifaces {
        let i = s["metric"]["interface"].as_str().unwrap();
        assert!(
            !(i == "lo" || i.starts_with("veth") || i.starts_with("docker")),
            "cAdvisor leaves {i} out of id=\"/\""
        );
        assert_eq!(
            s["metric"].as_object().unwrap().len(),
            5,
            "id, interface, job, instance, __name__: {s}"
        );
    }
}
