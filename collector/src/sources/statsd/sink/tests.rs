use std::net::IpAddr;

use super::*;
use crate::query::{Query, Selector};
use crate::sources::statsd::StatsdConfig;
use crate::store::Ingest;
use crate::testutil::container_info;

const C1: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";

fn setup() -> (Ingest, ContainerDirectory, StoreSink, Aggregator) {
    let ingest = Ingest::new(Duration::from_secs(600));
    let dir = ContainerDirectory::new();
    let sink = StoreSink::new(
        ingest.clone(),
        dir.clone(),
        Duration::from_secs(1),
        1000,
        100,
    )
    .unwrap();
    let statsd = StatsdConfig {
        buckets: vec![0.01, 0.1, 1.0],
        ..Default::default()
    }
    .validate()
    .unwrap();
    let agg = Aggregator::new(statsd.aggregate, statsd.mapper);
    (ingest, dir, sink, agg)
}

fn send(
    agg: &mut Aggregator,
    dir: &ContainerDirectory,
    from: Option<IpAddr>,
    text: &str,
    now: Millis,
) {
    let peer = from.and_then(|ip| crate::sources::statsd::Containers::by_ip(dir, ip));
    agg.observe_packet(text.as_bytes(), peer.as_ref(), dir, now);
}

/// Rendered labels, attribution and points of a stored series.
type Stored = (String, Option<String>, Vec<(Millis, f64)>);

/// Every series of the family.
fn series(ingest: &Ingest, name: &str) -> Vec<Stored> {
    let st = ingest.read();
    let q = Query::new(&st);
    q.select(&Selector {
        name,
        ..Default::default()
    })
    .into_iter()
    .map(|s| {
        (
            st.rendered_labels(s).unwrap_or("").to_string(),
            st.attribution(s).map(str::to_string),
            q.points(s, 0),
        )
    })
    .collect()
}

#[test]
fn counters_start_at_zero_and_histograms_keep_their_buckets() {
    let (ingest, dir, mut sink, mut agg) = setup();
    send(
        &mut agg,
        &dir,
        None,
        "orders:2|c|#service:shop\nlat:20|ms\nq:5|g",
        1000,
    );
    sink.flush(&mut agg, 2000);
    send(
        &mut agg,
        &dir,
        None,
        "orders:3|c|#service:shop\nlat:200|ms\nq:-1|g",
        2500,
    );
    sink.flush(&mut agg, 3000);
    let o = series(&ingest, "orders_total");
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0, r#"{service="shop"}"#);
    assert_eq!(o[0].1, None);
    // The zero point one interval before the first flush makes the first increment count in a rate,
    // at the rate it was sent at.
    assert_eq!(o[0].2, vec![(1000, 0.0), (2000, 2.0), (3000, 5.0)]);
    assert_eq!(series(&ingest, "q")[0].2, vec![(2000, 5.0), (3000, 4.0)]);
    let st = ingest.read();
    let q = Query::new(&st);
    let lat = q.select(&Selector {
        name: "lat_seconds",
        ..Default::default()
    })[0];
    assert_eq!(q.kind(lat), Some(Kind::Histogram));
    assert_eq!(&**st.layout(lat).unwrap(), &[0.01, 0.1, 1.0]);
    assert_eq!(q.latest(lat).map(|(_, c)| c), Some(2.0));
}

#[test]
fn attributed_series_get_the_containers_labels_and_clashing_tags_are_exported() {
    let (ingest, dir, mut sink, mut agg) = setup();
    let ip: IpAddr = "172.17.0.5".parse().unwrap();
    let mut info = container_info(C1, &[ip]);
    info.name = "shop.2.abc".into();
    info.service = Some("shop".into());
    info.swarm_task_id = Some("abc".into());
    info.swarm_slot = Some("2".into());
    dir.upsert(info);
    send(
        &mut agg,
        &dir,
        Some(ip),
        "orders:1|c|#service:shop,region:eu\nsold:1|c|#service:other\nhost:1|c|#service:shop",
        1000,
    );
    // The DogStatsD container field attributes a datagram from anywhere.
    send(
        &mut agg,
        &dir,
        None,
        &format!("viaid:1|c|c:{}", &C1[..12]),
        1000,
    );
    send(&mut agg, &dir, None, "unattributed:1|c|#service:shop", 1000);
    sink.flush(&mut agg, 2000);
    let c1 = Some(C1.to_string());
    let o = series(&ingest, "orders_total");
    assert_eq!(
        (o[0].0.as_str(), &o[0].1),
        (
            r#"{name="shop.2.abc",service="shop",task="abc",slot="2",region="eu"}"#,
            &c1
        )
    );
    let s = series(&ingest, "sold_total");
    assert_eq!(
        s[0].0,
        r#"{name="shop.2.abc",service="shop",task="abc",slot="2",exported_service="other"}"#
    );
    let v = series(&ingest, "viaid_total");
    assert_eq!(
        (v[0].0.as_str(), &v[0].1),
        (
            r#"{name="shop.2.abc",service="shop",task="abc",slot="2"}"#,
            &c1
        )
    );
    let u = series(&ingest, "unattributed_total");
    assert_eq!((u[0].0.as_str(), &u[0].1), (r#"{service="shop"}"#, &None));
}

#[test]
fn a_family_another_source_owns_with_another_type_is_refused_once() {
    let (ingest, dir, mut sink, mut agg) = setup();
    ingest
        .family(FamilyDesc::float(
            "taken",
            "Someone else's.",
            Kind::Histogram,
        ))
        .unwrap();
    send(&mut agg, &dir, None, "taken:1|g\nfine:1|g", 1000);
    sink.flush(&mut agg, 2000);
    sink.flush(&mut agg, 3000);
    assert!(series(&ingest, "taken").is_empty());
    assert_eq!(series(&ingest, "fine")[0].2.len(), 2);
}

#[test]
fn a_series_deleted_from_the_store_is_created_again() {
    let (ingest, dir, mut sink, mut agg) = setup();
    dir.upsert(container_info(C1, &[]));
    send(&mut agg, &dir, None, &format!("g:1|g|c:{C1}"), 1000);
    sink.flush(&mut agg, 2000);
    assert_eq!(ingest.remove_attributed(C1, Some(sink.source())), 1);
    sink.flush(&mut agg, 3000);
    assert_eq!(series(&ingest, "g")[0].2, vec![(3000, 1.0)]);
}

#[test]
fn a_removed_containers_series_are_not_written_again() {
    let (ingest, dir, mut sink, mut agg) = setup();
    dir.upsert(container_info(C1, &[]));
    send(&mut agg, &dir, None, &format!("g:1|g|c:{C1}\nh:1|g"), 1000);
    sink.flush(&mut agg, 2000);
    assert_eq!(series(&ingest, "g").len(), 1);
    // Discovery: the directory first, then the store (the sampler's remove_attributed).
    dir.remove(C1);
    assert_eq!(ingest.remove_attributed(C1, None), 1);
    sink.flush(&mut agg, 3000);
    assert!(series(&ingest, "g").is_empty());
    assert_eq!(agg.len(), 1, "the aggregator forgot it too");
    // The store lost it between the directory's removal and the next flush: not created again.
    let (ingest, dir, mut sink, mut agg) = setup();
    dir.upsert(container_info(C1, &[]));
    send(&mut agg, &dir, None, &format!("g:1|g|c:{C1}"), 1000);
    sink.flush(&mut agg, 2000);
    dir.remove(C1);
    ingest.remove_attributed(C1, None);
    sink.removals = dir.removals(); // as if the flush had looked just before the removal
    sink.flush(&mut agg, 3000);
    assert!(series(&ingest, "g").is_empty());
}
