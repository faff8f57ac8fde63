//! Scenario tests: every `policies/tests/*.yaml` is a policy document, `---`, then a series of ticks with
//! the expected decision at each. The runner plays the control loop: it builds an observation from the
//! tick's total load, calls `decide`, checks the outcome, records the history and applies the decision.
//!
//! Second document:
//! ```yaml
//! start: 4              # replicas at the first tick
//! capacity: 1.0         # per replica, in the metric's unit (CPU cores)
//! steps:
//!   - { at: 0s, load: 3.6, desired: 8, reason: scale_up }
//!   - { at: 15s, load: 3.6, not_ready: 2, missing: 1, desired: 8, reason: limited_by_rate }
//! ```
//! `load` is spread evenly over the ready replicas that report; the first `not_ready` replicas are not
//! ready and the next `missing` report nothing. Every metric of the policy is fed from the same load:
//! per-replica targets (`utilization`, `average`) get each reporting replica's share, service-level
//! targets (`value`, `below` in seconds) the whole of it. `absent: [NAME...]` on a step: the source
//! found no series for these metrics (`no_series`), and the decision's detail must say so.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use plimsoll_autoscaler::policy::{
    decide, parse_policy, History, Missing, Observation, Policy, ReplicaObservation, Sample, Scope,
    Target, Timestamp,
};
use saphyr::{LoadableYamlNode, Yaml};

const START: Timestamp = Timestamp(1_767_225_600_000);

struct Step {
    at: Duration,
    load: f64,
    not_ready: u32,
    missing: u32,
    desired: u32,
    reason: String,
    absent: Vec<String>,
}

fn field<'a>(node: &'a Yaml<'a>, key: &str, file: &str) -> &'a Yaml<'a> {
    node.as_mapping_get(key)
        .unwrap_or_else(|| panic!("{file}: missing `{key}`"))
}

fn number(node: &Yaml) -> f64 {
    node.as_floating_point()
        .or_else(|| node.as_integer().map(|i| i as f64))
        .expect("a number")
}

fn parse_steps(doc: &Yaml, file: &str) -> (u32, f64, Vec<Step>) {
    let start = field(doc, "start", file)
        .as_integer()
        .expect("start: integer") as u32;
    let capacity = number(field(doc, "capacity", file));
    let steps = field(doc, "steps", file)
        .as_sequence()
        .expect("steps: list")
        .iter()
        .map(|s| Step {
            at: humantime::parse_duration(field(s, "at", file).as_str().expect("at: duration"))
                .unwrap(),
            load: number(field(s, "load", file)),
            not_ready: s
                .as_mapping_get("not_ready")
                .and_then(|n| n.as_integer())
                .unwrap_or(0) as u32,
            missing: s
                .as_mapping_get("missing")
                .and_then(|n| n.as_integer())
                .unwrap_or(0) as u32,
            desired: field(s, "desired", file)
                .as_integer()
                .expect("desired: integer") as u32,
            reason: field(s, "reason", file)
                .as_str()
                .expect("reason: string")
                .to_string(),
            absent: s
                .as_mapping_get("absent")
                .and_then(|n| n.as_sequence())
                .map(|names| {
                    names
                        .iter()
                        .map(|n| n.as_str().expect("absent: metric names").to_string())
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    (start, capacity, steps)
}

fn observation(policy: &Policy, current: u32, capacity: f64, step: &Step) -> Observation {
    let reporting = current.saturating_sub(step.not_ready + step.missing).max(1);
    let share = step.load / f64::from(reporting);
    let replicas = (0..current)
        .map(|i| {
            let ready = i >= step.not_ready;
            let reports = ready && i >= step.not_ready + step.missing;
            let mut metrics = BTreeMap::new();
            let mut caps = BTreeMap::new();
            for m in &policy.metrics {
                caps.insert(m.name.clone(), capacity);
                if reports && m.scope() == Scope::Replica && !step.absent.contains(&m.name) {
                    let sample = match m.target {
                        Target::Utilization(_) => Sample::Usage {
                            used: share,
                            capacity,
                        },
                        _ => Sample::Value(share),
                    };
                    metrics.insert(m.name.clone(), sample);
                }
            }
            ReplicaObservation {
                id: format!("r{i}"),
                ready,
                unhealthy: false,
                metrics,
                capacity: caps,
            }
        })
        .collect();
    Observation {
        service: policy.service.clone(),
        current_replicas: current,
        replicas,
        service_metrics: policy
            .metrics
            .iter()
            .filter(|m| m.scope() == Scope::Service && !step.absent.contains(&m.name))
            .map(|m| (m.name.clone(), step.load))
            .collect(),
        missing: step
            .absent
            .iter()
            .map(|n| (n.clone(), Missing::NoSeries))
            .collect(),
    }
}

fn run_scenario(path: &Path) -> Vec<String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).unwrap();
    let (policy_text, steps_text) = text
        .split_once("\n---\n")
        .unwrap_or_else(|| panic!("{file}: no `---`"));
    let policy = parse_policy(&file, policy_text).unwrap_or_else(|e| panic!("{e}"));
    let docs = Yaml::load_from_str(steps_text).unwrap();
    let (start, capacity, steps) = parse_steps(&docs[0], &file);
    let mut history = History::default();
    let mut current = start;
    let mut failures = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let now = START.plus(step.at);
        let d = decide(
            &policy,
            &observation(&policy, current, capacity, step),
            &history,
            now,
        );
        for name in &step.absent {
            let m = d.metrics.iter().find(|m| &m.name == name);
            if m.and_then(|m| m.missing) != Some(Missing::NoSeries) {
                failures.push(format!(
                    "{file} step {}: metric {name} should be missing (no_series), got {m:?}",
                    i + 1
                ));
            }
        }
        if d.desired != step.desired || d.reason.as_str() != step.reason {
            failures.push(format!(
                "{file} step {} (at {}): expected {} {}, got {} {} (recommendation {:?})",
                i + 1,
                humantime::format_duration(step.at),
                step.desired,
                step.reason,
                d.desired,
                d.reason,
                d.recommendation
            ));
        }
        history.record(&policy, &d, now);
        current = d.desired;
    }
    failures
}

#[test]
fn scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the scenario files in {}",
        dir.display()
    );
    let failures: Vec<String> = files.iter().flat_map(|f| run_scenario(f)).collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
