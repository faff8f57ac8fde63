//! The real loop (discovery, one task per target, the pure step) against the fakes, in paused time:
//! `sleep` in a test advances the clock as soon as every task waits, so seconds of loop run instantly
//! and always the same way.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep, Instant};

use crate::control::config::ControlConfig;
use crate::control::explain::{Action, DecisionRecord};
use crate::control::runner::{ControlState, Controller};
use crate::control::target::TargetId;
use crate::control::testing::{FakeActuator, FakeSource, PausedClock};
use crate::policy::Timestamp;

const SEC: Duration = Duration::from_secs(1);

fn config() -> ControlConfig {
    ControlConfig {
        interval: SEC,
        dry_run: false,
        max_actions_per_minute: 30,
        discovery_interval: SEC,
        policies_dir: None,
        projects: Vec::new(),
    }
}

fn web(project: &str) -> TargetId {
    TargetId::Compose {
        project: project.into(),
        service: "web".into(),
    }
}

/// `plimsoll.*` labels for min 1, max `max`, 50% CPU, plus `extra`.
fn labels(
    max: &'static str,
    extra: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    let mut l = vec![
        ("plimsoll.min", "1"),
        ("plimsoll.max", max),
        ("plimsoll.cpu", "50"),
    ];
    l.extend_from_slice(extra);
    l
}

struct Loop {
    actuator: FakeActuator,
    source: FakeSource,
    state: Arc<ControlState>,
    t0: Instant,
    task: tokio::task::JoinHandle<()>,
}

impl Loop {
    /// Starts the controller on fakes that `setup` fills in; the first tick is at `t0`.
    fn start(config: ControlConfig, setup: impl FnOnce(&FakeActuator, &FakeSource)) -> Loop {
        let clock = PausedClock::new(Timestamp::from_secs(1_700_000_000));
        let (actuator, source) = (FakeActuator::new(clock), FakeSource::new(clock));
        setup(&actuator, &source);
        let c = Controller::with_clock(actuator.clone(), source.clone(), config, Arc::new(clock));
        let state = c.state();
        Loop {
            actuator,
            source,
            state,
            t0: Instant::now(),
            task: tokio::spawn(c.run()),
        }
    }

    fn records(&self, id: &TargetId) -> Vec<DecisionRecord> {
        let name = id.to_string();
        self.state
            .decisions
            .recent(None)
            .into_iter()
            .filter(|r| r.target == name)
            .collect()
    }

    fn reasons(&self, id: &TargetId) -> Vec<&'static str> {
        self.records(id).iter().map(|r| r.reason.as_str()).collect()
    }

    /// Seconds from the first tick, to the millisecond.
    fn secs(&self, at: Instant) -> f64 {
        (at - self.t0).as_millis() as f64 / 1000.0
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_source_holds_then_the_fallback_applies_after_k_failed_reads() {
    let a = web("a");
    let l = Loop::start(config(), |act, src| {
        let fallback = [
            ("plimsoll.fallback.replicas", "3"),
            ("plimsoll.fallback.after", "3"),
        ];
        act.add(a.clone(), &labels("4", &fallback), 1);
        src.set_failing(true);
    });
    sleep(SEC * 6 + SEC / 2).await;
    assert_eq!(
        &l.reasons(&a)[..4],
        ["source_error", "source_error", "fallback", "fallback"]
    );
    let scales = l.actuator.scales(&a);
    assert_eq!(scales.len(), 1, "the fallback is applied once: {scales:?}");
    assert_eq!(
        (scales[0].0, l.secs(scales[0].1)),
        (3, 2.0),
        "third failed read, at t=2s"
    );
    let third = &l.records(&a)[2];
    assert_eq!(
        (third.current, third.desired, third.action),
        (1, 3, Action::Scaled)
    );
    // The source answers again: the policy decides again (idle, so it scales in later).
    l.source.set_failing(false);
    l.source.set_cpu(&a, 0.5);
    sleep(SEC * 2).await;
    let last = l.records(&a).pop().unwrap();
    assert_eq!(last.reason_kind, "decided", "{last:?}");
}

#[tokio::test(start_paused = true)]
async fn docker_errors_back_off_exponentially_then_the_interval_resumes() {
    let a = web("a");
    let l = Loop::start(config(), |act, src| {
        act.add(a.clone(), &labels("4", &[]), 1);
        src.set_cpu(&a, 0.5);
        act.fail_observes(4);
    });
    sleep(SEC * 40).await;
    let at = l.actuator.observes(&a);
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    for (k, g) in gaps[..4].iter().enumerate() {
        let base = f64::from(2u32 << k);
        assert!(
            (0.8 * base..=1.2 * base).contains(g),
            "gap {k} is {g}s, expected {base}s ±20%: {gaps:?}"
        );
    }
    assert!(
        gaps[1] > gaps[0] && gaps[2] > gaps[1] && gaps[3] > gaps[2],
        "{gaps:?}"
    );
    assert!(
        gaps[4..].iter().all(|g| *g == 1.0),
        "back to the 1s interval after the first success: {gaps:?}"
    );
    assert_eq!(
        l.reasons(&a)[..5],
        [
            "docker_error",
            "docker_error",
            "docker_error",
            "docker_error",
            "within_tolerance"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_global_cap_holds_the_third_action_until_the_minute_is_over() {
    let ids = [web("a"), web("b"), web("c")];
    let config = ControlConfig {
        max_actions_per_minute: 2,
        ..config()
    };
    let l = Loop::start(config, |act, src| {
        for id in &ids {
            act.add(id.clone(), &labels("2", &[]), 1);
            src.set_cpu(id, 0.9);
        }
    });
    sleep(SEC * 30).await;
    let scaled: Vec<&TargetId> = ids
        .iter()
        .filter(|id| !l.actuator.scales(id).is_empty())
        .collect();
    assert_eq!(scaled.len(), 2, "two actions in the first minute");
    let capped = ids
        .iter()
        .find(|id| l.actuator.scales(id).is_empty())
        .unwrap();
    let holds = l.records(capped);
    assert!(holds.len() >= 29, "{holds:?}");
    assert!(holds.iter().all(|r| r.reason.as_str() == "rate_capped"
        && r.desired == r.current
        && r.recommendation == Some(2)
        && r.action == Action::None));
    sleep(SEC * 32).await;
    let late = l.actuator.scales(capped);
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(
        l.secs(late[0].1),
        60.0,
        "as soon as the first action leaves the window"
    );
}

#[tokio::test(start_paused = true)]
async fn stale_samples_hold_until_fresh_ones_arrive() {
    let a = web("a");
    let l = Loop::start(config(), |act, src| {
        act.add(a.clone(), &labels("4", &[]), 1);
        src.set_cpu(&a, 0.9);
        src.set_age(SEC * 5);
    });
    sleep(SEC * 10).await;
    assert!(
        l.reasons(&a).iter().all(|r| *r == "stale"),
        "{:?}",
        l.reasons(&a)
    );
    assert!(l.actuator.scales(&a).is_empty());
    l.source.set_age(SEC * 2);
    sleep(SEC).await;
    assert_eq!(
        l.actuator.scales(&a).first().map(|s| l.secs(s.1)),
        Some(10.0),
        "{:?}",
        l.reasons(&a)
    );
}

#[tokio::test(start_paused = true)]
async fn convergence_is_measured_when_every_new_replica_runs() {
    let a = web("a");
    let l = Loop::start(config(), |act, src| {
        act.add(a.clone(), &labels("2", &[]), 1);
        act.set_start_delay(SEC * 3);
        src.set_cpu(&a, 0.9);
    });
    sleep(SEC * 6).await;
    let records = l.records(&a);
    let converged: Vec<(u64, u32)> = records
        .iter()
        .filter_map(|r| r.converged_after_ms.map(|ms| (ms, r.current)))
        .collect();
    assert_eq!(converged, vec![(3000, 2)], "{records:?}");
    assert_eq!(records[0].action, Action::Scaled);
}

#[tokio::test(start_paused = true)]
async fn a_failed_scale_is_not_recorded_as_applied() {
    let dir = tempfile::tempdir().unwrap();
    // One replica more per minute: had the failed call been recorded as a scale-up, the retry
    // would be limited by it and never happen.
    std::fs::write(dir.path().join("web.yaml"), "service: web\nmin: 1\nmax: 4\nmetrics:\n  - name: cpu\n    target: { utilization: 50 }\nbehavior:\n  scale_up: { policies: [ { replicas: 1, period: 60s } ] }\n").unwrap();
    let a = web("a");
    let config = ControlConfig {
        policies_dir: Some(dir.path().to_path_buf()),
        ..config()
    };
    let l = Loop::start(config, |act, src| {
        act.add(a.clone(), &[], 1);
        src.set_cpu(&a, 0.9);
        act.fail_scales(1);
    });
    sleep(SEC * 10).await;
    let scales = l.actuator.scales(&a);
    assert_eq!(scales.len(), 2, "{scales:?}");
    assert_eq!((scales[0].0, scales[1].0), (2, 2));
    let retry = l.secs(scales[1].1);
    assert!(
        (1.6..=2.4).contains(&retry),
        "retried after one backoff: {retry}"
    );
    let records = l.records(&a);
    assert_eq!(records[0].action, Action::Failed);
    assert!(records[0]
        .error
        .as_deref()
        .unwrap()
        .contains("fake refusal"));
    // The successful scale-up is recorded: the next step waits for the rate policy's minute.
    let after: Vec<&str> = records[2..].iter().map(|r| r.reason.as_str()).collect();
    assert!(after.iter().all(|r| *r == "limited_by_rate"), "{after:?}");
    assert_eq!(l.actuator.spec(&a), 2);
}

#[tokio::test(start_paused = true)]
async fn dry_run_decides_every_tick_and_never_acts() {
    let a = web("a");
    let config = ControlConfig {
        dry_run: true,
        ..config()
    };
    let l = Loop::start(config, |act, src| {
        act.add(a.clone(), &labels("4", &[]), 2);
        src.set_cpu(&a, 0.9);
    });
    sleep(SEC * 30).await;
    assert!(l.actuator.scales(&a).is_empty());
    let records = l.records(&a);
    assert!(records.len() >= 30);
    // Unapplied, so no rate policy or stabilization ever sees a phantom scale-up.
    assert!(records
        .iter()
        .all(|r| r.action == Action::DryRun && (r.current, r.desired) == (2, 4)));
    assert_eq!(l.actuator.spec(&a), 2);
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_replica_is_not_ready_whatever_the_source_says() {
    // The fake source, like Prometheus, knows nothing of health checks; the actuator does.
    let (a, b) = (web("a"), web("b"));
    let l = Loop::start(config(), |act, src| {
        for id in [&a, &b] {
            act.add(id.clone(), &labels("4", &[]), 2);
            src.set_cpu(id, 0.9);
        }
        act.set_unhealthy(&b, 1);
    });
    sleep(SEC / 2).await;
    assert_eq!(l.actuator.scales(&a).first().map(|s| s.0), Some(4));
    // b: its unhealthy replica counts as using nothing on a scale-up, as the HPA counts an unready
    // pod: (0.9 + 0) / 2 cores against a 0.5 target is a ratio of 0.9, within tolerance.
    let r = &l.records(&b)[0];
    assert_eq!((r.current, r.desired), (2, 2), "{r:?}");
    assert!(l.actuator.scales(&b).is_empty());
}

#[tokio::test(start_paused = true)]
async fn replicas_all_unhealthy_under_load_are_not_stuck() {
    // HPA #64088: every replica fails its health check while busy. a: 90% of a core against 50%; b: the
    // same failures at 10% (a broken dependency, not load).
    let (a, b) = (web("a"), web("b"));
    let l = Loop::start(config(), |act, src| {
        act.set_start_delay(SEC * 5);
        act.add(a.clone(), &labels("6", &[]), 2);
        act.add(b.clone(), &labels("6", &[]), 2);
        src.set_cpu(&a, 0.9);
        src.set_cpu(&b, 0.1);
        for id in [&a, &b] {
            act.set_unhealthy(id, 0);
            act.set_unhealthy(id, 1);
        }
    });
    sleep(SEC / 2).await;
    // The unhealthy replicas count at their usage: ceil(90/50 * 2) = 4.
    assert_eq!(l.actuator.scales(&a), vec![(4, l.t0)]);
    let r = &l.records(&a)[0];
    assert_eq!(
        (r.current, r.desired, r.reason.as_str(), r.action),
        (2, 4, "all_replicas_unready", Action::Scaled)
    );
    // While the two new replicas start they count as idle: 180% over 4 cores is 45%, inside the band.
    sleep(SEC * 3).await;
    assert_eq!(l.actuator.scales(&a).len(), 1);
    assert_eq!(l.reasons(&a)[1..4], ["all_replicas_unready"; 3]);
    // They come up healthy and carry the load: the HPA's rules again, nothing more to do.
    sleep(SEC * 3).await;
    assert_eq!(l.reasons(&a).last(), Some(&"steady"));
    // Then they fail under load too: all four vote, 90/50 * 4 = 8, clamped to max 6.
    l.actuator.set_unhealthy(&a, 2);
    l.actuator.set_unhealthy(&a, 3);
    sleep(SEC).await;
    assert_eq!(l.actuator.scales(&a).last().map(|s| s.0), Some(6));
    assert_eq!(l.reasons(&a).last(), Some(&"all_replicas_unready"));
    // b never scales: its failures are not load.
    assert!(l.actuator.scales(&b).is_empty());
    assert!(l.reasons(&b).iter().all(|r| *r == "missing_data_hold"));
}

/// Starts the loop with the policy file `policy` (in a folder kept by the returned guard).
fn with_policy_file(
    policy: &str,
    setup: impl FnOnce(&FakeActuator, &FakeSource),
) -> (Loop, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.yaml"), policy).unwrap();
    let config = ControlConfig {
        policies_dir: Some(dir.path().to_path_buf()),
        ..config()
    };
    (Loop::start(config, setup), dir)
}

#[tokio::test(start_paused = true)]
async fn a_value_target_on_a_service_rate_scales_up_and_back_down() {
    let a = web("a");
    let policy = "service: web\nmin: 1\nmax: 8\nmetrics:\n  - name: orders\n    query: { metric: orders_total, rate: 10s, matchers: { status: ok } }\n    target: { value: 10 }\nbehavior:\n  scale_down: { stabilization: 0s }\n";
    let (l, _dir) = with_policy_file(policy, |act, src| {
        act.add(a.clone(), &[], 2);
        // 45 orders/s reported for the service by no container, and failures the matcher leaves out.
        src.set_unattributed_series(
            "orders_total",
            &[("service", "web"), ("status", "ok")],
            45.0,
        );
        src.set_unattributed_series(
            "orders_total",
            &[("service", "web"), ("status", "error")],
            1000.0,
        );
        // Another service's orders are not this one's.
        src.set_unattributed_series(
            "orders_total",
            &[("service", "api"), ("status", "ok")],
            500.0,
        );
    });
    sleep(SEC * 3).await;
    assert_eq!(l.actuator.spec(&a), 5, "ceil(45 / 10): {:?}", l.reasons(&a));
    let r = &l.records(&a)[0];
    assert_eq!(
        (r.metrics[0].current, r.metrics[0].missing),
        (Some(45.0), None)
    );
    l.source.set_unattributed_series(
        "orders_total",
        &[("service", "web"), ("status", "ok")],
        12.0,
    );
    sleep(SEC * 3).await;
    assert_eq!(l.actuator.spec(&a), 2, "ceil(12 / 10): {:?}", l.reasons(&a));
}

#[tokio::test(start_paused = true)]
async fn an_average_target_on_each_replicas_rate_scales_up() {
    let a = web("a");
    let policy = "service: web\nmin: 1\nmax: 8\nmetrics:\n  - name: jobs\n    query: { metric: jobs_total, rate: 30s }\n    target: { average: 2 }\n";
    let (l, _dir) = with_policy_file(policy, |act, src| {
        act.add(a.clone(), &[], 2);
        src.set_cpu(&a, 0.1);
        src.set_replica_series(&a, "jobs_total", &[("queue", "default")], 3.0);
    });
    sleep(SEC / 2).await;
    // 3 jobs/s on each of 2 replicas against 2: ceil(1.5 * 2) = 3.
    assert_eq!(l.actuator.scales(&a).first().map(|s| s.0), Some(3));
    assert_eq!(l.records(&a)[0].metrics[0].current, Some(3.0));
}

#[tokio::test(start_paused = true)]
async fn a_metric_no_source_has_does_not_vote_and_the_record_says_so() {
    let a = web("a");
    let policy = "service: web\nmin: 1\nmax: 8\nmetrics:\n  - name: cpu\n    target: { utilization: 50 }\n  - name: queue_depth\n    target: { value: 100 }\nbehavior:\n  scale_down: { stabilization: 0s }\n";
    let (l, _dir) = with_policy_file(policy, |act, src| {
        act.add(a.clone(), &[], 4);
        src.set_cpu(&a, 0.05);
    });
    sleep(SEC * 2 + SEC / 2).await;
    // CPU alone would scale 4 down to 1; a missing metric holds a scale-down, as in the HPA.
    assert!(l.actuator.scales(&a).is_empty());
    let records = l.records(&a);
    assert!(records
        .iter()
        .all(|r| r.reason.as_str() == "missing_data_hold"));
    let depth = &records[0].metrics[1];
    assert_eq!(depth.missing, Some(crate::policy::Missing::NoSeries));
    let json = serde_json::to_value(&records[0]).unwrap();
    assert_eq!(
        json["metrics"][1]["missing"], "no_series",
        "served on the API: {json}"
    );
    // The gauge appears: 150 queued for the service, ceil(150 / 100) = 2, over CPU's 1.
    l.source
        .set_unattributed_series("queue_depth", &[("service", "web")], 150.0);
    sleep(SEC * 2).await;
    assert_eq!(l.actuator.spec(&a), 2, "{:?}", l.reasons(&a));
    l.source.remove_series("queue_depth");
    sleep(SEC * 2).await;
    assert_eq!(
        l.records(&a).last().unwrap().reason.as_str(),
        "missing_data_hold"
    );
}
