//! Which collectors to read: the URLs given on the command line, or the running tasks of the
//! collector's global service on a Swarm, each at its node's address
//! (`--source collectors=swarm:NAME[:PORT]`), listed again every refresh so that nodes joining and
//! leaving are followed.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::super::SourceError;
use crate::nodes::cluster::Cluster;
use crate::nodes::{DockerSwarm, SwarmApi, SwarmError};

/// The collector's port when `swarm:NAME` names none (`plimsoll collect --listen`'s default).
pub const DEFAULT_PORT: u16 = 9180;
/// The service `collectors=swarm` looks for: the stack file's `collector` (any stack).
pub const DEFAULT_SERVICE: &str = "collector";

/// One collector to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Base URL, without a trailing slash.
    pub url: String,
    /// The Swarm node it runs on; None for a URL from the command line.
    pub node: Option<String>,
}

/// The collectors known now, and which node each replica runs on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collectors {
    pub endpoints: Vec<Endpoint>,
    /// Where the collector of a node that runs tasks but no running collector task would answer: its
    /// replicas count as missing, and it is in an outage until its collector runs again.
    pub absent: Vec<Endpoint>,
    /// Node id of every task meant to run (Swarm only): a replica's own figures are asked of the
    /// collector on its node only.
    pub task_nodes: HashMap<String, String>,
}

impl Collectors {
    /// Collectors given by URL: every replica is asked of all of them.
    pub fn listed(urls: Vec<String>) -> Collectors {
        Collectors {
            endpoints: urls
                .into_iter()
                .map(|u| Endpoint {
                    url: u.trim_end_matches('/').to_string(),
                    node: None,
                })
                .collect(),
            absent: Vec::new(),
            task_nodes: HashMap::new(),
        }
    }

    fn nodes(&self) -> BTreeSet<&str> {
        self.endpoints
            .iter()
            .filter_map(|e| e.node.as_deref())
            .collect()
    }
}

/// Where the collectors are, asked before every read.
pub trait Discover: Send + Sync + 'static {
    fn collectors(&self) -> impl Future<Output = Result<Arc<Collectors>, SourceError>> + Send;
}

/// A fixed list (`collectors=URL,...`).
pub struct Listed(pub Arc<Collectors>);

impl Discover for Listed {
    async fn collectors(&self) -> Result<Arc<Collectors>, SourceError> {
        Ok(self.0.clone())
    }
}

/// The discovery `plimsoll run` was given.
pub enum Discovery {
    Listed(Listed),
    Swarm(Box<SwarmCollectors<DockerSwarm>>),
}

impl Discover for Discovery {
    async fn collectors(&self) -> Result<Arc<Collectors>, SourceError> {
        match self {
            Discovery::Listed(l) => l.collectors().await,
            Discovery::Swarm(s) => s.collectors().await,
        }
    }
}

/// What Swarm discovery reads of a manager: every node and every task meant to run (the node
/// autoscaler's view of the swarm).
pub trait ClusterListing: Send + Sync + 'static {
    fn cluster(&self) -> impl Future<Output = Result<Cluster, SwarmError>> + Send;
}

impl ClusterListing for DockerSwarm {
    fn cluster(&self) -> impl Future<Output = Result<Cluster, SwarmError>> + Send {
        SwarmApi::cluster(self)
    }
}

/// The collector service's running tasks on a Swarm, listed at most once per `refresh`. A listing
/// that fails (or takes longer than `timeout`) keeps the last known collectors.
pub struct SwarmCollectors<L> {
    listing: L,
    service: String,
    /// The autoscaler's own stack, if it runs in one: its `STACK_service` is preferred.
    stack: Option<String>,
    port: u16,
    refresh: Duration,
    timeout: Duration,
    cache: tokio::sync::Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    at: Option<Instant>,
    collectors: Option<Arc<Collectors>>,
    /// The problem logged last, so that a lasting one is logged once.
    problem: Option<String>,
}

impl<L: ClusterListing> SwarmCollectors<L> {
    pub fn new(
        listing: L,
        service: &str,
        stack: Option<String>,
        port: u16,
        refresh: Duration,
        timeout: Duration,
    ) -> Self {
        SwarmCollectors {
            listing,
            service: service.to_string(),
            stack: stack.filter(|s| !s.is_empty()),
            port,
            refresh,
            timeout,
            cache: Default::default(),
        }
    }
}

impl<L: ClusterListing> Discover for SwarmCollectors<L> {
    async fn collectors(&self) -> Result<Arc<Collectors>, SourceError> {
        // One listing at a time: the targets reading at once share it.
        let mut cache = self.cache.lock().await;
        if let (Some(at), Some(c)) = (cache.at, &cache.collectors) {
            if at.elapsed() < self.refresh {
                return Ok(c.clone());
            }
        }
        let listed = match tokio::time::timeout(self.timeout, self.listing.cluster()).await {
            Ok(Ok(cluster)) => {
                collectors_of(&cluster, &self.service, self.stack.as_deref(), self.port)
            }
            Ok(Err(e)) => Err(format!("listing the swarm: {e}")),
            Err(_) => Err(format!(
                "listing the swarm: no answer within {}",
                humantime::format_duration(self.timeout)
            )),
        };
        cache.at = Some(Instant::now());
        match listed {
            Ok((found, skipped)) => {
                let found = Arc::new(found);
                log_changes(cache.collectors.as_deref(), &found, &skipped);
                if cache.problem.take().is_some() {
                    tracing::info!(service = %self.service, collectors = found.endpoints.len(), "collectors found on the swarm again");
                }
                cache.collectors = Some(found.clone());
                Ok(found)
            }
            Err(problem) => {
                if cache.problem.as_ref() != Some(&problem) {
                    tracing::warn!(service = %self.service, %problem, kept = cache.collectors.as_ref().map_or(0, |c| c.endpoints.len()), "collector discovery failed: reading the collectors found last");
                    cache.problem = Some(problem.clone());
                }
                cache
                    .collectors
                    .clone()
                    .ok_or(SourceError::Unavailable(problem))
            }
        }
    }
}

/// Logs the collectors that appeared and went since the last listing (nodes joining and leaving, a
/// collector restarting), and nodes whose address is unusable.
fn log_changes(old: Option<&Collectors>, new: &Collectors, skipped: &[String]) {
    let before = old.map(Collectors::nodes).unwrap_or_default();
    let after = new.nodes();
    for e in &new.endpoints {
        if e.node.as_deref().is_some_and(|n| !before.contains(n)) {
            tracing::info!(node = e.node.as_deref().unwrap_or(""), collector = %e.url, "collector found");
        }
    }
    for n in before.difference(&after) {
        tracing::info!(node = %n, "collector gone (node left, or its task is not running)");
    }
    if old.is_none() {
        for n in skipped {
            tracing::warn!(node = %n, "a collector task runs on a node with no usable address (Status.Addr): not read");
        }
    }
}

/// The service whose tasks are the collectors: `name` itself, else `STACK_name` of the autoscaler's
/// own stack, else the one `STACK_name` of any stack.
fn service_of<'a>(
    cluster: &'a Cluster,
    name: &str,
    stack: Option<&str>,
) -> Result<&'a str, String> {
    let services: BTreeSet<&str> = cluster.tasks.iter().map(|t| t.service.as_str()).collect();
    if let Some(s) = services.get(name) {
        return Ok(s);
    }
    if let Some(s) = stack.and_then(|st| services.get(format!("{st}_{name}").as_str())) {
        return Ok(s);
    }
    let suffix = format!("_{name}");
    let stacked: Vec<&str> = services
        .iter()
        .copied()
        .filter(|s| s.ends_with(&suffix))
        .collect();
    match stacked.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "no task of a service named {name} (or STACK_{name}) is meant to run on the swarm"
        )),
        many => Err(format!(
            "several services could be the collectors ({}): name one in --source collectors=swarm:NAME",
            many.join(", ")
        )),
    }
}

/// The collectors (a running task of the service on a node with an address), the nodes that run
/// tasks but no collector, and the node of every task, or why there are none; also the nodes whose
/// collector has no usable address.
pub fn collectors_of(
    cluster: &Cluster,
    name: &str,
    stack: Option<&str>,
    port: u16,
) -> Result<(Collectors, Vec<String>), String> {
    let service = service_of(cluster, name, stack)?;
    let addrs: HashMap<&str, &str> = cluster
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.addr.as_str()))
        .collect();
    let mut endpoints = Vec::new();
    let mut skipped = Vec::new();
    let on: BTreeSet<&str> = cluster
        .tasks
        .iter()
        .filter(|t| t.service == service && t.running)
        .filter_map(|t| t.node_id.as_deref())
        .collect();
    // A manager can report 0.0.0.0 (it advertises no address of its own).
    let usable = |node: &str| {
        addrs
            .get(node)
            .copied()
            .filter(|a| !a.is_empty() && *a != "0.0.0.0")
            .map(|a| Endpoint {
                url: base_url(a, port),
                node: Some(node.to_string()),
            })
    };
    for node in &on {
        match usable(node) {
            Some(e) => endpoints.push(e),
            None => skipped.push(node.to_string()),
        }
    }
    let busy: BTreeSet<&str> = cluster
        .tasks
        .iter()
        .filter_map(|t| t.node_id.as_deref())
        .collect();
    let absent = busy
        .difference(&on)
        .filter_map(|node| usable(node))
        .collect();
    let task_nodes = cluster
        .tasks
        .iter()
        .filter_map(|t| Some((t.id.clone(), t.node_id.clone()?)))
        .collect();
    Ok((
        Collectors {
            endpoints,
            absent,
            task_nodes,
        },
        skipped,
    ))
}

fn base_url(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("http://[{addr}]:{port}")
    } else {
        format!("http://{addr}:{port}")
    }
}
