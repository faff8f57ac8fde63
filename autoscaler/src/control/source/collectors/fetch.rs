//! Reading many collectors at once: one batch per collector (its containers, then the policy's
//! metrics), the batches fanned out with bounded concurrency, every request with a timeout of its
//! own, so that a collector that hangs or is gone costs one timeout and never holds up the others.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde::de::DeserializeOwned;

use super::super::read;
use super::super::{MetricRead, SourceError};
use super::discovery::Endpoint;

/// HTTP GET, behind a trait so that the reader is tested with fakes and paused time.
pub trait Http: Send + Sync + 'static {
    /// The body of a 2xx answer; None for a 404.
    fn get(&self, url: &str) -> impl Future<Output = Result<Option<Vec<u8>>, SourceError>> + Send;
}

/// The real one; the reader puts the timeout on each request.
#[derive(Default)]
pub struct ReqwestHttp(reqwest::Client);

impl Http for ReqwestHttp {
    async fn get(&self, url: &str) -> Result<Option<Vec<u8>>, SourceError> {
        let resp = self
            .0
            .get(url)
            .send()
            .await
            .map_err(|e| SourceError::Unavailable(format!("{url}: {e}")))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(SourceError::BadAnswer {
                url: url.to_string(),
                message: resp.status().to_string(),
            });
        }
        resp.bytes()
            .await
            .map(|b| Some(b.to_vec()))
            .map_err(|e| SourceError::Unavailable(format!("{url}: {e}")))
    }
}

/// What to ask one collector.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<'a> {
    pub endpoint: &'a Endpoint,
    /// Its containers (`/api/v1/containers`): it runs replicas of the target, or may.
    pub containers: bool,
    /// The metrics to read there (`/api/v1/series`), each over its window.
    pub metrics: Vec<&'a MetricRead>,
}

/// One collector's answers: its containers (empty if not asked), and each metric's series.
#[derive(Debug)]
pub struct Answer<'a, C, S> {
    pub containers: Vec<C>,
    pub series: Vec<(&'a MetricRead, Result<Vec<S>, SourceError>)>,
}

pub struct Reader<H> {
    http: H,
    /// Collectors read at once.
    concurrency: usize,
    /// Longest wait for one request.
    timeout: Duration,
    /// Rate window of the containers' CPU figures and of metrics without a window of their own.
    rate_window: Duration,
}

#[derive(serde::Deserialize)]
struct SeriesAnswer<S> {
    series: Vec<S>,
}

impl<H: Http> Reader<H> {
    pub fn new(http: H, concurrency: usize, timeout: Duration, rate_window: Duration) -> Self {
        Reader {
            http,
            concurrency: concurrency.max(1),
            timeout,
            rate_window,
        }
    }

    /// Every plan's batch, at most `concurrency` collectors at a time, each answer with its plan (in
    /// the order they finish).
    pub async fn read_all<'a, C: DeserializeOwned + Send, S: DeserializeOwned + Send>(
        &self,
        plans: Vec<Plan<'a>>,
    ) -> Vec<(Plan<'a>, Result<Answer<'a, C, S>, SourceError>)> {
        // The futures made up front: a stream mapping with a closure over `Plan<'a>` is not `Send` in
        // an async trait method (the closure's lifetime is not general enough).
        let batches: Vec<_> = plans
            .into_iter()
            .map(|p| async move {
                let answer = self.batch(&p).await;
                (p, answer)
            })
            .collect();
        stream::iter(batches)
            .buffer_unordered(self.concurrency)
            .collect()
            .await
    }

    /// One collector's batch. The first request tells whether it is there at all: if it cannot be
    /// reached, nothing else is asked of it.
    async fn batch<'a, C: DeserializeOwned, S: DeserializeOwned>(
        &self,
        p: &Plan<'a>,
    ) -> Result<Answer<'a, C, S>, SourceError> {
        let base = &p.endpoint.url;
        let mut answer = Answer {
            containers: Vec::new(),
            series: Vec::with_capacity(p.metrics.len()),
        };
        let mut rest = &p.metrics[..];
        if p.containers {
            let window = humantime::format_duration(self.rate_window)
                .to_string()
                .replace(' ', "");
            let url = format!("{base}/api/v1/containers?rate_window={window}");
            answer.containers = self.get_json(&url).await?.ok_or(SourceError::BadAnswer {
                url,
                message: "404 Not Found".into(),
            })?;
        } else if let Some((first, more)) = rest.split_first() {
            let s = self.series(base, first).await;
            if let Err(e @ SourceError::Unavailable(_)) = s {
                return Err(e);
            }
            answer.series.push((first, s));
            rest = more;
        }
        let more = futures_util::future::join_all(
            rest.iter()
                .map(|m| async move { (*m, self.series(base, m).await) }),
        )
        .await;
        answer.series.extend(more);
        Ok(answer)
    }

    /// One metric's series on the collector at `base` over the metric's window, that pass its
    /// matchers. A collector that has no such metric answers 404: no series there.
    async fn series<S: DeserializeOwned>(
        &self,
        base: &str,
        m: &MetricRead,
    ) -> Result<Vec<S>, SourceError> {
        let window = read::window_of(&m.query.read, self.rate_window);
        let url = format!(
            "{base}/api/v1/series?name={}&since={}ms",
            m.query.metric,
            window.as_millis()
        );
        Ok(self
            .get_json::<SeriesAnswer<S>>(&url)
            .await?
            .map(|a| a.series)
            .unwrap_or_default())
    }

    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<Option<T>, SourceError> {
        let body = match tokio::time::timeout(self.timeout, self.http.get(url)).await {
            Ok(answer) => answer?,
            Err(_) => {
                return Err(SourceError::Unavailable(format!(
                    "{url}: no answer within {}",
                    humantime::format_duration(self.timeout)
                )))
            }
        };
        body.map(|b| serde_json::from_slice(&b))
            .transpose()
            .map_err(|e| SourceError::BadAnswer {
                url: url.to_string(),
                message: e.to_string(),
            })
    }
}

/// Collectors that could not be read, so that an outage is logged and counted once when it starts
/// and once when it ends, however many targets read the collector meanwhile.
#[derive(Default)]
pub struct Outages(Mutex<HashMap<String, String>>);

pub const OUTAGES: &str = "plimsoll_collector_outages_total";
pub const UNREACHABLE: &str = "plimsoll_collectors_unreachable";

pub fn describe() {
    metrics::describe_counter!(
        OUTAGES,
        "Times a collector could not be read after it could, by collector URL (the replicas on its node count as missing meanwhile)."
    );
    metrics::describe_gauge!(UNREACHABLE, "Collectors that cannot be read now.");
    metrics::gauge!(UNREACHABLE).set(0.0);
}

impl Outages {
    /// A failed read of `e`; true when it starts an outage.
    pub fn down(&self, e: &Endpoint, error: &SourceError) -> bool {
        let mut down = self.0.lock().expect("outages lock");
        if down.contains_key(&e.url) {
            return false;
        }
        down.insert(e.url.clone(), error.to_string());
        metrics::counter!(OUTAGES, "collector" => e.url.clone()).increment(1);
        metrics::gauge!(UNREACHABLE).set(down.len() as f64);
        tracing::warn!(collector = %e.url, node = e.node.as_deref().unwrap_or(""), %error, "collector unreachable: the replicas on its node count as missing until it answers");
        true
    }

    /// A read of `e` that went through; true when it ends an outage.
    pub fn up(&self, e: &Endpoint) -> bool {
        let mut down = self.0.lock().expect("outages lock");
        if down.remove(&e.url).is_none() {
            return false;
        }
        metrics::gauge!(UNREACHABLE).set(down.len() as f64);
        tracing::info!(collector = %e.url, node = e.node.as_deref().unwrap_or(""), "collector answers again");
        true
    }

    /// Collectors gone from discovery are no longer in an outage (their node left).
    pub fn forget_except<'a>(&self, known: impl Iterator<Item = &'a Endpoint>) {
        let known: std::collections::HashSet<&str> = known.map(|e| e.url.as_str()).collect();
        let mut down = self.0.lock().expect("outages lock");
        let before = down.len();
        down.retain(|url, _| known.contains(url.as_str()));
        if down.len() != before {
            metrics::gauge!(UNREACHABLE).set(down.len() as f64);
        }
    }

    pub fn is_down(&self, url: &str) -> bool {
        self.0.lock().expect("outages lock").contains_key(url)
    }
}
