//! Collector configuration: validated once, with every problem reported together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub listen: SocketAddr,
    pub interval: Duration,
    /// How much history the in-memory store keeps per series.
    pub window: Duration,
    /// The host's /proc (e.g. /host/proc when the collector runs in a container).
    pub proc_root: PathBuf,
    /// The host's cgroup mount.
    pub cgroup_root: PathBuf,
    /// Path of the Docker engine's unix socket.
    pub docker_socket: String,
    /// How often discovery re-lists containers in case an event was missed.
    pub resync: Duration,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9180)),
            interval: Duration::from_secs(1),
            window: Duration::from_secs(15 * 60),
            proc_root: PathBuf::from("/proc"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            docker_socket: "/var/run/docker.sock".to_string(),
            resync: Duration::from_secs(30),
        }
    }
}

/// All the problems found in a configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid collector configuration: {}", .0.join("; "))]
pub struct ConfigErrors(pub Vec<String>);

impl CollectorConfig {
    pub fn validate(self) -> Result<Self, ConfigErrors> {
        let mut errs = Vec::new();
        if self.interval < MIN_INTERVAL || self.interval > MAX_INTERVAL {
            errs.push(format!(
                "interval {} is outside {}..={}",
                humantime::format_duration(self.interval),
                humantime::format_duration(MIN_INTERVAL),
                humantime::format_duration(MAX_INTERVAL)
            ));
        }
        if self.window < self.interval * 2 {
            errs.push(format!(
                "window {} must hold at least two intervals",
                humantime::format_duration(self.window)
            ));
        }
        if self.window > Duration::from_secs(24 * 3600) {
            errs.push(format!(
                "window {} is longer than 24h; use Prometheus for long history",
                humantime::format_duration(self.window)
            ));
        }
        if self.resync < Duration::from_secs(1) {
            errs.push("resync must be at least 1s".to_string());
        }
        if errs.is_empty() {
            Ok(self)
        } else {
            Err(ConfigErrors(errs))
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
}
