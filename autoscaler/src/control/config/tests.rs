use super::*;

fn valid() -> ControlConfig {
    ControlConfig {
        interval: Duration::from_secs(1),
        dry_run: false,
        max_actions_per_minute: 30,
        discovery_interval: Duration::from_secs(5),
        policies_dir: None,
        projects: vec!["shop".into(), "my_app-2.test".into()],
    }
}

/// The problems of `c`, as `SETTING: message` lines.
fn problems(c: ControlConfig) -> Vec<String> {
    match c.validate() {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.setting, p.message))
            .collect(),
    }
}

#[test]
fn the_defaults_of_plimsoll_run_are_valid() {
    assert!(problems(valid()).is_empty());
}

#[test]
fn a_zero_action_cap_is_rejected() {
    let c = ControlConfig {
        max_actions_per_minute: 0,
        ..valid()
    };
    let p = problems(c);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("--max-actions-per-minute: must be at least 1"),
        "{p:?}"
    );
}

#[test]
fn the_interval_must_be_within_the_policy_range() {
    for (ms, ok) in [(99, false), (100, true), (300_000, true), (300_001, false)] {
        let c = ControlConfig {
            interval: Duration::from_millis(ms),
            ..valid()
        };
        assert_eq!(problems(c).is_empty(), ok, "{ms} ms");
    }
    let c = ControlConfig {
        interval: Duration::ZERO,
        ..valid()
    };
    assert_eq!(
        problems(c),
        ["--interval: the decision interval must be within 100ms..=5m, got 0s"]
    );
}

#[test]
fn the_discovery_interval_must_be_within_the_same_range() {
    let c = ControlConfig {
        discovery_interval: Duration::ZERO,
        ..valid()
    };
    assert_eq!(
        problems(c),
        ["discovery interval: must be within 100ms..=5m, got 0s"]
    );
}

#[test]
fn the_policies_path_must_be_a_folder_when_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, "").unwrap();
    let with = |path: PathBuf| ControlConfig {
        policies_dir: Some(path),
        ..valid()
    };
    assert!(problems(with(dir.path().to_path_buf())).is_empty());
    assert!(
        problems(with(dir.path().join("later"))).is_empty(),
        "read once it appears"
    );
    let p = problems(with(file.clone()));
    assert_eq!(
        p,
        [format!("--policies: {} is not a directory", file.display())]
    );
}

#[test]
fn project_names_that_can_match_nothing_are_rejected() {
    let c = ControlConfig {
        projects: vec!["shop".into(), "".into(), "My App".into(), "-x".into()],
        ..valid()
    };
    let p = problems(c);
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[1].starts_with("--project: \"My App\" is not a Compose project or Swarm stack name"));
}

#[test]
fn every_problem_is_reported_at_once_one_line_each() {
    let c = ControlConfig {
        interval: Duration::from_secs(600),
        max_actions_per_minute: 0,
        projects: vec!["a b".into()],
        ..valid()
    };
    let e = c.validate().unwrap_err();
    assert_eq!(e.problems.len(), 3);
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "invalid configuration:");
    assert!(lines[1].starts_with("  --interval: "), "{text}");
    assert!(
        lines[2].starts_with("  --max-actions-per-minute: "),
        "{text}"
    );
    assert!(lines[3].starts_with("  --project: "), "{text}");
}
