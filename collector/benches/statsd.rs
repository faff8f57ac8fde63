//! CPU cost of the StatsD receiver's parts on one core: parsing lines, aggregating them into known
//! series, and flushing. The end-to-end figure over real sockets is `statsd_load`.
//!   cargo bench -p plimsoll-collector --bench statsd

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use plimsoll_collector::sources::statsd::parse::{self, Line};
use plimsoll_collector::sources::statsd::{
    AggregateConfig, Aggregator, FlushValue, Mapper, NoContainers, SeriesId, SeriesView, Sink,
};

#[path = "statsd_workload.rs"]
mod workload;

struct Discard(f64);

impl Sink for Discard {
    fn write(&mut self, _: SeriesId, _: &SeriesView<'_>, v: FlushValue<'_>) {
        if let FlushValue::Counter(x) | FlushValue::Gauge(x) = v {
            self.0 += x;
        }
    }
}

fn aggregator() -> Aggregator {
    Aggregator::new(
        AggregateConfig {
            ttl: Duration::from_secs(300),
            buckets: Arc::from(
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ][..],
            ),
            max_series: 100_000,
            max_series_per_family: 100_000,
            max_set_members: 100_000,
        },
        Arc::new(Mapper::default()),
    )
}

fn bench(c: &mut Criterion) {
    let lines = workload::lines(1000);
    let packets = workload::packets(&lines, 1432);
    let n_lines: usize = packets.iter().map(|p| workload::count_lines(p)).sum();

    let mut g = c.benchmark_group("statsd");
    g.throughput(Throughput::Elements(n_lines as u64));
    g.bench_function("parse 1000 lines", |b| {
        b.iter(|| {
            let mut ok = 0usize;
            for p in &packets {
                for l in parse::lines(p) {
                    if let Ok(Line::Metric(m)) = parse::parse_line(black_box(l)) {
                        ok += m.name.len();
                    }
                }
            }
            ok
        })
    });
    g.bench_function("aggregate 1000 lines into known series", |b| {
        let mut a = aggregator();
        for p in &packets {
            a.observe_packet(p, None, &NoContainers, 0);
        }
        b.iter(|| {
            for p in &packets {
                a.observe_packet(black_box(p), None, &NoContainers, 1);
            }
        })
    });
    g.bench_function("aggregate 1000 lines into new series", |b| {
        b.iter_batched(
            aggregator,
            |mut a| {
                for p in &packets {
                    a.observe_packet(p, None, &NoContainers, 0);
                }
                a
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("statsd flush");
    let lines = workload::lines(10_000);
    let mut a = aggregator();
    for p in workload::packets(&lines, 1432) {
        a.observe_packet(&p, None, &NoContainers, 0);
    }
    g.throughput(Throughput::Elements(a.len() as u64));
    g.bench_function("flush 10000 series", |b| {
        b.iter(|| {
            let mut s = Discard(0.0);
            a.flush(1, &mut s);
            s.0
        })
    });
    g.finish();
}

fn main() {
    common::run(bench);
}
