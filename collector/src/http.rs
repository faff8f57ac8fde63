//! HTTP API: the status page at /, /metrics (Prometheus text), /healthz, and the JSON API over the
//! in-memory window. Every figure is read through `crate::query`.

pub mod exposition;
pub mod status;

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};

use crate::query::{rates, Query as StoreQuery, Selector};
use crate::run::now_millis;
use crate::sampler::Shared;
use crate::sources::cgroup::ContainerView;
use crate::store::{Kind, LabelSet, Millis};

pub use crate::query::Latest;

#[derive(Clone)]
pub struct ApiState {
    pub shared: Shared,
    pub metrics: PrometheusHandle,
    pub interval: Duration,
    /// The spans component, when OTLP is received (cluster mode forwards edge halves to it).
    pub spans: Option<crate::sources::spans::Spans>,
    /// The replicas of scaled services, for the topology's nodes; only `plimsoll run` knows them.
    pub replicas: Option<ReplicaCounts>,
}

/// The current replicas of the scaled services, by the service name their spans carry
/// (`service.name`), read when `/api/v1/topology` is asked.
pub type ReplicaCounts =
    std::sync::Arc<dyn Fn() -> std::collections::BTreeMap<String, u32> + Send + Sync>;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(status::page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/v1/containers", get(containers))
        .route("/api/v1/series", get(series))
        .route("/api/v1/topology", get(topology))
        .route("/api/v1/spans/halves", axum::routing::post(span_halves))
        .with_state(state)
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let mut body = String::with_capacity(256 << 10);
    exposition::render(&s.shared.ingest.read(), &mut body);
    crate::telemetry::render(&s.metrics, &mut body);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Healthy while passes keep coming: at most three intervals since the last one.
async fn healthz(State(s): State<ApiState>) -> Response {
    let last = s.shared.last_pass();
    let age = last.map(|t| now_millis() - t);
    let limit = 3 * s.interval.as_millis() as Millis;
    let healthy = age.is_some_and(|a| a <= limit);
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(serde_json::json!({ "healthy": healthy, "last_pass_age_ms": age })),
    )
        .into_response()
}

/// A container with its limits and latest figures.
#[derive(Debug, Serialize)]
pub struct ContainerEntry {
    #[serde(flatten)]
    pub view: ContainerView,
    pub cpu_limit_cores: Option<f64>,
    pub memory_limit_bytes: Option<u64>,
    pub latest: Latest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainersQuery {
    /// How far back rates look, e.g. 3s; default: between the last two samples.
    rate_window: Option<String>,
}

async fn containers(
    State(s): State<ApiState>,
    q: Result<Query<ContainersQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let window = match q.map(|Query(q)| {
        q.rate_window
            .as_deref()
            .map(humantime::parse_duration)
            .transpose()
    }) {
        Ok(Ok(w)) => w.map(|d| d.as_millis() as Millis),
        Ok(Err(e)) => return bad_request(format!("rate_window: {e}")),
        Err(e) => return bad_request(e.body_text()),
    };
    let views = s.shared.containers.read().expect("views lock");
    let store = s.shared.ingest.read();
    let q = StoreQuery::new(&store);
    Json(
        views
            .values()
            .map(|v| ContainerEntry {
                view: v.clone(),
                cpu_limit_cores: v.spec.cpu_cores(),
                memory_limit_bytes: v.spec.memory_limit_bytes,
                latest: q.container_latest(&v.info.id, window),
            })
            .collect::<Vec<_>>(),
    )
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    /// Metric family name, e.g. container_cpu_usage_seconds_total.
    name: String,
    /// Container name or id (full or a prefix of at least 12 characters); absent for all.
    container: Option<String>,
    /// How far back, e.g. 5m; default the whole window.
    since: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SeriesData {
    pub name: String,
    pub kind: Kind,
    pub labels: LabelSet,
    /// Full id of the container the series is attributed to (its cgroup, scrape target or sender).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// [timestamp_ms, value] pairs, oldest first.
    pub points: Vec<(Millis, f64)>,
    /// For counters: [timestamp_ms, per-second rate since the previous point].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rates: Option<Vec<(Millis, f64)>>,
    /// For histograms: [le, cumulative count] per bucket, ascending, the last `"+Inf"`: the
    /// reset-aware increase over the points served, so that a reader can sum them by `le` across
    /// series and collectors and take a quantile (`histogram_quantile` over
    /// `sum by (le) (increase(x_bucket[since]))`); absent with fewer than two points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<(String, f64)>>,
}

fn bad_request(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": msg })),
    )
        .into_response()
}

async fn series(
    State(s): State<ApiState>,
    q: Result<Query<SeriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q_in) = match q {
        Ok(q) => q,
        Err(e) => return bad_request(e.body_text()),
    };
    let back = match q_in
        .since
        .as_deref()
        .map(humantime::parse_duration)
        .transpose()
    {
        Ok(d) => d,
        Err(e) => return bad_request(format!("since: {e}")),
    };
    let since = back
        .map(|d| now_millis() - d.as_millis() as Millis)
        .unwrap_or(Millis::MIN);
    let views = s.shared.containers.read().expect("views lock");
    let store = s.shared.ingest.read();
    let q = StoreQuery::new(&store);
    if store.family_by_name(&q_in.name).is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no metric named {}", q_in.name) })),
        )
            .into_response();
    }
    let wanted: Option<Vec<&str>> = q_in.container.as_deref().map(|c| {
        views
            .values()
            .filter(|v| {
                v.info.name == c || v.info.id == c || (c.len() >= 12 && v.info.id.starts_with(c))
            })
            .map(|v| v.info.id.as_str())
            .collect()
    });
    if wanted.as_ref().is_some_and(Vec::is_empty) {
        return (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": format!("no container {}", q_in.container.unwrap_or_default()) }))).into_response();
    }
    let selected: Vec<_> = match &wanted {
        None => q.select(&Selector {
            name: &q_in.name,
            ..Default::default()
        }),
        Some(ids) => ids
            .iter()
            .flat_map(|id| {
                q.select(&Selector {
                    name: &q_in.name,
                    container: Some(id),
                    ..Default::default()
                })
            })
            .collect(),
    };
    let out: Vec<SeriesData> = selected
        .into_iter()
        .filter_map(|sid| {
            let kind = q.kind(sid)?;
            let points = q.points(sid, since);
            let rates = (kind == Kind::Counter).then(|| rates(&points).collect());
            let buckets = q.bucket_increases(sid, since, Millis::MAX).map(|b| {
                b.into_iter()
                    .map(|(le, c)| (exposition::Num(le).to_string(), c))
                    .collect()
            });
            Some(SeriesData {
                name: q_in.name.clone(),
                kind,
                labels: store.labels(sid)?.clone(),
                container: store.attribution(sid).map(str::to_string),
                points,
                rates,
                buckets,
            })
        })
        .collect();
    Json(serde_json::json!({ "series": out })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyQuery {
    /// How far back rates and quantiles look, e.g. 1m; default 5m, at most the store's window.
    window: Option<String>,
}

/// The service graph over a window: services and virtual nodes, and the edges between them.
async fn topology(
    State(s): State<ApiState>,
    q: Result<Query<TopologyQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let window = match q.map(|Query(q)| {
        q.window
            .as_deref()
            .map(humantime::parse_duration)
            .transpose()
    }) {
        Ok(Ok(w)) => w.unwrap_or(Duration::from_secs(300)),
        Ok(Err(e)) => return bad_request(format!("window: {e}")),
        Err(e) => return bad_request(e.body_text()),
    };
    let store = s.shared.ingest.read();
    let max = store.window_ms();
    let w = window.as_millis() as Millis;
    if w <= 0 || w > max {
        return bad_request(format!(
            "window {} must be above 0 and at most the store's window of {}",
            humantime::format_duration(window),
            humantime::format_duration(Duration::from_millis(max as u64))
        ));
    }
    let q = StoreQuery::new(&store);
    let topology = crate::sources::spans::topology::build(&q, now_millis(), w);
    drop(store);
    match &s.replicas {
        Some(counts) => Json(topology.with_replicas(&counts())).into_response(),
        None => Json(topology).into_response(),
    }
}

/// Edge halves another collector forwards to the owner of their traces (cluster mode).
async fn span_halves(
    State(s): State<ApiState>,
    body: Result<
        Json<Vec<crate::sources::spans::EdgeHalf>>,
        axum::extract::rejection::JsonRejection,
    >,
) -> Response {
    let Some(spans) = &s.spans else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "this collector receives no spans (OTLP is off)" })),
        )
            .into_response();
    };
    match body {
        Ok(Json(halves)) => {
            spans.receive_halves(halves, now_millis());
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_request(e.body_text()),
    }
}
