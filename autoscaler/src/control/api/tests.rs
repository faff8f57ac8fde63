//! The API over a real socket: full identities, bare names when unambiguous, 409 with the candidates
//! otherwise, pause and resume per target.

use std::collections::BTreeMap;

use super::*;
use crate::control::explain::Action;
use crate::control::plan::{Cause, Hold};
use crate::control::resolve::{PolicyEntry, PolicyOrigin};
use crate::policy::{parse_policy, Timestamp};

const TOKEN: &str = "s3cret";

fn compose(project: &str, service: &str) -> TargetId {
    TargetId::Compose {
        project: project.into(),
        service: service.into(),
    }
}

/// Serves the API over a state with policies for compose/a/web, compose/b/web and swarm/api, and
/// one decision for each; returns its base URL.
async fn serve() -> (String, Arc<ControlState>) {
    let state = Arc::new(ControlState::new(30));
    let ids = [
        compose("a", "web"),
        compose("b", "web"),
        TargetId::Swarm {
            service: "api".into(),
        },
    ];
    let mut policies = BTreeMap::new();
    for (k, id) in ids.iter().enumerate() {
        let yaml = format!(
            "service: {}\nmin: 1\nmax: 3\nmetrics:\n  - name: cpu\n    target: {{ utilization: 50 }}\n",
            id.service()
        );
        let entry = PolicyEntry {
            target: id.clone(),
            id: id.to_string(),
            origin: PolicyOrigin::Labels,
            policy: parse_policy("t.yaml", &yaml).unwrap(),
            conflicts: Vec::new(),
            shadowed: Vec::new(),
        };
        policies.insert(id.clone(), entry);
        let record = DecisionRecord::new(
            id,
            Timestamp(1000 + k as i64),
            1,
            1,
            Cause::Hold(Hold::Paused),
            Action::None,
        );
        state.decisions.push(id, record);
    }
    *state.policies.write().unwrap() = policies;
    let app = router(state.clone(), ApiToken::new(Some(TOKEN.into())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

async fn get(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn post(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_bare_name_is_accepted_only_when_unambiguous() {
    let (base, state) = serve().await;
    let (code, body) = post(&format!("{base}/api/v1/policies/web/pause")).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(
        body["candidates"],
        serde_json::json!(["compose/a/web", "compose/b/web"])
    );
    assert!(state.paused.read().unwrap().is_empty());
    let (code, body) = post(&format!("{base}/api/v1/policies/api/pause")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["target"], "swarm/api");
    let (code, _) = post(&format!("{base}/api/v1/policies/nothing/pause")).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn pause_and_resume_are_per_target() {
    let (base, state) = serve().await;
    let (code, body) = post(&format!("{base}/api/v1/targets/compose/a/web/pause")).await;
    assert_eq!((code, body["paused"].clone()), (200, true.into()), "{body}");
    assert!(state.is_paused(&compose("a", "web")));
    assert!(
        !state.is_paused(&compose("b", "web")),
        "b is another target"
    );
    let (_, listed) = get(&format!("{base}/api/v1/policies")).await;
    let paused: Vec<(String, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["paused"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(
        paused.contains(&("compose/a/web".into(), true)),
        "{paused:?}"
    );
    assert!(
        paused.contains(&("compose/b/web".into(), false)),
        "{paused:?}"
    );
    let (code, _) = post(&format!("{base}/api/v1/targets/compose/a/web/resume")).await;
    assert_eq!(code, 200);
    assert!(!state.is_paused(&compose("a", "web")));
    let (code, _) = post(&format!("{base}/api/v1/targets/swarm/api/pause")).await;
    assert_eq!(code, 200);
    let (code, _) = post(&format!("{base}/api/v1/targets/compose/c/web/pause")).await;
    assert_eq!(code, 404, "no policy for compose/c/web");
    let (code, _) = post(&format!("{base}/api/v1/targets/compose/a/web/stop")).await;
    assert_eq!(code, 404);
    // The token guards the full-identity routes too.
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/targets/compose/b/web/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn decisions_by_target_or_unambiguous_service() {
    let (base, _) = serve().await;
    let (code, body) = get(&format!("{base}/api/v1/decisions?target=compose/b/web")).await;
    assert_eq!(code, 200);
    let targets: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["compose/b/web"]);
    let (code, body) = get(&format!("{base}/api/v1/decisions?service=web")).await;
    assert_eq!(code, 409);
    assert_eq!(body["candidates"].as_array().unwrap().len(), 2);
    let (code, body) = get(&format!("{base}/api/v1/decisions?service=api")).await;
    assert_eq!((code, body.as_array().unwrap().len()), (200, 1));
    let (code, body) = get(&format!("{base}/api/v1/decisions?service=nothing")).await;
    assert_eq!(
        (code, body),
        (200, serde_json::json!([])),
        "no decisions yet"
    );
    let (_, all) = get(&format!("{base}/api/v1/decisions")).await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    let (code, _) = get(&format!("{base}/api/v1/decisions?target=web")).await;
    assert_eq!(code, 400);
    let (code, _) = get(&format!(
        "{base}/api/v1/decisions?target=swarm/api&service=api"
    ))
    .await;
    assert_eq!(code, 400);
}
