//! One HTTP GET of a target, as Prometheus makes it: the same Accept header, the timeout in
//! `X-Prometheus-Scrape-Timeout-Seconds`, no proxy, and a cap on the body read.

use super::target::Target;
use super::translate::Format;

/// Prometheus's Accept header: OpenMetrics preferred, the text format accepted.
pub const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Why a GET gave no body to parse.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Connect(reqwest::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("body longer than {0} bytes")]
    BodySizeLimit(usize),
    #[error("reading the body: {0}")]
    Body(reqwest::Error),
}

impl FetchError {
    /// The `reason` label of `plimsoll_ingest_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::Timeout => "timeout",
            FetchError::Connect(_) => "connect",
            FetchError::Status(_) => "http_status",
            FetchError::BodySizeLimit(_) => "body_size_limit",
            FetchError::Body(_) => "body",
        }
    }

    fn of(e: reqwest::Error, reading: bool) -> Self {
        if e.is_timeout() {
            FetchError::Timeout
        } else if reading {
            FetchError::Body(e)
        } else {
            FetchError::Connect(e)
        }
    }
}

/// The client every target shares.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .user_agent(concat!("plimsoll/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("an HTTP client without TLS builds")
}

/// GETs the target's metrics: the body (at most `limit` bytes) and its format.
pub async fn fetch(
    client: &reqwest::Client,
    target: &Target,
    limit: usize,
) -> Result<(Vec<u8>, Format), FetchError> {
    let mut resp = client
        .get(target.url())
        .timeout(target.timeout)
        .header(reqwest::header::ACCEPT, ACCEPT)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", target.timeout.as_secs_f64()),
        )
        .send()
        .await
        .map_err(|e| FetchError::of(e, false))?;
    if !resp.status().is_success() {
        return Err(FetchError::Status(resp.status().as_u16()));
    }
    let format = Format::of(
        resp.headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(FetchError::BodySizeLimit(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| FetchError::of(e, true))? {
        if body.len() + chunk.len() > limit {
            return Err(FetchError::BodySizeLimit(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, format))
}
