//! Collector configuration: one struct holding each component's config struct, validated once with
//! every problem of every component reported together.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::sources::cgroup::CgroupConfig;
use crate::sources::docker::DockerConfig;
use crate::sources::host::HostConfig;
use crate::sources::otlp::OtlpConfig;
use crate::sources::scrape::ScrapeConfig;
use crate::sources::spans::SpansConfig;
use crate::sources::statsd::StatsdConfig;

pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    pub listen: SocketAddr,
    /// Sampling interval of the sampled sources (host, cgroup).
    #[serde(with = "crate::serde_duration")]
    pub interval: Duration,
    /// How much history the in-memory store keeps per series.
    #[serde(with = "crate::serde_duration")]
    pub window: Duration,
    pub host: HostConfig,
    pub cgroup: CgroupConfig,
    pub docker: DockerConfig,
    /// OTLP spans into RED metrics and the service graph.
    pub spans: SpansConfig,
    /// The OTLP receiver (gRPC and HTTP servers).
    pub otlp: OtlpConfig,
    /// Prometheus scrape of the containers that ask for it by label.
    pub scrape: ScrapeConfig,
    /// The StatsD / DogStatsD receiver.
    pub statsd: StatsdConfig,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9180)),
            interval: Duration::from_secs(1),
            window: Duration::from_secs(15 * 60),
            host: HostConfig::default(),
            cgroup: CgroupConfig::default(),
            docker: DockerConfig::default(),
            spans: SpansConfig::default(),
            otlp: OtlpConfig::default(),
            scrape: ScrapeConfig::default(),
            statsd: StatsdConfig::default(),
        }
    }
}

/// All the problems found in a configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid collector configuration: {}", .0.join("; "))]
pub struct ConfigErrors(pub Vec<String>);

/// Where a component's `validate` adds what is wrong, each problem prefixed with the component.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn push(&mut self, component: &str, problem: impl std::fmt::Display) {
        let p = problem.to_string();
        self.0.push(if component.is_empty() {
            p
        } else {
            format!("{component}: {p}")
        });
    }
}

impl CollectorConfig {
    pub fn validate(self) -> Result<Self, ConfigErrors> {
        let mut errs = Problems::default();
        if self.interval < MIN_INTERVAL || self.interval > MAX_INTERVAL {
            errs.push(
                "",
                format!(
                    "interval {} is outside {}..={}",
                    humantime::format_duration(self.interval),
                    humantime::format_duration(MIN_INTERVAL),
                    humantime::format_duration(MAX_INTERVAL)
                ),
            );
        }
        if self.window < self.interval * 2 {
            errs.push(
                "",
                format!(
                    "window {} must hold at least two intervals",
                    humantime::format_duration(self.window)
                ),
            );
        }
        if self.window > Duration::from_secs(24 * 3600) {
            errs.push(
                "",
                format!(
                    "window {} is longer than 24h; use Prometheus for long history",
                    humantime::format_duration(self.window)
                ),
            );
        }
        self.host.validate(&mut errs);
        self.cgroup.validate(&mut errs);
        self.docker.validate(&mut errs);
        self.spans.validate(&mut errs);
        self.otlp.validate(&mut errs);
        self.scrape.validate(&mut errs);
        // The receiver's problems name it already ("statsd buckets: ..."); the mapping file is
        // loaded here too, so that a broken one is reported with every other problem.
        if let Err(e) = self.statsd.clone().validate() {
            for p in e.0 {
                errs.push("", p);
            }
        }
        if errs.0.is_empty() {
            Ok(self)
        } else {
            Err(ConfigErrors(errs.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(CollectorConfig::default().validate().is_ok());
    }

    #[test]
    fn reports_every_problem_at_once() {
        let c = CollectorConfig {
            interval: Duration::from_millis(50),
            window: Duration::from_secs(48 * 3600),
            ..Default::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
        assert!(
            e.to_string()
                .contains("interval 50ms is outside 100ms..=1m"),
            "{e}"
        );
        let c = CollectorConfig {
            interval: Duration::from_secs(61),
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = CollectorConfig {
            interval: Duration::from_millis(100),
            ..Default::default()
        };
        assert!(c.validate().is_ok());
    }

    #[test]
    fn component_problems_are_reported_with_the_others() {
        let mut c = CollectorConfig {
            interval: Duration::from_millis(50),
            ..Default::default()
        };
        c.host.proc_root = "relative/proc".into();
        c.docker.resync = Duration::from_millis(10);
        c.otlp.max_series = 0;
        c.statsd.buckets = vec![];
        let e = c.validate().unwrap_err();
        assert_eq!(e.0.len(), 5, "{e}");
        assert!(
            e.to_string()
                .contains("otlp: max_series must be at least 1"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("statsd buckets: at least one bucket"),
            "{e}"
        );
        assert!(e.to_string().contains("host: proc_root"), "{e}");
        assert!(e.to_string().contains("docker: resync"), "{e}");
    }

    #[test]
    fn parses_from_a_file_with_typed_durations_and_rejects_unknown_fields() {
        let c: CollectorConfig = serde_json::from_str(
            r#"{"interval": "500ms", "host": {"proc_root": "/host/proc"}, "docker": {"resync": "1m"}}"#,
        )
        .unwrap();
        assert_eq!(c.interval, Duration::from_millis(500));
        assert_eq!(c.docker.resync, Duration::from_secs(60));
        assert_eq!(c.host.proc_root, std::path::PathBuf::from("/host/proc"));
        let e = serde_json::from_str::<CollectorConfig>(r#"{"host": {"proc": "/x"}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `proc`"), "{e}");
        let e = serde_json::from_str::<CollectorConfig>(r#"{"interval": "soon"}"#).unwrap_err();
        assert!(
            e.to_string().contains("interval")
                || e.to_string().contains("soon")
                || e.to_string().contains("expected"),
            "{e}"
        );
    }
}
