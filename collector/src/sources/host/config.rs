//! Configuration of the host source.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::Problems;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// The host's /proc (e.g. /host/proc when the collector runs in a container).
    pub proc_root: PathBuf,
    /// The host's /sys (node_exporter's `--path.sysfs`), for /sys/class/net.
    pub sys_root: PathBuf,
    /// Where the host's root filesystem is mounted (node_exporter's `--path.rootfs`): filesystems are
    /// measured under it and reported without it.
    pub rootfs: PathBuf,
    /// How long a pass waits for the filesystems' `statvfs` calls (node_exporter's mount timeout).
    #[serde(with = "crate::serde_duration")]
    pub statfs_timeout: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
            statfs_timeout: Duration::from_millis(200),
        }
    }
}

impl HostConfig {
    pub fn validate(&self, errs: &mut Problems) {
        for (name, p) in [
            ("proc_root", &self.proc_root),
            ("sys_root", &self.sys_root),
            ("rootfs", &self.rootfs),
        ] {
            if !p.is_absolute() {
                errs.push(
                    "host",
                    format!("{name} {} must be an absolute path", p.display()),
                );
            }
        }
        if self.statfs_timeout.is_zero() || self.statfs_timeout > Duration::from_secs(5) {
            errs.push(
                "host",
                format!(
                    "statfs_timeout {:?} must be above 0 and at most 5s",
                    self.statfs_timeout
                ),
            );
        }
    }
}
