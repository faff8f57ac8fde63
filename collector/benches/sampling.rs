//! One sampling pass over real containers (1, 10, 100) and, side by side in the same run, what the
//! Docker stats API costs for the same containers.
//!
//! Uses the idle containers `peer-idle-1..N` that ../shared/tools/peer-overhead.sh creates, so the
//! figures compare with the peers measured on the same containers:
//!   ../shared/tools/peer-overhead.sh 100 10 --mode idle      # creates/keeps 100 idle containers
//!   cargo bench -p plimsoll-collector --bench sampling

use std::process::Command;
use std::time::{Duration, Instant};

use bollard::models::ContainerInspectResponse;
use criterion::{BenchmarkId, Criterion};
use futures_util::StreamExt;
use plimsoll_collector::sampler::{DiscoveryEvent, Sampler};
use plimsoll_collector::sources::docker::info_from_inspect;
use plimsoll_collector::sources::docker::ContainerInfo;
use plimsoll_collector::store::Ingest;
use plimsoll_collector::CollectorConfig;

fn idle_containers() -> Vec<ContainerInfo> {
    let out = Command::new("docker")
        .args(["ps", "-q", "--filter", "name=peer-idle-"])
        .output()
        .expect("docker ps");
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(
        ids.len() >= 100,
        "need 100 peer-idle containers: run ../shared/tools/peer-overhead.sh 100 10 --mode idle"
    );
    let out = Command::new("docker")
        .arg("inspect")
        .args(&ids)
        .output()
        .expect("docker inspect");
    let parsed: Vec<ContainerInspectResponse> =
        serde_json::from_slice(&out.stdout).expect("inspect JSON");
    parsed.into_iter().filter_map(info_from_inspect).collect()
}

fn sampler_with(infos: &[ContainerInfo]) -> Sampler {
    let config = CollectorConfig::default();
    let mut s = Sampler::build(&config, &Ingest::new(config.window), None).expect("sampler");
    for i in infos {
        s.apply(DiscoveryEvent::Upsert(i.clone()));
    }
    assert_eq!(s.tracked(), infos.len());
    s
}

fn bench_pass(c: &mut Criterion, infos: &[ContainerInfo]) {
    let mut g = c.benchmark_group("sampling_pass");
    for n in [0usize, 1, 10, 100] {
        let mut s = sampler_with(&infos[..n]);
        let mut now = 0i64;
        g.bench_with_input(BenchmarkId::new("containers", n), &n, |b, _| {
            b.iter(|| {
                now += 1000;
                s.pass(now)
            })
        });
    }
    g.finish();
}

/// CPU time of the Docker engine (dockerd + containerd), in seconds.
fn engine_cpu_seconds() -> f64 {
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0.0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(r) = stat.rfind(')') else { continue };
        let comm = &stat[stat.find('(').unwrap() + 1..r];
        if !comm.starts_with("dockerd") && !comm.starts_with("containerd") {
            continue;
        }
        let f: Vec<&str> = stat[r + 2..].split_whitespace().collect();
        total += (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / tck;
    }
    total
}

/// One round of one-shot stats API calls for `n` containers, all in parallel, as a stats-based
/// collector would make every interval: wall time and engine CPU per round.
fn stats_api_round(infos: &[ContainerInfo], n: usize, rounds: usize) -> (Duration, f64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let docker = plimsoll_collector::sources::docker::connect("/var/run/docker.sock")
            .await
            .unwrap();
        let cpu0 = engine_cpu_seconds();
        let t0 = Instant::now();
        for _ in 0..rounds {
            let calls = infos[..n].iter().map(|i| {
                let docker = docker.clone();
                let id = i.id.clone();
                async move {
                    let opts = bollard::query_parameters::StatsOptions {
                        stream: false,
                        one_shot: true,
                    };
                    docker.stats(&id, Some(opts)).next().await
                }
            });
            futures_util::future::join_all(calls).await;
        }
        (
            t0.elapsed() / rounds as u32,
            (engine_cpu_seconds() - cpu0) / rounds as f64,
        )
    })
}

fn main() {
    let infos = idle_containers();
    let mut c = Criterion::default().configure_from_args();
    bench_pass(&mut c, &infos);
    c.final_summary();
    println!(
        "\nSide by side: Docker stats API, one-shot calls for the same containers, all in parallel"
    );
    for n in [1usize, 10, 100] {
        let rounds = if n == 100 { 3 } else { 5 };
        let (wall, engine) = stats_api_round(&infos, n, rounds);
        println!("stats_api/containers/{n}: wall {:.1} ms per round, engine CPU {:.1} ms per round ({rounds} rounds)", wall.as_secs_f64() * 1e3, engine * 1e3);
    }
}
