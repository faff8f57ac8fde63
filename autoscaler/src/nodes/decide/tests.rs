use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::nodes::cluster::Availability;
use crate::nodes::model::*;
use crate::nodes::testutil::*;

fn policy(min: u32, max: u32) -> NodePolicy {
    NodePolicy {
        pool: "p".into(),
        min,
        max,
        provider: Provider {
            kind: ProviderKind::Exec {
                command: vec!["true".into()],
            },
            timeout: Duration::from_secs(60),
            attempts: 1,
            provision_timeout: Duration::from_secs(60),
            manager: None,
        },
        target: CapacityTarget::default(),
        scale_up: ScaleUp::default(),
        scale_down: ScaleDown {
            unneeded_for: Duration::from_secs(600),
            delay_after_add: Duration::from_secs(600),
            ..ScaleDown::default()
        },
        spare: 0,
        remove_down_after: Duration::from_secs(300),
        interval: Duration::from_secs(10),
    }
}

const T0: Timestamp = Timestamp(1_000_000_000);

fn at(secs: u64) -> Timestamp {
    T0.plus(Duration::from_secs(secs))
}

fn pool_node(id: &str) -> NodeView {
    node(id, Some("p"), 2.0, 4.0)
}

/// Decides at T0 and again `later` seconds after, with the memory of the first decision.
fn twice(p: &NodePolicy, c: &Cluster, later: u64) -> NodeDecision {
    let first = decide(p, c, &PoolMemory::default(), false, T0);
    decide(p, c, &first.memory, false, at(later))
}

#[test]
fn under_min_nodes_are_added_a_step_at_a_time() {
    let c = cluster(vec![pool_node("a")], vec![]);
    let d = decide(&policy(3, 5), &c, &PoolMemory::default(), false, T0);
    assert_eq!(d.action, NodeAction::Add { count: 1 });
    assert_eq!(d.reason, NodeReason::BelowMin);
    let mut p = policy(3, 5);
    p.scale_up.max_nodes_per_step = 5;
    let d = decide(&p, &c, &PoolMemory::default(), false, T0);
    assert_eq!(d.action, NodeAction::Add { count: 2 });
    // A node of another pool, or no pool, does not count.
    let c = cluster(
        vec![node("a", Some("q"), 2.0, 4.0), node("b", None, 2.0, 4.0)],
        vec![],
    );
    let d = decide(&p, &c, &PoolMemory::default(), false, T0);
    assert_eq!(d.action, NodeAction::Add { count: 3 });
}

#[test]
fn tasks_pending_for_room_add_the_nodes_they_need() {
    let c = cluster(
        vec![pool_node("a")],
        vec![
            task("r1", "s", Some("a"), 0.9, 1.0),
            task("r2", "s", Some("a"), 0.9, 1.0),
            task("p1", "s", None, 0.9, 1.0),
            task("p2", "s", None, 0.9, 1.0),
            task("p3", "s", None, 0.9, 1.0),
        ],
    );
    let mut p = policy(1, 5);
    p.scale_up.max_nodes_per_step = 5;
    let d = decide(&p, &c, &PoolMemory::default(), false, T0);
    assert_eq!(d.action, NodeAction::Add { count: 2 }, "{:?}", d.status);
    assert_eq!(d.reason, NodeReason::PendingTasks);
    assert_eq!(d.status.pending_tasks, 3);
    assert_eq!(d.status.needed, 3);
    // Pending for the pool even at 100% target: they are what the pool needs.
    p.scale_up.pending = false;
    let d = decide(&p, &c, &PoolMemory::default(), false, T0);
    assert_eq!(
        d.action,
        NodeAction::None,
        "pending ignored when scale_up.pending is off"
    );
}

#[test]
fn tasks_pending_for_another_pool_or_too_big_do_not_count() {
    let c = cluster(
        vec![pool_node("a")],
        vec![
            constrained(task("q", "s", None, 0.1, 0.1), &["node.labels.pool==q"]),
            task("huge", "s", None, 16.0, 1.0),
            task("r", "s", Some("a"), 1.5, 1.0),
        ],
    );
    let d = decide(&policy(1, 5), &c, &PoolMemory::default(), false, T0);
    assert_eq!(d.action, NodeAction::None);
    assert_eq!(d.reason, NodeReason::WithinTarget);
    assert_eq!((d.status.pending_tasks, d.status.pending_elsewhere), (0, 2));
}

#[test]
fn an_empty_pool_adds_one_node_for_a_task_that_names_it() {
    let c = cluster(
        vec![manager("m", None, 2.0, 4.0)],
        vec![
            constrained(task("t", "s", None, 0.5, 0.5), &["node.labels.pool==p"]),
            constrained(task("u", "s", None, 0.5, 0.5), &["node.role==manager"]),
        ],
    );
    let d = decide(&policy(0, 3), &c, &PoolMemory::default(), false, T0);
    assert_eq!(d.action, NodeAction::Add { count: 1 });
    assert_eq!(d.reason, NodeReason::PendingTasks);
    assert_eq!(d.status.pending_elsewhere, 1);
}

#[test]
fn reservations_over_the_target_add_nodes() {
    let mut p = policy(1, 10);
    p.target.cpu = Some(80);
    p.scale_up.max_nodes_per_step = 10;
    let c = cluster(
        vec![pool_node("a"), pool_node("b")],
        vec![
            task("1", "s", Some("a"), 1.8, 0.1),
            task("2", "s", Some("b"), 1.8, 0.1),
        ],
    );
    // 3.6 of 4 CPUs = 90% > 80%: 3.6 / (2 x 0.8) = 2.25 -> 3 nodes.
    let d = decide(&p, &c, &PoolMemory::default(), false, T0);
    assert_eq!(d.action, NodeAction::Add { count: 1 });
    assert_eq!(d.reason, NodeReason::AboveTarget);
    assert_eq!(d.status.cpu_percent, 90.0);
    // Exactly on target: no change.
    let c = cluster(
        vec![pool_node("a"), pool_node("b")],
        vec![
            task("1", "s", Some("a"), 1.6, 0.1),
            task("2", "s", Some("b"), 1.6, 0.1),
        ],
    );
    assert_eq!(
        decide(&p, &c, &PoolMemory::default(), false, T0).action,
        NodeAction::None
    );
    // Memory drives it too.
    p.target.memory = Some(50);
    let c = cluster(
        vec![pool_node("a"), pool_node("b")],
        vec![
            task("1", "s", Some("a"), 0.1, 3.0),
            task("2", "s", Some("b"), 0.1, 3.0),
        ],
    );
    let d = decide(&p, &c, &PoolMemory::default(), false, T0);
    assert_eq!(
        d.action,
        NodeAction::Add { count: 1 },
        "6 GiB at 50% of 4 GiB nodes: 3 nodes"
    );
}

#[test]
fn at_max_it_holds_with_a_reason() {
    let c = cluster(
        vec![pool_node("a")],
        vec![
            task("p", "s", None, 1.0, 1.0),
            task("r", "s", Some("a"), 1.5, 1.0),
        ],
    );
    let d = decide(&policy(1, 1), &c, &PoolMemory::default(), false, T0);
    assert_eq!((d.action, d.reason), (NodeAction::None, NodeReason::AtMax));
}

#[test]
fn a_node_unneeded_long_enough_is_removed_the_fewest_tasks_first() {
    let c = cluster(
        vec![pool_node("a"), pool_node("b"), pool_node("c")],
        vec![
            task("1", "s", Some("a"), 0.2, 0.1),
            task("2", "s", Some("a"), 0.2, 0.1),
            task("3", "s", Some("b"), 0.2, 0.1),
            task("4", "s", Some("c"), 1.5, 0.1),
        ],
    );
    let p = policy(1, 5);
    let d = decide(&p, &c, &PoolMemory::default(), false, T0);
    assert_eq!(
        (d.action.clone(), d.reason),
        (NodeAction::None, NodeReason::WithinTarget)
    );
    assert_eq!(
        d.memory.unneeded_since.keys().collect::<Vec<_>>(),
        ["a", "b"],
        "c is at 75%"
    );
    let d9 = decide(&p, &c, &d.memory, false, at(599));
    assert_eq!(d9.action, NodeAction::None, "not before unneeded_for");
    let d10 = decide(&p, &c, &d.memory, false, at(600));
    assert_eq!(
        d10.action,
        NodeAction::Remove {
            node: "b".into(),
            hostname: "host-b".into(),
            drain: true
        }
    );
    assert_eq!(d10.reason, NodeReason::Unneeded);
    // A node that goes over the threshold starts again.
    let busy = cluster(
        c.nodes.clone(),
        vec![
            task("1", "s", Some("a"), 1.5, 0.1),
            task("3", "s", Some("b"), 1.5, 0.1),
            task("4", "s", Some("c"), 1.5, 0.1),
        ],
    );
    let d = decide(&p, &busy, &d.memory, false, at(300));
    assert!(d.memory.unneeded_since.is_empty());
}

#[test]
fn never_a_manager_never_below_min() {
    let c = cluster(
        vec![manager("m", Some("p"), 2.0, 4.0), pool_node("w")],
        vec![],
    );
    let d = twice(&policy(1, 5), &c, 600);
    assert_eq!(
        d.action,
        NodeAction::Remove {
            node: "w".into(),
            hostname: "host-w".into(),
            drain: true
        }
    );
    let d = twice(&policy(2, 5), &c, 600);
    assert_eq!(d.action, NodeAction::None);
    let c = cluster(
        vec![
            manager("m", Some("p"), 2.0, 4.0),
            manager("m2", Some("p"), 2.0, 4.0),
        ],
        vec![],
    );
    assert_eq!(twice(&policy(0, 5), &c, 600).action, NodeAction::None);
}

#[test]
fn a_node_whose_tasks_fit_nowhere_else_is_kept() {
    // a's 0.9-CPU task is under 50% of a but b has only 0.5 CPU left and the manager is excluded.
    let c = cluster(
        vec![pool_node("a"), pool_node("b"), manager("m", None, 8.0, 8.0)],
        vec![
            constrained(
                task("big", "s", Some("a"), 0.9, 0.1),
                &["node.labels.pool==p"],
            ),
            task("full", "s", Some("b"), 1.5, 0.1),
        ],
    );
    let d = twice(&policy(1, 5), &c, 600);
    assert_eq!(
        (d.action.clone(), d.reason),
        (NodeAction::None, NodeReason::TasksFitNowhere)
    );
    assert_eq!(d.status.blocked["a"], ["big"]);
    // Another unneeded node whose tasks do fit is taken instead.
    let mut c2 = c.clone();
    c2.nodes.push(pool_node("c"));
    c2.nodes.push(pool_node("d"));
    c2.tasks.push(task("small", "s", Some("c"), 0.1, 0.1));
    let d = twice(&policy(1, 5), &c2, 600);
    assert_eq!(d.reason, NodeReason::Unneeded);
    assert!(
        matches!(&d.action, NodeAction::Remove { node, .. } if node == "d"),
        "{:?}",
        d.action
    );
}

#[test]
fn scale_down_waits_after_an_add_and_while_busy_or_backing_off() {
    let c = cluster(vec![pool_node("a"), pool_node("b")], vec![]);
    let p = policy(1, 5);
    let first = decide(&p, &c, &PoolMemory::default(), false, T0);
    let mut mem = first.memory.clone();
    mem.last_add = Some(at(100));
    let d = decide(&p, &c, &mem, false, at(600));
    assert_eq!(d.reason, NodeReason::DelayAfterAdd);
    let d = decide(&p, &c, &mem, false, at(700));
    assert_eq!(d.reason, NodeReason::Unneeded);
    let d = decide(&p, &c, &mem, true, at(700));
    assert_eq!(
        (d.action.clone(), d.reason),
        (NodeAction::None, NodeReason::OperationInProgress)
    );
    assert_eq!(
        d.memory.unneeded_since.len(),
        2,
        "memory still follows the cluster while busy"
    );
    mem.hold_until = Some(at(800));
    assert_eq!(
        decide(&p, &c, &mem, false, at(799)).reason,
        NodeReason::ProviderBackoff
    );
    assert_eq!(
        decide(&p, &c, &mem, false, at(800)).reason,
        NodeReason::Unneeded
    );
}

#[test]
fn a_down_node_is_replaced_first_then_removed() {
    let mut dead = pool_node("dead");
    dead.state = NodeState::Down;
    let c = cluster(vec![pool_node("a"), dead], vec![]);
    let p = policy(2, 5);
    let d = decide(&p, &c, &PoolMemory::default(), false, T0);
    assert_eq!(
        (d.action.clone(), d.reason),
        (NodeAction::Add { count: 1 }, NodeReason::BelowMin)
    );
    assert_eq!(d.status.down, 1);
    let mut c2 = c.clone();
    c2.nodes.push(pool_node("new"));
    let d2 = decide(&p, &c2, &d.memory, false, at(299));
    assert_eq!(d2.action, NodeAction::None);
    let d3 = decide(&p, &c2, &d.memory, false, at(300));
    assert_eq!(
        (d3.action, d3.reason),
        (
            NodeAction::Remove {
                node: "dead".into(),
                hostname: "host-dead".into(),
                drain: false
            },
            NodeReason::NodeDown
        )
    );
}

#[test]
fn spare_nodes_are_added_and_kept() {
    let mut p = policy(1, 5);
    p.spare = 1;
    let c = cluster(
        vec![pool_node("a")],
        vec![task("1", "s", Some("a"), 0.2, 0.1)],
    );
    let d = decide(&p, &c, &PoolMemory::default(), false, T0);
    assert_eq!(
        (d.action, d.reason),
        (NodeAction::Add { count: 1 }, NodeReason::Spare)
    );
    let c = cluster(
        vec![pool_node("a"), pool_node("b")],
        vec![task("1", "s", Some("a"), 0.2, 0.1)],
    );
    let d = twice(&p, &c, 600);
    // b is the spare: kept; a is unneeded too, but its task could only go to b, which would then
    // not be spare any more: kept as well (else the next decision would add a node back).
    assert_eq!(
        (d.action, d.reason),
        (NodeAction::None, NodeReason::WithinTarget)
    );
    let c = cluster(
        vec![pool_node("a"), pool_node("b"), pool_node("c")],
        vec![task("1", "s", Some("a"), 0.2, 0.1)],
    );
    let d = twice(&p, &c, 600);
    assert!(
        matches!(d.action, NodeAction::Remove { ref node, .. } if node == "b"),
        "{:?}",
        d.action
    );
}

#[test]
fn the_target_keeps_a_node_whose_removal_would_pass_it() {
    let mut p = policy(1, 5);
    p.target.cpu = Some(80);
    p.scale_down.below = 60;
    // 3 nodes at 55%: 3.3 CPUs; without one, 3.3 of 4 = 82.5% > 80%.
    let c = cluster(
        vec![pool_node("a"), pool_node("b"), pool_node("c")],
        vec![
            task("1", "s", Some("a"), 1.1, 0.1),
            task("2", "s", Some("b"), 1.1, 0.1),
            task("3", "s", Some("c"), 1.1, 0.1),
        ],
    );
    let d = twice(&p, &c, 600);
    assert_eq!(
        (d.action, d.reason),
        (NodeAction::None, NodeReason::WithinTarget)
    );
}

#[test]
fn reasons_serialize_as_their_names() {
    for r in [
        NodeReason::BelowMin,
        NodeReason::TasksFitNowhere,
        NodeReason::ProviderBackoff,
    ] {
        assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
    }
}

fn arb_pool() -> impl Strategy<Value = (Cluster, u32, u32)> {
    let nodes = prop::collection::vec((any::<bool>(), any::<bool>(), 0u8..4), 0..6);
    let tasks = prop::collection::vec((0usize..7, 1u32..=4), 0..12);
    (nodes, tasks, 0u32..3, 1u32..6).prop_map(|(nodes, tasks, min, extra)| {
        let nodes: Vec<NodeView> = nodes
            .into_iter()
            .enumerate()
            .map(|(i, (is_manager, in_pool, state))| {
                let pool = in_pool.then_some("p");
                let mut n = if is_manager {
                    manager(&format!("n{i}"), pool, 2.0, 4.0)
                } else {
                    node(&format!("n{i}"), pool, 2.0, 4.0)
                };
                match state {
                    1 => n.state = NodeState::Down,
                    2 => n.availability = Availability::Drain,
                    _ => {}
                }
                n
            })
            .collect();
        let count = nodes.len();
        let tasks = tasks
            .into_iter()
            .enumerate()
            .map(|(i, (n, cpu))| {
                let on = (n < count && nodes[n].schedulable()).then(|| format!("n{n}"));
                task(
                    &format!("t{i}"),
                    "s",
                    on.as_deref(),
                    f64::from(cpu) * 0.25,
                    0.1,
                )
            })
            .collect();
        (cluster(nodes, tasks), min, min + extra)
    })
}

proptest! {
    /// Whatever the cluster: adds stay within max and the step, removals never take a manager, never
    /// go under min, and a drained node's tasks always have somewhere to go.
    #[test]
    fn decisions_respect_bounds_and_placement((c, min, max) in arb_pool(), step in 1u32..4, later in 0u64..1200) {
        let mut p = policy(min, max);
        p.scale_up.max_nodes_per_step = step;
        p.target.cpu = Some(70);
        let d = twice(&p, &c, later);
        let ready = c.nodes.iter().filter(|n| n.pool() == Some("p") && n.state == NodeState::Ready).count() as u32;
        match &d.action {
            NodeAction::Add { count } => {
                prop_assert!(*count >= 1 && *count <= step);
                prop_assert!(ready + count <= max);
            }
            NodeAction::Remove { node, drain, .. } => {
                let n = c.nodes.iter().find(|n| &n.id == node).unwrap();
                prop_assert_eq!(n.pool(), Some("p"));
                if *drain {
                    prop_assert_eq!(n.role, Role::Worker);
                    prop_assert!(ready > min);
                    prop_assert!(relocate(&c, node).is_ok());
                } else {
                    prop_assert!(n.state != NodeState::Ready);
                }
            }
            NodeAction::None => {}
        }
    }
}
