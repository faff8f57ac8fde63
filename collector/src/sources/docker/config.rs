//! Configuration of the Docker source (discovery and the stats API fallback).

use std::time::Duration;

use serde::Deserialize;

use crate::config::Problems;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// Path of the Docker engine's unix socket.
    pub socket: String,
    /// How often discovery re-lists containers in case an event was missed.
    #[serde(with = "crate::serde_duration")]
    pub resync: Duration,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            socket: "/var/run/docker.sock".to_string(),
            resync: Duration::from_secs(30),
        }
    }
}

impl DockerConfig {
    pub fn validate(&self, errs: &mut Problems) {
        if self.socket.is_empty() {
            errs.push("docker", "socket must not be empty");
        }
        if self.resync < Duration::from_secs(1) {
            errs.push("docker", "resync must be at least 1s");
        }
    }
}
