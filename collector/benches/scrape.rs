//! CPU cost of one scrape's body on one core: parsing and translating it (the collector's own
//! one-pass reader), then writing it into the store as a target does, against a floor of merely
//! splitting the same body into lines, and against the parser it replaced (openmetrics-parser
//! 0.5.1, a dev-dependency for this comparison only: it is LGPL-3.0 and quadratic in a family's
//! series, so it is not run on the 20,000-line body).
//!   cargo bench -p plimsoll-collector --bench scrape

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use plimsoll_collector::sources::scrape::translate::{self, Format};
use plimsoll_collector::sources::scrape::write::{Outcome, TargetWriter};
use plimsoll_collector::sources::scrape::{register, ScrapeConfig, Target};
use plimsoll_collector::store::Ingest;

/// `families` counters of `series` series each, with a client library's HELP and TYPE lines.
fn counters(families: usize, series: usize) -> String {
    let mut s = String::new();
    for f in 0..families {
        let _ = writeln!(
            s,
            "# HELP app_requests_{f}_total Requests.\n# TYPE app_requests_{f}_total counter"
        );
        for i in 0..series {
            let _ = writeln!(s, "app_requests_{f}_total{{method=\"GET\",code=\"200\",path=\"/api/v1/item/{i}\"}} {}", i * 7);
        }
    }
    s
}

/// `families` histograms of `series` series with 11 buckets each (the client libraries' defaults).
fn histograms(families: usize, series: usize) -> String {
    let bounds = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ];
    let mut s = String::new();
    for f in 0..families {
        let _ = writeln!(
            s,
            "# HELP app_latency_{f}_seconds Latency.\n# TYPE app_latency_{f}_seconds histogram"
        );
        for i in 0..series {
            for (k, le) in bounds.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "app_latency_{f}_seconds_bucket{{route=\"r{i}\",le=\"{le}\"}} {}",
                    k * 3
                );
            }
            let _ = writeln!(s, "app_latency_{f}_seconds_sum{{route=\"r{i}\"}} 12.5\napp_latency_{f}_seconds_count{{route=\"r{i}\"}} 33");
        }
    }
    s
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let target = Target {
        container: "f".repeat(64),
        addr: "172.20.0.5:9100".parse().unwrap(),
        path: "/metrics".into(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        labels: vec![
            ("name", "shop-web-1".into()),
            ("service", "web".into()),
            ("instance", "172.20.0.5:9100".into()),
        ],
    };
    for (name, body, old) in [
        ("1000 counters in 100 families", counters(100, 10), true),
        (
            "20 histograms in 10 families (280 samples)",
            histograms(10, 2),
            true,
        ),
        (
            "2000 counters in one family (the old default sample_limit)",
            counters(1, 2000),
            true,
        ),
        (
            "20000 counters in one family (the default sample_limit)",
            counters(1, 20_000),
            false,
        ),
    ] {
        let mut g = c.benchmark_group(format!("scrape/{name}"));
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function("floor: split into lines", |b| {
            b.iter(|| black_box(body.lines().filter(|l| !l.starts_with('#')).count()))
        });
        if old {
            g.bench_function("old: openmetrics-parser 0.5.1, parse only", |b| {
                b.iter(|| {
                    black_box(openmetrics_parser::prometheus::parse_prometheus(&body).unwrap())
                })
            });
        }
        g.bench_function("parse + translate", |b| {
            b.iter(|| {
                black_box(translate::parse(body.as_bytes(), Format::Prometheus, 50_000).unwrap())
            })
        });
        let ingest = Ingest::new(Duration::from_secs(60));
        let health = register(&ingest, &ScrapeConfig::default()).unwrap();
        let mut writer = TargetWriter::default();
        let mut now = 0;
        g.bench_function("parse + translate + write", |b| {
            b.iter(|| {
                let s = translate::parse(body.as_bytes(), Format::Prometheus, 50_000).unwrap();
                now += 1000;
                ingest.batch(health.src, now, |batch| {
                    writer.write(batch, &health, &target, &Outcome::Ok(s), Duration::ZERO)
                })
            })
        });
        g.finish();
    }
    c.final_summary();
}
