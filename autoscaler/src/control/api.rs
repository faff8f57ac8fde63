//! The autoscaler's HTTP API: policies, recent decisions, and pause/resume behind a bearer token.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::runner::ControlState;

/// The token that guards the mutating endpoints; without one they are disabled.
#[derive(Clone)]
pub struct ApiToken(Option<Arc<str>>);

impl ApiToken {
    pub fn new(token: Option<String>) -> Self {
        ApiToken(
            token
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .map(Arc::from),
        )
    }

    fn check(&self, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
        let Some(want) = &self.0 else {
            return Err((StatusCode::FORBIDDEN, "pause and resume are disabled: no API token is configured (PLIMSOLL_API_TOKEN or --api-token-file)"));
        };
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Constant-time comparison: the token is a secret.
        let ok = given.is_some_and(|g| {
            g.len() == want.len()
                && g.bytes()
                    .zip(want.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if ok {
            Ok(())
        } else {
            Err((StatusCode::UNAUTHORIZED, "missing or wrong bearer token"))
        }
    }
}

#[derive(Clone)]
struct ApiState {
    control: Arc<ControlState>,
    token: ApiToken,
}

pub fn router(control: Arc<ControlState>, token: ApiToken) -> Router {
    Router::new()
        .route("/api/v1/policies", get(policies))
        .route("/api/v1/decisions", get(decisions))
        .route("/api/v1/policies/{service}/pause", post(pause))
        .route("/api/v1/policies/{service}/resume", post(resume))
        .with_state(ApiState { control, token })
}

fn error(code: StatusCode, msg: &str) -> Response {
    (code, Json(serde_json::json!({ "error": msg }))).into_response()
}

async fn policies(State(s): State<ApiState>) -> Response {
    let policies = s.control.policies.read().expect("policies lock");
    let out: Vec<serde_json::Value> = policies
        .values()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["paused"] = serde_json::Value::Bool(s.control.is_paused(e.target.service()));
            v
        })
        .collect();
    Json(out).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionsQuery {
    service: Option<String>,
}

async fn decisions(State(s): State<ApiState>, Query(q): Query<DecisionsQuery>) -> Response {
    Json(s.control.decisions.recent(q.service.as_deref())).into_response()
}

async fn pause(
    State(s): State<ApiState>,
    Path(service): Path<String>,
    headers: HeaderMap,
) -> Response {
    set_paused(&s, &service, &headers, true)
}

async fn resume(
    State(s): State<ApiState>,
    Path(service): Path<String>,
    headers: HeaderMap,
) -> Response {
    set_paused(&s, &service, &headers, false)
}

fn set_paused(s: &ApiState, service: &str, headers: &HeaderMap, paused: bool) -> Response {
    if let Err((code, msg)) = s.token.check(headers) {
        return error(code, msg);
    }
    let known = s
        .control
        .policies
        .read()
        .expect("policies lock")
        .values()
        .any(|e| e.target.service() == service);
    if !known {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no policy for service {service}"),
        );
    }
    let mut set = s.control.paused.write().expect("paused lock");
    if paused {
        set.insert(service.to_string());
    } else {
        set.remove(service);
    }
    tracing::info!(
        service,
        paused,
        "policy {}",
        if paused { "paused" } else { "resumed" }
    );
    Json(serde_json::json!({ "service": service, "paused": paused })).into_response()
}
