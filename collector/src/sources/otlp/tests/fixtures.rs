//! Requests, receivers and loopback servers the tests share, and what they all import.

#![allow(unused_imports)]

pub use std::sync::Mutex;
pub use std::time::Duration;

pub use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
pub use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, summary_data_point::ValueAtQuantile, AggregationTemporality,
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram as OtlpHistogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    Summary as OtlpSummary, SummaryDataPoint,
};
pub use opentelemetry_proto::tonic::resource::v1::Resource;
pub use prost::Message as _;

pub use crate::query::{Query, Selector};
pub use crate::sources::directory::ContainerDirectory;
pub use crate::sources::docker::ContainerInfo;
pub use crate::sources::otlp::names::{label_name, metric_name, NameKind};
pub use crate::sources::otlp::*;
pub use crate::store::Ingest;

pub const NOW: i64 = 1_700_000_000_000;

pub const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;

pub const DELTA: i32 = AggregationTemporality::Delta as i32;

pub fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

pub fn point(v: f64, attrs: &[(&str, &str)]) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
        time_unix_nano: 1,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

pub fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        description: format!("{name} help"),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

pub fn gauge(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    metric(
        name,
        unit,
        Data::Gauge(Gauge {
            data_points: points,
        }),
    )
}

pub fn sum(
    name: &str,
    unit: &str,
    monotonic: bool,
    temporality: i32,
    points: Vec<NumberDataPoint>,
) -> Metric {
    metric(
        name,
        unit,
        Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        }),
    )
}

pub fn request(resource: &[(&str, &str)], metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| kv(k, v)).collect(),
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

pub fn receiver(directory: ContainerDirectory) -> (Ingest, MetricsReceiver) {
    let ingest = Ingest::new(Duration::from_secs(60));
    let c = OtlpConfig::default();
    let r = MetricsReceiver::new(ingest.clone(), directory, c.stale_after, c.limits()).unwrap();
    (ingest, r)
}

pub fn exposition(ingest: &Ingest) -> String {
    let mut s = String::new();
    crate::http::exposition::render(&ingest.read(), &mut s);
    s
}

pub fn assert_has(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "no line {line:?} in:\n{text}"
    );
}

/// Records what the traces seam hands over.
#[derive(Default)]
pub struct Spans(pub Mutex<Vec<(usize, Option<std::net::IpAddr>)>>);

impl TracesSink for Spans {
    fn export(
        &self,
        request: ExportTraceServiceRequest,
        peer: Option<std::net::IpAddr>,
    ) -> Rejected {
        self.0
            .lock()
            .unwrap()
            .push((request.resource_spans.len(), peer));
        Rejected {
            count: 1,
            message: "one span rejected".into(),
        }
    }
}

pub fn loopback_servers(traces: Option<Arc<dyn TracesSink>>) -> (Ingest, Servers) {
    let (ingest, r) = receiver(ContainerDirectory::new());
    let config = OtlpConfig {
        grpc: Some("127.0.0.1:0".parse().unwrap()),
        http: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    };
    let handlers = Handlers {
        metrics: Arc::new(r),
        traces,
        max_request_bytes: config.max_request_bytes,
    };
    (ingest, Servers::start(&config, handlers).unwrap())
}

pub fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

pub async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String, Vec<u8>) {
    let mut r = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .body(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

pub fn at(mut p: NumberDataPoint, time: u64) -> NumberDataPoint {
    p.time_unix_nano = time;
    p
}

pub fn exp_point(
    scale: i32,
    offset: i32,
    counts: Vec<u64>,
    zero: u64,
    negative: u64,
) -> ExponentialHistogramDataPoint {
    use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
    let count = counts.iter().sum::<u64>() + zero + negative;
    ExponentialHistogramDataPoint {
        scale,
        count,
        sum: Some(1.0),
        zero_count: zero,
        positive: Some(Buckets {
            offset,
            bucket_counts: counts,
        }),
        negative: Some(Buckets {
            offset: 0,
            bucket_counts: vec![negative],
        }),
        ..Default::default()
    }
}
