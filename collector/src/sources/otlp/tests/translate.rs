//! Names, labels, attribution and values of every metric type, written into a real store.

use super::fixtures::*;

#[test]
fn names_follow_the_prometheus_exporter() {
    let cases = [
        (
            "http.server.duration",
            "ms",
            NameKind::Other,
            "http_server_duration_milliseconds",
        ),
        (
            "http.server.request.duration",
            "s",
            NameKind::Other,
            "http_server_request_duration_seconds",
        ),
        (
            "process.memory.usage",
            "By",
            NameKind::Gauge,
            "process_memory_usage_bytes",
        ),
        (
            "cpu.utilization",
            "1",
            NameKind::Gauge,
            "cpu_utilization_ratio",
        ),
        ("cpu.utilization", "1", NameKind::Other, "cpu_utilization"),
        ("orders", "{order}", NameKind::Counter, "orders_total"),
        (
            "orders.total.placed",
            "",
            NameKind::Counter,
            "orders_placed_total",
        ),
        (
            "throughput",
            "By/s",
            NameKind::Gauge,
            "throughput_bytes_per_second",
        ),
        ("speed", "m/h", NameKind::Gauge, "speed_meters_per_hour"),
        ("queue--depth__now", "", NameKind::Gauge, "queue_depth_now"),
        ("latency_seconds", "s", NameKind::Other, "latency_seconds"),
        (
            "2xx.responses",
            "",
            NameKind::Counter,
            "_2xx_responses_total",
        ),
        ("temp", "Cel", NameKind::Gauge, "temp_celsius"),
        ("weird", "foo bar", NameKind::Gauge, "weird_foo_bar"),
    ];
    for (name, unit, kind, want) in cases {
        assert_eq!(
            metric_name(name, unit, kind),
            want,
            "{name} [{unit}] {kind:?}"
        );
    }
}

#[test]
fn attribute_keys_become_label_names() {
    assert_eq!(label_name("http.method").as_deref(), Some("http_method"));
    assert_eq!(label_name("route").as_deref(), Some("route"));
    assert_eq!(label_name("1st").as_deref(), Some("key_1st"));
    assert_eq!(label_name("_private").as_deref(), Some("key_private"));
    assert_eq!(label_name("__reserved").as_deref(), Some("key__reserved"));
    assert_eq!(label_name("ünï").as_deref(), Some("_n_"));
    assert_eq!(label_name(""), None);
}

#[test]
fn gauges_and_cumulative_sums_are_stored_with_service_and_attribute_labels() {
    let (ingest, r) = receiver(ContainerDirectory::new());
    let req = request(
        &[("service.name", "shop")],
        vec![
            gauge(
                "queue.depth",
                "{item}",
                vec![point(7.0, &[("queue", "orders")])],
            ),
            sum(
                "orders",
                "{order}",
                true,
                CUMULATIVE,
                vec![point(42.0, &[("http.method", "GET"), ("service", "x")])],
            ),
            sum("inflight", "", false, CUMULATIVE, vec![point(-3.0, &[])]),
        ],
    );
    let out = r.export(&req, None, NOW);
    assert_eq!((out.accepted, out.rejected), (3, 0), "{}", out.message());
    let text = exposition(&ingest);
    assert_has(&text, "# TYPE queue_depth gauge");
    assert_has(&text, r#"queue_depth{service="shop",queue="orders"} 7"#);
    assert_has(&text, "# TYPE orders_total counter");
    assert_has(
        &text,
        r#"orders_total{service="shop",http_method="GET",exported_service="x"} 42"#,
    );
    assert_has(&text, "# TYPE inflight gauge");
    assert_has(&text, r#"inflight{service="shop"} -3"#);
}

#[test]
fn a_container_id_attributes_series_to_that_container_with_its_labels() {
    let dir = ContainerDirectory::new();
    let id = "c0ffee".repeat(10) + "abcd";
    dir.upsert(ContainerInfo {
        name: "shop_web.2.t1".into(),
        service: Some("shop_web".into()),
        swarm_task_id: Some("t1".into()),
        swarm_slot: Some("2".into()),
        ..crate::testutil::container_info(&id, &["10.0.0.7".parse().unwrap()])
    });
    let (ingest, r) = receiver(dir);
    // By `container.id` (a 12-character prefix is enough) ...
    let req = request(
        &[("service.name", "web"), ("container.id", &id[..12])],
        vec![gauge("busy", "", vec![point(1.0, &[])])],
    );
    assert_eq!(r.export(&req, None, NOW).accepted, 1);
    // ... or by the sender's address when the resource has none.
    let req = request(
        &[("service.name", "web")],
        vec![gauge("idle", "", vec![point(2.0, &[])])],
    );
    assert_eq!(
        r.export(&req, Some("10.0.0.7".parse().unwrap()), NOW)
            .accepted,
        1
    );
    // Unknown senders stay service-level.
    let req = request(
        &[("service.name", "web")],
        vec![gauge("other", "", vec![point(3.0, &[])])],
    );
    assert_eq!(
        r.export(&req, Some("10.0.0.8".parse().unwrap()), NOW)
            .accepted,
        1
    );
    let text = exposition(&ingest);
    assert_has(
        &text,
        &format!(
            r#"busy{{name="shop_web.2.t1",service="shop_web",task="t1",slot="2",container_id="{id}"}} 1"#
        ),
    );
    assert_has(
        &text,
        &format!(
            r#"idle{{name="shop_web.2.t1",service="shop_web",task="t1",slot="2",container_id="{id}"}} 2"#
        ),
    );
    assert_has(&text, r#"other{service="web"} 3"#);
    let store = ingest.read();
    let q = Query::new(&store);
    for name in ["busy", "idle"] {
        let sel = Selector {
            name,
            matchers: &[],
            container: Some(&id),
        };
        assert_eq!(q.select(&sel).len(), 1, "{name} is attributed");
    }
    let sel = Selector {
        name: "other",
        matchers: &[],
        container: Some(&id),
    };
    assert!(q.select(&sel).is_empty());
}

#[test]
fn histograms_and_summaries_keep_buckets_count_sum_and_quantiles() {
    let (ingest, r) = receiver(ContainerDirectory::new());
    let hist = metric(
        "http.server.duration",
        "ms",
        Data::Histogram(OtlpHistogram {
            aggregation_temporality: CUMULATIVE,
            data_points: vec![HistogramDataPoint {
                count: 6,
                sum: Some(123.0),
                explicit_bounds: vec![10.0, 100.0],
                bucket_counts: vec![1, 3, 2],
                attributes: vec![kv("route", "/a")],
                ..Default::default()
            }],
        }),
    );
    let summary = metric(
        "rpc.latency",
        "s",
        Data::Summary(OtlpSummary {
            data_points: vec![SummaryDataPoint {
                count: 4,
                sum: 2.0,
                quantile_values: vec![
                    ValueAtQuantile {
                        quantile: 0.5,
                        value: 0.4,
                    },
                    ValueAtQuantile {
                        quantile: 0.99,
                        value: 0.9,
                    },
                ],
                ..Default::default()
            }],
        }),
    );
    let out = r.export(&request(&[], vec![hist, summary]), None, NOW);
    assert_eq!((out.accepted, out.rejected), (2, 0), "{}", out.message());
    let text = exposition(&ingest);
    assert_has(&text, "# TYPE http_server_duration_milliseconds histogram");
    assert_has(
        &text,
        r#"http_server_duration_milliseconds_bucket{route="/a",le="10"} 1"#,
    );
    assert_has(
        &text,
        r#"http_server_duration_milliseconds_bucket{route="/a",le="100"} 4"#,
    );
    assert_has(
        &text,
        r#"http_server_duration_milliseconds_bucket{route="/a",le="+Inf"} 6"#,
    );
    assert_has(
        &text,
        r#"http_server_duration_milliseconds_sum{route="/a"} 123"#,
    );
    assert_has(
        &text,
        r#"http_server_duration_milliseconds_count{route="/a"} 6"#,
    );
    assert_has(&text, "# TYPE rpc_latency_seconds summary");
    assert_has(&text, r#"rpc_latency_seconds{quantile="0.99"} 0.9"#);
    assert_has(&text, "rpc_latency_seconds_count 4");
}

#[test]
fn unsupported_and_malformed_points_are_rejected_with_reasons() {
    let (ingest, r) = receiver(ContainerDirectory::new());
    let bad_hist = metric(
        "h",
        "",
        Data::Histogram(OtlpHistogram {
            aggregation_temporality: CUMULATIVE,
            data_points: vec![HistogramDataPoint {
                explicit_bounds: vec![1.0],
                bucket_counts: vec![1, 2, 3],
                ..Default::default()
            }],
        }),
    );
    let exp = metric(
        "e",
        "",
        Data::ExponentialHistogram(ExponentialHistogram {
            aggregation_temporality: CUMULATIVE,
            data_points: vec![ExponentialHistogramDataPoint {
                scale: 40,
                ..Default::default()
            }],
        }),
    );
    let mut no_value = point(0.0, &[]);
    no_value.value = None;
    let mut gone = point(0.0, &[]);
    gone.flags = 1;
    let req = request(
        &[],
        vec![
            bad_hist,
            exp,
            gauge("g", "", vec![no_value, gone, point(1.0, &[])]),
            // A counter named like the gauge above: another type for the same name.
            sum("g", "", false, CUMULATIVE, vec![point(1.0, &[])]),
            gauge("...", "", vec![point(1.0, &[])]),
        ],
    );
    let out = r.export(&req, None, NOW);
    assert_eq!(out.accepted, 2, "{}", out.message());
    assert_eq!(out.rejected, 4, "{}", out.message());
    let m = out.message();
    assert!(
        m.contains("(invalid_histogram): h: 3 bucket counts for 1 bounds"),
        "{m}"
    );
    assert!(m.contains("(no_value)"), "{m}");
    assert!(m.contains("(invalid_name)"), "{m}");
    let reasons: Vec<_> = out.reasons().map(|(r, _)| r).collect();
    assert!(reasons.contains(&"invalid_exponential_histogram"), "{m}");
    assert!(m.contains("scale 40 is outside -10..=20"), "{m}");
    assert_has(&exposition(&ingest), "g 1");
}

#[test]
fn delta_sums_are_added_up_per_series_and_old_points_rejected() {
    let (ingest, r) = receiver(ContainerDirectory::new());
    // Exports the delta point `v` of `jobs{q}` stamped `k`.
    let jobs = |q: &str, v: f64, k: u64| {
        let m = sum("jobs", "", true, DELTA, vec![at(point(v, &[("q", q)]), k)]);
        r.export(
            &request(&[("service.name", "d")], vec![m]),
            None,
            NOW + k as i64,
        )
    };
    for (k, v) in [(1u64, 2.0), (2, 3.0), (3, 5.0)] {
        let out = jobs("a", v, k);
        assert_eq!(out.accepted, 1, "{}", out.message());
    }
    // Another label set runs its own total.
    jobs("b", 7.0, 3);
    // A repeated (or older) delta point is not counted twice.
    let out = jobs("a", 5.0, 3);
    assert_eq!((out.accepted, out.rejected), (0, 1));
    assert!(
        out.message().contains("(out_of_order)"),
        "{}",
        out.message()
    );
    // An up-down counter with delta temporality: its level.
    let export =
        |m: Metric, now: i64| r.export(&request(&[("service.name", "d")], vec![m]), None, now);
    for (k, v) in [(1u64, 4.0), (2, -1.0)] {
        export(
            sum("active", "", false, DELTA, vec![at(point(v, &[]), k)]),
            NOW + 5 + k as i64,
        );
    }
    let text = exposition(&ingest);
    assert_has(&text, r#"jobs_total{service="d",q="a"} 10"#);
    assert_has(&text, r#"jobs_total{service="d",q="b"} 7"#);
    assert_has(&text, "# TYPE active gauge");
    assert_has(&text, r#"active{service="d"} 3"#);
}

#[test]
fn delta_histograms_are_added_up_and_must_keep_their_bounds() {
    let (ingest, r) = receiver(ContainerDirectory::new());
    let hist = |time: u64, bounds: Vec<f64>, counts: Vec<u64>| {
        let count = counts.iter().sum();
        metric(
            "latency",
            "s",
            Data::Histogram(OtlpHistogram {
                aggregation_temporality: DELTA,
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: time,
                    count,
                    sum: Some(count as f64),
                    explicit_bounds: bounds,
                    bucket_counts: counts,
                    ..Default::default()
                }],
            }),
        )
    };
    assert_eq!(
        r.export(
            &request(&[], vec![hist(1, vec![0.1, 1.0], vec![1, 0, 2])]),
            None,
            NOW
        )
        .accepted,
        1
    );
    assert_eq!(
        r.export(
            &request(&[], vec![hist(2, vec![0.1, 1.0], vec![0, 4, 1])]),
            None,
            NOW + 1
        )
        .accepted,
        1
    );
    let out = r.export(
        &request(&[], vec![hist(3, vec![0.5], vec![1, 1])]),
        None,
        NOW + 2,
    );
    assert!(
        out.message().contains("(bounds_changed)"),
        "{}",
        out.message()
    );
    let text = exposition(&ingest);
    assert_has(&text, r#"latency_seconds_bucket{le="0.1"} 1"#);
    assert_has(&text, r#"latency_seconds_bucket{le="1"} 5"#);
    assert_has(&text, r#"latency_seconds_bucket{le="+Inf"} 8"#);
    assert_has(&text, "latency_seconds_count 8");
    assert_has(&text, "latency_seconds_sum 8");
}

#[test]
fn exponential_buckets_merge_exactly_into_power_of_two_buckets() {
    use crate::sources::otlp::values::{exponential_layout, exponential_of, WIDEN};
    // Scale 1: base √2; indexes 2..=5 cover (2, 2^3]: power-of-two buckets 1 (2,4] and 2 (4,8].
    let p = exp_point(1, 2, vec![1, 2, 3, 4], 5, 6);
    let bounds = exponential_layout(&p).unwrap();
    let want: Vec<f64> = (1 - WIDEN..=2 + WIDEN)
        .map(|j| 2f64.powi(j as i32 + 1))
        .collect();
    assert_eq!(&bounds[..], &want[..]);
    let h = exponential_of(&p, &bounds).unwrap();
    let at = |le: f64| h.buckets[bounds.iter().position(|b| *b == le).unwrap()];
    assert_eq!(
        h.buckets[0], 11.0,
        "zero bucket and negatives are below every bound"
    );
    assert_eq!(at(4.0), 3.0);
    assert_eq!(at(8.0), 7.0);
    assert_eq!(h.buckets.iter().sum::<f64>(), h.count);
    // A later point beyond the bounds: below counts in the lowest bucket, above in +Inf.
    let later = exp_point(0, 40, vec![2], 0, 0);
    let h = exponential_of(&later, &bounds).unwrap();
    assert_eq!(*h.buckets.last().unwrap(), 2.0);
    let early = exp_point(0, -40, vec![3], 0, 0);
    assert_eq!(exponential_of(&early, &bounds).unwrap().buckets[0], 3.0);
    // Scale -1: bucket i covers (4^i, 4^(i+1)]; it counts where its upper end is.
    let coarse = exp_point(-1, 1, vec![1], 0, 0);
    let b = exponential_layout(&coarse).unwrap();
    let h = exponential_of(&coarse, &b).unwrap();
    assert_eq!(h.buckets[b.iter().position(|x| *x == 16.0).unwrap()], 1.0);
    // Very wide spans keep the highest MAX_BOUNDS bounds.
    let wide = exp_point(
        0,
        -500,
        (0..1000).map(|i| u64::from(i % 7 == 0)).collect(),
        0,
        0,
    );
    let b = exponential_layout(&wide).unwrap();
    assert_eq!(b.len(), crate::sources::otlp::values::MAX_BOUNDS);
    assert!(b.iter().all(|x| x.is_finite()) && b.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn exponential_histograms_are_stored_as_histograms_with_fixed_bounds() {
    let (ingest, r) = receiver(ContainerDirectory::new());
    let m = |temporality, p| {
        metric(
            "req.size",
            "By",
            Data::ExponentialHistogram(ExponentialHistogram {
                aggregation_temporality: temporality,
                data_points: vec![p],
            }),
        )
    };
    let out = r.export(
        &request(&[], vec![m(CUMULATIVE, exp_point(0, 3, vec![1, 1], 0, 0))]),
        None,
        NOW,
    );
    assert_eq!(out.accepted, 1, "{}", out.message());
    // The range moves on; the bounds of the series stay.
    let out = r.export(
        &request(&[], vec![m(CUMULATIVE, exp_point(0, 20, vec![1], 0, 0))]),
        None,
        NOW + 1,
    );
    assert_eq!(out.accepted, 1, "{}", out.message());
    let text = exposition(&ingest);
    assert_has(&text, "# TYPE req_size_bytes histogram");
    assert_has(&text, r#"req_size_bytes_bucket{le="16"} 0"#);
    assert_has(&text, r#"req_size_bytes_bucket{le="+Inf"} 1"#);
    // Delta exponential histograms add up.
    let d = |t| {
        let mut p = exp_point(2, 0, vec![1, 1, 1, 1], 1, 0);
        p.time_unix_nano = t;
        metric(
            "d.size",
            "By",
            Data::ExponentialHistogram(ExponentialHistogram {
                aggregation_temporality: DELTA,
                data_points: vec![p],
            }),
        )
    };
    r.export(&request(&[], vec![d(1)]), None, NOW + 2);
    r.export(&request(&[], vec![d(2)]), None, NOW + 3);
    let text = exposition(&ingest);
    assert_has(&text, r#"d_size_bytes_bucket{le="2"} 10"#);
    assert_has(&text, "d_size_bytes_count 10");
}

#[test]
fn cardinality_beyond_the_source_limits_is_rejected_and_other_series_keep_working() {
    let ingest = Ingest::new(Duration::from_secs(60));
    let c = OtlpConfig {
        max_series_per_family: 10,
        max_series: 15,
        ..Default::default()
    };
    let r = MetricsReceiver::new(
        ingest.clone(),
        ContainerDirectory::new(),
        c.stale_after,
        c.limits(),
    )
    .unwrap();
    r.export(
        &request(&[], vec![gauge("kept", "", vec![point(1.0, &[])])]),
        None,
        NOW,
    );
    let ids: Vec<String> = (0..1000).map(|i| format!("u{i}")).collect();
    let points = ids.iter().map(|id| point(1.0, &[("user", id)])).collect();
    let out = r.export(
        &request(&[], vec![gauge("flood", "", points)]),
        None,
        NOW + 1,
    );
    assert_eq!((out.accepted, out.rejected), (10, 990), "{}", out.message());
    assert!(out.message().contains("(dropped)"), "{}", out.message());
    let out = r.export(
        &request(&[], vec![gauge("kept", "", vec![point(2.0, &[])])]),
        None,
        NOW + 2,
    );
    assert_eq!(out.accepted, 1);
    assert_has(&exposition(&ingest), "kept 2");
}
