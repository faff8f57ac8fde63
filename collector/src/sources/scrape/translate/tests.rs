use std::fmt::Write as _;

use proptest::prelude::*;

use super::*;

fn family<'a>(s: &'a Scraped, name: &str) -> &'a Family {
    s.families
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} in {s:?}"))
}

fn floats(f: &Family) -> Vec<(Vec<(String, String)>, f64)> {
    f.series
        .iter()
        .map(|s| match s.value {
            Sample::Float(v) => (s.labels.clone(), v),
            _ => panic!("{s:?}"),
        })
        .collect()
}

#[test]
fn samples_without_a_type_are_untyped_gauges_and_a_histogram_needs_its_type() {
    // No TYPE at all (a hand-written exporter): each name is a gauge of its own, `_bucket` too.
    let body = "# HELP temp Temperature.\ntemp{room=\"a\"} 21.5\nreq_bucket{le=\"1\"} 3\ntemp{room=\"b\"} 19\n";
    let s = parse(body.as_bytes(), Format::Prometheus, 100).unwrap();
    let t = family(&s, "temp");
    assert_eq!((t.kind, t.help.as_str()), (Kind::Gauge, "Temperature."));
    assert_eq!(
        floats(t),
        vec![
            (vec![("room".into(), "a".into())], 21.5),
            (vec![("room".into(), "b".into())], 19.0)
        ],
        "a family's lines need not be together"
    );
    assert_eq!(family(&s, "req_bucket").kind, Kind::Gauge);
    assert_eq!(s.samples, 3);
}

#[test]
fn histogram_and_summary_series_are_told_apart_by_their_other_labels() {
    let body = "# TYPE h histogram\nh_bucket{route=\"/a\",le=\"0.5\"} 1\nh_bucket{le=\"0.5\",route=\"/b\"} 2\nh_bucket{route=\"/a\",le=\"+Inf\"} 4\nh_bucket{route=\"/b\",le=\"+Inf\"} 2\nh_sum{route=\"/a\"} 3\nh_count{route=\"/a\"} 4\nh_sum{route=\"/b\"} 0.5\nh_count{route=\"/b\"} 2\nh_created{route=\"/a\"} 1\n# TYPE s summary\ns{quantile=\"0.99\",op=\"x\"} 9\ns_count{op=\"x\"} 3\ns_sum{op=\"x\"} 12\n";
    let s = parse(body.as_bytes(), Format::Prometheus, 100).unwrap();
    let h = family(&s, "h");
    let route = |i: usize| h.series[i].labels.clone();
    assert_eq!(route(0), vec![("route".to_string(), "/a".to_string())]);
    assert_eq!(route(1), vec![("route".to_string(), "/b".to_string())]);
    let Sample::Histogram(a) = &h.series[0].value else {
        panic!()
    };
    assert_eq!(
        (a.buckets.clone(), a.count, a.sum),
        (vec![1.0, 3.0], 4.0, 3.0)
    );
    // In the text format h_created is a name of its own, not the histogram's.
    assert_eq!(family(&s, "h_created").kind, Kind::Gauge);
    let Sample::Summary(q) = &family(&s, "s").series[0].value else {
        panic!()
    };
    assert_eq!((q.values.clone(), q.count, q.sum), (vec![9.0], 3.0, 12.0));
}

#[test]
fn openmetrics_types_and_suffixes() {
    let body = "# TYPE c counter\n# UNIT c seconds\nc_total{a=\"1\"} 3 1520879607.789 # {id=\"x\"} 1\nc_created{a=\"1\"} 1520000000\n# TYPE i info\ni_info{version=\"2\"} 1\n# TYPE gh gaugehistogram\ngh_bucket{le=\"+Inf\"} 3\ngh_gcount 3\ngh_gsum 2\n# TYPE st stateset\nst{st=\"on\"} 1\nst{st=\"off\"} 0\n# TYPE u unknown\nu 5\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0.5\nh_created 1520000000\n# EOF\n";
    let s = parse(body.as_bytes(), Format::OpenMetrics, 100).unwrap();
    let names: Vec<&str> = s.families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["c_total", "h", "i_info", "st", "u"]);
    assert_eq!(
        floats(family(&s, "c_total")),
        vec![(vec![("a".into(), "1".into())], 3.0)]
    );
    assert_eq!(family(&s, "c_total").kind, Kind::Counter);
    assert_eq!(floats(family(&s, "i_info"))[0].1, 1.0);
    assert_eq!(family(&s, "st").series.len(), 2);
    assert_eq!((s.unsupported, s.invalid), (1, 0), "the gauge histogram");
    assert_eq!(s.samples, 13);
}

#[test]
fn the_sample_limit_counts_sample_lines_and_stops_reading() {
    let mut body = String::new();
    for i in 0..50 {
        let _ = writeln!(body, "m{{i=\"{i}\"}} {i}");
    }
    body.push_str("this line is never read {\n");
    assert_eq!(
        parse(body.as_bytes(), Format::Prometheus, 49).unwrap_err(),
        ParseError::SampleLimit { limit: 49 }
    );
    assert_eq!(
        parse(body.as_bytes(), Format::Prometheus, 50)
            .unwrap_err()
            .to_string(),
        "line 51: invalid value"
    );
}

/// One family of `series` label sets as a client library writes it, with its expected values.
fn exposition(kind: &str, series: &[(String, f64)]) -> String {
    let mut s = format!("# HELP fam A family.\n# TYPE fam {kind}\n");
    for (v, x) in series {
        let escaped = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = writeln!(s, "fam{{k=\"{escaped}\",n=\"1\"}} {x}");
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// What a correct exposition says is what is read: every series, its labels and value.
    #[test]
    fn well_formed_expositions_are_read_back(
        values in proptest::collection::btree_map("\\PC{0,12}", -1e12f64..1e12, 0..40),
        counter in any::<bool>(),
    ) {
        let series: Vec<(String, f64)> = values.into_iter().collect();
        let body = exposition(if counter { "counter" } else { "gauge" }, &series);
        let s = parse(body.as_bytes(), Format::Prometheus, 1000).unwrap();
        prop_assert_eq!(s.samples, series.len());
        if series.is_empty() {
            prop_assert!(s.families.is_empty());
        } else {
            let f = family(&s, "fam");
            prop_assert_eq!(f.kind, if counter { Kind::Counter } else { Kind::Gauge });
            let want: Vec<(Vec<(String, String)>, f64)> = series
                .iter()
                .map(|(v, x)| (vec![("k".to_string(), v.clone()), ("n".to_string(), "1".to_string())], *x))
                .collect();
            prop_assert_eq!(floats(f), want);
        }
    }

    /// Any line of a real exposition cut or changed anywhere: an error naming a line, or a
    /// result, never a panic; a result's counts add up.
    #[test]
    fn mangled_expositions_are_an_answer(
        cut in 0usize..400,
        at in 0usize..400,
        flip in proptest::sample::select(vec![b'{', b'}', b'"', b'\\', b',', b'=', b' ', b'\n', b'#', b'x', b'0']),
        om in any::<bool>(),
    ) {
        let mut body = exposition("histogram", &[]);
        body.push_str("fam_bucket{le=\"1\"} 1\nfam_bucket{le=\"+Inf\"} 2\nfam_sum 1\nfam_count 2\n# TYPE g gauge\ng{a=\"x\\\"y\"} 1 1700000000000\n# EOF\n");
        let mut bytes = body.into_bytes();
        let at = at % bytes.len();
        bytes[at] = flip;
        bytes.truncate(cut.max(at + 1).min(bytes.len()));
        let format = if om { Format::OpenMetrics } else { Format::Prometheus };
        match parse(&bytes, format, 1000) {
            Ok(s) => {
                let stored: usize = s.families.iter().map(|f| f.series.len()).sum();
                prop_assert!(stored + s.invalid <= s.samples);
            }
            Err(e) => prop_assert!(matches!(e, ParseError::Syntax { .. }), "{e}"),
        }
    }
}
