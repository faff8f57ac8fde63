//! `--source collectors=URL,...`: the `plimsoll collect` of every node (e.g. a Swarm global service),
//! read over its JSON API. Containers are matched by id across all collectors.

use std::collections::HashMap;
use std::time::Duration;

use plimsoll_collector::query::{rate_of, Latest};
use serde::Deserialize;

use super::{ContainerSample, MetricSource, SourceError};

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
    points: Vec<(i64, f64)>,
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
        let resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| SourceError::Unavailable(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(SourceError::BadAnswer {
                url,
                message: resp.status().to_string(),
            });
        }
        resp.json::<T>().await.map_err(|e| SourceError::BadAnswer {
            url,
            message: e.to_string(),
        })
    }

    /// A per-replica value of a named metric from the collector that samples the container.
    async fn custom(&self, base: &str, container: &str, metric: &str) -> Option<f64> {
        let secs = self.rate_window.as_secs_f64();
        let url = format!("{base}/api/v1/series?name={metric}&container={container}&since={secs}s");
        let answer: SeriesAnswer = self.get(url).await.ok()?;
        let s = answer.series.into_iter().next()?;
        match s.kind.as_str() {
            "counter" => rate_of(&s.points),
            _ => s.points.last().map(|p| p.1),
        }
    }
}

impl MetricSource for CollectorsSource {
    async fn sample(
        &self,
        containers: &[String],
        metrics: &[String],
    ) -> Result<HashMap<String, ContainerSample>, SourceError> {
        let window = humantime::format_duration(self.rate_window)
            .to_string()
            .replace(' ', "");
        let answers = futures_util::future::join_all(self.urls.iter().map(|u| {
            self.get::<Vec<RemoteContainer>>(format!("{u}/api/v1/containers?rate_window={window}"))
        }))
        .await;
        let mut out = HashMap::new();
        let mut errors = Vec::new();
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
            for c in list.into_iter().filter(|c| containers.contains(&c.id)) {
                let mut s = ContainerSample::from_latest(
                    &c.latest,
                    c.cpu_limit_cores,
                    c.memory_limit_bytes,
                    c.started_at.as_deref(),
                );
                for m in metrics {
                    if let Some(v) = self.custom(base, &c.id, m).await {
                        s.values.insert(m.clone(), v);
                    }
                }
                out.insert(c.id, s);
            }
        }
        if errors.len() == self.urls.len() {
            return Err(errors.swap_remove(0));
        }
        Ok(out)
    }
}
