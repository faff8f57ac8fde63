//! Business metrics read by the autoscaler's metric sources, against the real parts: a
//! `plimsoll collect` fed by the OpenTelemetry Python SDK (PyPI `opentelemetry-sdk` with its OTLP/HTTP
//! exporter), read over its JSON API (`--source collectors=`) and through a real Prometheus server
//! scraping it (`--source prometheus=`).

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plimsoll_autoscaler::control::{
    CollectorsSource, MetricRead, MetricSource, PrometheusSource, Readings, Request,
};
use plimsoll_autoscaler::policy::{Missing, Read, Scope, SeriesQuery};
use support::{free_addr, Plimsoll, Prometheus};

/// The OTel Python SDK exporting, for `service.name` SERVICE, every 500 ms: a counter `orders`
/// (`orders_total` in the store) growing by RATE per second with `status=ok` and by 1 per second with
/// `status=error`, and a gauge `queue_depth` at DEPTH.
const OTEL_SENDER: &str = r#"
import sys, time
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

endpoint, service, rate, depth = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint), export_interval_millis=500)
provider = MeterProvider(resource=Resource.create({"service.name": service}), metric_readers=[reader])
meter = provider.get_meter("shop")
orders = meter.create_counter("orders")
meter.create_observable_gauge("queue_depth", callbacks=[lambda options: [Observation(depth)]])
while True:
    orders.add(rate / 10, {"status": "ok"})
    orders.add(0.1, {"status": "error"})
    time.sleep(0.1)
"#;

/// A sender process, killed when dropped.
struct Sender(Child);

impl Sender {
    fn start(otlp_http: std::net::SocketAddr, service: &str, rate: f64, depth: f64) -> Sender {
        let child = Command::new("python3")
            .args(["-c", OTEL_SENDER])
            .arg(format!("http://{otlp_http}/v1/metrics"))
            .args([service, &rate.to_string(), &depth.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with opentelemetry-sdk (tests/setup.sh installs it)");
        Sender(child)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn metric(name: &str, family: &str, read: Read, matchers: &[(&str, &str)]) -> MetricRead {
    MetricRead {
        name: name.into(),
        query: SeriesQuery {
            metric: family.into(),
            matchers: matchers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            read,
        },
        scope: Scope::Service,
    }
}

/// The metrics every source is asked for: the `ok` order rate, the queue depth, a metric nobody
/// sends, and a rate of the gauge.
fn metrics() -> Vec<MetricRead> {
    vec![
        metric(
            "orders",
            "orders_total",
            Read::Rate(Duration::from_secs(5)),
            &[("status", "ok")],
        ),
        metric("queue", "queue_depth", Read::Auto, &[]),
        metric("absent", "refunds_total", Read::Auto, &[]),
        metric(
            "gauge_rate",
            "queue_depth",
            Read::Rate(Duration::from_secs(5)),
            &[],
        ),
    ]
}

/// Reads `service`'s metrics from `source` until `done` holds (or panics after a minute).
fn read_until(
    source: &impl MetricSource,
    service: &str,
    what: &str,
    done: impl Fn(&Readings) -> bool,
) -> Readings {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let metrics = metrics();
    let req = Request {
        service,
        replicas: &[],
        metrics: &metrics,
    };
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(60) {
        match rt.block_on(source.sample(&req)) {
            Ok(r) if done(&r) => return r,
            other => last = Some(other),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("{what}: last answer {last:?}");
}

fn near(v: Option<&f64>, want: f64, tolerance: f64) -> bool {
    v.is_some_and(|v| (v - want).abs() <= tolerance)
}

#[test]
fn every_cluster_source_reads_service_rates_and_gauges_and_says_what_it_lacks() {
    let service = support::unique("bizsrc");
    let otlp = free_addr();
    let collector = Plimsoll::start(
        "collect",
        &["--interval", "1s", "--otlp-http", &otlp.to_string()],
    );
    let _sender = Sender::start(otlp, &service, 20.0, 42.0);
    // Another service's orders, on the same collector: never counted for ours.
    let other = support::unique("bizother");
    let _other = Sender::start(otlp, &other, 500.0, 1000.0);

    let collectors = CollectorsSource::new(
        vec![format!("http://{}", collector.addr)],
        Duration::from_secs(2),
    );
    let r = read_until(
        &collectors,
        &service,
        "collectors: 20 orders/s, depth 42",
        |r| near(r.service.get("orders"), 20.0, 3.0) && near(r.service.get("queue"), 42.0, 0.0),
    );
    assert_eq!(r.missing.get("absent"), Some(&Missing::NoSeries), "{r:?}");
    assert_eq!(
        r.missing.get("gauge_rate"),
        Some(&Missing::NotACounter),
        "{r:?}"
    );
    assert!(r.containers.is_empty(), "no replica was asked for");

    let prom = Prometheus::start(collector.addr);
    let prometheus =
        PrometheusSource::new(&format!("http://{}", prom.addr), Duration::from_secs(5));
    let r = read_until(
        &prometheus,
        &service,
        "prometheus: 20 orders/s, depth 42",
        |r| near(r.service.get("orders"), 20.0, 3.0) && near(r.service.get("queue"), 42.0, 0.0),
    );
    // PromQL has no "not a counter": an absent series is all Prometheus can say.
    assert_eq!(r.missing.get("absent"), Some(&Missing::NoSeries), "{r:?}");
}
