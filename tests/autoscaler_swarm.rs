//! `plimsoll run` against a real single-node Swarm: a service under CPU load scales up within seconds
//! and back down when the load stops; the API explains every step; the Docker engine going away makes
//! the loop hold with a reason and recover by itself. Tasks that all fail their health check under load
//! still scale up (the HPA's issue #64088), and tasks failing it while idle do not.

mod support;

use std::time::{Duration, Instant};

use support::{cpu_policy_dir, now_ms, replicas, running_tasks, BurnerService, Plimsoll, Service};

#[test]
fn a_swarm_service_scales_up_under_load_and_down_after() {
    let service = support::unique("swarmload");
    let policies = cpu_policy_dir(&service);
    let svc = BurnerService::create(&service, "0.25", false);
    let p = Plimsoll::run(
        policies.path(),
        &["--interval", "1s", "--log-format", "json"],
    );
    p.wait_for_policy(&service, Duration::from_secs(20));
    p.wait_for("an idle decision", Duration::from_secs(20), |p| {
        p.decisions(&service)
            .iter()
            .any(|r| r["reason_kind"] == "decided")
    });
    assert_eq!(replicas(&service), 1);

    let load_start = now_ms();
    let t0 = Instant::now();
    svc.set_load(true);
    p.wait_for("a scale-up", Duration::from_secs(30), |p| {
        p.first_scale(&service, true, load_start).is_some()
    });
    let up = p.first_scale(&service, true, load_start).unwrap();
    let reaction = up["at"].as_i64().unwrap() - load_start;
    p.wait_for("3 running tasks", Duration::from_secs(60), |_| {
        replicas(&service) == 3 && running_tasks(&service) == 3
    });
    let converged = t0.elapsed();
    println!("swarm scale-up: reaction {reaction} ms (load start -> scale call), converged to 3 in {} ms; first step {} -> {} ({})", converged.as_millis(), up["current"], up["desired"], up["reason"]);
    assert!(up["metrics"][0]["name"] == "cpu", "{up}");

    let stop = now_ms();
    svc.set_load(false);
    p.wait_for("back to 1 replica", Duration::from_secs(60), |_| {
        replicas(&service) == 1
    });
    let down = p
        .first_scale(&service, false, stop)
        .expect("a recorded scale-down");
    println!(
        "swarm scale-down: {} ms after the load stopped ({} -> {})",
        down["at"].as_i64().unwrap() - stop,
        down["current"],
        down["desired"]
    );
    // Every action is a JSON log line with the target, inputs, desired count and reason.
    let logs = p.logs();
    let line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["action"] == "scaled" && l["fields"]["reason"] == "scale_up")
        .unwrap_or_else(|| panic!("no JSON line for the scale-up:\n{logs}"));
    assert_eq!(
        line["fields"]["scale_target"],
        format!("swarm/{service}"),
        "{line}"
    );
    assert!(
        line["fields"]["inputs"]
            .as_str()
            .unwrap()
            .contains("\"name\":\"cpu\""),
        "{line}"
    );
    assert!(
        line["fields"]["desired"].as_u64() > line["fields"]["current"].as_u64(),
        "{line}"
    );
    let (_, metrics) = p.get("/metrics").unwrap();
    assert!(metrics.contains(&format!("plimsoll_scale_events_total{{service=\"{service}\",target=\"swarm/{service}\",direction=\"up\",reason=\"scale_up\"}}")), "scale events counted");
    assert!(metrics.contains(&format!(
        "plimsoll_desired_replicas{{service=\"{service}\",target=\"swarm/{service}\"}} 1"
    )));
}

#[test]
fn dry_run_decides_but_never_acts() {
    let service = support::unique("swarmdry");
    let policies = cpu_policy_dir(&service);
    let _svc = BurnerService::create(&service, "0.1", true);
    let p = Plimsoll::run(policies.path(), &["--interval", "1s", "--dry-run"]);
    p.wait_for("a dry-run scale-up", Duration::from_secs(30), |p| {
        p.decisions(&service)
            .iter()
            .any(|r| r["action"] == "dry_run" && r["desired"].as_u64() > Some(1))
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(replicas(&service), 1, "dry run never scales");
}

#[test]
fn pause_and_resume_need_the_bearer_token() {
    let service = support::unique("swarmpause");
    let policies = cpu_policy_dir(&service);
    let _svc = Service::create(&service, 1, &["--limit-cpu", "0.1"]);
    let token_file = policies.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let p = Plimsoll::run(
        policies.path(),
        &["--api-token-file", token_file.to_str().unwrap()],
    );
    p.wait_for_policy(&service, Duration::from_secs(20));
    let path = format!("/api/v1/policies/{service}/pause");
    let post = |path: &str, auth: Option<&str>| {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
        support::http_request(p.addr, "POST", path, &headers, "")
            .unwrap()
            .0
    };
    assert_eq!(post(&path, None), 401);
    assert_eq!(post(&path, Some("Bearer wrong")), 401);
    assert_eq!(post(&path, Some("Bearer s3cret")), 200);
    let paused = |p: &Plimsoll| {
        p.policies()
            .iter()
            .find(|e| e["policy"]["service"] == service.as_str())
            .unwrap()["paused"]
            .clone()
    };
    assert_eq!(paused(&p), true);
    p.wait_for("a paused decision", Duration::from_secs(10), |p| {
        p.decisions(&service)
            .iter()
            .any(|r| r["reason"] == "paused")
    });
    assert_eq!(
        post(
            &format!("/api/v1/policies/{service}/resume"),
            Some("Bearer s3cret")
        ),
        200
    );
    assert_eq!(paused(&p), false);
    assert_eq!(
        post(
            "/api/v1/policies/no-such-service/pause",
            Some("Bearer s3cret")
        ),
        404
    );

    // Without a configured token the endpoints are disabled.
    let open = Plimsoll::run(policies.path(), &[]);
    let code = support::http_request(
        open.addr,
        "POST",
        &path,
        &[("Authorization", "Bearer s3cret")],
        "",
    )
    .unwrap()
    .0;
    assert_eq!(code, 403);
}

#[test]
fn an_unreachable_engine_holds_with_a_reason_and_recovers() {
    let service = support::unique("swarmcut");
    let policies = cpu_policy_dir(&service);
    let _svc = Service::create(&service, 1, &["--limit-cpu", "0.1"]);
    let proxy = support::DockerProxy::start();
    let p = Plimsoll::run(
        policies.path(),
        &["--docker-socket", proxy.socket.to_str().unwrap()],
    );
    let decided_since = |p: &Plimsoll, since: i64, reason: &str| {
        p.decisions(&service)
            .iter()
            .any(|r| r["at"].as_i64() >= Some(since) && r["reason"] == reason)
    };
    p.wait_for(
        "a decision through the proxy",
        Duration::from_secs(20),
        |p| {
            decided_since(p, 0, "within_tolerance")
                || decided_since(p, 0, "steady")
                || decided_since(p, 0, "clamped_to_min")
        },
    );
    let cut = now_ms();
    proxy.set_up(false);
    p.wait_for("a docker_error hold", Duration::from_secs(20), |p| {
        decided_since(p, cut, "docker_error")
    });
    let back = now_ms();
    proxy.set_up(true);
    p.wait_for(
        "decisions again after the engine is back",
        Duration::from_secs(90),
        |p| {
            p.decisions(&service)
                .iter()
                .any(|r| r["at"].as_i64() >= Some(back) && r["reason_kind"] == "decided")
        },
    );
    let (code, _) = p.get("/healthz").unwrap();
    assert_eq!(code, 200);
}

#[test]
fn a_rolling_update_in_progress_holds_scaling() {
    let service = support::unique("swarmroll");
    let policies = cpu_policy_dir(&service);
    let _svc = Service::create(&service, 2, &["--limit-cpu", "0.1"]);
    let p = Plimsoll::run(policies.path(), &["--interval", "1s"]);
    p.wait_for_policy(&service, Duration::from_secs(20));
    // One task at a time with a long delay between them: the update stays in progress for a while.
    let since = now_ms();
    support::docker_ok(&[
        "service",
        "update",
        "--detach",
        "--update-parallelism",
        "1",
        "--update-delay",
        "30s",
        "--env-add",
        "ROLL=1",
        &service,
    ]);
    p.wait_for("an update_in_progress hold", Duration::from_secs(20), |p| {
        p.decisions(&service).iter().any(|r| {
            r["at"].as_i64() >= Some(since)
                && r["reason"] == "update_in_progress"
                && r["action"] == "none"
        })
    });
    // Idle at 2 replicas against min 1 the service would scale down, but not while updating.
    assert_eq!(replicas(&service), 2);
}

#[tokio::test]
async fn a_task_whose_health_check_has_not_passed_is_starting_not_running() {
    use plimsoll_autoscaler::control::{Actuator, DockerActuator, Health, TargetId};
    // Docker runs the check with /bin/sh -c; the image has busybox alone, so it gets one as sh.
    let sh = "type=bind,src=/bin/busybox,dst=/bin/sh,readonly";
    let (waiting, fine) = (support::unique("swarmhcwait"), support::unique("swarmhcok"));
    // A check that has not passed yet and will not run for a minute: the task stays starting.
    #[rustfmt::skip]
    let _waiting = Service::create(&waiting, 1, &["--mount", sh, "--health-cmd", "/bin/busybox true",
        "--health-interval", "60s", "--health-start-period", "60s"]);
    #[rustfmt::skip]
    let _fine = Service::create(&fine, 1, &["--mount", sh, "--health-cmd", "/bin/busybox true",
        "--health-interval", "1s"]);
    let actuator = DockerActuator::new("/var/run/docker.sock");
    let observe = |service: &str| {
        let id = TargetId::Swarm {
            service: service.to_string(),
        };
        let a = &actuator;
        async move { a.observe(&id).await.unwrap() }
    };
    let start = Instant::now();
    let (w, f) = loop {
        let (w, f) = (observe(&waiting).await, observe(&fine).await);
        let settled = w.replicas.iter().any(|r| r.health == Health::Starting) && f.running() == 1;
        if settled || start.elapsed() > Duration::from_secs(30) {
            break (w, f);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(w.replicas.len(), 1, "{w:?}");
    assert_eq!(
        (w.replicas[0].health, w.running()),
        (Health::Starting, 0),
        "{w:?}"
    );
    assert_eq!(
        (f.replicas[0].health, f.running()),
        (Health::None, 1),
        "passed its check: running {f:?}"
    );
}

#[test]
fn tasks_that_all_fail_their_health_check_under_load_are_not_stuck() {
    // Each task burns CPU while <ctl>/on exists and then fails its health check, as a saturated app
    // misses its health endpoint. Swarm shows such a task as `starting` (never `running`) and replaces
    // it once the check has failed past the start period and the retries: the HPA would see no ready
    // replica and never scale. Docker runs the check with /bin/sh: the image has busybox alone.
    let sh = "type=bind,src=/bin/busybox,dst=/bin/sh,readonly";
    #[rustfmt::skip]
    let check = |cmd: &'static str| [ "--mount", sh, "--health-cmd", cmd, "--health-interval", "1s",
        "--health-retries", "3", "--health-timeout", "5s", "--health-start-period", "20s"];
    let (busy, broken) = (support::unique("swarmunh"), support::unique("swarmunx"));
    let busy_svc = BurnerService::create_with(&busy, "0.25", true, &check("test ! -e /ctl/on"));
    // The control: failing its check while idle (a broken dependency, not load): never scaled.
    let _broken_svc = BurnerService::create_with(&broken, "0.25", false, &check("false"));
    let policies = tempfile::tempdir().unwrap();
    for service in [&busy, &broken] {
        // A low target: the burners reach it even when other builds share the CPUs.
        let text = format!("service: {service}\nmin: 1\nmax: 3\nmetrics:\n  - name: cpu\n    target: {{ utilization: 20 }}\nbehavior:\n  scale_down: {{ stabilization: 3s, select: max, policies: [ {{ percent: 100, period: 3s }} ] }}\n");
        std::fs::write(policies.path().join(format!("{service}.yaml")), text).unwrap();
    }
    let p = Plimsoll::run(policies.path(), &["--interval", "1s"]);
    p.wait_for_policy(&busy, Duration::from_secs(20));
    p.wait_for_policy(&broken, Duration::from_secs(20));
    p.wait_for(
        "the failing idle task decided on",
        Duration::from_secs(40),
        |p| {
            p.decisions(&broken)
                .iter()
                .any(|r| r["reason"] == "missing_data_hold")
        },
    );
    p.wait_for("3 replicas asked for", Duration::from_secs(60), |_| {
        replicas(&busy) == 3
    });
    let scaled: Vec<serde_json::Value> = p
        .decisions(&busy)
        .into_iter()
        .filter(|r| r["action"] == "scaled")
        .collect();
    support::assert_scaled_up_as_all_replicas_unready(&scaled, 3);
    assert_eq!(running_tasks(&busy), 0, "no task ever passed its check");
    // The control never moved.
    assert_eq!(replicas(&broken), 1);
    let held = p.decisions(&broken);
    assert!(
        held.iter()
            .all(|r| r["action"] == "none" && r["desired"].as_u64() <= Some(1)),
        "{held:?}"
    );
    // Load off: the tasks pass their checks, run idle, and the service goes back to one.
    busy_svc.set_load(false);
    p.wait_for("back to one replica", Duration::from_secs(90), |_| {
        replicas(&busy) == 1 && running_tasks(&busy) == 1
    });
}
