//! Multi-node Swarm tests: extra worker nodes as `dockerd` daemons in namespaces of their own
//! (tests/support/swarm.rs and swarm-node.sh), joined to this engine's swarm.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::swarm::{node_state, wait_until, Nodes};
use support::{docker_ok, Service, IMAGE};

/// Node ID of every running task of `service`.
fn running_nodes(service: &str) -> Vec<String> {
    docker_ok(&[
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}|{{.ID}}",
        service,
    ])
    .lines()
    .filter(|l| l.starts_with("Running"))
    .map(|l| {
        let task = l.split('|').nth(1).unwrap();
        docker_ok(&["inspect", "--format", "{{.NodeID}}", task])
    })
    .collect()
}

#[test]
fn two_workers_join_run_a_spread_service_and_leave_nothing_behind() {
    let tag = support::unique("smoke");
    let nodes = Nodes::workers(&tag, 2, &[("pool", &tag)]);
    let ids: Vec<String> = nodes.nodes.iter().map(|n| n.id.clone()).collect();
    let hostnames: Vec<String> = nodes.nodes.iter().map(|n| n.hostname.clone()).collect();
    assert_ne!(hostnames[0], hostnames[1], "each node has its own hostname");
    for id in &ids {
        assert_eq!(
            node_state(id),
            Some(("ready".to_string(), "active".to_string()))
        );
    }
    let constraint = format!("node.labels.pool=={tag}");
    let svc = Service::create_placed(
        &tag,
        IMAGE,
        &["--replicas", "4", "--constraint", &constraint],
        &["sleep", "100000"],
    );
    wait_until("4 running tasks", Duration::from_secs(60), || {
        running_nodes(&svc.name).len() == 4
    });
    let mut per_node: BTreeMap<String, u32> = BTreeMap::new();
    for n in running_nodes(&svc.name) {
        *per_node.entry(n).or_default() += 1;
    }
    assert_eq!(
        per_node,
        ids.iter().map(|i| (i.clone(), 2)).collect(),
        "Swarm spreads the 4 tasks 2 and 2 over the pool's nodes"
    );
    drop(svc);

    // The other tests' services stay on this engine's node while extra nodes are in the swarm.
    let other = Service::create(&format!("{tag}-local"), 4, &[]);
    wait_until("4 running local tasks", Duration::from_secs(60), || {
        running_nodes(&other.name).len() == 4
    });
    assert!(
        running_nodes(&other.name)
            .iter()
            .all(|n| *n == support::local_node_id()),
        "support::Service tasks run on the local node only"
    );
    drop(other);

    let live_before = nodes.live().len();
    assert_eq!(live_before, 2);
    drop(nodes);
    for id in &ids {
        assert_eq!(node_state(id), None, "node {id} removed from the swarm");
    }
    let state = Nodes::new(&tag).live();
    assert!(
        state.is_empty(),
        "no node of {tag} left in the script's state: {state:?}"
    );
    let links = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    let netns = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    for h in &hostnames {
        // Node plmn-N-XXXX has the namespace plmn-N-XXXX and the veth vplmn-N-XXXX.
        assert!(
            !links.contains(&format!("v{h}")),
            "veth of {h} left behind:\n{links}"
        );
        assert!(
            !netns.contains(h.as_str()),
            "namespace {h} left behind:\n{netns}"
        );
    }
}
