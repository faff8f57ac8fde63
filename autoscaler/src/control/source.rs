//! Where the control loop reads replica metrics: the trait, the embedded collector's store, and (in
//! submodules) remote collectors and Prometheus for clusters.

mod collectors;
mod prometheus;

pub use collectors::CollectorsSource;
pub use prometheus::PrometheusSource;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use plimsoll_collector::query::{Latest, Query};
use plimsoll_collector::sampler::Shared;
use serde::Serialize;

use crate::policy::Timestamp;

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
    /// Per-replica values of other metrics, by name (gauges as they are, counters as per-second rates).
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

pub trait MetricSource: Send + Sync + 'static {
    /// Samples of the given containers (by full id) with the named extra metrics. Containers the
    /// source does not know are absent from the answer.
    fn sample(
        &self,
        containers: &[String],
        metrics: &[String],
    ) -> impl Future<Output = Result<HashMap<String, ContainerSample>, SourceError>> + Send;
}

/// The collector running in this process.
#[derive(Clone)]
pub struct EmbeddedSource {
    shared: Shared,
    rate_window: Duration,
}

impl EmbeddedSource {
    /// `rate_window`: how far back CPU and counter rates look (a few sampling intervals).
    pub fn new(shared: Shared, rate_window: Duration) -> Self {
        Self {
            shared,
            rate_window,
        }
    }

    fn sample_now(
        &self,
        containers: &[String],
        metrics: &[String],
    ) -> HashMap<String, ContainerSample> {
        let views = self.shared.containers.read().expect("collector views lock");
        let store = self.shared.ingest.read();
        let q = Query::new(&store);
        let window = self.rate_window.as_millis() as i64;
        let mut out = HashMap::new();
        for id in containers {
            let Some(view) = views.get(id) else {
                continue;
            };
            let latest = q.container_latest(id, Some(window));
            let mut s = ContainerSample::from_latest(
                &latest,
                view.spec.cpu_cores(),
                view.spec.memory_limit_bytes,
                view.info.started_at.as_deref(),
            );
            for m in metrics {
                if let Some(v) = q.container_value(id, m, window) {
                    s.values.insert(m.clone(), v);
                }
            }
            out.insert(id.clone(), s);
        }
        out
    }
}

impl MetricSource for EmbeddedSource {
    async fn sample(
        &self,
        containers: &[String],
        metrics: &[String],
    ) -> Result<HashMap<String, ContainerSample>, SourceError> {
        Ok(self.sample_now(containers, metrics))
    }
}

/// Docker's RFC 3339 times (nanosecond precision); the zero time "0001-01-01T00:00:00Z" is None.
pub fn parse_docker_time(s: &str) -> Option<Timestamp> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let ts = Timestamp::from_system_time(t);
    (ts.millis() > 0).then_some(ts)
}
