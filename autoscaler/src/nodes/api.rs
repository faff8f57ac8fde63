//! `GET /api/v1/pools` (each node pool: its policy, file, last status, operation in progress and
//! memory) and `GET /api/v1/node-decisions[?pool=NAME]` (the recent decisions and operation steps).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::controller::{NodeControlState, PoolEntry};
use super::explain::NodeRecord;

pub fn router(state: Arc<NodeControlState>) -> Router {
    Router::new()
        .route("/api/v1/pools", get(pools))
        .route("/api/v1/node-decisions", get(decisions))
        .with_state(state)
}

async fn pools(State(s): State<Arc<NodeControlState>>) -> Json<Vec<PoolEntry>> {
    Json(
        s.pools
            .read()
            .expect("pools lock")
            .values()
            .cloned()
            .collect(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionsQuery {
    pool: Option<String>,
}

async fn decisions(
    State(s): State<Arc<NodeControlState>>,
    Query(q): Query<DecisionsQuery>,
) -> Json<Vec<NodeRecord>> {
    Json(s.log.recent(q.pool.as_deref()))
}
