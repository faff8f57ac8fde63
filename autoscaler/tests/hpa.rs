//! The Kubernetes HPA's own test tables, replayed through `decide`: `tests/hpa/*.yaml` are the cases of
//! `replica_calculator_test.go` and `horizontal_test.go` transcribed as data, each with its source test's
//! name; the header of each file says how a case becomes a policy, an observation and a history. Cases
//! that have no Plimsoll equivalent are listed under `not_applicable` with the reason, and a `deviation`
//! states where Plimsoll deliberately decides otherwise (the replay then checks Plimsoll's figure).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use plimsoll_autoscaler::policy::{
    decide, Behavior, Decision, History, MetricSpec, Observation, Policy, Predictive, RateLimit,
    RatePolicy, ReplicaObservation, Sample, ScalingRules, Select, Target, TimedReplicas, Timestamp,
    Tolerance,
};
use saphyr::{LoadableYamlNode, Yaml};

const NOW: Timestamp = Timestamp(1_767_225_600_000);

/// One table entry, with the file and test name for messages.
struct Case<'a> {
    file: &'a str,
    test: String,
    node: &'a Yaml<'a>,
}

impl<'a> Case<'a> {
    fn get(&self, key: &str) -> Option<&'a Yaml<'a>> {
        self.node.as_mapping_get(key)
    }

    fn fail(&self, what: &str) -> ! {
        panic!("{}: {}: {what}", self.file, self.test)
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.get(key)
            .map(|n| n.as_integer().unwrap_or_else(|| self.fail(key)))
    }

    fn expect(&self) -> Expect<'a> {
        let e = self.get("expect").unwrap_or_else(|| self.fail("no expect"));
        Expect {
            node: e,
            deviation: self.get("deviation"),
        }
    }
}

/// What a case expects, with Plimsoll's own figure where it deviates.
struct Expect<'a> {
    node: &'a Yaml<'a>,
    deviation: Option<&'a Yaml<'a>>,
}

impl Expect<'_> {
    fn replicas(&self) -> Option<i64> {
        self.deviation
            .and_then(|d| d.as_mapping_get("replicas"))
            .or_else(|| self.node.as_mapping_get("replicas"))
            .and_then(|n| n.as_integer())
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.node.as_mapping_get(key).map(number)
    }

    /// The Plimsoll reasons that match the expectation: the deviation's, or the HPA condition's.
    fn reasons(&self) -> Option<Vec<&str>> {
        if let Some(r) = self
            .deviation
            .and_then(|d| d.as_mapping_get("reason"))
            .and_then(|r| r.as_str())
        {
            return Some(vec![r]);
        }
        let condition = self.node.as_mapping_get("condition")?.as_str()?;
        Some(match condition {
            "TooManyReplicas" => vec!["clamped_to_max"],
            "TooFewReplicas" => vec!["clamped_to_min"],
            "ScaleUpLimit" | "ScaleDownLimit" => vec!["limited_by_rate"],
            "ScaleDownStabilized" => vec!["stabilized"],
            "ScalingDisabled" => vec!["scaling_disabled"],
            c if c.starts_with("FailedGet") => vec!["missing_data_hold"],
            "ReadyForNewScale" => vec!["within_tolerance", "steady"],
            "DesiredWithinRange" => vec!["scale_up", "scale_down", "within_tolerance", "steady"],
            other => panic!("unknown HPA condition {other}"),
        })
    }
}

fn number(n: &Yaml) -> f64 {
    n.as_floating_point()
        .or_else(|| n.as_integer().map(|i| i as f64))
        .expect("a number")
}

fn duration(n: &Yaml) -> Duration {
    humantime::parse_duration(n.as_str().expect("a duration like 60s")).expect("a duration")
}

fn list<'a>(n: Option<&'a Yaml<'a>>) -> &'a [Yaml<'a>] {
    n.map(|n| n.as_sequence().expect("a list").as_slice())
        .unwrap_or(&[])
}

/// Metric kinds as the HPA tests name them, and what each becomes in a Plimsoll policy.
const KINDS: [&str; 6] = [
    "utilization",
    "average",
    "object_value",
    "external_value",
    "object_average",
    "external_average",
];

struct Metric {
    kind: &'static str,
    /// The target in the test's unit (percent or milli-units).
    target: f64,
    /// The metric's source failed: no data.
    error: bool,
}

impl Metric {
    fn name(&self) -> &'static str {
        match self.kind {
            "utilization" => "cpu",
            "average" => "qps",
            "object_value" => "object_qps",
            "external_value" => "external_qps",
            "object_average" => "object_qps_per_pod",
            _ => "external_qps_per_pod",
        }
    }

    fn spec(&self) -> MetricSpec {
        let units = self.target / 1000.0;
        let target = match self.kind {
            "utilization" => Target::Utilization(self.target as u32),
            "average" => Target::Average(units),
            // GetObjectMetricReplicas / GetExternalMetricReplicas: ratio x ready replicas, which is what
            // Plimsoll's `below` computes.
            "object_value" | "external_value" => Target::Below(Duration::from_secs_f64(units)),
            _ => Target::Value(units),
        };
        MetricSpec::new(self.name(), target)
    }
}

fn metrics(case: &Case) -> Vec<Metric> {
    let one = |node: &Yaml, error: bool| {
        let kind = KINDS
            .into_iter()
            .find(|k| node.as_mapping_get(k).is_some())
            .unwrap_or_else(|| case.fail("no target"));
        Metric {
            kind,
            target: number(node.as_mapping_get(kind).unwrap()),
            error,
        }
    };
    match case.get("metrics") {
        Some(ms) => list(Some(ms))
            .iter()
            .map(|m| {
                let error = m
                    .as_mapping_get("error")
                    .and_then(|e| e.as_bool())
                    .unwrap_or(false);
                one(m, error)
            })
            .collect(),
        None => vec![one(case.node, false)],
    }
}

/// Builds the observation the HPA test's fake clients describe (see the files' headers).
fn observation(case: &Case, file: &Yaml, current: u32, metrics: &[Metric]) -> Observation {
    let containers = file
        .as_mapping_get("containers")
        .and_then(|c| c.as_integer())
        .expect("containers") as f64;
    let requests: Option<Vec<f64>> = case
        .get("requests")
        .map(|r| list(Some(r)).iter().map(number).collect());
    let levels: Vec<f64> = list(case.get("levels")).iter().map(number).collect();
    let container_levels: Vec<Vec<f64>> = list(case.get("container_levels"))
        .iter()
        .map(|l| list(Some(l)).iter().map(number).collect())
        .collect();
    let container = case.int("container").map(|c| c as usize);
    let flag = |key: &str, i: usize, default: bool| {
        list(case.get(key))
            .get(i)
            .map_or(default, |b| b.as_bool().expect("true or false"))
    };
    let word = |key: &str, i: usize, default: &'static str| -> String {
        list(case.get(key)).get(i).map_or(default.to_string(), |w| {
            w.as_str().expect("a word").to_string()
        })
    };
    let phases = list(case.get("phase")).len();
    // replica_calculator_test.go lists `currentReplicas` pods (more if failed ones are described);
    // horizontal_test.go one per CPU request, else `statusReplicas`.
    let pods = match file.as_mapping_get("pods").and_then(|p| p.as_str()) {
        Some("current") => (current as usize).max(phases),
        _ => requests.as_ref().map_or_else(
            || case.int("status").unwrap_or(i64::from(current)) as usize,
            Vec::len,
        ),
    };
    let pod_names = list(case.get("pod_names"));

    let mut replicas = Vec::new();
    for i in 0..pods {
        if word("phase", i, "Running") == "Failed" || flag("deleted", i, false) {
            continue;
        }
        let ready = word("phase", i, "Running") == "Running"
            && flag("readiness", i, true)
            && word("start", i, "cool") != "hot";
        // A metric sample named after a pod that does not exist belongs to no replica.
        let known = pod_names
            .get(i)
            .is_none_or(|n| n.as_str() == Some(&format!("test-pod-{i}")));
        let request = requests.as_ref().and_then(|r| r.get(i).copied());
        let mut sample_metrics = BTreeMap::new();
        let mut capacity = BTreeMap::new();
        for m in metrics.iter().filter(|m| !m.error) {
            match m.kind {
                "utilization" => {
                    let (level, cap) = match container {
                        Some(c) if !container_levels.is_empty() => (
                            container_levels.get(i).and_then(|l| l.get(c - 1)).copied(),
                            request,
                        ),
                        Some(_) => (levels.get(i).copied(), request),
                        None => (
                            levels.get(i).map(|l| l * containers),
                            request.map(|r| r * containers),
                        ),
                    };
                    match level.filter(|_| known) {
                        Some(l) => {
                            sample_metrics.insert(
                                m.name().to_string(),
                                Sample::Usage {
                                    used: l / 1000.0,
                                    capacity: cap.unwrap_or(0.0),
                                },
                            );
                        }
                        None => {
                            if let Some(c) = cap {
                                capacity.insert(m.name().to_string(), c);
                            }
                        }
                    }
                }
                "average" => {
                    if let Some(l) = levels.get(i).filter(|_| known) {
                        sample_metrics.insert(m.name().to_string(), Sample::Value(l / 1000.0));
                    }
                }
                _ => {}
            }
        }
        replicas.push(ReplicaObservation {
            id: format!("test-pod-{i}"),
            ready,
            unhealthy: false,
            metrics: sample_metrics,
            capacity,
        });
    }
    let service_metrics = metrics
        .iter()
        .filter(|m| !m.error)
        .filter_map(|m| {
            let value = match m.kind {
                "object_value" | "object_average" => levels.first().copied()?,
                "external_value" | "external_average" => levels.iter().sum(),
                _ => return None,
            };
            Some((m.name().to_string(), value / 1000.0))
        })
        .collect();
    Observation {
        service: "test-rc".into(),
        current_replicas: current,
        replicas,
        service_metrics,
        missing: Default::default(),
    }
}

fn tolerance(case: &Case) -> Tolerance {
    match case.get("tolerance") {
        Some(t) => Tolerance {
            up: number(t.as_mapping_get("up").expect("up")),
            down: number(t.as_mapping_get("down").expect("down")),
        },
        None => Tolerance::symmetric(0.1),
    }
}

/// generateScalingRules(pods, podsPeriod, percent, percentPeriod, stabilizationWindow), or the HPA's
/// defaults for a direction the case leaves out.
fn rules(node: Option<&Yaml>, default: ScalingRules) -> ScalingRules {
    let Some(n) = node else { return default };
    let get = |k: &str| n.as_mapping_get(k);
    let mut policies = Vec::new();
    if let Some(p) = get("pods") {
        policies.push(RatePolicy {
            limit: RateLimit::Replicas(p.as_integer().unwrap() as u32),
            period: duration(get("pods_period").expect("pods_period")),
        });
    }
    if let Some(p) = get("percent") {
        policies.push(RatePolicy {
            limit: RateLimit::Percent(p.as_integer().unwrap() as u32),
            period: duration(get("percent_period").expect("percent_period")),
        });
    }
    ScalingRules {
        stabilization: get("stabilization").map_or(Duration::ZERO, duration),
        cooldown: Duration::ZERO,
        select: match get("select").and_then(|s| s.as_str()) {
            Some("min") => Select::Min,
            _ => Select::Max,
        },
        policies,
    }
}

fn policy(
    min: u32,
    max: u32,
    tolerance: Tolerance,
    metrics: &[Metric],
    behavior: Behavior,
) -> Policy {
    Policy {
        service: "test-rc".into(),
        min,
        max,
        tolerance,
        metrics: metrics.iter().map(Metric::spec).collect(),
        behavior,
        predictive: Predictive::default(),
        fallback: None,
        initialization: Duration::ZERO,
        interval: None,
    }
}

fn timed(n: Option<&Yaml>, key: &str) -> Vec<TimedReplicas> {
    list(n)
        .iter()
        .map(|e| TimedReplicas {
            at: NOW.minus(duration(e.as_mapping_get("age").expect("age"))),
            replicas: e
                .as_mapping_get(key)
                .and_then(|r| r.as_integer())
                .expect(key) as u32,
        })
        .collect()
}

/// Checks replicas, level (in the test's unit: percent or milli-units) and reason; returns what differs.
fn check(case: &Case, d: &Decision, replicas: Option<u32>, level: Option<f64>) -> Vec<String> {
    let e = case.expect();
    let mut wrong = Vec::new();
    if let Some(want) = e.replicas() {
        if replicas.map(i64::from) != Some(want) {
            wrong.push(format!("replicas: expected {want}, got {replicas:?}"));
        }
    }
    for key in ["utilization", "usage"] {
        if let Some(want) = e.number(key) {
            let ok = level.is_some_and(|got| (got - want).abs() <= 0.5 + want.abs() * 1e-12);
            if !ok {
                wrong.push(format!("{key}: expected {want}, got {level:?}"));
            }
        }
    }
    if let Some(reasons) = e.reasons() {
        if !reasons.contains(&d.reason.as_str()) {
            wrong.push(format!(
                "reason: expected one of {reasons:?}, got {}",
                d.reason
            ));
        }
    }
    if let Some(err) = e.node.as_mapping_get("error") {
        if d.metrics.iter().any(|m| m.proposal.is_some()) {
            wrong.push(format!(
                "the HPA fails ({}); Plimsoll's metric voted {:?}",
                err.as_str().unwrap_or_default(),
                d.metrics.first().and_then(|m| m.proposal)
            ));
        }
    }
    wrong
}

/// replica_calculator.yaml: the metric's vote, with no bounds and no behavior in the way.
fn replica_calculator(case: &Case, file: &Yaml) -> Vec<String> {
    let current = case.int("current").expect("current") as u32;
    let ms = metrics(case);
    let p = policy(
        1,
        i32::MAX as u32,
        tolerance(case),
        &ms,
        Behavior::hpa_default(),
    );
    let d = decide(
        &p,
        &observation(case, file, current, &ms),
        &History::default(),
        NOW,
    );
    let m = &d.metrics[0];
    // Plimsoll shows utilization in percent and the rest in units; the tests use milli-units.
    let level = m.current.map(|l| {
        if ms[0].kind == "utilization" {
            l
        } else {
            l * 1000.0
        }
    });
    check(case, &d, m.proposal, level)
}

/// horizontal.yaml: the whole decision.
fn horizontal(case: &Case, file: &Yaml) -> Vec<String> {
    let spec = case.int("spec").expect("spec") as u32;
    let ms = metrics(case);
    let behavior = Behavior {
        scale_up: rules(case.get("scale_up"), ScalingRules::hpa_default_up()),
        scale_down: rules(case.get("scale_down"), ScalingRules::hpa_default_down()),
    };
    let p = policy(
        case.int("min").expect("min") as u32,
        case.int("max").expect("max") as u32,
        tolerance(case),
        &ms,
        behavior,
    );
    let history = match case.get("recommendations") {
        Some(r) => History {
            recommendations: timed(Some(r), "replicas"),
            ..History::default()
        },
        None => History::first_seen(spec, NOW),
    };
    let d = decide(&p, &observation(case, file, spec, &ms), &history, NOW);
    let level = d
        .metrics
        .iter()
        .find(|m| m.name == "cpu")
        .and_then(|m| m.current);
    check(case, &d, Some(d.desired), level)
}

/// behavior.yaml: a metric that recommends exactly `desired`, then behavior.
fn behavior(case: &Case) -> Vec<String> {
    let current = case.int("current").expect("current") as u32;
    let desired = case.int("desired").expect("desired") as f64;
    let behavior = if case.get("only").is_some() {
        let never_binds = vec![RatePolicy {
            limit: RateLimit::Replicas(1_000_000),
            period: Duration::from_secs(15),
        }];
        let window = |k: &str| case.get(k).map_or(Duration::ZERO, duration);
        Behavior {
            scale_up: ScalingRules {
                stabilization: window("up_window"),
                cooldown: Duration::ZERO,
                select: Select::Max,
                policies: never_binds.clone(),
            },
            scale_down: ScalingRules {
                stabilization: window("down_window"),
                cooldown: Duration::ZERO,
                select: Select::Max,
                policies: never_binds,
            },
        }
    } else {
        Behavior {
            scale_up: rules(case.get("scale_up"), ScalingRules::hpa_default_up()),
            scale_down: rules(case.get("scale_down"), ScalingRules::hpa_default_down()),
        }
    };
    let metric = [Metric {
        kind: "object_average",
        target: 1000.0,
        error: false,
    }];
    let p = policy(
        case.int("min").unwrap_or(1) as u32,
        case.int("max").unwrap_or(1000) as u32,
        Tolerance::symmetric(0.1),
        &metric,
        behavior,
    );
    let obs = Observation {
        service: "test-rc".into(),
        current_replicas: current,
        replicas: Vec::new(),
        service_metrics: [(metric[0].name().to_string(), desired)].into(),
        missing: Default::default(),
    };
    let history = History {
        recommendations: timed(case.get("recommendations"), "replicas"),
        scale_up_events: timed(case.get("scale_up_events"), "change"),
        scale_down_events: timed(case.get("scale_down_events"), "change"),
        ..History::default()
    };
    let d = decide(&p, &obs, &history, NOW);
    if (p.min..=p.max).contains(&current) && d.recommendation != Some(desired as u32) {
        return vec![format!(
            "the replay's metric recommended {:?}, not {desired}",
            d.recommendation
        )];
    }
    check(case, &d, Some(d.desired), None)
}

/// Replays one file; returns (cases run, failures).
fn replay(name: &str) -> (usize, usize, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hpa")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let docs = Yaml::load_from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let file = &docs[0];
    let cases = list(file.as_mapping_get("cases"));
    let mut failures = Vec::new();
    let mut deviations = 0;
    for node in cases {
        let case = Case {
            file: name,
            test: node
                .as_mapping_get("test")
                .and_then(|t| t.as_str())
                .expect("test")
                .to_string(),
            node,
        };
        if let Some(d) = case.get("deviation") {
            deviations += 1;
            assert!(
                d.as_mapping_get("why").and_then(|w| w.as_str()).is_some(),
                "{name}: {}: a deviation says why",
                case.test
            );
        }
        let wrong = match name {
            "replica_calculator.yaml" => replica_calculator(&case, file),
            "horizontal.yaml" => horizontal(&case, file),
            _ => behavior(&case),
        };
        failures.extend(
            wrong
                .into_iter()
                .map(|w| format!("{name}: {}: {w}", case.test)),
        );
    }
    for n in list(file.as_mapping_get("not_applicable")) {
        assert!(
            n.as_mapping_get("why").and_then(|w| w.as_str()).is_some(),
            "{name}: every case left out says why"
        );
    }
    (cases.len(), deviations, failures)
}

#[test]
fn hpa_test_tables() {
    let mut failures = Vec::new();
    for (file, at_least) in [
        ("replica_calculator.yaml", 60),
        ("horizontal.yaml", 60),
        ("behavior.yaml", 55),
    ] {
        let (cases, deviations, wrong) = replay(file);
        assert!(
            cases >= at_least,
            "{file}: {cases} cases, expected at least {at_least}"
        );
        eprintln!("{file}: {cases} cases replayed, {deviations} stated deviations");
        failures.extend(wrong);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
