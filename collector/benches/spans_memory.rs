//! Memory of the spans component: resident memory grown by 10,000 active span metric series (with
//! their store series after one flush), and by a pairing store full at 100,000 waiting halves.
//!   cargo bench -p plimsoll-collector --bench spans_memory
//!
//! Resident set size from /proc/self/statm before and after, in one process; each figure is the
//! growth divided by the count, so it includes allocator overhead.

mod common;

use common::kv;

use std::time::Duration;

use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use plimsoll_collector::sources::spans::{Spans, SpansConfig};
use plimsoll_collector::store::Ingest;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// `n` spans of `service`, kind `kind`, names `op-{name_base + i}`, trace ids from `trace_base`.
fn resource(service: &str, n: u64, name_base: u64, trace_base: u64, kind: i32) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: (0..n)
                .map(|i| {
                    let mut t = [1u8; 16];
                    t[..8].copy_from_slice(&(trace_base + i).to_be_bytes());
                    Span {
                        trace_id: t.to_vec(),
                        span_id: vec![2; 8],
                        name: format!("GET /api/op-{}", name_base + i),
                        kind,
                        start_time_unix_nano: 1,
                        end_time_unix_nano: 5_000_001,
                        ..Default::default()
                    }
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn main() {
    let now = 1_700_000_000_000i64;
    // 10,000 active series: 10 services x 1000 span names (internal spans: no graph halves).
    let ingest = Ingest::new(Duration::from_secs(900));
    let spans = Spans::new(&SpansConfig::default(), &ingest, Duration::from_secs(1)).unwrap();
    let reqs: Vec<Vec<ResourceSpans>> = (0..10)
        .map(|s| vec![resource(&format!("service-{s}"), 1000, 0, 0, 1)])
        .collect();
    let before = rss_bytes();
    for r in &reqs {
        spans.consume(r, now);
    }
    spans.flush(now);
    let series = rss_bytes() - before;
    println!(
        "10,000 span metric series (aggregator + store, one sample each): {:.1} MiB, {} bytes a series",
        series as f64 / (1 << 20) as f64,
        series / 10_000
    );
    // 60 more flushes (a minute of samples at 1 s) in the store's compressed window.
    let before = rss_bytes();
    for i in 1..=60 {
        for r in &reqs {
            spans.consume(r, now + i * 1000);
        }
        spans.flush(now + i * 1000);
    }
    let minute = rss_bytes() - before;
    println!(
        "a minute of 1 s samples of those series: {:.1} MiB, {} bytes a series",
        minute as f64 / (1 << 20) as f64,
        minute / 10_000
    );

    // The pairing store at its limit: 100,000 client halves that wait for their server.
    let ingest = Ingest::new(Duration::from_secs(900));
    let cfg = SpansConfig {
        graph_max_items: 100_000,
        ..Default::default()
    };
    let spans = Spans::new(&cfg, &ingest, Duration::from_secs(1)).unwrap();
    let reqs: Vec<Vec<ResourceSpans>> = (0..100)
        .map(|b| vec![resource("front", 1000, 0, b * 1000, 3)])
        .collect();
    let before = rss_bytes();
    for r in &reqs {
        spans.consume(r, now);
    }
    let store = rss_bytes() - before;
    println!(
        "pairing store full at 100,000 waiting halves: {:.1} MiB, {} bytes a half",
        store as f64 / (1 << 20) as f64,
        store / 100_000
    );
}
