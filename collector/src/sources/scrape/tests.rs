use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use proptest::prelude::*;

use super::config::{Defaults, ScrapeConfig};
use super::target::{merge_labels, target_of, Target};
use super::translate::{self, Format, ParseError, Sample};
use super::write::{Outcome, TargetWriter};
use crate::config::Problems;
use crate::sources::docker::ContainerInfo;
use crate::store::{Ingest, Kind, LatestSample, SeriesRef, Store};

fn container(labels: &[(&str, &str)], networks: &[(&str, &str)]) -> ContainerInfo {
    ContainerInfo {
        id: "c0ffee".repeat(10) + "abcd",
        name: "shop-web-1".into(),
        image: "shop:1".into(),
        service: Some("web".into()),
        compose_project: None,
        swarm_task_id: Some("t1".into()),
        swarm_slot: Some("1".into()),
        swarm_node_id: None,
        networks: networks
            .iter()
            .map(|(n, ip)| (n.to_string(), vec![ip.parse::<IpAddr>().unwrap()]))
            .collect(),
        pid: Some(42),
        host_network: false,
        state: "running".into(),
        health: None,
        started_at: None,
        limits: Default::default(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

const DEFAULTS: Defaults = Defaults {
    interval: Duration::from_secs(1),
    timeout: None,
};

#[test]
fn a_container_asks_by_plimsoll_or_prometheus_labels() {
    let net = [("shop_default", "172.20.0.5")];
    assert_eq!(target_of(&container(&[], &net), &DEFAULTS), Ok(None));
    assert_eq!(
        target_of(
            &container(
                &[
                    ("prometheus.io/scrape", "false"),
                    ("prometheus.io/port", "80")
                ],
                &net
            ),
            &DEFAULTS
        ),
        Ok(None)
    );
    let t = target_of(
        &container(&[("plimsoll.scrape.port", "9100")], &net),
        &DEFAULTS,
    )
    .unwrap()
    .unwrap();
    assert_eq!(t.url(), "http://172.20.0.5:9100/metrics");
    assert_eq!(t.interval, Duration::from_secs(1));
    assert_eq!(t.timeout, Duration::from_secs(1), "min(interval, 10s)");
    assert_eq!(
        t.labels,
        vec![
            ("name", "shop-web-1".to_string()),
            ("service", "web".into()),
            ("task", "t1".into()),
            ("slot", "1".into()),
            ("instance", "172.20.0.5:9100".into()),
        ]
    );
    let t = target_of(
        &container(
            &[
                ("prometheus.io/scrape", "true"),
                ("prometheus.io/port", "8080"),
                ("prometheus.io/path", "/stats/prom"),
            ],
            &net,
        ),
        &DEFAULTS,
    )
    .unwrap()
    .unwrap();
    assert_eq!(t.url(), "http://172.20.0.5:8080/stats/prom");
    let t = target_of(
        &container(
            &[
                ("plimsoll.scrape.port", "9100"),
                ("plimsoll.scrape.path", "/m"),
                ("prometheus.io/path", "/ignored"),
                ("plimsoll.scrape.interval", "30s"),
            ],
            &net,
        ),
        &DEFAULTS,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (t.path.as_str(), t.interval, t.timeout),
        ("/m", Duration::from_secs(30), Duration::from_secs(10))
    );
    let t = target_of(
        &container(
            &[
                ("plimsoll.scrape.port", "9100"),
                ("plimsoll.scrape.interval", "5s"),
                ("plimsoll.scrape.timeout", "2s"),
            ],
            &net,
        ),
        &DEFAULTS,
    )
    .unwrap()
    .unwrap();
    assert_eq!(t.timeout, Duration::from_secs(2));
    let d = Defaults {
        interval: Duration::from_secs(15),
        timeout: Some(Duration::from_secs(3)),
    };
    let t = target_of(&container(&[("plimsoll.scrape.port", "1")], &net), &d)
        .unwrap()
        .unwrap();
    assert_eq!(
        (t.interval, t.timeout),
        (Duration::from_secs(15), Duration::from_secs(3))
    );
}

#[test]
fn every_problem_of_the_labels_is_reported() {
    let net = [("a", "10.0.0.2")];
    let e = target_of(
        &container(
            &[
                ("plimsoll.scrape.port", "http"),
                ("plimsoll.scrape.path", "metrics"),
                ("plimsoll.scrape.interval", "2h"),
                ("plimsoll.scrape.timeout", "soon"),
                ("plimsoll.scrape.network", "b"),
            ],
            &net,
        ),
        &DEFAULTS,
    )
    .unwrap_err();
    assert_eq!(e.len(), 5, "{e:?}");
    let all = e.join("\n");
    for want in [
        "not a port number",
        "must start with /",
        "outside 100ms..=1m",
        "soon",
        "not on that network (it is on a)",
    ] {
        assert!(all.contains(want), "{want} in {all}");
    }
    let e = target_of(
        &container(&[("prometheus.io/scrape", "true")], &net),
        &DEFAULTS,
    )
    .unwrap_err();
    assert!(e[0].contains("without prometheus.io/port"), "{e:?}");
    let e = target_of(
        &container(
            &[
                ("prometheus.io/scrape", "true"),
                ("prometheus.io/port", "443"),
                ("prometheus.io/scheme", "https"),
            ],
            &net,
        ),
        &DEFAULTS,
    )
    .unwrap_err();
    assert_eq!(
        e,
        vec!["prometheus.io/scheme=\"https\": only http is scraped".to_string()]
    );
    let e = target_of(
        &container(
            &[
                ("plimsoll.scrape.port", "1"),
                ("plimsoll.scrape.interval", "5s"),
                ("plimsoll.scrape.timeout", "6s"),
            ],
            &net,
        ),
        &DEFAULTS,
    )
    .unwrap_err();
    assert!(e[0].contains("at most the interval 5s"), "{e:?}");
    let e = target_of(&container(&[("plimsoll.scrape.port", "1")], &[]), &DEFAULTS).unwrap_err();
    assert!(e[0].contains("no address"), "{e:?}");
}

#[test]
fn the_address_comes_from_the_named_network_else_one_that_is_not_the_routing_mesh() {
    let nets = [
        ("ingress", "10.0.0.9"),
        ("shop_back", "10.0.1.4"),
        ("shop_front", "10.0.2.4"),
    ];
    let t = |labels: &[(&str, &str)]| {
        target_of(&container(labels, &nets), &DEFAULTS)
            .unwrap()
            .unwrap()
            .addr
            .to_string()
    };
    assert_eq!(t(&[("plimsoll.scrape.port", "80")]), "10.0.1.4:80");
    assert_eq!(
        t(&[
            ("plimsoll.scrape.port", "80"),
            ("plimsoll.scrape.network", "shop_front")
        ]),
        "10.0.2.4:80"
    );
    assert_eq!(
        t(&[
            ("plimsoll.scrape.port", "80"),
            ("plimsoll.scrape.network", "ingress")
        ]),
        "10.0.0.9:80"
    );
    let mut host = container(&[("plimsoll.scrape.port", "9100")], &[]);
    host.host_network = true;
    assert_eq!(
        target_of(&host, &DEFAULTS)
            .unwrap()
            .unwrap()
            .addr
            .to_string(),
        "127.0.0.1:9100"
    );
    let v6 = container(&[("plimsoll.scrape.port", "80")], &[("n", "fd00::5")]);
    assert_eq!(
        target_of(&v6, &DEFAULTS).unwrap().unwrap().url(),
        "http://[fd00::5]:80/metrics"
    );
}

#[test]
fn targets_are_spread_over_their_interval() {
    let base = target_of(
        &container(&[("plimsoll.scrape.port", "80")], &[("n", "10.0.0.2")]),
        &DEFAULTS,
    )
    .unwrap()
    .unwrap();
    let offsets: Vec<Duration> = (2..40u8)
        .map(|i| {
            let t = Target {
                addr: format!("10.0.0.{i}:80").parse().unwrap(),
                ..base.clone()
            };
            assert_eq!(t.offset(), t.offset(), "stable");
            t.offset()
        })
        .collect();
    assert!(offsets.iter().all(|o| *o < base.interval));
    let distinct: std::collections::HashSet<_> = offsets.iter().collect();
    assert!(distinct.len() > 30, "{offsets:?}");
}

#[test]
fn scraped_labels_that_clash_with_target_labels_become_exported() {
    let target = vec![
        ("name", "web-1".to_string()),
        ("instance", "10.0.0.2:80".to_string()),
    ];
    let scraped = vec![
        ("name".to_string(), "app".to_string()),
        ("exported_name".to_string(), "x".to_string()),
        ("path".to_string(), "/".to_string()),
    ];
    let m: Vec<(String, String)> = merge_labels(&target, &scraped)
        .into_iter()
        .map(|(k, v)| (k.into_owned(), v.to_string()))
        .collect();
    let want: Vec<(String, String)> = [
        ("name", "web-1"),
        ("instance", "10.0.0.2:80"),
        ("exported_exported_name", "app"),
        ("exported_name", "x"),
        ("path", "/"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(m, want);
}

const TEXT: &str = r#"# HELP orders_total Orders taken.
# TYPE orders_total counter
orders_total{kind="a,b",name="app"} 5
orders_total{kind="c",name="app"} 7 1395066363000
# TYPE queue_depth gauge
queue_depth 12.5
# TYPE legacy untyped
legacy{x="1"} NaN
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 1
latency_seconds_bucket{le="1"} 3
latency_seconds_bucket{le="+Inf"} 4
latency_seconds_sum 2.5
latency_seconds_count 4
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.9"} 2
rpc_seconds{quantile="0.5"} 1
rpc_seconds_sum 10
rpc_seconds_count 5
"#;

fn family<'a>(s: &'a translate::Scraped, name: &str) -> &'a translate::Family {
    s.families
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} in {s:?}"))
}

#[test]
fn the_text_format_becomes_counters_gauges_histograms_and_summaries() {
    let s = translate::parse(TEXT.as_bytes(), Format::Prometheus, 100).unwrap();
    assert_eq!(s.samples, 4 + 5 + 4);
    let o = family(&s, "orders_total");
    assert_eq!(
        (o.kind, o.help.as_str(), o.series.len()),
        (Kind::Counter, "Orders taken.", 2)
    );
    let a = o
        .series
        .iter()
        .find(|x| x.labels.contains(&("kind".into(), "a,b".into())))
        .unwrap();
    assert_eq!(a.value, Sample::Float(5.0));
    assert_eq!(family(&s, "queue_depth").kind, Kind::Gauge);
    let legacy = family(&s, "legacy");
    assert_eq!(legacy.kind, Kind::Gauge, "untyped is a gauge");
    assert!(matches!(legacy.series[0].value, Sample::Float(v) if v.is_nan()));
    let Sample::Histogram(h) = &family(&s, "latency_seconds").series[0].value else {
        panic!()
    };
    assert_eq!(&*h.bounds, &[0.1, 1.0]);
    assert_eq!(
        h.buckets,
        vec![1.0, 2.0, 1.0],
        "per bucket, the last above 1"
    );
    assert_eq!((h.count, h.sum), (4.0, 2.5));
    let Sample::Summary(q) = &family(&s, "rpc_seconds").series[0].value else {
        panic!()
    };
    assert_eq!(
        (&*q.quantiles, q.values.as_slice(), q.count, q.sum),
        (&[0.5, 0.9][..], &[1.0, 2.0][..], 5.0, 10.0)
    );
}

#[test]
fn openmetrics_counters_get_their_total_and_info_is_a_gauge() {
    let body = "# TYPE orders counter\n# HELP orders Orders.\norders_total{a=\"b\"} 17.0 # {trace_id=\"x\"} 1\norders_created{a=\"b\"} 1520430000.123\n# TYPE build info\nbuild_info{version=\"1.2\"} 1\n# TYPE mode stateset\nmode{mode=\"a\"} 1\nmode{mode=\"b\"} 0\n# EOF\n";
    assert_eq!(
        Format::of(Some(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::of(Some("text/plain; version=0.0.4")),
        Format::Prometheus
    );
    assert_eq!(Format::of(None), Format::Prometheus);
    let s = translate::parse(body.as_bytes(), Format::OpenMetrics, 100).unwrap();
    let o = family(&s, "orders_total");
    assert_eq!(
        (o.kind, o.series[0].value.clone()),
        (Kind::Counter, Sample::Float(17.0))
    );
    let b = family(&s, "build_info");
    assert_eq!(
        (b.kind, b.series[0].value.clone()),
        (Kind::Gauge, Sample::Float(1.0))
    );
    assert_eq!(family(&s, "mode").series.len(), 2);
}

#[test]
fn bad_bodies_are_refused_with_a_reason() {
    let e = translate::parse(b"this is not { metrics", Format::Prometheus, 100).unwrap_err();
    assert_eq!(e.reason(), "parse");
    assert_eq!(
        translate::parse(b"\xff\xfe", Format::Prometheus, 100).unwrap_err(),
        ParseError::Utf8
    );
    let e = translate::parse(TEXT.as_bytes(), Format::Prometheus, 5).unwrap_err();
    assert_eq!(e, ParseError::SampleLimit { limit: 5 });
    let e = translate::parse(TEXT.as_bytes(), Format::Prometheus, 12).unwrap_err();
    assert_eq!(
        e.reason(),
        "sample_limit",
        "counted as Prometheus does: buckets, sum, count"
    );
    let e = translate::parse(b"ok 1\nm{a=\"b\" 1\n", Format::Prometheus, 100).unwrap_err();
    assert_eq!(e.to_string(), "line 2: no , or } after a label value");
    // OpenMetrics ends with # EOF, and nothing comes after it.
    for body in ["m 1\n", "m 1\n# EOF\nn 2\n"] {
        let e = translate::parse(body.as_bytes(), Format::OpenMetrics, 100).unwrap_err();
        assert_eq!(e.reason(), "parse", "{body:?}");
    }
    // What makes no sense in one series (buckets that go down, an le that is no number) is one bad
    // series, counted, not a bad scrape.
    let body = "# TYPE h histogram\nh_bucket{s=\"1\",le=\"1\"} 5\nh_bucket{s=\"1\",le=\"2\"} 3\nh_bucket{s=\"1\",le=\"+Inf\"} 6\nh_count{s=\"1\"} 6\nh_sum{s=\"1\"} 1\nh_bucket{s=\"2\",le=\"x\"} 1\nh_bucket{s=\"3\",le=\"+Inf\"} 1\n# TYPE g gauge\ng 1\n";
    let s = translate::parse(body.as_bytes(), Format::Prometheus, 100).unwrap();
    assert_eq!(s.invalid, 2);
    assert_eq!(family(&s, "h").series.len(), 1);
    assert_eq!(family(&s, "g").series.len(), 1);
    let ok = translate::histogram(&[(2.0, 3.0), (1.0, 1.0)], Some(5.0), Some(1.0)).unwrap();
    assert_eq!(
        (&*ok.bounds, ok.buckets.as_slice(), ok.count),
        (&[1.0, 2.0][..], &[1.0, 2.0, 2.0][..], 5.0)
    );
    assert_eq!(
        translate::histogram(&[(1.0, 1.0)], None, None),
        None,
        "no count, no +Inf"
    );
    for (buckets, why) in [
        (&[(1.0, 4.0), (2.0, 3.0)][..], "going down"),
        (&[(1.0, 4.0), (1.0, 4.0)][..], "a bound twice"),
        (&[(1.0, 6.0)][..], "count below a bucket"),
        (&[(f64::NAN, 1.0)][..], "NaN bound"),
        (&[(1.0, f64::INFINITY)][..], "infinite count"),
    ] {
        assert_eq!(
            translate::histogram(buckets, Some(5.0), None),
            None,
            "{why}"
        );
    }
    let q = |qs: &[f64]| {
        let qs: Vec<(f64, f64)> = qs.iter().map(|p| (*p, 1.0)).collect();
        translate::summary(&qs, Some(2.0), None)
    };
    assert_eq!(q(&[0.9, 0.5]).unwrap().quantiles.to_vec(), vec![0.5, 0.9]);
    assert_eq!(q(&[0.5, 0.5]), None);
    assert_eq!(q(&[1.5]), None);
}

fn labels_of(st: &Store, s: SeriesRef) -> Vec<(String, String)> {
    st.labels(s)
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn series_named(st: &Store, name: &str) -> Vec<SeriesRef> {
    st.family_by_name(name)
        .map(|f| st.family_series(f).collect())
        .unwrap_or_default()
}

fn float(st: &Store, s: SeriesRef) -> f64 {
    match st.latest_sample(s).unwrap().1 {
        LatestSample::Float(f) => f,
        other => panic!("{other:?}"),
    }
}

#[test]
fn scrapes_are_written_with_target_labels_and_vanished_series_are_deleted() {
    let ingest = Ingest::new(Duration::from_secs(600));
    let health = super::register(&ingest, &ScrapeConfig::default()).unwrap();
    let target = target_of(
        &container(&[("plimsoll.scrape.port", "80")], &[("n", "10.0.0.2")]),
        &DEFAULTS,
    )
    .unwrap()
    .unwrap();
    let mut w = TargetWriter::default();
    let first = translate::parse(TEXT.as_bytes(), Format::Prometheus, 100).unwrap();
    let n = ingest.batch(health.src, 1_000, |b| {
        w.write(
            b,
            &health,
            &target,
            &Outcome::Ok(first),
            Duration::from_millis(12),
        )
    });
    assert_eq!(n.series, 6);
    {
        let st = ingest.read();
        let orders = series_named(&st, "orders_total");
        assert_eq!(orders.len(), 2);
        let l = labels_of(&st, orders[0]);
        for want in [
            ("name", "shop-web-1"),
            ("service", "web"),
            ("task", "t1"),
            ("slot", "1"),
            ("exported_name", "app"),
        ] {
            assert!(
                l.contains(&(want.0.into(), want.1.into())),
                "{want:?} in {l:?}"
            );
        }
        assert_eq!(st.attribution(orders[0]), Some(target.container.as_str()));
        let up = series_named(&st, "up");
        assert_eq!((up.len(), float(&st, up[0])), (1, 1.0));
        assert_eq!(labels_of(&st, up[0]).len(), 5);
        assert_eq!(
            float(&st, series_named(&st, "scrape_duration_seconds")[0]),
            0.012
        );
        assert_eq!(
            float(&st, series_named(&st, "scrape_samples_scraped")[0]),
            13.0
        );
        let h = series_named(&st, "latency_seconds")[0];
        assert_eq!(st.layout(h).map(|l| l.to_vec()), Some(vec![0.1, 1.0]));
    }
    // The next scrape no longer exposes the gauge and one counter: they are gone at once.
    let second = translate::parse(
        b"# TYPE orders_total counter\norders_total{kind=\"c\",name=\"app\"} 9\n",
        Format::Prometheus,
        100,
    )
    .unwrap();
    let n = ingest.batch(health.src, 2_000, |b| {
        w.write(
            b,
            &health,
            &target,
            &Outcome::Ok(second),
            Duration::from_millis(5),
        )
    });
    assert_eq!((n.series, n.removed), (1, 5));
    {
        let st = ingest.read();
        assert_eq!(series_named(&st, "orders_total").len(), 1);
        assert!(series_named(&st, "queue_depth").is_empty());
        assert!(series_named(&st, "latency_seconds").is_empty());
    }
    // A failed scrape: every scraped series goes, up is 0.
    let n = ingest.batch(health.src, 3_000, |b| {
        w.write(
            b,
            &health,
            &target,
            &Outcome::Failed,
            Duration::from_millis(1),
        )
    });
    assert_eq!(n.removed, 1);
    let st = ingest.read();
    assert!(series_named(&st, "orders_total").is_empty());
    assert_eq!(float(&st, series_named(&st, "up")[0]), 0.0);
    assert_eq!(
        float(&st, series_named(&st, "scrape_samples_scraped")[0]),
        0.0
    );
    drop(st);
    // The target goes: everything attributed to it is deleted.
    assert_eq!(
        ingest.remove_attributed(&target.container, Some(health.src)),
        3
    );
}

#[test]
fn names_that_clash_with_the_store_or_the_scrape_itself_are_skipped() {
    let ingest = Ingest::new(Duration::from_secs(600));
    let health = super::register(&ingest, &ScrapeConfig::default()).unwrap();
    ingest
        .family(crate::store::FamilyDesc::float(
            "queue_depth",
            "",
            Kind::Counter,
        ))
        .unwrap();
    let target = target_of(
        &container(&[("plimsoll.scrape.port", "80")], &[("n", "10.0.0.2")]),
        &DEFAULTS,
    )
    .unwrap()
    .unwrap();
    let s = translate::parse(
        b"# TYPE up gauge\nup 0\n# TYPE queue_depth gauge\nqueue_depth 1\n# TYPE ok gauge\nok 1\n",
        Format::Prometheus,
        100,
    )
    .unwrap();
    let mut w = TargetWriter::default();
    let n = ingest.batch(health.src, 1_000, |b| {
        w.write(b, &health, &target, &Outcome::Ok(s), Duration::ZERO)
    });
    assert_eq!((n.series, n.skipped_families), (1, 2));
    let st = ingest.read();
    assert_eq!(
        float(&st, series_named(&st, "up")[0]),
        1.0,
        "the target's own up is ours"
    );
}

#[test]
fn config_problems_are_reported_together() {
    let c = ScrapeConfig {
        interval: Some(Duration::from_secs(120)),
        timeout: Some(Duration::from_millis(1)),
        max_concurrent: 0,
        body_size_limit: 10,
        ..Default::default()
    };
    let mut p = Problems::default();
    c.validate(&mut p);
    let e = format!("{p:?}");
    for want in [
        "interval 2m is outside",
        "timeout 1ms is shorter",
        "max_concurrent",
        "body_size_limit",
    ] {
        assert!(e.contains(want), "{want} in {e}");
    }
    let mut p = Problems::default();
    ScrapeConfig::default().validate(&mut p);
    assert_eq!(format!("{p:?}"), "Problems([])");
    let c: crate::CollectorConfig = serde_json::from_str(
        r#"{"scrape": {"enabled": false, "interval": "15s", "timeout": "5s"}}"#,
    )
    .unwrap();
    assert_eq!(c.scrape.interval, Some(Duration::from_secs(15)));
    assert!(!c.scrape.enabled);
    assert!(serde_json::from_str::<crate::CollectorConfig>(r#"{"scrape": {"port": 1}}"#).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes, and mangled real expositions, through parse + translate + write: never a
    /// panic, and whatever is accepted is stored.
    #[test]
    fn arbitrary_bodies_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        cut in 0usize..TEXT.len(),
        flip in any::<u8>(),
        om in any::<bool>(),
    ) {
        let format = if om { Format::OpenMetrics } else { Format::Prometheus };
        let _ = translate::parse(&bytes, format, 1000);
        let mut mangled = TEXT.as_bytes().to_vec();
        mangled[cut] = flip;
        let ingest = Ingest::new(Duration::from_secs(60));
        let health = super::register(&ingest, &ScrapeConfig::default()).unwrap();
        let target = target_of(&container(&[("plimsoll.scrape.port", "80")], &[("n", "10.0.0.2")]), &DEFAULTS)
            .unwrap()
            .unwrap();
        let outcome = match translate::parse(&mangled, format, 1000) {
            Ok(s) => Outcome::Ok(s),
            Err(_) => Outcome::Failed,
        };
        let mut w = TargetWriter::default();
        ingest.batch(health.src, 1_000, |b| w.write(b, &health, &target, &outcome, Duration::ZERO));
    }
}

const ROUTE: &str =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
docker_gwbridge\t000015AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
br-5e1f\t001014AC\t00000000\t0001\t0\t0\t0\t00F0FFFF\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";
const ROUTE6: &str = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fd00dead000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001  br-5e1f
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
";

#[test]
fn only_addresses_on_the_hosts_docker_bridges_are_scraped() {
    use super::route::LocalNetworks;
    let l = LocalNetworks::parse(ROUTE, ROUTE6);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    for ok in [
        "172.17.0.5",
        "172.21.0.3",
        "172.20.16.9",
        "172.20.31.255",
        "127.0.0.1",
        "::1",
        "fd00:dead::5",
    ] {
        assert!(l.allows(ip(ok)), "{ok}");
    }
    // Overlay addresses leave by the default route; the uplink's own network is the host's LAN.
    for no in [
        "10.0.1.3",
        "172.20.32.1",
        "192.0.2.7",
        "8.8.8.8",
        "fd00::5",
        "2001:db8::1",
    ] {
        assert!(!l.allows(ip(no)), "{no}");
    }
    assert!(!LocalNetworks::parse("", "").allows(ip("172.17.0.5")));
    assert!(
        LocalNetworks::parse("garbage\nmore garbage here x y z\n", "zz").allows(ip("127.0.0.2"))
    );
}

#[test]
fn a_swarm_task_is_scraped_at_its_gateway_bridge_address() {
    let nets = [
        ("ingress", "10.0.0.9"),
        ("app_net", "10.0.1.4"),
        ("docker_gwbridge", "172.21.0.3"),
    ];
    let t = target_of(
        &container(&[("plimsoll.scrape.port", "80")], &nets),
        &DEFAULTS,
    )
    .unwrap()
    .unwrap();
    assert_eq!(t.addr.to_string(), "172.21.0.3:80");
    let t = target_of(
        &container(
            &[
                ("plimsoll.scrape.port", "80"),
                ("plimsoll.scrape.network", "app_net"),
            ],
            &nets,
        ),
        &DEFAULTS,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        t.addr.to_string(),
        "10.0.1.4:80",
        "the label wins (and the route check then refuses it)"
    );
}

/// The shell with a real HTTP server on loopback: targets start when containers appear in the
/// directory, fail on a too-large body or a timeout, and their series go when the container goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_follow_the_directory_and_failures_mark_them_down() {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/metrics", get(|| async { TEXT }))
        .route("/big", get(|| async { "x".repeat(64 * 1024) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                TEXT
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let ingest = Ingest::new(Duration::from_secs(600));
    let directory = crate::sources::directory::ContainerDirectory::new();
    let config = ScrapeConfig {
        body_size_limit: 16 * 1024,
        ..Default::default()
    };
    let _scraper = super::start(
        &config,
        Duration::from_millis(200),
        directory.clone(),
        ingest.clone(),
    )
    .unwrap();
    let on_host = |id: char, name: &str, path: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![
            ("plimsoll.scrape.port", port.as_str()),
            ("plimsoll.scrape.path", path),
        ];
        labels.extend_from_slice(extra);
        let mut c = container(&labels, &[]);
        c.id = id.to_string().repeat(64);
        c.name = name.to_string();
        c.host_network = true;
        c
    };
    directory.upsert(on_host('a', "app", "/metrics", &[]));
    directory.upsert(on_host('b', "big", "/big", &[]));
    directory.upsert(on_host(
        'c',
        "slow",
        "/slow",
        &[("plimsoll.scrape.timeout", "150ms")],
    ));
    // A container that does not ask is left alone.
    directory.upsert(container(&[], &[("n", "127.0.0.1")]));
    let up_of = |name: &str| {
        let st = ingest.read();
        series_named(&st, "up")
            .into_iter()
            .find(|s| st.labels(*s).unwrap().get("name") == Some(name))
            .map(|s| float(&st, s))
    };
    let until = |what: &str, cond: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    until("app up", &|| up_of("app") == Some(1.0));
    until("big down", &|| up_of("big") == Some(0.0));
    until("slow down", &|| up_of("slow") == Some(0.0));
    {
        let st = ingest.read();
        assert_eq!(series_named(&st, "up").len(), 3);
        assert_eq!(series_named(&st, "orders_total").len(), 2);
        let took = series_named(&st, "scrape_duration_seconds")
            .into_iter()
            .find(|s| st.labels(*s).unwrap().get("name") == Some("slow"))
            .map(|s| float(&st, s))
            .unwrap();
        assert!(
            (0.1..1.0).contains(&took),
            "the timeout cut the slow scrape: {took}"
        );
    }
    // The app stops asking (its labels change): its series go at once; then the slow one goes away.
    let mut unlabelled = on_host('a', "app", "/metrics", &[]);
    unlabelled.labels.clear();
    directory.upsert(unlabelled);
    until("app's series deleted", &|| {
        up_of("app").is_none() && series_named(&ingest.read(), "orders_total").is_empty()
    });
    directory.remove(&"c".repeat(64));
    until("slow's series deleted", &|| up_of("slow").is_none());
    assert_eq!(up_of("big"), Some(0.0), "the others stay");
}
