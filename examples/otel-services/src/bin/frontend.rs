//! `frontend`: answers `GET /checkout` by calling the backend's `GET /stock` over HTTP.
//!
//! Each request is a server span, its call to the backend a client span whose context goes along in
//! the W3C `traceparent` header, so that the backend's server span is its child: a collector with the
//! OTel servicegraph semantics pairs the two into a `frontend -> backend` edge.
//!
//! Settings (environment): `PORT` (8080), `BACKEND_URL` (`http://backend:8080`), `BACKEND_TIMEOUT_MS`
//! (5000), plus the `OTEL_*` variables of the SDK (see the crate's README).

use std::process::ExitCode;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{global, Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use otel_services::{serve, setting};

#[derive(Clone)]
struct App {
    client: reqwest::Client,
    stock_url: String,
    backend_host: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("frontend: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let port: u16 = setting("PORT", 8080)?;
    let backend: String = setting("BACKEND_URL", "http://backend:8080".to_string())?;
    let timeout: u64 = setting("BACKEND_TIMEOUT_MS", 5000)?;
    let backend = reqwest::Url::parse(&backend).map_err(|e| format!("BACKEND_URL: {e}"))?;
    let backend_host = backend.host_str().unwrap_or_default().to_string();
    let stock_url = backend
        .join("/stock")
        .map_err(|e| format!("BACKEND_URL: {e}"))?
        .to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout))
        // A new connection per call: Swarm's virtual IP (IPVS) and DNS round robin (Compose, Swarm's
        // dnsrr) balance connections, not requests, so pooled connections would stick to the first
        // replicas and new ones would get no work.
        .pool_max_idle_per_host(0)
        .dns_resolver(std::sync::Arc::new(otel_services::RoundRobin::default()))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let telemetry = otel_services::init("frontend")?;
    let app = Router::new()
        .route("/checkout", get(checkout))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(App {
            client,
            stock_url,
            backend_host,
        });
    eprintln!("frontend: listening on port {port}, backend {backend}");
    serve(app, port, telemetry).await
}

async fn checkout(State(app): State<App>, headers: HeaderMap) -> (StatusCode, String) {
    // A caller that traces (the load helper does not) makes this span its child.
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(&headers)));
    let tracer = global::tracer("otel-services/frontend");
    let span = tracer
        .span_builder("GET /checkout")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", "/checkout"),
        ])
        .start_with_context(&tracer, &parent);
    let cx = parent.with_span(span);
    let (code, body) = match stock(&app, &cx).await {
        Ok(stock) => (StatusCode::OK, format!("checked out; {stock}")),
        Err(e) => {
            cx.span().set_status(Status::error(e.clone()));
            (StatusCode::BAD_GATEWAY, format!("backend: {e}\n"))
        }
    };
    cx.span().set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(code.as_u16()),
    ));
    cx.span().end();
    (code, body)
}

/// The backend call, as a client span whose context travels in the request's headers.
async fn stock(app: &App, cx: &Context) -> Result<String, String> {
    let tracer = global::tracer("otel-services/frontend");
    let span = tracer
        .span_builder("GET /stock")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("server.address", app.backend_host.clone()),
            KeyValue::new("url.full", app.stock_url.clone()),
        ])
        .start_with_context(&tracer, cx);
    let cx = cx.with_span(span);
    let mut headers = reqwest::header::HeaderMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(&mut headers)));
    let result = match app.client.get(&app.stock_url).headers(headers).send().await {
        Ok(resp) => {
            let status = resp.status();
            cx.span().set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
            match resp.text().await {
                Ok(body) if status.is_success() => Ok(body),
                Ok(body) => Err(format!("{status}: {}", body.trim())),
                Err(e) => Err(e.to_string()),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = &result {
        cx.span().set_status(Status::error(e.clone()));
    }
    cx.span().end();
    result
}
