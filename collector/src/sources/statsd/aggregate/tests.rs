use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq)]
enum Val {
    C(f64),
    G(f64),
    H {
        bounds: Vec<f64>,
        buckets: Vec<f64>,
        count: f64,
        sum: f64,
    },
}

/// Records a flush as `family{labels}@container -> value`.
#[derive(Default)]
struct Rec {
    points: BTreeMap<String, Val>,
    kinds: BTreeMap<String, FamilyKind>,
    help: BTreeMap<String, String>,
    ids: BTreeMap<String, SeriesId>,
}

impl Sink for Rec {
    fn write(&mut self, id: SeriesId, s: &SeriesView<'_>, v: FlushValue<'_>) {
        let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        let mut key = format!("{}{{{}}}", s.family, labels.join(","));
        if let Some(c) = s.attribution {
            key.push_str(&format!("@{c}"));
        }
        let val = match v {
            FlushValue::Counter(x) => Val::C(x),
            FlushValue::Gauge(x) => Val::G(x),
            FlushValue::Histogram {
                bounds,
                buckets,
                count,
                sum,
            } => Val::H {
                bounds: bounds.to_vec(),
                buckets: buckets.to_vec(),
                count,
                sum,
            },
        };
        self.kinds.insert(s.family.to_string(), s.kind);
        self.help.insert(s.family.to_string(), s.help.to_string());
        self.ids.insert(key.clone(), id);
        assert!(
            self.points.insert(key, val).is_none(),
            "one write per series per flush"
        );
    }
}

fn cfg() -> AggregateConfig {
    AggregateConfig {
        ttl: Duration::from_secs(300),
        buckets: Arc::from(&[0.01, 0.1, 1.0][..]),
        max_series: 1000,
        max_series_per_family: 100,
        max_set_members: 1000,
    }
}

fn agg() -> Aggregator {
    Aggregator::new(cfg(), Arc::new(Mapper::default()))
}

fn send(a: &mut Aggregator, packet: &str, now: Millis) {
    a.observe_packet(packet.as_bytes(), None, &NoContainers, now);
}

fn flush(a: &mut Aggregator, now: Millis) -> Rec {
    let mut r = Rec::default();
    a.flush(now, &mut r);
    r
}

fn starts(a: &mut Aggregator) -> Rec {
    let mut r = Rec::default();
    a.flush_starts(&mut r);
    r
}

fn c(x: f64) -> Val {
    Val::C(x)
}
fn g(x: f64) -> Val {
    Val::G(x)
}

#[test]
fn counters_accumulate_with_sample_rates_and_get_total() {
    let mut a = agg();
    send(&mut a, "orders:1|c\norders:2|c|@0.5\napi.hits:3|c", 1000);
    let r = flush(&mut a, 1000);
    assert_eq!(r.points["orders_total{}"], c(5.0));
    assert_eq!(r.points["api_hits_total{}"], c(3.0));
    assert_eq!(r.kinds["orders_total"], FamilyKind::Counter);
    assert_eq!(r.help["orders_total"], "StatsD counter orders");
    // Cumulative: written again at the next flush, with or without new lines.
    send(&mut a, "orders:1|c", 2000);
    assert_eq!(flush(&mut a, 2000).points["orders_total{}"], c(6.0));
    assert_eq!(flush(&mut a, 3000).points["orders_total{}"], c(6.0));
    let counts = a.take_counts();
    assert_eq!(counts.lines, 4);
    assert_eq!(counts.created, 2);
}

#[test]
fn gauges_take_values_and_signed_deltas() {
    let mut a = agg();
    send(&mut a, "queue:10|g\nqueue:+5|g\nqueue:-2.5|g", 0);
    assert_eq!(flush(&mut a, 0).points["queue{}"], g(12.5));
    send(&mut a, "queue:3|g", 1);
    assert_eq!(flush(&mut a, 1).points["queue{}"], g(3.0));
    send(&mut a, "fresh:-4|g", 2);
    assert_eq!(
        flush(&mut a, 2).points["fresh{}"],
        g(-4.0),
        "a delta starts from 0"
    );
    send(&mut a, "multi:1:2:3|g", 3);
    assert_eq!(flush(&mut a, 3).points["multi{}"], g(3.0));
}

#[test]
fn timers_become_histograms_in_seconds() {
    let mut a = agg();
    // 5 ms, 50 ms, 500 ms, 5 s; the last one sampled at 10%.
    send(
        &mut a,
        "db.query:5|ms\ndb.query:50:500|ms\ndb.query:5000|ms|@0.1",
        0,
    );
    let r = flush(&mut a, 0);
    assert_eq!(r.kinds["db_query_seconds"], FamilyKind::Histogram);
    let Val::H {
        bounds,
        buckets,
        count,
        sum,
    } = &r.points["db_query_seconds{}"]
    else {
        panic!("{:?}", r.points);
    };
    assert_eq!(bounds, &[0.01, 0.1, 1.0]);
    assert_eq!(buckets, &[1.0, 1.0, 1.0, 10.0]);
    assert_eq!(*count, 13.0);
    assert!((sum - (0.005 + 0.05 + 0.5 + 50.0)).abs() < 1e-9, "{sum}");
    // Histograms and distributions keep their values as sent.
    send(&mut a, "payload:0.05|h\npayload:2|h\nlat:0.5|d", 1);
    let r = flush(&mut a, 1);
    let Val::H { buckets, sum, .. } = &r.points["payload{}"] else {
        panic!()
    };
    assert_eq!(
        (buckets.as_slice(), *sum),
        (&[0.0, 1.0, 0.0, 1.0][..], 2.05)
    );
    assert!(matches!(&r.points["lat{}"], Val::H { count, .. } if *count == 1.0));
    // A bucket bound is inclusive (`le`).
    send(&mut a, "edge:100|ms", 2);
    let Val::H { buckets, .. } = &flush(&mut a, 2).points["edge_seconds{}"] else {
        panic!()
    };
    assert_eq!(buckets, &[0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn sets_count_distinct_members_per_interval() {
    let mut a = agg();
    send(&mut a, "users:alice|s\nusers:bob|s\nusers:alice|s", 0);
    assert_eq!(flush(&mut a, 0).points["users{}"], g(2.0));
    assert_eq!(flush(&mut a, 1).points["users{}"], g(0.0));
    send(&mut a, "users:carol|s", 2);
    assert_eq!(flush(&mut a, 2).points["users{}"], g(1.0));
}

#[test]
fn set_members_are_bounded_over_all_sets() {
    let mut a = Aggregator::new(
        AggregateConfig {
            max_set_members: 3,
            ..cfg()
        },
        Arc::new(Mapper::default()),
    );
    send(&mut a, "a:1|s\na:2|s\nb:1|s\nb:2|s\nb:3|s\na:1|s", 0);
    let r = flush(&mut a, 0);
    assert_eq!(r.points["a{}"], g(2.0));
    assert_eq!(r.points["b{}"], g(1.0));
    assert_eq!(a.take_counts().dropped(DropReason::SetMemberLimit), 2);
    // The budget is per interval.
    send(&mut a, "b:1|s\nb:2|s\nb:3|s", 1);
    assert_eq!(flush(&mut a, 1).points["b{}"], g(3.0));
}

#[test]
fn tags_become_sorted_labels_whatever_their_order() {
    let mut a = agg();
    send(
        &mut a,
        "req:1|c|#service:web,env:prod\nreq:1|c|#env:prod,service:web\nreq:1|c|#env:prod,#service:web",
        0,
    );
    let r = flush(&mut a, 0);
    assert_eq!(r.points.len(), 1, "{:?}", r.points);
    assert_eq!(r.points["req_total{env=\"prod\",service=\"web\"}"], c(3.0));
    // Bare tags, escaped keys, the last of a repeated key, empty tags skipped and counted.
    send(
        &mut a,
        "x:1|g|#canary,k8s.pod:p-1,env:a,env:b,,bad:,__reserved:1",
        1,
    );
    let r = flush(&mut a, 1);
    assert!(
        r.points
            .contains_key("x{canary=\"true\",env=\"b\",k8s_pod=\"p-1\"}"),
        "{:?}",
        r.points.keys()
    );
    assert_eq!(a.take_counts().error(ErrorReason::BadTag), 3);
    // `le` is the bucket label of histograms.
    send(&mut a, "t:1|ms|#le:x", 2);
    assert!(flush(&mut a, 2)
        .points
        .contains_key("t_seconds{exported_le=\"x\"}"));
}

#[test]
fn one_name_with_different_tag_keys_is_accepted() {
    // statsd_exporter #170: this used to fail there.
    let mut a = agg();
    send(
        &mut a,
        "jobs:1|c|#queue:a\njobs:2|c|#queue:b,prio:high\njobs:3|c",
        0,
    );
    let r = flush(&mut a, 0);
    assert_eq!(r.points["jobs_total{queue=\"a\"}"], c(1.0));
    assert_eq!(r.points["jobs_total{prio=\"high\",queue=\"b\"}"], c(2.0));
    assert_eq!(r.points["jobs_total{}"], c(3.0));
}

#[test]
fn a_name_used_with_two_types_keeps_the_first_and_counts_the_rest() {
    let mut a = agg();
    send(&mut a, "x_total:1|g\nx:1|c\nx:2|c\nx_total:5|g", 0);
    let r = flush(&mut a, 0);
    assert_eq!(r.points.len(), 1);
    assert_eq!(r.points["x_total{}"], g(5.0));
    assert_eq!(a.take_counts().dropped(DropReason::TypeConflict), 2);
    // A gauge and a counter of one StatsD name do not collide: the counter is `_total`.
    send(&mut a, "y:1|g\ny:1|c\ny:1|ms", 1);
    let r = flush(&mut a, 1);
    assert!(r.points.contains_key("y{}") && r.points.contains_key("y_total{}"));
    assert!(r.points.contains_key("y_seconds{}"));
    assert_eq!(a.take_counts().dropped(DropReason::TypeConflict), 0);
}

#[test]
fn series_expire_after_their_ttl_and_a_counter_starts_over_visibly() {
    let mut a = agg();
    send(&mut a, "jobs:5|c\nq:1|g", 0);
    // The first flush of a cumulative series starts with a zero point.
    let s = starts(&mut a);
    assert_eq!(s.points.len(), 1);
    assert_eq!(s.points["jobs_total{}"], c(0.0));
    assert_eq!(flush(&mut a, 1_000).points["jobs_total{}"], c(5.0));
    assert!(starts(&mut a).points.is_empty(), "only once");
    send(&mut a, "q:2|g", 200_000);
    // 300 s after its last line, the counter is gone; the gauge was seen later and stays.
    let r = flush(&mut a, 300_000);
    assert!(!r.points.contains_key("jobs_total{}"));
    assert_eq!(r.points["q{}"], g(2.0));
    assert_eq!(a.len(), 1);
    let counts = a.take_counts();
    assert_eq!(counts.expired, 1);
    // It comes back from zero, and says so with a zero point again.
    send(&mut a, "jobs:2|c", 301_000);
    assert_eq!(starts(&mut a).points["jobs_total{}"], c(0.0));
    assert_eq!(flush(&mut a, 302_000).points["jobs_total{}"], c(2.0));
    assert_eq!(a.take_counts().created, 1);
    // A TTL of zero never expires.
    let mut a = Aggregator::new(
        AggregateConfig {
            ttl: Duration::ZERO,
            ..cfg()
        },
        Arc::new(Mapper::default()),
    );
    send(&mut a, "jobs:5|c", 0);
    assert_eq!(
        flush(&mut a, Millis::MAX / 2).points["jobs_total{}"],
        c(5.0)
    );
}

#[test]
fn an_expired_slot_is_reused_under_a_new_generation() {
    let mut a = agg();
    send(&mut a, "a:1|c", 0);
    let first = flush(&mut a, 0).ids["a_total{}"];
    flush(&mut a, 300_000);
    send(&mut a, "b:1|c", 300_001);
    let second = flush(&mut a, 300_001).ids["b_total{}"];
    assert_eq!(first.slot, second.slot);
    assert_ne!(first.gen, second.gen);
}

#[test]
fn limits_drop_new_series_count_them_and_keep_the_rest() {
    let mut a = Aggregator::new(
        AggregateConfig {
            max_series: 5,
            max_series_per_family: 3,
            ..cfg()
        },
        Arc::new(Mapper::default()),
    );
    send(&mut a, "keep:1|c", 0);
    for i in 0..10 {
        send(&mut a, &format!("flood:1|c|#id:{i}"), 0);
    }
    send(&mut a, "other:1|g\nthird:1|g\nfourth:1|g", 0);
    send(&mut a, "keep:1|c\nflood:1|c|#id:0", 0);
    let r = flush(&mut a, 0);
    assert_eq!(r.points["keep_total{}"], c(2.0));
    assert_eq!(r.points["flood_total{id=\"0\"}"], c(2.0));
    assert_eq!(
        r.points.keys().filter(|k| k.starts_with("flood")).count(),
        3
    );
    assert_eq!(a.len(), 5);
    let counts = a.take_counts();
    assert_eq!(counts.dropped(DropReason::FamilyLimit), 7);
    assert_eq!(counts.dropped(DropReason::SourceLimit), 2);
    // When series expire there is room again.
    flush(&mut a, 10_000_000);
    assert_eq!(a.len(), 0);
    send(&mut a, "fourth:1|g", 10_000_001);
    assert_eq!(flush(&mut a, 10_000_001).points["fourth{}"], g(1.0));
}

#[test]
fn mapping_renames_labels_and_drops() {
    let mapper = Mapper::parse(
        "m.yml",
        r#"
defaults:
  ttl: 1m
mappings:
  - match: "noise.*"
    action: drop
  - match: "shop.*.orders"
    name: "orders"
    labels: { service: "$1", env: "mapped" }
  - match: "shop.*.latency"
    name: "checkout_latency"
    labels: { service: "$1" }
    histogram_options: { buckets: [0.5] }
    ttl: 10s
  - match: "honor.*"
    name: "honored"
    honor_labels: true
    labels: { env: "mapped" }
"#,
    )
    .unwrap();
    let mut a = Aggregator::new(cfg(), Arc::new(mapper));
    send(
        &mut a,
        "noise.x:1|c\nshop.web.orders:2|c|#env:tag\nshop.web.latency:250|ms\nhonor.x:1|g|#env:tag",
        0,
    );
    let r = flush(&mut a, 0);
    assert_eq!(
        r.points["orders_total{env=\"mapped\",service=\"web\"}"],
        c(2.0)
    );
    assert_eq!(r.points["honored{env=\"tag\"}"], g(1.0));
    let Val::H {
        bounds, buckets, ..
    } = &r.points["checkout_latency_seconds{service=\"web\"}"]
    else {
        panic!("{:?}", r.points.keys())
    };
    assert_eq!(
        (bounds.as_slice(), buckets.as_slice()),
        (&[0.5][..], &[1.0, 0.0][..])
    );
    assert_eq!(a.take_counts().dropped(DropReason::Mapping), 1);
    // Per-mapping TTL (10 s), then the file's default (1 m) over the receiver's (5 m).
    let r = flush(&mut a, 10_000);
    assert!(!r.points.keys().any(|k| k.starts_with("checkout")));
    assert_eq!(r.points.len(), 2);
    assert!(flush(&mut a, 60_000).points.is_empty());
}

struct Dir;

impl Containers for Dir {
    fn by_ip(&self, ip: IpAddr) -> Option<ContainerId> {
        (ip == IpAddr::from([172, 18, 0, 5])).then(|| Arc::from("c5".repeat(32)))
    }
    fn by_id(&self, id: &str) -> Option<ContainerId> {
        let full = "ab".repeat(32);
        (id.len() >= 12 && full.starts_with(id)).then(|| Arc::from(full))
    }
}

#[test]
fn attribution_prefers_the_container_field_then_the_sender() {
    let mut a = agg();
    let peer: ContainerId = Arc::from("c5".repeat(32));
    let short = "ab".repeat(6);
    a.observe_packet(
        format!("hits:1|c|c:{short}").as_bytes(),
        Some(&peer),
        &Dir,
        0,
    );
    a.observe_packet(format!("hits:1|c|c:ci-{short}").as_bytes(), None, &Dir, 0);
    a.observe_packet(b"hits:1|c|c:unknown0000000", Some(&peer), &Dir, 0);
    a.observe_packet(b"hits:1|c", Some(&peer), &Dir, 0);
    a.observe_packet(b"hits:1|c|#service:web", None, &Dir, 0);
    a.observe_packet(b"hits:1|c", None, &Dir, 0);
    let r = flush(&mut a, 0);
    let by_field = format!("hits_total{{}}@{}", "ab".repeat(32));
    let by_peer = format!("hits_total{{}}@{}", "c5".repeat(32));
    assert_eq!(r.points[&by_field], c(2.0));
    assert_eq!(
        r.points[&by_peer],
        c(2.0),
        "an unknown id falls back to the sender"
    );
    assert_eq!(r.points["hits_total{service=\"web\"}"], c(1.0));
    assert_eq!(r.points["hits_total{}"], c(1.0));
    assert_eq!(r.points.len(), 4);
}

#[test]
fn the_series_of_a_removed_container_are_forgotten_and_start_over_unattributed() {
    let mut a = agg();
    let gone: ContainerId = Arc::from("c5".repeat(32));
    let stays: ContainerId = Arc::from("d6".repeat(32));
    a.observe_packet(b"hits:3|c\nq:1|g", Some(&gone), &Dir, 0);
    a.observe_packet(b"hits:1|c", Some(&stays), &Dir, 0);
    a.observe_packet(b"hits:1|c", None, &Dir, 0);
    flush(&mut a, 0);
    assert_eq!(a.len(), 4);
    assert_eq!(a.forget_containers(|c| *c != gone), 2);
    assert_eq!(a.len(), 2);
    assert_eq!(a.forget_containers(|c| *c != gone), 0);
    // Its old address now belongs to nobody: what comes from it is host-level.
    a.observe_packet(b"hits:1|c", None, &Dir, 10);
    let r = flush(&mut a, 10);
    assert_eq!(r.points.len(), 2, "{:?}", r.points);
    assert_eq!(r.points["hits_total{}"], c(2.0));
    assert_eq!(r.points[&format!("hits_total{{}}@{stays}")], c(1.0));
    // The same container's series again would start from zero.
    a.observe_packet(b"hits:1|c", Some(&gone), &Dir, 20);
    assert_eq!(
        flush(&mut a, 20).points[&format!("hits_total{{}}@{gone}")],
        c(1.0)
    );
}

#[test]
fn values_that_would_overflow_the_state_are_refused() {
    let mut a = agg();
    send(
        &mut a,
        "c:1e308|c|@0.001\nc:1|c\ng:1e308|g\ng:+1e308|g\nh:1e308|h|@0.001",
        0,
    );
    let r = flush(&mut a, 0);
    assert_eq!(r.points["c_total{}"], c(1.0));
    assert_eq!(r.points["g{}"], g(1e308));
    assert!(matches!(&r.points["h{}"], Val::H { count, .. } if *count == 0.0));
    assert_eq!(
        a.take_counts()
            .error(ErrorReason::Parse(ParseError::BadValue)),
        3
    );
}

#[test]
fn names_and_tags_that_are_not_utf8_are_counted() {
    let mut a = agg();
    a.observe_packet(b"caf\xe9:1|c\nok:1|c|#k:\xff", None, &NoContainers, 0);
    assert_eq!(a.take_counts().error(ErrorReason::NotUtf8), 2);
    assert!(a.is_empty());
}

#[test]
fn a_cardinality_attack_is_bounded_and_leaves_other_series_intact() {
    let limit = 10_000;
    let mut a = Aggregator::new(
        AggregateConfig {
            max_series: 100_000,
            max_series_per_family: limit,
            ..cfg()
        },
        Arc::new(Mapper::default()),
    );
    send(&mut a, "orders:1|c|#service:shop", 0);
    let mut packet = String::new();
    for i in 0..100_000 {
        packet.clear();
        packet.push_str(&format!("attack:1|c|#user:{i}\norders:1|c|#service:shop"));
        send(&mut a, &packet, 1);
    }
    let r = flush(&mut a, 1);
    assert_eq!(r.points["orders_total{service=\"shop\"}"], c(100_001.0));
    assert_eq!(a.len(), limit + 1);
    assert!(a.cache_len() <= 200_000, "cache {}", a.cache_len());
    // Rejected values are not interned: strings stay proportional to admitted series.
    assert!(
        a.strings.len() <= limit + 10,
        "interned {}",
        a.strings.len()
    );
    let counts = a.take_counts();
    assert_eq!(
        counts.dropped(DropReason::FamilyLimit),
        100_000 - limit as u64
    );
    assert_eq!(counts.created, limit as u64 + 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_packets_never_panic_and_stay_bounded(
        packets in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                "([a-c]{1,2}:[0-9+\\-.]{1,4}\\|(c|g|ms|h|d|s)(\\|@0\\.[1-9])?(\\|#[a-c]{1,2}(:[a-z0-9]{0,2})?(,[a-c]:[0-9])?)?\n){1,5}"
                    .prop_map(String::into_bytes),
            ],
            1..20,
        ),
        step in 0i64..200_000,
    ) {
        let mut a = Aggregator::new(
            AggregateConfig { max_series: 8, max_series_per_family: 3, ..cfg() },
            Arc::new(Mapper::default()),
        );
        let mut now = 0;
        for p in &packets {
            a.observe_packet(p, None, &Dir, now);
            now += step;
            let mut r = Rec::default();
            a.flush_starts(&mut r);
            let mut r = Rec::default();
            a.flush(now, &mut r);
            prop_assert!(a.len() <= 8);
            prop_assert_eq!(r.points.len(), a.len());
            for v in r.points.values() {
                match v {
                    Val::C(x) => prop_assert!(x.is_finite() && *x >= 0.0),
                    Val::G(x) => prop_assert!(x.is_finite()),
                    Val::H { buckets, count, sum, .. } => {
                        prop_assert!(sum.is_finite());
                        prop_assert!((buckets.iter().sum::<f64>() - count).abs() < 1e-6 * count.max(1.0));
                    }
                }
            }
        }
        prop_assert!(a.cache_len() <= 1024);
    }
}
