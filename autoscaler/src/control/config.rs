//! The control loop's configuration, validated as policies are: every problem at once, each naming the
//! `plimsoll run` flag that sets it.

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::policy::{check_project_name, MAX_INTERVAL, MIN_INTERVAL};

#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Default time between two ticks of a target (a policy's `interval` overrides it).
    pub interval: Duration,
    /// Decide and log, never act.
    pub dry_run: bool,
    /// Actions allowed per minute across all targets.
    pub max_actions_per_minute: u32,
    /// How often targets and policy files are listed again.
    pub discovery_interval: Duration,
    /// Policy files (*.yaml, *.yml, *.json); None for labels only.
    pub policies_dir: Option<PathBuf>,
    /// Only these Compose projects and Swarm stacks; empty for every target on the engine.
    pub projects: Vec<String>,
}

/// One problem of a configuration: the setting (a flag of `plimsoll run`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub setting: String,
    pub message: String,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    /// `invalid configuration:` then one `  SETTING: message` line per problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration:")?;
        for p in &self.problems {
            write!(f, "\n  {}: {}", p.setting, p.message)?;
        }
        Ok(())
    }
}

/// Collects problems; [`Problems::finish`] turns them into a result.
#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn push(&mut self, setting: &str, message: impl Into<String>) {
        self.0.push(Problem {
            setting: setting.to_string(),
            message: message.into(),
        });
    }

    /// Adds the problems of another check (e.g. another component's validation).
    pub fn extend(&mut self, other: ConfigError) {
        self.0.extend(other.problems);
    }

    pub fn finish<T>(self, ok: T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(ok)
        } else {
            Err(ConfigError { problems: self.0 })
        }
    }
}

/// A duration as users write it (`1s`, `250ms`).
pub fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl ControlConfig {
    /// The configuration, or every problem with it.
    pub fn validate(self) -> Result<Self, ConfigError> {
        let mut p = Problems::default();
        let range = format!("{}..={}", show(MIN_INTERVAL), show(MAX_INTERVAL));
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&self.interval) {
            p.push(
                "--interval",
                format!(
                    "the decision interval must be within {range}, got {}",
                    show(self.interval)
                ),
            );
        }
        if self.max_actions_per_minute == 0 {
            p.push(
                "--max-actions-per-minute",
                "must be at least 1 (with 0 nothing could ever scale; use --dry-run to only decide)",
            );
        }
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&self.discovery_interval) {
            p.push(
                "discovery interval",
                format!(
                    "must be within {range}, got {}",
                    show(self.discovery_interval)
                ),
            );
        }
        if let Some(dir) = &self.policies_dir {
            // A missing folder is allowed (labels only; it is read once it appears), a file is not.
            if dir.exists() && !dir.is_dir() {
                p.push(
                    "--policies",
                    format!("{} is not a directory", dir.display()),
                );
            }
        }
        for name in &self.projects {
            if let Err(e) = check_project_name(name) {
                p.push("--project", e);
            }
        }
        p.finish(self)
    }
}
