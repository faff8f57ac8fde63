//! The autoscaler's HTTP API: policies, what became of each policy file, recent decisions, and
//! pause/resume behind a bearer token.

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::explain::DecisionRecord;
use super::runner::ControlState;
use super::target::TargetId;

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

/// The API. A target is named by its full identity (`/api/v1/targets/swarm/{service}/...`,
/// `/api/v1/targets/compose/{project}/{service}/...`, `?target=compose/shop/web`), or by its bare
/// service name where that is unambiguous; an ambiguous name answers 409 with the candidates.
pub fn router(control: Arc<ControlState>, token: ApiToken) -> Router {
    Router::new()
        .route("/api/v1/policies", get(policies))
        .route("/api/v1/policy-files", get(policy_files))
        .route("/api/v1/decisions", get(decisions))
        .route("/api/v1/policies/{service}/{op}", post(by_service))
        .route("/api/v1/targets/swarm/{service}/{op}", post(by_identity))
        .route(
            "/api/v1/targets/compose/{project}/{service}/{op}",
            post(by_identity),
        )
        .with_state(ApiState { control, token })
}

fn error(code: StatusCode, msg: &str) -> Response {
    (code, Json(serde_json::json!({ "error": msg }))).into_response()
}

/// Why a bare service name names no single target.
enum Lookup {
    NotFound(String),
    Ambiguous(String, Vec<TargetId>),
}

impl IntoResponse for Lookup {
    fn into_response(self) -> Response {
        match self {
            Lookup::NotFound(service) => error(
                StatusCode::NOT_FOUND,
                &format!("no policy for service {service}"),
            ),
            Lookup::Ambiguous(service, candidates) => {
                let candidates: Vec<String> = candidates.iter().map(|t| t.to_string()).collect();
                let body = serde_json::json!({
                    "error": format!("service {service} is ambiguous: name the target by its full identity"),
                    "candidates": candidates,
                });
                (StatusCode::CONFLICT, Json(body)).into_response()
            }
        }
    }
}

/// The target a bare service name means among `known`.
fn by_name(known: impl IntoIterator<Item = TargetId>, service: &str) -> Result<TargetId, Lookup> {
    let mut matching: Vec<TargetId> = known
        .into_iter()
        .filter(|t| t.service() == service)
        .collect();
    matching.sort();
    matching.dedup();
    match matching.len() {
        0 => Err(Lookup::NotFound(service.to_string())),
        1 => Ok(matching.remove(0)),
        _ => Err(Lookup::Ambiguous(service.to_string(), matching)),
    }
}

async fn policies(State(s): State<ApiState>) -> Response {
    let policies = s.control.policies.read().expect("policies lock");
    let out: Vec<serde_json::Value> = policies
        .values()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["paused"] = serde_json::Value::Bool(s.control.is_paused(&e.target));
            v
        })
        .collect();
    Json(out).into_response()
}

async fn policy_files(State(s): State<ApiState>) -> Response {
    Json(s.control.files.read().expect("files lock").clone()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionsQuery {
    service: Option<String>,
    target: Option<String>,
}

async fn decisions(State(s): State<ApiState>, Query(q): Query<DecisionsQuery>) -> Response {
    let target = match (q.target, q.service) {
        (Some(_), Some(_)) => {
            return error(StatusCode::BAD_REQUEST, "give target or service, not both")
        }
        (Some(t), None) => match t.parse::<TargetId>() {
            Ok(id) => Some(id),
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        },
        (None, Some(service)) => {
            let mut known = s.control.decisions.targets();
            known.extend(
                s.control
                    .policies
                    .read()
                    .expect("policies lock")
                    .keys()
                    .cloned(),
            );
            match by_name(known, &service) {
                Ok(id) => Some(id),
                // No decision yet for that name: an empty list, as for a target without any.
                Err(Lookup::NotFound(_)) => {
                    return Json(Vec::<DecisionRecord>::new()).into_response()
                }
                Err(e) => return e.into_response(),
            }
        }
        (None, None) => None,
    };
    Json(s.control.decisions.recent(target.as_ref())).into_response()
}

/// `{service}/{op}`, or `{project}/{service}/{op}` for Compose.
#[derive(Deserialize)]
struct TargetPath {
    project: Option<String>,
    service: String,
    op: String,
}

async fn by_service(
    State(s): State<ApiState>,
    Path(p): Path<TargetPath>,
    headers: HeaderMap,
) -> Response {
    pause_or_resume(&s, &headers, &p.op, || {
        let policies = s.control.policies.read().expect("policies lock");
        by_name(policies.keys().cloned(), &p.service)
    })
}

async fn by_identity(
    State(s): State<ApiState>,
    Path(p): Path<TargetPath>,
    headers: HeaderMap,
) -> Response {
    let id = match p.project {
        Some(project) => TargetId::Compose {
            project,
            service: p.service,
        },
        None => TargetId::Swarm { service: p.service },
    };
    pause_or_resume(&s, &headers, &p.op, || Ok(id))
}

/// Checks the token before anything else (so nothing is revealed without it), then finds the target.
fn pause_or_resume(
    s: &ApiState,
    headers: &HeaderMap,
    op: &str,
    target: impl FnOnce() -> Result<TargetId, Lookup>,
) -> Response {
    if let Err((code, msg)) = s.token.check(headers) {
        return error(code, msg);
    }
    match target() {
        Ok(id) => set_paused(s, &id, op),
        Err(e) => e.into_response(),
    }
}

/// `op` is `pause` or `resume`; the target must have a policy.
fn set_paused(s: &ApiState, id: &TargetId, op: &str) -> Response {
    let paused = match op {
        "pause" => true,
        "resume" => false,
        _ => return error(StatusCode::NOT_FOUND, "expected .../pause or .../resume"),
    };
    if !s
        .control
        .policies
        .read()
        .expect("policies lock")
        .contains_key(id)
    {
        return error(StatusCode::NOT_FOUND, &format!("no policy for {id}"));
    }
    let mut set = s.control.paused.write().expect("paused lock");
    if paused {
        set.insert(id.clone());
    } else {
        set.remove(id);
    }
    tracing::info!(target = %id, paused, "policy {op}d");
    let body =
        serde_json::json!({ "target": id.to_string(), "service": id.service(), "paused": paused });
    Json(body).into_response()
}
