//! CPU cost of the OTLP metrics receiver on one core: decoding an export request (protobuf, and
//! OTLP/JSON for comparison), then translating and writing every data point into the store. The
//! decode-only figure is the same-run baseline the full path is compared with.
//!   cargo bench -p plimsoll-collector --bench otlp
//!
//! Workload: one export as an SDK sends it: one resource (`service.name`), 10 metrics × 50
//! attribute sets (`route`, `status`): 4 cumulative counters, 4 gauges, 2 histograms with 11 bounds,
//! 500 data points. The series exist after the first request, as in steady state.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use plimsoll_collector::sources::directory::ContainerDirectory;
use plimsoll_collector::sources::otlp::decode::{decode, Format};
use plimsoll_collector::sources::otlp::{ExportMetricsServiceRequest, MetricsReceiver, OtlpConfig};
use plimsoll_collector::store::Ingest;
use prost::Message;

const SETS: usize = 50;

fn kv(k: &str, v: String) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    }
}

fn attrs(i: usize) -> Vec<KeyValue> {
    vec![
        kv("http.route", format!("/api/v1/item/{}", i % 25)),
        kv("http.status_code", ["200", "500"][i / 25].to_string()),
    ]
}

fn number(i: usize) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs(i),
        time_unix_nano: 1_700_000_000_000_000_000,
        value: Some(number_data_point::Value::AsDouble(i as f64 * 1.5)),
        ..Default::default()
    }
}

fn request() -> ExportMetricsServiceRequest {
    let mut metrics = Vec::new();
    for m in 0..4 {
        metrics.push(Metric {
            name: format!("app.requests.{m}"),
            unit: "{request}".into(),
            data: Some(Data::Sum(Sum {
                data_points: (0..SETS).map(number).collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        });
        metrics.push(Metric {
            name: format!("app.queue.depth.{m}"),
            unit: "1".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: (0..SETS).map(number).collect(),
            })),
            ..Default::default()
        });
    }
    for m in 0..2 {
        metrics.push(Metric {
            name: format!("http.server.duration.{m}"),
            unit: "ms".into(),
            data: Some(Data::Histogram(Histogram {
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                data_points: (0..SETS)
                    .map(|i| HistogramDataPoint {
                        attributes: attrs(i),
                        count: 66,
                        sum: Some(1234.5),
                        explicit_bounds: vec![
                            5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0,
                        ],
                        bucket_counts: (0..12).collect(),
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "shop".into())],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn bench(c: &mut Criterion) {
    let req = request();
    let points = 10 * SETS as u64;
    let pb = req.encode_to_vec();
    let json = serde_json::to_vec(&req).unwrap();
    let max = 16 << 20;
    let ingest = Ingest::new(Duration::from_secs(60));
    let cfg = OtlpConfig::default();
    let receiver = MetricsReceiver::new(
        ingest,
        ContainerDirectory::new(),
        cfg.stale_after,
        cfg.limits(),
    )
    .unwrap();
    let mut now = 1_700_000_000_000i64;

    let mut g = c.benchmark_group("otlp");
    g.throughput(Throughput::Elements(points));
    g.bench_function("decode protobuf (baseline)", |b| {
        b.iter(|| {
            decode::<ExportMetricsServiceRequest>(Format::Protobuf, false, black_box(&pb), max)
                .unwrap()
        })
    });
    g.bench_function("decode+translate+ingest protobuf", |b| {
        b.iter(|| {
            now += 1;
            let req =
                decode::<ExportMetricsServiceRequest>(Format::Protobuf, false, black_box(&pb), max)
                    .unwrap();
            let out = receiver.export(&req, None, now);
            assert_eq!(out.accepted, points);
        })
    });
    g.bench_function("decode+translate+ingest JSON", |b| {
        b.iter(|| {
            now += 1;
            let req =
                decode::<ExportMetricsServiceRequest>(Format::Json, false, black_box(&json), max)
                    .unwrap();
            let out = receiver.export(&req, None, now);
            assert_eq!(out.accepted, points);
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5));
    bench(&mut c);
    c.final_summary();
}
