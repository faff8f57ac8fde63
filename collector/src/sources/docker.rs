//! The Docker engine as a source: container discovery (a full list at start, then the events stream,
//! with a periodic re-list so that a missed event cannot leave a container tracked or untracked for
//! long), and the stats API poller used only for containers whose cgroup cannot be read.

mod config;
mod discovery;
mod labels;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;

use bollard::Docker;
use serde::Serialize;

use crate::sources::cgroup::CgroupSpec;
use crate::store::Labels;

pub use config::DockerConfig;
pub use discovery::{info_from_inspect, run, GATEWAY_BRIDGE};
pub use labels::{check_entry, label_name, LabelAllowList, DEFAULT_CONTAINER_LABELS};
pub use stats::{poll_stats, sample_from_stats};

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("connecting to the Docker engine at {socket}: {source}")]
    Connect {
        socket: String,
        source: bollard::errors::Error,
    },
    #[error("listing containers: {0}")]
    List(bollard::errors::Error),
}

/// Connects to the Docker engine over its unix socket and agrees on an API version.
pub async fn connect(socket: &str) -> Result<Docker, DiscoveryError> {
    let err = |source| DiscoveryError::Connect {
        socket: socket.to_string(),
        source,
    };
    let docker =
        Docker::connect_with_unix(socket, 30, bollard::API_DEFAULT_VERSION).map_err(err)?;
    let docker = docker.negotiate_version().await.map_err(err)?;
    docker.ping().await.map_err(err)?;
    Ok(docker)
}

/// What discovery knows of a container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerInfo {
    /// Full container id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    pub image: String,
    /// Compose service or Swarm service name.
    pub service: Option<String>,
    pub compose_project: Option<String>,
    pub swarm_task_id: Option<String>,
    pub swarm_slot: Option<String>,
    /// The Swarm node the task was placed on.
    pub swarm_node_id: Option<String>,
    /// Addresses (IPv4 and global IPv6) on every Docker network the container is attached to, by
    /// network name: receivers attribute a datagram or request to its sender by these.
    pub networks: BTreeMap<String, Vec<IpAddr>>,
    /// Main process, for the network namespace; None when not running.
    pub pid: Option<u32>,
    /// Shares the host's network namespace: its interfaces are the host's and are not repeated.
    pub host_network: bool,
    /// Docker state, e.g. "running".
    pub state: String,
    /// "healthy", "unhealthy", "starting", or None without a health check.
    pub health: Option<String>,
    /// RFC 3339 start time as Docker reports it.
    pub started_at: Option<String>,
    /// Limits as Docker was asked for them; the cgroup's own files are preferred when readable.
    pub limits: CgroupSpec,
    pub labels: BTreeMap<String, String>,
}

impl ContainerInfo {
    /// Every address of the container on any network.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.networks.values().flatten().copied()
    }

    /// Labels of every series of this container: cAdvisor's `id`, `name`, `image`, the service,
    /// task and slot a scheduler gave it, and cAdvisor's `container_label_<name>` for the Docker
    /// labels `allowed`.
    pub fn series_labels(&self, cgroup_name: &str, allowed: &LabelAllowList) -> Labels {
        let mut l: Labels = vec![
            ("id".into(), cgroup_name.to_string()),
            ("name".into(), self.name.clone()),
            ("image".into(), self.image.clone()),
        ];
        l.extend(
            self.scheduler_labels()
                .map(|(k, v)| (k.into(), v.to_string())),
        );
        l.extend(allowed.series_labels(&self.labels));
        l
    }

    /// The `service`, `task` and `slot` labels a scheduler gave the container (those it has).
    pub fn scheduler_labels(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("service", &self.service),
            ("task", &self.swarm_task_id),
            ("slot", &self.swarm_slot),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_deref()?)))
    }
}
