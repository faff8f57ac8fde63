//! What the collectors source makes of series as the collectors' JSON API serves them.

use std::time::Duration;

use super::*;
use crate::policy::Scope;

/// A series as `GET /api/v1/series` serves it.
fn served(json: &str) -> RemoteSeries {
    serde_json::from_str(json).unwrap()
}

fn p(phi: f64) -> MetricRead {
    MetricRead::new(
        "p",
        "traces_span_metrics_duration_milliseconds",
        Read::Quantile {
            phi,
            window: Duration::from_secs(60),
            scale: 0.001,
        },
        Scope::Service,
        &[("service_name", "checkout")],
    )
}

fn read(m: &MetricRead, series: &[&str]) -> Result<f64, Missing> {
    let req = Request {
        service: "shop_checkout",
        replicas: &[],
        metrics: std::slice::from_ref(m),
    };
    let Read::Quantile { phi, scale, .. } = m.query.read else {
        unreachable!()
    };
    quantile(
        &req,
        m,
        phi,
        scale,
        series.iter().map(|s| served(s)).collect(),
    )
}

#[test]
fn a_quantile_sums_the_buckets_of_every_collector_by_le() {
    // Node A saw 90 fast calls, node B 10 slow ones and one of another span of the same service.
    let a = r#"{"kind":"histogram","labels":{"service_name":"checkout","span_name":"GET /"},
        "points":[[0,0],[60000,90]],
        "buckets":[["100",90],["300",90],["1000",90],["+Inf",90]]}"#;
    let b = r#"{"kind":"histogram","labels":{"service_name":"checkout","span_name":"GET /"},
        "points":[[0,0],[60000,10]],
        "buckets":[["100",0],["300",0],["1000",10],["+Inf",10]]}"#;
    // rank 95 of 100: 5 of the 10 in (300, 1000] ms = 650 ms, which neither collector alone has.
    let got = read(&p(0.95), &[a, b]).unwrap();
    assert!((got - 0.65).abs() < 1e-9, "{got}");
    // rank 50 of 90 in (0, 100] ms.
    let got = read(&p(0.5), &[a, b]).unwrap();
    assert!((got - 0.1 * 50.0 / 90.0).abs() < 1e-9, "{got}");
    // Node A alone: all fast.
    assert!(read(&p(0.95), &[a]).unwrap() < 0.1);
}

#[test]
fn a_quantile_says_why_it_has_no_value() {
    let counter =
        r#"{"kind":"counter","labels":{"service_name":"checkout"},"points":[[0,0],[1000,5]]}"#;
    assert_eq!(read(&p(0.9), &[counter]), Err(Missing::NotAHistogram));
    assert_eq!(read(&p(0.9), &[]), Err(Missing::NoSeries));
    // One point in the window: the collector serves no buckets.
    let young = r#"{"kind":"histogram","labels":{"service_name":"checkout"},"points":[[0,3]]}"#;
    assert_eq!(read(&p(0.9), &[young]), Err(Missing::NoRecentSample));
    // Buckets without calls in the window.
    let idle = r#"{"kind":"histogram","labels":{"service_name":"checkout"},"points":[[0,3],[9,3]],
        "buckets":[["100",0],["+Inf",0]]}"#;
    assert_eq!(read(&p(0.9), &[idle]), Err(Missing::NoRecentSample));
    // Points to compute an increase from but no buckets: an older collector.
    let old = r#"{"kind":"histogram","labels":{"service_name":"checkout"},"points":[[0,3],[9,5]]}"#;
    assert_eq!(read(&p(0.9), &[old]), Err(Missing::NotServed));
}
