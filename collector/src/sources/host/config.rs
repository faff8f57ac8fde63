//! Configuration of the host source.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::Problems;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// The host's /proc (e.g. /host/proc when the collector runs in a container).
    pub proc_root: PathBuf,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            proc_root: PathBuf::from("/proc"),
        }
    }
}

impl HostConfig {
    pub fn validate(&self, errs: &mut Problems) {
        if !self.proc_root.is_absolute() {
            errs.push(
                "host",
                format!(
                    "proc_root {} must be an absolute path",
                    self.proc_root.display()
                ),
            );
        }
    }
}
