//! Reaction time of `plimsoll run` over 10 load steps on a real Swarm service (not a timed test: it
//! prints figures for BENCHMARKS.md). A step switches a CPU burner on in every replica; reaction is the
//! time from the switch to the first scale-up call the decisions API records, convergence the time until
//! the service runs its maximum. Then the load stops and the service returns to one replica.
//!
//!   cargo bench -p plimsoll-autoscaler --bench reaction

#[path = "../../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{Plimsoll, Service};

const STEPS: usize = 10;
const BURNER: &str = "while :; do if [ -e /ctl/on ]; then i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; else sleep 0.2; fi; done";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn replicas(service: &str) -> u32 {
    support::docker_ok(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}}",
        service,
    ])
    .parse()
    .unwrap()
}

fn running_tasks(service: &str) -> usize {
    support::docker_ok(&[
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
        service,
    ])
    .lines()
    .filter(|l| l.starts_with("Running"))
    .count()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let service = support::unique("reaction");
    let ctl = tempfile::tempdir().unwrap();
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("reaction.yaml"),
        format!("service: {service}\nmin: 1\nmax: 3\nmetrics:\n  - name: cpu\n    target: {{ utilization: 50 }}\nbehavior:\n  scale_down: {{ stabilization: 5s, select: max, policies: [ {{ percent: 100, period: 5s }} ] }}\n"),
    )
    .unwrap();
    let mount = format!("type=bind,src={},dst=/ctl", ctl.path().display());
    let _svc = Service::create_cmd(
        &service,
        1,
        &["--limit-cpu", "0.25", "--mount", &mount],
        &["sh", "-c", BURNER],
    );
    let p = Plimsoll::start(
        "run",
        &[
            "--policies",
            policies.path().to_str().unwrap(),
            "--interval",
            "1s",
        ],
    );
    p.wait_for("the policy", Duration::from_secs(30), |p| {
        p.json("/api/v1/policies")
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["policy"]["service"] == service.as_str())
    });
    let (mut reaction, mut convergence) = (Vec::new(), Vec::new());
    for step in 1..=STEPS {
        p.wait_for("one idle replica", Duration::from_secs(90), |_| {
            replicas(&service) == 1 && running_tasks(&service) == 1
        });
        std::thread::sleep(Duration::from_secs(3));
        let on = now_ms();
        let t0 = Instant::now();
        std::fs::write(ctl.path().join("on"), "").unwrap();
        let mut first_up = None;
        p.wait_for("a scale-up", Duration::from_secs(60), |p| {
            let d = p.json(&format!("/api/v1/decisions?service={service}"));
            first_up = d
                .as_array()
                .unwrap()
                .iter()
                .find(|r| {
                    r["action"] == "scaled"
                        && r["at"].as_i64() >= Some(on)
                        && r["desired"].as_u64() > r["current"].as_u64()
                })
                .and_then(|r| r["at"].as_i64());
            first_up.is_some()
        });
        p.wait_for("3 running tasks", Duration::from_secs(60), |_| {
            replicas(&service) == 3 && running_tasks(&service) == 3
        });
        let conv = t0.elapsed().as_secs_f64();
        let react = (first_up.unwrap() - on) as f64 / 1000.0;
        println!("step {step}: reaction {react:.2} s, converged in {conv:.2} s");
        reaction.push(react);
        convergence.push(conv);
        std::fs::remove_file(ctl.path().join("on")).unwrap();
    }
    reaction.sort_by(f64::total_cmp);
    convergence.sort_by(f64::total_cmp);
    println!(
        "reaction (load start -> scale call) over {STEPS} steps: p50 {:.2} s, p95 {:.2} s, max {:.2} s",
        percentile(&reaction, 50.0),
        percentile(&reaction, 95.0),
        reaction[STEPS - 1]
    );
    println!(
        "convergence (load start -> 3 running tasks): p50 {:.2} s, p95 {:.2} s",
        percentile(&convergence, 50.0),
        percentile(&convergence, 95.0)
    );
}
