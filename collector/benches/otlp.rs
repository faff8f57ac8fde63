//! CPU cost of the OTLP metrics receiver on one core: decoding an export request (protobuf, and
//! OTLP/JSON for comparison), then translating and writing every data point into the store. The
//! decode-only figure is the same-run baseline the full path is compared with.
//!   cargo bench -p plimsoll-collector --bench otlp
//!
//! Workload: one export as an SDK sends it: one resource (`service.name`), 10 metrics × 50
//! attribute sets (`route`, `status`): 4 cumulative counters, 4 gauges, 2 histograms with 11 bounds,
//! 500 data points. The series exist after the first request, as in steady state.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use plimsoll_collector::sources::directory::ContainerDirectory;
use plimsoll_collector::sources::otlp::decode::{decode, Format};
use plimsoll_collector::sources::otlp::{ExportMetricsServiceRequest, MetricsReceiver, OtlpConfig};
use plimsoll_collector::store::Ingest;
use prost::Message;

#[path = "common/otlp_workload.rs"]
mod workload;
use workload::{request, POINTS};

fn bench(c: &mut Criterion) {
    let req = request();
    let points = POINTS;
    let pb = req.encode_to_vec();
    let json = serde_json::to_vec(&req).unwrap();
    let max = 16 << 20;
    let ingest = Ingest::new(Duration::from_secs(60));
    let cfg = OtlpConfig::default();
    let receiver = MetricsReceiver::new(
        ingest,
        ContainerDirectory::new(),
        cfg.stale_after,
        cfg.limits(),
    )
    .unwrap();
    let mut now = 1_700_000_000_000i64;

    let mut g = c.benchmark_group("otlp");
    g.throughput(Throughput::Elements(points));
    g.bench_function("decode protobuf (baseline)", |b| {
        b.iter(|| {
            decode::<ExportMetricsServiceRequest>(Format::Protobuf, false, black_box(&pb), max)
                .unwrap()
        })
    });
    g.bench_function("decode+translate+ingest protobuf", |b| {
        b.iter(|| {
            now += 1;
            let req =
                decode::<ExportMetricsServiceRequest>(Format::Protobuf, false, black_box(&pb), max)
                    .unwrap();
            let out = receiver.export(&req, None, now);
            assert_eq!(out.accepted, points);
        })
    });
    g.bench_function("decode+translate+ingest JSON", |b| {
        b.iter(|| {
            now += 1;
            let req =
                decode::<ExportMetricsServiceRequest>(Format::Json, false, black_box(&json), max)
                    .unwrap();
            let out = receiver.export(&req, None, now);
            assert_eq!(out.accepted, points);
        })
    });
    g.finish();
}

fn main() {
    common::run(bench);
}
