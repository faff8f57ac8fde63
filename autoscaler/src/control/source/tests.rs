//! The embedded source's reading of a real store: selection, attribution, rates and freshness.

use std::time::Duration;

use plimsoll_collector::store::{
    FamilyDesc, FamilyId, Ingest, Limits, SourceDesc, SourceId, Value,
};

use super::*;

const C1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const C2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const T0: i64 = 1_700_000_000_000;

/// A store with, every second from T0 for 10 s: `orders_total` counters of the two replicas of
/// `web` (3/s and 1/s with status ok, 100/s with status error on C1), one of the service attributed
/// to no container (10/s), one of another service (1000/s), and a `queue_depth` gauge of the service.
fn store() -> (Ingest, SourceId, FamilyId) {
    let ingest = Ingest::new(Duration::from_secs(600));
    let src = ingest
        .register_source(SourceDesc {
            name: "test",
            stale_after: Duration::from_secs(3),
            limits: Limits::default(),
        })
        .unwrap();
    let orders = ingest
        .family(FamilyDesc::float("orders_total", "Orders.", Kind::Counter))
        .unwrap();
    let depth = ingest
        .family(FamilyDesc::float("queue_depth", "Queued.", Kind::Gauge))
        .unwrap();
    for i in 0..=10 {
        let t = T0 + i * 1000;
        let n = i as f64;
        ingest.batch(src, t, |b| {
            let mut put = |fam, labels: &[(&str, &str)], c: Option<&str>, v: f64| {
                let s = b.series(fam, labels, c).unwrap();
                b.put(s, Value::Float(v));
            };
            // Attributed series carry their container's labels, as every attributing source adds.
            put(
                orders,
                &[("status", "ok"), ("name", "web-1")],
                Some(C1),
                3.0 * n,
            );
            put(
                orders,
                &[("status", "error"), ("name", "web-1")],
                Some(C1),
                100.0 * n,
            );
            put(
                orders,
                &[("status", "ok"), ("name", "web-2")],
                Some(C2),
                1.0 * n,
            );
            put(
                orders,
                &[("status", "ok"), ("service", "web")],
                None,
                10.0 * n,
            );
            put(
                orders,
                &[("status", "ok"), ("service", "api")],
                None,
                1000.0 * n,
            );
            put(depth, &[("service", "web")], None, 40.0 + n);
        });
    }
    (ingest, src, orders)
}

fn read(ingest: &Ingest, metrics: &[MetricRead]) -> Readings {
    let store = ingest.read();
    let q = Query::new(&store);
    let replicas = [
        ReplicaRef {
            replica: "t1".into(),
            container: C1.into(),
        },
        ReplicaRef {
            replica: "t2".into(),
            container: C2.into(),
        },
    ];
    let req = Request {
        service: "web",
        replicas: &replicas,
        metrics,
    };
    let mut out = Readings::default();
    for m in metrics {
        read::combine(
            &req,
            m,
            embedded_series(&q, m, Duration::from_secs(2)),
            &mut out,
        );
    }
    out
}

fn metric(
    name: &str,
    family: &str,
    r: Read,
    scope: Scope,
    matchers: &[(&str, &str)],
) -> MetricRead {
    MetricRead {
        name: name.into(),
        query: SeriesQuery {
            metric: family.into(),
            matchers: matchers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            read: r,
        },
        scope,
    }
}

#[test]
fn the_embedded_store_gives_per_replica_rates_service_totals_and_reasons() {
    let (ingest, _, _) = store();
    let rate = Read::Rate(Duration::from_secs(5));
    let ok = [("status", "ok")];
    let out = read(
        &ingest,
        &[
            metric("per_replica", "orders_total", rate, Scope::Replica, &ok),
            metric("service", "orders_total", rate, Scope::Service, &ok),
            // Without `rate`: the counter over the loop's window, the gauge as it is.
            metric("auto", "orders_total", Read::Auto, Scope::Service, &ok),
            metric("depth", "queue_depth", Read::Auto, Scope::Service, &[]),
            metric(
                "api",
                "orders_total",
                rate,
                Scope::Service,
                &[("service", "api")],
            ),
            metric("nothing", "refunds_total", rate, Scope::Service, &[]),
            metric("gauge_rate", "queue_depth", rate, Scope::Service, &[]),
        ],
    );
    let per_replica = |c: &str| out.containers[c].values["per_replica"];
    assert_eq!((per_replica(C1), per_replica(C2)), (3.0, 1.0));
    // The replicas' 3 + 1 and the service's own 10; not api's, not the errors.
    assert_eq!(out.service["service"], 14.0);
    assert_eq!(out.service["auto"], 14.0);
    assert_eq!(out.service["depth"], 50.0);
    assert_eq!(out.service["api"], 1000.0);
    assert_eq!(out.missing["nothing"], Missing::NoSeries);
    assert_eq!(out.missing["gauge_rate"], Missing::NotACounter);
}

#[test]
fn series_that_stopped_are_not_read() {
    let (ingest, src, orders) = store();
    // The source goes on writing only the other service's counter: web's series are stale 20 s later
    // (staleness is measured on the source's own clock).
    ingest.batch(src, T0 + 30_000, |b| {
        let s = b
            .series(orders, &[("status", "ok"), ("service", "api")], None)
            .unwrap();
        b.put(s, Value::Float(30_000.0));
    });
    let out = read(
        &ingest,
        &[metric(
            "service",
            "orders_total",
            Read::Rate(Duration::from_secs(5)),
            Scope::Service,
            &[("status", "ok")],
        )],
    );
    assert_eq!(out.missing["service"], Missing::NoRecentSample, "{out:?}");
}
