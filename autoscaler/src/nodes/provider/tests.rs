use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};

use super::*;

fn exec(script: &str, timeout: Duration) -> ExecProvider {
    ExecProvider {
        command: vec!["sh".into(), "-c".into(), script.into(), "provider".into()],
        timeout,
    }
}

fn create_req() -> CreateRequest {
    CreateRequest {
        pool: "workers".into(),
        count: 2,
        join_token: "SWMTKN-1-x".into(),
        manager: "10.0.0.1:2377".into(),
    }
}

fn delete_req() -> DeleteRequest {
    DeleteRequest {
        pool: "workers".into(),
        node: "abc".into(),
        hostname: "h1".into(),
    }
}

#[tokio::test]
async fn exec_gets_the_arguments_and_the_pool_and_answers_json() {
    let dir = tempfile::tempdir().unwrap();
    let args = dir.path().join("args");
    let p = exec(
        &format!(
            "echo \"$PLIMSOLL_POOL $*\" >> {0}; [ \"$1\" = create ] && echo '{{\"nodes\":[{{\"hostname\":\"h1\",\"id\":\"n1\"}},{{\"hostname\":\"h2\",\"extra\":1}}]}}'; exit 0",
            args.display()
        ),
        Duration::from_secs(10),
    );
    let nodes = p.create(&create_req()).await.unwrap();
    assert_eq!(
        nodes,
        [
            NewNode {
                hostname: "h1".into(),
                id: Some("n1".into())
            },
            NewNode {
                hostname: "h2".into(),
                id: None
            }
        ]
    );
    p.delete(&delete_req()).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&args).unwrap(),
        "workers create --count 2 --join-token SWMTKN-1-x --manager 10.0.0.1:2377\nworkers delete --node abc --hostname h1\n"
    );
}

#[tokio::test]
async fn exec_failures_say_why() {
    let p = exec("echo quota exceeded >&2; exit 3", Duration::from_secs(10));
    let e = p.create(&create_req()).await.unwrap_err();
    assert!(matches!(e, ProviderError::Exit { .. }), "{e}");
    assert!(e.to_string().contains("quota exceeded"), "{e}");
    let p = exec("echo not json", Duration::from_secs(10));
    let e = p.create(&create_req()).await.unwrap_err();
    assert!(e.to_string().contains("unexpected answer"), "{e}");
    let p = exec(
        "echo '{\"nodes\":[{\"hostname\":\"\"}]}'",
        Duration::from_secs(10),
    );
    assert!(p.create(&create_req()).await.is_err());
    let p = ExecProvider {
        command: vec!["/nonexistent/provider".into()],
        timeout: Duration::from_secs(1),
    };
    assert!(matches!(
        p.create(&create_req()).await,
        Err(ProviderError::Spawn { .. })
    ));
}

#[tokio::test]
async fn a_hanging_command_is_killed_with_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let p = exec(
        &format!("sleep 60 & echo $! > {}; wait", pidfile.display()),
        Duration::from_millis(500),
    );
    let t0 = Instant::now();
    let e = p.create(&create_req()).await.unwrap_err();
    assert!(matches!(e, ProviderError::Timeout(_)), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        // Gone, or a zombie waiting for its reaper.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
    });
    assert!(gone, "the provider's child {pid} survived the timeout");
}

#[tokio::test]
async fn retries_back_off_and_give_up_after_the_attempts() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let r = with_retries(3, Duration::from_millis(5), move || {
        let c = c.clone();
        Box::pin(async move {
            match c.fetch_add(1, Ordering::SeqCst) {
                0 => Err(ProviderError::Timeout(Duration::ZERO)),
                n => Ok(n),
            }
        })
    })
    .await;
    assert_eq!(r.unwrap(), 1);
    calls.store(0, Ordering::SeqCst);
    let c = calls.clone();
    let r: Result<(), _> = with_retries(3, Duration::from_millis(5), move || {
        let c = c.clone();
        Box::pin(async move {
            c.fetch_add(1, Ordering::SeqCst);
            Err(ProviderError::Timeout(Duration::ZERO))
        })
    })
    .await;
    assert!(r.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[derive(Default)]
struct Seen {
    bodies: Vec<serde_json::Value>,
    auth: Vec<Option<String>>,
}

/// A real HTTP server on a free loopback port: `create` answers two nodes, `delete` 204, a pool
/// named "broken" gets a 503 and "slow" an answer after 2 s.
async fn webhook_server() -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let app = Router::new().route(
        "/nodes",
        post(move |headers: HeaderMap, Json(body): Json<serde_json::Value>| {
            let s = s.clone();
            async move {
                {
                    let mut s = s.lock().unwrap();
                    s.auth.push(
                        headers
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_string()),
                    );
                    s.bodies.push(body.clone());
                }
                match body["pool"].as_str() {
                    Some("broken") => (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "InsufficientCapacity".to_string(),
                    ),
                    Some("slow") => {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        (axum::http::StatusCode::OK, "{\"nodes\":[]}".to_string())
                    }
                    _ if body["action"] == "create" => (
                        axum::http::StatusCode::OK,
                        "{\"nodes\":[{\"hostname\":\"w1\"},{\"hostname\":\"w2\",\"id\":\"x\"}]}".to_string(),
                    ),
                    _ => (axum::http::StatusCode::NO_CONTENT, String::new()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/nodes", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn the_webhook_posts_the_same_json_with_the_bearer_token() {
    let (url, seen) = webhook_server().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let p = build(&Provider {
        kind: ProviderKind::Webhook {
            url,
            token_file: Some(token.clone()),
        },
        timeout: Duration::from_millis(500),
        attempts: 1,
        provision_timeout: Duration::from_secs(60),
        manager: None,
    });
    let nodes = p.create(&create_req()).await.unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[1].id.as_deref(), Some("x"));
    p.delete(&delete_req()).await.unwrap();
    let broken = CreateRequest {
        pool: "broken".into(),
        ..create_req()
    };
    let e = p.create(&broken).await.unwrap_err();
    assert!(
        e.to_string().contains("503") && e.to_string().contains("InsufficientCapacity"),
        "{e}"
    );
    let slow = CreateRequest {
        pool: "slow".into(),
        ..create_req()
    };
    assert!(matches!(
        p.create(&slow).await,
        Err(ProviderError::Timeout(_))
    ));
    std::fs::remove_file(&token).unwrap();
    assert!(matches!(
        p.create(&create_req()).await,
        Err(ProviderError::Token { .. })
    ));

    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.bodies[0],
        serde_json::json!({"action": "create", "pool": "workers", "count": 2, "join_token": "SWMTKN-1-x", "manager": "10.0.0.1:2377"})
    );
    assert_eq!(
        seen.bodies[1],
        serde_json::json!({"action": "delete", "pool": "workers", "node": "abc", "hostname": "h1"})
    );
    assert!(seen
        .auth
        .iter()
        .all(|a| a.as_deref() == Some("Bearer s3cret")));
}
