//! One OTLP export request as an SDK sends it: one resource (`service.name`), 10 metrics × 50
//! attribute sets (`http.route`, `http.status_code`): 4 cumulative counters, 4 gauges, 2 histograms
//! with 11 bounds; 500 data points.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use plimsoll_collector::sources::otlp::ExportMetricsServiceRequest;

/// Attribute sets per metric; 10 metrics.
pub const SETS: usize = 50;
/// Data points in [`request`].
pub const POINTS: u64 = 10 * SETS as u64;

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

pub fn request() -> ExportMetricsServiceRequest {
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
