//! Configuration of the Prometheus scrape of labelled app containers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Problems, MAX_INTERVAL, MIN_INTERVAL};

/// Longest scrape timeout a target gets by default (Prometheus's default `scrape_timeout`).
pub const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfig {
    /// Scrape containers that ask for it by label.
    pub enabled: bool,
    /// Interval of a target without `plimsoll.scrape.interval`; `None`: the collector's interval.
    #[serde(with = "crate::serde_duration::option")]
    pub interval: Option<Duration>,
    /// Timeout of a target without `plimsoll.scrape.timeout`; `None`: min(interval, 10s).
    #[serde(with = "crate::serde_duration::option")]
    pub timeout: Option<Duration>,
    /// Scrapes in flight at once, over all targets.
    pub max_concurrent: usize,
    /// Longest response body read; a longer one fails the scrape (`body_size_limit`).
    pub body_size_limit: usize,
    /// Samples one scrape may hold; more fail the scrape, as Prometheus's `sample_limit` does.
    pub sample_limit: usize,
    /// Series the scrape source may own in the store, over all targets.
    pub max_series: usize,
    /// Series one metric name may grow to through scrapes.
    pub max_series_per_family: usize,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig {
            enabled: true,
            interval: None,
            timeout: None,
            max_concurrent: 8,
            body_size_limit: 8 << 20,
            // Reading is linear in the body (BENCHMARKS.md); the limit keeps one target from taking
            // most of `max_series` (Prometheus has none by default; 20,000 covers node_exporter
            // and cAdvisor on a busy host).
            sample_limit: 20_000,
            max_series: 50_000,
            max_series_per_family: 10_000,
        }
    }
}

/// What a target's missing labels default to, resolved against the collector's interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub interval: Duration,
    /// `None`: min(the target's interval, 10s).
    pub timeout: Option<Duration>,
}

impl Defaults {
    /// A target's timeout when it sets none: the configured one (capped at its interval), else
    /// min(interval, 10s).
    pub fn timeout_for(&self, interval: Duration) -> Duration {
        self.timeout.unwrap_or(DEFAULT_MAX_TIMEOUT).min(interval)
    }
}

impl ScrapeConfig {
    /// The defaults targets get, given the collector's sampling interval.
    pub fn defaults(&self, collector_interval: Duration) -> Defaults {
        Defaults {
            interval: self.interval.unwrap_or(collector_interval),
            timeout: self.timeout,
        }
    }

    pub fn validate(&self, errs: &mut Problems) {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        if let Some(i) = self.interval {
            if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&i) {
                errs.push(
                    "scrape",
                    format!(
                        "interval {} is outside {}..={}",
                        show(i),
                        show(MIN_INTERVAL),
                        show(MAX_INTERVAL)
                    ),
                );
            }
        }
        if let Some(t) = self.timeout {
            if t < Duration::from_millis(10) {
                errs.push(
                    "scrape",
                    format!("timeout {} is shorter than 10ms", show(t)),
                );
            }
            if let Some(i) = self.interval.filter(|i| t > *i) {
                errs.push(
                    "scrape",
                    format!(
                        "timeout {} is longer than the interval {}",
                        show(t),
                        show(i)
                    ),
                );
            }
        }
        for (what, v, min) in [
            ("max_concurrent", self.max_concurrent, 1),
            ("body_size_limit", self.body_size_limit, 1024),
            ("sample_limit", self.sample_limit, 1),
            ("max_series", self.max_series, 1),
            ("max_series_per_family", self.max_series_per_family, 1),
        ] {
            if v < min {
                errs.push("scrape", format!("{what} must be at least {min}"));
            }
        }
    }
}
