//! Exit codes and messages of `plimsoll check`, run as the real binary.

use std::process::Command;

fn plimsoll() -> Command {
    Command::new(env!("CARGO_BIN_EXE_plimsoll"))
}

fn policies_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/examples")
}

#[test]
fn example_policies_are_valid() {
    let simulate = policies_dir().join("../simulate");
    let out = plimsoll()
        .arg("check")
        .arg(policies_dir())
        .arg(&simulate)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("web.yaml: ok (service web)"), "{stdout}");
    assert!(stdout.contains("web.json: ok (service web)"), "{stdout}");
    assert!(
        stdout.contains("nodes.yaml: ok (node pool workers)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("predictive.yaml: ok (service app)"),
        "{stdout}"
    );
}

#[test]
fn invalid_file_exits_1_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "service: web\nmin: 3\nmax: 2\nmetrics:\n  - name: cpu\n    target: { utilization: 0 }\n",
    )
    .unwrap();
    let good = policies_dir().join("web.yaml");
    let out = plimsoll()
        .arg("check")
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = bad.display();
    assert!(
        stderr.contains(&format!("{name}:3:6: max: must be >= min (3), got 2")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{name}:6:28: target.utilization (percent): must be an integer >= 1"
        )),
        "{stderr}"
    );
}

#[test]
fn missing_file_exits_1() {
    let out = plimsoll()
        .args(["check", "/nonexistent/policy.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn the_readme_policy_example_is_valid() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .unwrap();
    let start = readme
        .find("```yaml\nservice: web")
        .expect("the policy example in README.md")
        + "```yaml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("readme.yaml");
    std::fs::write(&file, &readme[start..end]).unwrap();
    let out = plimsoll().arg("check").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_invalid_node_policy_is_reported_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("pool.yaml");
    std::fs::write(
        &bad,
        "pool: workers\nmin: 1\nmax: 3\nprovider: { exec: [] }\ntarget: { cpu: 120 }\n",
    )
    .unwrap();
    let out = plimsoll().arg("check").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = bad.display();
    assert!(
        stderr.contains(&format!("{name}:4:19: provider.exec: the command is empty")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{name}:5:16: target.cpu: must be a percentage in 1..=100, got 120"
        )),
        "{stderr}"
    );
}
