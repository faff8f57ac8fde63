//! HTTP API: /metrics (Prometheus text), /healthz, and the JSON API over the in-memory window.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};

use crate::run::now_millis;
use crate::sampler::{ContainerView, Shared, State as CollectorState};
use crate::store::{rates, Kind, Millis};

#[derive(Clone)]
pub struct ApiState {
    pub shared: Shared,
    pub metrics: PrometheusHandle,
    pub interval: Duration,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/v1/containers", get(containers))
        .route("/api/v1/series", get(series))
        .with_state(state)
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let mut body = String::with_capacity(256 << 10);
    s.shared.read().expect("state lock").store.render(&mut body);
    body.push_str(&s.metrics.render());
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
    let last = s.shared.read().expect("state lock").last_pass;
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

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latest {
    /// Sample time, ms since the epoch.
    pub timestamp_ms: Option<Millis>,
    /// CPU used between the last two samples, in cores.
    pub cpu_cores: Option<f64>,
    pub memory_usage_bytes: Option<f64>,
    pub memory_working_set_bytes: Option<f64>,
    pub network_receive_bytes_per_second: Option<f64>,
    pub network_transmit_bytes_per_second: Option<f64>,
}

/// The latest figures of one container, from the store.
/// The latest figures of one container. Rates cover `rate_window` back from the newest sample, or
/// only the last two samples when None.
pub fn latest(st: &CollectorState, view: &ContainerView, rate_window: Option<Millis>) -> Latest {
    let store = &st.store;
    let series = |name: &str| store.entity_series(view.entity, name);
    let rate = |id| match rate_window {
        Some(w) => store.latest(id).and_then(|(t, _)| store.rate(id, t - w)),
        None => store.last_rate(id),
    };
    let net_rate = |name: &str| {
        let per_iface: Vec<f64> = store
            .select(name, |e| e == view.entity)
            .iter()
            .filter_map(|s| rate(s.id))
            .collect();
        (!per_iface.is_empty()).then(|| per_iface.iter().sum())
    };
    Latest {
        timestamp_ms: series("container_cpu_usage_seconds_total")
            .and_then(|id| store.latest(id))
            .map(|(t, _)| t),
        cpu_cores: series("container_cpu_usage_seconds_total").and_then(rate),
        memory_usage_bytes: series("container_memory_usage_bytes")
            .and_then(|id| store.latest(id))
            .map(|(_, v)| v),
        memory_working_set_bytes: series("container_memory_working_set_bytes")
            .and_then(|id| store.latest(id))
            .map(|(_, v)| v),
        network_receive_bytes_per_second: net_rate("container_network_receive_bytes_total"),
        network_transmit_bytes_per_second: net_rate("container_network_transmit_bytes_total"),
    }
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
    let st = s.shared.read().expect("state lock");
    Json(
        st.containers
            .values()
            .map(|v| ContainerEntry {
                view: v.clone(),
                cpu_limit_cores: v.spec.cpu_cores(),
                memory_limit_bytes: v.spec.memory_limit_bytes,
                latest: latest(&st, v, window),
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
    pub labels: HashMap<&'static str, String>,
    /// [timestamp_ms, value] pairs, oldest first.
    pub points: Vec<(Millis, f64)>,
    /// For counters: [timestamp_ms, per-second rate since the previous point].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rates: Option<Vec<(Millis, f64)>>,
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
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return bad_request(e.body_text()),
    };
    let back = match q
        .since
        .as_deref()
        .map(humantime::parse_duration)
        .transpose()
    {
        Ok(d) => d,
        Err(e) => return bad_request(format!("since: {e}")),
    };
    let st = s.shared.read().expect("state lock");
    let since = back
        .map(|d| now_millis() - d.as_millis() as Millis)
        .unwrap_or(Millis::MIN);
    if st.store.family_by_name(&q.name).is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no metric named {}", q.name) })),
        )
            .into_response();
    }
    let wanted: Option<Vec<_>> = q.container.as_deref().map(|c| {
        st.containers
            .values()
            .filter(|v| {
                v.info.name == c || v.info.id == c || (c.len() >= 12 && v.info.id.starts_with(c))
            })
            .map(|v| v.entity)
            .collect()
    });
    if wanted.as_ref().is_some_and(Vec::is_empty) {
        return (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": format!("no container {}", q.container.unwrap_or_default()) }))).into_response();
    }
    let out: Vec<SeriesData> = st
        .store
        .select(&q.name, |e| wanted.as_ref().is_none_or(|w| w.contains(&e)))
        .into_iter()
        .map(|info| {
            let points = st.store.points(info.id, since);
            let rates = (info.kind == Kind::Counter).then(|| rates(&points).collect());
            SeriesData {
                name: info.name,
                kind: info.kind,
                labels: info.labels,
                points,
                rates,
            }
        })
        .collect();
    Json(serde_json::json!({ "series": out })).into_response()
}
