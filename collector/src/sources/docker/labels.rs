//! cAdvisor's `container_label_<name>` series labels: which Docker labels of a container become labels
//! of its `container_*` series.
//!
//! cAdvisor copies every label by default, which multiplies series names by whatever labels images and
//! orchestrators add; here only the labels Docker, Compose and Swarm set are copied (the ones Swarm and
//! Compose dashboards group by), and users allow more by name or by prefix (cAdvisor's
//! `--whitelisted_container_labels` idea).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

/// The labels copied without being asked for: what the engine, Compose and Swarm set on a container.
pub const DEFAULT_CONTAINER_LABELS: &[&str] = &[
    "com.docker.swarm.service.name",
    "com.docker.swarm.service.id",
    "com.docker.swarm.task.name",
    "com.docker.swarm.task.id",
    "com.docker.swarm.node.id",
    "com.docker.stack.namespace",
    "com.docker.compose.project",
    "com.docker.compose.service",
    "com.docker.compose.container-number",
    "com.docker.compose.oneoff",
];

/// Which container labels are copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelAllowList {
    exact: HashSet<String>,
    /// From entries ending in `*`.
    prefixes: Vec<String>,
}

impl Default for LabelAllowList {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl LabelAllowList {
    /// The default labels plus `extra`: names, or prefixes written `prefix*` (a lone `*` allows every
    /// label, as cAdvisor does by default).
    pub fn new(extra: &[String]) -> Self {
        let mut exact: HashSet<String> = DEFAULT_CONTAINER_LABELS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut prefixes = Vec::new();
        for e in extra {
            match e.strip_suffix('*') {
                Some(p) => prefixes.push(p.to_string()),
                None => {
                    exact.insert(e.clone());
                }
            }
        }
        Self { exact, prefixes }
    }

    pub fn allows(&self, label: &str) -> bool {
        self.exact.contains(label) || self.prefixes.iter().any(|p| label.starts_with(p))
    }

    /// The series labels of a container's Docker labels: allowed ones with a non-empty value, named
    /// as cAdvisor names them. Two labels that sanitise to the same name keep the first in label
    /// order, since a series cannot carry one name twice.
    pub fn series_labels(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Vec<(Cow<'static, str>, String)> {
        let mut out: Vec<(Cow<'static, str>, String)> = Vec::new();
        for (k, v) in labels {
            if v.is_empty() || !self.allows(k) {
                continue;
            }
            let name = label_name(k);
            if out.iter().all(|(n, _)| *n != name) {
                out.push((Cow::Owned(name), v.clone()));
            }
        }
        out
    }
}

/// Problems with an allow list entry, for the configuration's validation.
pub fn check_entry(e: &str) -> Result<(), String> {
    if e.is_empty() {
        return Err("container label names must not be empty".to_string());
    }
    if e.trim_end_matches('*').contains('*') || e.ends_with("**") {
        return Err(format!(
            "container label {e:?}: `*` is only allowed once, at the end (a prefix)"
        ));
    }
    Ok(())
}

/// cAdvisor's name for a container label: `container_label_` and the label with every character
/// outside `[a-zA-Z0-9_]` replaced by `_`.
pub fn label_name(label: &str) -> String {
    let mut s = String::with_capacity("container_label_".len() + label.len());
    s.push_str("container_label_");
    s.extend(label.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::check_label_name;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_labels_as_cadvisor_does() {
        assert_eq!(
            label_name("com.docker.swarm.service.name"),
            "container_label_com_docker_swarm_service_name"
        );
        assert_eq!(
            label_name("com.docker.compose.container-number"),
            "container_label_com_docker_compose_container_number"
        );
        assert_eq!(label_name("été/x"), "container_label__t__x");
    }

    #[test]
    fn copies_only_the_default_labels_unless_asked() {
        let l = labels(&[
            ("com.docker.swarm.service.name", "shop_web"),
            ("com.docker.stack.namespace", "shop"),
            ("com.docker.swarm.task", ""),
            ("maintainer", "someone"),
            ("com.example.team", "payments"),
            ("com.example.tier", "front"),
        ]);
        let got = LabelAllowList::default().series_labels(&l);
        assert_eq!(
            got,
            vec![
                (
                    "container_label_com_docker_stack_namespace".into(),
                    "shop".to_string()
                ),
                (
                    "container_label_com_docker_swarm_service_name".into(),
                    "shop_web".to_string()
                ),
            ]
        );
        let more = LabelAllowList::new(&["maintainer".into(), "com.example.*".into()]);
        let names: Vec<_> = more
            .series_labels(&l)
            .into_iter()
            .map(|(k, _)| k.into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "container_label_com_docker_stack_namespace",
                "container_label_com_docker_swarm_service_name",
                "container_label_com_example_team",
                "container_label_com_example_tier",
                "container_label_maintainer",
            ]
        );
        assert_eq!(
            LabelAllowList::new(&["*".into()]).series_labels(&l).len(),
            5
        );
    }

    #[test]
    fn labels_that_collide_once_sanitised_keep_the_first() {
        let l = labels(&[("a.b", "1"), ("a_b", "2"), ("a-b", "3")]);
        let got = LabelAllowList::new(&["a*".into()]).series_labels(&l);
        assert_eq!(got, vec![("container_label_a_b".into(), "3".to_string())]);
    }

    #[test]
    fn entries_are_checked() {
        assert!(check_entry("com.example.*").is_ok());
        assert!(check_entry("*").is_ok());
        assert!(check_entry("").is_err());
        assert!(check_entry("a*b").is_err());
        assert!(check_entry("a**").is_err());
    }

    proptest! {
        #[test]
        fn any_label_gives_a_valid_prometheus_name(k in "\\PC{0,40}") {
            prop_assert!(check_label_name(&label_name(&k)).is_ok());
        }
    }
}
