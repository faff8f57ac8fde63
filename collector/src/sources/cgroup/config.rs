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
    /// Docker labels copied onto every `container_*` series as cAdvisor's `container_label_<name>`,
    /// besides the Docker, Compose and Swarm ones (`DEFAULT_CONTAINER_LABELS`): names, or prefixes
    /// written `prefix*`. Each one is a label name on every series of the containers that have it.
    pub container_labels: Vec<String>,
}

impl Default for CgroupConfig {
    fn default() -> Self {
        CgroupConfig {
            root: PathBuf::from("/sys/fs/cgroup"),
            container_labels: Vec::new(),
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
        for e in &self.container_labels {
            if let Err(p) = crate::sources::docker::check_entry(e) {
                errs.push("cgroup", p);
            }
        }
    }
}
