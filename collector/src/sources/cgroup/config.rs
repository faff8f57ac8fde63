//! Configuration of the cgroup (container) source.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::Problems;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CgroupConfig {
    /// The host's cgroup mount. When it cannot be read, containers are sampled through the Docker
    /// stats API instead.
    pub root: PathBuf,
}

impl Default for CgroupConfig {
    fn default() -> Self {
        CgroupConfig {
            root: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}

impl CgroupConfig {
    pub fn validate(&self, errs: &mut Problems) {
        if !self.root.is_absolute() {
            errs.push(
                "cgroup",
                format!("root {} must be an absolute path", self.root.display()),
            );
        }
    }
}
