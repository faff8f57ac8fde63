use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::store::{
    FamilyDesc, FamilyId, Histogram, Kind, Limits, Scale, SourceDesc, SourceId, Store, Value,
};

fn store_with(stale_after_ms: u64) -> (Store, SourceId) {
    let mut st = Store::new(600_000);
    let src = st
        .register_source(SourceDesc {
            name: "test",
            stale_after: Duration::from_millis(stale_after_ms),
            limits: Limits::default(),
        })
        .unwrap();
    (st, src)
}

fn write(
    st: &mut Store,
    src: SourceId,
    fam: FamilyId,
    labels: &[(&str, &str)],
    who: Option<&str>,
    pts: &[(Millis, f64)],
) -> SeriesRef {
    let mut s = None;
    for (t, v) in pts {
        st.batch(src, *t, |b| {
            let r = b.series(fam, labels, who).unwrap();
            b.put(r, Value::Float(*v));
            s = Some(r);
        });
    }
    s.unwrap()
}

#[test]
fn rate_treats_a_decrease_as_a_reset() {
    let (mut st, src) = store_with(0);
    let m = st
        .family(FamilyDesc::int("c_total", "h", Kind::Gauge, Scale::One))
        .unwrap();
    let mut s = None;
    for (t, v) in [(0, 100), (1000, 110), (2000, 5), (3000, 15)] {
        st.batch(src, t, |b| {
            let r = b.series(m, &[], None).unwrap();
            b.put(r, Value::Raw(v));
            s = Some(r);
        });
    }
    let (q, s) = (Query::new(&st), s.unwrap());
    // 10 + 5 (reset: counts from zero) + 10 over 3 s.
    assert_eq!(q.rate(s, 3000, 3000), Some(25.0 / 3.0));
    assert_eq!(q.increase(s, 3000, 3000), Some(25.0));
    assert_eq!(q.rate(s, 3000, 0), None, "one sample gives no rate");
    assert_eq!(
        q.rate(s, 1000, 1000),
        Some(10.0),
        "the window ends at `end`"
    );
    assert_eq!(q.last_rate(s), Some(10.0));
    assert_eq!(q.rate_to_newest(s, 1000), Some(10.0));
    assert_eq!(
        rates(&q.points(s, 0)).collect::<Vec<_>>(),
        vec![(1000, 10.0), (2000, 5.0), (3000, 10.0)]
    );
}

proptest! {
    #[test]
    fn increase_counts_every_step_up_and_each_reset_from_zero(steps in proptest::collection::vec((0u32..1000, any::<bool>()), 2..200)) {
        // A counter that goes up by the step, or resets to the step when the flag is set.
        let mut v = 0.0;
        let mut want = 0.0;
        let mut pts = Vec::new();
        for (k, (step, reset)) in steps.iter().enumerate() {
            let next = if *reset { f64::from(*step) } else { v + f64::from(*step) };
            if k > 0 {
                want += if next >= v { next - v } else { next };
            }
            v = next;
            pts.push((k as Millis * 1000, v));
        }
        let (inc, span) = increase_of(&pts).unwrap();
        prop_assert!(inc >= 0.0);
        prop_assert!((inc - want).abs() < 1e-6);
        prop_assert_eq!(span, (pts.len() as Millis - 1) * 1000);
        let r = rate_of(&pts).unwrap();
        prop_assert!((r - want / (span as f64 / 1000.0)).abs() < 1e-9);
    }
}

#[test]
fn latest_is_for_fresh_series_only_and_select_filters() {
    let (mut st, src) = store_with(1000);
    let g = st
        .family(FamilyDesc::float("queue_depth", "h", Kind::Gauge))
        .unwrap();
    let a = write(
        &mut st,
        src,
        g,
        &[("queue", "a")],
        Some("c1"),
        &[(0, 1.0), (1000, 2.0)],
    );
    let b = write(
        &mut st,
        src,
        g,
        &[("queue", "b")],
        Some("c2"),
        &[(0, 5.0), (1000, 6.0), (2000, 7.0), (3000, 8.0)],
    );
    let q = Query::new(&st);
    assert_eq!(
        q.latest(a),
        None,
        "not written for 2 s with stale_after 1 s"
    );
    assert_eq!(q.latest(b), Some((3000, 8.0)));
    assert_eq!(
        q.points(a, 0),
        vec![(0, 1.0), (1000, 2.0)],
        "history stays readable"
    );
    let sel = |m: &'static [(&'static str, &'static str)], c| {
        q.select(&Selector {
            name: "queue_depth",
            matchers: m,
            container: c,
        })
    };
    assert_eq!(sel(&[], None), vec![a, b]);
    assert_eq!(sel(&[("queue", "b")], None), vec![b]);
    assert_eq!(sel(&[], Some("c1")), vec![a]);
    assert_eq!(sel(&[("queue", "b")], Some("c1")), vec![]);
    // A matcher on an absent label matches the empty value, as in PromQL.
    assert_eq!(sel(&[("zone", "")], None), vec![a, b]);
    assert!(q
        .select(&Selector {
            name: "nope",
            ..Default::default()
        })
        .is_empty());
}

/// A store with a latency histogram family over the bounds 0.1, 0.5 and 1.
struct Latency {
    st: Store,
    src: SourceId,
    fam: FamilyId,
    bounds: Arc<[f64]>,
}

impl Latency {
    fn new() -> Self {
        let (mut st, src) = store_with(60_000);
        let fam = st
            .family(FamilyDesc::float("latency_seconds", "h", Kind::Histogram))
            .unwrap();
        Latency {
            st,
            src,
            fam,
            bounds: vec![0.1, 0.5, 1.0].into(),
        }
    }

    /// Writes the series `name` with cumulative samples (per-bucket counts) at the given times.
    fn series(&mut self, name: &str, rows: &[(Millis, [f64; 4])]) -> SeriesRef {
        let mut s = None;
        for (t, buckets) in rows {
            let h = Histogram {
                bounds: self.bounds.clone(),
                buckets: buckets.to_vec(),
                count: buckets.iter().sum(),
                sum: buckets.iter().sum::<f64>() * 0.25,
            };
            self.st.batch(self.src, *t, |b| {
                let r = b.series(self.fam, &[("name", name)], None).unwrap();
                assert!(b.put(r, Value::Histogram(&h)));
                s = Some(r);
            });
        }
        s.unwrap()
    }
}

#[test]
fn histogram_quantile_matches_prometheus_by_hand() {
    let mut l = Latency::new();
    // Cumulative le counts 1,3,4,4 then 3,9,11,12: increases per le 2, 6, 7, 8 (+Inf).
    let a = l.series(
        "a",
        &[(0, [1.0, 2.0, 1.0, 0.0]), (10_000, [3.0, 6.0, 2.0, 1.0])],
    );
    let q = Query::new(&l.st);
    let quantile = |phi| q.histogram_quantile(phi, &[a], 10_000, 10_000).unwrap();
    // rank 4 falls in (0.1, 0.5]: 0.1 + 0.4 * (4 - 2) / (6 - 2).
    assert!((quantile(0.5) - 0.3).abs() < 1e-12, "{}", quantile(0.5));
    // rank 0.8 in the first bucket, interpolated from 0: 0.1 * 0.8 / 2.
    assert!((quantile(0.1) - 0.04).abs() < 1e-12);
    // rank 6 exactly at the top of (0.1, 0.5].
    assert!((quantile(0.75) - 0.5).abs() < 1e-12);
    // rank 7.2 beyond the highest finite bound: that bound.
    assert_eq!(quantile(0.9), 1.0);
    assert_eq!(quantile(-0.1), f64::NEG_INFINITY);
    assert_eq!(quantile(1.5), f64::INFINITY);
    assert_eq!(q.histogram_quantile(f64::NAN, &[a], 10_000, 10_000), None);
    assert_eq!(
        q.histogram_quantile(0.5, &[a], 10_000, 5_000),
        None,
        "one sample in the window"
    );
    // Count and sum rates: 8 observations and 2 units of sum over 10 s.
    assert_eq!(q.histogram_count_rate(&[a], 10_000, 10_000), Some(0.8));
    assert_eq!(q.histogram_sum_rate(&[a], 10_000, 10_000), Some(0.2));
}

#[test]
fn histogram_quantile_sums_series_and_handles_resets() {
    let mut l = Latency::new();
    let a = l.series(
        "a",
        &[
            (0, [1.0, 2.0, 1.0, 0.0]),
            (5_000, [2.0, 4.0, 1.0, 0.0]),
            (10_000, [3.0, 6.0, 2.0, 1.0]),
        ],
    );
    // B restarts between 0 and 5 s: cumulative le counts 5,5,5,5 -> 0,1,1,1 -> 1,3,3,3, so its
    // increases are 0+1, 1+2, 1+2, 1+2 per le.
    let b = l.series(
        "b",
        &[
            (0, [5.0, 0.0, 0.0, 0.0]),
            (5_000, [0.0, 1.0, 0.0, 0.0]),
            (10_000, [1.0, 2.0, 0.0, 0.0]),
        ],
    );
    let q = Query::new(&l.st);
    // Summed per le: 3, 9, 10, 11. rank 5.5 in (0.1, 0.5]: 0.1 + 0.4 * (5.5 - 3) / (9 - 3).
    let got = q.histogram_quantile(0.5, &[a, b], 10_000, 10_000).unwrap();
    assert!((got - (0.1 + 0.4 * 2.5 / 6.0)).abs() < 1e-12, "{got}");
    assert_eq!(
        q.histogram_count_rate(&[a, b], 10_000, 10_000),
        Some(0.8 + 0.3)
    );

    // The increases per bucket, summed elsewhere (another node's collector), give the same quantile.
    let inf = f64::INFINITY;
    // Cumulative per le, reset-aware: a 2, 6, 7, 8; b 1, 3, 3, 3.
    let ba = q.bucket_increases(a, 0, 10_000).unwrap();
    assert_eq!(ba, vec![(0.1, 2.0), (0.5, 6.0), (1.0, 7.0), (inf, 8.0)]);
    let bb = q.bucket_increases(b, 0, 10_000).unwrap();
    assert_eq!(bb, vec![(0.1, 1.0), (0.5, 3.0), (1.0, 3.0), (inf, 3.0)]);
    assert_eq!(q.bucket_increases(a, 6_000, 10_000), None, "one sample");
    // As another store (a collector on another node) would sum them.
    for phi in [0.1, 0.5, 0.9, 0.99] {
        assert_eq!(
            quantile_of_sum(phi, [ba.clone(), bb.clone()]),
            q.histogram_quantile(phi, &[a, b], 10_000, 10_000),
        );
    }
    // Different bounds add where they agree; NaN bounds are ignored, nothing is no answer.
    let other = vec![(0.5, 4.0), (f64::NAN, 1.0), (inf, 4.0)];
    let got = quantile_of_sum(0.5, [ba, other]).unwrap();
    // Summed: 0.1 -> 2, 0.5 -> 10, 1.0 -> 7 (evened out to 10), +Inf -> 12; rank 6 in (0.1, 0.5].
    assert!((got - (0.1 + 0.4 * 4.0 / 8.0)).abs() < 1e-12, "{got}");
    assert_eq!(quantile_of_sum(0.5, Vec::<Vec<(f64, f64)>>::new()), None);
}

#[test]
fn bucket_quantile_edge_cases_follow_prometheus() {
    let inf = f64::INFINITY;
    assert!(
        bucket_quantile(0.5, &[(1.0, 1.0)]).is_nan(),
        "no +Inf bucket"
    );
    assert!(
        bucket_quantile(0.5, &[(inf, 3.0)]).is_nan(),
        "fewer than two buckets"
    );
    assert!(
        bucket_quantile(0.5, &[(1.0, 0.0), (inf, 0.0)]).is_nan(),
        "no observations"
    );
    // A first bucket with a bound at or below zero is returned as is.
    assert_eq!(bucket_quantile(0.1, &[(-1.0, 5.0), (inf, 10.0)]), -1.0);
    // Decreasing cumulative counts are evened out: (1, 10), (2, 8 -> 10), (+Inf, 10).
    assert_eq!(
        bucket_quantile(0.5, &[(1.0, 10.0), (2.0, 8.0), (inf, 10.0)]),
        0.5
    );
    // Floating point noise between buckets is ignored.
    let got = bucket_quantile(
        1.0,
        &[(1.0, 10.0), (2.0, 10.000_000_000_000_002), (inf, 10.0)],
    );
    assert_eq!(got, 1.0);
}
