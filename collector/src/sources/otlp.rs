//! The OTLP receiver: one gRPC server (default :4317) and one HTTP server (default :4318) for
//! OpenTelemetry SDKs and collectors.
//!
//! - Metrics (`MetricsService/Export`, `POST /v1/metrics`) are translated into the store here (see
//!   `translate` and `names`).
//! - Traces (`TraceService/Export`, `POST /v1/traces`) are served on the same servers when a
//!   [`TracesSink`] is given: the servers decode each request and hand it to the sink, which answers
//!   with what it rejected. Without a sink the trace endpoints do not exist (404 / `Unimplemented`).
//!
//! HTTP bodies are protobuf (`application/x-protobuf`) or OTLP/JSON (`application/json`), optionally
//! gzip-compressed (`Content-Encoding: gzip`); responses use the request's encoding. As the OTLP
//! specification says: an undecodable body is answered 400 (gRPC: `InvalidArgument`) with a
//! `google.rpc.Status` message, an unsupported content type or encoding 415, a body over
//! `max_request_bytes` 413; points or spans that were decoded but not kept are reported in the
//! response's partial success (`rejected_data_points` / `rejected_spans` and a message).

pub mod config;
pub mod decode;
pub mod labels;
pub mod names;
mod server;
#[cfg(test)]
mod tests;
pub mod translate;
pub mod values;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub use config::OtlpConfig;
pub use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
pub use server::Servers;
pub use translate::{MetricsReceiver, Outcome};

/// The `source` of this receiver in the store and in `plimsoll_ingest_*` metrics.
pub const SOURCE: &str = "otlp";

/// What a sink did not keep of one request, for the response's partial success. `count` zero and
/// an empty message: everything was kept.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub count: u64,
    pub message: String,
}

/// Where decoded trace requests go (the traces component implements it). Called on the servers'
/// tasks for every request, so it must be quick: hand heavy work to a thread of its own.
pub trait TracesSink: Send + Sync + 'static {
    /// Consumes one request. `peer` is the sender's address (to attribute spans to a container
    /// when their resource has no `container.id`).
    fn export(&self, request: ExportTraceServiceRequest, peer: Option<IpAddr>) -> Rejected;
}

/// Why the servers could not start. The I/O error is part of the message (not a `source`), so that
/// the chain `{:#}` prints does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("OTLP: cannot listen for gRPC on {addr}: {io} (choose another address with --otlp-grpc ADDR, or turn it off with --otlp-grpc off)")]
    BindGrpc {
        addr: SocketAddr,
        io: std::io::Error,
    },
    #[error("OTLP: cannot listen for HTTP on {addr}: {io} (choose another address with --otlp-http ADDR, or turn it off with --otlp-http off)")]
    BindHttp {
        addr: SocketAddr,
        io: std::io::Error,
    },
}

/// What the servers serve: the metrics receiver, the traces sink if any, and the size limit.
#[derive(Clone)]
pub struct Handlers {
    pub metrics: Arc<MetricsReceiver>,
    pub traces: Option<Arc<dyn TracesSink>>,
    pub max_request_bytes: usize,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers")
            .field("traces", &self.traces.is_some())
            .field("max_request_bytes", &self.max_request_bytes)
            .finish()
    }
}
