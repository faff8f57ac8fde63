//! One pass of the host source alone over this machine's /proc and /sys (no containers): what the
//! node_exporter parity families (filesystems, netclass, vmstat, netstat, sockstat, ...) add to a pass.
//!   cargo bench -p plimsoll-collector --bench host

use criterion::Criterion;
use plimsoll_collector::sources::host::{HostConfig, HostSource};
use plimsoll_collector::store::Ingest;

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let ingest = Ingest::new(std::time::Duration::from_secs(900));
    let mut host = HostSource::build(&HostConfig::default(), &ingest).expect("host source");
    let mut now = 0i64;
    c.bench_function("host_pass", |b| {
        b.iter(|| {
            now += 1000;
            host.sample(&ingest, now)
        })
    });
    c.final_summary();
}
