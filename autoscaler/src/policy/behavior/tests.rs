use super::*;
use crate::policy::model::{RatePolicy, Target};
use crate::policy::testutil::policy;

const T0: i64 = 1_700_000_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp(T0 + secs * 1000)
}

fn web() -> Policy {
    policy(1, 100, &[("cpu", Target::Utilization(50))])
}

fn recs(items: &[(i64, u32)]) -> Vec<TimedReplicas> {
    items
        .iter()
        .map(|&(s, r)| TimedReplicas {
            at: at(s),
            replicas: r,
        })
        .collect()
}

#[test]
fn scale_down_is_held_at_the_highest_recommendation_in_the_window() {
    let h = History {
        recommendations: recs(&[(-400, 9), (-200, 7), (-100, 6)]),
        ..History::default()
    };
    // 9 is older than 300s; the highest in the window is 7.
    let n = normalize(&web(), &h, 8, 3, at(0));
    assert_eq!((n.stabilized, n.replicas, n.limit), (7, 7, Limit::None));
}

#[test]
fn window_cutoff_is_exclusive() {
    let h = History {
        recommendations: recs(&[(-300, 9)]),
        ..History::default()
    };
    assert_eq!(
        normalize(&web(), &h, 8, 3, at(0)).stabilized,
        3,
        "a sample exactly 300s old is out"
    );
}

#[test]
fn scale_up_window_takes_the_lowest_recommendation() {
    let mut p = web();
    p.behavior.scale_up.stabilization = Duration::from_secs(60);
    let h = History {
        recommendations: recs(&[(-30, 5), (-90, 2)]),
        ..History::default()
    };
    let n = normalize(&p, &h, 4, 8, at(0));
    assert_eq!(n.stabilized, 5, "lowest in the 60s window is 5");
    let h = History {
        recommendations: recs(&[(-30, 3)]),
        ..History::default()
    };
    assert_eq!(
        normalize(&p, &h, 4, 8, at(0)).stabilized,
        4,
        "never below current when scaling up"
    );
}

#[test]
fn default_scale_up_rate_is_max_of_double_and_plus_four() {
    let h = History::default();
    let n = normalize(&web(), &h, 2, 50, at(0));
    assert_eq!((n.replicas, n.limit), (6, Limit::Rate), "max(2 * 2, 2 + 4)");
    let n = normalize(&web(), &h, 10, 50, at(0));
    assert_eq!(
        (n.replicas, n.limit),
        (20, Limit::Rate),
        "max(10 * 2, 10 + 4)"
    );
}

#[test]
fn scale_events_inside_the_period_use_up_the_budget() {
    // 2 -> 6 happened 10s ago: the period started at 2, so 6 is already the limit.
    let h = History {
        scale_up_events: recs(&[(-10, 4)]),
        ..History::default()
    };
    let n = normalize(&web(), &h, 6, 50, at(0));
    assert_eq!((n.replicas, n.limit), (6, Limit::Rate));
    // 15s later the event has left the 15s period.
    let h = History {
        scale_up_events: recs(&[(-15, 4)]),
        ..History::default()
    };
    assert_eq!(normalize(&web(), &h, 6, 50, at(0)).replicas, 12);
    // A scale-down inside the period raises the period's starting count.
    let h = History {
        scale_down_events: recs(&[(-5, 2)]),
        ..History::default()
    };
    assert_eq!(
        normalize(&web(), &h, 4, 50, at(0)).replicas,
        12,
        "start 6: max(12, 10)"
    );
}

#[test]
fn select_min_and_disabled() {
    let mut p = web();
    p.behavior.scale_up.select = Select::Min;
    assert_eq!(
        normalize(&p, &History::default(), 10, 50, at(0)).replicas,
        14,
        "min(20, 14)"
    );
    p.behavior.scale_up.select = Select::Disabled;
    let n = normalize(&p, &History::default(), 10, 50, at(0));
    assert_eq!((n.replicas, n.limit), (10, Limit::Rate));
}

#[test]
fn scale_down_percent_truncates_and_select_min_keeps_more() {
    let mut p = web();
    p.behavior.scale_down = ScalingRules {
        stabilization: Duration::ZERO,
        cooldown: Duration::ZERO,
        select: Select::Max,
        policies: vec![
            RatePolicy {
                limit: RateLimit::Percent(50),
                period: Duration::from_secs(60),
            },
            RatePolicy {
                limit: RateLimit::Replicas(1),
                period: Duration::from_secs(60),
            },
        ],
    };
    let n = normalize(&p, &History::default(), 5, 1, at(0));
    assert_eq!(
        (n.replicas, n.limit),
        (2, Limit::Rate),
        "5 * 0.5 = 2.5 truncates to 2; largest change wins"
    );
    p.behavior.scale_down.select = Select::Min;
    assert_eq!(
        normalize(&p, &History::default(), 5, 1, at(0)).replicas,
        4,
        "smallest change: 5 - 1"
    );
}

#[test]
fn bounds_are_reported_when_they_bind_before_the_rate() {
    let p = policy(3, 7, &[("cpu", Target::Utilization(50))]);
    let n = normalize(&p, &History::default(), 5, 40, at(0));
    assert_eq!((n.replicas, n.limit), (7, Limit::Max));
    let n = normalize(
        &p,
        &History {
            ..History::default()
        },
        5,
        1,
        at(0),
    );
    // The default 300s window has no earlier samples, so 1 passes stabilization; 100%/15s allows 0: min binds.
    assert_eq!((n.replicas, n.limit), (3, Limit::Min));
}

#[test]
fn record_keeps_only_what_can_still_matter() {
    let p = web();
    let mut h = History {
        recommendations: recs(&[(-301, 9), (-299, 8)]),
        scale_up_events: recs(&[(-16, 1), (-14, 2)]),
        ..History::default()
    };
    let d = crate::policy::decide::tests::decision(4, 6, Some(6), &[("cpu", 3.0)]);
    h.record(&p, &d, at(0));
    assert_eq!(h.recommendations, recs(&[(-299, 8), (0, 6)]));
    assert_eq!(h.scale_up_events, recs(&[(-14, 2), (0, 2)]));
    assert!(h.scale_down_events.is_empty());
    assert_eq!(
        h.load["cpu"],
        vec![LoadSample {
            at: at(0),
            value: 3.0
        }]
    );
    // A load sample within the resolution is skipped; one a resolution later is kept.
    h.record(
        &p,
        &crate::policy::decide::tests::decision(6, 6, Some(6), &[("cpu", 4.0)]),
        at(60),
    );
    h.record(
        &p,
        &crate::policy::decide::tests::decision(6, 5, Some(5), &[("cpu", 5.0)]),
        at(300),
    );
    assert_eq!(h.load["cpu"].len(), 2);
    assert_eq!(h.scale_down_events, recs(&[(300, 1)]));
}

#[test]
fn first_seen_holds_scale_downs_for_one_window() {
    // The HPA records the current count when it first sees a target: no scale-down for 300s.
    let p = web();
    let h = History::first_seen(5, at(0));
    assert_eq!(normalize(&p, &h, 5, 3, at(60)).replicas, 5);
    assert_eq!(normalize(&p, &h, 5, 3, at(300)).replicas, 3);
    assert_eq!(normalize(&p, &h, 5, 8, at(0)).replicas, 8);
}

#[test]
fn cooldown_holds_a_direction_after_any_scale_event() {
    let mut p = web();
    p.behavior.scale_down.stabilization = Duration::ZERO;
    p.behavior.scale_down.cooldown = Duration::from_secs(300);
    let mut h = History::default();
    // A scale-up 100 s ago: no scale-down until 300 s after it, whatever the recommendation.
    let mut d = crate::policy::decide::tests::decision(4, 8, Some(8), &[]);
    h.record(&p, &d, at(-100));
    assert_eq!(h.last_scale, Some(at(-100)));
    let n = normalize(&p, &h, 8, 3, at(0));
    assert_eq!((n.replicas, n.limit), (8, Limit::Cooldown));
    // Scale-ups are not held (their own cooldown is 0).
    let n = normalize(&p, &h, 8, 12, at(0));
    assert_eq!((n.replicas, n.limit), (12, Limit::None));
    // The cutoff is exclusive, as the windows': at 200 s (300 s after the event) it may go down.
    let n = normalize(&p, &h, 8, 3, at(200));
    assert_eq!((n.replicas, n.limit), (3, Limit::None));
    // A decision that keeps the count does not restart the cooldown.
    d.desired = d.current;
    h.record(&p, &d, at(150));
    assert_eq!(h.last_scale, Some(at(-100)));
    // Zero (the default, the HPA) never holds.
    let n = normalize(&web(), &h, 8, 3, at(0));
    assert_ne!(n.limit, Limit::Cooldown);
}
