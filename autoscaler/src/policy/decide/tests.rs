use proptest::prelude::*;

use super::*;
use crate::policy::behavior::TimedReplicas;
use crate::policy::model::{Target, Tolerance};
use crate::policy::observation::{ReplicaObservation, Sample};
use crate::policy::testutil::{obs, policy, silent, starting, unhealthy, usage, value};

/// A bare decision, for tests of what consumes decisions.
pub(crate) fn decision(
    current: u32,
    desired: u32,
    recommendation: Option<u32>,
    loads: &[(&str, f64)],
) -> Decision {
    let metrics = loads
        .iter()
        .map(|(name, load)| MetricDetail {
            load: Some(*load),
            load_per_replica_at_target: Some(1.0),
            ..MetricDetail::unread(name, "utilization", 50.0)
        })
        .collect();
    Decision {
        service: "web".into(),
        current,
        desired,
        reason: Reason::Steady,
        recommendation,
        predicted: None,
        metrics,
    }
}

fn cpu_replicas(n: usize, used: f64) -> Vec<ReplicaObservation> {
    (0..n)
        .map(|i| usage(&format!("r{i}"), "cpu", used, 1.0))
        .collect()
}

const NOW: Timestamp = Timestamp(1_700_000_000_000);

#[test]
fn reasons_have_stable_names() {
    let all = [
        (Reason::WithinTolerance, "within_tolerance"),
        (Reason::Steady, "steady"),
        (Reason::ScaleUp, "scale_up"),
        (Reason::ScaleDown, "scale_down"),
        (Reason::PredictedScaleUp, "predicted_scale_up"),
        (Reason::Stabilized, "stabilized"),
        (Reason::LimitedByRate, "limited_by_rate"),
        (Reason::ClampedToMin, "clamped_to_min"),
        (Reason::ClampedToMax, "clamped_to_max"),
        (Reason::MissingDataHold, "missing_data_hold"),
        (Reason::ScalingDisabled, "scaling_disabled"),
        (Reason::AllReplicasUnready, "all_replicas_unready"),
    ];
    for (r, s) in all {
        assert_eq!(r.as_str(), s);
        assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{s}\""));
    }
}

#[test]
fn several_metrics_take_the_max() {
    let p = policy(
        1,
        20,
        &[
            ("cpu", Target::Utilization(50)),
            ("rps", Target::Average(10.0)),
        ],
    );
    let mut rs = cpu_replicas(2, 0.75); // cpu asks for 3
    for r in &mut rs {
        r.metrics.insert("rps".into(), Sample::Value(25.0)); // rps asks for 5
    }
    let d = recommend(&p, &obs(2, rs));
    assert_eq!(
        (d.desired, d.reason, d.recommendation),
        (5, Reason::ScaleUp, Some(5))
    );
    assert_eq!(
        d.metrics.iter().map(|m| m.proposal).collect::<Vec<_>>(),
        vec![Some(3), Some(5)]
    );
}

#[test]
fn within_tolerance_and_steady() {
    let p = policy(1, 20, &[("cpu", Target::Utilization(50))]);
    let d = recommend(&p, &obs(4, cpu_replicas(4, 0.52)));
    assert_eq!((d.desired, d.reason), (4, Reason::WithinTolerance));
}

#[test]
fn out_of_range_current_is_clamped_before_metrics() {
    let p = policy(2, 5, &[("cpu", Target::Utilization(50))]);
    let d = decide(&p, &obs(8, cpu_replicas(8, 0.9)), &History::default(), NOW);
    assert_eq!(
        (d.desired, d.reason, d.recommendation),
        (5, Reason::ClampedToMax, None)
    );
    let d = decide(&p, &obs(1, cpu_replicas(1, 0.01)), &History::default(), NOW);
    assert_eq!((d.desired, d.reason), (2, Reason::ClampedToMin));
}

#[test]
fn zero_replicas_disables_scaling() {
    let p = policy(2, 5, &[("cpu", Target::Utilization(50))]);
    let d = decide(&p, &obs(0, vec![]), &History::default(), NOW);
    assert_eq!((d.desired, d.reason), (0, Reason::ScalingDisabled));
}

#[test]
fn missing_metric_holds_a_scale_down_but_not_a_scale_up() {
    let p = policy(
        1,
        20,
        &[
            ("cpu", Target::Utilization(50)),
            ("queue", Target::Value(10.0)),
        ],
    );
    let d = recommend(&p, &obs(4, cpu_replicas(4, 0.1)));
    assert_eq!(
        (d.desired, d.reason, d.recommendation),
        (4, Reason::MissingDataHold, None)
    );
    let d = recommend(&p, &obs(4, cpu_replicas(4, 0.9)));
    assert_eq!((d.desired, d.reason), (8, Reason::ScaleUp));
    let d = recommend(&p, &obs(4, vec![silent("a", false, "cpu", 1.0)]));
    assert_eq!(
        (d.desired, d.reason),
        (4, Reason::MissingDataHold),
        "no metric can vote"
    );
}

#[test]
fn recommend_clamps_and_decide_applies_behavior() {
    let p = policy(2, 10, &[("cpu", Target::Utilization(50))]);
    let d = recommend(&p, &obs(4, cpu_replicas(4, 2.0)));
    assert_eq!(
        (d.desired, d.reason, d.recommendation),
        (10, Reason::ClampedToMax, Some(16))
    );
    let d = recommend(&p, &obs(4, cpu_replicas(4, 0.01)));
    assert_eq!((d.desired, d.reason), (2, Reason::ClampedToMin));

    let d = decide(&p, &obs(2, cpu_replicas(2, 2.0)), &History::default(), NOW);
    assert_eq!(
        (d.desired, d.reason),
        (6, Reason::LimitedByRate),
        "2 -> 8 asked, rate allows 6"
    );
    let h = History {
        recommendations: vec![TimedReplicas {
            at: NOW.minus(std::time::Duration::from_secs(60)),
            replicas: 4,
        }],
        ..History::default()
    };
    let d = decide(&p, &obs(4, cpu_replicas(4, 0.2)), &h, NOW);
    assert_eq!(
        (d.desired, d.reason, d.recommendation),
        (4, Reason::Stabilized, Some(2))
    );
}

#[test]
fn decision_json_has_desired_reason_and_metrics() {
    let p = policy(1, 20, &[("rps", Target::Average(10.0))]);
    let d = recommend(
        &p,
        &obs(2, vec![value("a", "rps", 30.0), value("b", "rps", 30.0)]),
    );
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["desired"], 6);
    assert_eq!(v["reason"], "scale_up");
    assert_eq!(v["metrics"][0]["name"], "rps");
    assert_eq!(v["metrics"][0]["proposal"], 6);
    assert_eq!(v["metrics"][0]["status"], "scale_up");
}

// ---- properties ----

/// Independent oracle for the HPA utilization ratio of ready replicas (milli-unit integer percent).
fn oracle_ratio(replicas: &[(f64, f64)], target: u32) -> f64 {
    let used: i64 = replicas
        .iter()
        .map(|(u, _)| (u * 1000.0).round() as i64)
        .sum();
    let cap: i64 = replicas
        .iter()
        .map(|(_, c)| (c * 1000.0).round() as i64)
        .sum();
    (used * 100 / cap) as f64 / f64::from(target)
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (1u32..10, 0u32..30, 10u32..150, 0.0f64..0.5, 0.0f64..0.5).prop_map(
        |(min, span, target, up, down)| {
            let mut p = policy(min, min + span, &[("cpu", Target::Utilization(target))]);
            p.tolerance = Tolerance { up, down };
            p
        },
    )
}

/// (used, capacity, ready, has_sample) per replica.
fn arb_replicas() -> impl Strategy<Value = Vec<(f64, f64, bool, bool)>> {
    prop::collection::vec(
        (
            0.0f64..4.0,
            0.5f64..4.0,
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.9),
        ),
        1..25,
    )
}

fn build(current: u32, rs: &[(f64, f64, bool, bool)]) -> Observation {
    let replicas = rs
        .iter()
        .enumerate()
        .map(|(i, &(used, cap, ready, has))| {
            let mut r = if has {
                usage(&format!("r{i}"), "cpu", used, cap)
            } else {
                silent(&format!("r{i}"), true, "cpu", cap)
            };
            r.ready = ready;
            r
        })
        .collect();
    obs(current, replicas)
}

fn arb_history() -> impl Strategy<Value = History> {
    let recs = prop::collection::vec((0i64..600, 1u32..60), 0..12);
    let ups = prop::collection::vec((0i64..30, 1u32..6), 0..3);
    let downs = prop::collection::vec((0i64..30, 1u32..6), 0..3);
    (recs, ups, downs).prop_map(|(recs, ups, downs)| {
        let timed = |v: Vec<(i64, u32)>| {
            v.into_iter()
                .map(|(ago, r)| TimedReplicas {
                    at: Timestamp(NOW.0 - ago * 1000),
                    replicas: r,
                })
                .collect()
        };
        History {
            recommendations: timed(recs),
            scale_up_events: timed(ups),
            scale_down_events: timed(downs),
            ..History::default()
        }
    })
}

proptest! {
    #[test]
    fn result_is_within_bounds(p in arb_policy(), current in 1u32..60, rs in arb_replicas(), h in arb_history()) {
        let d = decide(&p, &build(current, &rs), &h, NOW);
        prop_assert!(p.min <= d.desired && d.desired <= p.max, "{} not in [{}, {}]", d.desired, p.min, p.max);
    }

    #[test]
    fn within_tolerance_keeps_current(p in arb_policy(), rs in prop::collection::vec((0.0f64..4.0, 0.5f64..4.0), 1..25), h in arb_history()) {
        let current = (rs.len() as u32).clamp(p.min, p.max);
        let Target::Utilization(target) = p.metrics[0].target else { unreachable!() };
        let pairs: Vec<_> = rs.iter().map(|&(u, c)| (u, c)).collect();
        prop_assume!(p.tolerance.contains(oracle_ratio(&pairs, target)));
        let all_ready: Vec<_> = rs.iter().map(|&(u, c)| (u, c, true, true)).collect();
        let d = decide(&p, &build(current, &all_ready), &h, NOW);
        // Stabilization may still hold an earlier recommendation, but the metric itself keeps the count.
        prop_assert_eq!(d.recommendation, Some(current));
        prop_assert_eq!(recommend(&p, &build(current, &all_ready)).desired, current);
    }

    #[test]
    fn never_moves_against_the_ratio(p in arb_policy(), rs in arb_replicas(), h in arb_history(), extra in 0u32..5) {
        let current = ((rs.len() as u32) + extra).clamp(p.min, p.max);
        let o = build(current, &rs);
        let d = decide(&p, &o, &h, NOW);
        if let Some(ratio) = d.metrics[0].ratio {
            if ratio > 1.0 { prop_assert!(d.desired >= current, "ratio {ratio} but {current} -> {}", d.desired); }
            if ratio < 1.0 { prop_assert!(d.desired <= current, "ratio {ratio} but {current} -> {}", d.desired); }
        }
    }

    #[test]
    fn scale_down_window_never_goes_below_its_max_recommendation(p in arb_policy(), rs in arb_replicas(), h in arb_history(), extra in 0u32..5) {
        let current = ((rs.len() as u32) + extra).clamp(p.min, p.max);
        let d = decide(&p, &build(current, &rs), &h, NOW);
        let window = NOW.minus(p.behavior.scale_down.stabilization);
        let max_in_window = h.recommendations.iter().filter(|r| r.at > window).map(|r| r.replicas).max();
        if let (Some(max_rec), Some(_)) = (max_in_window, d.recommendation) {
            prop_assert!(d.desired >= max_rec.min(current).clamp(p.min, p.max), "{} < min({max_rec}, {current})", d.desired);
        }
    }
}

fn arb_load_history() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(0.0f64..40.0, 0..60)
}

proptest! {
    #[test]
    fn prediction_never_goes_below_the_reactive_answer(p in arb_policy(), rs in arb_replicas(), h in arb_history(), loads in arb_load_history(), extra in 0u32..5) {
        let current = ((rs.len() as u32) + extra).clamp(p.min, p.max);
        let o = build(current, &rs);
        let mut h = h;
        let samples = loads.iter().enumerate().map(|(i, &v)| crate::policy::behavior::LoadSample {
            at: Timestamp(NOW.0 - (loads.len() - i) as i64 * 300_000), value: v }).collect();
        h.load.insert("cpu".into(), samples);
        let reactive = decide(&p, &o, &h, NOW);
        let mut predictive = p.clone();
        predictive.predictive.enabled = true;
        let d = decide(&predictive, &o, &h, NOW);
        prop_assert!(d.desired >= reactive.desired, "{} < reactive {}", d.desired, reactive.desired);
        prop_assert!(d.desired <= p.max);
    }
}

fn all_unhealthy(n: usize, used: f64) -> Vec<ReplicaObservation> {
    (0..n)
        .map(|i| unhealthy(&format!("u{i}"), "cpu", used, 1.0))
        .collect()
}

#[test]
fn all_replicas_unhealthy_under_load_scale_up_with_a_typed_reason() {
    // HPA #64088: 4 replicas all failing their check at 100% CPU, target 70: ceil(100/70 * 4) = 6.
    let p = policy(1, 20, &[("cpu", Target::Utilization(70))]);
    let d = decide(&p, &obs(4, all_unhealthy(4, 1.0)), &History::default(), NOW);
    assert_eq!(
        (d.desired, d.reason, d.recommendation),
        (6, Reason::AllReplicasUnready, Some(6))
    );
    // While the 2 new replicas start, the 4 unhealthy ones over 6 are at 95%: inside the band, hold
    // with the same reason.
    let mut rs = all_unhealthy(4, 1.0);
    rs.push(starting("s0", "cpu", 0.3, 1.0));
    rs.push(starting("s1", "cpu", 0.3, 1.0));
    let d = decide(&p, &obs(6, rs), &History::default(), NOW);
    assert_eq!((d.desired, d.reason), (6, Reason::AllReplicasUnready));
}

#[test]
fn all_unready_scale_up_is_bounded_by_rate_policies_and_max() {
    // 10 replicas at 100% against 20%: the vote is 50. The HPA default allows +100% per 15 s: 20.
    let p = policy(1, 100, &[("cpu", Target::Utilization(20))]);
    let d = decide(
        &p,
        &obs(10, all_unhealthy(10, 1.0)),
        &History::default(),
        NOW,
    );
    // The reason stays all_replicas_unready: the recommendation shows what the rate held back.
    assert_eq!(
        (d.desired, d.reason, d.recommendation),
        (20, Reason::AllReplicasUnready, Some(50))
    );
    assert_eq!(d.metrics[0].status, MetricStatus::AllReplicasUnready);
    // And by max; at max already, it holds there for the same reason.
    let p = policy(1, 12, &[("cpu", Target::Utilization(20))]);
    for current in [10, 12] {
        let o = obs(current, all_unhealthy(current as usize, 1.0));
        let d = decide(&p, &o, &History::default(), NOW);
        assert_eq!((d.desired, d.reason), (12, Reason::AllReplicasUnready));
    }
}

#[test]
fn all_unhealthy_without_load_holds_for_missing_data() {
    // Failing at 10% CPU: not load; the count holds as before, and nothing scales down either.
    let p = policy(1, 20, &[("cpu", Target::Utilization(70))]);
    let d = decide(&p, &obs(4, all_unhealthy(4, 0.1)), &History::default(), NOW);
    assert_eq!(
        (d.desired, d.reason, d.recommendation),
        (4, Reason::MissingDataHold, None)
    );
}

proptest! {
    /// Whatever unhealthy and starting replicas report, the unready rule never scales down, and stays
    /// within max and the HPA's default scale-up rate (double, or +4, per 15 s).
    #[test]
    fn all_unready_never_scales_down_nor_beyond_the_rate(
        unhealthy_used in proptest::collection::vec(0.0f64..2.0, 1..12),
        starting_n in 0usize..6,
        target in 10u32..100,
        max in 1u32..40,
    ) {
        let p = policy(1, max, &[("cpu", Target::Utilization(target))]);
        let mut rs: Vec<_> = unhealthy_used
            .iter()
            .enumerate()
            .map(|(i, u)| unhealthy(&format!("u{i}"), "cpu", *u, 1.0))
            .collect();
        rs.extend((0..starting_n).map(|i| starting(&format!("s{i}"), "cpu", 1.0, 1.0)));
        let current = rs.len() as u32;
        prop_assume!(current <= max);
        let d = decide(&p, &obs(current, rs), &History::default(), NOW);
        prop_assert!(d.desired >= current);
        prop_assert!(d.desired <= max.min((current * 2).max(current + 4)));
    }
}
