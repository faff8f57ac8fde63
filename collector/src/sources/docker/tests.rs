use std::collections::HashMap;

use bollard::models::{
    ContainerBlkioStatEntry, ContainerBlkioStats, ContainerConfig, ContainerCpuStats,
    ContainerCpuUsage, ContainerMemoryStats, ContainerNetworkStats, ContainerState,
    ContainerStateStatusEnum, HostConfig,
};

use super::*;
use crate::sources::cgroup::IoDevice;
use crate::sources::kernel::NetCounters;
use bollard::models::{ContainerInspectResponse, ContainerStatsResponse};

fn inspect(labels: &[(&str, &str)], host: HostConfig) -> ContainerInspectResponse {
    ContainerInspectResponse {
        id: Some("c1".into()),
        name: Some("/shop_web_1".into()),
        config: Some(ContainerConfig {
            image: Some("web:1".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }),
        state: Some(ContainerState {
            status: Some(ContainerStateStatusEnum::RUNNING),
            pid: Some(77),
            started_at: Some("2026-11-24T00:00:00Z".into()),
            ..Default::default()
        }),
        host_config: Some(host),
        ..Default::default()
    }
}

#[test]
fn compose_container_with_cpus_limit() {
    let i = info_from_inspect(inspect(
        &[
            ("com.docker.compose.service", "web"),
            ("com.docker.compose.project", "shop"),
        ],
        HostConfig {
            nano_cpus: Some(500_000_000),
            memory: Some(64 << 20),
            ..Default::default()
        },
    ))
    .unwrap();
    assert_eq!(i.name, "shop_web_1");
    assert_eq!(i.service.as_deref(), Some("web"));
    assert_eq!(i.compose_project.as_deref(), Some("shop"));
    assert_eq!(i.pid, Some(77));
    assert_eq!(i.state, "running");
    assert_eq!(
        i.limits,
        CgroupSpec {
            cpu_quota_us: Some(50_000),
            cpu_period_us: Some(100_000),
            memory_limit_bytes: Some(64 << 20)
        }
    );
    assert!(!i.host_network);
}

#[test]
fn addresses_on_every_network_and_the_swarm_node_are_read() {
    use bollard::models::{EndpointSettings, NetworkSettings};
    let mut c = inspect(
        &[("com.docker.swarm.node.id", "n0de")],
        HostConfig::default(),
    );
    let ep = |v4: &str, v6: &str| EndpointSettings {
        ip_address: Some(v4.into()),
        global_ipv6_address: Some(v6.into()),
        ..Default::default()
    };
    c.network_settings = Some(NetworkSettings {
        networks: Some(HashMap::from([
            ("shop_default".to_string(), ep("172.18.0.5", "")),
            ("ingress".to_string(), ep("10.0.0.7", "fd00::7")),
        ])),
        ..Default::default()
    });
    let i = info_from_inspect(c).unwrap();
    assert_eq!(i.swarm_node_id.as_deref(), Some("n0de"));
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert_eq!(i.networks["shop_default"], vec![ip("172.18.0.5")]);
    assert_eq!(i.networks["ingress"], vec![ip("10.0.0.7"), ip("fd00::7")]);
    assert_eq!(i.ips().count(), 3);
}

#[test]
fn swarm_task_gives_service_task_and_slot() {
    let i = info_from_inspect(inspect(
        &[
            ("com.docker.swarm.service.name", "api"),
            ("com.docker.swarm.task.id", "t0k"),
            ("com.docker.swarm.task.name", "api.3.t0k"),
        ],
        HostConfig {
            cpu_quota: Some(20_000),
            cpu_period: Some(50_000),
            network_mode: Some("host".into()),
            ..Default::default()
        },
    ))
    .unwrap();
    assert_eq!(
        (
            i.service.as_deref(),
            i.swarm_task_id.as_deref(),
            i.swarm_slot.as_deref()
        ),
        (Some("api"), Some("t0k"), Some("3"))
    );
    assert_eq!(i.limits.cpu_cores(), Some(0.4));
    assert!(i.host_network);
    // A global service's task is named after its node: no slot.
    let g = info_from_inspect(inspect(
        &[("com.docker.swarm.task.name", "agent.n0de1d.t1")],
        HostConfig::default(),
    ))
    .unwrap();
    assert_eq!(g.swarm_slot, None);
    assert_eq!(g.limits, CgroupSpec::default());
}

#[test]
fn stats_api_answer_maps_to_cgroup_units() {
    let st = ContainerStatsResponse {
        cpu_stats: Some(ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(10),
                usage_in_usermode: Some(6),
                usage_in_kernelmode: Some(4),
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory_stats: Some(ContainerMemoryStats {
            usage: Some(1000),
            stats: Some(HashMap::from([
                ("inactive_file".to_string(), 300),
                ("anon".to_string(), 500),
                ("file".to_string(), 400),
            ])),
            ..Default::default()
        }),
        blkio_stats: Some(ContainerBlkioStats {
            io_service_bytes_recursive: Some(vec![ContainerBlkioStatEntry {
                major: Some(8),
                minor: Some(0),
                op: Some("read".into()),
                value: Some(4096),
            }]),
            io_serviced_recursive: Some(vec![ContainerBlkioStatEntry {
                major: Some(8),
                minor: Some(0),
                op: Some("Write".into()),
                value: Some(3),
            }]),
            ..Default::default()
        }),
        networks: Some(HashMap::from([(
            "eth0".to_string(),
            ContainerNetworkStats {
                rx_bytes: Some(11),
                tx_packets: Some(2),
                ..Default::default()
            },
        )])),
        ..Default::default()
    };
    let (s, net) = sample_from_stats(&st);
    assert_eq!(
        (s.cpu_usage_ns, s.cpu_user_ns, s.cpu_system_ns),
        (Some(10), Some(6), Some(4))
    );
    assert_eq!(
        (
            s.memory_usage,
            s.memory_working_set,
            s.memory_rss,
            s.memory_cache
        ),
        (Some(1000), Some(700), Some(500), Some(400))
    );
    assert_eq!(
        s.io,
        vec![IoDevice {
            major: 8,
            minor: 0,
            read_bytes: 4096,
            writes: 3,
            ..Default::default()
        }]
    );
    assert_eq!(
        net,
        vec![(
            "eth0".to_string(),
            NetCounters {
                rx_bytes: 11,
                tx_packets: 2,
                ..Default::default()
            }
        )]
    );
}
