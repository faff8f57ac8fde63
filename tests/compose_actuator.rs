//! The Compose actuator against the real Docker engine: clones of a labelled container keep its
//! configuration, scaling is idempotent, only our clones are removed, and half-done work is finished.

mod support;

use plimsoll_autoscaler::control::{Actuator, ActuatorError, DockerActuator, Health, TargetId};
use serde_json::Value;
use support::{docker, docker_ok, Container, Network};

const SOCKET: &str = "/var/run/docker.sock";

/// Every container of a Compose project, removed when dropped (clones included).
struct Project {
    name: String,
}

impl Project {
    fn new(prefix: &str) -> Project {
        let p = Project {
            name: support::unique(prefix),
        };
        p.remove_all();
        p
    }

    fn target(&self) -> TargetId {
        TargetId::Compose {
            project: self.name.clone(),
            service: "web".to_string(),
        }
    }

    /// The labels Compose gives replica `number` of service `web`.
    fn labels(&self, number: u32) -> Vec<String> {
        vec![
            format!("com.docker.compose.project={}", self.name),
            "com.docker.compose.service=web".to_string(),
            format!("com.docker.compose.container-number={number}"),
            "com.docker.compose.oneoff=False".to_string(),
        ]
    }

    /// `docker run` of an unmanaged replica `number` with extra flags.
    fn run_replica(&self, number: u32, flags: &[&str]) -> Container {
        let labels = self.labels(number);
        let mut args: Vec<&str> = labels
            .iter()
            .flat_map(|l| ["--label", l.as_str()])
            .collect();
        args.extend_from_slice(flags);
        Container::run(
            &format!("{}_web_{number}", self.name),
            &args,
            &["sleep", "100000"],
        )
    }

    /// Names of the containers matching a label filter in this project, sorted.
    fn names(&self, filter: &str) -> Vec<String> {
        let project = format!("label=com.docker.compose.project={}", self.name);
        let out = docker_ok(&[
            "ps",
            "-a",
            "--filter",
            &project,
            "--filter",
            filter,
            "--format",
            "{{.Names}}",
        ]);
        let mut names: Vec<String> = out.lines().map(str::to_string).collect();
        names.sort();
        names
    }

    fn managed(&self) -> Vec<String> {
        self.names("label=plimsoll.managed=true")
    }

    fn remove_all(&self) {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let ids = docker_ok(&["ps", "-aq", "--filter", &filter]);
        for id in ids.lines() {
            let _ = docker(&["rm", "-f", "-v", id]);
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.remove_all();
    }
}

fn inspect(name: &str) -> Value {
    let out = docker_ok(&["inspect", name]);
    serde_json::from_str::<Value>(&out).unwrap()[0].clone()
}

#[tokio::test]
async fn scaling_up_clones_a_replica_and_scaling_down_removes_only_the_clones() {
    support::ensure_image();
    let net = Network::create("cnet");
    let project = Project::new("clone");
    let host_port = support::free_addr().port().to_string();
    let publish = format!("127.0.0.1:{host_port}:8080");
    #[rustfmt::skip]
    let original = project.run_replica(1, &[
        "--network", &net.name, "--cpus", "0.5", "--memory", "64m", "-e", "GREETING=hello",
        "--health-cmd", "/bin/busybox true", "--health-interval", "30s",
        "--restart", "on-failure:3", "--stop-timeout", "2", "-p", &publish,
        // No plimsoll.* policy label: a `plimsoll run` of another test would autoscale this service.
        "--label", "example.tier=front",
    ]);
    // A `docker compose run` container of another service: not a target.
    let oneoff = format!("{}_migrate_run_1", project.name);
    let project_label = format!("com.docker.compose.project={}", project.name);
    #[rustfmt::skip]
    docker_ok(&["create", "--name", &oneoff, "--label", &project_label,
        "--label", "com.docker.compose.service=migrate", "--label", "com.docker.compose.oneoff=True",
        support::IMAGE, "sleep", "1"]);

    let actuator = DockerActuator::new(SOCKET);
    let target = project.target();
    actuator.scale(&target, 3).await.unwrap();

    let clones = project.managed();
    let expected: Vec<String> = (2..=3)
        .map(|n| format!("{}-web-{n}", project.name))
        .collect();
    assert_eq!(clones, expected);
    let o = inspect(&original.name);
    for name in &clones {
        let c = inspect(name);
        assert_eq!(c["State"]["Running"], true, "{name}");
        for field in ["NanoCpus", "Memory", "RestartPolicy"] {
            assert_eq!(
                c["HostConfig"][field], o["HostConfig"][field],
                "{name}: HostConfig.{field}"
            );
        }
        for field in ["Env", "Healthcheck", "StopTimeout", "Image", "Cmd"] {
            assert_eq!(
                c["Config"][field], o["Config"][field],
                "{name}: Config.{field}"
            );
        }
        assert!(c["Config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&"GREETING=hello".into()));
        assert!(
            c["HostConfig"]["PortBindings"]
                .as_object()
                .is_none_or(|p| p.is_empty()),
            "{name}: a host port was copied"
        );
        let aliases = &c["NetworkSettings"]["Networks"][&net.name]["Aliases"];
        assert!(
            aliases.as_array().unwrap().contains(&"web".into()),
            "{name}: aliases {aliases}"
        );
        assert_eq!(c["Config"]["Labels"]["plimsoll.managed"], "true");
        assert_eq!(c["Config"]["Labels"]["example.tier"], "front");
    }
    let state = actuator.observe(&target).await.unwrap();
    assert_eq!(
        (state.spec_replicas, state.running(), state.pending),
        (3, 3, 0),
        "{state:?}"
    );
    assert!(
        state
            .replicas
            .iter()
            .all(|r| r.started_at.is_some() && r.container_id.as_ref() == Some(&r.id)),
        "{state:?}"
    );

    // The service is a target with the compose file's labels, and our marker is not among them.
    let targets = actuator.targets().await.unwrap();
    let ours: Vec<_> = targets
        .iter()
        .filter(|t| matches!(&t.id, TargetId::Compose { project: p, .. } if *p == project.name))
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "the one-off container made a target: {ours:?}"
    );
    assert_eq!(ours[0].id, target);
    assert_eq!(
        ours[0].labels.get("example.tier").map(String::as_str),
        Some("front")
    );
    assert!(
        !ours[0].labels.contains_key("plimsoll.managed"),
        "{:?}",
        ours[0].labels
    );

    // Idempotent: the same count again touches nothing.
    let ids = |names: &[String]| {
        names
            .iter()
            .map(|n| inspect(n)["Id"].clone())
            .collect::<Vec<_>>()
    };
    let before = ids(&clones);
    actuator.scale(&target, 3).await.unwrap();
    assert_eq!(ids(&project.managed()), before);
    assert_eq!(project.names("status=running").len(), 3);

    // Down to one: the newest clone first, then the next; the original stays.
    actuator.scale(&target, 2).await.unwrap();
    assert_eq!(project.managed(), expected[..1].to_vec());
    actuator.scale(&target, 1).await.unwrap();
    assert!(project.managed().is_empty());
    assert_eq!(inspect(&original.name)["State"]["Running"], true);
    let state = actuator.observe(&target).await.unwrap();
    assert_eq!((state.spec_replicas, state.running()), (1, 1), "{state:?}");
    assert_eq!(state.replicas[0].id, original.id);
}

#[tokio::test]
async fn a_replica_created_but_never_started_is_pending_and_started_by_scale() {
    support::ensure_image();
    let (net, backend) = (Network::create("pnet"), Network::create("pback"));
    let project = Project::new("pending");
    let original = project.run_replica(1, &["--network", &net.name]);
    docker_ok(&["network", "connect", &backend.name, &original.name]);
    // What a crash between create and start leaves behind: the first network only (an API 1.41
    // engine takes one at creation; the others are connected before the start).
    let orphan = format!("{}-web-2", project.name);
    let mut args = vec![
        "create",
        "--name",
        &orphan,
        "--network",
        &net.name,
        "--label",
        "plimsoll.managed=true",
    ];
    let labels = project.labels(2);
    args.extend(labels.iter().flat_map(|l| ["--label", l.as_str()]));
    args.extend([support::IMAGE, "sleep", "100000"]);
    docker_ok(&args);

    let actuator = DockerActuator::new(SOCKET);
    let target = project.target();
    let state = actuator.observe(&target).await.unwrap();
    assert_eq!(
        (state.spec_replicas, state.running(), state.pending),
        (2, 1, 1),
        "{state:?}"
    );

    actuator.scale(&target, 2).await.unwrap();
    let o = inspect(&orphan);
    assert_eq!(o["State"]["Running"], true);
    let aliases = &o["NetworkSettings"]["Networks"][&backend.name]["Aliases"];
    assert!(
        aliases
            .as_array()
            .is_some_and(|a| a.contains(&"web".into())),
        "{aliases}"
    );
    assert_eq!(
        project.names("status=running").len(),
        2,
        "no second clone was made"
    );
    let state = actuator.observe(&target).await.unwrap();
    assert_eq!(
        (state.spec_replicas, state.running(), state.pending),
        (2, 2, 0),
        "{state:?}"
    );
}

#[tokio::test]
async fn scaling_below_the_replicas_compose_made_removes_ours_and_fails_clearly() {
    support::ensure_image();
    let project = Project::new("below");
    let first = project.run_replica(1, &[]);
    let second = project.run_replica(2, &[]);
    let actuator = DockerActuator::new(SOCKET);
    let target = project.target();
    actuator.scale(&target, 3).await.unwrap();
    assert_eq!(project.managed().len(), 1);

    let err = actuator.scale(&target, 1).await.unwrap_err();
    assert!(
        matches!(&err, ActuatorError::Failed { message, .. } if message.contains("not created by Plimsoll")),
        "{err}"
    );
    assert!(
        project.managed().is_empty(),
        "our clone is removed before failing"
    );
    for c in [&first, &second] {
        assert_eq!(
            inspect(&c.name)["State"]["Running"],
            true,
            "{} was removed",
            c.name
        );
    }
}

#[tokio::test]
async fn scaling_up_without_a_running_replica_or_with_a_taken_name_fails_clearly() {
    support::ensure_image();
    let project = Project::new("noclone");
    let stopped = project.run_replica(1, &[]);
    docker_ok(&["stop", &stopped.name]);
    let actuator = DockerActuator::new(SOCKET);
    let target = project.target();
    let err = actuator.scale(&target, 2).await.unwrap_err();
    assert!(
        matches!(&err, ActuatorError::Failed { message, .. } if message.contains("no running replica")),
        "{err}"
    );

    // The next clone's name belongs to a container of no service: refused, not adopted.
    docker_ok(&["start", &stopped.name]);
    let _squatter = Container::run(
        &format!("{}-web-2", project.name),
        &[],
        &["sleep", "100000"],
    );
    let err = actuator.scale(&target, 2).await.unwrap_err();
    assert!(
        matches!(&err, ActuatorError::Failed { message, .. } if message.contains("is taken")),
        "{err}"
    );
    assert!(project.managed().is_empty());
}

#[tokio::test]
async fn an_unknown_service_is_not_found() {
    let actuator = DockerActuator::new(SOCKET);
    let target = TargetId::Compose {
        project: support::unique("nowhere"),
        service: "web".to_string(),
    };
    assert!(matches!(
        actuator.observe(&target).await,
        Err(ActuatorError::NotFound { .. })
    ));
}

#[tokio::test]
async fn observe_reports_each_replica_health_check() {
    let project = Project::new("health");
    // Docker runs --health-cmd with /bin/sh -c; the image has busybox alone, so it gets one as sh.
    let sh = "/bin/busybox:/bin/sh:ro";
    #[rustfmt::skip]
    let healthy = project.run_replica(1, &["-v", sh, "--health-cmd", "/bin/busybox true", "--health-interval", "1s"]);
    #[rustfmt::skip]
    let sick = project.run_replica(2, &["-v", sh, "--health-cmd", "/bin/busybox false", "--health-interval", "1s", "--health-retries", "1"]);
    let plain = project.run_replica(3, &[]);
    let actuator = DockerActuator::new(SOCKET);
    let target = project.target();
    let health_of = |state: &plimsoll_autoscaler::control::TargetState, id: &str| {
        state.replicas.iter().find(|r| r.id == id).unwrap().health
    };
    // Both checks run every second; give them a few rounds.
    let start = std::time::Instant::now();
    let state = loop {
        let state = actuator.observe(&target).await.unwrap();
        let settled = health_of(&state, &healthy.id) == Health::Healthy
            && health_of(&state, &sick.id) == Health::Unhealthy;
        if settled || start.elapsed() > std::time::Duration::from_secs(20) {
            break state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(health_of(&state, &healthy.id), Health::Healthy, "{state:?}");
    assert_eq!(health_of(&state, &sick.id), Health::Unhealthy, "{state:?}");
    assert_eq!(health_of(&state, &plain.id), Health::None, "{state:?}");
    assert_eq!(state.running(), 3, "an unhealthy container still runs");
}
