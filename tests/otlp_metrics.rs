//! OTLP metrics from real OpenTelemetry SDKs into a running `plimsoll collect`: the official Python
//! SDK with its HTTP (protobuf, gzip) and gRPC exporters (`tests/support/send_metrics.py`), and the
//! Rust SDK with `opentelemetry-otlp` over gRPC, HTTP protobuf and HTTP JSON. Each sender reports
//! a counter, an up-down counter, a gauge and a histogram in two exports under a service name of
//! its own; the values and labels must appear on /metrics and /api/v1/series. One Python run
//! names a real container in `container.id` and its series must be attributed to that container.

mod support;

use std::time::Duration;

use support::{free_addr, series_value as value, Plimsoll};

/// Starts a collector with both OTLP servers on free loopback ports: (collector, gRPC, HTTP).
fn collector() -> (Plimsoll, String, String) {
    let (grpc, http) = (free_addr().to_string(), free_addr().to_string());
    let p = Plimsoll::start(
        "collect",
        &[
            "--interval",
            "500ms",
            "--otlp-grpc",
            &grpc,
            "--otlp-http",
            &http,
        ],
    );
    (p, grpc, http)
}

fn python(args: &[&str]) {
    support::otel::python_sdk("send_metrics.py", args);
}

/// The same instruments and values as send_metrics.py, from the Rust SDK and OTLP exporter.
fn rust_sdk(protocol: &str, endpoint: &str, service: &str, delta: bool) {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::KeyValue;
    use opentelemetry_otlp::MetricExporter;
    use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
    use opentelemetry_sdk::Resource;

    let rt = support::otel::sdk_runtime();
    let temporality = if delta {
        Temporality::Delta
    } else {
        Temporality::Cumulative
    };
    let exporter = support::otel::otlp_exporter!(
        MetricExporter::builder(),
        rt,
        protocol,
        endpoint,
        "/v1/metrics",
        with_temporality(temporality),
    );
    let reader = PeriodicReader::builder(exporter)
        .with_interval(Duration::from_secs(3600))
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build();
    let meter = provider.meter("shop");
    let orders = meter
        .u64_counter("shop.orders")
        .with_unit("{order}")
        .with_description("Orders placed.")
        .build();
    let queue = meter
        .i64_up_down_counter("shop.queue.items")
        .with_unit("{item}")
        .build();
    let temperature = meter.f64_gauge("shop.temperature").with_unit("Cel").build();
    let duration = meter
        .f64_histogram("shop.request.duration")
        .with_unit("ms")
        .with_boundaries(vec![10.0, 100.0, 1000.0])
        .build();
    let (card, cash) = (
        [KeyValue::new("method", "card")],
        [KeyValue::new("method", "cash")],
    );
    orders.add(3, &card);
    orders.add(2, &cash);
    queue.add(10, &[]);
    temperature.record(21.5, &[]);
    for ms in [5.0, 50.0, 50.0] {
        duration.record(ms, &[]);
    }
    provider.force_flush().expect("first export");
    orders.add(4, &card);
    queue.add(-4, &[]);
    temperature.record(22.0, &[]);
    for ms in [500.0, 5000.0] {
        duration.record(ms, &[]);
    }
    provider.force_flush().expect("second export");
    provider.shutdown().expect("shutdown");
}

/// What every sender's two exports add up to, under `labels` (e.g. `service="x"`).
fn check(p: &Plimsoll, labels: &str) {
    let want = [
        (
            format!(r#"shop_orders_total{{{labels},method="card"}}"#),
            7.0,
        ),
        (
            format!(r#"shop_orders_total{{{labels},method="cash"}}"#),
            2.0,
        ),
        (format!("shop_queue_items{{{labels}}}"), 6.0),
        (format!("shop_temperature_celsius{{{labels}}}"), 22.0),
        (
            format!(r#"shop_request_duration_milliseconds_bucket{{{labels},le="10"}}"#),
            1.0,
        ),
        (
            format!(r#"shop_request_duration_milliseconds_bucket{{{labels},le="100"}}"#),
            3.0,
        ),
        (
            format!(r#"shop_request_duration_milliseconds_bucket{{{labels},le="1000"}}"#),
            4.0,
        ),
        (
            format!(r#"shop_request_duration_milliseconds_bucket{{{labels},le="+Inf"}}"#),
            5.0,
        ),
        (
            format!("shop_request_duration_milliseconds_count{{{labels}}}"),
            5.0,
        ),
        (
            format!("shop_request_duration_milliseconds_sum{{{labels}}}"),
            5605.0,
        ),
    ];
    let mut text = String::new();
    p.wait_for(
        &format!("the series of {labels}"),
        Duration::from_secs(10),
        |p| {
            text = p.get("/metrics").map(|(_, b)| b).unwrap_or_default();
            want.iter().all(|(s, v)| value(&text, s) == Some(*v))
        },
    );
    for (kind, name) in [
        ("counter", "shop_orders_total"),
        ("gauge", "shop_queue_items"),
        ("histogram", "shop_request_duration_milliseconds"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}")),
            "{name} is a {kind}:\n{text}"
        );
    }
}

/// /api/v1/series has the counter of `service` with its points.
fn check_api(p: &Plimsoll, service: &str, container: Option<&str>) {
    let path = match container {
        Some(c) => format!("/api/v1/series?name=shop_orders_total&container={c}"),
        None => "/api/v1/series?name=shop_orders_total".to_string(),
    };
    let all = p.json(&path);
    let card = all["series"]
        .as_array()
        .unwrap_or_else(|| panic!("no series list in {all}"))
        .iter()
        .find(|s| s["labels"]["service"] == service && s["labels"]["method"] == "card")
        .unwrap_or_else(|| panic!("no card series of {service} in {all}"));
    assert_eq!(card["kind"], "counter");
    let last = card["points"].as_array().unwrap().last().unwrap();
    assert_eq!(last[1], 7.0, "{card}");
}

#[test]
fn python_sdk_over_http_and_grpc() {
    let (p, grpc, http) = collector();
    let svc = |s: &str| format!("{s}-{}", std::process::id());
    let endpoint = format!("http://{http}/v1/metrics");
    python(&["http", &endpoint, &svc("py-http"), "cumulative"]);
    python(&["grpc", &grpc, &svc("py-grpc"), "delta"]);
    check(&p, &format!(r#"service="{}""#, svc("py-http")));
    check(&p, &format!(r#"service="{}""#, svc("py-grpc")));
    check_api(&p, &svc("py-http"), None);
    let errors = p.get("/metrics").unwrap().1;
    assert!(
        !errors
            .lines()
            .any(|l| l.starts_with("plimsoll_ingest_errors_total{source=\"otlp\"")),
        "no OTLP input was malformed:\n{errors}"
    );
}

#[test]
fn rust_sdk_over_grpc_http_protobuf_and_http_json() {
    let (p, grpc, http) = collector();
    let svc = |s: &str| format!("{s}-{}", std::process::id());
    rust_sdk("grpc", &grpc, &svc("rs-grpc"), true);
    rust_sdk("http-proto", &http, &svc("rs-http"), false);
    rust_sdk("http-json", &http, &svc("rs-json"), true);
    for s in ["rs-grpc", "rs-http", "rs-json"] {
        check(&p, &format!(r#"service="{}""#, svc(s)));
    }
    check_api(&p, &svc("rs-json"), None);
}

#[test]
fn a_container_id_attributes_series_to_that_container() {
    let name = support::unique("otlp-attr");
    let c = support::Container::run(&name, &[], &[]);
    let (p, _grpc, http) = collector();
    // Discovery must know the container before its metrics can be attributed to it.
    p.wait_for("the container discovered", Duration::from_secs(20), |p| {
        p.container(&name).is_some()
    });
    let endpoint = format!("http://{http}/v1/metrics");
    let service = format!("py-attr-{}", std::process::id());
    python(&["http", &endpoint, &service, "cumulative", &c.id]);
    // Its labels are the container's, as on its cgroup series (it has no scheduler service, so
    // `service` is the resource's), and its full id; the series is found by container.
    check(
        &p,
        &format!(
            r#"name="{name}",service="{service}",container_id="{}""#,
            c.id
        ),
    );
    check_api(&p, &service, Some(&name));
}
