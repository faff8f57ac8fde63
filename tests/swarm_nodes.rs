//! Multi-node Swarm tests: extra worker nodes as `dockerd` daemons in namespaces of their own
//! (tests/support/swarm.rs and swarm-node.sh), joined to this engine's swarm, and node autoscaling by
//! `plimsoll run` on them with the same script as its `exec` provider. Each test has a pool label of
//! its own; every node reports this machine's 2 CPUs, so tasks reserving 0.9 CPU fit two per node.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::swarm::{
    node_policy, node_records, node_state, pool_nodes, running_on, steps, tasks, wait_until, Nodes,
};
use support::{docker_ok, now_ms, Plimsoll, Service, IMAGE};

/// A service of `replicas` tasks reserving `cpu` CPUs each, constrained to the pool.
fn pool_service(name: &str, pool: &str, replicas: u32, cpu: &str) -> Service {
    let constraint = format!("node.labels.pool=={pool}");
    Service::create_placed(
        name,
        IMAGE,
        &[
            "--replicas",
            &replicas.to_string(),
            "--reserve-cpu",
            cpu,
            "--constraint",
            &constraint,
        ],
        &["sleep", "100000"],
    )
}

/// A policy folder with one node policy.
fn node_policy_dir(pool: &str, argv: &[String], rest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pool.yaml"), node_policy(pool, argv, rest)).unwrap();
    dir
}

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

/// A pool of one worker node scaled by `plimsoll run` (node policy settings `rest`), and a service of 3
/// tasks reserving 0.9 CPU in it: two fit on the node, the third is Pending for lack of room when this
/// returns.
struct PendingPool {
    pool: String,
    nodes: Nodes,
    policies: tempfile::TempDir,
    p: Plimsoll,
    svc: Service,
}

fn pool_with_a_pending_task(tag: &str, rest: &str) -> PendingPool {
    let pool = support::unique(tag);
    let nodes = Nodes::workers(&pool, 1, &[("pool", &pool)]);
    let policies = node_policy_dir(&pool, &nodes.provider_command(), rest);
    let p = Plimsoll::run(policies.path(), &["--interval", "1s"]);
    p.wait_for("the pool's first decision", Duration::from_secs(20), |p| {
        !node_records(p, &pool).is_empty()
    });
    let svc = pool_service(&format!("{pool}-svc"), &pool, 3, "0.9");
    wait_until(
        "a task pending for lack of room",
        Duration::from_secs(30),
        || {
            tasks(&svc.name)
                .iter()
                .any(|(s, _, e)| s == "Pending" && e.contains("insufficient resources"))
        },
    );
    PendingPool {
        pool,
        nodes,
        policies,
        p,
        svc,
    }
}

/// The whole cycle: tasks pending for lack of reservations -> a node added by the exec provider ->
/// every task runs; replicas go down -> a node is drained and removed while its task keeps running
/// on the other node.
#[test]
fn pending_tasks_get_a_node_and_an_unneeded_node_is_drained_and_removed() {
    let PendingPool {
        pool,
        nodes,
        policies,
        p,
        svc,
    } = pool_with_a_pending_task(
        "cycle",
        "min: 1\nmax: 3\ninterval: 1s\nscale_down: { below: 50, unneeded_for: 3s, delay_after_add: 0s, drain_timeout: 60s }\nremove_down_after: 1h",
    );
    let first = nodes.nodes[0].hostname.clone();
    p.wait_for(
        "3 running tasks on 2 nodes",
        Duration::from_secs(90),
        |_| running_on(&svc.name).len() == 3,
    );
    let records = node_records(&p, &pool);
    let add = records
        .iter()
        .find(|r| r["kind"] == "decision" && r["action"]["kind"] == "add")
        .unwrap_or_else(|| panic!("no add decision: {records:?}"));
    assert_eq!(add["reason"], "pending_tasks", "{add}");
    assert_eq!(
        add["action"]["count"], 1,
        "one node holds the third task: {add}"
    );
    assert_eq!(add["status"]["pending_tasks"], 1, "{add}");
    assert_eq!(steps(&p, &pool), ["add provisioned", "add joined"]);
    let joined = records.iter().find(|r| r["step"] == "joined").unwrap();
    let new_host = joined["nodes"][0]["hostname"].as_str().unwrap().to_string();
    let new_id = joined["nodes"][0]["id"].as_str().unwrap().to_string();
    assert!(
        running_on(&svc.name).contains(&new_host),
        "a task runs on the new node {new_host}: {:?}",
        tasks(&svc.name)
    );
    assert_eq!(
        pool_nodes(&pool).len(),
        2,
        "the new node carries the pool label"
    );
    let made: Vec<String> = nodes
        .live()
        .iter()
        .map(|n| n["hostname"].as_str().unwrap().to_string())
        .collect();
    assert!(made.contains(&new_host), "made by the provider: {made:?}");
    let wants = [
        format!("plimsoll_node_scale_events_total{{pool=\"{pool}\",direction=\"up\",reason=\"pending_tasks\"}} 1"),
        format!("plimsoll_nodes{{pool=\"{pool}\",state=\"ready\"}} 2"),
        format!("plimsoll_pending_tasks{{service=\"{pool}-svc\"}} 0"),
    ];
    // The pool's gauges are set by its next pass after the records: wait for them, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let (_, metrics) = p.get("/metrics").unwrap();
        if wants.iter().all(|w| metrics.contains(w.as_str()))
            || std::time::Instant::now() > deadline
        {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    for want in &wants {
        assert!(
            metrics.contains(want.as_str()),
            "{want} in /metrics, which has:\n{}",
            metrics
                .lines()
                .filter(|l| l.contains(pool.as_str()))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // The status page shows the pool as Chromium renders it: its nodes by state, and its last
    // decision and last change (the add, with its reason).
    let dom = support::chromium::rendered(p.addr);
    let section = dom
        .split("<section id=\"pools-section\"")
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .unwrap_or_else(|| panic!("no pool section:\n{dom}"));
    assert!(
        !section.starts_with(" hidden"),
        "pool section hidden:\n{dom}"
    );
    let row = section
        .split("<tr>")
        .find(|r| r.starts_with(&format!("<td>{pool}</td>")))
        .unwrap_or_else(|| panic!("no row of pool {pool}:\n{section}"));
    // pool, file, nodes, reserved, pending tasks, operation, last decision, last change.
    let cells: Vec<&str> = row
        .split("<td>")
        .skip(1)
        .map(|c| c.split("</td>").next().unwrap())
        .collect();
    assert_eq!(cells.len(), 8, "{row}");
    let file = policies.path().join("pool.yaml");
    assert_eq!(
        cells[1],
        format!("<span class=\"mono\">{}</span>", file.display())
    );
    assert!(
        cells[2].starts_with("2 ready (0 draining, 0 down), "),
        "{row}"
    );
    assert!(cells[7].starts_with("add 1: pending_tasks at "), "{row}");
    // The last decision is one of the pool's latest (the loop ticks every second).
    let recent: Vec<String> = node_records(&p, &pool)
        .iter()
        .rev()
        .filter(|r| r["kind"] == "decision")
        .take(10)
        .map(|r| format!(": {} at ", r["reason"].as_str().unwrap()))
        .collect();
    assert!(
        recent.iter().any(|r| cells[6].contains(r.as_str())),
        "last decision {:?} is none of {recent:?}",
        cells[6]
    );
    support::chromium::screenshot(p.addr, "status_page_pool.png");

    // Replicas go down (docker service scale stands in for the service autoscaler here): Swarm takes
    // the task from the node with two, leaving one per node, both under 50% reserved. One node is
    // drained; its task starts on the other one; the provider deletes the node and it leaves the swarm.
    let since = now_ms();
    docker_ok(&["service", "scale", "--detach", &format!("{}=2", svc.name)]);
    p.wait_for("a node drained and removed", Duration::from_secs(90), |p| {
        steps(p, &pool).ends_with(&["remove drained".to_string(), "remove removed".to_string()])
    });
    let removal = node_records(&p, &pool)
        .into_iter()
        .find(|r| {
            r["kind"] == "decision"
                && r["action"]["kind"] == "remove"
                && r["at"].as_i64() >= Some(since)
        })
        .unwrap();
    assert_eq!(removal["reason"], "unneeded", "{removal}");
    assert_eq!(removal["action"]["drain"], true, "{removal}");
    let gone = removal["action"]["hostname"].as_str().unwrap().to_string();
    let gone_id = removal["action"]["node"].as_str().unwrap().to_string();
    let kept = if gone == first {
        new_host.clone()
    } else {
        first.clone()
    };
    wait_until(
        "both tasks running on the remaining node",
        Duration::from_secs(30),
        || running_on(&svc.name) == [kept.clone(), kept.clone()],
    );
    assert_eq!(node_state(&gone_id), None, "removed from the swarm");
    assert!(
        nodes.live().iter().all(|n| n["hostname"] != gone.as_str()),
        "deleted by the provider"
    );
    assert_eq!(pool_nodes(&pool).len(), 1);
    // Back at min: no further removal.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(pool_nodes(&pool).len(), 1);
    assert_ne!(gone_id, "");
    assert!(new_id != gone_id || gone == new_host);
}

/// A node under the threshold whose task fits on no other node (the only other one has 0.5 CPU left)
/// is never drained (kubernetes/autoscaler#4125).
#[test]
fn a_node_whose_tasks_fit_nowhere_else_is_never_drained() {
    let pool = support::unique("nofit");
    let nodes = Nodes::workers(&pool, 2, &[("pool", &pool)]);
    let full = pool_service(&format!("{pool}-full"), &pool, 1, "1.5");
    wait_until("the 1.5-CPU task running", Duration::from_secs(30), || {
        running_on(&full.name).len() == 1
    });
    let big = pool_service(&format!("{pool}-big"), &pool, 1, "0.9");
    wait_until("the 0.9-CPU task running", Duration::from_secs(30), || {
        running_on(&big.name).len() == 1
    });
    let lonely = running_on(&big.name)[0].clone();
    assert_ne!(
        lonely,
        running_on(&full.name)[0],
        "0.9 does not fit next to 1.5"
    );
    let lonely_id = nodes
        .nodes
        .iter()
        .find(|n| n.hostname == lonely)
        .unwrap()
        .id
        .clone();
    let policies = node_policy_dir(
        &pool,
        &nodes.provider_command(),
        "min: 0\nmax: 3\ninterval: 1s\nscale_down: { below: 50, unneeded_for: 2s, delay_after_add: 0s }",
    );
    let p = Plimsoll::run(policies.path(), &["--interval", "1s"]);
    p.wait_for("a tasks_fit_nowhere hold", Duration::from_secs(30), |p| {
        node_records(p, &pool)
            .iter()
            .any(|r| r["reason"] == "tasks_fit_nowhere")
    });
    // Keep watching: the node stays active, nothing is drained or deleted.
    std::thread::sleep(Duration::from_secs(8));
    let records = node_records(&p, &pool);
    let hold = records
        .iter()
        .rev()
        .find(|r| r["reason"] == "tasks_fit_nowhere")
        .unwrap();
    assert!(hold["status"]["blocked"][&lonely_id].is_array(), "{hold}");
    assert!(steps(&p, &pool).is_empty(), "no operation: {records:?}");
    assert_eq!(
        node_state(&lonely_id),
        Some(("ready".into(), "active".into()))
    );
    assert_eq!(nodes.live().len(), 2);
    assert_eq!(running_on(&big.name), [lonely]);
}

/// A worker killed abruptly (its daemon and every container on it, at once): the node goes down, its
/// task starts on the other node, a node is added to get back to min, and the dead one is deleted.
#[test]
fn a_killed_worker_is_replaced_and_its_tasks_run_elsewhere() {
    let pool = support::unique("killed");
    let nodes = Nodes::workers(&pool, 2, &[("pool", &pool)]);
    let policies = node_policy_dir(
        &pool,
        &nodes.provider_command(),
        "min: 2\nmax: 3\ninterval: 1s\nscale_down: { enabled: false }\nremove_down_after: 3s",
    );
    let svc = pool_service(&format!("{pool}-svc"), &pool, 2, "0.9");
    wait_until("2 running tasks", Duration::from_secs(30), || {
        running_on(&svc.name).len() == 2
    });
    let p = Plimsoll::run(policies.path(), &["--interval", "1s"]);
    p.wait_for("the pool steady", Duration::from_secs(20), |p| {
        node_records(p, &pool)
            .iter()
            .any(|r| r["reason"] == "within_target")
    });
    let victim = running_on(&svc.name)[0].clone();
    let victim_id = nodes
        .nodes
        .iter()
        .find(|n| n.hostname == victim)
        .unwrap()
        .id
        .clone();
    let killed = Instant::now();
    nodes.kill(&victim);
    p.wait_for("the node down", Duration::from_secs(60), |_| {
        node_state(&victim_id).is_none_or(|(s, _)| s == "down")
    });
    let down_after = killed.elapsed();
    p.wait_for(
        "the pool back at 2 ready nodes, the dead one removed",
        Duration::from_secs(90),
        |_| {
            let ready = pool_nodes(&pool)
                .iter()
                .filter(|(_, s)| s == "ready")
                .count();
            ready == 2 && node_state(&victim_id).is_none()
        },
    );
    wait_until(
        "2 running tasks, none on the dead node",
        Duration::from_secs(60),
        || {
            let on = running_on(&svc.name);
            on.len() == 2 && !on.contains(&victim)
        },
    );
    let reasons: Vec<String> = node_records(&p, &pool)
        .iter()
        .filter(|r| r["kind"] == "decision" && r["action"]["kind"] != "none")
        .map(|r| r["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        reasons,
        ["below_min", "node_down"],
        "added first, then the dead node deleted"
    );
    assert!(
        nodes
            .live()
            .iter()
            .all(|n| n["hostname"] != victim.as_str()),
        "the dead node's namespaces deleted by the provider"
    );
    println!(
        "killed worker: down after {down_after:?}, pool back at min after {:?}",
        killed.elapsed()
    );
}

/// A provider that fails and one that hangs hold their own pools; the service loop goes on scaling
/// (a CPU-loaded service on this engine's node goes from 1 to 3 replicas meanwhile).
#[test]
fn failing_and_hanging_providers_hold_their_pools_while_services_scale() {
    let failing = support::unique("failing");
    let hanging = format!("{failing}-hang");
    let nodes = Nodes::workers(&failing, 1, &[("pool", &failing)]);
    let second = Nodes::workers(&hanging, 1, &[("pool", &hanging)]);
    let dir = tempfile::tempdir().unwrap();
    let fail_cmd: Vec<String> = [
        "sh",
        "-c",
        "echo 'InsufficientCapacity: no machines' >&2; exit 1",
        "--",
    ]
    .map(String::from)
    .to_vec();
    let hang_cmd: Vec<String> = ["sh", "-c", "sleep 600", "--"].map(String::from).to_vec();
    std::fs::write(
        dir.path().join("failing.yaml"),
        node_policy(&failing, &fail_cmd, "min: 1\nmax: 3\ninterval: 1s"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hanging.yaml"),
        node_policy(&hanging, &hang_cmd, "min: 1\nmax: 3\ninterval: 1s").replacen(
            "timeout: 60s",
            "timeout: 4s",
            1,
        ),
    )
    .unwrap();
    let service = support::unique("busy");
    std::fs::write(
        dir.path().join("service.yaml"),
        format!("service: {service}\nmin: 1\nmax: 3\nmetrics:\n  - name: cpu\n    target: {{ utilization: 50 }}\n"),
    )
    .unwrap();
    // Both pools full: a task of each waits for a node that will not come.
    let stuck_a = pool_service(&format!("{failing}-svc"), &failing, 3, "0.9");
    let stuck_b = pool_service(&format!("{hanging}-svc"), &hanging, 3, "0.9");
    let p = Plimsoll::run(dir.path(), &["--interval", "1s"]);
    p.wait_for(
        "the hanging provider's create running",
        Duration::from_secs(30),
        |p| {
            p.json("/api/v1/pools")
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["pool"] == hanging.as_str() && e["operation"]["operation"] == "add")
        },
    );
    let burner = support::BurnerService::create(&service, "0.25", true);
    let load_on = now_ms();
    p.wait_for(
        "the loaded service scaled to 3",
        Duration::from_secs(60),
        |_| support::replicas(&service) == 3,
    );
    p.wait_for(
        "the failing pool backing off",
        Duration::from_secs(60),
        |p| {
            node_records(p, &failing)
                .iter()
                .any(|r| r["reason"] == "provider_backoff")
        },
    );
    p.wait_for(
        "the hanging provider timed out",
        Duration::from_secs(60),
        |p| {
            node_records(p, &hanging).iter().any(|r| {
                r["step"] == "failed"
                    && r["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("no answer within"))
            })
        },
    );
    let failed = node_records(&p, &failing)
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
    // The service loop decided every second all along.
    let decisions = p.decisions(&service);
    let times: Vec<i64> = decisions
        .iter()
        .filter_map(|r| r["at"].as_i64())
        .filter(|t| *t >= load_on)
        .collect();
    let longest_gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(
        longest_gap < 3000,
        "service decisions {longest_gap} ms apart while providers failed and hung"
    );
    // The hanging pool decided on too, holding while its operation ran.
    assert!(node_records(&p, &hanging)
        .iter()
        .any(|r| r["reason"] == "operation_in_progress"));
    assert_eq!(
        nodes.live().len(),
        1,
        "no node was made for the failing pool"
    );
    assert_eq!(second.live().len(), 1);
    assert!(tasks(&stuck_a.name).iter().any(|(s, _, _)| s == "Pending"));
    assert!(tasks(&stuck_b.name).iter().any(|(s, _, _)| s == "Pending"));
    // Node policies and the service policy share the folder; neither loader calls the other's invalid.
    assert!(!p.logs().contains("invalid policy file"), "{}", p.logs());
    drop(burner);
}

/// `docker inspect` time fields of task `id` (Go template paths, e.g. `.CreatedAt`), in ms since the epoch.
fn task_time_ms(id: &str, field: &str) -> f64 {
    let format = format!("{{{{{field}.UnixNano}}}}");
    docker_ok(&["inspect", "--format", &format, id])
        .parse::<f64>()
        .unwrap()
        / 1e6
}

/// The figure of BENCHMARKS.md "Node scale-up": from a task pending for lack of room to it running
/// on a node the exec provider made, split at the timestamps the run already has (the task's own,
/// the pool's decision and operation records, the script's phase marks). Prints; asserts nothing about
/// time. Run on its own:
/// `cargo test -p plimsoll-autoscaler --test swarm_nodes -- --ignored --nocapture --test-threads=1 scale_up_timeline`
#[test]
#[ignore = "a measurement, run explicitly (BENCHMARKS.md)"]
fn scale_up_timeline() {
    let load = |when: &str| {
        let l = std::fs::read_to_string("/proc/loadavg").unwrap();
        println!("load average {when}: {}", l.trim());
    };
    load("before");
    // Every field bound: the policy folder must outlive `plimsoll run`.
    let PendingPool {
        pool,
        nodes,
        policies: _policies,
        p,
        svc,
    } = pool_with_a_pending_task(
        "timeline",
        "min: 1\nmax: 3\ninterval: 1s\nscale_down: { enabled: false }",
    );
    p.wait_for("3 running tasks", Duration::from_secs(90), |_| {
        running_on(&svc.name).len() == 3
    });
    load("after");
    let records = node_records(&p, &pool);
    let find = |what: &str, f: &dyn Fn(&serde_json::Value) -> bool| {
        records
            .iter()
            .find(|r| f(r))
            .unwrap_or_else(|| panic!("no {what}: {records:?}"))
            .clone()
    };
    let add = find("add decision", &|r| {
        r["kind"] == "decision" && r["action"]["kind"] == "add"
    });
    let provisioned = find("provisioned", &|r| r["step"] == "provisioned");
    let joined = find("joined", &|r| r["step"] == "joined");
    let new_host = joined["nodes"][0]["hostname"].as_str().unwrap().to_string();
    // The task that was pending: Swarm moves no running task, so it is the one on the new node.
    let task = docker_ok(&[
        "service",
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--filter",
        &format!("node={new_host}"),
        &svc.name,
    ]);
    assert_eq!(task.lines().count(), 1, "one task on {new_host}: {task}");
    let ms = |v: &serde_json::Value| v.as_f64().unwrap();
    let created = task_time_ms(&task, ".CreatedAt");
    let running = task_time_ms(&task, ".Status.Timestamp");
    let decided = ms(&add["at"]);
    let provider_ms = ms(&provisioned["provider_ms"]);
    let returned = ms(&provisioned["at"]);
    let called = returned - provider_ms;
    let marks: BTreeMap<String, f64> = nodes.create_marks(&new_host).into_iter().collect();
    let mark = |m: &str| marks[m];
    let (_, metrics) = p.get("/metrics").unwrap();
    let labels = [("pool", pool.as_str()), ("call", "create")];
    let metric_sum = support::metric_value(&metrics, "plimsoll_node_provider_seconds_sum", &labels);
    let total = running - created;
    let span = |name: &str, from: f64, to: f64| {
        println!(
            "  {name:<52} {:>7.0} ms {:>5.1}%",
            to - from,
            100.0 * (to - from) / total
        )
    };
    println!("scale-up timeline of {new_host} (task {task}):");
    span(
        "pending -> add decided (loop's pending detection)",
        created,
        decided,
    );
    span(
        "add decided -> provider called (join token)",
        decided,
        called,
    );
    span("provider create, total", called, returned);
    span(
        "   script start (bash, process spawn)",
        called,
        mark("start"),
    );
    span(
        "   namespaces, veth, iptables",
        mark("start"),
        mark("namespaces"),
    );
    span(
        "   dockerd start until its API answers",
        mark("namespaces"),
        mark("dockerd"),
    );
    span(
        "   image load (docker save | load)",
        mark("dockerd"),
        mark("images"),
    );
    span("   docker swarm join", mark("images"), mark("swarm_join"));
    span("   script end, JSON read", mark("swarm_join"), returned);
    span(
        "provider returned -> node Ready and labelled",
        returned,
        ms(&joined["at"]),
    );
    span(
        "joined -> task running on the new node",
        ms(&joined["at"]),
        running,
    );
    span("total: pending -> running", created, running);
    println!(
        "  provider share {:.1}%; plimsoll_node_provider_seconds_sum{{call=\"create\"}} {metric_sum:?} s",
        100.0 * provider_ms / total
    );
}
