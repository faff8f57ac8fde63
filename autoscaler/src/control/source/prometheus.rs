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
use crate::policy::{Missing, Read, Timestamp};
use plimsoll_collector::query::bucket_quantile;
use std::collections::BTreeMap;

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

    /// A quantile or an error ratio of the service's series.
    async fn service_value(
        &self,
        req: &Request<'_>,
        m: &MetricRead,
    ) -> Result<Result<f64, Missing>, SourceError> {
        let owned = |rows: Vec<VectorSample>| -> Vec<(Owner, VectorSample)> {
            rows.into_iter()
                .map(|s| {
                    (
                        Owner::from_labels(|k| s.metric.get(k).map(String::as_str)),
                        s,
                    )
                })
                .collect()
        };
        match &m.query.read {
            Read::Quantile { phi, window, scale } => {
                let rows = self.query_raw(&quantile_promql(m, *window)).await?;
                let rows = read::counted(req, m, owned(rows));
                if rows.is_empty() {
                    return Ok(Err(Missing::NoSeries));
                }
                let mut by_le: Vec<(f64, f64)> = Vec::new();
                for r in &rows {
                    let (Some(le), Some(v)) = (r.metric.get("le"), value_of(r)) else {
                        continue;
                    };
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap_or(f64::NAN)
                    };
                    match by_le.iter_mut().find(|(b, _)| *b == le) {
                        Some((_, c)) => *c += v,
                        None => by_le.push((le, v)),
                    }
                }
                by_le.retain(|(le, _)| !le.is_nan());
                by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
                let q = bucket_quantile(*phi, &by_le);
                Ok(q.is_finite()
                    .then(|| q * scale)
                    .ok_or(Missing::NoRecentSample))
            }
            Read::ErrorRatio { errors, window } => {
                let (all_q, errors_q) = error_ratio_promql(m, errors, *window);
                let (all, bad) =
                    futures_util::future::join(self.query_raw(&all_q), self.query_raw(&errors_q))
                        .await;
                let sum = |rows: Vec<VectorSample>| -> (usize, f64) {
                    let rows = read::counted(req, m, owned(rows));
                    (rows.len(), rows.iter().filter_map(value_of).sum())
                };
                let ((n, all), (_, bad)) = (sum(all?), sum(bad?));
                if n == 0 {
                    return Ok(Err(Missing::NoSeries));
                }
                Ok((all > 0.0)
                    .then(|| bad / all)
                    .ok_or(Missing::NoRecentSample))
            }
            Read::Auto | Read::Rate(_) => unreachable!("read per series"),
        }
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

/// A selector `name{k="v",...}` of `matchers`.
fn selector(name: &str, matchers: &BTreeMap<String, String>) -> String {
    if matchers.is_empty() {
        return name.to_string();
    }
    let parts: Vec<String> = matchers
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{name}{{{}}}", parts.join(","))
}

/// What the series a policy metric reads are summed by: what attributes them (cgroup `id`, OTLP
/// `container_id`, Swarm `task`) and `service`.
const BY: &str = "id, container_id, task, service";

/// The PromQL of a policy metric read per series: `rate` over the query's window (or, without one,
/// over the loop's for a name Prometheus' conventions make a counter: `_total`, `_count`, `_sum`),
/// else the gauge. Quantiles and error ratios have their own ([`quantile_promql`],
/// [`error_ratio_promql`]).
pub fn metric_promql(m: &MetricRead, rate_window: Duration) -> String {
    let q = &m.query;
    let sel = selector(&q.metric, &q.matchers);
    let counter = ["_total", "_count", "_sum"]
        .iter()
        .any(|s| q.metric.ends_with(s));
    let inner = match &q.read {
        Read::Rate(w) => format!("rate({sel}[{}ms])", w.as_millis()),
        Read::Auto if counter => format!("rate({sel}[{}ms])", rate_window.as_millis()),
        _ => sel,
    };
    format!("sum by ({BY}) ({inner})")
}

/// The bucket rates of a histogram by `le` and owner; the quantile is computed over the buckets of
/// the series that count for the service.
pub fn quantile_promql(m: &MetricRead, window: Duration) -> String {
    let sel = selector(&format!("{}_bucket", m.query.metric), &m.query.matchers);
    format!("sum by (le, {BY}) (rate({sel}[{}ms]))", window.as_millis())
}

/// The rates of all the selected counters and of their errors, by owner.
pub fn error_ratio_promql(
    m: &MetricRead,
    errors: &BTreeMap<String, String>,
    window: Duration,
) -> (String, String) {
    let mut with_errors = m.query.matchers.clone();
    with_errors.extend(errors.iter().map(|(k, v)| (k.clone(), v.clone())));
    let rate = |sel: String| format!("sum by ({BY}) (rate({sel}[{}ms]))", window.as_millis());
    (
        rate(selector(&m.query.metric, &m.query.matchers)),
        rate(selector(&m.query.metric, &with_errors)),
    )
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
            futures_util::future::join_all(req.metrics.iter().map(|m| async move {
                match m.query.read {
                    Read::Auto | Read::Rate(_) => self.metric(m).await.map(Ok),
                    _ => self.service_value(req, m).await.map(Err),
                }
            })),
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
        for (m, answer) in req.metrics.iter().zip(metrics) {
            match answer? {
                Ok(series) => read::combine(req, m, series, &mut out),
                Err(value) => read::set_service_value(m, value, &mut out),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::container_id_of;
    use super::*;
    use crate::policy::Scope;

    #[test]
    fn metric_queries_sum_by_what_attributes_a_series() {
        let m = |metric: &str, read: Read, matchers: &[(&str, &str)]| {
            MetricRead::new("x", metric, read, Scope::Service, matchers)
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
    fn quantiles_and_error_ratios_read_buckets_and_rates_by_owner() {
        let m = MetricRead::new(
            "p95",
            "traces_span_metrics_duration_milliseconds",
            Read::Auto,
            Scope::Service,
            &[("service_name", "checkout")],
        );
        assert_eq!(
            quantile_promql(&m, Duration::from_secs(300)),
            "sum by (le, id, container_id, task, service) (rate(traces_span_metrics_duration_milliseconds_bucket{service_name=\"checkout\"}[300000ms]))"
        );
        let errors = [("status_code".to_string(), "STATUS_CODE_ERROR".to_string())].into();
        let (all, bad) = error_ratio_promql(&m, &errors, Duration::from_secs(60));
        assert_eq!(
            (all.as_str(), bad.as_str()),
            (
                "sum by (id, container_id, task, service) (rate(traces_span_metrics_duration_milliseconds{service_name=\"checkout\"}[60000ms]))",
                "sum by (id, container_id, task, service) (rate(traces_span_metrics_duration_milliseconds{service_name=\"checkout\",status_code=\"STATUS_CODE_ERROR\"}[60000ms]))"
            )
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
