//! `--source collectors=URL,...`: the `plimsoll collect` of every node (e.g. a Swarm global service),
//! read over its JSON API. Containers are matched by id across all collectors.

use std::collections::BTreeMap;
use std::time::Duration;

use plimsoll_collector::query::{quantile_of_sum, rate_of, Latest};
use serde::Deserialize;

use super::read::{self, Owner, SeriesReading};
use super::{ContainerSample, MetricRead, MetricSource, Readings, Request, SourceError};
use crate::policy::{Missing, Read};

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
struct SeriesAnswer {
    series: Vec<RemoteSeries>,
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

pub struct CollectorsSource {
    urls: Vec<String>,
    client: reqwest::Client,
    rate_window: Duration,
}

impl CollectorsSource {
    pub fn new(urls: Vec<String>, rate_window: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("a plain HTTP client");
        Self {
            urls: urls
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            client,
            rate_window,
        }
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, url: String) -> Result<T, SourceError> {
        let shown = url.clone();
        self.get_unless_404(url)
            .await?
            .ok_or_else(|| SourceError::BadAnswer {
                url: shown,
                message: "404 Not Found".into(),
            })
    }

    /// A GET answered with JSON; `None` on 404.
    async fn get_unless_404<T: for<'de> Deserialize<'de>>(
        &self,
        url: String,
    ) -> Result<Option<T>, SourceError> {
        let resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| SourceError::Unavailable(format!("{url}: {e}")))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(SourceError::BadAnswer {
                url,
                message: resp.status().to_string(),
            });
        }
        resp.json::<T>()
            .await
            .map(Some)
            .map_err(|e| SourceError::BadAnswer {
                url,
                message: e.to_string(),
            })
    }

    /// One policy metric's series on the collector at `base`, over the metric's window, that pass
    /// its matchers. A collector that has no such metric answers 404: no series there.
    async fn series(&self, base: &str, m: &MetricRead) -> Result<Vec<RemoteSeries>, SourceError> {
        let window = read::window_of(&m.query.read, self.rate_window);
        let url = format!(
            "{base}/api/v1/series?name={}&since={}ms",
            m.query.metric,
            window.as_millis()
        );
        let Some(answer) = self.get_unless_404::<SeriesAnswer>(url).await? else {
            return Ok(Vec::new());
        };
        Ok(answer
            .series
            .into_iter()
            .filter(|s| read::matches(&m.query.matchers, |k| s.labels.get(k).cloned()))
            .collect())
    }

    /// `m`'s series from every collector that answered (a collector that fails is left out).
    async fn all_series(&self, up: &[&str], m: &MetricRead) -> Vec<RemoteSeries> {
        let per_collector =
            futures_util::future::join_all(up.iter().map(|base| self.series(base, m))).await;
        let mut series = Vec::new();
        for (base, answer) in up.iter().zip(per_collector) {
            match answer {
                Ok(s) => series.extend(s),
                Err(e) => {
                    tracing::debug!(collector = %base, metric = %m.name, error = %e, "metric not read")
                }
            }
        }
        series
    }
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

impl MetricSource for CollectorsSource {
    async fn sample(&self, req: &Request<'_>) -> Result<Readings, SourceError> {
        let window = humantime::format_duration(self.rate_window)
            .to_string()
            .replace(' ', "");
        let answers = futures_util::future::join_all(self.urls.iter().map(|u| {
            self.get::<Vec<RemoteContainer>>(format!("{u}/api/v1/containers?rate_window={window}"))
        }))
        .await;
        let mut out = Readings::default();
        let mut errors = Vec::new();
        let mut up = Vec::new();
        for (base, answer) in self.urls.iter().zip(answers) {
            let list = match answer {
                Ok(l) => l,
                Err(e) => {
                    // One node's collector down: its replicas go missing, which the decision handles.
                    tracing::debug!(collector = %base, error = %e, "collector not read");
                    errors.push(e);
                    continue;
                }
            };
            up.push(base.as_str());
            for c in list
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
        }
        if errors.len() == self.urls.len() {
            return Err(errors.swap_remove(0));
        }
        // Each metric's series from every collector that answered, summed across them.
        for m in req.metrics {
            match &m.query.read {
                Read::Quantile { phi, scale, .. } => {
                    let series = self.all_series(&up, m).await;
                    let value = quantile(req, m, *phi, *scale, series);
                    read::set_service_value(m, value, &mut out);
                }
                Read::ErrorRatio { errors, .. } => {
                    let series = self.all_series(&up, m).await;
                    read::set_service_value(m, error_ratio(req, m, errors, series), &mut out);
                }
                Read::Auto | Read::Rate(_) => {
                    let series = self.all_series(&up, m).await;
                    let readings = series.into_iter().map(|s| s.reading(&m.query.read));
                    read::combine(req, m, readings, &mut out);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
