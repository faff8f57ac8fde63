//! Cluster mode on a multi-node Swarm, deployed from deploy/plimsoll-stack.yml itself: three worker
//! nodes (tests/support/swarm.rs: `dockerd` daemons in namespaces of their own), the stack's collector
//! as a global service on them (each in its node's network namespace, reading its node's /proc and
//! Docker engine), its autoscaler on the manager (this engine) finding the collectors through the Swarm
//! API, and a service spread over the three nodes scaled up and down by the load on all of them while
//! one node's collector is killed and comes back; then a fourth node joins and its collector is found.
//!
//! What the test changes in the stack file, and why: the image (the binary under test), the
//! collector's placement (only this test's nodes: the engine is shared) and a restart delay (so that a
//! killed collector stays away long enough to be seen), the autoscaler's listen address (a free port:
//! it shares the host network) and `--project` (only this stack's services), the policy config (the
//! test's policy), and a service to scale, added to the stack.

mod support;

use std::time::{Duration, Instant};

use support::swarm::{wait_until, Nodes};
use support::{docker, docker_ok, http_get, metric_value, BURNER, IMAGE};

/// The stack file with the test's changes; each must apply exactly once.
fn stack_file(stack: &str, pool: &str, image: &str, port: u16, policy: &str, ctl: &str) -> String {
    let shipped = include_str!("../deploy/plimsoll-stack.yml");
    let mut s = shipped.to_string();
    let mut change = |from: &str, to: &str, times: usize| {
        assert_eq!(s.matches(from).count(), times, "{from:?} in the stack file");
        s = s.replace(from, to);
    };
    change("image: plimsoll:latest", &format!("image: {image}"), 2);
    change(
        "      mode: global\n",
        &format!(
            "      mode: global\n      placement:\n        constraints: [\"node.labels.pool=={pool}\"]\n      restart_policy:\n        delay: 15s\n"
        ),
        1,
    );
    change(
        "\"--listen\", \"0.0.0.0:9181\"]",
        &format!("\"--listen\", \"127.0.0.1:{port}\", \"--project\", \"{stack}\"]"),
        1,
    );
    change(
        "file: ../policies/examples/web.yaml",
        &format!("file: {policy}"),
        1,
    );
    // `$` is interpolation in stack files.
    let burner = serde_json::to_string(&BURNER.replace('$', "$$")).unwrap();
    let web = format!(
        "  web:\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", {burner}]\n    deploy:\n      replicas: 3\n      placement:\n        constraints: [\"node.labels.pool=={pool}\"]\n        max_replicas_per_node: 2\n      resources:\n        limits:\n          cpus: \"0.1\"\n    volumes:\n      - {ctl}:/ctl\nconfigs:\n"
    );
    change("\nconfigs:\n", &format!("\n{web}"), 1);
    s
}

/// `docker stack rm` when dropped.
struct Stack(String);

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = docker(&["stack", "rm", &self.0]);
        // Its tasks go away asynchronously; the nodes are removed after this.
        let filter = format!("label=com.docker.stack.namespace={}", self.0);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30)
            && !docker_ok(&["ps", "-q", "--filter", &filter]).is_empty()
        {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// `docker rmi` when dropped.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

/// Node hostname of every running task of `service`.
fn spread(service: &str) -> Vec<String> {
    support::swarm::running_on(service)
}

fn get(port: u16, path: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    match http_get(addr, path) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

fn decisions(port: u16, service: &str) -> Vec<serde_json::Value> {
    get(port, &format!("/api/v1/decisions?service={service}"))
        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

fn gauge(port: u16, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric_value(&get(port, "/metrics")?, name, labels)
}

fn autoscaler_logs(stack: &str) -> String {
    let out = docker(&[
        "service",
        "logs",
        "--raw",
        "--no-trunc",
        &format!("{stack}_autoscaler"),
    ]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_stack_scales_a_service_over_three_nodes_and_rides_out_a_killed_collector() {
    let stack = support::unique("cluster").replace("plimsoll-it-", "pit");
    let image = Image(format!("plimsoll-test-plimsoll:{}", std::process::id()));
    support::build_plimsoll_image(&image.0);
    let mut nodes = Nodes::new(&stack);
    nodes.load(&image.0);
    nodes.add_workers(3, &[("pool", &stack)]);

    let dir = tempfile::tempdir().unwrap();
    let ctl = dir.path().join("ctl");
    std::fs::create_dir(&ctl).unwrap();
    let web = format!("{stack}_web");
    let policy = dir.path().join("web.yaml");
    std::fs::write(
        &policy,
        format!("service: {web}\nmin: 3\nmax: 6\nmetrics:\n  - name: cpu\n    target: {{ utilization: 50 }}\nbehavior:\n  scale_down: {{ stabilization: 3s, select: max, policies: [ {{ percent: 100, period: 3s }} ] }}\n"),
    )
    .unwrap();
    let port = support::free_addr().port();
    let file = dir.path().join("stack.yml");
    std::fs::write(
        &file,
        stack_file(
            &stack,
            &stack,
            &image.0,
            port,
            policy.to_str().unwrap(),
            ctl.to_str().unwrap(),
        ),
    )
    .unwrap();
    let deployed = Stack(stack.clone());
    docker_ok(&[
        "stack",
        "deploy",
        "--resolve-image",
        "never",
        "-c",
        file.to_str().unwrap(),
        &stack,
    ]);

    // A collector on each node, in the node's own network namespace at its address.
    let collector = |n: &support::swarm::Node| -> std::net::SocketAddr {
        format!("{}:9180", n.address).parse().unwrap()
    };
    for n in &nodes.nodes {
        wait_until(
            &format!("the collector of {}", n.hostname),
            Duration::from_secs(60),
            || http_get(collector(n), "/healthz").is_ok_and(|(c, _)| c == 200),
        );
    }
    wait_until("3 replicas on 3 nodes", Duration::from_secs(60), || {
        let mut on = spread(&web);
        on.sort();
        on.dedup();
        on.len() == 3
    });
    wait_until(
        "the autoscaler's first decision",
        Duration::from_secs(60),
        || !decisions(port, &web).is_empty(),
    );
    for n in &nodes.nodes {
        let url = format!("http://{}:9180", n.address);
        wait_until(
            &format!("{url} found through the Swarm API"),
            Duration::from_secs(20),
            || {
                autoscaler_logs(&stack)
                    .lines()
                    .any(|l| l.contains("collector found") && l.contains(&url))
            },
        );
    }

    // Load on every replica: 3 -> 6, the new replicas spread over the nodes too.
    std::fs::write(ctl.join("on"), "").unwrap();
    wait_until("a scale-up to 6", Duration::from_secs(60), || {
        decisions(port, &web)
            .iter()
            .any(|r| r["action"] == "scaled" && r["desired"] == 6)
    });
    let up = decisions(port, &web)
        .into_iter()
        .find(|r| r["action"] == "scaled" && r["desired"] == 6)
        .unwrap();
    let cpu = &up["metrics"][0];
    assert_eq!(
        cpu["counted"], up["current"],
        "every replica read from its node's collector: {up}"
    );
    assert!(
        cpu["current"].as_f64().unwrap() > 75.0,
        "all three replicas busy: {up}"
    );
    wait_until("6 replicas, 2 per node", Duration::from_secs(60), || {
        let on = spread(&web);
        on.len() == 6
            && nodes
                .nodes
                .iter()
                .all(|n| on.iter().filter(|h| **h == n.hostname).count() == 2)
    });

    // One node's collector killed: the others are still read, its replicas count as missing, and
    // with the load gone the service still scales down.
    let victim = &nodes.nodes[0];
    let url = format!("http://{}:9180", victim.address);
    let filter = format!("label=com.docker.swarm.service.name={stack}_collector");
    let id = nodes.docker_on(&victim.hostname, &["ps", "-q", "--filter", &filter]);
    assert!(
        !id.is_empty() && !id.contains('\n'),
        "one collector container: {id:?}"
    );
    nodes.docker_on(&victim.hostname, &["kill", &id]);
    let killed_at = support::now_ms();
    wait_until("the outage seen", Duration::from_secs(20), || {
        gauge(port, "plimsoll_collectors_unreachable", &[]) == Some(1.0)
    });
    std::fs::remove_file(ctl.join("on")).unwrap();
    wait_until(
        "a scale-down to 3 during the outage",
        Duration::from_secs(60),
        || {
            decisions(port, &web).iter().any(|r| {
                r["action"] == "scaled"
                    && r["desired"] == 3
                    && r["at"].as_i64().unwrap_or(0) > killed_at
            })
        },
    );
    assert_eq!(
        gauge(port, "plimsoll_collectors_unreachable", &[]),
        Some(1.0),
        "the collector is still away (restart delay 15 s)"
    );
    let down = decisions(port, &web)
        .into_iter()
        .find(|r| r["action"] == "scaled" && r["desired"] == 3)
        .unwrap();
    assert_eq!(down["current"], 6, "{down}");

    // It comes back: read again, the outage ends; it was logged and counted once.
    wait_until("the collector back", Duration::from_secs(60), || {
        gauge(port, "plimsoll_collectors_unreachable", &[]) == Some(0.0)
    });
    assert_eq!(
        gauge(
            port,
            "plimsoll_collector_outages_total",
            &[("collector", &url)]
        ),
        Some(1.0)
    );
    let logs = autoscaler_logs(&stack);
    let lines = |what: &str| {
        logs.lines()
            .filter(|l| l.contains(what) && l.contains(&url))
            .count()
    };
    assert_eq!(lines("collector unreachable"), 1, "{logs}");
    assert_eq!(lines("collector answers again"), 1, "{logs}");
    // The other nodes' collectors never had an outage.
    for n in &nodes.nodes[1..] {
        let other = format!("http://{}:9180", n.address);
        assert_eq!(
            gauge(
                port,
                "plimsoll_collector_outages_total",
                &[("collector", &other)]
            ),
            None,
            "{other}"
        );
    }

    // A node joining the pool gets a collector, which the autoscaler finds at its next listing.
    let joined = nodes.add_workers(1, &[("pool", &stack)]).remove(0);
    let url = format!("http://{}:9180", joined.address);
    wait_until(
        &format!("{url} found after {} joined", joined.hostname),
        Duration::from_secs(60),
        || {
            autoscaler_logs(&stack)
                .lines()
                .any(|l| l.contains("collector found") && l.contains(&url))
        },
    );
    drop(deployed);
}
