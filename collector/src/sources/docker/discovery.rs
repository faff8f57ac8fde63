//! Following the engine: list, events, re-list.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::mpsc::Sender;
use std::time::Duration;

use bollard::models::{ContainerInspectResponse, EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use futures_util::StreamExt;

use super::{ContainerInfo, DiscoveryError};
use crate::sampler::DiscoveryEvent;
use crate::sources::cgroup::CgroupSpec;
use crate::sources::directory::ContainerDirectory;
use crate::telemetry::{ErrorKind, SampleFailed};

/// Builds what the sampler needs from `docker inspect`; None for a response without an id.
pub fn info_from_inspect(c: ContainerInspectResponse) -> Option<ContainerInfo> {
    let id = c.id?;
    let labels: BTreeMap<String, String> = c
        .config
        .as_ref()
        .and_then(|cfg| cfg.labels.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let label = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
    let service =
        label("com.docker.swarm.service.name").or_else(|| label("com.docker.compose.service"));
    // Swarm names replicated tasks `<service>.<slot>.<task id>`; global tasks carry a node id instead.
    let slot = label("com.docker.swarm.task.name")
        .and_then(|n| n.split('.').rev().nth(1).map(str::to_string))
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty());
    let state = c.state.as_ref();
    let hc = c.host_config.as_ref();
    let networks = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|nets| {
            nets.iter()
                .map(|(name, ep)| {
                    let ips = [&ep.ip_address, &ep.global_ipv6_address]
                        .into_iter()
                        .filter_map(|a| a.as_deref()?.parse::<IpAddr>().ok())
                        .collect();
                    (name.clone(), ips)
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ContainerInfo {
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: c
            .config
            .as_ref()
            .and_then(|cfg| cfg.image.clone())
            .unwrap_or_default(),
        service,
        compose_project: label("com.docker.compose.project"),
        swarm_task_id: label("com.docker.swarm.task.id"),
        swarm_slot: slot,
        swarm_node_id: label("com.docker.swarm.node.id"),
        networks,
        pid: state
            .and_then(|s| s.pid)
            .filter(|p| *p > 0)
            .map(|p| p as u32),
        host_network: hc.and_then(|h| h.network_mode.as_deref()) == Some("host"),
        state: state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        health: state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none"),
        started_at: state.and_then(|s| s.started_at.clone()),
        limits: CgroupSpec {
            cpu_quota_us: hc.and_then(|h| match (h.nano_cpus, h.cpu_quota) {
                (Some(n), _) if n > 0 => Some(
                    (n as u64) * h.cpu_period.filter(|p| *p > 0).unwrap_or(100_000) as u64
                        / 1_000_000_000,
                ),
                (_, Some(q)) if q > 0 => Some(q as u64),
                _ => None,
            }),
            cpu_period_us: hc.and_then(|h| {
                ((h.nano_cpus.unwrap_or(0) > 0) || h.cpu_quota.unwrap_or(0) > 0)
                    .then(|| h.cpu_period.filter(|p| *p > 0).unwrap_or(100_000) as u64)
            }),
            memory_limit_bytes: hc
                .and_then(|h| h.memory)
                .filter(|m| *m > 0)
                .map(|m| m as u64),
        },
        id,
        labels,
    })
}

/// Where discovery's findings go: the container directory first (receivers attribute by it), then
/// the sampling thread.
struct Publisher {
    tx: Sender<DiscoveryEvent>,
    directory: ContainerDirectory,
}

impl Publisher {
    /// False when the sampling thread is gone.
    fn send(&self, ev: DiscoveryEvent) -> bool {
        match &ev {
            DiscoveryEvent::Upsert(info) if info.state == "running" => {
                self.directory.upsert(info.clone())
            }
            DiscoveryEvent::Upsert(info) => self.directory.remove(&info.id),
            DiscoveryEvent::Remove(id) => self.directory.remove(id),
            DiscoveryEvent::StatsSample { .. } => {}
        }
        self.tx.send(ev).is_ok()
    }
}

/// Follows the engine: sends an Upsert for every running container and every change, a Remove for
/// every stop, and keeps `directory` to match. Runs until the receiver is gone; errors are counted
/// and retried with backoff.
pub async fn run(
    docker: Docker,
    tx: Sender<DiscoveryEvent>,
    directory: ContainerDirectory,
    resync: Duration,
) {
    let tx = &Publisher { tx, directory };
    let mut known: HashSet<String> = HashSet::new();
    let mut backoff = Duration::from_millis(500);
    loop {
        // Events from before the list on: the stream sends its request only when first polled, after
        // the list, so without `since` a container started in between was missed until the re-list.
        // The engine replays them from `since`; seeing one twice is harmless (inspect again).
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(Duration::from_secs(1));
        let mut events = docker.events(Some(EventsOptions {
            since: Some(format!("{}.{:09}", since.as_secs(), since.subsec_nanos())),
            filters: Some(HashMap::from([(
                "type".to_string(),
                // Network events too: a container connected to a network after it started has a
                // new address that receivers attribute by.
                vec!["container".to_string(), "network".to_string()],
            )])),
            ..Default::default()
        }));
        if let Err(e) = relist(&docker, tx, &mut known).await {
            SampleFailed {
                kind: ErrorKind::Docker,
            }
            .emit();
            tracing::warn!(error = %e, retry_in = ?backoff, "container discovery failed");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
            continue;
        }
        backoff = Duration::from_millis(500);
        let mut tick = tokio::time::interval(resync);
        tick.tick().await;
        loop {
            tokio::select! {
                ev = events.next() => match ev {
                    Some(Ok(ev)) => {
                        if handle_event(&docker, tx, &mut known, ev).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        SampleFailed { kind: ErrorKind::EventsStream }.emit();
                        tracing::warn!(error = %e, "Docker events stream failed; reconnecting");
                        break;
                    }
                    None => {
                        SampleFailed { kind: ErrorKind::EventsStream }.emit();
                        tracing::warn!("Docker events stream ended; reconnecting");
                        break;
                    }
                },
                _ = tick.tick() => {
                    if let Err(e) = relist(&docker, tx, &mut known).await {
                        SampleFailed { kind: ErrorKind::Docker }.emit();
                        tracing::warn!(error = %e, "periodic container re-list failed");
                    }
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Lists running containers: new ones are inspected and sent, vanished ones removed.
async fn relist(
    docker: &Docker,
    tx: &Publisher,
    known: &mut HashSet<String>,
) -> Result<(), DiscoveryError> {
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: false,
            ..Default::default()
        }))
        .await
        .map_err(DiscoveryError::List)?;
    let running: HashSet<String> = list.into_iter().filter_map(|c| c.id).collect();
    for gone in known.difference(&running).cloned().collect::<Vec<_>>() {
        known.remove(&gone);
        if !tx.send(DiscoveryEvent::Remove(gone)) {
            return Ok(());
        }
    }
    let new: Vec<String> = running.difference(known).cloned().collect();
    for id in new {
        inspect_and_send(docker, tx, known, &id).await;
    }
    Ok(())
}

async fn inspect_and_send(
    docker: &Docker,
    tx: &Publisher,
    known: &mut HashSet<String>,
    id: &str,
) -> bool {
    match docker.inspect_container(id, None).await {
        Ok(resp) => match info_from_inspect(resp) {
            Some(mut info) => {
                if info.swarm_task_id.is_some() && info.state == "running" {
                    add_gateway_bridge(docker, &mut info).await;
                }
                if info.state == "running" {
                    known.insert(info.id.clone());
                } else {
                    known.remove(&info.id);
                }
                tx.send(DiscoveryEvent::Upsert(info))
            }
            None => true,
        },
        Err(e) => {
            // Usually a container that is already gone again: the next event or re-list settles it.
            tracing::debug!(container = id, error = %e, "inspect failed");
            SampleFailed {
                kind: ErrorKind::Docker,
            }
            .emit();
            known.remove(id);
            tx.send(DiscoveryEvent::Remove(id.to_string()))
        }
    }
}

/// The bridge through which Swarm connects a task on an overlay network to its host.
pub const GATEWAY_BRIDGE: &str = "docker_gwbridge";

/// Adds a Swarm task's address on `docker_gwbridge`, which `docker inspect` of the container does not
/// show: it is the address the host reaches the task at (a scrape) and the source address of what the
/// task sends to its default gateway (StatsD, OTLP), while its overlay addresses are not routed on the
/// host.
async fn add_gateway_bridge(docker: &Docker, info: &mut ContainerInfo) {
    let Ok(net) = docker.inspect_network(GATEWAY_BRIDGE, None).await else {
        return;
    };
    let ip = net
        .containers
        .as_ref()
        .and_then(|c| c.get(&info.id))
        .and_then(|ep| ep.ipv4_address.as_deref())
        .and_then(|a| a.split('/').next()?.parse::<IpAddr>().ok());
    if let Some(ip) = ip {
        info.networks.insert(GATEWAY_BRIDGE.to_string(), vec![ip]);
    }
}

/// Err when the sampler is gone.
async fn handle_event(
    docker: &Docker,
    tx: &Publisher,
    known: &mut HashSet<String>,
    ev: EventMessage,
) -> Result<(), ()> {
    if ev.typ == Some(EventMessageTypeEnum::NETWORK) {
        // connect/disconnect name the container in the actor's attributes.
        let container = ev
            .actor
            .and_then(|a| a.attributes)
            .and_then(|mut attrs| attrs.remove("container"));
        let alive = match (ev.action.as_deref(), container) {
            (Some("connect" | "disconnect"), Some(id)) if known.contains(&id) => {
                inspect_and_send(docker, tx, known, &id).await
            }
            _ => true,
        };
        return alive.then_some(()).ok_or(());
    }
    let (Some(action), Some(id)) = (ev.action.as_deref(), ev.actor.and_then(|a| a.id)) else {
        return Ok(());
    };
    let action = action.split(':').next().unwrap_or(action).trim();
    let alive = match action {
        "start" | "restart" | "update" | "rename" | "health_status" | "unpause" => {
            inspect_and_send(docker, tx, known, &id).await
        }
        "die" | "destroy" => {
            known.remove(&id);
            tx.send(DiscoveryEvent::Remove(id))
        }
        _ => true,
    };
    alive.then_some(()).ok_or(())
}
