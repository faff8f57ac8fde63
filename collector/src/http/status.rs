//! The status page at `/`: one self-contained HTML file (inline CSS and vanilla JS, no external assets)
//! that reads the JSON API of whichever process serves it and refreshes itself.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page, embedded at build time.
pub const PAGE: &str = include_str!("status.html");

/// `GET /`.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}
