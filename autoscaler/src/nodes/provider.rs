//! Node providers: what makes and deletes machines for a pool. Both kinds speak the same JSON.
//!
//! `exec` runs the policy's command with arguments appended:
//!   `CMD... create --count N --join-token T --manager HOST:PORT`  -> stdout `{"nodes":[{"hostname":"h1","id":"optional"}]}`
//!   `CMD... delete --node ID --hostname H`                       -> exit 0 (stdout ignored)
//! with `PLIMSOLL_POOL` in its environment. A non-zero exit fails the call (stderr is kept in the error).
//!
//! `webhook` POSTs `{"action":"create","pool":P,"count":N,"join_token":T,"manager":ADDR}` or
//! `{"action":"delete","pool":P,"node":ID,"hostname":H}` with `Authorization: Bearer TOKEN` (the
//! token file is read at each call, so it can be rotated) and expects 2xx, with the same `nodes` JSON
//! for create.
//!
//! Every call has a timeout (a command still running is killed with its whole process group), and
//! [`with_retries`] retries a failing call with the loop's backoff.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::model::{Provider, ProviderKind};

/// A request to make `count` nodes that join the swarm with `join_token` at `manager`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateRequest {
    pub pool: String,
    pub count: u32,
    pub join_token: String,
    pub manager: String,
}

/// A request to delete one node (the machine; leaving the swarm is plimsoll's `docker node rm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeleteRequest {
    pub pool: String,
    /// The Swarm node ID, empty when the node never joined.
    pub node: String,
    pub hostname: String,
}

/// A node the provider made: its hostname (as the swarm will show it) and, if known, its node ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNode {
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Created {
    nodes: Vec<NewNode>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("exited with {status}: {stderr}")]
    Exit { status: String, stderr: String },
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("request failed: {0}")]
    Http(#[source] reqwest::Error),
    #[error("unexpected answer ({0}): expected {{\"nodes\":[{{\"hostname\":...}}]}}")]
    Answer(String),
    #[error("reading the token file {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Makes and deletes nodes. Object-safe so that the controller holds any provider, fakes included.
pub trait NodeProvider: Send + Sync + 'static {
    fn create<'a>(
        &'a self,
        req: &'a CreateRequest,
    ) -> BoxFuture<'a, Result<Vec<NewNode>, ProviderError>>;
    fn delete<'a>(&'a self, req: &'a DeleteRequest) -> BoxFuture<'a, Result<(), ProviderError>>;
}

/// The provider a policy names.
pub fn build(spec: &Provider) -> Arc<dyn NodeProvider> {
    match &spec.kind {
        ProviderKind::Exec { command } => Arc::new(ExecProvider {
            command: command.clone(),
            timeout: spec.timeout,
        }),
        ProviderKind::Webhook { url, token_file } => Arc::new(WebhookProvider {
            url: url.clone(),
            token_file: token_file.clone(),
            timeout: spec.timeout,
            client: reqwest::Client::new(),
        }),
    }
}

/// Calls `call` up to `attempts` times, waiting the loop's backoff from `base` between failures;
/// returns the last error.
pub async fn with_retries<T, F>(
    attempts: u32,
    base: Duration,
    mut call: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> BoxFuture<'static, Result<T, ProviderError>>,
{
    let mut failures = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                failures += 1;
                if failures >= attempts.max(1) {
                    return Err(e);
                }
                let wait = crate::control::backoff(failures, base, MAX_RETRY_WAIT, fastrand::f64());
                tracing::warn!(error = %e, attempt = failures, retry_in = ?wait, "node provider call failed");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Longest wait between two tries of one provider call.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

pub struct ExecProvider {
    pub command: Vec<String>,
    pub timeout: Duration,
}

impl ExecProvider {
    async fn run(&self, pool: &str, args: &[String]) -> Result<String, ProviderError> {
        let (program, base) = self
            .command
            .split_first()
            .expect("a validated, non-empty command");
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(base)
            .args(args)
            .env("PLIMSOLL_POOL", pool)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // Its own process group, so that a timeout kills what it started too (a shell's children
            // would otherwise keep running, holding its stdout open).
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| ProviderError::Spawn {
            command: program.clone(),
            source,
        })?;
        let pid = child.id();
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) if out.status.success() => {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            Ok(Ok(out)) => Err(ProviderError::Exit {
                status: out.status.to_string(),
                stderr: tail(&String::from_utf8_lossy(&out.stderr)),
            }),
            Ok(Err(source)) => Err(ProviderError::Spawn {
                command: program.clone(),
                source,
            }),
            Err(_) => {
                if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                    // SAFETY: kill(2) on the process group this call created; no memory is involved.
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                    }
                }
                Err(ProviderError::Timeout(self.timeout))
            }
        }
    }
}

/// The last lines of a command's stderr, enough to explain a failure without flooding the log.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

fn parse_created(text: &str) -> Result<Vec<NewNode>, ProviderError> {
    let created: Created = serde_json::from_str(text.trim()).map_err(|e| {
        ProviderError::Answer(format!(
            "{e}: {}",
            text.chars().take(200).collect::<String>()
        ))
    })?;
    if let Some(bad) = created.nodes.iter().find(|n| n.hostname.trim().is_empty()) {
        return Err(ProviderError::Answer(format!(
            "a node without a hostname: {bad:?}"
        )));
    }
    Ok(created.nodes)
}

impl NodeProvider for ExecProvider {
    fn create<'a>(
        &'a self,
        req: &'a CreateRequest,
    ) -> BoxFuture<'a, Result<Vec<NewNode>, ProviderError>> {
        Box::pin(async move {
            let args = [
                "create".to_string(),
                "--count".into(),
                req.count.to_string(),
                "--join-token".into(),
                req.join_token.clone(),
                "--manager".into(),
                req.manager.clone(),
            ];
            parse_created(&self.run(&req.pool, &args).await?)
        })
    }

    fn delete<'a>(&'a self, req: &'a DeleteRequest) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let args = [
                "delete".to_string(),
                "--node".into(),
                req.node.clone(),
                "--hostname".into(),
                req.hostname.clone(),
            ];
            self.run(&req.pool, &args).await.map(drop)
        })
    }
}

pub struct WebhookProvider {
    pub url: String,
    pub token_file: Option<PathBuf>,
    pub timeout: Duration,
    pub client: reqwest::Client,
}

impl WebhookProvider {
    async fn post(&self, body: serde_json::Value) -> Result<String, ProviderError> {
        let mut req = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .json(&body);
        if let Some(path) = &self.token_file {
            let token = std::fs::read_to_string(path).map_err(|source| ProviderError::Token {
                path: path.clone(),
                source,
            })?;
            req = req.bearer_auth(token.trim());
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                ProviderError::Timeout(self.timeout)
            } else {
                ProviderError::Http(e)
            }
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(ProviderError::Http)?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(ProviderError::Status {
                status: status.as_u16(),
                body: tail(&text),
            })
        }
    }
}

impl NodeProvider for WebhookProvider {
    fn create<'a>(
        &'a self,
        req: &'a CreateRequest,
    ) -> BoxFuture<'a, Result<Vec<NewNode>, ProviderError>> {
        Box::pin(async move {
            let mut body = serde_json::to_value(req).expect("a plain struct");
            body["action"] = "create".into();
            parse_created(&self.post(body).await?)
        })
    }

    fn delete<'a>(&'a self, req: &'a DeleteRequest) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let mut body = serde_json::to_value(req).expect("a plain struct");
            body["action"] = "delete".into();
            self.post(body).await.map(drop)
        })
    }
}

#[cfg(test)]
mod tests;
