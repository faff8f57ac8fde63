//! `plimsoll run` on Compose services: containers labelled with a Compose project and service scale up
//! under load with managed clones and back down; a `kill -9` in the middle of a scale-up, then a
//! restart, leaves no orphan or duplicate and reaches the target within the bounds.

mod support;

use std::time::Duration;

use support::{Container, Plimsoll, ProjectCleanup};

fn members(project: &str) -> Vec<(String, String, bool)> {
    support::compose_members(project)
}

fn running(project: &str) -> usize {
    members(project).iter().filter(|m| m.1 == "running").count()
}

/// One compose-labelled replica burning CPU while `<ctl>/on` exists, with a policy in labels.
fn service(project: &str, ctl: &std::path::Path) -> Container {
    #[rustfmt::skip]
    let labels = ["--label", "plimsoll.min=1", "--label", "plimsoll.max=3", "--label", "plimsoll.cpu=50"];
    support::compose_burner(project, "web", 1, "0.25", ctl, &labels)
}

#[test]
fn a_compose_service_scales_up_with_clones_and_back_down() {
    let project = support::unique("cmp");
    let _cleanup = ProjectCleanup(project.clone());
    let ctl = tempfile::tempdir().unwrap();
    let _web = service(&project, ctl.path());
    // A short scale-down window through a policy file (files win over labels).
    let policies = support::policy_dir(
        "service: web\nmin: 1\nmax: 3\nmetrics:\n  - name: cpu\n    target: { utilization: 50 }\nbehavior:\n  scale_down: { stabilization: 3s, select: max, policies: [ { percent: 100, period: 3s } ] }\n",
    );
    // Scoped to this test's project: the other test's labelled service is not ours to scale.
    let p = Plimsoll::run(
        policies.path(),
        &["--interval", "1s", "--project", &project],
    );
    p.wait_for("the compose target", Duration::from_secs(20), |p| {
        p.policies().iter().any(|e| {
            e["target"]["project"] == project.as_str()
                && e["origin"]["file_over_labels"].is_object()
        })
    });
    std::fs::write(ctl.path().join("on"), "").unwrap();
    p.wait_for("3 running replicas", Duration::from_secs(60), |_| {
        running(&project) == 3
    });
    let m = members(&project);
    assert_eq!(
        m.iter().filter(|x| x.2).count(),
        2,
        "two managed clones: {m:?}"
    );
    assert!(
        m.iter().any(|x| x.0 == format!("{project}-web-2"))
            && m.iter().any(|x| x.0 == format!("{project}-web-3")),
        "{m:?}"
    );
    std::fs::remove_file(ctl.path().join("on")).unwrap();
    p.wait_for(
        "back to the original replica",
        Duration::from_secs(60),
        |_| members(&project).len() == 1,
    );
    assert!(!members(&project)[0].2, "the unmanaged original stays");
}

#[test]
fn kill_9_in_the_middle_of_a_scale_up_leaves_no_orphans_or_duplicates() {
    let project = support::unique("cmpkill");
    let _cleanup = ProjectCleanup(project.clone());
    let ctl = tempfile::tempdir().unwrap();
    let _web = service(&project, ctl.path());
    let policies = tempfile::tempdir().unwrap();
    let args = ["--interval", "1s", "--project", &project];
    let mut p = Plimsoll::run(policies.path(), &args);
    p.wait_for("the compose target", Duration::from_secs(20), |p| {
        p.policies()
            .iter()
            .any(|e| e["target"]["project"] == project.as_str())
    });
    std::fs::write(ctl.path().join("on"), "").unwrap();
    // Kill as soon as the first clone exists: the actuator is between creating and starting clones.
    p.wait_for("the first managed clone", Duration::from_secs(30), |_| {
        members(&project).iter().any(|m| m.2)
    });
    p.child.kill().unwrap(); // SIGKILL
    p.child.wait().unwrap();
    let at_kill = members(&project);
    assert!(at_kill.len() <= 3, "bounds held at the kill: {at_kill:?}");

    let p = Plimsoll::run(policies.path(), &args);
    p.wait_for(
        "3 running replicas after the restart",
        Duration::from_secs(60),
        |_| running(&project) == 3,
    );
    // Give the restarted loop a few more ticks: it must not add or leave anything.
    std::thread::sleep(Duration::from_secs(3));
    let m = members(&project);
    assert_eq!(m.len(), 3, "no orphan or duplicate: {m:?}");
    assert!(
        m.iter().all(|x| x.1 == "running"),
        "nothing left created but not started: {m:?}"
    );
    let mut names: Vec<&str> = m.iter().map(|x| x.0.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3);
    println!("at the kill: {at_kill:?}; after the restart: {m:?}");
}
