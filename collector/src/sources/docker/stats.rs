//! The stats API poller, for containers whose cgroup cannot be read.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::time::Duration;

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptions;
use bollard::Docker;
use futures_util::StreamExt;

use crate::sampler::{DiscoveryEvent, StatsRequest};
use crate::sources::cgroup::{CgroupSample, IoDevice};
use crate::sources::kernel::NetCounters;
use crate::telemetry::{ErrorKind, SampleFailed};

/// Polls the stats API for the containers the sampler asks for, one task each.
pub async fn poll_stats(
    docker: Docker,
    mut requests: tokio::sync::mpsc::UnboundedReceiver<StatsRequest>,
    tx: Sender<DiscoveryEvent>,
    interval: Duration,
) {
    let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    while let Some(req) = requests.recv().await {
        match req {
            StatsRequest::Start(id) => {
                let (docker, tx) = (docker.clone(), tx.clone());
                let key = id.clone();
                let task = tokio::spawn(async move {
                    let mut tick = tokio::time::interval(interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        let mut s = docker.stats(
                            &id,
                            Some(StatsOptions {
                                stream: false,
                                one_shot: true,
                            }),
                        );
                        match s.next().await {
                            Some(Ok(st)) => {
                                let (sample, net) = sample_from_stats(&st);
                                if tx
                                    .send(DiscoveryEvent::StatsSample {
                                        id: id.clone(),
                                        sample,
                                        net,
                                    })
                                    .is_err()
                                {
                                    return;
                                }
                            }
                            _ => SampleFailed {
                                kind: ErrorKind::StatsApi,
                            }
                            .emit(),
                        }
                    }
                });
                if let Some(old) = tasks.insert(key, task) {
                    old.abort();
                }
            }
            StatsRequest::Stop(id) => {
                if let Some(t) = tasks.remove(&id) {
                    t.abort();
                }
            }
        }
    }
    tasks.values().for_each(|t| t.abort());
}

/// Maps a stats API answer onto the cgroup sample (same units: ns, bytes).
pub fn sample_from_stats(
    st: &ContainerStatsResponse,
) -> (CgroupSample, Vec<(String, NetCounters)>) {
    let cpu = st.cpu_stats.as_ref();
    let usage = cpu.and_then(|c| c.cpu_usage.as_ref());
    let thr = cpu.and_then(|c| c.throttling_data.as_ref());
    let mem = st.memory_stats.as_ref();
    let stat = |keys: &[&str]| {
        mem.and_then(|m| m.stats.as_ref())
            .and_then(|s| keys.iter().find_map(|k| s.get(*k).copied()))
    };
    let usage_bytes = mem.and_then(|m| m.usage);
    let mut io: Vec<IoDevice> = Vec::new();
    let blk = st.blkio_stats.as_ref();
    for (entries, bytes) in [
        (
            blk.and_then(|b| b.io_service_bytes_recursive.as_ref()),
            true,
        ),
        (blk.and_then(|b| b.io_serviced_recursive.as_ref()), false),
    ] {
        for e in entries.into_iter().flatten() {
            let (Some(major), Some(minor), Some(op), Some(v)) =
                (e.major, e.minor, e.op.as_deref(), e.value)
            else {
                continue;
            };
            let (major, minor) = (major as u32, minor as u32);
            let i = match io.iter().position(|d| d.major == major && d.minor == minor) {
                Some(i) => i,
                None => {
                    io.push(IoDevice {
                        major,
                        minor,
                        ..Default::default()
                    });
                    io.len() - 1
                }
            };
            let d = &mut io[i];
            match (op.to_ascii_lowercase().as_str(), bytes) {
                ("read", true) => d.read_bytes = v,
                ("write", true) => d.write_bytes = v,
                ("read", false) => d.reads = v,
                ("write", false) => d.writes = v,
                _ => {}
            }
        }
    }
    let sample = CgroupSample {
        cpu_usage_ns: usage.and_then(|u| u.total_usage),
        cpu_user_ns: usage.and_then(|u| u.usage_in_usermode),
        cpu_system_ns: usage.and_then(|u| u.usage_in_kernelmode),
        cfs_periods: thr.and_then(|t| t.periods),
        cfs_throttled_periods: thr.and_then(|t| t.throttled_periods),
        cfs_throttled_ns: thr.and_then(|t| t.throttled_time),
        memory_usage: usage_bytes,
        memory_working_set: usage_bytes.map(|u| {
            u.saturating_sub(stat(&["total_inactive_file", "inactive_file"]).unwrap_or(0))
        }),
        memory_rss: stat(&["total_rss", "anon"]),
        memory_cache: stat(&["total_cache", "file"]),
        memory_failcnt: mem.and_then(|m| m.failcnt),
        oom_events: None,
        io,
        pressure: None,
    };
    let net = st
        .networks
        .iter()
        .flatten()
        .map(|(name, n)| {
            (
                name.clone(),
                NetCounters {
                    rx_bytes: n.rx_bytes.unwrap_or(0),
                    rx_packets: n.rx_packets.unwrap_or(0),
                    rx_errs: n.rx_errors.unwrap_or(0),
                    rx_drop: n.rx_dropped.unwrap_or(0),
                    tx_bytes: n.tx_bytes.unwrap_or(0),
                    tx_packets: n.tx_packets.unwrap_or(0),
                    tx_errs: n.tx_errors.unwrap_or(0),
                    tx_drop: n.tx_dropped.unwrap_or(0),
                    ..Default::default()
                },
            )
        })
        .collect();
    (sample, net)
}
