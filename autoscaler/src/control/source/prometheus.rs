//! `--source prometheus=URL`: the collectors' series as a Prometheus server scraped them, read with
//! PromQL instant queries. Containers are matched through the cAdvisor `id` label (the cgroup path,
//! which holds the container id).

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::read::{self, Owner, SeriesReading};
use super::{
    container_id_of, ContainerSample, MetricRead, MetricSource, Readings, Request, SourceError,
};
use crate::policy::{Read, Timestamp};

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

    /// Runs an instant query: its samples with their labels.
    async fn query_raw(&self, promql: &str) -> Result<Vec<VectorSample>, SourceError> {
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
        Ok(answer.data.map(|d| d.result).unwrap_or_default())
    }

    /// Runs an instant query; values by container id.
    async fn query(&self, promql: &str) -> Result<HashMap<String, f64>, SourceError> {
        Ok(self
            .query_raw(promql)
            .await?
            .into_iter()
            .filter_map(|s| {
                let id = container_id_of(s.metric.get("id")?)?.to_string();
                let v = value_of(&s)?;
                Some((id, v))
            })
            .collect())
    }

    /// One policy metric's series, summed by what attributes them (cgroup `id`, OTLP
    /// `container_id`, Swarm `task`) and `service`.
    async fn metric(&self, m: &MetricRead) -> Result<Vec<SeriesReading>, SourceError> {
        let promql = metric_promql(m, self.rate_window);
        Ok(self
            .query_raw(&promql)
            .await?
            .into_iter()
            .filter_map(|s| {
                let value = value_of(&s)?;
                let owner = Owner::from_labels(|k| s.metric.get(k).map(String::as_str));
                Some(SeriesReading {
                    owner,
                    value: Ok(value),
                })
            })
            .collect())
    }
}

fn value_of(s: &VectorSample) -> Option<f64> {
    let v: f64 = s.value.1.parse().ok()?;
    v.is_finite().then_some(v)
}

/// The PromQL of a policy metric: `rate` over the query's window (or, without one, over the loop's
/// for a name Prometheus' conventions make a counter: `_total`, `_count`, `_sum`), else the gauge.
pub fn metric_promql(m: &MetricRead, rate_window: Duration) -> String {
    let q = &m.query;
    let mut sel = q.metric.clone();
    if !q.matchers.is_empty() {
        let parts: Vec<String> = q
            .matchers
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        sel = format!("{sel}{{{}}}", parts.join(","));
    }
    let counter = ["_total", "_count", "_sum"]
        .iter()
        .any(|s| q.metric.ends_with(s));
    let inner = match q.read {
        Read::Rate(w) => format!("rate({sel}[{}ms])", w.as_millis()),
        Read::Auto if counter => format!("rate({sel}[{}ms])", rate_window.as_millis()),
        Read::Auto => sel,
    };
    format!("sum by (id, container_id, task, service) ({inner})")
}

/// A PromQL string literal's body.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl MetricSource for PrometheusSource {
    async fn sample(&self, req: &Request<'_>) -> Result<Readings, SourceError> {
        let w = format!("{}ms", self.rate_window.as_millis());
        let queries = [
            format!("sum by (id) (rate(container_cpu_usage_seconds_total[{w}]))"),
            "max by (id) (container_spec_cpu_quota / container_spec_cpu_period)".to_string(),
            "max by (id) (container_memory_working_set_bytes)".to_string(),
            "max by (id) (container_spec_memory_limit_bytes > 0)".to_string(),
            "max by (id) (timestamp(container_memory_working_set_bytes))".to_string(),
        ];
        let (answers, metrics) = futures_util::future::join(
            futures_util::future::join_all(queries.iter().map(|q| self.query(q))),
            futures_util::future::join_all(req.metrics.iter().map(|m| self.metric(m))),
        )
        .await;
        let mut results = Vec::with_capacity(answers.len());
        for a in answers {
            results.push(a?);
        }
        let mut out = Readings::default();
        for id in req.containers() {
            let get = |k: usize| results[k].get(id).copied();
            // A container Prometheus has no series for is absent, not zero.
            let Some(at) = get(4) else { continue };
            out.containers.insert(
                id.to_string(),
                ContainerSample {
                    at: Some(Timestamp((at * 1000.0) as i64)),
                    cpu_cores: get(0),
                    cpu_limit_cores: get(1),
                    memory_bytes: get(2),
                    memory_limit_bytes: get(3),
                    ..Default::default()
                },
            );
        }
        for (m, series) in req.metrics.iter().zip(metrics) {
            read::combine(req, m, series?, &mut out);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::container_id_of;
    use super::*;
    use crate::policy::{Scope, SeriesQuery};

    #[test]
    fn metric_queries_sum_by_what_attributes_a_series() {
        let m = |metric: &str, read: Read, matchers: &[(&str, &str)]| MetricRead {
            name: "x".into(),
            query: SeriesQuery {
                metric: metric.into(),
                matchers: matchers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                read,
            },
            scope: Scope::Service,
        };
        let w = Duration::from_secs(2);
        assert_eq!(
            metric_promql(
                &m("orders_total", Read::Rate(Duration::from_secs(60)), &[("status", "o\"k")]),
                w
            ),
            "sum by (id, container_id, task, service) (rate(orders_total{status=\"o\\\"k\"}[60000ms]))"
        );
        assert_eq!(
            metric_promql(&m("orders_total", Read::Auto, &[]), w),
            "sum by (id, container_id, task, service) (rate(orders_total[2000ms]))"
        );
        assert_eq!(
            metric_promql(&m("queue_depth", Read::Auto, &[]), w),
            "sum by (id, container_id, task, service) (queue_depth)"
        );
    }
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
