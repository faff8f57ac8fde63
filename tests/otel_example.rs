//! The example of examples/otel-services end to end on a real Swarm: its image built FROM scratch by
//! the example's own `images.sh` (static binaries), its `stack.yml` deployed as a Swarm stack on an
//! overlay network, the frontend and the backend sending spans and metrics over OTLP/gRPC (the
//! official Rust SDK) to a `plimsoll run` on the host, and the example's Swarm policy
//! (`stack-policies/backend.yaml`) scaling the backend when the load helper raises its p95 latency.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::{
    compose_members, docker, docker_ok, free_addr, local_node_id, now_ms, replicas, running_tasks,
    unique, Network, Plimsoll, ProjectCleanup,
};

const IMAGE: &str = "plimsoll-test-otel-services:1";

fn example_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/otel-services"
    ))
}

/// `bash images.sh IMAGE`, as the example's README says (cached after the first build), once per
/// run of this file.
fn build_image() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_image_now);
}

fn build_image_now() {
    let out = Command::new("bash")
        .arg(example_dir().join("images.sh"))
        .arg(IMAGE)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("running bash");
    assert!(
        out.status.success(),
        "examples/otel-services/images.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The example's policy file `file`, as it is but for the value of its top-level `key` (the stack or
/// the project, named per test run).
fn example_policy(file: &str, key: &str, value: &str) -> String {
    std::fs::read_to_string(example_dir().join(file))
        .unwrap()
        .lines()
        .map(|l| match l.strip_prefix(key) {
            Some(rest) if rest.starts_with(':') => format!("{key}: {value}"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A Swarm stack, removed with its network when dropped.
struct Stack(String);

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = docker(&["stack", "rm", &self.0]);
        // The stack's network goes once its tasks have: retry, as support::Overlay does.
        let net = format!("{}_default", self.0);
        for _ in 0..120 {
            let gone = !docker(&["network", "inspect", &net]).status.success();
            if gone || docker(&["network", "rm", &net]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The backend node of /api/v1/topology over `window`, and whether the `frontend -> backend` edge
/// has calls.
fn topology(p: &Plimsoll, window: &str) -> (Option<serde_json::Value>, bool) {
    let t = p.json(&format!("/api/v1/topology?window={window}"));
    let backend = t["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "backend")
        .cloned();
    let edge = t["edges"].as_array().unwrap().iter().any(|e| {
        e["client"] == "frontend"
            && e["server"] == "backend"
            && e["connection_type"] == ""
            && e["request_rate"].as_f64().unwrap_or(0.0) > 0.0
    });
    (backend, edge)
}

/// The first scale-up of `service` since `since`, which the example's policy decided on the p95
/// latency: its record names the metric, its quantile query and the observed p95 above the bound.
fn wait_for_p95_scale_up(p: &Plimsoll, service: &str, since: i64) -> serde_json::Value {
    p.wait_for(
        "a scale-up on the p95 latency",
        Duration::from_secs(90),
        |p| p.first_scale(service, true, since).is_some(),
    );
    let up = p.first_scale(service, true, since).unwrap();
    let m = &up["metrics"][0];
    assert_eq!(m["name"], "p95", "{up}");
    assert_eq!(m["target_kind"], "below", "{up}");
    assert_eq!(m["target"].as_f64(), Some(0.2), "{up}");
    let q = &m["query"];
    assert_eq!(
        q["metric"], "traces_span_metrics_duration_milliseconds",
        "{up}"
    );
    assert_eq!(q["read"]["quantile"]["phi"].as_f64(), Some(0.95), "{up}");
    // The bound is 200 ms; a queue that grows by 10 requests a second is well past it.
    let observed = m["current"].as_f64().unwrap();
    assert!(observed > 0.25, "observed p95 {observed} s: {up}");
    assert!(up["desired"].as_u64() > up["current"].as_u64(), "{up}");
    up
}

/// More replicas share the load: the backend's p95 over the last 10 s falls under the policy's bound
/// of 200 ms, then the topology shows the edge and the backend node's replicas as the autoscaler has
/// them, `replicas()`.
fn wait_for_relief(p: &Plimsoll, replicas: impl Fn() -> u64) {
    p.wait_for(
        "the backend's p95 back under 200 ms",
        Duration::from_secs(90),
        |p| {
            let (node, edge) = topology(p, "10s");
            edge && node.is_some_and(|n| n["latency_ms"]["p95"].as_f64().is_some_and(|v| v < 200.0))
        },
    );
    p.wait_for(
        "the backend node's replicas",
        Duration::from_secs(30),
        |p| {
            let (node, _) = topology(p, "1m");
            node.is_some_and(|n| n["replicas"].as_u64() == Some(replicas()))
        },
    );
}

#[test]
fn load_raises_the_example_backends_p95_and_plimsoll_scales_it_up() {
    support::ensure_swarm();
    build_image();
    let stack = unique("otel");
    let backend = format!("{stack}_backend");
    // OTLP on every address: the tasks reach the host at docker_gwbridge's gateway.
    let otlp_port = free_addr().port();
    let otlp = format!("http://{}:{otlp_port}", support::gwbridge_gateway());
    // The example's policy for its stack, as it is but for the stack's name.
    let policy = example_policy("stack-policies/backend.yaml", "stack", &stack);
    let policies = support::policy_dir(&policy);
    let p = Plimsoll::run(
        policies.path(),
        &[
            "--interval",
            "1s",
            "--otlp-grpc",
            &format!("0.0.0.0:{otlp_port}"),
        ],
    );
    // The example's stack file, with a second file that `docker stack deploy` merges in: every task
    // on this engine's node (multi-node tests may add nodes to the swarm), and DNS round robin instead
    // of a virtual IP for the services that are called, since this kernel has no IPVS (the virtual IPs
    // and the routing mesh need it; the frontend spreads its calls over the backend's addresses).
    let placed = tempfile::tempdir().unwrap();
    let node = format!("node.id=={}", local_node_id());
    let place = |s: &str, endpoint: &str| {
        format!(
            "  {s}:\n    deploy:\n{endpoint}      placement:\n        constraints: [\"{node}\"]\n"
        )
    };
    let dnsrr = "      endpoint_mode: dnsrr\n";
    let overlay = format!(
        "version: \"3.8\"\nservices:\n{}{}{}",
        place("frontend", dnsrr),
        place("backend", dnsrr),
        place("load", "")
    );
    let overlay_file = placed.path().join("placement.yml");
    std::fs::write(&overlay_file, overlay).unwrap();
    let _stack = Stack(stack.clone());
    let frontend_port = free_addr().port().to_string();
    let out = Command::new("docker")
        .args(["stack", "deploy", "--resolve-image", "never", "-c"])
        .arg(example_dir().join("stack.yml"))
        .arg("-c")
        .arg(&overlay_file)
        .arg(&stack)
        .env("IMAGE", IMAGE)
        .env("OTLP_ENDPOINT", &otlp)
        .env("FRONTEND_PORT", &frontend_port)
        .env("PUBLISH_MODE", "host")
        .env("LOAD_RATE", "30")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker stack deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.wait_for(
        "the frontend and one backend running",
        Duration::from_secs(60),
        |_| running_tasks(&format!("{stack}_frontend")) == 1 && running_tasks(&backend) == 1,
    );
    // The policy names the service as the stack file does (`backend`); the target is the stack's.
    let target = format!("swarm/{backend}");
    p.wait_for("the backend's policy", Duration::from_secs(30), |p| {
        p.policies().iter().any(|e| e["id"] == target.as_str())
    });
    // 30 requests a second against one replica's 20: requests queue for its worker.
    let since = now_ms();
    docker_ok(&["service", "scale", "--detach", &format!("{stack}_load=1")]);
    wait_for_p95_scale_up(&p, &backend, since);
    p.wait_for(
        "the new backend replicas running",
        Duration::from_secs(60),
        |_| {
            let want = replicas(&backend);
            want > 1 && running_tasks(&backend) == want
        },
    );
    wait_for_relief(&p, || u64::from(replicas(&backend)));
    let (node, _) = topology(&p, "1m");
    assert!(node.unwrap()["replicas"].as_u64().unwrap() > 1);
    // The frontend's node is not a scaled target: no replicas.
    let t = p.json("/api/v1/topology?window=1m");
    let frontend = t["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "frontend")
        .cloned()
        .expect("a frontend node");
    assert!(frontend.get("replicas").is_none(), "{frontend}");
    // The backend's business metric, an OTLP counter: attributed to each replica's container (its
    // Swarm service, task and slot), and every replica served orders (the frontend spread its calls).
    let (_, metrics) = p.get("/metrics").unwrap();
    let served: Vec<f64> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("shop_orders_total{")
                && l.contains(&format!("service=\"{backend}\""))
                && l.contains("status=\"ok\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        served.len() > 1 && served.iter().all(|v| *v > 0.0) && served.iter().sum::<f64>() > 100.0,
        "shop_orders_total of {backend}: {served:?}"
    );
}

/// The same example as a Compose project: containers with Compose's labels (as `docker compose up`
/// makes them from `docker-compose.yml`; no Compose CLI is needed) on a bridge network where the
/// backend answers to the DNS alias `backend`, and the example's Compose policy
/// (`policies/backend.yaml`). Plimsoll adds backend replicas as clones carrying the alias; the
/// frontend's resolver spreads its calls over them.
#[test]
fn the_compose_project_of_the_example_scales_its_backend_on_p95_too() {
    build_image();
    let project = unique("otelc");
    // The network is dropped after the containers on it.
    let net = Network::create("otelc");
    let _cleanup = ProjectCleanup(project.clone());
    let gateway = docker_ok(&[
        "network",
        "inspect",
        &net.name,
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
    ]);
    let otlp_port = free_addr().port();
    let policy = example_policy("policies/backend.yaml", "project", &project);
    let policies = support::policy_dir(&policy);
    let p = Plimsoll::run(
        policies.path(),
        &[
            "--interval",
            "1s",
            "--project",
            &project,
            "--otlp-grpc",
            &format!("0.0.0.0:{otlp_port}"),
        ],
    );
    let otlp = format!("OTEL_EXPORTER_OTLP_ENDPOINT=http://{gateway}:{otlp_port}");
    let run = |service: &str, env: &[&str], cmd: &[&str]| {
        let name = format!("{project}-{service}-1");
        let labels = [
            format!("com.docker.compose.project={project}"),
            format!("com.docker.compose.service={service}"),
            "com.docker.compose.container-number=1".to_string(),
        ];
        let mut args = vec!["run", "-d", "--name", &name, "--network", &net.name];
        args.extend(["--network-alias", service, "--stop-timeout", "1"]);
        for l in &labels {
            args.extend(["--label", l.as_str()]);
        }
        for e in env {
            args.extend(["-e", e]);
        }
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        docker_ok(&args);
    };
    let telemetry = [otlp.as_str(), "OTEL_BSP_SCHEDULE_DELAY=1000"];
    run(
        "backend",
        &[&telemetry[..], &["OTEL_SERVICE_NAME=backend"]].concat(),
        &["/backend"],
    );
    run(
        "frontend",
        &[
            &telemetry[..],
            &[
                "OTEL_SERVICE_NAME=frontend",
                "BACKEND_URL=http://backend:8080",
            ],
        ]
        .concat(),
        &["/frontend"],
    );
    let target = format!("compose/{project}/backend");
    p.wait_for("the backend's policy", Duration::from_secs(30), |p| {
        p.policies().iter().any(|e| e["id"] == target.as_str())
    });
    let since = now_ms();
    run(
        "load",
        &[],
        &["/load", "http://frontend:8080/checkout", "--rate", "30"],
    );
    let up = wait_for_p95_scale_up(&p, "backend", since);
    let running_backends = || {
        compose_members(&project)
            .iter()
            .filter(|(name, state, _)| name.contains("-backend-") && state == "running")
            .count() as u64
    };
    p.wait_for(
        "the backend clones running",
        Duration::from_secs(60),
        |_| running_backends() == up["desired"].as_u64().unwrap(),
    );
    // The target is the `backend` node by its name here.
    wait_for_relief(&p, running_backends);
}
