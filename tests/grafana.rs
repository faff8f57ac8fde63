//! Plimsoll's Grafana dashboards and Prometheus alert rules (grafana/): the files checked as Grafana and
//! Prometheus read them, the rules unit-tested with promtool, and every query of every panel run against
//! a real Prometheus (Debian's package) scraping a real `plimsoll run` with a workload.

#[path = "grafana/model.rs"]
mod model;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use model::{Dashboard, Query};
use serde_json::Value;
use support::{Plimsoll, Prometheus};

/// Metrics the dashboards and rules use that Plimsoll does not expose yet, by name or name prefix, with
/// the feature that adds them. Their queries are parsed and checked but cannot return data in the test;
/// an entry whose metric appears in Plimsoll's output fails the test, so the list stays true.
const PENDING: &[(&str, &str)] = &[
    (
        "traces_span_metrics_",
        "RED metrics from OTLP spans (spanmetrics names): exposed once spans arrive (tests/traces.rs); this workload sends none",
    ),
    (
        "traces_service_graph_",
        "the service graph from OTLP spans (servicegraph names): exposed once spans arrive (tests/traces.rs); this workload sends none",
    ),
    ("plimsoll_nodes", "node autoscaling: issue 10, not landed"),
    (
        "plimsoll_node_scale_events_total",
        "node autoscaling: issue 10, not landed",
    ),
    (
        "plimsoll_pending_tasks",
        "node autoscaling: issue 10, not landed",
    ),
];

/// Metrics that appear only once something happens, which the test does not provoke: accepted
/// whether they are in the output or not.
const ON_EVENT: &[(&str, &str)] = &[
    (
        "plimsoll_collector_errors_total",
        "counted from the first failed read on; the test provokes none",
    ),
    (
        "plimsoll_scale_failures_total",
        "counted from the first failed scale on; the test provokes none",
    ),
];

/// Panels (dashboard uid, panel title) whose metrics exist but that cannot have data in this test.
/// An entry whose query does return data fails the test.
const NO_DATA: &[(&str, &str, &str)] = &[
    (
        "plimsoll-services",
        "$business_counter",
        "no business series before issue 7's receivers (StatsD, OTLP metrics, scrape) land",
    ),
    (
        "plimsoll-services",
        "$business_gauge",
        "no business series before issue 7's receivers land",
    ),
    (
        "plimsoll-services",
        "$business_histogram",
        "no business series before issue 7's receivers land",
    ),
    (
        "plimsoll-autoscaler",
        "annotation Fallbacks",
        "the test's metric source never fails, so no fallback applies",
    ),
];

fn pending_reason(metric: &str) -> Option<&'static str> {
    PENDING
        .iter()
        .copied()
        .chain(machine_absent())
        .find(|(m, _)| {
            if m.ends_with('_') {
                metric.starts_with(m)
            } else {
                metric == *m
            }
        })
        .map(|(_, why)| why)
}

/// Metrics Plimsoll exposes only where the machine provides them.
fn machine_absent() -> Vec<(&'static str, &'static str)> {
    let mut v = Vec::new();
    // On cgroup v1, blkio counts IO per device; some virtual disks are counted by no cgroup (the root
    // cgroup's file then holds only "Total 0"), and then no container has container_fs_* series.
    let root_blkio =
        std::fs::read_to_string("/sys/fs/cgroup/blkio/blkio.throttle.io_service_bytes");
    if root_blkio.is_ok_and(|s| s.lines().all(|l| l.starts_with("Total"))) {
        v.push(("container_fs_", "this machine's blkio controller counts no block IO (root blkio.throttle.io_service_bytes is only \"Total 0\")"));
    }
    if !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        v.push((
            "container_pressure_",
            "container_pressure_* needs cgroup v2; this host has cgroup v1",
        ));
    }
    if !std::path::Path::new("/proc/pressure/cpu").exists() {
        v.push(("node_pressure_", "this kernel has no /proc/pressure (PSI)"));
    }
    v
}

// ------------------------------------------------------------------------------------------ files

#[test]
fn dashboards_are_valid_grafana_json_on_the_provisioned_datasource() {
    let uid = model::provisioned_datasource_uid();
    let dashboards = Dashboard::all();
    assert!(
        dashboards.len() >= 5,
        "Hosts, Containers, Services, Topology, Autoscaler"
    );
    let mut errors = Vec::new();
    let mut uids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    let placeholders = {
        let mut vars = model::builtins("1m");
        for d in &dashboards {
            for v in d.variables() {
                vars.insert(v["name"].as_str().unwrap().to_string(), "x".into());
            }
        }
        vars
    };
    for d in &dashboards {
        let j = &d.json;
        let file = d.file.file_name().unwrap().to_string_lossy().to_string();
        let mut err = |m: String| errors.push(format!("{file}: {m}"));
        if !uids.insert(d.uid().to_string()) || d.uid().is_empty() {
            err(format!("uid {:?} missing or not unique", d.uid()));
        }
        if !titles.insert(j["title"].as_str().unwrap_or_default().to_string()) {
            err("title not unique".into());
        }
        let schema = j["schemaVersion"].as_i64().unwrap_or(0);
        if !(36..=41).contains(&schema) {
            err(format!(
                "schemaVersion {schema}: Grafana 10/11's schema (36-41) expected"
            ));
        }
        if j["id"] != Value::Null {
            err("id must be null: Grafana assigns it on provisioning".into());
        }
        if !j["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "plimsoll"))
        {
            err("tag plimsoll missing (the dashboards link each other by it)".into());
        }
        if j["description"].as_str().unwrap_or_default().is_empty() {
            err("dashboard description missing".into());
        }

        // Panels: unique ids, a place on the grid that overlaps no other, a description, a unit, and
        // every query on the provisioned datasource.
        let mut ids = BTreeSet::new();
        let mut cells: BTreeMap<(i64, i64), String> = BTreeMap::new();
        for p in d.panels() {
            let title = p["title"].as_str().unwrap_or_default();
            let kind = p["type"].as_str().unwrap_or_default();
            match p["id"].as_i64() {
                Some(id) if ids.insert(id) => {}
                id => err(format!("panel {title:?}: id {id:?} missing or repeated")),
            }
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_i64(),
                g["y"].as_i64(),
                g["w"].as_i64(),
                g["h"].as_i64(),
            );
            match (x, y, w, h) {
                (Some(x), Some(y), Some(w), Some(h)) if w > 0 && h > 0 && x >= 0 && x + w <= 24 => {
                    for cx in x..x + w {
                        for cy in y..y + h {
                            if let Some(other) = cells.insert((cx, cy), title.to_string()) {
                                err(format!(
                                    "panel {title:?} overlaps {other:?} at x={cx} y={cy}"
                                ));
                                break;
                            }
                        }
                    }
                }
                _ => err(format!("panel {title:?}: bad gridPos {g}")),
            }
            if kind == "row" {
                continue;
            }
            if ![
                "timeseries",
                "stat",
                "table",
                "nodeGraph",
                "bargauge",
                "gauge",
            ]
            .contains(&kind)
            {
                err(format!("panel {title:?}: unexpected type {kind}"));
            }
            if title.is_empty() || p["description"].as_str().unwrap_or_default().is_empty() {
                err(format!("panel {title:?}: title and description required"));
            }
            if ["timeseries", "stat"].contains(&kind)
                && !p["fieldConfig"]["defaults"]["unit"].is_string()
            {
                err(format!("panel {title:?}: no unit"));
            }
            if p["datasource"]["uid"] != uid.as_str() {
                err(format!(
                    "panel {title:?}: datasource {} is not the provisioned {uid}",
                    p["datasource"]
                ));
            }
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                err(format!("panel {title:?}: no query"));
            }
            let mut refs = BTreeSet::new();
            for t in &targets {
                if t["datasource"]["uid"] != uid.as_str() {
                    err(format!(
                        "panel {title:?}: target datasource {} is not {uid}",
                        t["datasource"]
                    ));
                }
                if !refs.insert(t["refId"].as_str().unwrap_or_default().to_string()) {
                    err(format!("panel {title:?}: refId repeated"));
                }
            }
        }

        // Variables: on the datasource, label_values queries, each one used.
        let defined: BTreeSet<String> = d
            .variables()
            .iter()
            .map(|v| v["name"].as_str().unwrap_or_default().to_string())
            .collect();
        let mut used = BTreeSet::new();
        for v in d.variables() {
            let name = v["name"].as_str().unwrap_or_default();
            if v["datasource"]["uid"] != uid.as_str() {
                err(format!(
                    "variable {name}: datasource {} is not {uid}",
                    v["datasource"]
                ));
            }
            let q = model::variable_query(v);
            match model::label_values(&q) {
                Some((selector, _)) => {
                    used.extend(model::referenced_variables(&selector));
                    if let Err(e) = model::parse(&model::substitute(&selector, &placeholders)) {
                        err(format!("variable {name}: {selector}: {e}"));
                    }
                }
                None => err(format!(
                    "variable {name}: label_values(SELECTOR, LABEL) expected, got {q:?}"
                )),
            }
        }
        for a in d.annotations() {
            if a["datasource"]["uid"] != uid.as_str() {
                err(format!(
                    "annotation {}: datasource {} is not {uid}",
                    a["name"], a["datasource"]
                ));
            }
        }
        for p in d.panels() {
            if let Some(r) = p["repeat"].as_str() {
                used.insert(r.to_string());
            }
        }

        // Queries: every variable defined, valid PromQL once substituted, every metric known.
        for q in d.queries() {
            let vars = model::referenced_variables(&q.expr);
            for v in &vars {
                if !defined.contains(v) && !v.starts_with("__") {
                    err(format!(
                        "{}: ${v} is not a variable of this dashboard",
                        q.panel
                    ));
                }
            }
            used.extend(vars);
            match model::parse(&model::substitute(&q.expr, &placeholders)) {
                Ok(e) => {
                    let (names, unnamed) = model::metric_names(&e);
                    if names.is_empty() && unnamed == 0 {
                        err(format!("{}: selects no metric: {}", q.panel, q.expr));
                    }
                }
                Err(e) => err(format!("{}: invalid PromQL: {e}\n  {}", q.panel, q.expr)),
            }
        }
        for v in defined.difference(&used) {
            err(format!("variable {v} is used by no query"));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn provisioning_loads_the_dashboards_folder_that_the_readme_mounts() {
    let dir = model::root().join("provisioning/dashboards");
    let mut paths = Vec::new();
    for f in model::files(&dir, ".yaml") {
        for doc in model::yaml(&f) {
            for p in doc["providers"].as_array().into_iter().flatten() {
                assert_eq!(p["type"], "file", "{}", f.display());
                paths.push(
                    p["options"]["path"]
                        .as_str()
                        .expect("options.path")
                        .to_string(),
                );
            }
        }
    }
    assert_eq!(paths.len(), 1, "{paths:?}");
    let readme = std::fs::read_to_string(model::root().join("../README.md")).unwrap();
    assert!(
        readme.contains(&format!("grafana/dashboards:{}", paths[0])),
        "README's docker run / compose snippet must mount grafana/dashboards at {}",
        paths[0]
    );
    assert!(readme.contains("grafana/provisioning:/etc/grafana/provisioning"));
}

// ------------------------------------------------------------------------------------------ rules

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(model::root().join("prometheus"))
        .output()
        .expect(
            "promtool (Debian package prometheus) must be installed; tests/setup.sh installs it",
        );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn prometheus_configs_and_alert_rules_pass_promtool() {
    let dir = model::root().join("prometheus");
    let configs = model::files(&dir, ".yml");
    assert!(
        configs.len() >= 2,
        "a static and a Swarm prometheus.yml: {configs:?}"
    );
    for c in &configs {
        promtool(&["check", "config", c.to_str().unwrap()]);
    }
    let rules = model::files(&dir.join("rules"), ".yml");
    assert!(!rules.is_empty());
    for r in &rules {
        promtool(&["check", "rules", r.to_str().unwrap()]);
    }
    let tests = model::files(&dir.join("tests"), ".yml");
    for t in &tests {
        let out = promtool(&["test", "rules", t.to_str().unwrap()]);
        assert!(out.contains("SUCCESS"), "{out}");
    }

    // Every alert is documented, has a severity, and is unit-tested both firing and not firing.
    let mut fired = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for t in &tests {
        for doc in model::yaml(t) {
            for case in doc["tests"].as_array().into_iter().flatten() {
                for a in case["alert_rule_test"].as_array().into_iter().flatten() {
                    let name = a["alertname"].as_str().unwrap().to_string();
                    let n = a["exp_alerts"].as_array().map_or(0, |v| v.len());
                    // promtool compares the firing alerts exactly, so a case that fires also shows
                    // the case's other series staying quiet; a case expecting none shows `for` at work.
                    if n > 0 {
                        fired.insert(name);
                    } else {
                        quiet.insert(name);
                    }
                }
            }
        }
    }
    let mut errors = Vec::new();
    for (file, rule) in model::alert_rules() {
        let Some(name) = rule["alert"].as_str() else {
            continue;
        };
        let file = file.file_name().unwrap().to_string_lossy().to_string();
        if !["warning", "critical"]
            .contains(&rule["labels"]["severity"].as_str().unwrap_or_default())
        {
            errors.push(format!(
                "{file}: {name}: severity warning or critical required"
            ));
        }
        for a in ["summary", "description"] {
            if rule["annotations"][a]
                .as_str()
                .unwrap_or_default()
                .is_empty()
            {
                errors.push(format!("{file}: {name}: annotation {a} required"));
            }
        }
        if !fired.contains(name) || !quiet.contains(name) {
            errors.push(format!(
                "{file}: {name}: promtool tests must make it fire and expect it quiet"
            ));
        }
    }
    for required in [
        "PlimsollAutoscalerPinnedAtMax",
        "PlimsollScalingFailing",
        "PlimsollMetricSourceLost",
        "PlimsollCollectorDown",
        "PlimsollContainerOOM",
        "PlimsollContainerCPUThrottled",
        "PlimsollFilesystemFillingUp",
    ] {
        if !fired.contains(required) {
            errors.push(format!("alert {required} missing or untested"));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

// ------------------------------------------------------------------------------ real Prometheus

/// The workload: burns CPU against a small limit (0.05 CPU: throttled even when other processes
/// contend for the CPU, and scaled up by its policy), writes and reads a file on a bind mount with
/// direct IO (container_fs_*: IO through the container's own cgroup, not the page cache's flusher nor a
/// fuse-overlayfs daemon), and every 20 rounds starts a child that doubles a string until the kernel
/// OOM-kills it inside the memory limit (container_oom_events_total), the container living on.
const WORKLOAD: &str = "n=0; while :; do n=$((n+1)); if [ $((n % 20)) -eq 1 ]; then sh -c 'x=0123456789abcdef; while :; do x=$x$x; done'; fi; dd if=/dev/zero of=/data/$HOSTNAME bs=64k count=4 oflag=direct 2>/dev/null; dd if=/data/$HOSTNAME of=/dev/null bs=64k iflag=direct 2>/dev/null; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; done";

/// Rate windows as Grafana builds `$__rate_interval` on a 1 s scrape interval, with margin.
const RATE_INTERVAL: &str = "10s";

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The result of an instant query at now.
fn instant(prom: &Prometheus, q: &str) -> Result<Vec<Value>, String> {
    let now = unix_now().to_string();
    let data = prom.api("/api/v1/query", &[("query", q), ("time", &now)])?;
    Ok(data["result"].as_array().cloned().unwrap_or_default())
}

/// A panel's query as Grafana runs it: instant at now, or over the range since `start` at a 2 s step.
fn run(prom: &Prometheus, q: &str, is_instant: bool, start: f64) -> Result<Vec<Value>, String> {
    if is_instant {
        return instant(prom, q);
    }
    let (s, e) = (start.to_string(), unix_now().to_string());
    prom.api(
        "/api/v1/query_range",
        &[("query", q), ("start", &s), ("end", &e), ("step", "2")],
    )
    .map(|d| d["result"].as_array().cloned().unwrap_or_default())
}

fn wait_until(what: &str, timeout: Duration, prom: &Prometheus, cond: impl FnMut() -> bool) {
    prom.wait_until(what, timeout, cond)
}

/// Template variables of one dashboard resolved on the real data as Grafana resolves them, one value
/// each: the first value that names the workload (its service, its containers, the Plimsoll target),
/// else the first value; with no value, Grafana's "All" (`.*`) where the variable has it, else empty.
fn resolve_variables(
    prom: &Prometheus,
    d: &Dashboard,
    prefer: &[&str],
    start: f64,
) -> BTreeMap<String, String> {
    let mut vars = model::builtins(RATE_INTERVAL);
    let (start, end) = (start.to_string(), unix_now().to_string());
    for v in d.variables() {
        let name = v["name"].as_str().unwrap().to_string();
        let (selector, label) = model::label_values(&model::variable_query(v)).unwrap();
        let selector = model::substitute(&selector, &vars);
        let values: Vec<String> = prom
            .api(
                &format!("/api/v1/label/{label}/values"),
                &[("match[]", &selector), ("start", &start), ("end", &end)],
            )
            .unwrap_or_else(|e| panic!("{}: variable {name}: {selector}: {e}", d.uid()))
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let chosen = values
            .iter()
            .find(|v| prefer.iter().any(|p| v.contains(p)))
            .or(values.first())
            .map(|v| model::regex_escape(v));
        let value = match chosen {
            Some(v) => v,
            None if v["includeAll"] == true => v["allValue"].as_str().unwrap_or(".*").to_string(),
            None => String::new(),
        };
        vars.insert(name, value);
    }
    vars
}

#[test]
fn every_panel_query_returns_data_from_a_real_prometheus() {
    let service = support::unique("grafana");
    let data = tempfile::tempdir().unwrap();
    let mount = format!("type=bind,src={},dst=/data", data.path().display());
    let _svc = support::Service::create_cmd(
        &service,
        1,
        &[
            "--limit-cpu",
            "0.05",
            "--limit-memory",
            "48m",
            "--mount",
            &mount,
        ],
        &["sh", "-c", WORKLOAD],
    );
    let policies = support::policy_dir(&format!(
        "service: {service}\nmin: 1\nmax: 2\nmetrics:\n  - name: cpu\n    target: {{ utilization: 50 }}\n"
    ));
    let token = policies.path().join("token");
    std::fs::write(&token, "grafana-test-token\n").unwrap();
    // The token file sits beside the policy (not a policy: it has no .yaml/.json extension).
    let p = Plimsoll::run(
        policies.path(),
        &[
            "--interval",
            "1s",
            "--api-token-file",
            token.to_str().unwrap(),
        ],
    );
    let rules = model::root().join("prometheus/rules");
    let prom = Prometheus::start_config(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}/*.yml\nscrape_configs:\n  - job_name: plimsoll\n    static_configs:\n      - targets: ['{}']\n",
        rules.display(),
        p.addr
    ));
    let start = unix_now();
    let sel = format!("service=\"{service}\"");

    // The workload goes through what the dashboards chart: a scale-up to max, its convergence, an OOM
    // kill, disk writes; then a pause, so that holds are charted too.
    p.wait_for("a scale-up to max", Duration::from_secs(120), |p| {
        p.first_scale(&service, true, 0).is_some()
    });
    p.wait_for(
        "the convergence of the scale-up",
        Duration::from_secs(60),
        |p| {
            p.get("/metrics")
                .is_ok_and(|(_, m)| m.contains("plimsoll_convergence_seconds"))
        },
    );
    wait_until(
        "an OOM kill counted",
        Duration::from_secs(120),
        &prom,
        || {
            instant(
                &prom,
                &format!("sum(container_oom_events_total{{{sel}}}) > 0"),
            )
            .is_ok_and(|r| !r.is_empty())
        },
    );
    // At max with the load on, nearly every decision is clamped to max: the pinned-at-max rule matches
    // the workload (pending; its `for` is 10 minutes), and the scaling-failing one does not, since
    // the scale-up took effect.
    let active = |alert: &str| {
        prom.api("/api/v1/alerts", &[]).unwrap()["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| {
                a["labels"]["alertname"] == alert && a["labels"]["service"] == service.as_str()
            })
    };
    wait_until(
        "PlimsollAutoscalerPinnedAtMax for the workload",
        Duration::from_secs(120),
        &prom,
        || active("PlimsollAutoscalerPinnedAtMax"),
    );
    assert!(
        !active("PlimsollScalingFailing"),
        "the scale-up took effect"
    );
    let (code, body) = support::http_request(
        p.addr,
        "POST",
        &format!("/api/v1/policies/{service}/pause"),
        &[("Authorization", "Bearer grafana-test-token")],
        "",
    )
    .unwrap();
    assert_eq!(code, 200, "pause: {body}");
    wait_until(
        "paused holds scraped",
        Duration::from_secs(60),
        &prom,
        || {
            instant(
                &prom,
                &format!("plimsoll_decisions_total{{{sel}, reason=\"paused\"}}"),
            )
            .is_ok_and(|r| !r.is_empty())
        },
    );
    std::thread::sleep(Duration::from_secs(3)); // a few scrapes past the pause, for the rate windows

    // The alert rules load into the real Prometheus, evaluate without error, and the container rules
    // match the workload: it is OOM-killed and throttled (pending: `for` is longer than the test).
    let groups = prom.api("/api/v1/rules", &[]).unwrap();
    for g in groups["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            assert_ne!(
                r["health"], "err",
                "rule {} fails on real data: {}",
                r["name"], r["lastError"]
            );
        }
    }
    for alert in ["PlimsollContainerOOM", "PlimsollContainerCPUThrottled"] {
        wait_until(
            &format!("{alert} for the workload"),
            Duration::from_secs(120),
            &prom,
            || active(alert),
        );
    }

    // Every metric the dashboards and rules use is in Plimsoll's output, or listed in PENDING.
    let exposed: BTreeSet<String> = prom
        .api("/api/v1/label/__name__/values", &[])
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut failures = Vec::new();
    // Why a query cannot have data (a metric absent with a listed reason), or None; unlisted absent
    // metrics and listed ones that are present are failures.
    let check_metrics = |what: &str,
                         names: &BTreeSet<String>,
                         failures: &mut Vec<String>|
     -> Option<&'static str> {
        let mut absent = None;
        for n in names {
            let present = exposed.contains(n);
            if let Some((_, why)) = ON_EVENT.iter().find(|(m, _)| m == n) {
                if !present {
                    absent = Some(*why);
                }
                continue;
            }
            match (pending_reason(n), present) {
                (Some(why), true) => failures.push(format!("{what}: {n} is exposed although listed as absent ({why}): update PENDING or machine_absent in tests/grafana.rs")),
                (Some(why), false) => absent = Some(why),
                (None, true) => {}
                (None, false) => failures.push(format!("{what}: {n} is not in Plimsoll's output")),
            }
        }
        absent
    };
    for (file, rule) in model::alert_rules() {
        let expr = rule["expr"].as_str().unwrap_or_default();
        let (names, _) = model::metric_names(&model::parse(expr).unwrap());
        let what = format!(
            "{} rule {}",
            file.file_name().unwrap().to_string_lossy(),
            rule["alert"]
        );
        check_metrics(&what, &names, &mut failures);
    }

    // Every query of every panel, variables substituted, returns data.
    let mut exempt = Vec::new();
    let mut ran = 0;
    let prefer = [service.as_str(), &p.addr.to_string()].map(String::from);
    let prefer: Vec<&str> = prefer.iter().map(|s| s.as_str()).collect();
    for d in Dashboard::all() {
        let vars = resolve_variables(&prom, &d, &prefer, start);
        for Query {
            dashboard,
            panel,
            panel_type,
            expr,
            instant: is_instant,
        } in d.queries()
        {
            let what = format!("{dashboard} / {panel}");
            let q = model::substitute(&expr, &vars);
            let parsed = match model::parse(&q) {
                Ok(e) => e,
                Err(e) => {
                    failures.push(format!(
                        "{what}: invalid PromQL once substituted: {e}\n  {q}"
                    ));
                    continue;
                }
            };
            let (names, _) = model::metric_names(&parsed);
            let absent = check_metrics(&what, &names, &mut failures);
            let result = run(&prom, &q, is_instant, start);
            ran += 1;
            let result = match result {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{what}: Prometheus rejects the query: {e}\n  {q}"));
                    continue;
                }
            };
            let listed = NO_DATA
                .iter()
                .find(|(u, t, _)| *u == dashboard && *t == panel);
            match (result.is_empty(), absent, listed) {
                (false, _, Some(_)) => failures.push(format!(
                    "{what}: has data now: remove it from NO_DATA in tests/grafana.rs"
                )),
                (false, _, None) => {
                    // The node graph panel takes a frame with id, source and target fields as its edges.
                    if panel_type == "nodeGraph" {
                        for l in ["id", "source", "target"] {
                            if result.iter().any(|s| s["metric"][l].is_null()) {
                                failures
                                    .push(format!("{what}: node graph series without label {l}"));
                            }
                        }
                    }
                }
                (true, Some(why), _) => exempt.push(format!("{what}: {why}")),
                (true, None, Some((_, _, why))) => exempt.push(format!("{what}: {why}")),
                (true, None, None) => failures.push(format!("{what}: no data\n  {q}")),
            }
        }
    }
    eprintln!(
        "{ran} queries run; without data, as listed:\n  {}",
        exempt.join("\n  ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The Hosts dashboard and the disk alerts are written on node_exporter's names, so they must work on
/// node_exporter itself: every node_* query returns data from a real node_exporter, the filesystem
/// ones included that Plimsoll does not expose yet (PENDING), and the rules evaluate without error.
#[test]
fn the_hosts_dashboard_and_disk_alerts_work_on_node_exporter() {
    let exporter = support::NodeExporter::start();
    let rules = model::root().join("prometheus/rules");
    let prom = Prometheus::start_config(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}/*.yml\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{}']\n",
        rules.display(),
        exporter.addr
    ));
    let start = unix_now();
    wait_until(
        "a few scrapes of node_exporter",
        Duration::from_secs(30),
        &prom,
        || {
            instant(&prom, "count_over_time(node_boot_time_seconds[1m]) >= 4")
                .is_ok_and(|r| !r.is_empty())
        },
    );
    let hosts = Dashboard::all()
        .into_iter()
        .find(|d| d.uid() == "plimsoll-hosts")
        .unwrap();
    let vars = resolve_variables(&prom, &hosts, &[&exporter.addr.to_string()], start);
    let mut failures = Vec::new();
    let mut filesystem_panels = 0;
    for q in hosts.queries() {
        let expr = model::substitute(&q.expr, &vars);
        let (names, _) = model::metric_names(&model::parse(&expr).unwrap());
        if names.iter().any(|n| !n.starts_with("node_")) {
            continue; // the collector's own health: Plimsoll only
        }
        filesystem_panels += names.iter().any(|n| n.starts_with("node_filesystem_")) as usize;
        match run(&prom, &expr, q.instant, start) {
            Ok(r) if !r.is_empty() => {}
            Ok(_) => failures.push(format!("{}: no data from node_exporter\n  {expr}", q.panel)),
            Err(e) => failures.push(format!("{}: {e}\n  {expr}", q.panel)),
        }
    }
    assert!(filesystem_panels >= 3, "the filesystem panels were not run");
    wait_until("a rule evaluation", Duration::from_secs(30), &prom, || {
        prom.api("/api/v1/rules", &[]).unwrap()["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| {
                g["lastEvaluation"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("0001"))
            })
    });
    for g in prom.api("/api/v1/rules", &[]).unwrap()["groups"]
        .as_array()
        .unwrap()
    {
        for r in g["rules"].as_array().unwrap() {
            if r["health"] == "err" {
                failures.push(format!("rule {}: {}", r["name"], r["lastError"]));
            }
        }
    }
    // The filesystem rules select real filesystems (their first condition holds for none here, or
    // the machine's disk is nearly full, but the selectors must match node_exporter's labels).
    let fs = instant(
        &prom,
        r#"node_filesystem_avail_bytes{fstype!="", mountpoint!=""} / node_filesystem_size_bytes{fstype!="", mountpoint!=""} and node_filesystem_readonly{fstype!="", mountpoint!=""} == 0"#,
    )
    .unwrap();
    assert!(
        !fs.is_empty(),
        "the disk alerts' selectors match no writable filesystem of node_exporter"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The series of the OTel collector's spanmetrics and servicegraph connectors (names, labels and default
/// buckets of ../shared/notes/signals.md) and business series with a `service` label, as text exposition
/// after `n` scrapes: a frontend called by users and calling a backend and an uninstrumented database.
fn connector_shapes(n: u64) -> String {
    const SPAN_MS: &[f64] = &[
        2., 4., 6., 8., 10., 50., 100., 200., 400., 800., 1000., 1400., 2000., 5000., 10000.,
        15000.,
    ];
    const GRAPH_S: &[f64] = &[
        0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1., 1.4, 2., 5., 10., 15.,
    ];
    let mut out = String::new();
    fn histogram(
        out: &mut String,
        name: &str,
        labels: &str,
        bounds: &[f64],
        count: u64,
        typical: f64,
    ) {
        // Half of the observations at `typical`, the rest spread one bucket above.
        for b in bounds {
            let c = if *b >= typical * 2.0 {
                count
            } else if *b >= typical {
                count / 2
            } else {
                0
            };
            out.push_str(&format!("{name}_bucket{{{labels},le=\"{b}\"}} {c}\n"));
        }
        out.push_str(&format!("{name}_bucket{{{labels},le=\"+Inf\"}} {count}\n"));
        out.push_str(&format!(
            "{name}_sum{{{labels}}} {}\n",
            count as f64 * typical * 1.5
        ));
        out.push_str(&format!("{name}_count{{{labels}}} {count}\n"));
    }
    for (service, span, ok, errors, ms) in [
        ("frontend", "GET /checkout", 20, 2, 40.0),
        ("backend", "POST /orders", 20, 1, 8.0),
    ] {
        for (status, calls) in [("STATUS_CODE_UNSET", ok), ("STATUS_CODE_ERROR", errors)] {
            let labels = format!("service_name=\"{service}\",span_name=\"{span}\",span_kind=\"SPAN_KIND_SERVER\",status_code=\"{status}\"");
            histogram(
                &mut out,
                "traces_span_metrics_duration_milliseconds",
                &labels,
                SPAN_MS,
                calls * n,
                ms,
            );
        }
    }
    for (service, span, ok, errors) in [
        ("frontend", "GET /checkout", 20, 2),
        ("backend", "POST /orders", 20, 1),
    ] {
        for (status, calls) in [("STATUS_CODE_UNSET", ok), ("STATUS_CODE_ERROR", errors)] {
            out.push_str(&format!("traces_span_metrics_calls_total{{service_name=\"{service}\",span_name=\"{span}\",span_kind=\"SPAN_KIND_SERVER\",status_code=\"{status}\"}} {}\n", calls * n));
        }
    }
    for (client, server, ctype, calls, failed, s) in [
        ("user", "frontend", "", 22, 2, 0.04),
        ("frontend", "backend", "", 21, 1, 0.008),
        ("backend", "orders-db", "database", 21, 0, 0.002),
    ] {
        let labels = format!("client=\"{client}\",server=\"{server}\",connection_type=\"{ctype}\"");
        out.push_str(&format!(
            "traces_service_graph_request_total{{{labels}}} {}\n",
            calls * n
        ));
        out.push_str(&format!(
            "traces_service_graph_request_failed_total{{{labels}}} {}\n",
            failed * n
        ));
        histogram(
            &mut out,
            "traces_service_graph_request_server_seconds",
            &labels,
            GRAPH_S,
            calls * n,
            s,
        );
        histogram(
            &mut out,
            "traces_service_graph_request_client_seconds",
            &labels,
            GRAPH_S,
            calls * n,
            s * 1.2,
        );
    }
    out.push_str(&format!("orders_total{{service=\"frontend\"}} {}\n", 5 * n));
    for service in ["frontend", "backend"] {
        out.push_str(&format!("queue_depth{{service=\"{service}\"}} {}\n", n % 7));
    }
    histogram(
        &mut out,
        "checkout_duration_seconds",
        "service=\"frontend\"",
        GRAPH_S,
        5 * n,
        0.3,
    );
    out
}

/// Serves [`connector_shapes`] over HTTP on a free port, one more scrape's worth at each request.
fn serve_connector_shapes() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => req.extend_from_slice(&buf[..k]),
                }
            }
            let body = connector_shapes(n as u64 + 1);
            let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    addr
}

/// The Services and Topology dashboards chart series that Plimsoll does not produce yet (PENDING: spans
/// are issue 8, business series issue 7), under the names of the OTel collector's connectors that it
/// will produce. Until then their queries are checked on that shape: every query of both dashboards,
/// variables resolved, returns data from a real Prometheus scraping the connectors' series, and the node
/// graph gets edges with id, source and target.
#[test]
fn services_and_topology_dashboards_work_on_the_connectors_series() {
    let target = serve_connector_shapes();
    let prom = Prometheus::start_config(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: connectors\n    static_configs:\n      - targets: ['{target}']\n"
    ));
    let start = unix_now();
    wait_until("a few scrapes", Duration::from_secs(30), &prom, || {
        instant(
            &prom,
            "count_over_time(traces_service_graph_request_total[1m]) >= 4",
        )
        .is_ok_and(|r| r.len() == 3)
    });
    let mut failures = Vec::new();
    let mut ran = 0;
    for d in Dashboard::all()
        .into_iter()
        .filter(|d| ["plimsoll-services", "plimsoll-topology"].contains(&d.uid()))
    {
        let vars = resolve_variables(
            &prom,
            &d,
            &["frontend", "orders_total", "queue_depth", "checkout"],
            start,
        );
        for q in d.queries() {
            let expr = model::substitute(&q.expr, &vars);
            ran += 1;
            match run(&prom, &expr, q.instant, start) {
                Ok(r) if r.is_empty() => {
                    failures.push(format!("{} / {}: no data\n  {expr}", q.dashboard, q.panel))
                }
                Ok(r) if q.panel_type == "nodeGraph" => {
                    for l in ["id", "source", "target"] {
                        if r.iter().any(|s| s["metric"][l].is_null()) {
                            failures.push(format!("{}: edges without label {l}: {r:?}", q.panel));
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => failures.push(format!("{} / {}: {e}\n  {expr}", q.dashboard, q.panel)),
            }
        }
    }
    assert!(ran > 20, "{ran} queries");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// grafana/prometheus/prometheus-swarm.yml finds the collector of a Swarm node through the Swarm API:
/// run by a real Prometheus against this engine (a single-node manager), with the collector's port
/// changed to a free one where a real `plimsoll collect` listens, its target is up and named after the
/// node's hostname. Rule files are left out (the rules are tested above); the rest is the shipped file.
#[test]
fn the_swarm_config_discovers_the_collector_of_every_node() {
    support::ensure_swarm();
    let collector = Plimsoll::start("collect", &["--interval", "1s"]);
    let shipped =
        std::fs::read_to_string(model::root().join("prometheus/prometheus-swarm.yml")).unwrap();
    assert!(
        shipped.contains("port: 9180"),
        "the collector's default port"
    );
    let config = shipped
        .replace("port: 9180", &format!("port: {}", collector.addr.port()))
        .replace("refresh_interval: 30s", "refresh_interval: 1s")
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("rules/*.yml", "no-rules-here/*.yml");
    let prom = Prometheus::start_config(&config);
    let hostname = support::docker_ok(&["info", "--format", "{{.Name}}"]);
    let address = support::docker_ok(&["info", "--format", "{{.Swarm.NodeAddr}}"]);
    let up = |prom: &Prometheus| {
        instant(
            prom,
            &format!("up{{job=\"plimsoll\", instance=\"{hostname}\"}} == 1"),
        )
        .is_ok_and(|r| r.len() == 1 && r[0]["metric"]["swarm_node_role"] == "manager")
    };
    wait_until(
        &format!("the collector of node {hostname} ({address}) discovered and scraped"),
        Duration::from_secs(60),
        &prom,
        || up(&prom),
    );
    let samples = instant(&prom, &format!("node_load1{{instance=\"{hostname}\"}}")).unwrap();
    assert_eq!(
        samples.len(),
        1,
        "the node's host metrics under its hostname"
    );
}
