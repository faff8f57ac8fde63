//! Both servers over real loopback sockets: encodings, status codes, partial success, the traces seam.

use super::fixtures::*;

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
    assert_eq!(body, b"{}", "all accepted: an empty response");
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

#[tokio::test]
async fn bodies_over_the_limit_are_refused_also_when_gzip_inflates_them() {
    let (_ingest, r) = receiver(ContainerDirectory::new());
    let config = OtlpConfig {
        grpc: None,
        http: Some("127.0.0.1:0".parse().unwrap()),
        max_request_bytes: 64 << 10,
        ..Default::default()
    };
    let handlers = Handlers {
        metrics: Arc::new(r),
        traces: None,
        max_request_bytes: config.max_request_bytes,
    };
    let servers = Servers::start(&config, handlers).unwrap();
    let addr = servers.http_addr().unwrap();
    let pb = [("content-type", "application/x-protobuf")];
    // 8 MiB of zeros gzip to a few KiB: inflating stops at the limit.
    let bomb = gzip(&vec![0u8; 8 << 20]);
    assert!(bomb.len() < 64 << 10);
    let hdrs = [pb[0], ("content-encoding", "gzip")];
    let (code, _, body) = post(addr, "/v1/metrics", &hdrs, bomb).await;
    assert_eq!(code, 413);
    let status = decode::Status::decode(&body[..]).unwrap();
    assert!(
        status.message.contains("larger than 65536"),
        "{}",
        status.message
    );
    let (code, _, _) = post(addr, "/v1/metrics", &pb, vec![0u8; 100 << 10]).await;
    assert_eq!(code, 413);
}
