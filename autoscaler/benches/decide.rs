//! One control-loop tick over 10,000 services: `decide` for each, with a warm History (recommendations
//! and scale events inside their windows). The budget is 10 ms per tick.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use plimsoll_autoscaler::policy::{
    decide, parse_policy, History, Observation, Policy, ReplicaObservation, Sample, TimedReplicas,
    Timestamp,
};

const SERVICES: usize = 10_000;
const NOW: Timestamp = Timestamp(1_767_225_600_000);

fn service(i: usize, policy: &Policy) -> (Observation, History) {
    let n = 2 + i % 8;
    let replicas = (0..n)
        .map(|r| {
            let used = 0.2 + ((i * 31 + r * 17) % 100) as f64 / 100.0;
            ReplicaObservation {
                id: format!("s{i}-r{r}"),
                ready: r != 0 || !i.is_multiple_of(5),
                unhealthy: false,
                metrics: [
                    (
                        "cpu".to_string(),
                        Sample::Usage {
                            used,
                            capacity: 1.0,
                        },
                    ),
                    ("orders_per_second".to_string(), Sample::Value(used * 60.0)),
                ]
                .into(),
                capacity: BTreeMap::new(),
            }
        })
        .collect();
    let obs = Observation {
        service: policy.service.clone(),
        current_replicas: n as u32,
        replicas,
        service_metrics: BTreeMap::new(),
        missing: BTreeMap::new(),
    };
    // 20 ticks of 15s in the 300s window, and one scale-up event in the 15s period.
    let recommendations = (1..=20)
        .map(|k| TimedReplicas {
            at: Timestamp(NOW.0 - k * 15_000),
            replicas: (n + k as usize % 3) as u32,
        })
        .collect();
    let history = History {
        recommendations,
        scale_up_events: vec![TimedReplicas {
            at: Timestamp(NOW.0 - 5_000),
            replicas: 1,
        }],
        ..History::default()
    };
    (obs, history)
}

fn bench(c: &mut Criterion) {
    let text =
        "service: s\nmin: 1\nmax: 50\nmetrics:\n  - { name: cpu, target: { utilization: 70 } }\n  \
                - { name: orders_per_second, target: { average: 50 } }\n";
    let policy = parse_policy("bench.yaml", text).unwrap();
    let services: Vec<_> = (0..SERVICES).map(|i| service(i, &policy)).collect();
    c.bench_function("decide_tick_10000_services", |b| {
        b.iter(|| {
            let mut scaled = 0u32;
            for (obs, history) in &services {
                let d = decide(&policy, black_box(obs), history, NOW);
                scaled += u32::from(d.desired != d.current);
            }
            black_box(scaled)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
