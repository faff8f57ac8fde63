//! `--source prometheus=URL`: the collectors' series as a Prometheus server scraped them, read with
//! PromQL instant queries. Containers are matched through the cAdvisor `id` label (the cgroup path,
//! which holds the container id).

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::{ContainerSample, MetricSource, SourceError};
use crate::policy::Timestamp;

#[derive(Debug, Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Debug, Deserialize)]
struct Data {
    result: Vec<VectorSample>,
}

#[derive(Debug, Deserialize)]
struct VectorSample {
    metric: HashMap<String, String>,
    /// [unix seconds, "value"]
    value: (f64, String),
}

pub struct PrometheusSource {
    url: String,
    client: reqwest::Client,
    rate_window: Duration,
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

impl PrometheusSource {
    /// `rate_window` must span at least two scrapes of the collectors.
    pub fn new(url: &str, rate_window: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a plain HTTP client");
        Self {
            url: url.trim_end_matches('/').to_string(),
            client,
            rate_window,
        }
    }

    /// Runs an instant query; values by container id.
    async fn query(&self, promql: &str) -> Result<HashMap<String, f64>, SourceError> {
        let url = format!("{}/api/v1/query", self.url);
        let resp = self
            .client
            .get(&url)
            .query(&[("query", promql)])
            .send()
            .await
            .map_err(|e| SourceError::Unavailable(format!("{url}: {e}")))?;
        let answer: Answer = resp.json().await.map_err(|e| SourceError::BadAnswer {
            url: url.clone(),
            message: e.to_string(),
        })?;
        if answer.status != "success" {
            return Err(SourceError::BadAnswer {
                url,
                message: format!("{promql}: {}", answer.error.unwrap_or_default()),
            });
        }
        Ok(answer
            .data
            .map(|d| d.result)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| {
                let id = container_id_of(s.metric.get("id")?)?.to_string();
                let v: f64 = s.value.1.parse().ok()?;
                v.is_finite().then_some((id, v))
            })
            .collect())
    }
}

impl MetricSource for PrometheusSource {
    async fn sample(
        &self,
        containers: &[String],
        metrics: &[String],
    ) -> Result<HashMap<String, ContainerSample>, SourceError> {
        let w = format!("{}ms", self.rate_window.as_millis());
        let custom: Vec<String> = metrics
            .iter()
            .map(|m| {
                if m.ends_with("_total") {
                    format!("sum by (id) (rate({m}[{w}]))")
                } else {
                    format!("max by (id) ({m})")
                }
            })
            .collect();
        let mut queries = vec![
            format!("sum by (id) (rate(container_cpu_usage_seconds_total[{w}]))"),
            "max by (id) (container_spec_cpu_quota / container_spec_cpu_period)".to_string(),
            "max by (id) (container_memory_working_set_bytes)".to_string(),
            "max by (id) (container_spec_memory_limit_bytes > 0)".to_string(),
            "max by (id) (timestamp(container_memory_working_set_bytes))".to_string(),
        ];
        queries.extend(custom);
        let answers = futures_util::future::join_all(queries.iter().map(|q| self.query(q))).await;
        let mut results = Vec::with_capacity(answers.len());
        for a in answers {
            results.push(a?);
        }
        let mut out = HashMap::new();
        for id in containers {
            let get = |k: usize| results[k].get(id).copied();
            // A container Prometheus has no series for is absent, not zero.
            let Some(at) = get(4) else { continue };
            let mut s = ContainerSample {
                at: Some(Timestamp((at * 1000.0) as i64)),
                cpu_cores: get(0),
                cpu_limit_cores: get(1),
                memory_bytes: get(2),
                memory_limit_bytes: get(3),
                ..Default::default()
            };
            for (k, m) in metrics.iter().enumerate() {
                if let Some(v) = get(5 + k) {
                    s.values.insert(m.clone(), v);
                }
            }
            out.insert(id.clone(), s);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::container_id_of;

    #[test]
    fn finds_the_container_id_in_cgroup_paths() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(container_id_of(&format!("/docker/{id}")), Some(id));
        assert_eq!(
            container_id_of(&format!("/system.slice/docker-{id}.scope")),
            Some(id)
        );
        assert_eq!(container_id_of("/docker/abc"), None);
        assert_eq!(
            container_id_of(&format!("/x/{id}0")),
            None,
            "65 hex digits are not an id"
        );
    }
}
