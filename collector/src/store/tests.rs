use super::*;

fn gauge(name: &str) -> FamilyDesc {
    FamilyDesc {
        name: name.into(),
        help: "h".into(),
        kind: Kind::Gauge,
        scale: Scale::One,
    }
}

fn counter_ns(name: &str) -> FamilyDesc {
    FamilyDesc {
        name: name.into(),
        help: "h".into(),
        kind: Kind::Counter,
        scale: Scale::Div(1e9),
    }
}

#[test]
fn keeps_a_bounded_window_and_reads_it_back_scaled() {
    let mut st = Store::new(60_000);
    let m = st.family(counter_ns("cpu_seconds_total"));
    let e = st.add_entity(vec![("name", "web".into())]);
    let mut cur = SeriesCursor::default();
    for k in 0..1000i64 {
        st.writer(e, &mut cur, k * 1000)
            .put(m, &[], k * 500_000_000);
    }
    let id = st.entity_series(e, "cpu_seconds_total").unwrap();
    let pts = st.points(id, 0);
    // 60 s window, trimmed by whole chunks: between 60 and 60 + one chunk of samples remain.
    assert!(
        pts.len() >= 61 && pts.len() <= 61 + chunk::CHUNK_SAMPLES as usize,
        "{}",
        pts.len()
    );
    assert_eq!(pts.last().unwrap(), &(999_000, 499.5));
    let rate = st.rate(id, 999_000 - 10_000).unwrap();
    assert!((rate - 0.5).abs() < 1e-9, "{rate}");
    assert_eq!(st.latest(id), Some((999_000, 499.5)));
}

#[test]
fn rate_treats_a_decrease_as_a_reset() {
    let mut st = Store::new(60_000);
    let m = st.family(gauge("c_total"));
    let e = st.add_entity(vec![]);
    let mut cur = SeriesCursor::default();
    for (t, v) in [(0, 100), (1000, 110), (2000, 5), (3000, 15)] {
        st.writer(e, &mut cur, t).put(m, &[], v);
    }
    let id = st.entity_series(e, "c_total").unwrap();
    // 10 + 5 (reset: counts from zero) + 10 over 3 s.
    assert_eq!(st.rate(id, 0), Some(25.0 / 3.0));
    assert_eq!(st.rate(id, 3000), None, "one sample gives no rate");
}

#[test]
fn renders_exposition_with_escaped_labels_and_drops_removed_entities() {
    let mut st = Store::new(60_000);
    let g = st.family(gauge("mem_bytes"));
    let c = st.family(counter_ns("cpu_seconds_total"));
    let a = st.add_entity(vec![("name", "a\"b".into())]);
    let b = st.add_entity(vec![("name", "b".into())]);
    let (mut ca, mut cb) = (SeriesCursor::default(), SeriesCursor::default());
    {
        let mut w = st.writer(a, &mut ca, 1000);
        w.put(g, &[("interface", "eth0")], 7);
        w.put(c, &[], 1_500_000_000);
    }
    st.writer(b, &mut cb, 1000)
        .put(g, &[("interface", "eth0")], 9);
    let mut out = String::new();
    st.render(&mut out);
    assert_eq!(
        out,
        "# HELP mem_bytes h\n# TYPE mem_bytes gauge\nmem_bytes{name=\"a\\\"b\",interface=\"eth0\"} 7\nmem_bytes{name=\"b\",interface=\"eth0\"} 9\n\
         # HELP cpu_seconds_total h\n# TYPE cpu_seconds_total counter\ncpu_seconds_total{name=\"a\\\"b\"} 1.5\n"
    );
    st.remove_entity(a);
    let mut out = String::new();
    st.render(&mut out);
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
    let g = st.family(gauge("rx_bytes"));
    let e = st.add_entity(vec![]);
    let mut cur = SeriesCursor::default();
    {
        let mut w = st.writer(e, &mut cur, 1000);
        w.put(g, &[("interface", "eth0")], 1);
        w.put(g, &[("interface", "eth1")], 2);
    }
    st.writer(e, &mut cur, 2000)
        .put(g, &[("interface", "eth1")], 3);
    let mut out = String::new();
    st.render(&mut out);
    assert!(!out.contains("eth0"), "{out}");
    assert!(out.contains("rx_bytes{interface=\"eth1\"} 3"), "{out}");
}

#[test]
fn cursor_follows_a_changed_order_of_puts() {
    let mut st = Store::new(60_000);
    let g = st.family(gauge("x"));
    let h = st.family(gauge("y"));
    let e = st.add_entity(vec![]);
    let mut cur = SeriesCursor::default();
    {
        let mut w = st.writer(e, &mut cur, 0);
        w.put(g, &[], 1);
        w.put(h, &[], 2);
    }
    {
        let mut w = st.writer(e, &mut cur, 1000);
        w.put(h, &[], 20);
        w.put(g, &[], 10);
    }
    assert_eq!(
        st.points(st.entity_series(e, "x").unwrap(), 0),
        vec![(0, 1.0), (1000, 10.0)]
    );
    assert_eq!(
        st.points(st.entity_series(e, "y").unwrap(), 0),
        vec![(0, 2.0), (1000, 20.0)]
    );
}

#[test]
fn a_day_of_idle_containers_fits_the_memory_budget() {
    // 100 containers x 30 series, 15 minutes at 1 s: the sample data stays far below 30 MiB.
    let mut st = Store::new(15 * 60_000);
    let fams: Vec<_> = (0..30)
        .map(|k| st.family(gauge(&format!("m{k}"))))
        .collect();
    let mut ents: Vec<_> = (0..100)
        .map(|k| {
            (
                st.add_entity(vec![("name", format!("c{k}"))]),
                SeriesCursor::default(),
            )
        })
        .collect();
    for t in 0..(15 * 60 + 200) {
        for (e, cur) in ents.iter_mut() {
            let mut w = st.writer(*e, cur, t * 1000);
            for (k, f) in fams.iter().enumerate() {
                w.put(*f, &[], t * k as i64);
            }
        }
    }
    let bytes = st.sample_bytes();
    assert!(bytes < 12 << 20, "{bytes} bytes");
    assert!(st.sample_count() >= 100 * 30 * 900);
}

#[test]
fn the_running_byte_count_matches_the_chunks() {
    let recount = |st: &Store| -> usize {
        st.series
            .iter()
            .flatten()
            .flat_map(|s| s.chunks.iter())
            .map(Chunk::heap_bytes)
            .sum()
    };
    let mut st = Store::new(30_000);
    let m = st.family(gauge("x"));
    let (a, b) = (
        st.add_entity(vec![]),
        st.add_entity(vec![("name", "b".into())]),
    );
    let (mut ca, mut cb) = (SeriesCursor::default(), SeriesCursor::default());
    for t in 0..500 {
        st.writer(a, &mut ca, t * 1000).put(m, &[], t * 7);
        st.writer(b, &mut cb, t * 1000).put(m, &[("k", "v")], t * t);
        assert_eq!(st.sample_bytes(), recount(&st), "after pass {t}");
    }
    st.remove_entity(a);
    assert_eq!(st.sample_bytes(), recount(&st));
    st.remove_entity(b);
    assert_eq!(st.sample_bytes(), 0);
}
