//! The pure step on its own: plan + outcome -> record, history and requeue. The same step driven by
//! the real loop with fakes in paused time is in `runner/tests.rs`.

use super::*;
use crate::control::explain::Action;
use crate::control::source::ContainerSample;
use crate::control::target::{Health, Replica};
use crate::policy::{parse_policy, Reason};

const INTERVAL: Duration = Duration::from_secs(1);

fn id() -> TargetId {
    TargetId::Compose {
        project: "a".into(),
        service: "web".into(),
    }
}

fn policy(extra: &str) -> Policy {
    parse_policy(
        "t.yaml",
        &format!("service: web\nmin: 1\nmax: 8\nmetrics:\n  - name: cpu\n    target: {{ utilization: 50 }}\n{extra}"),
    )
    .unwrap()
}

fn now(start: Instant, secs: u64) -> Now {
    Now {
        wall: Timestamp::from_secs(1_000_000 + secs as i64),
        mono: start + Duration::from_secs(secs),
    }
}

/// `running` of `spec` replicas run, started long before `at`.
fn state(spec: u32, running: u32, at: Now) -> TargetState {
    TargetState {
        spec_replicas: spec,
        replicas: (0..spec)
            .map(|n| Replica {
                id: format!("t{n}"),
                container_id: Some(format!("c{n}")),
                running: n < running,
                started_at: (n < running).then(|| at.wall.minus(Duration::from_secs(600))),
                health: Health::None,
            })
            .collect(),
        updating: false,
        pending: 0,
        cpu_reservation_cores: None,
        memory_reservation_bytes: None,
    }
}

/// Every replica at `cores` of a one-core limit, sampled at `at`.
fn busy(n: u32, cores: f64, at: Now) -> Readings {
    let containers = (0..n)
        .map(|k| {
            let s = ContainerSample {
                at: Some(at.wall),
                cpu_cores: Some(cores),
                cpu_limit_cores: Some(1.0),
                ..Default::default()
            };
            (format!("c{k}"), s)
        })
        .collect();
    Readings {
        containers,
        ..Default::default()
    }
}

/// Plans one tick of 2 replicas at 90% of a 50% target (the HPA asks for 4) and settles it with `acted`.
fn busy_tick(mem: &mut Memory, p: &Policy, acted: Acted, at: Now) -> Step {
    let st = state(2, 2, at);
    let s = busy(2, 0.9, at);
    let planned = mem.plan(p, &st, Ok(&s), false, INTERVAL, at);
    assert_eq!((planned.current, planned.desired), (2, 4));
    mem.settle(&id(), p, planned, acted, INTERVAL, at)
}

#[test]
fn a_scaled_plan_enters_the_history_as_applied() {
    let t0 = Instant::now();
    let p = policy("");
    let mut mem = Memory::new(1);
    let step = busy_tick(&mut mem, &p, Acted::Scaled, now(t0, 0));
    let r = &step.record;
    assert_eq!((r.current, r.desired, r.action), (2, 4, Action::Scaled));
    assert_eq!(r.reason, Cause::Decided(Reason::ScaleUp));
    assert_eq!(r.target, "compose/a/web");
    assert_eq!(mem.history.scale_up_events.len(), 1);
    assert_eq!(mem.history.scale_up_events[0].replicas, 2);
    assert_eq!(step.requeue_after, INTERVAL);
}

#[test]
fn a_failed_or_dry_run_scale_enters_the_history_as_keeping_the_count() {
    let t0 = Instant::now();
    let p = policy("");
    for acted in [Acted::Failed("refused".into()), Acted::DryRun] {
        let mut mem = Memory::new(1);
        let step = busy_tick(&mut mem, &p, acted.clone(), now(t0, 0));
        assert!(
            mem.history.scale_up_events.is_empty(),
            "{acted:?}: no scale event that did not happen"
        );
        // The recommendation still counts for stabilization, as the HPA keeps it (after the count
        // found at the first look).
        let recs: Vec<u32> = mem
            .history
            .recommendations
            .iter()
            .map(|r| r.replicas)
            .collect();
        assert_eq!(recs, [2, 4]);
        // The record says what was wanted and that it was not done.
        assert_eq!((step.record.current, step.record.desired), (2, 4));
        assert_eq!(step.record.recommendation, Some(4));
    }
    let mut mem = Memory::new(1);
    let step = busy_tick(&mut mem, &p, Acted::Failed("refused".into()), now(t0, 0));
    assert_eq!(step.record.action, Action::Failed);
    assert_eq!(step.record.error.as_deref(), Some("refused"));
    let step = busy_tick(&mut mem, &p, Acted::DryRun, now(t0, 0));
    assert_eq!(
        (step.record.action, step.record.error),
        (Action::DryRun, None)
    );
}

#[test]
fn a_rate_capped_plan_is_rewritten_to_a_hold_at_the_current_count() {
    let t0 = Instant::now();
    let p = policy("");
    let mut mem = Memory::new(1);
    let step = busy_tick(&mut mem, &p, Acted::RateCapped, now(t0, 0));
    let r = &step.record;
    assert_eq!((r.current, r.desired), (2, 2));
    assert_eq!(r.reason, Cause::Hold(Hold::RateCapped));
    assert_eq!((r.reason_kind, r.action), ("hold", Action::None));
    assert_eq!(r.recommendation, Some(4), "what the policy wanted is kept");
    assert!(mem.history.scale_up_events.is_empty());
    assert_eq!(
        step.requeue_after, INTERVAL,
        "a capped target retries next tick"
    );
}

#[test]
fn intent_acts_only_on_a_difference_within_the_budget_and_never_in_dry_run() {
    let t0 = Instant::now();
    let at = now(t0, 0);
    let p = policy("");
    let mut mem = Memory::new(1);
    let st = state(2, 2, at);
    let s = busy(2, 0.9, at);
    let planned = mem.plan(&p, &st, Ok(&s), false, INTERVAL, at);
    let mut budget = ActionBudget::new(1);
    assert_eq!(
        intent(&planned, &st, true, &mut budget, at.mono),
        Intent::DryRun
    );
    assert!(
        budget.take(at.mono),
        "a dry run takes nothing from the budget"
    );
    assert_eq!(
        intent(&planned, &st, false, &mut budget, at.mono),
        Intent::RateCapped
    );
    let mut budget = ActionBudget::new(1);
    assert_eq!(
        intent(&planned, &st, false, &mut budget, at.mono),
        Intent::Scale(4)
    );
    let idle = busy(2, 0.5, at);
    let steady = mem.plan(&p, &st, Ok(&idle), false, INTERVAL, at);
    assert_eq!(
        intent(&steady, &st, false, &mut ActionBudget::new(1), at.mono),
        Intent::Nothing
    );
}

#[test]
fn the_action_budget_caps_actions_over_a_sliding_minute() {
    let t0 = Instant::now();
    let mut b = ActionBudget::new(2);
    assert!(b.take(t0) && b.take(t0 + Duration::from_secs(10)));
    assert!(!b.take(t0 + Duration::from_secs(30)));
    assert!(
        b.take(t0 + Duration::from_secs(60)),
        "the first action left the window"
    );
    assert!(!b.take(t0 + Duration::from_secs(61)));
    assert!(b.take(t0 + Duration::from_secs(70)));
}

#[test]
fn backoff_doubles_with_jitter_up_to_the_cap_and_resets_after_success() {
    let t0 = Instant::now();
    let p = policy("");
    let mut mem = Memory::new(7);
    let err = ActuatorError::Unreachable("down".into());
    let waits: Vec<Duration> = (0..8)
        .map(|_| {
            mem.observe_failed(&id(), &err, INTERVAL, now(t0, 0))
                .requeue_after
        })
        .collect();
    for (k, w) in waits.iter().enumerate() {
        let base = INTERVAL.saturating_mul(1 << (k + 1)).min(MAX_BACKOFF);
        assert!(
            *w >= base.mul_f64(0.8) && *w <= base.mul_f64(1.2),
            "attempt {k}: {w:?} vs {base:?}"
        );
    }
    assert!(waits[7] <= MAX_BACKOFF.mul_f64(1.2));
    let step = mem.observe_failed(&id(), &err, INTERVAL, now(t0, 0));
    assert_eq!(step.record.reason, Cause::Hold(Hold::DockerError));
    assert_eq!(
        step.record.error.as_deref(),
        Some("Docker engine unreachable: down")
    );
    // A failed scale backs off too; any other outcome resets.
    let failed = busy_tick(&mut mem, &p, Acted::Failed("x".into()), now(t0, 0));
    assert!(
        failed.requeue_after >= Duration::from_secs(48),
        "{failed:?}"
    );
    let ok = busy_tick(&mut mem, &p, Acted::DryRun, now(t0, 0));
    assert_eq!(ok.requeue_after, INTERVAL);
    let again = mem.observe_failed(&id(), &err, INTERVAL, now(t0, 0));
    assert!(
        again.requeue_after <= Duration::from_millis(2400),
        "{again:?}"
    );
    // The same seed gives the same waits.
    let mut twin = Memory::new(7);
    let first = twin.observe_failed(&id(), &err, INTERVAL, now(t0, 0));
    assert_eq!(first.requeue_after, waits[0]);
}

#[test]
fn convergence_is_measured_from_the_action_to_the_tick_that_sees_every_replica_running() {
    let t0 = Instant::now();
    let p = policy("");
    let mut mem = Memory::new(1);
    busy_tick(&mut mem, &p, Acted::Scaled, now(t0, 0));
    let quiet = |mem: &mut Memory, st: &TargetState, at: Now| {
        let s = busy(st.running(), 0.5, at);
        let planned = mem.plan(&p, st, Ok(&s), false, INTERVAL, at);
        mem.settle(&id(), &p, planned, Acted::Nothing, INTERVAL, at)
    };
    let at = now(t0, 1);
    assert_eq!(
        quiet(&mut mem, &state(4, 2, at), at)
            .record
            .converged_after_ms,
        None
    );
    let at = now(t0, 3);
    let done = quiet(&mut mem, &state(4, 4, at), at);
    assert_eq!(done.record.converged_after_ms, Some(3000));
    let at = now(t0, 4);
    assert_eq!(
        quiet(&mut mem, &state(4, 4, at), at)
            .record
            .converged_after_ms,
        None,
        "reported once"
    );
    // Someone else changed the count before it converged: nothing to measure.
    busy_tick(&mut mem, &p, Acted::Scaled, now(t0, 10));
    let at = now(t0, 11);
    quiet(&mut mem, &state(3, 3, at), at);
    let at = now(t0, 12);
    assert_eq!(
        quiet(&mut mem, &state(4, 4, at), at)
            .record
            .converged_after_ms,
        None
    );
}

#[test]
fn source_failures_count_in_a_row_and_reset_on_an_answer() {
    let t0 = Instant::now();
    let at = now(t0, 0);
    let p = policy("fallback: { replicas: 6, after: 2 }\n");
    let mut mem = Memory::new(1);
    let st = state(2, 2, at);
    let err = SourceError::Unavailable("down".into());
    let first = mem.plan(&p, &st, Err(&err), false, INTERVAL, at);
    assert_eq!(first.cause, Cause::Hold(Hold::SourceError));
    let second = mem.plan(&p, &st, Err(&err), false, INTERVAL, at);
    assert_eq!((second.cause, second.desired), (Cause::Fallback, 6));
    assert_eq!(mem.source_failures(), 2);
    let s = busy(2, 0.5, at);
    mem.plan(&p, &st, Ok(&s), false, INTERVAL, at);
    assert_eq!(mem.source_failures(), 0);
    let again = mem.plan(&p, &st, Err(&err), false, INTERVAL, at);
    assert_eq!(again.cause, Cause::Hold(Hold::SourceError));
}

#[test]
fn samples_older_than_three_intervals_hold_as_stale() {
    let t0 = Instant::now();
    let at = now(t0, 100);
    let mut mem = Memory::new(1);
    let st = state(2, 2, at);
    let old = busy(2, 0.9, now(t0, 96));
    let planned = mem.plan(&policy(""), &st, Ok(&old), false, INTERVAL, at);
    assert_eq!(planned.cause, Cause::Hold(Hold::Stale));
    let recent = busy(2, 0.9, now(t0, 97));
    let planned = mem.plan(&policy(""), &st, Ok(&recent), false, INTERVAL, at);
    assert_eq!(planned.cause, Cause::Decided(Reason::ScaleUp));
}

#[test]
fn the_count_found_at_the_first_look_holds_scale_downs_for_one_window() {
    // As the HPA's recordInitialRecommendation: a (re)started loop does not scale an idle target down
    // before the scale-down stabilization window (300s by default) has passed since it first looked.
    let t0 = Instant::now();
    let p = policy("");
    let mut mem = Memory::new(1);
    let tick = |mem: &mut Memory, secs: u64| {
        let at = now(t0, secs);
        let st = state(4, 4, at);
        let s = busy(4, 0.1, at);
        mem.plan(&p, &st, Ok(&s), false, INTERVAL, at)
    };
    let first = tick(&mut mem, 0);
    assert_eq!(
        (first.desired, first.cause),
        (4, Cause::Decided(Reason::Stabilized))
    );
    assert_eq!(tick(&mut mem, 299).desired, 4);
    assert_eq!(tick(&mut mem, 300).desired, 1, "the window is over");
}
