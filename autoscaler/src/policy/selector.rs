//! Which target a policy file means when its service name alone is ambiguous: the same Compose service
//! name in two projects, or a Compose service and a Swarm service of one name.
//!
//! ```yaml
//! service: web
//! project: shop      # the Compose project (or `stack: shop` for a Swarm stack; `kind: swarm|compose`)
//! ```
//!
//! Labels need none of this: they sit on the target they mean.

use std::fmt;

use serde::Serialize;

use super::model::Policy;

/// Swarm service or Compose service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Swarm,
    Compose,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Swarm => "swarm",
            TargetKind::Compose => "compose",
        }
    }
}

/// The optional `kind`, `project` and `stack` of a policy file. `project` implies Compose and `stack`
/// implies Swarm; the parser rejects contradictions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Selector {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<TargetKind>,
    /// Compose project (`com.docker.compose.project`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Swarm stack (`com.docker.stack.namespace`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

impl Selector {
    /// The kind the selector allows: given, or implied by `project` / `stack`.
    pub fn kind(&self) -> Option<TargetKind> {
        self.kind.or(if self.project.is_some() {
            Some(TargetKind::Compose)
        } else if self.stack.is_some() {
            Some(TargetKind::Swarm)
        } else {
            None
        })
    }

    /// How precisely it names a target: 2 with a project or stack, 1 with a kind only, 0 with neither.
    /// Of two files for one target, the more specific wins.
    pub fn specificity(&self) -> u8 {
        if self.project.is_some() || self.stack.is_some() {
            2
        } else {
            u8::from(self.kind.is_some())
        }
    }
}

/// A policy file: the policy and which target it means.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFile {
    pub policy: Policy,
    pub selector: Selector,
}

impl fmt::Display for PolicyFile {
    /// `service web`, `Swarm service web`, `service web of Compose project shop`, `service web of
    /// Swarm stack shop`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.selector;
        let service = &self.policy.service;
        match (&s.project, &s.stack, s.kind) {
            (Some(p), _, _) => write!(f, "service {service} of Compose project {p}"),
            (_, Some(st), _) => write!(f, "service {service} of Swarm stack {st}"),
            (_, _, Some(TargetKind::Swarm)) => write!(f, "Swarm service {service}"),
            (_, _, Some(TargetKind::Compose)) => write!(f, "Compose service {service}"),
            _ => write!(f, "service {service}"),
        }
    }
}

/// Compose project and Swarm stack names: letters, digits, `_`, `-` and `.`, starting with a letter or
/// a digit. Anything else can match no target, so it is a typo.
pub fn check_project_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a Compose project or Swarm stack name (letters, digits, _, - and ., \
             starting with a letter or digit)"
        ))
    }
}
