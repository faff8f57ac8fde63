//! Where the control loop reads replica metrics: the trait, the embedded collector's store, and (in
//! submodules) remote collectors and Prometheus for clusters.

pub mod collectors;
mod prometheus;
pub mod read;

pub use collectors::CollectorsSource;
pub use prometheus::PrometheusSource;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use plimsoll_collector::query::{Latest, Query, Selector};
use plimsoll_collector::sampler::Shared;
use plimsoll_collector::store::{Kind, Millis, SeriesRef, Store};
use serde::Serialize;

use crate::policy::{Missing, Read, Scope, SeriesQuery, Timestamp};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("metric source unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected answer from {url}: {message}")]
    BadAnswer { url: String, message: String },
}

/// What a source knows of one container.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerSample {
    /// Time of the newest sample behind these figures.
    pub at: Option<Timestamp>,
    /// CPU used, in cores, over the source's rate window.
    pub cpu_cores: Option<f64>,
    pub cpu_limit_cores: Option<f64>,
    /// Memory working set, in bytes.
    pub memory_bytes: Option<f64>,
    pub memory_limit_bytes: Option<f64>,
    /// Per-replica values of the policy's metrics, by metric name (see [`read::combine`]).
    pub values: BTreeMap<String, f64>,
    pub started_at: Option<Timestamp>,
}

impl ContainerSample {
    /// From the collector's per-container figures, in-process or over its JSON API.
    pub fn from_latest(
        latest: &Latest,
        cpu_limit_cores: Option<f64>,
        memory_limit_bytes: Option<u64>,
        started_at: Option<&str>,
    ) -> Self {
        ContainerSample {
            at: latest.timestamp_ms.map(Timestamp),
            cpu_cores: latest.cpu_cores,
            cpu_limit_cores,
            memory_bytes: latest.memory_working_set_bytes,
            memory_limit_bytes: memory_limit_bytes.map(|b| b as f64),
            values: BTreeMap::new(),
            started_at: started_at.and_then(parse_docker_time),
        }
    }
}

/// A metric the loop wants read for a target: its name in the observation, the series it selects,
/// and whether per replica or for the service.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRead {
    pub name: String,
    pub query: SeriesQuery,
    pub scope: Scope,
}

impl MetricRead {
    /// `name` reading the series `metric{matchers}` as `read`.
    pub fn new(
        name: &str,
        metric: &str,
        read: Read,
        scope: Scope,
        matchers: &[(&str, &str)],
    ) -> Self {
        MetricRead {
            name: name.into(),
            query: SeriesQuery {
                metric: metric.into(),
                matchers: matchers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                read,
            },
            scope,
        }
    }
}

/// A replica as sources match series to it: its id (a Swarm task id, matched against `task`
/// labels) and its container's full id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRef {
    pub replica: String,
    pub container: String,
}

/// What the loop asks a source for one target and tick.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The `service` label value of the target's series (the Compose or Swarm service name).
    pub service: &'a str,
    pub replicas: &'a [ReplicaRef],
    pub metrics: &'a [MetricRead],
}

impl Request<'_> {
    pub fn containers(&self) -> impl Iterator<Item = &str> + '_ {
        self.replicas.iter().map(|r| r.container.as_str())
    }
}

/// A source's answer: per container, the service-level values, and the metrics it could not read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    /// By full container id; containers the source does not know are absent.
    pub containers: HashMap<String, ContainerSample>,
    /// Service-level values of the request's `Scope::Service` metrics, by metric name.
    pub service: BTreeMap<String, f64>,
    /// The request's metrics with no value at all, with why.
    pub missing: BTreeMap<String, Missing>,
}

pub trait MetricSource: Send + Sync + 'static {
    /// CPU and memory of the request's containers, and its metrics (see [`read::combine`] for which
    /// series count and how they add up).
    fn sample(
        &self,
        req: &Request<'_>,
    ) -> impl Future<Output = Result<Readings, SourceError>> + Send;
}

/// The collector running in this process.
#[derive(Clone)]
pub struct EmbeddedSource {
    shared: Shared,
    rate_window: Duration,
    /// Queries already warned about for a window longer than the store keeps.
    warned: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl EmbeddedSource {
    /// `rate_window`: how far back CPU and counter rates look (a few sampling intervals).
    pub fn new(shared: Shared, rate_window: Duration) -> Self {
        Self {
            shared,
            rate_window,
            warned: Default::default(),
        }
    }

    /// Logs once per query a window longer than the store keeps (`--window`): its rate or quantile
    /// then covers only what the store has.
    fn check_window(&self, m: &MetricRead, store_window_ms: Millis) {
        let Some(w) = m.query.read.window() else {
            return;
        };
        if w.as_millis() as Millis <= store_window_ms {
            return;
        }
        let query = m.query.describe();
        if self
            .warned
            .lock()
            .expect("warned lock")
            .insert(query.clone())
        {
            tracing::warn!(
                metric = %m.name,
                query = %query,
                store_window_ms,
                "the policy metric's window is longer than the collector keeps (--window): it covers only the kept part"
            );
        }
    }

    fn sample_now(&self, req: &Request<'_>) -> Readings {
        let views = self.shared.containers.read().expect("collector views lock");
        let store = self.shared.ingest.read();
        let q = Query::new(&store);
        let window = self.rate_window.as_millis() as i64;
        let mut out = Readings::default();
        for id in req.containers() {
            let Some(view) = views.get(id) else {
                continue;
            };
            let latest = q.container_latest(id, Some(window));
            let s = ContainerSample::from_latest(
                &latest,
                view.spec.cpu_cores(),
                view.spec.memory_limit_bytes,
                view.info.started_at.as_deref(),
            );
            out.containers.insert(id.to_string(), s);
        }
        for m in req.metrics {
            self.check_window(m, store.window_ms());
            match m.query.read {
                Read::Auto | Read::Rate(_) => {
                    let series = embedded_series(&q, m, self.rate_window);
                    read::combine(req, m, series, &mut out);
                }
                Read::Quantile { .. } | Read::ErrorRatio { .. } => {
                    let value = embedded_service_value(&q, req, m);
                    read::set_service_value(m, value, &mut out);
                }
            }
        }
        out
    }
}

/// The series of the store `m` selects (its name and matchers).
fn embedded_select(q: &Query<'_>, m: &MetricRead) -> Vec<SeriesRef> {
    let matchers: Vec<(&str, &str)> = m
        .query
        .matchers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    q.select(&Selector {
        name: &m.query.metric,
        matchers: &matchers,
        container: None,
    })
}

/// Whose a series of the store is: its attribution, else its `service` label.
fn embedded_owner(store: &Store, s: SeriesRef) -> read::Owner {
    match store.attribution(s) {
        Some(c) => read::Owner::Container(c.to_string()),
        None => match store.labels(s).and_then(|l| l.get("service")) {
            Some(svc) if !svc.is_empty() => read::Owner::Service(svc.to_string()),
            _ => read::Owner::Unattributed,
        },
    }
}

/// Every series of the store `m` selects, read: counters as rates over the window ending at their
/// newest sample (fresh series only), gauges as their latest fresh value.
fn embedded_series(
    q: &Query<'_>,
    m: &MetricRead,
    rate_window: Duration,
) -> Vec<read::SeriesReading> {
    let window = read::window_of(&m.query.read, rate_window).as_millis() as i64;
    embedded_select(q, m)
        .into_iter()
        .map(|s| {
            let owner = embedded_owner(q.store(), s);
            let counter = q.kind(s) == Some(Kind::Counter);
            let fresh = q.latest(s);
            let value = match (&m.query.read, counter, fresh) {
                (Read::Rate(_), false, _) => Err(Missing::NotACounter),
                (_, _, None) => Err(Missing::NoRecentSample),
                (_, true, Some(_)) => q.rate_to_newest(s, window).ok_or(Missing::NoRecentSample),
                (_, false, Some((_, v))) => Ok(v),
            };
            read::SeriesReading { owner, value }
        })
        .collect()
}

/// A quantile or an error ratio of the series of `req`'s service that `m` selects, over its window
/// ending at their newest fresh sample.
fn embedded_service_value(
    q: &Query<'_>,
    req: &Request<'_>,
    m: &MetricRead,
) -> Result<f64, Missing> {
    let store = q.store();
    let items: Vec<(read::Owner, SeriesRef)> = embedded_select(q, m)
        .into_iter()
        .map(|s| (embedded_owner(store, s), s))
        .collect();
    let series = read::counted(req, m, items);
    if series.is_empty() {
        return Err(Missing::NoSeries);
    }
    let fresh: Vec<(SeriesRef, Millis)> = series
        .iter()
        .filter_map(|s| q.latest(*s).map(|(t, _)| (*s, t)))
        .collect();
    let end = fresh.iter().map(|(_, t)| *t).max();
    match &m.query.read {
        Read::Quantile { phi, window, scale } => {
            if series.iter().any(|s| q.kind(*s) != Some(Kind::Histogram)) {
                return Err(Missing::NotAHistogram);
            }
            let fresh: Vec<SeriesRef> = fresh.into_iter().map(|(s, _)| s).collect();
            let end = end.ok_or(Missing::NoRecentSample)?;
            q.histogram_quantile(*phi, &fresh, end, window.as_millis() as Millis)
                .map(|v| v * scale)
                .ok_or(Missing::NoRecentSample)
        }
        Read::ErrorRatio { errors, window } => {
            if series.iter().any(|s| q.kind(*s) != Some(Kind::Counter)) {
                return Err(Missing::NotACounter);
            }
            let w = window.as_millis() as Millis;
            let (mut all, mut bad) = (0.0, 0.0);
            for (s, _) in &fresh {
                let Some(r) = q.rate_to_newest(*s, w) else {
                    continue;
                };
                all += r;
                let labels = store.labels(*s);
                if read::matches(errors, |k| {
                    labels.and_then(|l| l.get(k)).map(str::to_string)
                }) {
                    bad += r;
                }
            }
            (all > 0.0)
                .then(|| bad / all)
                .ok_or(Missing::NoRecentSample)
        }
        Read::Auto | Read::Rate(_) => unreachable!("read per series"),
    }
}

impl MetricSource for EmbeddedSource {
    async fn sample(&self, req: &Request<'_>) -> Result<Readings, SourceError> {
        Ok(self.sample_now(req))
    }
}

/// The 64-hex container id inside a cgroup path such as `/docker/<id>` or `/system.slice/docker-<id>.scope`.
pub fn container_id_of(cgroup: &str) -> Option<&str> {
    let bytes = cgroup.as_bytes();
    (0..bytes.len().saturating_sub(63)).find_map(|i| {
        let cand = &cgroup[i..i + 64];
        let boundary = |j: usize| j >= bytes.len() || !bytes[j].is_ascii_hexdigit();
        (cand.bytes().all(|b| b.is_ascii_hexdigit())
            && (i == 0 || !bytes[i - 1].is_ascii_hexdigit())
            && boundary(i + 64))
        .then_some(cand)
    })
}

/// Docker's RFC 3339 times (nanosecond precision); the zero time "0001-01-01T00:00:00Z" is None.
pub fn parse_docker_time(s: &str) -> Option<Timestamp> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let ts = Timestamp::from_system_time(t);
    (ts.millis() > 0).then_some(ts)
}

#[cfg(test)]
mod tests;
