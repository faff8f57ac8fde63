use super::*;

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

#[test]
fn scope_selects_compose_projects_and_swarm_stacks() {
    let c = compose("shop", "web", &[]);
    let stacked = target(
        TargetId::Swarm {
            service: "shop_api".into(),
        },
        &[("com.docker.stack.namespace", "shop")],
    );
    let loose = target(
        TargetId::Swarm {
            service: "api".into(),
        },
        &[],
    );
    assert!(in_scope(&c, &[]) && in_scope(&loose, &[]));
    let shop = vec!["shop".to_string()];
    assert!(in_scope(&c, &shop) && in_scope(&stacked, &shop));
    assert!(!in_scope(&loose, &shop));
    assert!(!in_scope(&compose("other", "web", &[]), &shop));
}

#[test]
fn files_win_over_labels_and_targets_without_a_policy_are_skipped() {
    let file = parse_policy(
        "web.yaml",
        "service: web\nmin: 2\nmax: 9\nmetrics:\n  - name: cpu\n    target: { utilization: 60 }\n",
    )
    .unwrap();
    let files = BTreeMap::from([("web".to_string(), ("web.yaml".to_string(), file))]);
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
    let out = resolve_policies(&targets, &files);
    let web = &out[&targets[0].id];
    assert_eq!((web.policy.min, web.policy.max), (2, 9));
    assert_eq!(
        web.origin,
        PolicyOrigin::FileOverLabels {
            path: "web.yaml".into()
        }
    );
    assert!(
        !web.conflicts.is_empty(),
        "the labels' differing min/max/cpu are reported"
    );
    let db = &out[&targets[1].id];
    assert_eq!(
        (db.origin.clone(), db.policy.max),
        (PolicyOrigin::Labels, 4)
    );
    assert!(!out.contains_key(&targets[2].id), "no policy, not a target");
    assert!(
        !out.contains_key(&targets[3].id),
        "invalid labels are ignored (and logged)"
    );
}

#[test]
fn the_action_budget_caps_actions_per_minute() {
    let st = ControlState::new(2);
    let t0 = Instant::now();
    assert!(st.take_action(t0) && st.take_action(t0));
    assert!(!st.take_action(t0 + Duration::from_secs(30)));
    assert!(
        st.take_action(t0 + Duration::from_secs(61)),
        "a minute later the budget is back"
    );
}

#[test]
fn backoff_grows_exponentially_with_jitter_and_resets() {
    let mut b = Backoff::default();
    let base = Duration::from_secs(1);
    let d1 = b.fail(base);
    let d2 = b.fail(base);
    let d3 = b.fail(base);
    assert!(
        d1 >= Duration::from_millis(1600) && d1 <= Duration::from_millis(2400),
        "{d1:?}"
    );
    assert!(
        d2 >= Duration::from_millis(3200) && d2 <= Duration::from_millis(4800),
        "{d2:?}"
    );
    assert!(
        d3 >= Duration::from_millis(6400) && d3 <= Duration::from_millis(9600),
        "{d3:?}"
    );
    for _ in 0..20 {
        assert!(b.fail(base) <= Backoff::MAX.mul_f64(1.2));
    }
    b.reset();
    assert!(b.fail(base) <= Duration::from_millis(2400));
}
