//! The gRPC (tonic) and HTTP (axum) servers. Both decode, then call the same handlers.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;

use super::decode::{self, DecodeError, Format};
use super::{Handlers, OtlpConfig, Rejected, StartError, SOURCE};
use crate::run::now_millis;
use crate::telemetry::IngestErrors;

/// The running servers; dropping this stops them.
#[derive(Debug)]
pub struct Servers {
    grpc: Option<SocketAddr>,
    http: Option<SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Servers {
    /// Binds the configured addresses (a failure is returned, nothing is left listening) and
    /// serves on the current Tokio runtime.
    pub fn start(config: &OtlpConfig, handlers: Handlers) -> Result<Servers, StartError> {
        let bind = |addr: SocketAddr| -> std::io::Result<tokio::net::TcpListener> {
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)
        };
        let grpc = config
            .grpc
            .map(|addr| bind(addr).map_err(|io| StartError::BindGrpc { addr, io }))
            .transpose()?;
        let http = config
            .http
            .map(|addr| bind(addr).map_err(|io| StartError::BindHttp { addr, io }))
            .transpose()?;
        let (stop, _) = tokio::sync::watch::channel(false);
        let stopped = |stop: &tokio::sync::watch::Sender<bool>| {
            let mut rx = stop.subscribe();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let mut servers = Servers {
            grpc: None,
            http: None,
            stop,
        };
        if let Some(l) = grpc {
            let addr = l.local_addr().ok();
            servers.grpc = addr;
            let router = grpc_router(&handlers);
            let shutdown = stopped(&servers.stop);
            tokio::spawn(async move {
                let incoming = tonic::transport::server::TcpIncoming::from(l);
                if let Err(e) = router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
                {
                    tracing::error!(error = %e, "OTLP gRPC server failed");
                }
            });
            tracing::info!(listen = ?addr, traces = handlers.traces.is_some(), "OTLP receiver listening for gRPC");
        }
        if let Some(l) = http {
            let addr = l.local_addr().ok();
            servers.http = addr;
            let app = http_router(handlers.clone());
            let shutdown = stopped(&servers.stop);
            tokio::spawn(async move {
                let serve = axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>())
                    .with_graceful_shutdown(shutdown);
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "OTLP HTTP server failed");
                }
            });
            tracing::info!(listen = ?addr, traces = handlers.traces.is_some(), "OTLP receiver listening for HTTP");
        }
        Ok(servers)
    }

    /// The bound gRPC address (with the real port when 0 was asked for).
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The sender's address, IPv4 when it is an IPv4-mapped IPv6 address.
fn peer_ip(addr: Option<SocketAddr>) -> Option<IpAddr> {
    addr.map(|a| a.ip().to_canonical())
}

fn metrics_response(rejected: Rejected) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: (rejected.count > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: rejected.count.min(i64::MAX as u64) as i64,
            error_message: rejected.message,
        }),
    }
}

fn traces_response(rejected: Rejected) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (rejected.count > 0 || !rejected.message.is_empty()).then(|| {
            ExportTracePartialSuccess {
                rejected_spans: rejected.count.min(i64::MAX as u64) as i64,
                error_message: rejected.message,
            }
        }),
    }
}

impl Handlers {
    fn export_metrics(&self, req: &ExportMetricsServiceRequest, peer: Option<IpAddr>) -> Rejected {
        let out = self.metrics.export(req, peer, now_millis());
        Rejected {
            count: out.rejected,
            message: out.message(),
        }
    }
}

struct Grpc(Handlers);

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let peer = peer_ip(req.remote_addr());
        let rejected = self.0.export_metrics(req.get_ref(), peer);
        Ok(tonic::Response::new(metrics_response(rejected)))
    }
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let peer = peer_ip(req.remote_addr());
        let Some(sink) = &self.0.traces else {
            return Err(tonic::Status::unimplemented("traces are not received here"));
        };
        let rejected = sink.export(req.into_inner(), peer);
        Ok(tonic::Response::new(traces_response(rejected)))
    }
}

type GrpcResponse = axum::http::Response<tonic::body::Body>;
type GrpcRouter = tonic::transport::server::Router<
    tower::layer::util::Stack<
        tower::util::MapResponseLayer<fn(GrpcResponse) -> GrpcResponse>,
        tower::layer::util::Identity,
    >,
>;

fn grpc_router(h: &Handlers) -> GrpcRouter {
    let max = h.max_request_bytes;
    let metrics = MetricsServiceServer::new(Grpc(h.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max);
    let traces = h.traces.as_ref().map(|_| {
        TraceServiceServer::new(Grpc(h.clone()))
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max)
    });
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(
            invalid_argument as fn(GrpcResponse) -> GrpcResponse,
        ))
        .add_service(metrics)
        .add_optional_service(traces)
}

/// tonic answers a request it cannot decode with `Internal`; the OTLP specification asks for
/// `InvalidArgument` (not retryable, the client's data is at fault). Such answers are trailers-only
/// responses whose headers carry the status, rewritten here, and counted like HTTP's.
fn invalid_argument(mut resp: GrpcResponse) -> GrpcResponse {
    let h = resp.headers();
    let undecodable = h.get("grpc-status").is_some_and(|v| v == "13")
        && h.get("grpc-message")
            .is_some_and(|m| m.as_bytes().starts_with(b"failed%20to%20decode%20Protobuf"));
    if undecodable {
        resp.headers_mut()
            .insert("grpc-status", axum::http::HeaderValue::from_static("3"));
        IngestErrors {
            source: SOURCE,
            reason: DecodeError::Protobuf(String::new()).reason(),
            count: 1,
        }
        .emit();
    }
    resp
}

fn http_router(h: Handlers) -> axum::Router {
    let max = h.max_request_bytes;
    let mut r = axum::Router::new().route("/v1/metrics", post(http_metrics));
    if h.traces.is_some() {
        r = r.route("/v1/traces", post(http_traces));
    }
    r.layer(DefaultBodyLimit::max(max)).with_state(h)
}

/// The format and decoded message of an OTLP/HTTP request, or why it was not decoded (counted)
/// with the format to answer in.
fn decode_request<T>(
    h: &Handlers,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Format, T), (Option<Format>, DecodeError)>
where
    T: prost::Message + serde::de::DeserializeOwned + Default,
{
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let decoded = Format::from_content_type(header(header::CONTENT_TYPE))
        .map_err(|e| (None, e))
        .and_then(|format| {
            let gzip =
                decode::is_gzip(header(header::CONTENT_ENCODING)).map_err(|e| (Some(format), e))?;
            decode::decode(format, gzip, body, h.max_request_bytes)
                .map(|msg| (format, msg))
                .map_err(|e| (Some(format), e))
        });
    if let Err((_, e)) = &decoded {
        IngestErrors {
            source: SOURCE,
            reason: e.reason(),
            count: 1,
        }
        .emit();
    }
    decoded
}

/// An error as the OTLP/HTTP specification wants it: a `google.rpc.Status` in the request's
/// encoding (plain text when the encoding itself is not understood).
fn error_response(format: Option<Format>, e: &DecodeError) -> Response {
    let Some(format) = format else {
        return (e.status(), e.to_string()).into_response();
    };
    // google.rpc.Code: INVALID_ARGUMENT for bad input, RESOURCE_EXHAUSTED for a body too large.
    let code = match e {
        DecodeError::TooLarge(_) => 8,
        _ => 3,
    };
    let status = decode::Status {
        code,
        message: e.to_string(),
    };
    encoded(format, e.status(), &status)
}

fn encoded<T: prost::Message + serde::Serialize + Default + PartialEq>(
    format: Format,
    status: StatusCode,
    msg: &T,
) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        decode::encode(format, msg),
    )
        .into_response()
}

async fn http_metrics(
    State(h): State<Handlers>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (format, req) = match decode_request::<ExportMetricsServiceRequest>(&h, &headers, &body) {
        Ok(x) => x,
        Err((format, e)) => return error_response(format, &e),
    };
    let rejected = h.export_metrics(&req, peer_ip(Some(peer)));
    encoded(format, StatusCode::OK, &metrics_response(rejected))
}

async fn http_traces(
    State(h): State<Handlers>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (format, req) = match decode_request::<ExportTraceServiceRequest>(&h, &headers, &body) {
        Ok(x) => x,
        Err((format, e)) => return error_response(format, &e),
    };
    let Some(sink) = &h.traces else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let rejected = sink.export(req, peer_ip(Some(peer)));
    encoded(format, StatusCode::OK, &traces_response(rejected))
}
