//! What the `frontend` and `backend` binaries share: OpenTelemetry set up from the standard `OTEL_*`
//! environment variables (traces and metrics over OTLP/gRPC, W3C trace context), settings read from
//! the environment, and a graceful shutdown that flushes what is still buffered.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::global;
use opentelemetry_otlp::{MetricExporter, SpanExporter};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// The providers installed as the global ones; [`Telemetry::shutdown`] flushes them.
pub struct Telemetry {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
}

/// Installs the global tracer and meter providers and the W3C trace-context propagator.
///
/// The exporters read `OTEL_EXPORTER_OTLP_ENDPOINT` (default `http://localhost:4317`), the resource
/// `OTEL_SERVICE_NAME` (default `default_name`) and `OTEL_RESOURCE_ATTRIBUTES`, the span batcher
/// `OTEL_BSP_SCHEDULE_DELAY` (default 5 s) and the metric reader `OTEL_METRIC_EXPORT_INTERVAL` (the
/// SDK's default is 60 s; here 5 s, so that a policy sees a fresh rate). Call it inside the Tokio
/// runtime: the gRPC channel runs on it.
pub fn init(default_name: &str) -> Result<Telemetry, String> {
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(default_name.to_string());
    }
    let resource = resource.build();
    let spans = SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| format!("OTLP span exporter: {e}"))?;
    let tracer = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource.clone())
        .build();
    let metrics = MetricExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| format!("OTLP metric exporter: {e}"))?;
    let mut reader = PeriodicReader::builder(metrics);
    if std::env::var_os("OTEL_METRIC_EXPORT_INTERVAL").is_none() {
        reader = reader.with_interval(Duration::from_secs(5));
    }
    let meter = SdkMeterProvider::builder()
        .with_reader(reader.build())
        .with_resource(resource)
        .build();
    global::set_text_map_propagator(TraceContextPropagator::new());
    global::set_tracer_provider(tracer.clone());
    global::set_meter_provider(meter.clone());
    Ok(Telemetry { tracer, meter })
}

impl Telemetry {
    /// Exports what is buffered and stops the exporters. Their shutdown blocks, so it runs on a
    /// blocking thread while the runtime keeps driving the gRPC channel.
    pub async fn shutdown(self) {
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = self.tracer.shutdown() {
                eprintln!("flushing spans: {e}");
            }
            if let Err(e) = self.meter.shutdown() {
                eprintln!("flushing metrics: {e}");
            }
        })
        .await;
    }
}

/// The environment variable `name` parsed as a `T`, `default` when it is not set.
pub fn setting<T: FromStr>(name: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map_err(|e| format!("{name}={v:?}: {e}")),
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

/// Resolves on SIGTERM (`docker stop`, a Swarm task being removed) or Ctrl-C.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Serves `app` on `0.0.0.0:PORT` until [`shutdown_signal`], then flushes `telemetry`.
pub async fn serve(app: axum::Router, port: u16, telemetry: Telemetry) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|e| format!("listening on port {port}: {e}"))?;
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("serving: {e}"));
    telemetry.shutdown().await;
    served
}

/// A DNS resolver for `reqwest` that starts each lookup's answer at the next address in turn.
///
/// With one address per name (Swarm's virtual IP) it changes nothing. With one per replica (Compose's
/// DNS round robin, a Swarm service with `endpoint_mode: dnsrr`) it spreads new connections over the
/// replicas: the system resolver (`getaddrinfo`) sorts the addresses it gets back (RFC 6724), so
/// without it every connection would go to the same one.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl reqwest::dns::Resolve for RoundRobin {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let mut addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !addrs.is_empty() {
                let n = addrs.len();
                addrs.rotate_left(turn % n);
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}
