//! `plimsoll decide`, run as the real binary on the example policy and snapshots.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn decide(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plimsoll"))
        .arg("decide")
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn first_decision_without_history() {
    let policy = repo("policies/examples/web.yaml");
    let snapshot = repo("policies/examples/snapshots/snapshot.json");
    let v = json(&decide(&[
        "--policy",
        policy.to_str().unwrap(),
        "--snapshot",
        snapshot.to_str().unwrap(),
    ]));
    // queue_depth 540 against 100 asks for 6; cpu and orders hold because the unready replica flips them.
    assert_eq!(v["desired"], 6);
    assert_eq!(v["reason"], "scale_up");
    let statuses: Vec<_> = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        ["direction_hold", "direction_hold", "scale_up", "scale_down"]
    );
}

#[test]
fn history_applies_rate_limits() {
    let (p, s, h) = (
        repo("policies/examples/web.yaml"),
        repo("policies/examples/snapshots/snapshot.json"),
        repo("policies/examples/snapshots/history.json"),
    );
    let out = decide(&[
        "--policy",
        p.to_str().unwrap(),
        "--snapshot",
        s.to_str().unwrap(),
        "--history",
        h.to_str().unwrap(),
        "--now",
        "2026-01-01T12:00:05Z",
    ]);
    let v = json(&out);
    // +2 ten seconds ago: the 15s period started at 1, so max(2 * 1, 1 + 4) = 5.
    assert_eq!(
        (v["desired"].as_u64(), v["reason"].as_str()),
        (Some(5), Some("limited_by_rate"))
    );
}

#[test]
fn invalid_inputs_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let policy = repo("policies/examples/web.yaml");
    let bad_snapshot = dir.path().join("s.json");
    std::fs::write(
        &bad_snapshot,
        r#"{"service": "web", "current_replicas": -1}"#,
    )
    .unwrap();
    let out = decide(&[
        "--policy",
        policy.to_str().unwrap(),
        "--snapshot",
        bad_snapshot.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid snapshot") && err.contains("line 1 column"),
        "{err}"
    );

    let other = dir.path().join("o.json");
    std::fs::write(
        &other,
        r#"{"service": "api", "current_replicas": 1, "replicas": []}"#,
    )
    .unwrap();
    let out = decide(&[
        "--policy",
        policy.to_str().unwrap(),
        "--snapshot",
        other.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("snapshot is for service `api`"));

    let bad_policy = dir.path().join("p.yaml");
    std::fs::write(&bad_policy, "service: web\nmin: 1\n").unwrap();
    let out = decide(&[
        "--policy",
        bad_policy.to_str().unwrap(),
        "--snapshot",
        other.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("p.yaml:1:1: policy: missing field `max`"),
        "{err}"
    );
}

#[test]
fn simulate_prints_both_columns_and_writes_report_and_chart() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.csv");
    let mut csv = String::from("timestamp,value\n");
    for m in 0..120 {
        let demand = if (30..60).contains(&m) { 90.0 } else { 20.0 };
        csv += &format!("2026-01-01 {:02}:{:02}:00,{demand}\n", m / 60, m % 60);
    }
    std::fs::write(&trace, csv).unwrap();
    let (report, chart) = (dir.path().join("r.json"), dir.path().join("c.svg"));
    let out = Command::new(env!("CARGO_BIN_EXE_plimsoll"))
        .args(["simulate", "--policy"])
        .arg(repo("policies/simulate/simulate-cpu.yaml"))
        .arg("--trace")
        .arg(&trace)
        .args([
            "--capacity-per-replica",
            "10",
            "--baseline",
            "hpa",
            "--report",
        ])
        .arg(&report)
        .arg("--chart")
        .arg(&chart)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("overloaded minutes") && stdout.contains("hpa"),
        "{stdout}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert!(r["result"]["replica_hours"].as_f64().unwrap() > 0.0);
    assert_eq!(r["baseline"]["kind"], "hpa");
    assert!(std::fs::read_to_string(chart).unwrap().starts_with("<svg"));

    let out = Command::new(env!("CARGO_BIN_EXE_plimsoll"))
        .args(["simulate", "--policy"])
        .arg(repo("policies/simulate/simulate-cpu.yaml"))
        .args(["--trace", "/nonexistent.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn simulate_runs_a_folder_of_traces_into_one_table() {
    let dir = tempfile::tempdir().unwrap();
    for (name, high) in [("a", 90.0), ("b", 45.0)] {
        let mut csv = String::from("timestamp,value\n");
        for m in 0..60 {
            let demand = if (20..40).contains(&m) { high } else { 20.0 };
            csv += &format!("2026-01-01 {:02}:{:02}:00,{demand}\n", m / 60, m % 60);
        }
        std::fs::write(dir.path().join(format!("{name}.csv")), csv).unwrap();
    }
    std::fs::write(dir.path().join("README.txt"), "not a trace").unwrap();
    let report = dir.path().join("r.json");
    let out = Command::new(env!("CARGO_BIN_EXE_plimsoll"))
        .args(["simulate", "--policy"])
        .arg(repo("policies/simulate/predictive.yaml"))
        .arg("--traces")
        .arg(dir.path())
        .args([
            "--capacity-per-replica",
            "10",
            "--capacity-per-replica",
            "b=5",
            "--interpolate",
            "step",
            "--report",
        ])
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("step interpolation"), "{stdout}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("a ") || l.starts_with("b "))
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(r["interpolation"], "step");
    let traces = r["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 2);
    assert_eq!(traces[1]["trace"], "b");
    assert_eq!(traces[1]["model"]["capacity_per_replica"], 5.0);
    let c = &traces[0];
    let ratio = c["result"]["replica_hours"].as_f64().unwrap()
        / c["baseline"]["result"]["replica_hours"].as_f64().unwrap();
    assert!((c["ratios"]["replica_hours"].as_f64().unwrap() - ratio).abs() < 1e-12);

    // A capacity for a trace the folder does not have is a mistake, not ignored.
    let out = Command::new(env!("CARGO_BIN_EXE_plimsoll"))
        .args(["simulate", "--policy"])
        .arg(repo("policies/simulate/predictive.yaml"))
        .arg("--traces")
        .arg(dir.path())
        .args(["--capacity-per-replica", "typo=5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no trace typo.csv"));
}
