//! The OTLP receiver's configuration, validated with the rest of the collector's.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Problems;
use crate::store::Limits;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// gRPC listen address (OTLP/gRPC); `None` turns it off.
    pub grpc: Option<SocketAddr>,
    /// HTTP listen address (OTLP/HTTP `/v1/metrics`, `/v1/traces`); `None` turns it off.
    pub http: Option<SocketAddr>,
    /// Largest request accepted, in bytes, as received and after gzip is undone.
    pub max_request_bytes: usize,
    /// A series not written for this long is no longer current (SDKs export every 60 s by default).
    #[serde(with = "crate::serde_duration")]
    pub stale_after: Duration,
    /// Series the receiver may own.
    pub max_series: usize,
    /// Series one metric name may hold.
    pub max_series_per_family: usize,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        let limits = Limits::default();
        OtlpConfig {
            grpc: Some(SocketAddr::from(([0, 0, 0, 0], 4317))),
            http: Some(SocketAddr::from(([0, 0, 0, 0], 4318))),
            max_request_bytes: 16 << 20,
            stale_after: Duration::from_secs(5 * 60),
            max_series: limits.max_series_per_source.unwrap_or(100_000),
            max_series_per_family: limits.max_series_per_family.unwrap_or(10_000),
        }
    }
}

impl OtlpConfig {
    /// Whether either server is configured.
    pub fn enabled(&self) -> bool {
        self.grpc.is_some() || self.http.is_some()
    }

    /// The store limits of this source.
    pub fn limits(&self) -> Limits {
        Limits {
            max_series_per_family: Some(self.max_series_per_family),
            max_series_per_source: Some(self.max_series),
        }
    }

    pub fn validate(&self, errs: &mut Problems) {
        const C: &str = "otlp";
        if let (Some(g), Some(h)) = (self.grpc, self.http) {
            if g == h && g.port() != 0 {
                errs.push(
                    C,
                    format!("the gRPC and HTTP servers cannot both listen on {g}"),
                );
            }
        }
        if !(1024..=(256 << 20)).contains(&self.max_request_bytes) {
            errs.push(
                C,
                format!(
                    "max_request_bytes {} is outside 1024..=268435456",
                    self.max_request_bytes
                ),
            );
        }
        if self.stale_after < Duration::from_secs(1) {
            errs.push(
                C,
                format!(
                    "stale_after {} must be at least 1s",
                    humantime::format_duration(self.stale_after)
                ),
            );
        }
        for (what, v) in [
            ("max_series", self.max_series),
            ("max_series_per_family", self.max_series_per_family),
        ] {
            if v == 0 {
                errs.push(C, format!("{what} must be at least 1"));
            }
        }
    }
}

/// Parses a listen flag such as `--otlp-grpc`: an address, or `off`.
pub fn parse_listen(s: &str) -> Result<Option<SocketAddr>, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| format!("`{s}` is neither an address such as 0.0.0.0:4317 nor `off`"))
}
