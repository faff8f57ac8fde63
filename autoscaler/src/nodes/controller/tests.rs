//! The real pool loops and operations on an in-memory swarm and fake providers, in paused time.

use std::sync::Mutex;

use futures_util::future::BoxFuture;

use super::*;
use crate::control::testing::PausedClock;
use crate::nodes::cluster::TaskView;
use crate::nodes::placement::Room;
use crate::nodes::provider::{NewNode, ProviderError};
use crate::nodes::testutil::*;

/// An in-memory swarm with a scheduler: every read first places the pending tasks that fit (best fit),
/// as Swarm would; draining a node sends its tasks back to pending unless `stuck`.
#[derive(Default)]
struct World {
    cluster: Cluster,
    /// Drained nodes keep their tasks (a drain that never completes).
    stuck: bool,
    calls: Vec<String>,
}

#[derive(Clone, Default)]
struct FakeSwarm(Arc<Mutex<World>>);

impl FakeSwarm {
    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    fn schedule(w: &mut World) {
        let snapshot = w.cluster.clone();
        let mut room = Room::of(&snapshot, |_| true);
        let mut placed = Vec::new();
        for t in snapshot.tasks.iter().filter(|t| t.node_id.is_none()) {
            if let Some(n) = room.place(t) {
                placed.push((t.id.clone(), n.to_string()));
            }
        }
        for (tid, n) in placed {
            let t = w.cluster.tasks.iter_mut().find(|t| t.id == tid).unwrap();
            t.node_id = Some(n);
            t.running = true;
            t.unschedulable = false;
        }
    }

    fn node(&self, hostname: &str) -> Option<NodeView> {
        self.with(|w| {
            w.cluster
                .nodes
                .iter()
                .find(|n| n.hostname == hostname)
                .cloned()
        })
    }
}

impl SwarmApi for FakeSwarm {
    async fn cluster(&self) -> Result<Cluster, super::super::SwarmError> {
        Ok(self.with(|w| {
            Self::schedule(w);
            w.cluster.clone()
        }))
    }

    async fn join_info(
        &self,
        manager: Option<String>,
    ) -> Result<(String, String), super::super::SwarmError> {
        Ok(("TOKEN".into(), manager.unwrap_or("10.0.0.1:2377".into())))
    }

    async fn set_availability(
        &self,
        node: &str,
        a: Availability,
    ) -> Result<(), super::super::SwarmError> {
        self.with(|w| {
            w.calls.push(format!("availability {node} {a:?}"));
            w.cluster
                .nodes
                .iter_mut()
                .find(|n| n.id == node)
                .unwrap()
                .availability = a;
            if a == Availability::Drain && !w.stuck {
                for t in w
                    .cluster
                    .tasks
                    .iter_mut()
                    .filter(|t| t.node_id.as_deref() == Some(node))
                {
                    t.node_id = None;
                    t.running = false;
                    t.unschedulable = true;
                }
            }
        });
        Ok(())
    }

    async fn add_label(
        &self,
        node: &str,
        key: &str,
        value: &str,
    ) -> Result<(), super::super::SwarmError> {
        self.with(|w| {
            w.calls.push(format!("label {node} {key}={value}"));
            let n = w.cluster.nodes.iter_mut().find(|n| n.id == node).unwrap();
            n.labels.insert(key.into(), value.into());
        });
        Ok(())
    }

    async fn remove_node(&self, node: &str) -> Result<(), super::super::SwarmError> {
        self.with(|w| {
            w.calls.push(format!("rm {node}"));
            w.cluster.nodes.retain(|n| n.id != node);
        });
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Nodes join `join_after` after create returns.
    Works {
        join_after: Duration,
    },
    /// Create answers, but the node never joins.
    NeverJoins,
    Fails,
    /// Create never answers.
    Hangs,
}

/// Makes 2-CPU nodes that join the fake swarm unlabelled (the loop must label them).
struct FakeProvider {
    swarm: FakeSwarm,
    mode: Mode,
    made: Mutex<u32>,
    log: Arc<Mutex<Vec<String>>>,
}

impl NodeProvider for FakeProvider {
    fn create<'a>(
        &'a self,
        req: &'a CreateRequest,
    ) -> BoxFuture<'a, Result<Vec<NewNode>, ProviderError>> {
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("create {} {}", req.pool, req.count));
            match self.mode {
                Mode::Fails => {
                    return Err(ProviderError::Exit {
                        status: "exit status: 1".into(),
                        stderr: "InsufficientCapacity".into(),
                    })
                }
                Mode::Hangs => std::future::pending::<()>().await,
                _ => {}
            }
            let mut out = Vec::new();
            for _ in 0..req.count {
                let mut made = self.made.lock().unwrap();
                *made += 1;
                let hostname = format!("{}-new-{made}", req.pool);
                out.push(NewNode {
                    hostname: hostname.clone(),
                    id: None,
                });
                if let Mode::Works { join_after } = self.mode {
                    let swarm = self.swarm.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(join_after).await;
                        let mut n = node(&format!("id-{hostname}"), None, 2.0, 4.0);
                        n.hostname = hostname;
                        swarm.with(|w| w.cluster.nodes.push(n));
                    });
                }
            }
            Ok(out)
        })
    }

    fn delete<'a>(&'a self, req: &'a DeleteRequest) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("delete {} {}", req.node, req.hostname));
            // The machine is gone: the node goes down.
            self.swarm.with(|w| {
                if let Some(n) = w
                    .cluster
                    .nodes
                    .iter_mut()
                    .find(|n| n.hostname == req.hostname)
                {
                    n.state = NodeState::Down;
                }
            });
            Ok(())
        })
    }
}

const POLICY: &str = "min: 1\nmax: 3\ninterval: 1s\nprovider: { exec: [unused], attempts: 2, provision_timeout: 30s }\nscale_up: { max_nodes_per_step: 2 }\nscale_down: { unneeded_for: 10s, delay_after_add: 0s, drain_timeout: 20s }\nremove_down_after: 1h\n";

struct Harness {
    swarm: FakeSwarm,
    state: Arc<NodeControlState>,
    provider_log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// Starts the real controller on `swarm` with one policy file per (pool, provider mode).
fn start(swarm: FakeSwarm, pools: &[(&str, Mode)]) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    for (pool, _) in pools {
        std::fs::write(
            dir.path().join(format!("{pool}.yaml")),
            format!("pool: {pool}\n{POLICY}"),
        )
        .unwrap();
    }
    // A service policy in the same folder is none of the node loop's business.
    std::fs::write(
        dir.path().join("web.yaml"),
        "service: web\nmin: 1\nmax: 2\nmetrics: [ { name: cpu, target: { utilization: 50 } } ]\n",
    )
    .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let modes: BTreeMap<String, Mode> = pools.iter().map(|(p, m)| (p.to_string(), *m)).collect();
    let (s, l) = (swarm.clone(), log.clone());
    let providers: ProviderFactory = Arc::new(move |spec: &Provider| {
        let _ = spec;
        // One factory for every pool: the pool comes with each request, so pick the mode there.
        Arc::new(PerPool {
            by_pool: modes
                .iter()
                .map(|(p, m)| {
                    (
                        p.clone(),
                        FakeProvider {
                            swarm: s.clone(),
                            mode: *m,
                            made: Mutex::new(0),
                            log: l.clone(),
                        },
                    )
                })
                .collect(),
        }) as Arc<dyn NodeProvider>
    });
    let controller = NodeController::new(
        swarm.clone(),
        NodeConfig {
            policies_dir: Some(dir.path().to_path_buf()),
            dry_run: false,
            discovery_interval: Duration::from_secs(5),
        },
        providers,
        Arc::new(PausedClock::new(Timestamp::from_secs(1_800_000_000))),
    );
    let state = controller.state();
    tokio::spawn(controller.run());
    Harness {
        swarm,
        state,
        provider_log: log,
        _dir: dir,
    }
}

struct PerPool {
    by_pool: BTreeMap<String, FakeProvider>,
}

impl NodeProvider for PerPool {
    fn create<'a>(
        &'a self,
        req: &'a CreateRequest,
    ) -> BoxFuture<'a, Result<Vec<NewNode>, ProviderError>> {
        self.by_pool[&req.pool].create(req)
    }
    fn delete<'a>(&'a self, req: &'a DeleteRequest) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.by_pool[&req.pool].delete(req)
    }
}

impl Harness {
    fn records(&self, pool: &str) -> Vec<serde_json::Value> {
        self.state
            .log
            .recent(Some(pool))
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect()
    }

    fn steps(&self, pool: &str) -> Vec<String> {
        self.records(pool)
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

    fn reasons(&self, pool: &str) -> Vec<String> {
        self.records(pool)
            .iter()
            .filter(|r| r["kind"] == "decision")
            .map(|r| r["reason"].as_str().unwrap().to_string())
            .collect()
    }

    fn pool_nodes(&self, pool: &str) -> Vec<NodeView> {
        self.swarm.with(|w| {
            w.cluster
                .nodes
                .iter()
                .filter(|n| n.pool() == Some(pool))
                .cloned()
                .collect()
        })
    }

    fn running(&self) -> usize {
        self.swarm
            .with(|w| w.cluster.tasks.iter().filter(|t| t.running).count())
    }
}

fn pending_tasks(pool: &str, n: usize) -> Vec<TaskView> {
    (0..n)
        .map(|i| {
            constrained(
                task(
                    &format!("{pool}-t{i}"),
                    &format!("svc-{pool}"),
                    None,
                    1.5,
                    1.0,
                ),
                &[&format!("node.labels.pool=={pool}")],
            )
        })
        .collect()
}

async fn run_for(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

#[tokio::test(start_paused = true)]
async fn pending_tasks_get_new_nodes_that_are_labelled_and_then_removed_when_unneeded() {
    let swarm = FakeSwarm::default();
    swarm.with(|w| {
        w.cluster.nodes.push(node("m", None, 2.0, 4.0));
        w.cluster.nodes.push(node("a", Some("p"), 2.0, 4.0));
        w.cluster.tasks = pending_tasks("p", 3);
    });
    let h = start(
        swarm,
        &[(
            "p",
            Mode::Works {
                join_after: Duration::from_secs(3),
            },
        )],
    );
    run_for(20).await;
    // One task fits on a; the other two need two nodes, added in one step.
    assert_eq!(h.provider_log.lock().unwrap().as_slice(), ["create p 2"]);
    assert_eq!(h.steps("p"), ["add provisioned", "add joined"]);
    assert_eq!(h.pool_nodes("p").len(), 3);
    assert_eq!(h.running(), 3);
    let joined = h
        .records("p")
        .into_iter()
        .find(|r| r["step"] == "joined")
        .unwrap();
    assert!(joined["elapsed_ms"].as_u64().unwrap() >= 3000, "{joined}");
    assert_eq!(joined["reason"], "pending_tasks");
    let pools: serde_json::Value =
        serde_json::to_value(h.state.pools.read().unwrap().clone()).unwrap();
    assert_eq!(pools["p"]["status"]["ready"], 3);

    // Load goes down: two tasks go away; after unneeded_for one node is drained and removed, its
    // task moving to a node with room first, then a second one.
    h.swarm.with(|w| w.cluster.tasks.truncate(1));
    run_for(60).await;
    let steps = h.steps("p");
    assert_eq!(
        &steps[2..],
        [
            "remove drained",
            "remove removed",
            "remove drained",
            "remove removed"
        ],
        "{:?}",
        h.reasons("p")
    );
    assert_eq!(h.pool_nodes("p").len(), 1, "back to min");
    assert_eq!(h.running(), 1, "the remaining task runs");
    let log = h.provider_log.lock().unwrap().clone();
    assert_eq!(
        log.iter().filter(|l| l.starts_with("delete")).count(),
        2,
        "{log:?}"
    );
    let calls = h.swarm.with(|w| w.calls.clone());
    assert!(
        calls.iter().any(|c| c.ends_with("pool=p")),
        "new nodes labelled: {calls:?}"
    );
    assert_eq!(calls.iter().filter(|c| c.starts_with("rm ")).count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failing_provider_holds_its_pool_only() {
    let swarm = FakeSwarm::default();
    swarm.with(|w| {
        w.cluster.nodes.push(node("a", Some("bad"), 2.0, 4.0));
        w.cluster.nodes.push(node("b", Some("good"), 2.0, 4.0));
        w.cluster.tasks = pending_tasks("bad", 2);
        w.cluster.tasks.extend(pending_tasks("good", 2));
    });
    let h = start(
        swarm,
        &[
            ("bad", Mode::Fails),
            (
                "good",
                Mode::Works {
                    join_after: Duration::from_secs(1),
                },
            ),
        ],
    );
    run_for(30).await;
    assert!(h.steps("good").contains(&"add joined".to_string()));
    assert_eq!(h.pool_nodes("good").len(), 2);
    let bad = h.steps("bad");
    assert!(bad.iter().all(|s| s == "add failed"), "{bad:?}");
    assert!(!bad.is_empty());
    let reasons = h.reasons("bad");
    assert!(
        reasons.contains(&"provider_backoff".to_string()),
        "{reasons:?}"
    );
    let failed = h
        .records("bad")
        .into_iter()
        .find(|r| r["step"] == "failed")
        .unwrap();
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("InsufficientCapacity"),
        "{failed}"
    );
    // Each failed operation tried twice (attempts: 2); the backoff spaces the operations out.
    let creates = h
        .provider_log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("create bad"))
        .count();
    assert_eq!(
        creates,
        2 * bad.len(),
        "{creates} creates for {} operations",
        bad.len()
    );
    assert!(bad.len() <= 4, "backoff between failed operations: {bad:?}");
}

#[tokio::test(start_paused = true)]
async fn a_hanging_provider_never_stops_the_pools_decisions() {
    let swarm = FakeSwarm::default();
    swarm.with(|w| {
        w.cluster.nodes.push(node("a", Some("p"), 2.0, 4.0));
        w.cluster.tasks = pending_tasks("p", 2);
    });
    let h = start(swarm, &[("p", Mode::Hangs)]);
    run_for(30).await;
    let reasons = h.reasons("p");
    let holds = reasons
        .iter()
        .filter(|r| *r == "operation_in_progress")
        .count();
    assert!(
        holds >= 25,
        "a decision every second while the provider hangs: {reasons:?}"
    );
    assert_eq!(
        h.provider_log.lock().unwrap().len(),
        1,
        "one operation at a time"
    );
    let pools = h.state.pools.read().unwrap();
    assert_eq!(pools["p"].operation.as_ref().unwrap().operation, "add");
}

#[tokio::test(start_paused = true)]
async fn a_node_that_never_joins_is_deleted_at_the_provisioning_deadline() {
    let swarm = FakeSwarm::default();
    swarm.with(|w| {
        w.cluster.nodes.push(node("a", Some("p"), 2.0, 4.0));
        w.cluster.tasks = pending_tasks("p", 2);
    });
    let h = start(swarm, &[("p", Mode::NeverJoins)]);
    run_for(40).await;
    let steps = h.steps("p");
    assert_eq!(
        &steps[..2],
        ["add provisioned", "add join_timeout"],
        "{steps:?}"
    );
    let timeout = h
        .records("p")
        .into_iter()
        .find(|r| r["step"] == "join_timeout")
        .unwrap();
    assert!(
        timeout["elapsed_ms"].as_u64().unwrap() >= 30_000,
        "{timeout}"
    );
    assert_eq!(
        h.provider_log.lock().unwrap()[..2],
        ["create p 1", "delete  p-new-1"],
        "deleted by hostname: it has no node ID"
    );
    assert!(h.reasons("p").contains(&"provider_backoff".to_string()));
}

#[tokio::test(start_paused = true)]
async fn a_drain_that_does_not_complete_gives_the_node_back() {
    let swarm = FakeSwarm::default();
    swarm.with(|w| {
        w.stuck = true;
        w.cluster.nodes.push(node("a", Some("p"), 2.0, 4.0));
        w.cluster.nodes.push(node("b", Some("p"), 2.0, 4.0));
        // a is unneeded (5%) and its task fits on b (75%, needed).
        w.cluster.tasks = vec![
            task("t1", "s", Some("a"), 0.1, 0.1),
            task("t2", "s", Some("b"), 1.5, 0.1),
        ];
    });
    let h = start(
        swarm,
        &[(
            "p",
            Mode::Works {
                join_after: Duration::ZERO,
            },
        )],
    );
    run_for(40).await;
    let steps = h.steps("p");
    assert_eq!(steps[0], "remove drain_timeout", "{steps:?}");
    let calls = h.swarm.with(|w| w.calls.clone());
    assert_eq!(
        calls[..2],
        [
            "availability a Drain".to_string(),
            "availability a Active".to_string()
        ],
        "a is drained, and given back after the timeout"
    );
    assert!(h.swarm.node("host-a").is_some(), "never deleted");
    assert!(h.provider_log.lock().unwrap().is_empty());
    assert!(h.reasons("p").contains(&"provider_backoff".to_string()));
}
