//! One whole sampling pass with no containers tracked, over this machine's /proc, /sys and cgroupfs:
//! the host source and the root cgroup (cAdvisor's id="/"), as every pass pays them whatever the
//! number of containers.
//!   cargo bench -p plimsoll-collector --bench pass

use criterion::Criterion;
use plimsoll_collector::sampler::Sampler;
use plimsoll_collector::store::Ingest;
use plimsoll_collector::CollectorConfig;

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let config = CollectorConfig::default();
    let ingest = Ingest::new(config.window);
    let mut s = Sampler::build(&config, &ingest, None).expect("sampler");
    let mut now = 0i64;
    c.bench_function("pass_no_containers", |b| {
        b.iter(|| {
            now += 1000;
            s.pass(now)
        })
    });
    c.final_summary();
}
