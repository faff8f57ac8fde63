//! Extra Swarm nodes for the multi-node tests: `dockerd` daemons in network, UTS, PID and mount
//! namespaces of their own, made by `swarm-node.sh` (next to this file; its header says how), joined to
//! this engine's swarm with the test image loaded. The same script is the `exec` node provider that
//! the node-autoscaling tests give `plimsoll run` ([`Nodes::provider_command`]).
//!
//! Every node is tagged with its test and owned by this test process: [`Nodes`] removes its nodes when
//! dropped (also when the test panics), and the first use in a process removes the nodes of runs that
//! were killed before they could clean up.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{docker, docker_ok, ensure_image, ensure_swarm, IMAGE};

/// `tests/support/swarm-node.sh`.
pub fn script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/support/swarm-node.sh"
    ))
}

/// One extra node, as `swarm-node.sh create` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    /// Its address on the veth, which it advertises to the swarm.
    pub address: String,
}

/// The manager address new nodes join: this engine's advertised address.
pub fn manager_addr() -> String {
    ensure_swarm();
    format!(
        "{}:2377",
        docker_ok(&["info", "--format", "{{.Swarm.NodeAddr}}"])
    )
}

pub fn join_token(role: &str) -> String {
    docker_ok(&["swarm", "join-token", "-q", role])
}

/// Runs the script with this process as the owner and `tag`, loading `images` into new nodes; panics
/// with its stderr on failure.
fn run_script(tag: &str, images: &[String], args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(script())
        .args(["--owner", &std::process::id().to_string(), "--tag", tag])
        .args(images.iter().flat_map(|i| ["--image", i.as_str()]))
        .args(args)
        .output()
        .expect("running swarm-node.sh");
    assert!(
        out.status.success(),
        "swarm-node.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes, once per process, the nodes of earlier runs whose test process is gone.
pub fn cleanup_leftovers() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let out = Command::new("bash")
            .arg(script())
            .arg("cleanup")
            .output()
            .expect("running swarm-node.sh");
        assert!(
            out.status.success(),
            "swarm-node.sh cleanup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Swarm state of a node: (`Status.State`, `Spec.Availability`), None once it is removed.
pub fn node_state(id: &str) -> Option<(String, String)> {
    let out = docker(&[
        "node",
        "inspect",
        "--format",
        "{{.Status.State}} {{.Spec.Availability}}",
        id,
    ]);
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (state, availability) = text.trim().split_once(' ')?;
    Some((state.to_string(), availability.to_string()))
}

/// Node IDs of the swarm nodes labelled `pool=POOL`, with their state.
pub fn pool_nodes(pool: &str) -> Vec<(String, String)> {
    let filter = format!("node.label=pool={pool}");
    docker_ok(&[
        "node",
        "ls",
        "--filter",
        &filter,
        "--format",
        "{{.ID}} {{.Status}}",
    ])
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(id, status)| (id.to_string(), status.to_lowercase()))
    .collect()
}

/// Polls `cond` every 250 ms; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The extra nodes of one test, removed (daemon, namespaces, swarm entry) when dropped, together with
/// any node that `plimsoll run` made for the test through [`Nodes::provider_command`].
pub struct Nodes {
    pub tag: String,
    pub nodes: Vec<Node>,
    /// Loaded into every node made here: the test image, and any added with [`Nodes::load`].
    images: Vec<String>,
}

impl Nodes {
    /// An empty group; nodes come from [`Nodes::add_workers`] or from the provider.
    pub fn new(tag: &str) -> Nodes {
        ensure_image();
        ensure_swarm();
        cleanup_leftovers();
        Nodes {
            tag: tag.to_string(),
            nodes: Vec::new(),
            images: vec![IMAGE.to_string()],
        }
    }

    /// Also loads `image` (built on this engine) into the nodes made from now on.
    pub fn load(&mut self, image: &str) {
        self.images.push(image.to_string());
    }

    /// `docker ARGS` against the engine of node `hostname` (its own daemon, not the swarm's manager).
    pub fn docker_on(&self, hostname: &str, args: &[&str]) -> String {
        let host = format!("unix://{}/x/docker.sock", self.slot_dir(hostname).display());
        let out = Command::new("docker")
            .args(["-H", &host])
            .args(args)
            .output()
            .expect("running docker");
        assert!(
            out.status.success(),
            "docker -H {host} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The script's state directory of node `hostname` (while the node lives).
    fn slot_dir(&self, hostname: &str) -> PathBuf {
        let slot = self
            .live()
            .into_iter()
            .find(|n| n["hostname"] == hostname)
            .unwrap_or_else(|| panic!("no node {hostname}"))["slot"]
            .clone();
        let state =
            std::env::var("PLIMSOLL_NODES_STATE").unwrap_or_else(|_| "/tmp/plimsoll-nodes".into());
        PathBuf::from(format!("{state}/{slot}"))
    }

    /// Where the create of node `hostname` spent its time: the script's phase marks (start,
    /// namespaces, dockerd, images, swarm_join) in milliseconds since the epoch.
    pub fn create_marks(&self, hostname: &str) -> Vec<(String, f64)> {
        let path = self.slot_dir(hostname).join("timing");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(phase, us)| (phase.to_string(), us.parse::<f64>().unwrap() / 1000.0))
            .collect()
    }

    /// `count` worker nodes, Ready and labelled `labels` (e.g. `pool=NAME`) when this returns.
    pub fn workers(tag: &str, count: u32, labels: &[(&str, &str)]) -> Nodes {
        let mut n = Nodes::new(tag);
        n.add_workers(count, labels);
        n
    }

    pub fn add_workers(&mut self, count: u32, labels: &[(&str, &str)]) -> Vec<Node> {
        let token = join_token("worker");
        let manager = manager_addr();
        let out = run_script(
            &self.tag,
            &self.images,
            &[
                "create",
                "--count",
                &count.to_string(),
                "--join-token",
                &token,
                "--manager",
                &manager,
            ],
        );
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let created: Vec<Node> = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| Node {
                id: n["id"].as_str().unwrap().to_string(),
                hostname: n["hostname"].as_str().unwrap().to_string(),
                address: n["address"].as_str().unwrap().to_string(),
            })
            .collect();
        assert_eq!(created.len(), count as usize, "{out}");
        self.nodes.extend(created.iter().cloned());
        for node in &created {
            wait_until(
                &format!("node {} ready", node.hostname),
                Duration::from_secs(30),
                || node_state(&node.id).is_some_and(|(s, _)| s == "ready"),
            );
            for (k, v) in labels {
                docker_ok(&[
                    "node",
                    "update",
                    "--label-add",
                    &format!("{k}={v}"),
                    &node.id,
                ]);
            }
        }
        created
    }

    /// SIGKILL to a node's daemon and everything running on it, as if the machine lost power.
    pub fn kill(&self, hostname: &str) {
        run_script(&self.tag, &[], &["kill", "--hostname", hostname]);
    }

    /// The argv of an `exec` node provider that makes nodes for this test (plimsoll appends
    /// `create ...` or `delete ...`).
    pub fn provider_command(&self) -> Vec<String> {
        vec![
            "bash".into(),
            script().display().to_string(),
            "--owner".into(),
            std::process::id().to_string(),
            "--tag".into(),
            self.tag.clone(),
            "--image".into(),
            IMAGE.into(),
        ]
    }

    /// The nodes of this test that the script still holds (made here or by the provider).
    pub fn live(&self) -> Vec<serde_json::Value> {
        let out = Command::new("bash")
            .arg(script())
            .arg("list")
            .output()
            .expect("running swarm-node.sh");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["tag"] == self.tag.as_str())
            .collect()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["cleanup", "--tag", &self.tag])
            .status();
    }
}

/// A node policy file for `pool` whose provider runs `argv`; `rest` adds or overrides settings (YAML
/// lines). Short times so that a test sees a whole cycle in seconds.
pub fn node_policy(pool: &str, argv: &[String], rest: &str) -> String {
    let argv = serde_json::to_string(argv).unwrap();
    format!("pool: {pool}\n{rest}\nprovider: {{ exec: {argv}, timeout: 60s, attempts: 2, provision_timeout: 60s }}\n")
}

/// Tasks of `service` meant to run: (current state, node hostname or "" while pending, error).
pub fn tasks(service: &str) -> Vec<(String, String, String)> {
    docker_ok(&[
        "service",
        "ps",
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}|{{.Node}}|{{.Error}}",
        service,
    ])
    .lines()
    .map(|l| {
        let mut f = l.splitn(3, '|');
        let state = f
            .next()
            .unwrap_or("")
            .split(' ')
            .next()
            .unwrap_or("")
            .to_string();
        (
            state,
            f.next().unwrap_or("").to_string(),
            f.next().unwrap_or("").to_string(),
        )
    })
    .collect()
}

/// Hostnames of the running tasks of `service`.
pub fn running_on(service: &str) -> Vec<String> {
    tasks(service)
        .into_iter()
        .filter(|(s, _, _)| s == "Running")
        .map(|(_, n, _)| n)
        .collect()
}

/// The records of /api/v1/node-decisions?pool=POOL.
pub fn node_records(p: &super::Plimsoll, pool: &str) -> Vec<serde_json::Value> {
    p.json(&format!("/api/v1/node-decisions?pool={pool}"))
        .as_array()
        .unwrap()
        .clone()
}

/// The operation steps of `pool` so far, as "add provisioned", "remove drained", ...
pub fn steps(p: &super::Plimsoll, pool: &str) -> Vec<String> {
    node_records(p, pool)
        .iter()
        .filter(|r| r["kind"] == "operation")
        .map(|r| {
            format!(
                "{} {}",
                r["operation"].as_str().unwrap(),
                r["step"].as_str().unwrap()
            )
        })
        .collect()
}

/// Routes between the extra nodes through the host, as the nodes of a real cluster reach each other
/// (swarm-node.sh routes each node to the host only): a host route in each node's namespace to every
/// other node via its veth, and `DOCKER-USER` rules letting the host forward between their veths.
/// The rules are removed when dropped (the routes go with the namespaces).
pub struct NodeRoutes {
    rules: Vec<Vec<String>>,
}

impl NodeRoutes {
    pub fn between(nodes: &[Node]) -> NodeRoutes {
        let gateway = |n: &Node| {
            let (net, _) = n.address.rsplit_once('.').expect("an IPv4 address");
            format!("{net}.1")
        };
        let mut routes = NodeRoutes { rules: Vec::new() };
        for from in nodes {
            for to in nodes.iter().filter(|n| n.id != from.id) {
                let ns = format!("--net=/var/run/netns/{}", from.hostname);
                let out = Command::new("nsenter")
                    .args([ns.as_str(), "ip", "route", "replace"])
                    .arg(format!("{}/32", to.address))
                    .args(["via", &gateway(from)])
                    .output()
                    .expect("nsenter");
                assert!(out.status.success(), "route: {out:?}");
                let rule: Vec<String> = ["DOCKER-USER", "-i"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain([format!("v{}", from.hostname), "-o".into()])
                    .chain([format!("v{}", to.hostname), "-j".into(), "ACCEPT".into()])
                    .collect();
                let out = Command::new("iptables")
                    .arg("-I")
                    .args(&rule)
                    .output()
                    .expect("iptables");
                assert!(out.status.success(), "iptables: {out:?}");
                routes.rules.push(rule);
            }
        }
        routes
    }
}

impl Drop for NodeRoutes {
    fn drop(&mut self) {
        for rule in &self.rules {
            let _ = Command::new("iptables").arg("-D").args(rule).status();
        }
    }
}
