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
    MetricRead::new(name, family, r, scope, matchers)
}

#[test]
fn the_embedded_store_gives_per_replica_rates_service_totals_and_reasons() {
    let (ingest, _, _) = store();
    let rate = Read::Rate(Duration::from_secs(5));
    let ok = [("status", "ok")];
    let out = read(
        &ingest,
        &[
            metric(
                "per_replica",
                "orders_total",
                rate.clone(),
                Scope::Replica,
                &ok,
            ),
            metric("service", "orders_total", rate.clone(), Scope::Service, &ok),
            // Without `rate`: the counter over the loop's window, the gauge as it is.
            metric("auto", "orders_total", Read::Auto, Scope::Service, &ok),
            metric("depth", "queue_depth", Read::Auto, Scope::Service, &[]),
            metric(
                "api",
                "orders_total",
                rate.clone(),
                Scope::Service,
                &[("service", "api")],
            ),
            metric(
                "nothing",
                "refunds_total",
                rate.clone(),
                Scope::Service,
                &[],
            ),
            metric(
                "gauge_rate",
                "queue_depth",
                rate.clone(),
                Scope::Service,
                &[],
            ),
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

/// Span metrics of checkout, as the spans component writes them: a duration histogram in
/// milliseconds (buckets 100, 300, 1000) and calls by status, every second for 10 s, attributed to
/// no container; `fast` calls end in the first bucket, `slow` in the third.
fn span_metrics(fast_per_s: f64, slow_per_s: f64, errors_per_s: f64) -> Ingest {
    let ingest = Ingest::new(Duration::from_secs(600));
    let src = ingest
        .register_source(SourceDesc {
            name: "spans",
            stale_after: Duration::from_secs(3),
            limits: Limits::default(),
        })
        .unwrap();
    let dur = ingest
        .family(FamilyDesc::float(
            "traces_span_metrics_duration_milliseconds",
            "Durations.",
            Kind::Histogram,
        ))
        .unwrap();
    let calls = ingest
        .family(FamilyDesc::float(
            "traces_span_metrics_calls_total",
            "Calls.",
            Kind::Counter,
        ))
        .unwrap();
    let bounds: std::sync::Arc<[f64]> = std::sync::Arc::from([100.0, 300.0, 1000.0]);
    for i in 0..=10 {
        let n = i as f64;
        let h = plimsoll_collector::store::Histogram {
            bounds: bounds.clone(),
            buckets: vec![fast_per_s * n, 0.0, slow_per_s * n, 0.0],
            count: (fast_per_s + slow_per_s) * n,
            sum: 0.0,
        };
        ingest.batch(src, T0 + i * 1000, |b| {
            let svc = [("service_name", "checkout")];
            let s = b.series(dur, &svc, None).unwrap();
            b.put(s, Value::Histogram(&h));
            let ok = b
                .series(
                    calls,
                    &[
                        ("service_name", "checkout"),
                        ("status_code", "STATUS_CODE_UNSET"),
                    ],
                    None,
                )
                .unwrap();
            b.put(
                ok,
                Value::Float((fast_per_s + slow_per_s - errors_per_s) * n),
            );
            let err = b
                .series(
                    calls,
                    &[
                        ("service_name", "checkout"),
                        ("status_code", "STATUS_CODE_ERROR"),
                    ],
                    None,
                )
                .unwrap();
            b.put(err, Value::Float(errors_per_s * n));
        });
    }
    ingest
}

fn service_values(ingest: &Ingest, m: MetricRead) -> Readings {
    let store = ingest.read();
    let q = Query::new(&store);
    let req = Request {
        service: "shop_checkout",
        replicas: &[],
        metrics: std::slice::from_ref(&m),
    };
    let mut out = Readings::default();
    read::set_service_value(&m, embedded_service_value(&q, &req, &m), &mut out);
    out
}

#[test]
fn the_embedded_store_gives_a_latency_quantile_in_seconds_and_an_error_ratio() {
    let checkout = [("service_name", "checkout")];
    let p95 = |phi| {
        metric(
            "p95",
            "traces_span_metrics_duration_milliseconds",
            Read::Quantile {
                phi,
                window: Duration::from_secs(5),
                scale: 0.001,
            },
            Scope::Service,
            &checkout,
        )
    };
    // 90 fast and 10 slow calls a second: the median is in the first bucket, p95 in the third.
    let ingest = span_metrics(90.0, 10.0, 5.0);
    let median = service_values(&ingest, p95(0.5)).service["p95"];
    // rank 50 of 90 in (0, 100] ms: 100 * 50 / 90 ms.
    assert!((median - 0.1 * 50.0 / 90.0).abs() < 1e-9, "{median}");
    let tail = service_values(&ingest, p95(0.95)).service["p95"];
    // rank 95: 5 of the 10 in (300, 1000] ms: 300 + 700 * 5 / 10 = 650 ms.
    assert!((tail - 0.65).abs() < 1e-9, "{tail}");

    let ratio = |errors: &[(&str, &str)]| {
        metric(
            "errors",
            "traces_span_metrics_calls_total",
            Read::ErrorRatio {
                errors: errors
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                window: Duration::from_secs(5),
            },
            Scope::Service,
            &checkout,
        )
    };
    let out = service_values(&ingest, ratio(&[("status_code", "STATUS_CODE_ERROR")]));
    assert!((out.service["errors"] - 0.05).abs() < 1e-9, "{out:?}");
    // No errors: 0, not missing.
    let out = service_values(&ingest, ratio(&[("status_code", "NONE")]));
    assert_eq!(out.service["errors"], 0.0);
    // A quantile of a counter, an error ratio of a histogram, and a service nobody reports.
    let mut wrong = p95(0.9);
    wrong.query.metric = "traces_span_metrics_calls_total".into();
    assert_eq!(
        service_values(&ingest, wrong).missing["p95"],
        Missing::NotAHistogram
    );
    let mut wrong = ratio(&[("status_code", "STATUS_CODE_ERROR")]);
    wrong.query.metric = "traces_span_metrics_duration_milliseconds".into();
    assert_eq!(
        service_values(&ingest, wrong).missing["errors"],
        Missing::NotACounter
    );
    let mut other = p95(0.9);
    other
        .query
        .matchers
        .insert("service_name".into(), "payments".into());
    assert_eq!(
        service_values(&ingest, other).missing["p95"],
        Missing::NoSeries
    );
}
