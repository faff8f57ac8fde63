//! Which policy applies to which target, from data only: the targets discovery listed and the policy
//! files of the folder, in path order.
//!
//! A file applies to the one target it matches (`TargetInfo::matches`). A file that matches several
//! targets is ambiguous and applies to none: it must say which it means (`project`, `stack` or
//! `kind`). Of several files for one target the most specific wins (a project or stack over a kind
//! over a bare name), then the first in path order; the others are reported as shadowed. A file wins
//! over the target's `plimsoll.*` labels, which fill in what the file leaves out.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::target::{TargetId, TargetInfo};
use crate::policy::{merge_file_and_labels, policy_from_labels, Policy, PolicyFile};

/// Where a target's policy came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyOrigin {
    File {
        path: String,
    },
    Labels,
    /// The file wins; the labels' differing settings are listed in `conflicts`.
    FileOverLabels {
        path: String,
    },
}

/// The policy of one target, as `GET /api/v1/policies` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyEntry {
    pub target: TargetId,
    /// The full identity, `swarm/<service>` or `compose/<project>/<service>`.
    pub id: String,
    pub origin: PolicyOrigin,
    pub policy: Policy,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// Other files for this target, not applied because the origin's file wins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadowed: Vec<String>,
}

/// What became of one policy file, as `GET /api/v1/policy-files` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub path: String,
    /// What the file says it means (`service web of Compose project shop`), when it is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub means: Option<String>,
    #[serde(flatten)]
    pub status: FileStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileStatus {
    Applied {
        target: String,
    },
    /// Another file for the same target wins.
    Shadowed {
        target: String,
        by: String,
    },
    /// Matches several targets: applied to none until it says which.
    Ambiguous {
        candidates: Vec<String>,
    },
    /// Matches no target in scope (yet).
    NoTarget,
    Invalid {
        error: String,
    },
}

/// The policies of the targets, and what became of every file.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub entries: BTreeMap<TargetId, PolicyEntry>,
    pub files: Vec<FileReport>,
}

/// Whether a target belongs to one of `projects` (a Compose project, or a Swarm stack by its
/// `com.docker.stack.namespace` label); every target does when `projects` is empty.
pub fn in_scope(t: &TargetInfo, projects: &[String]) -> bool {
    projects.is_empty() || t.project().is_some_and(|p| projects.iter().any(|x| x == p))
}

/// A policy file as read: what it parsed into, or its problems.
pub type ReadFile = (PathBuf, Result<PolicyFile, String>);

/// Resolves the policies of `targets` (already in scope) from `files` (in path order) and labels.
pub fn resolve(targets: &[TargetInfo], files: &[ReadFile]) -> Resolution {
    let mut files_out = Vec::with_capacity(files.len());
    // Per target: (specificity, position in path order) of each file that matches it alone.
    let mut claims: BTreeMap<&TargetId, Vec<(u8, usize)>> = BTreeMap::new();
    for (k, (path, parsed)) in files.iter().enumerate() {
        let path = path.display().to_string();
        let file = match parsed {
            Ok(f) => f,
            Err(e) => {
                files_out.push(FileReport {
                    path,
                    means: None,
                    status: FileStatus::Invalid { error: e.clone() },
                });
                continue;
            }
        };
        let matching: Vec<&TargetInfo> = targets.iter().filter(|t| t.matches(file)).collect();
        let status = match matching.as_slice() {
            [] => FileStatus::NoTarget,
            [one] => {
                claims
                    .entry(&one.id)
                    .or_default()
                    .push((file.selector.specificity(), k));
                // Settled below, once every claim on the target is known.
                FileStatus::Applied {
                    target: one.id.to_string(),
                }
            }
            many => FileStatus::Ambiguous {
                candidates: many.iter().map(|t| t.id.to_string()).collect(),
            },
        };
        files_out.push(FileReport {
            path,
            means: Some(file.to_string()),
            status,
        });
    }
    // The winner of each target: most specific, then first in path order.
    let mut winners: BTreeMap<&TargetId, (usize, Vec<String>)> = BTreeMap::new();
    for (id, mut c) in claims {
        c.sort_by_key(|&(specificity, k)| (std::cmp::Reverse(specificity), k));
        let winner = c[0].1;
        let by = files[winner].0.display().to_string();
        let mut shadowed = Vec::new();
        for &(_, k) in &c[1..] {
            files_out[k].status = FileStatus::Shadowed {
                target: id.to_string(),
                by: by.clone(),
            };
            shadowed.push(files_out[k].path.clone());
        }
        winners.insert(id, (winner, shadowed));
    }
    let mut entries = BTreeMap::new();
    for t in targets {
        let file = winners.get(&t.id).map(|(k, shadowed)| {
            let f = files[*k].1.as_ref().expect("only valid files claim");
            (
                files_out[*k].path.clone(),
                f.policy.clone(),
                shadowed.clone(),
            )
        });
        if let Some(entry) = entry(t, file) {
            entries.insert(t.id.clone(), entry);
        }
    }
    Resolution {
        entries,
        files: files_out,
    }
}

/// The policy of one target from its winning file (path, policy, shadowed paths) and its labels.
fn entry(t: &TargetInfo, file: Option<(String, Policy, Vec<String>)>) -> Option<PolicyEntry> {
    let labels = match t
        .labels
        .keys()
        .any(|k| k.starts_with("plimsoll."))
        .then(|| policy_from_labels(t.id.service(), &t.labels))
    {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            tracing::warn!(target = %t.id, error = %e, "invalid plimsoll.* labels ignored");
            None
        }
        None => None,
    };
    let (origin, policy, conflicts, shadowed) = match (file, labels) {
        (Some((path, file, shadowed)), Some(labels)) => {
            let (policy, conflicts) = merge_file_and_labels(file, &labels);
            let conflicts: Vec<String> = conflicts.iter().map(|c| format!("{c:?}")).collect();
            if !conflicts.is_empty() {
                tracing::debug!(target = %t.id, file = %path, ?conflicts, "policy file wins over labels");
            }
            (
                PolicyOrigin::FileOverLabels { path },
                policy,
                conflicts,
                shadowed,
            )
        }
        (Some((path, file, shadowed)), None) => {
            (PolicyOrigin::File { path }, file, Vec::new(), shadowed)
        }
        (None, Some(policy)) => (PolicyOrigin::Labels, policy, Vec::new(), Vec::new()),
        (None, None) => return None,
    };
    Some(PolicyEntry {
        target: t.id.clone(),
        id: t.id.to_string(),
        origin,
        policy,
        conflicts,
        shadowed,
    })
}
