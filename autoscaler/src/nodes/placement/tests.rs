use proptest::prelude::*;

use super::*;
use crate::nodes::cluster::{Availability, NodeState};
use crate::nodes::testutil::*;

#[test]
fn constraints_follow_swarm_syntax_and_matching() {
    let mut n = node("n1", Some("web"), 2.0, 4.0);
    n.engine_labels.insert("zone".into(), "A".into());
    n.addr = "10.213.4.2".into();
    let m = |c: &str| Constraint::parse(c).unwrap().matches(&n);
    assert!(m("node.labels.pool==web"));
    assert!(
        m("node.labels.pool == WEB"),
        "values compare case-insensitively"
    );
    assert!(!m("node.labels.Pool==web"), "label names do not");
    assert!(m("node.labels.missing!=x"));
    assert!(m("node.labels.missing=="), "a missing label is empty");
    assert!(m("Node.Role==worker"));
    assert!(!m("node.role==manager"));
    assert!(m("node.id!=n2"));
    assert!(m("node.hostname==host-n1"));
    assert!(m("engine.labels.zone==a"));
    assert!(m("node.platform.os==linux"));
    assert!(m("node.platform.arch!=aarch64"));
    assert!(m("node.ip==10.213.4.2"));
    assert!(m("node.ip==10.213.0.0/16"));
    assert!(!m("node.ip==10.214.0.0/16"));
    assert!(!m("node.colour==red"), "unknown keys never match");
    assert!(!m("node.colour!=red"));
    assert_eq!(Constraint::parse("node.role"), None);
    let c = Constraint::parse("node.labels.a!=b==c").unwrap();
    assert!(!c.equal);
    assert_eq!(c.value, "b==c");
}

#[test]
fn a_nodes_tasks_move_to_nodes_with_room() {
    let c = cluster(
        vec![
            node("a", Some("p"), 2.0, 4.0),
            node("b", Some("p"), 2.0, 4.0),
        ],
        vec![
            task("t1", "s", Some("a"), 1.0, 1.0),
            task("t2", "s", Some("b"), 0.5, 1.0),
        ],
    );
    assert_eq!(relocate(&c, "a"), Ok(vec![("t1", "b")]));
}

#[test]
fn tasks_that_fit_nowhere_else_are_named() {
    // b has 0.5 CPU left: the 1-CPU task cannot move; the manager has room but the task is pinned
    // to workers.
    let c = cluster(
        vec![
            node("a", Some("p"), 2.0, 4.0),
            node("b", Some("p"), 2.0, 4.0),
            manager("m", None, 8.0, 16.0),
        ],
        vec![
            constrained(task("t1", "s", Some("a"), 1.0, 1.0), &["node.role==worker"]),
            task("t2", "s", Some("b"), 1.5, 1.0),
        ],
    );
    assert_eq!(relocate(&c, "a"), Err(vec!["t1"]));
    // Without the constraint the manager takes it.
    let mut free = c.clone();
    free.tasks[0] = task("t1", "s", Some("a"), 1.0, 1.0);
    assert_eq!(relocate(&free, "a"), Ok(vec![("t1", "m")]));
}

#[test]
fn memory_constraints_max_per_node_and_unavailable_nodes_all_count() {
    let mut drained = node("d", Some("p"), 8.0, 64.0);
    drained.availability = Availability::Drain;
    let mut down = node("x", Some("p"), 8.0, 64.0);
    down.state = NodeState::Down;
    let base = vec![
        node("a", Some("p"), 4.0, 8.0),
        node("b", Some("p"), 4.0, 2.0),
        drained,
        down,
    ];
    // Memory: b has 2 GiB, the task needs 3.
    let c = cluster(base.clone(), vec![task("t", "s", Some("a"), 0.1, 3.0)]);
    assert_eq!(relocate(&c, "a"), Err(vec!["t"]));
    // Pinned by hostname.
    let c = cluster(
        base.clone(),
        vec![constrained(
            task("t", "s", Some("a"), 0.0, 0.0),
            &["node.hostname==host-a"],
        )],
    );
    assert_eq!(relocate(&c, "a"), Err(vec!["t"]));
    // One replica per node: b already runs one.
    let c = cluster(
        base.clone(),
        vec![
            max_per_node(task("t1", "s", Some("a"), 0.0, 0.0), 1),
            max_per_node(task("t2", "s", Some("b"), 0.0, 0.0), 1),
        ],
    );
    assert_eq!(relocate(&c, "a"), Err(vec!["t1"]));
    // A global service's task is not moved: nothing to place.
    let mut g = task("g", "agent", Some("a"), 1.0, 1.0);
    g.global = true;
    let c = cluster(base, vec![g]);
    assert_eq!(relocate(&c, "a"), Ok(vec![]));
}

#[test]
fn first_fit_decreasing_packs_pending_tasks_on_new_nodes() {
    let template = node("", Some("p"), 2.0, 4.0);
    let pending = [
        task("a", "s", None, 1.0, 1.0),
        task("b", "s", None, 1.0, 1.0),
        task("c", "s", None, 1.5, 1.0),
        task("d", "s", None, 0.5, 1.0),
        task("huge", "s", None, 3.0, 1.0),
        constrained(task("other", "s", None, 0.1, 0.1), &["node.labels.pool==q"]),
    ];
    let refs: Vec<&TaskView> = pending.iter().collect();
    let (n, unfit) = nodes_needed(&template, &refs);
    // 1.5+0.5 | 1+1
    assert_eq!(n, 2);
    let unfit: Vec<&str> = unfit.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(unfit, ["huge", "other"]);
    let spread: Vec<TaskView> = (0..3)
        .map(|i| max_per_node(task(&format!("r{i}"), "s", None, 0.1, 0.1), 1))
        .collect();
    let refs: Vec<&TaskView> = spread.iter().collect();
    assert_eq!(nodes_needed(&template, &refs).0, 3);
}

fn arb_cluster() -> impl Strategy<Value = Cluster> {
    let nodes = prop::collection::vec((1u32..=8, 1u32..=8, any::<bool>()), 2..6);
    let tasks = prop::collection::vec(
        (0usize..6, 0u32..=4, 0u32..=4, 0usize..3, any::<bool>()),
        0..16,
    );
    (nodes, tasks).prop_map(|(nodes, tasks)| {
        let nodes: Vec<NodeView> = nodes
            .into_iter()
            .enumerate()
            .map(|(i, (cpu, mem, pool_a))| {
                node(
                    &format!("n{i}"),
                    Some(if pool_a { "a" } else { "b" }),
                    f64::from(cpu),
                    f64::from(mem),
                )
            })
            .collect();
        let count = nodes.len();
        let mut used: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
        let mut out = Vec::new();
        for (i, (n, cpu, mem, svc, pin)) in tasks.into_iter().enumerate() {
            let n = n % count;
            let (cpu, mem) = (f64::from(cpu) * 0.5, f64::from(mem) * 0.5);
            let u = used.entry(n).or_default();
            let cap = nodes[n].resources;
            // Only tasks that fit where Swarm put them.
            if ((u.0 + cpu) * 1e9) as i64 > cap.nano_cpus
                || ((u.1 + mem) * GIB as f64) as i64 > cap.memory_bytes
            {
                continue;
            }
            *u = (u.0 + cpu, u.1 + mem);
            let t = task(
                &format!("t{i}"),
                &format!("s{svc}"),
                Some(&format!("n{n}")),
                cpu,
                mem,
            );
            out.push(if pin {
                constrained(t, &["node.labels.pool==a"])
            } else {
                t
            });
        }
        cluster(nodes, out)
    })
}

proptest! {
    /// Any assignment `relocate` returns is one Swarm could make: every task on a schedulable node
    /// other than the one leaving, its constraints met, no node over its capacity.
    #[test]
    fn relocations_respect_capacity_and_constraints(c in arb_cluster(), leaving in 0usize..6) {
        let leaving = format!("n{}", leaving % c.nodes.len());
        if let Ok(moves) = relocate(&c, &leaving) {
            let mut load: BTreeMap<&str, Resources> = BTreeMap::new();
            for t in &c.tasks {
                if let Some(n) = t.node_id.as_deref().filter(|n| *n != leaving) {
                    let e = load.entry(n).or_default();
                    *e = e.plus(t.needs.reservations);
                }
            }
            let moved = c.tasks.iter().filter(|t| t.node_id.as_deref() == Some(leaving.as_str())).count();
            prop_assert_eq!(moves.len(), moved);
            for (tid, nid) in moves {
                prop_assert_ne!(nid, leaving.as_str());
                let t = c.tasks.iter().find(|t| t.id == tid).unwrap();
                let n = c.nodes.iter().find(|n| n.id == nid).unwrap();
                prop_assert!(t.needs.constraints.iter().all(|k| k.matches(n)));
                let e = load.entry(nid).or_default();
                *e = e.plus(t.needs.reservations);
                prop_assert!(n.resources.holds(*e), "{} over capacity", nid);
            }
        }
    }

    /// Enough new nodes for the pending tasks, never more than one per task, never fewer than the
    /// CPU they reserve divided by a node's CPUs.
    #[test]
    fn pending_estimates_are_bounded(cpus in prop::collection::vec(1u32..=8, 0..20)) {
        let template = node("", Some("p"), 4.0, 64.0);
        let tasks: Vec<TaskView> = cpus.iter().enumerate().map(|(i, c)| task(&format!("t{i}"), "s", None, f64::from(*c) * 0.5, 0.5)).collect();
        let refs: Vec<&TaskView> = tasks.iter().collect();
        let (n, unfit) = nodes_needed(&template, &refs);
        prop_assert!(unfit.is_empty());
        let total: f64 = cpus.iter().map(|c| f64::from(*c) * 0.5).sum();
        prop_assert!(n as usize <= tasks.len());
        prop_assert!(f64::from(n) >= (total / 4.0).ceil() - 1e-9);
    }
}
