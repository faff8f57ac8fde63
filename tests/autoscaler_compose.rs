//! `plimsoll run` on Compose services: containers labelled with a Compose project and service scale up
//! under load with managed clones and back down; a `kill -9` in the middle of a scale-up, then a
//! restart, leaves no orphan or duplicate and reaches the target within the bounds. A service whose
//! replicas all fail their health check under load still scales up (the HPA's issue #64088).

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
    let labels = ["--label", "plimsoll.min=1", "--label", "plimsoll.max=3", "--label", "plimsoll.cpu=20"];
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
        "service: web\nmin: 1\nmax: 3\nmetrics:\n  - name: cpu\n    target: { utilization: 20 }\nbehavior:\n  scale_down: { stabilization: 3s, select: max, policies: [ { percent: 100, period: 3s } ] }\n",
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

#[test]
fn two_projects_with_a_service_web_are_scaled_and_paused_independently() {
    let (a, b) = (support::unique("ida"), support::unique("idb"));
    let (_clean_a, _clean_b) = (ProjectCleanup(a.clone()), ProjectCleanup(b.clone()));
    let (ctl_a, ctl_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _web_a = support::compose_burner(&a, "web", 1, "0.25", ctl_a.path(), &[]);
    let _web_b = support::compose_burner(&b, "web", 1, "0.25", ctl_b.path(), &[]);
    let policies = tempfile::tempdir().unwrap();
    let policy = |file: &str, head: &str, max: u32| {
        // A low target: the burners reach it even when other builds share the CPUs.
        let text = format!("service: web\n{head}min: 1\nmax: {max}\nmetrics:\n  - name: cpu\n    target: {{ utilization: 20 }}\n");
        std::fs::write(policies.path().join(file), text).unwrap();
    };
    policy("a.yaml", &format!("project: {a}\n"), 2);
    policy("b.yaml", &format!("project: {b}\n"), 3);
    // Loses to a.yaml (same precision, later path), and says so.
    policy("z-a.yaml", &format!("kind: compose\nproject: {a}\n"), 3);
    // Means both: applied to neither.
    policy("web.yaml", "", 3);
    let token = policies.path().join("token");
    std::fs::write(&token, "s3cret").unwrap();
    #[rustfmt::skip]
    let p = Plimsoll::run(policies.path(), &["--interval", "1s", "--project", &a, "--project", &b,
        "--api-token-file", token.to_str().unwrap()]);
    let (id_a, id_b) = (format!("compose/{a}/web"), format!("compose/{b}/web"));
    p.wait_for("both targets", Duration::from_secs(20), |p| {
        let ids: Vec<String> = p
            .policies()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        ids == [id_a.clone(), id_b.clone()]
    });
    let entries = p.policies();
    assert_eq!(
        (
            entries[0]["policy"]["max"].clone(),
            entries[1]["policy"]["max"].clone()
        ),
        (2.into(), 3.into())
    );
    assert_eq!(
        entries[0]["shadowed"][0].as_str().unwrap(),
        policies.path().join("z-a.yaml").to_str().unwrap()
    );
    let files = p.json("/api/v1/policy-files");
    let status = |name: &str| {
        let path = policies.path().join(name).display().to_string();
        files
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path.as_str())
            .unwrap()
            .clone()
    };
    assert_eq!(status("web.yaml")["status"], "ambiguous", "{files}");
    assert_eq!(
        status("web.yaml")["candidates"],
        serde_json::json!([id_a, id_b])
    );
    assert_eq!(status("z-a.yaml")["status"], "shadowed", "{files}");
    assert_eq!(status("a.yaml")["target"], id_a.as_str());

    let post = |path: &str| {
        support::http_request(
            p.addr,
            "POST",
            path,
            &[("Authorization", "Bearer s3cret")],
            "",
        )
        .unwrap()
    };
    let (code, body) = post("/api/v1/policies/web/pause");
    assert_eq!(code, 409, "a bare name is ambiguous here: {body}");
    assert!(body.contains(&id_a) && body.contains(&id_b), "{body}");
    let (code, body) = post(&format!("/api/v1/targets/compose/{a}/web/pause"));
    assert_eq!(code, 200, "{body}");

    let load = support::now_ms();
    std::fs::write(ctl_a.path().join("on"), "").unwrap();
    std::fs::write(ctl_b.path().join("on"), "").unwrap();
    p.wait_for("b at its max of 3", Duration::from_secs(60), |_| {
        running(&b) == 3
    });
    let decisions = |id: &str| {
        p.json(&format!("/api/v1/decisions?target={id}"))
            .as_array()
            .unwrap()
            .clone()
    };
    let held: Vec<serde_json::Value> = decisions(&id_a)
        .into_iter()
        .filter(|r| r["at"].as_i64() >= Some(load))
        .collect();
    assert!(
        !held.is_empty()
            && held
                .iter()
                .all(|r| r["reason"] == "paused" && r["action"] == "none"),
        "{held:?}"
    );
    assert_eq!(members(&a).len(), 1, "a is paused: {:?}", members(&a));
    let (_, metrics) = p.get("/metrics").unwrap();
    for (id, n) in [(&id_a, 1), (&id_b, 3)] {
        let line = format!("plimsoll_desired_replicas{{service=\"web\",target=\"{id}\"}} {n}");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }

    let (code, _) = post(&format!("/api/v1/targets/compose/{a}/web/resume"));
    assert_eq!(code, 200);
    p.wait_for("a at its max of 2", Duration::from_secs(60), |_| {
        running(&a) == 2
    });
    assert_eq!(running(&b), 3, "b is left as it was");
    let a_scaled: Vec<serde_json::Value> = decisions(&id_a)
        .into_iter()
        .filter(|r| r["action"] == "scaled")
        .collect();
    assert!(
        a_scaled
            .iter()
            .all(|r| r["target"] == id_a.as_str() && r["desired"].as_u64() <= Some(2)),
        "{a_scaled:?}"
    );

    // b is removed: every series of its target goes from /metrics, a's stay.
    drop(_clean_b);
    let b_label = format!("target=\"{id_b}\"");
    p.wait_for("b's series gone", Duration::from_secs(30), |p| {
        !p.get("/metrics").unwrap().1.contains(&b_label)
    });
    let (_, metrics) = p.get("/metrics").unwrap();
    for family in [
        "plimsoll_desired_replicas",
        "plimsoll_current_replicas",
        "plimsoll_policy_min_replicas",
        "plimsoll_policy_max_replicas",
        "plimsoll_policy_metric_target",
        "plimsoll_decisions_total",
    ] {
        let line = format!("{family}{{service=\"web\",target=\"{id_a}\"");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
}

#[test]
fn replicas_that_all_turn_unhealthy_under_load_are_not_stuck() {
    // Each replica burns CPU while <ctl>/on exists and then fails its health check, as a saturated app
    // misses its health endpoint. Docker runs a `--health-cmd` with /bin/sh, which the FROM-scratch
    // image lacks: the script links it to busybox first (the clones run the same command).
    let script = format!("ln -sf /bin/busybox /bin/sh; {}", support::BURNER);
    #[rustfmt::skip]
    let health = ["--health-cmd", "test ! -e /ctl/on", "--health-interval", "1s", "--health-retries", "1",
        "--health-timeout", "5s"];
    let (busy, broken) = (support::unique("unhb"), support::unique("unhx"));
    let (_clean_busy, _clean_broken) =
        (ProjectCleanup(busy.clone()), ProjectCleanup(broken.clone()));
    let (ctl_busy, ctl_broken) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _busy = support::compose_script(&busy, "web", 1, "0.25", ctl_busy.path(), &health, &script);
    // The control: failing its check while idle (a broken dependency, not load): never scaled.
    #[rustfmt::skip]
    let failing = ["--health-cmd", "false", "--health-interval", "1s", "--health-retries", "1"];
    let _broken = support::compose_script(
        &broken,
        "web",
        1,
        "0.25",
        ctl_broken.path(),
        &failing,
        &script,
    );
    let policies = tempfile::tempdir().unwrap();
    for project in [&busy, &broken] {
        // A low target: the burners reach it even when other builds share the CPUs.
        let text = format!("service: web\nproject: {project}\nmin: 1\nmax: 3\nmetrics:\n  - name: cpu\n    target: {{ utilization: 20 }}\nbehavior:\n  scale_down: {{ stabilization: 3s, select: max, policies: [ {{ percent: 100, period: 3s }} ] }}\n");
        std::fs::write(policies.path().join(format!("{project}.yaml")), text).unwrap();
    }
    #[rustfmt::skip]
    let p = Plimsoll::run(policies.path(), &["--interval", "1s", "--project", &busy, "--project", &broken]);
    let (id_busy, id_broken) = (
        format!("compose/{busy}/web"),
        format!("compose/{broken}/web"),
    );
    p.wait_for("both targets", Duration::from_secs(20), |p| {
        p.policies().len() == 2
    });
    let decisions = |id: &str| {
        p.json(&format!("/api/v1/decisions?target={id}"))
            .as_array()
            .unwrap()
            .clone()
    };
    p.wait_for(
        "the broken replica decided on",
        Duration::from_secs(30),
        |_| {
            decisions(&id_broken)
                .iter()
                .any(|r| r["reason"] == "missing_data_hold")
        },
    );
    std::fs::write(ctl_busy.path().join("on"), "").unwrap();
    p.wait_for("3 running replicas", Duration::from_secs(90), |_| {
        running(&busy) == 3
    });
    let scaled: Vec<serde_json::Value> = decisions(&id_busy)
        .into_iter()
        .filter(|r| r["action"] == "scaled")
        .collect();
    support::assert_scaled_up_as_all_replicas_unready(&scaled, 3);
    // The control never moved, and said why.
    assert_eq!(members(&broken).len(), 1);
    let held = decisions(&id_broken);
    assert!(
        held.iter()
            .all(|r| r["action"] == "none" && r["reason"] == "missing_data_hold"),
        "{held:?}"
    );
    // Load off: the replicas pass their checks again, idle, and the service goes back to one.
    std::fs::remove_file(ctl_busy.path().join("on")).unwrap();
    p.wait_for("back to one replica", Duration::from_secs(90), |_| {
        members(&busy).len() == 1
    });
}
