//! `--source collectors=...`: the `plimsoll collect` of every node (a Swarm global service), read over
//! its JSON API. Which collectors there are comes from [`discovery`] (a list of URLs, or the collector
//! service's tasks on the Swarm); [`fetch`] reads them concurrently. With Swarm discovery a replica's
//! own figures are asked of the collector on its node only; service-level metrics of every collector.
//! A collector that cannot be read leaves the replicas on its node without figures: the decision
//! counts them as missing, as the HPA does missing pods.

pub mod discovery;
pub mod fetch;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plimsoll_collector::query::{quantile_of_sum, rate_of, Latest};
use serde::Deserialize;

use self::discovery::{Collectors, Discover, Listed};
use self::fetch::{Http, Outages, Plan, Reader, ReqwestHttp};
use super::read::{self, Owner, SeriesReading};
use super::{ContainerSample, MetricRead, MetricSource, Readings, Request, SourceError};
use crate::policy::{Missing, Read, Scope};

/// A container entry of `GET /api/v1/containers`, as far as the loop needs it.
#[derive(Debug, Deserialize)]
struct RemoteContainer {
    id: String,
    started_at: Option<String>,
    cpu_limit_cores: Option<f64>,
    memory_limit_bytes: Option<u64>,
    latest: Latest,
}

#[derive(Debug, Deserialize)]
struct RemoteSeries {
    kind: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// The container the collector attributes the series to.
    #[serde(default)]
    container: Option<String>,
    points: Vec<(i64, f64)>,
    /// A histogram's (le, cumulative increase) per bucket over the window served.
    #[serde(default)]
    buckets: Option<Vec<(String, f64)>>,
}

impl RemoteSeries {
    fn owner(&self) -> Owner {
        match &self.container {
            Some(c) => Owner::Container(c.clone()),
            None => match self.labels.get("service").filter(|s| !s.is_empty()) {
                Some(s) => Owner::Service(s.clone()),
                None => Owner::Unattributed,
            },
        }
    }

    fn reading(self, read: &Read) -> SeriesReading {
        let owner = self.owner();
        let counter = self.kind == "counter";
        let value = match (read, counter) {
            (Read::Rate(_), false) => Err(Missing::NotACounter),
            (_, true) => rate_of(&self.points).ok_or(Missing::NoRecentSample),
            (_, false) => self
                .points
                .last()
                .map(|p| p.1)
                .ok_or(Missing::NoRecentSample),
        };
        SeriesReading { owner, value }
    }
}

pub struct CollectorsSource<D, H> {
    discovery: D,
    reader: Reader<H>,
    outages: Outages,
    seen: Mutex<Seen>,
}

/// Collectors of the nodes in the swarm now: those listed running once, and the absent ones whose
/// node no collector has run on, already logged.
#[derive(Default)]
struct Seen {
    ran: HashSet<String>,
    never_logged: HashSet<String>,
}

/// `plimsoll run`'s defaults: one request waits at most this long...
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// ...and this many collectors are read at once.
pub const DEFAULT_CONCURRENCY: usize = 32;

impl CollectorsSource<Listed, ReqwestHttp> {
    /// The collectors at `urls`, read with the default timeout and concurrency.
    pub fn listed(urls: Vec<String>, rate_window: Duration) -> Self {
        CollectorsSource::new(
            Listed(Arc::new(Collectors::listed(urls))),
            Reader::new(
                ReqwestHttp::default(),
                DEFAULT_CONCURRENCY,
                DEFAULT_TIMEOUT,
                rate_window,
            ),
        )
    }
}

impl<D: Discover, H: Http> CollectorsSource<D, H> {
    pub fn new(discovery: D, reader: Reader<H>) -> Self {
        fetch::describe();
        Self {
            discovery,
            reader,
            outages: Outages::default(),
            seen: Default::default(),
        }
    }

    /// The nodes that run replicas of `req` but no collector (its task is not running) are in an
    /// outage, as if their collector did not answer, when a collector ran there before; else (it has
    /// not started yet, or is not placed there) that is logged once. Either way those replicas count
    /// as missing.
    fn note_absent(&self, collectors: &Collectors, req: &Request<'_>) {
        let mut seen = self.seen.lock().expect("seen lock");
        let Seen { ran, never_logged } = &mut *seen;
        // Only the nodes of the swarm now: memory stays bounded as nodes come and go.
        let now: HashSet<&str> = collectors
            .endpoints
            .iter()
            .chain(&collectors.absent)
            .map(|e| e.url.as_str())
            .collect();
        ran.retain(|u| now.contains(u.as_str()));
        never_logged.retain(|u| now.contains(u.as_str()));
        ran.extend(collectors.endpoints.iter().map(|e| e.url.clone()));
        for e in &collectors.absent {
            let node = e.node.as_deref().unwrap_or("");
            let runs_replicas = req
                .replicas
                .iter()
                .any(|r| collectors.task_nodes.get(&r.replica).map(String::as_str) == Some(node));
            if !runs_replicas {
                continue;
            }
            if ran.contains(&e.url) {
                let why =
                    SourceError::Unavailable(format!("no collector task runs on node {node}"));
                self.outages.down(e, &why);
            } else if never_logged.insert(e.url.clone()) {
                tracing::warn!(%node, service = req.service, "no collector has run on this node yet: its replicas count as missing");
            }
        }
    }
}

/// What to ask each collector for `req`. A collector on the node of one of its replicas (or one whose
/// node is unknown: a listed URL, a task newer than the last listing) is asked for its containers and
/// every metric; the others for the service-level metrics only, and nothing when there are none.
pub fn plan<'a>(collectors: &'a Collectors, req: &Request<'a>) -> Vec<Plan<'a>> {
    let mut nodes = BTreeSet::new();
    let mut anywhere = false;
    for r in req.replicas {
        match collectors.task_nodes.get(&r.replica) {
            Some(n) => {
                nodes.insert(n.as_str());
            }
            None => anywhere = true,
        }
    }
    collectors
        .endpoints
        .iter()
        .filter_map(|e| {
            let local = anywhere || e.node.as_deref().is_none_or(|n| nodes.contains(n));
            let metrics: Vec<&MetricRead> = req
                .metrics
                .iter()
                .filter(|m| local || m.scope == Scope::Service)
                .collect();
            let containers = local && !req.replicas.is_empty();
            (containers || !metrics.is_empty()).then_some(Plan {
                endpoint: e,
                containers,
                metrics,
            })
        })
        .collect()
}

/// The series that count for the service, all of `kind` (else `wrong`); `NoSeries` without any.
fn counted_of_kind(
    req: &Request<'_>,
    m: &MetricRead,
    series: Vec<RemoteSeries>,
    kind: &str,
    wrong: Missing,
) -> Result<Vec<RemoteSeries>, Missing> {
    let items: Vec<(Owner, RemoteSeries)> = series.into_iter().map(|s| (s.owner(), s)).collect();
    let counted = read::counted(req, m, items);
    if counted.is_empty() {
        return Err(Missing::NoSeries);
    }
    if counted.iter().any(|s| s.kind != kind) {
        return Err(wrong);
    }
    Ok(counted)
}

/// The error ratio of the counters that count for the service: summed rates of the errors over
/// summed rates of all, each over the points the collector served for the window.
fn error_ratio(
    req: &Request<'_>,
    m: &MetricRead,
    errors: &BTreeMap<String, String>,
    series: Vec<RemoteSeries>,
) -> Result<f64, Missing> {
    let counted = counted_of_kind(req, m, series, "counter", Missing::NotACounter)?;
    let (mut all, mut bad) = (0.0, 0.0);
    for s in &counted {
        let Some(r) = rate_of(&s.points) else {
            continue;
        };
        all += r;
        if read::matches(errors, |k| s.labels.get(k).cloned()) {
            bad += r;
        }
    }
    (all > 0.0)
        .then(|| bad / all)
        .ok_or(Missing::NoRecentSample)
}

/// The φ-quantile of the histograms that count for the service: their buckets' increases over the
/// window, summed by `le` across series and collectors (a quantile of each would not add up), in
/// seconds.
fn quantile(
    req: &Request<'_>,
    m: &MetricRead,
    phi: f64,
    scale: f64,
    series: Vec<RemoteSeries>,
) -> Result<f64, Missing> {
    let counted = counted_of_kind(req, m, series, "histogram", Missing::NotAHistogram)?;
    // Points enough for an increase but no buckets: a collector from before they were served.
    if counted
        .iter()
        .any(|s| s.points.len() >= 2 && s.buckets.is_none())
    {
        return Err(Missing::NotServed);
    }
    let per_series = counted.into_iter().filter_map(|s| {
        s.buckets.map(|b| {
            b.into_iter()
                .filter_map(|(le, c)| le.parse::<f64>().ok().map(|le| (le, c)))
                .collect()
        })
    });
    quantile_of_sum(phi, per_series)
        .map(|v| v * scale)
        .ok_or(Missing::NoRecentSample)
}

impl<D: Discover, H: Http> MetricSource for CollectorsSource<D, H> {
    async fn sample(&self, req: &Request<'_>) -> Result<Readings, SourceError> {
        let collectors = self.discovery.collectors().await?;
        if collectors.endpoints.is_empty() {
            return Err(SourceError::Unavailable("no collector found".into()));
        }
        self.outages
            .forget_except(collectors.endpoints.iter().chain(&collectors.absent));
        self.note_absent(&collectors, req);
        let answers = self
            .reader
            .read_all::<RemoteContainer, RemoteSeries>(plan(&collectors, req))
            .await;
        let mut out = Readings::default();
        let mut first_error = None;
        let mut any_read = false;
        let mut series: BTreeMap<&str, Vec<RemoteSeries>> = BTreeMap::new();
        for (p, answer) in answers {
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    // One node's collector down: its replicas go missing, which the decision handles.
                    self.outages.down(p.endpoint, &e);
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            self.outages.up(p.endpoint);
            any_read = true;
            for c in answer
                .containers
                .into_iter()
                .filter(|c| req.containers().any(|id| id == c.id))
            {
                let s = ContainerSample::from_latest(
                    &c.latest,
                    c.cpu_limit_cores,
                    c.memory_limit_bytes,
                    c.started_at.as_deref(),
                );
                out.containers.insert(c.id, s);
            }
            for (m, s) in answer.series {
                match s {
                    Ok(s) => {
                        series
                            .entry(m.name.as_str())
                            .or_default()
                            .extend(s.into_iter().filter(|s: &RemoteSeries| {
                                read::matches(&m.query.matchers, |k| s.labels.get(k).cloned())
                            }))
                    }
                    Err(e) => {
                        tracing::debug!(collector = %p.endpoint.url, metric = %m.name, error = %e, "metric not read")
                    }
                }
            }
        }
        if let (false, Some(e)) = (any_read, first_error) {
            return Err(e);
        }
        // Each metric's series from every collector that answered, summed across them.
        for m in req.metrics {
            let series = series.remove(m.name.as_str()).unwrap_or_default();
            match &m.query.read {
                Read::Quantile { phi, scale, .. } => {
                    let value = quantile(req, m, *phi, *scale, series);
                    read::set_service_value(m, value, &mut out);
                }
                Read::ErrorRatio { errors, .. } => {
                    read::set_service_value(m, error_ratio(req, m, errors, series), &mut out);
                }
                Read::Auto | Read::Rate(_) => {
                    let readings = series.into_iter().map(|s| s.reading(&m.query.read));
                    read::combine(req, m, readings, &mut out);
                }
            }
        }
        Ok(out)
    }
}
