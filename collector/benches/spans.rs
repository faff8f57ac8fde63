//! CPU cost of the spans component on one core: protobuf decode of an OTLP export request, then
//! spanmetrics and the service graph, against decode alone as the same-run baseline.
//!   cargo bench -p plimsoll-collector --bench spans
//!
//! The workload: 1000 spans a request, traces of 4 spans (a root server span, a client span, the
//! server span that answers it and an unpaired database client span) over 10 services and 50
//! span names, in one ResourceSpans per service as SDKs batch them. Trace ids change every
//! iteration, so the pairing store works as under live traffic (every client/server pair meets,
//! root spans and database spans wait and expire). The time of `flush` (once a second of the
//! component's clock) is included.

mod common;

use common::kv;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use plimsoll_collector::sources::spans::{Spans, SpansConfig};
use plimsoll_collector::store::Ingest;
use prost::Message;

const SERVICES: usize = 10;
const TRACES: usize = 250;

#[allow(clippy::too_many_arguments)]
fn span(
    trace: u64,
    id: u64,
    parent: u64,
    name: String,
    kind: i32,
    ms: u64,
    error: bool,
    attrs: Vec<KeyValue>,
) -> Span {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&trace.to_be_bytes());
    t[8] = 1;
    let start = 1_700_000_000_000_000_000u64 + trace * 1000;
    Span {
        trace_id: t.to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: if parent == 0 {
            vec![]
        } else {
            parent.to_be_bytes().to_vec()
        },
        name,
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + ms * 1_000_000,
        attributes: attrs,
        status: Some(Status {
            code: if error { 2 } else { 0 },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One export request of `4 * TRACES` spans; trace ids start at `first_trace`.
fn request(first_trace: u64) -> ExportTraceServiceRequest {
    let mut per_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES];
    for i in 0..TRACES as u64 {
        let t = first_trace + i;
        let (a, b) = ((i as usize) % SERVICES, (i as usize + 1) % SERVICES);
        let op = format!("GET /api/v1/op{}", i % 50);
        let http = vec![
            kv("http.request.method", "GET"),
            kv("http.route", "/api/v1/op"),
        ];
        per_service[a].push(span(t, 1, 0, op.clone(), 2, 120, i % 20 == 0, http.clone()));
        per_service[a].push(span(t, 2, 1, op.clone(), 3, 80, false, http.clone()));
        per_service[b].push(span(t, 3, 2, op, 2, 60, i % 10 == 0, http));
        per_service[b].push(span(
            t,
            4,
            3,
            "SELECT orders".into(),
            3,
            5,
            false,
            vec![kv("db.system", "postgresql")],
        ));
    }
    ExportTraceServiceRequest {
        resource_spans: per_service
            .into_iter()
            .enumerate()
            .map(|(i, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", &format!("service-{i}")),
                        kv("service.version", "1.2.3"),
                        kv("host.name", "node-1"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

fn bench(c: &mut Criterion) {
    // Distinct trace ids in every request of a ring of pre-encoded ones. The component's clock
    // advances 3 ms an iteration (1000 spans: 333k spans/s), the pairing wait is 200 ms, so the
    // halves of a request have expired before the ring comes back to it (128 x 3 ms = 384 ms).
    let ring: Vec<Vec<u8>> = (0..128u64)
        .map(|r| request(r * TRACES as u64 + 1).encode_to_vec())
        .collect();
    let spans_per_request = (4 * TRACES) as u64;
    let mut g = c.benchmark_group("spans");
    g.throughput(Throughput::Elements(spans_per_request));
    let mut i = 0usize;
    g.bench_function("decode only (baseline)", |b| {
        b.iter(|| {
            i = (i + 1) % ring.len();
            let r = ExportTraceServiceRequest::decode(black_box(&ring[i][..])).unwrap();
            black_box(r.resource_spans.len())
        })
    });
    let ingest = Ingest::new(Duration::from_secs(900));
    let cfg = SpansConfig {
        graph_max_items: 100_000,
        graph_wait: Duration::from_millis(200),
        ..Default::default()
    };
    let spans = Spans::new(&cfg, &ingest, Duration::from_secs(1)).unwrap();
    let mut now = 1_700_000_000_000i64;
    let mut flushed = now;
    g.bench_function("decode + spanmetrics + servicegraph", |b| {
        b.iter(|| {
            i = (i + 1) % ring.len();
            now += 3;
            let r = ExportTraceServiceRequest::decode(black_box(&ring[i][..])).unwrap();
            let v = spans.consume(&r.resource_spans, now);
            // The shell flushes once a second of the component's clock.
            if now - flushed >= 1000 {
                spans.flush(now);
                flushed = now;
            }
            black_box(v.accepted)
        })
    });
    g.finish();
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
