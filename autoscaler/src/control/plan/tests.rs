use super::*;
use crate::control::source::ContainerSample;
use crate::control::target::{Health, Replica};
use crate::policy::parse_policy;

const NOW: Timestamp = Timestamp(1_000_000_000);
const STALE: Duration = Duration::from_secs(3);

fn policy(extra: &str) -> Policy {
    parse_policy("t.yaml", &format!("service: web\nmin: 1\nmax: 8\nmetrics:\n  - name: cpu\n    target: {{ utilization: 50 }}\n{extra}")).unwrap()
}

fn replica(n: u32) -> Replica {
    Replica {
        id: format!("t{n}"),
        container_id: Some(format!("c{n}")),
        running: true,
        started_at: Some(NOW.minus(Duration::from_secs(60))),
        health: Health::None,
    }
}

fn state(n: u32) -> TargetState {
    TargetState {
        spec_replicas: n,
        replicas: (0..n).map(replica).collect(),
        updating: false,
        pending: 0,
        cpu_reservation_cores: None,
        memory_reservation_bytes: None,
    }
}

fn cpu(used: f64, limit: Option<f64>) -> ContainerSample {
    ContainerSample {
        at: Some(NOW.minus(Duration::from_secs(1))),
        cpu_cores: Some(used),
        cpu_limit_cores: limit,
        ..Default::default()
    }
}

fn samples(n: u32, s: ContainerSample) -> Readings {
    Readings {
        containers: (0..n).map(|k| (format!("c{k}"), s.clone())).collect(),
        ..Default::default()
    }
}

fn ok(s: &Readings) -> SourceReading<'_> {
    SourceReading {
        samples: Ok(s),
        consecutive_failures: 0,
    }
}

#[test]
fn busy_replicas_scale_up_as_the_hpa_computes() {
    let s = samples(2, cpu(0.9, Some(1.0)));
    let p = plan(
        &policy(""),
        &History::default(),
        &state(2),
        ok(&s),
        false,
        NOW,
        STALE,
    );
    // 90% against a 50% target on 2 replicas: ceil(1.8 * 2) = 4.
    assert_eq!(
        (p.current, p.desired, p.cause),
        (2, 4, Cause::Decided(Reason::ScaleUp))
    );
    assert!(p.needs_action(&state(2)));
}

#[test]
fn holds_while_paused_or_updating() {
    let s = samples(2, cpu(0.9, Some(1.0)));
    let p = plan(
        &policy(""),
        &History::default(),
        &state(2),
        ok(&s),
        true,
        NOW,
        STALE,
    );
    assert_eq!((p.desired, p.cause), (2, Cause::Hold(Hold::Paused)));
    let mut st = state(2);
    st.updating = true;
    let p = plan(
        &policy(""),
        &History::default(),
        &st,
        ok(&s),
        false,
        NOW,
        STALE,
    );
    assert_eq!(
        (p.desired, p.cause),
        (2, Cause::Hold(Hold::UpdateInProgress))
    );
    assert!(!p.needs_action(&st));
}

#[test]
fn a_failing_source_holds_then_falls_back() {
    let err = SourceError::Unavailable("down".into());
    let reading = |n| SourceReading {
        samples: Err(&err),
        consecutive_failures: n,
    };
    let p = plan(
        &policy(""),
        &History::default(),
        &state(3),
        reading(5),
        false,
        NOW,
        STALE,
    );
    assert_eq!((p.desired, p.cause), (3, Cause::Hold(Hold::SourceError)));
    let with_fallback = policy("fallback: { replicas: 6, after: 2 }\n");
    let p = plan(
        &with_fallback,
        &History::default(),
        &state(3),
        reading(1),
        false,
        NOW,
        STALE,
    );
    assert_eq!(p.cause, Cause::Hold(Hold::SourceError));
    let p = plan(
        &with_fallback,
        &History::default(),
        &state(3),
        reading(2),
        false,
        NOW,
        STALE,
    );
    assert_eq!((p.desired, p.cause), (6, Cause::Fallback));
    assert!(p.needs_action(&state(3)));
}

#[test]
fn stale_samples_hold() {
    let mut old = cpu(0.9, Some(1.0));
    old.at = Some(NOW.minus(Duration::from_secs(4)));
    let s = samples(2, old);
    let p = plan(
        &policy(""),
        &History::default(),
        &state(2),
        ok(&s),
        false,
        NOW,
        STALE,
    );
    assert_eq!((p.desired, p.cause), (2, Cause::Hold(Hold::Stale)));
}

#[test]
fn readiness_follows_start_time_health_and_samples() {
    let p = policy("initialization: 30s\n");
    let mut st = state(6);
    st.replicas[1].started_at = Some(NOW.minus(Duration::from_secs(10)));
    st.replicas[2].health = Health::Unhealthy;
    st.replicas[4].health = Health::Starting;
    st.replicas[5].health = Health::Healthy;
    // Every replica has a sample except c3: sources carry no health, the actuator does.
    let mut s = samples(6, cpu(0.4, Some(1.0)));
    s.containers.remove("c3");
    let obs = observation(&p, &st, &s, NOW, STALE).unwrap();
    let ready: Vec<bool> = obs.replicas.iter().map(|r| r.ready).collect();
    assert_eq!(ready, vec![true, false, false, false, false, true]);
    assert_eq!(obs.current_replicas, 6);
    assert!(obs.replicas[3].metrics.is_empty());
}

#[test]
fn failing_checks_mark_replicas_unhealthy_but_starting_ones_only_after_initialization() {
    let p = policy("initialization: 30s\n");
    let mut st = state(6);
    st.replicas[0].health = Health::Unhealthy;
    // Started 60 s ago and still not healthy: its check fails (Swarm shows such a task as starting).
    st.replicas[1].health = Health::Starting;
    // Started 10 s ago: merely starting.
    st.replicas[2].health = Health::Starting;
    st.replicas[2].started_at = Some(NOW.minus(Duration::from_secs(10)));
    st.replicas[3].health = Health::Unhealthy;
    st.replicas[3].running = false;
    // A Swarm task whose check has not passed is in state starting, not running; its container runs.
    st.replicas[5].health = Health::Starting;
    st.replicas[5].running = false;
    let s = samples(6, cpu(0.9, Some(1.0)));
    let obs = observation(&p, &st, &s, NOW, STALE).unwrap();
    let unhealthy: Vec<bool> = obs.replicas.iter().map(|r| r.unhealthy).collect();
    assert_eq!(unhealthy, vec![true, true, false, false, false, true]);
    assert!(!obs.replicas[5].ready);
    let all_failing = {
        let mut st = st.clone();
        st.replicas.truncate(2);
        st.spec_replicas = 2;
        st
    };
    let p = plan(
        &p,
        &History::default(),
        &all_failing,
        ok(&s),
        false,
        NOW,
        STALE,
    );
    // With only the two failing replicas: 90/50 * 2 = 3.6, 4.
    assert_eq!(
        (p.desired, p.cause),
        (4, Cause::Decided(Reason::AllReplicasUnready))
    );
}

#[test]
fn a_reservation_is_the_capacity_of_an_unlimited_container() {
    let mut st = state(1);
    st.cpu_reservation_cores = Some(0.5);
    let s = samples(1, cpu(0.25, None));
    let obs = observation(&policy(""), &st, &s, NOW, STALE).unwrap();
    assert_eq!(
        obs.replicas[0].metrics["cpu"],
        Sample::Usage {
            used: 0.25,
            capacity: 0.5
        }
    );
    // Neither limit nor reservation: no capacity, so the metric is missing for that replica.
    let obs = observation(&policy(""), &state(1), &s, NOW, STALE).unwrap();
    assert!(obs.replicas[0].metrics.is_empty() && obs.replicas[0].capacity.is_empty());
}

#[test]
fn pending_work_is_converged_even_at_the_right_count() {
    let s = samples(2, cpu(0.5, Some(1.0)));
    let mut st = state(2);
    st.pending = 1;
    let p = plan(
        &policy(""),
        &History::default(),
        &st,
        ok(&s),
        false,
        NOW,
        STALE,
    );
    assert_eq!(p.desired, 2);
    assert!(p.needs_action(&st));
}
