//! `backend`: answers `GET /stock` after a unit of work, as a server span that continues the caller's
//! trace (W3C `traceparent`), and counts the orders it served in the business metric `shop.orders`
//! (an OTLP counter; `shop_orders_total` in Plimsoll's `/metrics`).
//!
//! The work cost is what makes the example scale: every replica has `BACKEND_WORKERS` workers (1)
//! and a request holds one for `BACKEND_SERVICE_MS` (50) milliseconds, plus `BACKEND_CPU_ITERATIONS`
//! (0) rounds of CPU-bound hashing. A replica serves at most WORKERS * 1000 / SERVICE_MS requests a
//! second (20 by default); requests beyond that wait for a worker, so the latency, and the p95 of the
//! server spans, climbs with the load per replica, and falls again when more replicas share it.
//! `BACKEND_ERROR_EVERY` (0: never) answers every Nth request with a 500 (the span's status is then
//! ERROR), for an error-ratio policy. `PORT` (8080) and the `OTEL_*` variables as for the frontend.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use opentelemetry::metrics::Counter;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{global, KeyValue};
use opentelemetry_http::HeaderExtractor;
use otel_services::{serve, setting};
use tokio::sync::Semaphore;

#[derive(Clone)]
struct App {
    workers: Arc<Semaphore>,
    service: Duration,
    cpu_iterations: u64,
    error_every: u64,
    served: Arc<AtomicU64>,
    orders: Counter<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backend: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let port: u16 = setting("PORT", 8080)?;
    let workers: usize = setting("BACKEND_WORKERS", 1)?;
    let service_ms: u64 = setting("BACKEND_SERVICE_MS", 50)?;
    let cpu_iterations: u64 = setting("BACKEND_CPU_ITERATIONS", 0)?;
    let error_every: u64 = setting("BACKEND_ERROR_EVERY", 0)?;
    if workers == 0 {
        return Err("BACKEND_WORKERS must be at least 1".into());
    }
    let telemetry = otel_services::init("backend")?;
    let orders = global::meter("otel-services/backend")
        .u64_counter("shop.orders")
        .with_description("Orders served by the backend")
        .build();
    let app = Router::new()
        .route("/stock", get(stock))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(App {
            workers: Arc::new(Semaphore::new(workers)),
            service: Duration::from_millis(service_ms),
            cpu_iterations,
            error_every,
            served: Arc::new(AtomicU64::new(0)),
            orders,
        });
    eprintln!(
        "backend: listening on port {port}, {workers} worker(s), {service_ms} ms and {cpu_iterations} CPU iterations a request"
    );
    serve(app, port, telemetry).await
}

async fn stock(State(app): State<App>, headers: HeaderMap) -> (StatusCode, String) {
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(&headers)));
    let tracer = global::tracer("otel-services/backend");
    // Started on arrival, so that the span's duration includes the wait for a worker.
    let span = tracer
        .span_builder("GET /stock")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", "/stock"),
        ])
        .start_with_context(&tracer, &parent);
    let cx = parent.with_span(span);
    let n = app.served.fetch_add(1, Ordering::Relaxed) + 1;
    let (code, body) = match app.workers.acquire().await {
        Ok(_worker) => {
            tokio::time::sleep(app.service).await;
            if app.cpu_iterations > 0 {
                let iterations = app.cpu_iterations;
                let _ = tokio::task::spawn_blocking(move || burn(iterations)).await;
            }
            if app.error_every > 0 && n % app.error_every == 0 {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "out of stock\n".to_string(),
                )
            } else {
                (StatusCode::OK, format!("in stock (order {n})\n"))
            }
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".to_string(),
        ),
    };
    let outcome = if code.is_success() { "ok" } else { "error" };
    app.orders.add(1, &[KeyValue::new("status", outcome)]);
    if !code.is_success() {
        cx.span().set_status(Status::error(body.trim().to_string()));
    }
    cx.span().set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(code.as_u16()),
    ));
    cx.span().end();
    (code, body)
}

/// CPU-bound work the optimiser cannot drop: rounds of a 64-bit mix (splitmix64).
fn burn(iterations: u64) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..iterations {
        x = x.wrapping_add(i).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 31;
    }
    std::hint::black_box(x)
}
