//! Reaction time of `plimsoll run` over 10 load steps on a real Swarm service (not a timed test: it
//! prints figures for BENCHMARKS.md). A step switches a CPU burner on in every replica; reaction is the
//! time from the switch to the first scale-up call the decisions API records, convergence the time until
//! the service runs its maximum. Then the load stops and the service returns to one replica.
//!
//!   cargo bench -p plimsoll-autoscaler --bench reaction

#[path = "../../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{now_ms, replicas, running_tasks, BurnerService, Plimsoll};

const STEPS: usize = 10;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let service = support::unique("reaction");
    let policies = support::cpu_policy_dir(&service);
    let svc = BurnerService::create(&service, "0.25", false);
    let p = Plimsoll::run(policies.path(), &["--interval", "1s"]);
    p.wait_for_policy(&service, Duration::from_secs(30));
    let (mut reaction, mut convergence) = (Vec::new(), Vec::new());
    for step in 1..=STEPS {
        p.wait_for("one idle replica", Duration::from_secs(90), |_| {
            replicas(&service) == 1 && running_tasks(&service) == 1
        });
        std::thread::sleep(Duration::from_secs(3));
        let on = now_ms();
        let t0 = Instant::now();
        svc.set_load(true);
        let mut first_up = None;
        p.wait_for("a scale-up", Duration::from_secs(60), |p| {
            first_up = p
                .first_scale(&service, true, on)
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
        svc.set_load(false);
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
