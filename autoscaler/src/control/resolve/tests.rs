use super::*;
use crate::control::target::STACK_LABEL;
use crate::policy::parse_policy_file;

fn target(id: TargetId, labels: &[(&str, &str)]) -> TargetInfo {
    TargetInfo {
        id,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn compose(project: &str, service: &str, labels: &[(&str, &str)]) -> TargetInfo {
    target(
        TargetId::Compose {
            project: project.into(),
            service: service.into(),
        },
        labels,
    )
}

fn swarm(service: &str, stack: Option<&str>) -> TargetInfo {
    let labels: Vec<(&str, &str)> = stack.map(|s| (STACK_LABEL, s)).into_iter().collect();
    target(
        TargetId::Swarm {
            service: service.into(),
        },
        &labels,
    )
}

/// A policy file at `path` whose head (service and target fields) is `head`, max `max`.
fn file(path: &str, head: &str, max: u32) -> ReadFile {
    let text = format!(
        "{head}min: 1\nmax: {max}\nmetrics:\n  - name: cpu\n    target: {{ utilization: 60 }}\n"
    );
    (
        PathBuf::from(path),
        parse_policy_file(path, &text).map_err(|e| e.to_string()),
    )
}

fn status(r: &Resolution, path: &str) -> FileStatus {
    r.files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no report for {path}: {:?}", r.files))
        .status
        .clone()
}

fn applied(target: &str) -> FileStatus {
    FileStatus::Applied {
        target: target.into(),
    }
}

#[test]
fn scope_selects_compose_projects_and_swarm_stacks() {
    let c = compose("shop", "web", &[]);
    let stacked = swarm("shop_api", Some("shop"));
    let loose = swarm("api", None);
    assert!(in_scope(&c, &[]) && in_scope(&loose, &[]));
    let shop = vec!["shop".to_string()];
    assert!(in_scope(&c, &shop) && in_scope(&stacked, &shop));
    assert!(!in_scope(&loose, &shop));
    assert!(!in_scope(&compose("other", "web", &[]), &shop));
}

#[test]
fn files_win_over_labels_and_targets_without_a_policy_are_skipped() {
    let targets = vec![
        compose(
            "a",
            "web",
            &[
                ("plimsoll.min", "1"),
                ("plimsoll.max", "3"),
                ("plimsoll.cpu", "50"),
            ],
        ),
        compose(
            "a",
            "db",
            &[
                ("plimsoll.min", "1"),
                ("plimsoll.max", "4"),
                ("plimsoll.cpu", "70"),
            ],
        ),
        compose("a", "cache", &[("com.example", "x")]),
        compose("a", "bad", &[("plimsoll.max", "lots")]),
    ];
    let r = resolve(&targets, &[file("web.yaml", "service: web\n", 9)]);
    let web = &r.entries[&targets[0].id];
    assert_eq!((web.policy.min, web.policy.max), (1, 9));
    assert_eq!(
        web.origin,
        PolicyOrigin::FileOverLabels {
            path: "web.yaml".into()
        }
    );
    assert_eq!(web.id, "compose/a/web");
    assert!(
        !web.conflicts.is_empty(),
        "the labels' differing max and cpu are reported"
    );
    let db = &r.entries[&targets[1].id];
    assert_eq!(
        (db.origin.clone(), db.policy.max),
        (PolicyOrigin::Labels, 4)
    );
    assert!(
        !r.entries.contains_key(&targets[2].id),
        "no policy, not a target"
    );
    assert!(
        !r.entries.contains_key(&targets[3].id),
        "invalid labels are ignored (and logged)"
    );
    assert_eq!(status(&r, "web.yaml"), applied("compose/a/web"));
}

#[test]
fn a_file_matching_two_targets_applies_to_neither_and_says_so() {
    let targets = vec![compose("a", "web", &[]), compose("b", "web", &[])];
    let r = resolve(&targets, &[file("web.yaml", "service: web\n", 5)]);
    assert!(r.entries.is_empty());
    assert_eq!(
        status(&r, "web.yaml"),
        FileStatus::Ambiguous {
            candidates: vec!["compose/a/web".into(), "compose/b/web".into()]
        }
    );
    // A Swarm service of the same name is a third candidate; `kind` tells them apart.
    let mut targets = targets;
    targets.push(swarm("web", None));
    let r = resolve(
        &targets,
        &[
            file("swarm.yaml", "service: web\nkind: swarm\n", 5),
            file("web.yaml", "service: web\n", 5),
        ],
    );
    assert_eq!(status(&r, "swarm.yaml"), applied("swarm/web"));
    assert!(
        matches!(status(&r, "web.yaml"), FileStatus::Ambiguous { candidates } if candidates.len() == 3)
    );
    assert_eq!(r.entries.len(), 1);
}

#[test]
fn project_stack_and_kind_select_one_target_each() {
    let targets = vec![
        compose("a", "web", &[]),
        compose("b", "web", &[]),
        swarm("shop_web", Some("shop")),
        swarm("web", None),
    ];
    let files = [
        file("a.yaml", "service: web\nproject: a\n", 2),
        file("b.yaml", "service: web\nproject: b\n", 3),
        // In a stack, the service as the stack file names it, or its full name.
        file("shop.yaml", "service: web\nstack: shop\n", 4),
        file("swarm.yaml", "service: web\nkind: swarm\n", 5),
        file("c.yaml", "service: web\nproject: c\n", 6),
    ];
    let r = resolve(&targets, &files);
    let max = |id: &TargetInfo| r.entries[&id.id].policy.max;
    assert_eq!(
        targets.iter().map(max).collect::<Vec<_>>(),
        [2, 3, 4, 5],
        "{:?}",
        r.files
    );
    assert_eq!(status(&r, "shop.yaml"), applied("swarm/shop_web"));
    assert_eq!(status(&r, "c.yaml"), FileStatus::NoTarget);
    let full = resolve(
        &targets,
        &[file("full.yaml", "service: shop_web\nstack: shop\n", 7)],
    );
    assert_eq!(status(&full, "full.yaml"), applied("swarm/shop_web"));
    // A stack selector never matches a service outside the stack.
    let other = resolve(
        &targets,
        &[file("x.yaml", "service: web\nstack: other\n", 7)],
    );
    assert_eq!(status(&other, "x.yaml"), FileStatus::NoTarget);
}

#[test]
fn of_two_files_for_one_target_the_more_specific_then_the_first_path_wins_and_the_other_is_reported(
) {
    let targets = vec![compose("a", "web", &[])];
    let plain_z = file("z.yaml", "service: web\n", 2);
    let plain_m = file("m.yaml", "service: web\n", 3);
    let specific = file("zz.yaml", "service: web\nproject: a\n", 4);
    // Whatever order the folder lists them in, the callers pass them in path order; the result only
    // depends on the paths.
    let r = resolve(&targets, &[plain_m.clone(), plain_z.clone()]);
    let e = &r.entries[&targets[0].id];
    assert_eq!(e.policy.max, 3, "m.yaml comes first");
    assert_eq!(e.shadowed, ["z.yaml"]);
    assert_eq!(
        status(&r, "z.yaml"),
        FileStatus::Shadowed {
            target: "compose/a/web".into(),
            by: "m.yaml".into()
        }
    );
    let r = resolve(&targets, &[plain_m, plain_z, specific]);
    let e = &r.entries[&targets[0].id];
    assert_eq!(
        e.policy.max, 4,
        "a project beats a bare name, whatever the path"
    );
    assert_eq!(e.shadowed, ["m.yaml", "z.yaml"]);
    assert_eq!(
        e.origin,
        PolicyOrigin::File {
            path: "zz.yaml".into()
        }
    );
}

#[test]
fn invalid_files_are_reported_and_change_nothing() {
    let targets = vec![compose("a", "web", &[])];
    let bad: ReadFile = (
        PathBuf::from("bad.yaml"),
        Err("bad.yaml:1:1: oops".to_string()),
    );
    let r = resolve(&targets, &[bad, file("web.yaml", "service: web\n", 2)]);
    assert_eq!(
        status(&r, "bad.yaml"),
        FileStatus::Invalid {
            error: "bad.yaml:1:1: oops".into()
        }
    );
    assert_eq!(r.entries[&targets[0].id].policy.max, 2);
    let json = serde_json::to_value(&r.files).unwrap();
    assert_eq!(json[0]["status"], "invalid");
    assert_eq!(json[1]["status"], "applied");
    assert_eq!(json[1]["target"], "compose/a/web");
    assert_eq!(json[1]["means"], "service web");
}

#[test]
fn target_ids_round_trip_through_their_string_form() {
    for id in [
        TargetId::Swarm {
            service: "shop_web".into(),
        },
        TargetId::Compose {
            project: "a".into(),
            service: "web".into(),
        },
    ] {
        assert_eq!(id.to_string().parse::<TargetId>(), Ok(id));
    }
    for bad in [
        "web",
        "swarm/",
        "compose/a",
        "compose//web",
        "k8s/a/web",
        "swarm/a/b",
    ] {
        assert!(bad.parse::<TargetId>().is_err(), "{bad}");
    }
}
