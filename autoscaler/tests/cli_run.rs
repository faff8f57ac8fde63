//! `plimsoll run` refuses a bad configuration before it starts anything, listing every problem.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn bad_run_flags_exit_1_with_every_problem_one_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("policy.yaml");
    std::fs::write(&not_a_dir, "").unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_plimsoll"))
        .args(["run", "--listen", "127.0.0.1:1"])
        .args(["--interval", "1s", "--rate-window", "500ms"])
        .args(["--max-actions-per-minute", "0", "--project", "my shop"])
        .args(["--statsd-buckets", "1,0.5", "--statsd-ttl", "10ms"])
        .arg("--policies")
        .arg(&not_a_dir)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it started something"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = [
        "plimsoll: invalid configuration:".to_string(),
        "  collector: statsd buckets: bounds must be strictly increasing, got 0.5 after 1".to_string(),
        "  collector: statsd ttl 10ms must be 0 (never) or at least 1s".to_string(),
        "  --rate-window: 500ms is shorter than the interval (1s): each decision would ignore part of the load since the last one".to_string(),
        "  --max-actions-per-minute: must be at least 1 (with 0 nothing could ever scale; use --dry-run to only decide)".to_string(),
        format!("  --policies: {} is not a directory", not_a_dir.display()),
        "  --project: \"my shop\" is not a Compose project or Swarm stack name (letters, digits, _, - and ., starting with a letter or digit)".to_string(),
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines, expected, "{stderr}");
}
