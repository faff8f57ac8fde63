//! Policy files in a directory: which files are policies, re-read only when they change, and which
//! kind each one is. The service loop and the node loop both read `--policies` through this.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use plimsoll_collector::yaml;
use saphyr::YamlData;

/// The policy files of `dir` (`*.yaml`, `*.yml`, `*.json`; regular files, subfolders not read),
/// sorted by name so that every reader sees them in the same order.
pub fn policy_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_policy = path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"));
        if is_policy && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A node policy (see `crate::nodes`) is a mapping with a top-level `pool` key; anything else is read
/// as a service policy, whose parser reports what is wrong with it.
pub fn is_node_policy(text: &str) -> bool {
    yaml::load_one(text, "a policy").is_ok_and(|doc| match &doc.data {
        YamlData::Mapping(map) => map
            .keys()
            .any(|k| yaml::scalar_text(k).as_deref() == Some("pool")),
        _ => false,
    })
}

/// The parsed policy files of a directory, each parsed again only when its modification time
/// changes, so that an invalid file is reported once per change rather than every pass.
#[derive(Debug)]
pub struct PolicyDir<T> {
    /// Per file: its modification time, and what it parsed into (None: another kind) or its problems.
    seen: HashMap<PathBuf, (SystemTime, Result<Option<T>, String>)>,
}

impl<T> Default for PolicyDir<T> {
    fn default() -> Self {
        PolicyDir {
            seen: HashMap::new(),
        }
    }
}

impl<T: Clone> PolicyDir<T> {
    /// The files of `dir` that `parse` accepts, by name. `parse` gets the path and the text and
    /// returns `Ok(None)` for a file of another kind, `Err` (logged here) for an invalid one.
    pub fn load(
        &mut self,
        dir: &Path,
        mut parse: impl FnMut(&Path, &str) -> Result<Option<T>, String>,
    ) -> Vec<(PathBuf, T)> {
        let files = match policy_files(dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "policy directory unreadable");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for path in &files {
            let mtime = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let fresh = self.seen.get(path).is_some_and(|(t, _)| *t == mtime);
            if !fresh {
                let parsed = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: cannot read: {e}", path.display()))
                    .and_then(|text| parse(path, &text));
                if let Err(e) = &parsed {
                    tracing::error!("invalid policy file, ignored:\n{e}");
                }
                self.seen.insert(path.clone(), (mtime, parsed));
            }
            if let Some((_, Ok(Some(v)))) = self.seen.get(path) {
                out.push((path.clone(), v.clone()));
            }
        }
        self.seen.retain(|p, _| files.contains(p));
        out
    }

    /// The files the last `load` found invalid, sorted by path, with their problems.
    pub fn invalid(&self) -> Vec<(PathBuf, String)> {
        let mut out: Vec<(PathBuf, String)> = self
            .seen
            .iter()
            .filter_map(|(p, (_, r))| r.as_ref().err().map(|e| (p.clone(), e.clone())))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_policies_are_told_apart_by_their_pool_key() {
        assert!(is_node_policy("pool: workers\nmin: 1\n"));
        assert!(is_node_policy("{\"pool\": \"workers\"}"));
        assert!(!is_node_policy("service: web\nmin: 1\n"));
        assert!(!is_node_policy("service: web\nmetrics: [ { pool: 1 } ]\n"));
        assert!(!is_node_policy("- pool\n"));
        assert!(!is_node_policy(": : not yaml ["));
    }

    #[test]
    fn lists_policy_files_sorted_and_parses_each_once_per_change() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), "b").unwrap();
        std::fs::write(dir.path().join("a.json"), "a").unwrap();
        std::fs::write(dir.path().join("c.yml"), "skip").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
        let names: Vec<String> = policy_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.json", "b.yaml", "c.yml"]);

        let mut cache = PolicyDir::default();
        let calls = std::cell::Cell::new(0);
        let mut parse = |_: &Path, text: &str| {
            calls.set(calls.get() + 1);
            match text {
                "skip" => Ok(None),
                "bad" => Err("bad file".to_string()),
                t => Ok(Some(t.to_string())),
            }
        };
        let got: Vec<String> = cache
            .load(dir.path(), &mut parse)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(got, ["a", "b"]);
        let again = cache.load(dir.path(), &mut parse);
        assert_eq!(again.len(), 2);
        assert_eq!(calls.get(), 3, "unchanged files are not parsed again");
        std::fs::remove_file(dir.path().join("a.json")).unwrap();
        assert_eq!(cache.load(dir.path(), &mut parse).len(), 1);
        assert_eq!(cache.seen.len(), 2, "removed files are forgotten");
    }

    #[test]
    fn invalid_files_are_kept_with_their_problems_until_they_change() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), "bad").unwrap();
        std::fs::write(dir.path().join("a.yaml"), "good").unwrap();
        let mut cache = PolicyDir::default();
        let parse = |_: &Path, text: &str| match text {
            "bad" => Err("b.yaml:1:1: bad".to_string()),
            t => Ok(Some(t.to_string())),
        };
        assert_eq!(cache.load(dir.path(), parse).len(), 1);
        assert_eq!(
            cache.invalid(),
            [(dir.path().join("b.yaml"), "b.yaml:1:1: bad".to_string())]
        );
        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        cache.load(dir.path(), parse);
        assert!(cache.invalid().is_empty());
    }
}
