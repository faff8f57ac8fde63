//! What the OpenTelemetry SDK tests share: the official Python SDK scripts beside this file run the
//! same way, and the Rust SDK's OTLP exporters built the same way for every protocol.
#![allow(unused_macros, unused_imports)] // each test binary uses a different subset

use std::process::Command;

/// Runs `tests/support/<script>` (an OpenTelemetry Python SDK sender) with `args`, its exporters
/// asked for gzip; panics with its output when it fails.
pub fn python_sdk(script: &str, args: &[&str]) {
    let path = format!("{}/../tests/support/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        // The HTTP exporter sends gzip bodies when asked; the gRPC one compresses with gzip too.
        .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        .output()
        .expect("running python3 (tests/setup.sh installs the OpenTelemetry SDK)");
    assert!(
        out.status.success(),
        "{script} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The runtime a Rust SDK's gRPC exporter needs for its tonic channel (the HTTP exporters use their
/// own blocking client).
pub fn sdk_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// An OTLP exporter from `$builder` (`MetricExporter::builder()`, `SpanExporter::builder()`) for
/// `$protocol` (`grpc`, `http-proto` or `http-json`) to the collector at `$endpoint`, HTTP on
/// `$path`, gzip-compressed, with the extra builder calls given after it (e.g.
/// `with_temporality(t)`). gRPC is built inside `$rt` ([`sdk_runtime`]).
macro_rules! otlp_exporter {
    ($builder:expr, $rt:expr, $protocol:expr, $endpoint:expr, $path:expr $(, $call:ident($arg:expr))* $(,)?) => {{
        use opentelemetry_otlp::{
            Compression, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
        };
        match $protocol {
            "grpc" => {
                let _in_rt = $rt.enter();
                $builder
                    .with_tonic()
                    .with_endpoint(format!("http://{}", $endpoint))
                    .with_compression(Compression::Gzip)
                    $(.$call($arg))*
                    .build()
            }
            p @ ("http-proto" | "http-json") => $builder
                .with_http()
                .with_protocol(if p == "http-json" {
                    Protocol::HttpJson
                } else {
                    Protocol::HttpBinary
                })
                .with_endpoint(format!("http://{}{}", $endpoint, $path))
                .with_compression(Compression::Gzip)
                $(.$call($arg))*
                .build(),
            other => panic!("unknown protocol {other}"),
        }
        .expect("building the OTLP exporter")
    }};
}
pub(crate) use otlp_exporter;
