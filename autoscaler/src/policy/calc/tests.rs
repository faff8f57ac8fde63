use std::time::Duration;

use super::*;
use crate::policy::testutil::{obs, silent, starting, unhealthy, usage, value};

const CPU: &str = "cpu";

fn cpu(target: u32) -> MetricSpec {
    MetricSpec::new(CPU, Target::Utilization(target))
}

fn run(spec: &MetricSpec, o: &Observation) -> MetricDetail {
    compute(spec, o, Tolerance::default(), o.current_replicas)
}

#[test]
fn utilization_scale_up_uses_integer_percent() {
    // 1.5 of 3.0 cores = 50% against 30%: ratio 5/3, ceil(5/3 * 3) = 5.
    let o = obs(
        3,
        vec![
            usage("a", CPU, 0.3, 1.0),
            usage("b", CPU, 0.5, 1.0),
            usage("c", CPU, 0.7, 1.0),
        ],
    );
    let d = run(&cpu(30), &o);
    assert_eq!(d.current, Some(50.0));
    assert_eq!(d.proposal, Some(5));
    assert_eq!(d.status, MetricStatus::ScaleUp);
    assert_eq!(d.counted, 3);
}

#[test]
fn utilization_is_floored_like_the_hpa() {
    // 1.605 of 2.0 cores is 80.25%, which the HPA reads as 80%: exactly on target even with zero tolerance.
    let o = obs(
        2,
        vec![usage("a", CPU, 0.805, 1.0), usage("b", CPU, 0.8, 1.0)],
    );
    let d = compute(&cpu(80), &o, Tolerance::symmetric(0.0), 2);
    assert_eq!(d.current, Some(80.0));
    assert_eq!(
        (d.proposal, d.status),
        (Some(2), MetricStatus::WithinTolerance)
    );
    // 0.29 of a core must read as 29%, not 28% through float error.
    let o = obs(1, vec![usage("a", CPU, 0.29, 1.0)]);
    assert_eq!(run(&cpu(29), &o).current, Some(29.0));
}

#[test]
fn within_tolerance_keeps_current() {
    let o = obs(
        4,
        (0..4)
            .map(|i| usage(&format!("r{i}"), CPU, 0.55, 1.0))
            .collect(),
    );
    let d = run(&cpu(50), &o); // ratio 1.1, tolerance 0.1
    assert_eq!(
        (d.proposal, d.status),
        (Some(4), MetricStatus::WithinTolerance)
    );
}

#[test]
fn per_direction_tolerance() {
    let tol = Tolerance {
        up: 0.05,
        down: 0.2,
    };
    let up = obs(
        4,
        (0..4)
            .map(|i| usage(&format!("r{i}"), CPU, 0.54, 1.0))
            .collect(),
    );
    assert_eq!(
        compute(&cpu(50), &up, tol, 4).status,
        MetricStatus::ScaleUp,
        "1.08 > 1 + 0.05"
    );
    let down = obs(
        4,
        (0..4)
            .map(|i| usage(&format!("r{i}"), CPU, 0.425, 1.0))
            .collect(),
    );
    let d = compute(&cpu(50), &down, tol, 4);
    assert_eq!(d.ratio, Some(0.84));
    assert_eq!(d.status, MetricStatus::WithinTolerance, "0.84 >= 1 - 0.2");
}

#[test]
fn unready_replicas_count_as_zero_on_scale_up() {
    // Ready: 1.2 of 2.0 = 60% vs 30% (ratio 2); with the unready one at 0: 40%, ratio 4/3, ceil(4/3 * 3) = 4.
    let o = obs(
        3,
        vec![
            silent("a", false, CPU, 1.0),
            usage("b", CPU, 0.5, 1.0),
            usage("c", CPU, 0.7, 1.0),
        ],
    );
    let d = run(&cpu(30), &o);
    assert_eq!((d.proposal, d.counted), (Some(4), 3));
}

#[test]
fn unready_replicas_are_left_out_on_scale_down() {
    let o = obs(
        3,
        vec![
            silent("a", false, CPU, 1.0),
            usage("b", CPU, 0.1, 1.0),
            usage("c", CPU, 0.1, 1.0),
        ],
    );
    let d = run(&cpu(50), &o); // 10% of target 50: ratio 0.2 over the 2 ready: ceil(0.4) = 1
    assert_eq!(
        (d.proposal, d.counted, d.status),
        (Some(1), 2, MetricStatus::ScaleDown)
    );
}

#[test]
fn missing_replica_counts_as_full_on_scale_down() {
    // 10% each on 3; the 4th (no sample) counts as max(100%, 50%): (0.3 + 1.0) / 4.0 = 32%, ceil(0.64 * 4) = 3.
    let mut rs: Vec<_> = (0..3)
        .map(|i| usage(&format!("r{i}"), CPU, 0.1, 1.0))
        .collect();
    rs.push(silent("m", true, CPU, 1.0));
    let d = run(&cpu(50), &obs(4, rs));
    assert_eq!(
        (d.proposal, d.counted, d.status),
        (Some(3), 4, MetricStatus::ScaleDown)
    );
}

#[test]
fn missing_replica_counts_target_above_100_on_scale_down() {
    // Target 150%: a missing replica counts as 150% of its capacity, not 100%.
    let mut rs: Vec<_> = (0..3)
        .map(|i| usage(&format!("r{i}"), CPU, 0.3, 1.0))
        .collect();
    rs.push(silent("m", true, CPU, 1.0));
    let d = run(&cpu(150), &obs(4, rs)); // (0.9 + 1.5) / 4 = 60%, ratio 0.4, ceil(1.6) = 2
    assert_eq!(d.proposal, Some(2));
}

#[test]
fn missing_replica_counts_as_zero_on_scale_up() {
    // 90% on 3 ready vs 50%; with the missing one at 0: 2.7 / 4.0 = 67%, ratio 1.34, ceil(5.36) = 6.
    let mut rs: Vec<_> = (0..3)
        .map(|i| usage(&format!("r{i}"), CPU, 0.9, 1.0))
        .collect();
    rs.push(silent("m", true, CPU, 1.0));
    let d = run(&cpu(50), &obs(4, rs));
    assert_eq!((d.proposal, d.counted), (Some(6), 4));
}

#[test]
fn recomputed_ratio_that_flips_direction_holds() {
    // 60% on 2 ready (ratio 1.2) but 2 missing at 0 make it 30% (ratio 0.6): keep 4.
    let mut rs = vec![usage("a", CPU, 0.6, 1.0), usage("b", CPU, 0.6, 1.0)];
    rs.push(silent("m1", true, CPU, 1.0));
    rs.push(silent("m2", true, CPU, 1.0));
    let d = run(&cpu(50), &obs(4, rs));
    assert_eq!(
        (d.proposal, d.status),
        (Some(4), MetricStatus::DirectionHold)
    );
}

#[test]
fn unknown_capacity_takes_mean_of_ready_replicas() {
    let mut rs = vec![usage("a", CPU, 0.1, 2.0), usage("b", CPU, 0.1, 2.0)];
    rs.push(crate::policy::testutil::replica("m", true, &[]));
    // 0.2 of 4.0 = 5%; the missing one counts as 100% of the 2.0 mean: 2.2 / 6.0 = 36%, ceil(0.72 * 3) = 3.
    let d = run(&cpu(50), &obs(3, rs));
    assert_eq!((d.proposal, d.status), (Some(3), MetricStatus::Steady));
}

#[test]
fn fewer_observed_than_current_never_scales_against_the_ratio() {
    // Ratio 1.2 over only 2 observed replicas while 5 are asked for: ceil(2.4) = 3 < 5 would scale down.
    let o = obs(
        5,
        vec![usage("a", CPU, 0.6, 1.0), usage("b", CPU, 0.6, 1.0)],
    );
    let d = run(&cpu(50), &o);
    assert_eq!(
        (d.proposal, d.status),
        (Some(5), MetricStatus::DirectionHold)
    );
}

#[test]
fn average_target() {
    let spec = MetricSpec::new("rps", Target::Average(50.0));
    let o = obs(
        3,
        vec![
            value("a", "rps", 60.0),
            value("b", "rps", 40.0),
            value("c", "rps", 80.0),
        ],
    );
    let d = run(&spec, &o); // mean 60, ratio 1.2, ceil(3.6) = 4
    assert_eq!(
        (d.current, d.proposal, d.load),
        (Some(60.0), Some(4), Some(180.0))
    );
    assert_eq!(d.load_per_replica_at_target, Some(50.0));
}

#[test]
fn average_missing_counts_as_target_on_scale_down() {
    let spec = MetricSpec::new("rps", Target::Average(50.0));
    let o = obs(
        3,
        vec![
            value("a", "rps", 10.0),
            value("b", "rps", 10.0),
            crate::policy::testutil::replica("m", true, &[]),
        ],
    );
    // mean 10 (ratio 0.2); with the missing one at 50: 70 / 3 = 23.333, ratio 0.4667, ceil(1.4) = 2
    assert_eq!(run(&spec, &o).proposal, Some(2));
}

#[test]
fn service_value_target() {
    let spec = MetricSpec::new("queue_depth", Target::Value(100.0));
    let mut o = obs(3, vec![]);
    o.service_metrics.insert("queue_depth".into(), 340.0);
    let d = run(&spec, &o); // ratio 340 / 300, desired ceil(3.4) = 4
    assert_eq!((d.proposal, d.status), (Some(4), MetricStatus::ScaleUp));
    o.service_metrics.insert("queue_depth".into(), 310.0);
    assert_eq!(run(&spec, &o).status, MetricStatus::WithinTolerance);
}

#[test]
fn latency_below_target_scales_ready_replicas() {
    let spec = MetricSpec::new("latency_p95", Target::Below(Duration::from_millis(250)));
    let mut o = obs(
        3,
        (0..3)
            .map(|i| usage(&format!("r{i}"), CPU, 0.5, 1.0))
            .collect(),
    );
    o.service_metrics.insert("latency_p95".into(), 0.5);
    let d = run(&spec, &o);
    assert_eq!((d.ratio, d.proposal, d.load), (Some(2.0), Some(6), None));
}

#[test]
fn unusable_data_gives_no_vote() {
    let spec = MetricSpec::new("queue_depth", Target::Value(100.0));
    let d = run(&spec, &obs(3, vec![]));
    assert_eq!((d.proposal, d.status), (None, MetricStatus::Missing));
    assert_eq!(
        d.problem.as_deref(),
        Some("no service value for queue_depth")
    );

    let d = run(&cpu(50), &obs(2, vec![value("a", CPU, 3.0)]));
    assert_eq!(d.proposal, None);
    assert!(d.problem.unwrap().contains("needs {used, capacity}"));

    let d = run(&cpu(50), &obs(2, vec![silent("a", false, CPU, 1.0)]));
    assert_eq!(d.problem.as_deref(), Some("no ready replica reported cpu"));
}

#[test]
fn every_missing_metric_has_a_typed_reason() {
    let value_spec = MetricSpec::new("queue_depth", Target::Value(100.0));
    assert_eq!(
        run(&value_spec, &obs(3, vec![])).missing,
        Some(Missing::NoServiceValue)
    );
    let d = run(&cpu(50), &obs(2, vec![value("a", CPU, 3.0)]));
    assert_eq!(d.missing, Some(Missing::WrongShape));
    let d = run(&cpu(50), &obs(2, vec![silent("a", false, CPU, 1.0)]));
    assert_eq!(d.missing, Some(Missing::NoReadyReplica));
    let d = run(&cpu(50), &obs(1, vec![usage("a", CPU, 0.5, 0.0)]));
    assert_eq!(d.missing, Some(Missing::ZeroCapacity));
    let d = run(&cpu(50), &obs(1, vec![usage("a", CPU, 0.5, 1.0)]));
    assert_eq!((d.missing, d.problem), (None, None));
}

#[test]
fn what_the_source_could_not_read_is_reported_as_the_source_said() {
    // The source's reason wins over whatever is in the maps: it read nothing.
    let spec = MetricSpec::new("orders", Target::Value(50.0));
    let mut o = obs(2, vec![]);
    o.service_metrics.insert("orders".into(), 500.0);
    o.missing.insert("orders".into(), Missing::NotACounter);
    let d = run(&spec, &o);
    assert_eq!((d.proposal, d.status), (None, MetricStatus::Missing));
    assert_eq!(d.missing, Some(Missing::NotACounter));
    assert_eq!(
        d.problem.as_deref(),
        Some("orders: rate asked of series that are not counters")
    );
    // Per replica as well.
    let avg = MetricSpec::new("jobs", Target::Average(1.0));
    let mut o = obs(1, vec![value("a", "jobs", 3.0)]);
    o.missing.insert("jobs".into(), Missing::NoSeries);
    assert_eq!(run(&avg, &o).missing, Some(Missing::NoSeries));
    // The record serializes the typed reason in snake case.
    let json = serde_json::to_value(run(&avg, &o)).unwrap();
    assert_eq!(json["missing"], "no_series");
}

#[test]
fn missing_replicas_are_left_out_at_a_ratio_of_exactly_one() {
    // 100% of target on the one reporting replica: counting the silent one at 0 would make it 50% and
    // scale 2 down to 1; the HPA leaves missing replicas out at exactly 1 and keeps the count.
    let o = obs(
        2,
        vec![usage("a", CPU, 0.5, 1.0), silent("m", true, CPU, 1.0)],
    );
    let d = run(&cpu(50), &o);
    assert_eq!(
        (d.proposal, d.status, d.counted),
        (Some(2), MetricStatus::DirectionHold, 1)
    );
    // The same for a plain average.
    let avg = MetricSpec::new("qps", Target::Average(20.0));
    let o = obs(
        5,
        vec![
            value("a", "qps", 20.0),
            value("b", "qps", 19.0),
            value("c", "qps", 21.0),
            crate::policy::testutil::replica("m1", true, &[]),
            crate::policy::testutil::replica("m2", true, &[]),
        ],
    );
    assert_eq!(run(&avg, &o).proposal, Some(5));
}

#[test]
fn readiness_matters_for_cpu_only() {
    // A not-ready replica reporting 50 against a target of 15: left out of a CPU-like rule, its sample
    // counts for any other metric, as in the HPA (avg 30, ratio 2, ceil(2 * 3) = 6).
    let avg = MetricSpec::new("qps", Target::Average(15.0));
    let mut rs = vec![value("b", "qps", 10.0), value("c", "qps", 30.0)];
    rs.insert(
        0,
        crate::policy::testutil::replica("a", false, &[("qps", Sample::Value(50.0))]),
    );
    let d = run(&avg, &obs(3, rs));
    assert_eq!((d.proposal, d.counted), (Some(6), 3));
    // The same replica reporting CPU is unready: 0 on the scale-up.
    let rs = vec![
        crate::policy::testutil::replica(
            "a",
            false,
            &[(
                CPU,
                Sample::Usage {
                    used: 0.9,
                    capacity: 1.0,
                },
            )],
        ),
        usage("b", CPU, 0.6, 1.0),
        usage("c", CPU, 0.6, 1.0),
    ];
    // Ready: 60% vs 30% (ratio 2); with the unready one at 0: 40%, ceil(4/3 * 3) = 4.
    assert_eq!(run(&cpu(30), &obs(3, rs)).proposal, Some(4));
}

#[test]
fn all_replicas_unhealthy_above_target_scale_up_from_their_usage() {
    // HPA #64088: both replicas fail their check at 95% of a core against 70%. The HPA has no ready pod
    // and no metric; Plimsoll counts them at their usage: 95/70 = 1.357, ceil(1.357 * 2) = 3.
    let o = obs(
        2,
        vec![
            unhealthy("a", CPU, 0.95, 1.0),
            unhealthy("b", CPU, 0.95, 1.0),
        ],
    );
    let d = run(&cpu(70), &o);
    assert_eq!(d.current, Some(95.0));
    assert_eq!(
        (d.proposal, d.status, d.counted),
        (Some(3), MetricStatus::AllReplicasUnready, 2)
    );
    assert_eq!(d.load, Some(1.9));
    assert_eq!(d.problem, None);
}

#[test]
fn replicas_added_for_unhealthy_ones_count_as_idle_while_they_start() {
    // The third replica, added by the previous vote, is starting: at 0 the ratio is 190/300/0.7 = 0.905,
    // inside the band: keep 3 until it is ready or fails too.
    let o = obs(
        3,
        vec![
            unhealthy("a", CPU, 0.95, 1.0),
            unhealthy("b", CPU, 0.95, 1.0),
            starting("c", CPU, 0.9, 1.0),
        ],
    );
    let d = run(&cpu(70), &o);
    assert_eq!(
        (d.proposal, d.status, d.counted),
        (Some(3), MetricStatus::AllReplicasUnready, 3)
    );
    // Once it fails as well, the three vote again: 95/70 * 3 = 4.07, 5.
    let o = obs(
        3,
        vec![
            unhealthy("a", CPU, 0.95, 1.0),
            unhealthy("b", CPU, 0.95, 1.0),
            unhealthy("c", CPU, 0.95, 1.0),
        ],
    );
    assert_eq!(run(&cpu(70), &o).proposal, Some(5));
    // A silent replica (no sample at all) counts as idle too: 190 / 300 at 70%.
    let o = obs(
        3,
        vec![
            unhealthy("a", CPU, 0.95, 1.0),
            unhealthy("b", CPU, 0.95, 1.0),
            silent("c", false, CPU, 1.0),
        ],
    );
    assert_eq!(run(&cpu(70), &o).proposal, Some(3));
}

#[test]
fn unhealthy_replicas_at_or_below_target_are_not_load() {
    // Failing checks at 20% CPU (a broken dependency, not load): more replicas would not help. No vote.
    let o = obs(
        2,
        vec![unhealthy("a", CPU, 0.2, 1.0), unhealthy("b", CPU, 0.2, 1.0)],
    );
    let d = run(&cpu(70), &o);
    assert_eq!((d.proposal, d.status), (None, MetricStatus::Missing));
    assert!(d.problem.unwrap().contains("no sign of overload"));
    // Inside the tolerance above target (75% vs 70%, ratio 1.07 < 1.1) is no sign either.
    let o = obs(1, vec![unhealthy("a", CPU, 0.75, 1.0)]);
    assert_eq!(run(&cpu(70), &o).proposal, None);
    // Starting replicas alone, whatever they use, are the HPA's start-up case: no vote.
    let o = obs(
        2,
        vec![starting("a", CPU, 1.0, 1.0), starting("b", CPU, 1.0, 1.0)],
    );
    let d = run(&cpu(70), &o);
    assert_eq!(d.proposal, None);
    assert_eq!(d.problem.as_deref(), Some("no ready replica reported cpu"));
}

#[test]
fn with_a_ready_replica_unhealthy_ones_follow_the_hpa() {
    // One ready replica at 90%, one unhealthy at 100%, target 70: the HPA path, with the unhealthy one
    // unready (0 on a scale-up): 90 / 200 / 0.7 = 0.64, against the ratio's direction: hold.
    let o = obs(
        2,
        vec![usage("a", CPU, 0.9, 1.0), unhealthy("b", CPU, 1.0, 1.0)],
    );
    let d = run(&cpu(70), &o);
    assert_eq!(
        (d.proposal, d.status),
        (Some(2), MetricStatus::DirectionHold)
    );
}

#[test]
fn unhealthy_rule_is_for_cpu_only() {
    // For any other metric a not-ready replica that reports is counted like a ready one (HPA groupPods).
    let mem = MetricSpec::new("memory", Target::Utilization(70));
    let o = obs(
        2,
        vec![
            unhealthy("a", "memory", 0.95, 1.0),
            unhealthy("b", "memory", 0.95, 1.0),
        ],
    );
    let d = run(&mem, &o);
    assert_eq!((d.proposal, d.status), (Some(3), MetricStatus::ScaleUp));
}

#[test]
fn an_error_ratio_bound_scales_ready_replicas_like_a_latency() {
    let spec = MetricSpec::new("errors", Target::BelowRatio(0.01));
    let mut o = obs(
        4,
        (0..4)
            .map(|i| usage(&format!("r{i}"), CPU, 0.5, 1.0))
            .collect(),
    );
    // 3% errors against 1%: ratio 3, 4 ready replicas ask for 12.
    o.service_metrics.insert("errors".into(), 0.03);
    let d = run(&spec, &o);
    assert_eq!((d.target_kind, d.target), ("below", 0.01));
    assert!((d.ratio.unwrap() - 3.0).abs() < 1e-9);
    assert_eq!((d.current, d.proposal), (Some(0.03), Some(12)));
    o.service_metrics.insert("errors".into(), 0.0105);
    assert_eq!(run(&spec, &o).status, MetricStatus::WithinTolerance);
}
