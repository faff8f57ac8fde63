//! Names, translation into the store, and both servers over real loopback sockets.

use std::sync::Mutex;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, summary_data_point::ValueAtQuantile, AggregationTemporality,
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram as OtlpHistogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    Summary as OtlpSummary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use super::names::{label_name, metric_name, NameKind};
use super::*;
use crate::query::{Query, Selector};
use crate::sources::directory::ContainerDirectory;
use crate::sources::docker::ContainerInfo;
use crate::store::Ingest;

const NOW: i64 = 1_700_000_000_000;
const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;
const DELTA: i32 = AggregationTemporality::Delta as i32;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn point(v: f64, attrs: &[(&str, &str)]) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
        time_unix_nano: 1,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        description: format!("{name} help"),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

fn gauge(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    metric(
        name,
        unit,
        Data::Gauge(Gauge {
            data_points: points,
        }),
    )
}

fn sum(
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

fn request(resource: &[(&str, &str)], metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
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

fn receiver(directory: ContainerDirectory) -> (Ingest, MetricsReceiver) {
    let ingest = Ingest::new(Duration::from_secs(60));
    let c = OtlpConfig::default();
    let r = MetricsReceiver::new(ingest.clone(), directory, c.stale_after, c.limits()).unwrap();
    (ingest, r)
}

fn exposition(ingest: &Ingest) -> String {
    let mut s = String::new();
    crate::http::exposition::render(&ingest.read(), &mut s);
    s
}

fn assert_has(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "no line {line:?} in:\n{text}"
    );
}

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
        id: id.clone(),
        name: "shop_web.2.t1".into(),
        image: "web".into(),
        service: Some("shop_web".into()),
        compose_project: None,
        swarm_task_id: Some("t1".into()),
        swarm_slot: Some("2".into()),
        swarm_node_id: None,
        networks: [("n".to_string(), vec!["10.0.0.7".parse().unwrap()])].into(),
        pid: None,
        host_network: false,
        state: "running".into(),
        health: None,
        started_at: None,
        limits: Default::default(),
        labels: Default::default(),
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
        r#"busy{name="shop_web.2.t1",service="shop_web",task="t1",slot="2"} 1"#,
    );
    assert_has(
        &text,
        r#"idle{name="shop_web.2.t1",service="shop_web",task="t1",slot="2"} 2"#,
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

/// Records what the traces seam hands over.
#[derive(Default)]
struct Spans(Mutex<Vec<(usize, Option<std::net::IpAddr>)>>);

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

fn loopback_servers(traces: Option<Arc<dyn TracesSink>>) -> (Ingest, Servers) {
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

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

async fn post(
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

#[tokio::test]
async fn http_takes_protobuf_json_and_gzip_and_answers_as_the_spec_says() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    let (ingest, servers) = loopback_servers(None);
    let addr = servers.http_addr().unwrap();
    let pb = request(
        &[("service.name", "a")],
        vec![gauge("pb", "", vec![point(1.0, &[])])],
    )
    .encode_to_vec();
    let (code, ct, _) = post(
        addr,
        "/v1/metrics",
        &[("content-type", "application/x-protobuf")],
        pb.clone(),
    )
    .await;
    assert_eq!((code, ct.as_str()), (200, "application/x-protobuf"));
    let gz = request(&[], vec![gauge("gz", "", vec![point(2.0, &[])])]).encode_to_vec();
    let hdrs = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "gzip"),
    ];
    assert_eq!(post(addr, "/v1/metrics", &hdrs, gzip(&gz)).await.0, 200);
    // OTLP/JSON: 64-bit integers as strings, enums as numbers, camelCase names.
    let json = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"j"}}]},
        "scopeMetrics":[{"metrics":[{"name":"js","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,
        "dataPoints":[{"asInt":"5","timeUnixNano":"1700000000000000000","attributes":[{"key":"k","value":{"intValue":"3"}}]}]}},
        {"name":"jh","histogram":{"aggregationTemporality":2,"dataPoints":[{"count":"3","sum":1.5,"bucketCounts":["1","2"],"explicitBounds":[0.5]}]}}]}]}]}"#;
    let (code, ct, body) = post(
        addr,
        "/v1/metrics",
        &[("content-type", "application/json; charset=utf-8")],
        json.into(),
    )
    .await;
    assert_eq!(
        (code, ct.as_str()),
        (200, "application/json"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let hdrs = [
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ];
    let partial = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"e","exponentialHistogram":{"aggregationTemporality":2,"dataPoints":[{"scale":-11}]}}]}]}]}"#;
    let (code, _, body) = post(addr, "/v1/metrics", &hdrs, gzip(partial.as_bytes())).await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedDataPoints"], 1, "{v}");
    assert!(
        v["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("exponential"),
        "{v}"
    );

    let text = exposition(&ingest);
    assert_has(&text, r#"pb{service="a"} 1"#);
    assert_has(&text, "gz 2");
    assert_has(&text, r#"js_total{service="j",k="3"} 5"#);
    assert_has(&text, r#"jh_bucket{service="j",le="0.5"} 1"#);

    // Errors: unsupported type and encoding 415, undecodable 400 with a Status in the request's encoding.
    let (code, _, _) = post(
        addr,
        "/v1/metrics",
        &[("content-type", "text/plain")],
        pb.clone(),
    )
    .await;
    assert_eq!(code, 415);
    let hdrs = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "br"),
    ];
    assert_eq!(post(addr, "/v1/metrics", &hdrs, pb.clone()).await.0, 415);
    let (code, ct, body) = post(
        addr,
        "/v1/metrics",
        &[("content-type", "application/x-protobuf")],
        vec![0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!((code, ct.as_str()), (400, "application/x-protobuf"));
    let status = decode::Status::decode(&body[..]).unwrap();
    assert_eq!(status.code, 3);
    assert!(
        status.message.contains("invalid protobuf"),
        "{}",
        status.message
    );
    let (code, _, body) = post(
        addr,
        "/v1/metrics",
        &[("content-type", "application/json")],
        b"{\"resourceMetrics\": 5}".to_vec(),
    )
    .await;
    assert_eq!(code, 400);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["message"].as_str().unwrap().contains("OTLP/JSON"), "{v}");
    let hdrs = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "gzip"),
    ];
    assert_eq!(
        post(addr, "/v1/metrics", &hdrs, b"not gzip".to_vec())
            .await
            .0,
        400
    );
    // Without a traces sink there is no trace endpoint.
    let (code, _, _) = post(
        addr,
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        vec![],
    )
    .await;
    assert_eq!(code, 404);
    let ok: ExportMetricsServiceResponse = ExportMetricsServiceResponse::decode(&[][..]).unwrap();
    assert!(ok.partial_success.is_none());
}

#[tokio::test]
async fn grpc_serves_metrics_and_hands_traces_to_the_sink() {
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
    let spans = Arc::new(Spans::default());
    let (ingest, servers) = loopback_servers(Some(spans.clone()));
    let url = format!("http://{}", servers.grpc_addr().unwrap());
    let mut client = MetricsServiceClient::connect(url.clone())
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let req = request(
        &[("service.name", "g")],
        vec![
            sum("hits", "", true, CUMULATIVE, vec![point(9.0, &[])]),
            sum("unspecified", "", true, 0, vec![point(1.0, &[])]),
        ],
    );
    let resp = client.export(req).await.unwrap().into_inner();
    let partial = resp.partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 1);
    assert_has(&exposition(&ingest), r#"hits_total{service="g"} 9"#);

    let mut traces = TraceServiceClient::connect(url).await.unwrap();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans::default(), ResourceSpans::default()],
    };
    let resp = traces.export(req).await.unwrap().into_inner();
    assert_eq!(resp.partial_success.unwrap().rejected_spans, 1);
    let seen = spans.0.lock().unwrap().clone();
    assert_eq!(seen, vec![(2, Some("127.0.0.1".parse().unwrap()))]);

    // The same sink over HTTP.
    let body = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans::default()],
    }
    .encode_to_vec();
    let (code, _, _) = post(
        servers.http_addr().unwrap(),
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        body,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(spans.0.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn grpc_answers_an_undecodable_request_with_invalid_argument() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let (_ingest, servers) = loopback_servers(None);
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", servers.grpc_addr().unwrap()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    // Span.trace_id (bytes) lands on Metric.name (string): not UTF-8, so not a metrics request.
    let garbage = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![0xff, 0xfe],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let codec =
        tonic_prost::ProstCodec::<ExportTraceServiceRequest, ExportMetricsServiceResponse>::default(
        );
    let path = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        .parse()
        .unwrap();
    let status = grpc
        .unary(tonic::Request::new(garbage), path, codec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("failed to decode"), "{status:?}");
}

#[tokio::test]
async fn a_taken_port_is_a_clear_start_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (_, r) = receiver(ContainerDirectory::new());
    let config = OtlpConfig {
        grpc: Some(taken.local_addr().unwrap()),
        http: None,
        ..Default::default()
    };
    let handlers = Handlers {
        metrics: Arc::new(r),
        traces: None,
        max_request_bytes: 1 << 20,
    };
    let e = Servers::start(&config, handlers).unwrap_err().to_string();
    assert!(e.contains("--otlp-grpc off"), "{e}");
}

#[test]
fn config_problems_are_reported_together() {
    let c = OtlpConfig {
        grpc: Some("0.0.0.0:4317".parse().unwrap()),
        http: Some("0.0.0.0:4317".parse().unwrap()),
        max_request_bytes: 10,
        stale_after: Duration::from_millis(10),
        max_series_per_family: 0,
        ..Default::default()
    };
    let mut p = crate::config::Problems::default();
    c.validate(&mut p);
    let text = format!("{p:?}");
    for want in [
        "both listen on 0.0.0.0:4317",
        "max_request_bytes 10",
        "stale_after 10ms",
        "max_series_per_family must be",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    let e = serde_json::from_str::<OtlpConfig>(r#"{"grcp": null}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field `grcp`"), "{e}");
    assert_eq!(config::parse_listen("off"), Ok(None));
}

fn at(mut p: NumberDataPoint, time: u64) -> NumberDataPoint {
    p.time_unix_nano = time;
    p
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

fn exp_point(
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

#[test]
fn exponential_buckets_merge_exactly_into_power_of_two_buckets() {
    use super::values::{exponential_layout, exponential_of, WIDEN};
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
    assert_eq!(b.len(), super::values::MAX_BOUNDS);
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

mod decoders_never_panic {
    use proptest::prelude::*;

    use super::super::decode::{decode, Format};
    use super::*;

    fn feed(bytes: &[u8]) {
        let (_, r) = receiver(ContainerDirectory::new());
        for format in [Format::Protobuf, Format::Json] {
            for gzip in [false, true] {
                let body = if gzip {
                    super::gzip(bytes)
                } else {
                    bytes.to_vec()
                };
                if let Ok(req) = decode::<ExportMetricsServiceRequest>(format, gzip, &body, 1 << 20)
                {
                    r.export(&req, None, NOW);
                }
                let _ = decode::<ExportMetricsServiceRequest>(format, true, bytes, 1 << 20);
                let _ = decode::<ExportTraceServiceRequest>(format, gzip, &body, 1 << 20);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            feed(&bytes);
        }

        /// Valid requests with one byte changed or cut short reach the translator as odd messages.
        #[test]
        fn on_mutated_requests(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>(), scale in -12i32..24) {
            let mut p = exp_point(scale, -3, vec![1, 2, 3], 1, 1);
            p.attributes = vec![kv("k", "v")];
            let req = request(&[("service.name", "s"), ("container.id", "x")], vec![
                gauge("g", "1", vec![point(1.0, &[("a.b", "c")])]),
                sum("s", "ms", true, DELTA, vec![point(2.0, &[])]),
                metric("e", "s", Data::ExponentialHistogram(ExponentialHistogram { aggregation_temporality: CUMULATIVE, data_points: vec![p] })),
            ]);
            let mut pb = req.encode_to_vec();
            let mut json = serde_json::to_vec(&req).unwrap();
            for buf in [&mut pb, &mut json] {
                let i = at.index(buf.len());
                if cut { buf.truncate(i) } else { buf[i] = byte }
            }
            feed(&pb);
            feed(&json);
        }
    }
}
