//! Which nodes of the service graph are scaled targets, so that `GET /api/v1/topology` (served by
//! `plimsoll run` with its embedded collector) shows their current replicas.
//!
//! A node is named by the `service.name` of its spans. A target is that node when its service name
//! is the same (a Compose service `backend` sending as `backend`), or when a metric of its policy
//! selects span metrics of that `service_name` (a Swarm stack's `shop_backend` scaled on
//! `matchers: {service_name: backend}`). A name two targets claim shows no replicas: it is not known
//! which deployment sent the spans.

use std::collections::{BTreeMap, BTreeSet};

use super::resolve::PolicyEntry;
use super::runner::ControlState;
use super::target::TargetId;

/// The span metrics' label naming the service that sent the spans.
const SPAN_SERVICE_LABEL: &str = "service_name";

/// The node names `entry`'s target may appear under.
fn node_names(entry: &PolicyEntry) -> BTreeSet<&str> {
    let mut names = BTreeSet::from([entry.target.service()]);
    for m in &entry.policy.metrics {
        if let Some(name) = m
            .query
            .as_ref()
            .and_then(|q| q.matchers.get(SPAN_SERVICE_LABEL))
        {
            names.insert(name);
        }
    }
    names
}

/// Node name to replicas, from the targets whose current replicas are known.
pub fn replicas_by_node<'a>(
    targets: impl IntoIterator<Item = (&'a PolicyEntry, u32)>,
) -> BTreeMap<String, u32> {
    let mut claims: BTreeMap<&str, Vec<(&TargetId, u32)>> = BTreeMap::new();
    for (entry, replicas) in targets {
        for name in node_names(entry) {
            claims
                .entry(name)
                .or_default()
                .push((&entry.target, replicas));
        }
    }
    claims
        .into_iter()
        .filter_map(|(name, c)| match c.as_slice() {
            [(_, replicas)] => Some((name.to_string(), *replicas)),
            _ => None,
        })
        .collect()
}

impl ControlState {
    /// [`replicas_by_node`] of the targets with a policy, at their latest decision's replica count.
    pub fn replicas_by_node(&self) -> BTreeMap<String, u32> {
        let policies = self.policies.read().expect("policies lock");
        replicas_by_node(policies.values().filter_map(|e| {
            self.decisions
                .latest_current(&e.target)
                .map(|current| (e, current))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::resolve::PolicyOrigin;
    use crate::policy::parse_policy_file;

    fn entry(target: TargetId, yaml: &str) -> PolicyEntry {
        let file = parse_policy_file("p.yaml", yaml).unwrap();
        PolicyEntry {
            id: target.to_string(),
            target,
            origin: PolicyOrigin::File {
                path: "p.yaml".into(),
            },
            policy: file.policy,
            conflicts: vec![],
            shadowed: vec![],
        }
    }

    const P95: &str = "metrics:\n  - name: p95\n    query: { metric: traces_span_metrics_duration_milliseconds, quantile: 0.95, window: 30s, matchers: { service_name: backend } }\n    target: { below: 200ms }\n";

    #[test]
    fn a_target_is_the_node_of_its_name_or_of_the_service_name_its_policy_reads() {
        let stack = entry(
            TargetId::Swarm {
                service: "shop_backend".into(),
            },
            &format!("service: backend\nstack: shop\nmin: 1\nmax: 4\n{P95}"),
        );
        let web = entry(
            TargetId::Compose {
                project: "shop".into(),
                service: "web".into(),
            },
            "service: web\nmin: 1\nmax: 4\nmetrics:\n  - name: cpu\n    target: { utilization: 50 }\n",
        );
        let got = replicas_by_node([(&stack, 3), (&web, 2)]);
        let want: BTreeMap<String, u32> = [("backend", 3), ("shop_backend", 3), ("web", 2)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_name_two_targets_claim_has_no_replicas() {
        let compose = |project: &str| {
            entry(
                TargetId::Compose {
                    project: project.into(),
                    service: "backend".into(),
                },
                &format!("service: backend\nproject: {project}\nmin: 1\nmax: 4\n{P95}"),
            )
        };
        let (a, b) = (compose("a"), compose("b"));
        assert!(replicas_by_node([(&a, 1), (&b, 2)]).is_empty());
        assert_eq!(replicas_by_node([(&a, 1)]).get("backend"), Some(&1));
    }
}
