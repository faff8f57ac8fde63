use std::borrow::Cow;
use std::time::Duration;

use super::*;
use crate::http::exposition::render;
use crate::query::Query;

fn gauge(name: &str) -> FamilyDesc {
    FamilyDesc::int(name, "h", Kind::Gauge, Scale::One)
}

fn counter_ns(name: &str) -> FamilyDesc {
    FamilyDesc::int(name, "h", Kind::Counter, Scale::Div(1e9))
}

fn source(st: &mut Store, name: &'static str, stale_after_ms: u64, limits: Limits) -> SourceId {
    st.register_source(SourceDesc {
        name,
        stale_after: Duration::from_millis(stale_after_ms),
        limits,
    })
    .unwrap()
}

/// A sampled source: a series the latest batch did not write is stale.
fn sampled(st: &mut Store) -> SourceId {
    source(st, "sampled", 0, Limits::UNLIMITED)
}

/// A store with one push source and one float gauge family `g`.
fn gauge_store(stale_after_ms: u64) -> (Store, SourceId, FamilyId) {
    let mut st = Store::new(60_000);
    let src = source(&mut st, "push", stale_after_ms, Limits::default());
    let f = st.family(FamilyDesc::float("g", "h", Kind::Gauge)).unwrap();
    (st, src, f)
}

fn rendered(st: &Store) -> String {
    let mut out = String::new();
    render(st, &mut out);
    out
}

/// A put of a pass: family, series labels, raw value.
type Put<'a> = (FamilyId, &'a [(&'static str, &'a str)], i64);

/// One pass of an entity with base labels, as the host and container sources write.
fn pass(
    st: &mut Store,
    src: SourceId,
    ts: Millis,
    cur: &mut SeriesCursor,
    base: &[(Cow<'static, str>, String)],
    who: Option<&str>,
    puts: &[Put<'_>],
) {
    st.batch(src, ts, |b| {
        let mut w = Writer::new(b, cur, base, who);
        for (f, l, v) in puts {
            w.put(*f, l, *v);
        }
    });
}

/// A pass of an entity without base labels or attribution (like the host's).
fn plain_pass(st: &mut Store, src: SourceId, ts: Millis, cur: &mut SeriesCursor, puts: &[Put<'_>]) {
    pass(st, src, ts, cur, &[], None, puts)
}

fn one(st: &Store, name: &str) -> SeriesRef {
    st.family_series(st.family_by_name(name).unwrap())
        .next()
        .unwrap()
}

#[test]
fn keeps_a_bounded_window_and_reads_it_back_scaled() {
    let mut st = Store::new(60_000);
    let src = sampled(&mut st);
    let m = st.family(counter_ns("cpu_seconds_total")).unwrap();
    let base = vec![("name".into(), "web".to_string())];
    let mut cur = SeriesCursor::default();
    for k in 0..1000i64 {
        pass(
            &mut st,
            src,
            k * 1000,
            &mut cur,
            &base,
            None,
            &[(m, &[], k * 500_000_000)],
        );
    }
    let id = one(&st, "cpu_seconds_total");
    let q = Query::new(&st);
    let pts = q.points(id, 0);
    // 60 s window, trimmed by whole chunks: between 60 and 60 + one chunk of samples remain.
    assert!(
        pts.len() >= 61 && pts.len() <= 61 + CHUNK_SAMPLES as usize,
        "{}",
        pts.len()
    );
    assert_eq!(pts.last().unwrap(), &(999_000, 499.5));
    let rate = q.rate(id, 999_000, 10_000).unwrap();
    assert!((rate - 0.5).abs() < 1e-9, "{rate}");
    assert_eq!(q.latest(id), Some((999_000, 499.5)));
}

#[test]
fn renders_exposition_with_escaped_labels_and_drops_removed_entities() {
    let mut st = Store::new(60_000);
    let src = sampled(&mut st);
    let g = st.family(gauge("mem_bytes")).unwrap();
    let c = st.family(counter_ns("cpu_seconds_total")).unwrap();
    let (la, lb): (Labels, Labels) = (
        vec![("name".into(), "a\"b".to_string())],
        vec![("name".into(), "b".to_string())],
    );
    let (mut ca, mut cb) = (SeriesCursor::default(), SeriesCursor::default());
    st.batch(src, 1000, |b| {
        let mut w = Writer::new(b, &mut ca, &la, Some("a"));
        w.put(g, &[("interface", "eth0")], 7);
        w.put(c, &[], 1_500_000_000);
        let mut w = Writer::new(b, &mut cb, &lb, Some("b"));
        w.put(g, &[("interface", "eth0")], 9);
    });
    assert_eq!(
        rendered(&st),
        "# HELP mem_bytes h\n# TYPE mem_bytes gauge\nmem_bytes{name=\"a\\\"b\",interface=\"eth0\"} 7\nmem_bytes{name=\"b\",interface=\"eth0\"} 9\n\
         # HELP cpu_seconds_total h\n# TYPE cpu_seconds_total counter\ncpu_seconds_total{name=\"a\\\"b\"} 1.5\n"
    );
    assert_eq!(st.remove_attributed("a", None), 2);
    let out = rendered(&st);
    assert!(!out.contains("a\\\"b"), "{out}");
    assert!(
        !out.contains("cpu_seconds_total"),
        "empty families are not rendered: {out}"
    );
    assert_eq!(st.series_count(), 1);
}

#[test]
fn a_series_the_entity_stopped_writing_is_not_rendered() {
    let mut st = Store::new(60_000);
    let src = sampled(&mut st);
    let g = st.family(gauge("rx_bytes")).unwrap();
    let mut cur = SeriesCursor::default();
    plain_pass(
        &mut st,
        src,
        1000,
        &mut cur,
        &[
            (g, &[("interface", "eth0")], 1),
            (g, &[("interface", "eth1")], 2),
        ],
    );
    plain_pass(
        &mut st,
        src,
        2000,
        &mut cur,
        &[(g, &[("interface", "eth1")], 3)],
    );
    let out = rendered(&st);
    assert!(!out.contains("eth0"), "{out}");
    assert!(out.contains("rx_bytes{interface=\"eth1\"} 3"), "{out}");
}

#[test]
fn cursor_follows_a_changed_order_of_puts() {
    let mut st = Store::new(60_000);
    let src = sampled(&mut st);
    let g = st.family(gauge("x")).unwrap();
    let h = st.family(gauge("y")).unwrap();
    let mut cur = SeriesCursor::default();
    plain_pass(&mut st, src, 0, &mut cur, &[(g, &[], 1), (h, &[], 2)]);
    plain_pass(&mut st, src, 1000, &mut cur, &[(h, &[], 20), (g, &[], 10)]);
    let q = Query::new(&st);
    assert_eq!(q.points(one(&st, "x"), 0), vec![(0, 1.0), (1000, 10.0)]);
    assert_eq!(q.points(one(&st, "y"), 0), vec![(0, 2.0), (1000, 20.0)]);
}

#[test]
fn a_day_of_idle_containers_fits_the_memory_budget() {
    // 100 containers x 30 series, 15 minutes at 1 s: the sample data stays far below 30 MiB.
    let mut st = Store::new(15 * 60_000);
    let src = sampled(&mut st);
    let fams: Vec<_> = (0..30)
        .map(|k| st.family(gauge(&format!("m{k}"))).unwrap())
        .collect();
    let mut ents: Vec<_> = (0..100)
        .map(|k| {
            (
                vec![("name".into(), format!("c{k}"))],
                SeriesCursor::default(),
            )
        })
        .collect();
    for t in 0..(15 * 60 + 200) {
        st.batch(src, t * 1000, |b| {
            for (base, cur) in ents.iter_mut() {
                let mut w = Writer::new(b, cur, base, None);
                for (k, f) in fams.iter().enumerate() {
                    w.put(*f, &[], t * k as i64);
                }
            }
        });
    }
    let bytes = st.sample_bytes();
    assert!(bytes < 12 << 20, "{bytes} bytes");
    assert!(st.sample_count() >= 100 * 30 * 900);
}

#[test]
fn the_running_byte_count_matches_the_chunks() {
    let recount = |st: &Store| -> usize {
        st.slots
            .iter()
            .filter_map(|s| s.series.as_ref())
            .map(|s| data_bytes(&s.data))
            .sum()
    };
    let mut st = Store::new(30_000);
    let src = sampled(&mut st);
    let m = st.family(gauge("x")).unwrap();
    let f = st.family(FamilyDesc::float("y", "h", Kind::Gauge)).unwrap();
    let h = st
        .family(FamilyDesc::float("z", "h", Kind::Histogram))
        .unwrap();
    let bounds: Arc<[f64]> = vec![1.0, 2.0].into();
    let mut hist = Histogram::new(bounds);
    let (mut ca, mut cb) = (SeriesCursor::default(), SeriesCursor::default());
    let lb: Labels = vec![("name".into(), "b".to_string())];
    for t in 0..500 {
        hist.observe((t % 3) as f64, 1.0);
        st.batch(src, t * 1000, |b| {
            Writer::new(b, &mut ca, &[], Some("a")).put(m, &[], t * 7);
            Writer::new(b, &mut cb, &lb, Some("b")).put(m, &[("k", "v")], t * t);
            let s = b.series(f, &[], Some("a")).unwrap();
            b.put(s, Value::Float(t as f64 / 3.0));
            let s = b.series(h, &[], Some("b")).unwrap();
            b.put(s, Value::Histogram(&hist));
        });
        assert_eq!(st.sample_bytes(), recount(&st), "after pass {t}");
    }
    st.remove_attributed("a", None);
    assert_eq!(st.sample_bytes(), recount(&st));
    st.remove_attributed("b", None);
    assert_eq!(st.sample_bytes(), 0);
}

#[test]
fn label_strings_are_interned_once_and_swept_when_unused() {
    let mut st = Store::new(10_000);
    let src = source(&mut st, "push", 2000, Limits::default());
    let f = st
        .family(FamilyDesc::float("orders_total", "h", Kind::Counter))
        .unwrap();
    st.batch(src, 0, |b| {
        for k in 0..100 {
            let id = format!("r{k}");
            let s = b
                .series(f, &[("service", "web"), ("replica", &id)], None)
                .unwrap();
            b.put(s, Value::Float(1.0));
        }
    });
    // "service", "web", "replica" once, and the 100 replica ids.
    assert_eq!(st.interned_strings(), 103);
    let series: Vec<_> = st.family_series(f).collect();
    let web = |s: SeriesRef| {
        let l = st.labels(s).unwrap();
        l.0.iter()
            .find(|(k, _)| &**k == "service")
            .unwrap()
            .1
            .clone()
    };
    assert!(Arc::ptr_eq(&web(series[0]), &web(series[99])));
    // Nothing writes them any more: once their newest sample leaves the window, series and strings go.
    st.batch(src, 25_000, |_| {});
    assert_eq!(st.series_count(), 0);
    assert_eq!(st.interned_strings(), 0);
}

#[test]
fn labels_in_any_order_name_one_series_rendered_as_first_written() {
    let mut st = Store::new(10_000);
    let src = source(&mut st, "push", 2000, Limits::default());
    let f = st.family(FamilyDesc::float("g", "h", Kind::Gauge)).unwrap();
    st.batch(src, 0, |b| {
        let a = b.series(f, &[("b", "2"), ("a", "1")], None).unwrap();
        let c = b.series(f, &[("a", "1"), ("b", "2")], None).unwrap();
        assert_eq!(a, c);
        b.put(a, Value::Float(0.5));
        // Another label name set in the same family is another series (statsd_exporter #170).
        let d = b.series(f, &[("a", "1")], None).unwrap();
        assert_ne!(a, d);
        b.put(d, Value::Float(-0.0));
    });
    let out = rendered(&st);
    assert!(out.contains("g{b=\"2\",a=\"1\"} 0.5\n"), "{out}");
    assert!(out.contains("g{a=\"1\"} -0\n"), "{out}");
}

#[test]
fn invalid_labels_and_conflicting_types_are_dropped_and_counted() {
    let mut st = Store::new(10_000);
    let src = source(&mut st, "push", 2000, Limits::default());
    let f = st.family(FamilyDesc::float("g", "h", Kind::Gauge)).unwrap();
    let i = st.family(gauge("raw")).unwrap();
    st.batch(src, 0, |b| {
        for bad in [
            &[("1abc", "x")][..],
            &[("__name__", "x")],
            &[("a-b", "x")],
            &[("a", "x"), ("a", "y")],
            &[("", "x")],
        ] {
            assert_eq!(
                b.series(f, bad, None),
                Err(Dropped(DropReason::InvalidLabel)),
                "{bad:?}"
            );
        }
        let s = b.series(i, &[], None).unwrap();
        assert!(!b.put(s, Value::Float(1.5)), "a float into an int family");
        assert!(b.put(s, Value::Raw(2)));
    });
    assert_eq!(st.dropped(src, DropReason::InvalidLabel), 5);
    assert_eq!(st.dropped(src, DropReason::TypeConflict), 1);
    // Registering a name again with another kind or codec is an error value, never a panic.
    assert!(matches!(
        st.family(FamilyDesc::float("g", "h", Kind::Counter)),
        Err(IngestError::TypeConflict { .. })
    ));
    assert!(matches!(
        st.family(FamilyDesc::int("g", "h", Kind::Gauge, Scale::One)),
        Err(IngestError::TypeConflict { .. })
    ));
    assert_eq!(
        st.family(FamilyDesc::float("g", "other help", Kind::Gauge)),
        Ok(f)
    );
    assert!(matches!(
        st.family(FamilyDesc::float("bad-name", "h", Kind::Gauge)),
        Err(IngestError::InvalidName(_))
    ));
    st.family(FamilyDesc::float("lat", "h", Kind::Histogram))
        .unwrap();
    assert!(matches!(
        st.family(FamilyDesc::float("lat_count", "h", Kind::Counter)),
        Err(IngestError::NameClash { .. })
    ));
    st.family(FamilyDesc::float("q_sum", "h", Kind::Counter))
        .unwrap();
    assert!(matches!(
        st.family(FamilyDesc::float("q", "h", Kind::Summary)),
        Err(IngestError::NameClash { .. })
    ));
}

#[test]
fn staleness_is_per_series_so_no_source_hides_another() {
    let mut st = Store::new(60_000);
    let cgroup = sampled(&mut st);
    let statsd = source(&mut st, "statsd", 2000, Limits::default());
    let cpu = st
        .family(counter_ns("container_cpu_usage_seconds_total"))
        .unwrap();
    let orders = st
        .family(FamilyDesc::float("orders_total", "h", Kind::Counter))
        .unwrap();
    let base: Labels = vec![("name".into(), "web-1".to_string())];
    let mut cur = SeriesCursor::default();
    let statsd_write = |st: &mut Store, t: Millis| {
        st.batch(statsd, t, |b| {
            let s = b.series(orders, &[("name", "web-1")], Some("c1")).unwrap();
            b.put(s, Value::Float(t as f64));
        })
    };
    let cgroup_pass = |st: &mut Store, cur: &mut SeriesCursor, t: Millis| {
        pass(st, cgroup, t, cur, &base, Some("c1"), &[(cpu, &[], t)])
    };
    for t in [0, 1000, 2000] {
        cgroup_pass(&mut st, &mut cur, t);
        statsd_write(&mut st, t);
    }
    let (c, o) = (
        one(&st, "container_cpu_usage_seconds_total"),
        one(&st, "orders_total"),
    );
    // StatsD stops writing the series (its TTL expired) but keeps flushing: stale two seconds later.
    for t in [3000, 4000, 5000] {
        cgroup_pass(&mut st, &mut cur, t);
        st.batch(statsd, t, |_| {});
        let q = Query::new(&st);
        assert!(q.latest(c).is_some(), "the cgroup series stays at {t}");
        assert_eq!(q.latest(o).is_some(), t <= 4000, "statsd series at {t}");
    }
    assert!(!rendered(&st).contains("orders_total"));
    // Its history stays readable until it leaves the window.
    assert_eq!(Query::new(&st).points(o, 0).len(), 3);
    // The reverse: the cgroup source moves on without the container; the StatsD series stays.
    statsd_write(&mut st, 6000);
    pass(&mut st, cgroup, 6000, &mut cur, &base, Some("c1"), &[]);
    let q = Query::new(&st);
    assert!(q.latest(o).is_some());
    assert!(q.latest(c).is_none());
    // Both are the container's: removing it removes both at once.
    assert_eq!(st.remove_attributed("c1", None), 2);
}

#[test]
fn a_flood_of_label_values_stops_at_the_limit_and_spares_other_series() {
    let mut st = Store::new(60_000);
    let limits = Limits {
        max_series_per_family: Some(1000),
        max_series_per_source: Some(1500),
    };
    let src = source(&mut st, "statsd", 2000, limits);
    let flood = st
        .family(FamilyDesc::float("requests_total", "h", Kind::Counter))
        .unwrap();
    let other = st
        .family(FamilyDesc::float("queue_depth", "h", Kind::Gauge))
        .unwrap();
    let kept = st.batch(src, 0, |b| {
        let s = b.series(other, &[("queue", "orders")], None).unwrap();
        b.put(s, Value::Float(7.0));
        s
    });
    st.batch(src, 1000, |b| {
        for k in 0..100_000 {
            let v = format!("req-{k}");
            if let Ok(s) = b.series(flood, &[("request_id", &v)], None) {
                b.put(s, Value::Float(1.0));
            }
        }
        // The existing series keeps working, and admission answers before anything grows.
        assert!(b.put(kept, Value::Float(8.0)));
        assert_eq!(
            b.admit(flood, &[("request_id", "new")]),
            Err(Dropped(DropReason::FamilyLimit))
        );
        assert_eq!(b.admit(flood, &[("request_id", "req-5")]), Ok(()));
    });
    assert_eq!(st.family_series(flood).count(), 1000);
    assert_eq!(st.series_count(), 1001);
    assert_eq!(st.dropped(src, DropReason::FamilyLimit), 99_001);
    assert_eq!(Query::new(&st).latest(kept), Some((1000, 8.0)));
    // The per-source limit holds across families.
    let third = st
        .family(FamilyDesc::float("third", "h", Kind::Gauge))
        .unwrap();
    st.batch(src, 2000, |b| {
        for k in 0..1000 {
            let v = k.to_string();
            let _ = b.series(third, &[("k", &v)], None);
        }
    });
    assert_eq!(st.series_count(), 1500);
    assert_eq!(st.dropped(src, DropReason::SourceLimit), 501);
}

#[test]
fn a_ref_to_a_deleted_series_is_detected_and_the_slot_reused_safely() {
    let (mut st, src, f) = gauge_store(2000);
    let old = st.batch(src, 0, |b| b.series(f, &[("a", "1")], Some("c1")).unwrap());
    st.remove_attributed("c1", None);
    let new = st.batch(src, 1000, |b| {
        assert!(!b.is_live(old));
        assert!(
            !b.put(old, Value::Float(1.0)),
            "writes to a deleted series fail"
        );
        let new = b.series(f, &[("a", "2")], None).unwrap();
        assert!(b.put(new, Value::Float(2.0)));
        new
    });
    assert_eq!(new.idx, old.idx, "the slot is reused");
    assert_ne!(new, old);
    assert!(st.labels(old).is_none());
}

#[test]
fn another_source_cannot_write_a_series_it_does_not_own() {
    let mut st = Store::new(60_000);
    let a = source(&mut st, "a", 0, Limits::default());
    let b_src = source(&mut st, "b", 0, Limits::default());
    let f = st.family(FamilyDesc::float("g", "h", Kind::Gauge)).unwrap();
    st.batch(a, 0, |b| {
        let s = b.series(f, &[], None).unwrap();
        b.put(s, Value::Float(1.0));
    });
    st.batch(b_src, 0, |b| {
        assert_eq!(
            b.series(f, &[], None),
            Err(Dropped(DropReason::SourceConflict))
        );
    });
    assert_eq!(st.dropped(b_src, DropReason::SourceConflict), 1);
}

#[test]
fn out_of_order_samples_are_dropped() {
    let (mut st, src, f) = gauge_store(0);
    let s = st.batch(src, 2000, |b| {
        let s = b.series(f, &[], None).unwrap();
        b.put(s, Value::Float(1.0));
        s
    });
    st.batch(src, 1000, |b| assert!(!b.put(s, Value::Float(2.0))));
    assert_eq!(st.dropped(src, DropReason::OutOfOrder), 1);
    assert_eq!(Query::new(&st).points(s, 0), vec![(2000, 1.0)]);
}

#[test]
fn histograms_and_summaries_are_one_series_each_exposed_the_prometheus_way() {
    let mut st = Store::new(60_000);
    let src = source(&mut st, "otlp", 2000, Limits::default());
    let h = st
        .family(FamilyDesc::float(
            "latency_seconds",
            "Latency.",
            Kind::Histogram,
        ))
        .unwrap();
    let q = st
        .family(FamilyDesc::float("rpc_seconds", "RPC.", Kind::Summary))
        .unwrap();
    let bounds: Arc<[f64]> = vec![0.1, 0.5, 1.0].into();
    let mut hist = Histogram::new(bounds.clone());
    for v in [0.05, 0.2, 0.3, 0.7, 3.0] {
        hist.observe(v, 1.0);
    }
    let summary = Summary {
        quantiles: vec![0.5, 0.99].into(),
        values: vec![0.25, f64::NAN],
        count: 4.0,
        sum: 1.5,
    };
    st.batch(src, 1000, |b| {
        let s = b.series(h, &[("service", "web")], None).unwrap();
        assert!(b.put(s, Value::Histogram(&hist)));
        let other = Histogram::new(vec![1.0].into());
        assert!(
            !b.put(s, Value::Histogram(&other)),
            "bounds are fixed per series"
        );
        assert!(
            !b.put(s, Value::Summary(&summary)),
            "a summary into a histogram family"
        );
        let s = b.series(q, &[], None).unwrap();
        assert!(b.put(s, Value::Summary(&summary)));
    });
    assert_eq!(st.series_count(), 2);
    assert_eq!(st.dropped(src, DropReason::TypeConflict), 2);
    assert_eq!(
        rendered(&st),
        "# HELP latency_seconds Latency.\n# TYPE latency_seconds histogram\n\
         latency_seconds_bucket{service=\"web\",le=\"0.1\"} 1\n\
         latency_seconds_bucket{service=\"web\",le=\"0.5\"} 3\n\
         latency_seconds_bucket{service=\"web\",le=\"1\"} 4\n\
         latency_seconds_bucket{service=\"web\",le=\"+Inf\"} 5\n\
         latency_seconds_sum{service=\"web\"} 4.25\n\
         latency_seconds_count{service=\"web\"} 5\n\
         # HELP rpc_seconds RPC.\n# TYPE rpc_seconds summary\n\
         rpc_seconds{quantile=\"0.5\"} 0.25\n\
         rpc_seconds{quantile=\"0.99\"} NaN\n\
         rpc_seconds_sum 1.5\n\
         rpc_seconds_count 4\n"
    );
    let bad = Histogram {
        bounds: vec![1.0, 0.5].into(),
        buckets: vec![0.0; 3],
        count: 0.0,
        sum: 0.0,
    };
    st.batch(src, 2000, |b| {
        let s = b.series(h, &[("service", "api")], None).unwrap();
        assert!(!b.put(s, Value::Histogram(&bad)));
    });
    assert_eq!(st.dropped(src, DropReason::InvalidValue), 1);
}

#[test]
fn removing_a_container_for_one_source_keeps_the_others_series() {
    let mut st = Store::new(60_000);
    let a = source(&mut st, "a", 0, Limits::default());
    let b_src = source(&mut st, "b", 0, Limits::default());
    let f = st.family(FamilyDesc::float("g", "h", Kind::Gauge)).unwrap();
    let g = st
        .family(FamilyDesc::float("g2", "h", Kind::Gauge))
        .unwrap();
    st.batch(a, 0, |b| b.series(f, &[], Some("c1")).map(|_| ()).unwrap());
    st.batch(b_src, 0, |b| {
        b.series(g, &[], Some("c1")).map(|_| ()).unwrap()
    });
    assert_eq!(st.remove_attributed("c1", Some(a)), 1);
    assert_eq!(st.container_series("c1").count(), 1);
    assert_eq!(st.source_by_name("b"), Some(b_src));
    assert!(matches!(
        st.register_source(SourceDesc {
            name: "a",
            stale_after: Duration::ZERO,
            limits: Limits::default()
        }),
        Err(IngestError::DuplicateSource(_))
    ));
}
