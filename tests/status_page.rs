//! The status page at `/`, rendered by a real headless Chromium (Debian's `chromium`) against a real
//! `plimsoll run` scaling a labelled Compose service (dry run) and a real `plimsoll collect`: the
//! rendered DOM shows the target's identity, its replicas and a decision reason, the invalid policy
//! file with its error, the host's containers and the service graph of spans from the OpenTelemetry
//! Python SDK. Screenshots are kept in target/tmp/ as artifacts.

mod support;

use std::time::Duration;

use support::chromium::{rendered, screenshot};
use support::{Plimsoll, ProjectCleanup};

#[test]
fn the_status_page_of_plimsoll_run_shows_the_target_its_replicas_and_reasons() {
    let project = support::unique("stpage");
    let _cleanup = ProjectCleanup(project.clone());
    let ctl = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    let labels = ["--label", "plimsoll.min=1", "--label", "plimsoll.max=3", "--label", "plimsoll.cpu=20"];
    let _web = support::compose_burner(&project, "web", 1, "0.25", ctl.path(), &labels);
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("broken.yaml"),
        "service: web\nmin: [\n",
    )
    .unwrap();
    // A file name that would be markup if the page inserted it as HTML.
    let markup = "<img src=x onerror=alert(1)>.yaml";
    std::fs::write(policies.path().join(markup), "service: [\n").unwrap();
    let p = Plimsoll::run(
        policies.path(),
        &["--interval", "1s", "--project", &project, "--dry-run"],
    );
    let id = format!("compose/{project}/web");

    // Under load the dry run records a scale-up it does not carry out.
    std::fs::write(ctl.path().join("on"), "").unwrap();
    p.wait_for("a dry-run scale-up", Duration::from_secs(60), |p| {
        p.decisions("web")
            .iter()
            .any(|d| d["action"] == "dry_run" && d["desired"].as_u64() > d["current"].as_u64())
    });

    let dom = rendered(p.addr);
    let decisions = p.decisions("web");
    assert!(dom.contains("plimsoll run"), "mode missing:\n{dom}");
    assert!(
        dom.contains(&id),
        "the target's identity {id} missing:\n{dom}"
    );
    assert!(
        dom.contains("origin: </span>labels"),
        "origin missing:\n{dom}"
    );
    assert!(
        dom.contains("policy: </span>min 1 · max 3 · cpu (utilization 20)"),
        "policy missing:\n{dom}"
    );
    // The replicas and reasons shown are those of recorded decisions.
    let shown_replicas = decisions.iter().any(|d| {
        dom.contains(&format!(
            "<span class=\"replicas\">{} → {}</span>",
            d["current"], d["desired"]
        ))
    });
    assert!(
        shown_replicas,
        "no recorded current → desired shown:\n{dom}\n{decisions:?}"
    );
    let reasons: Vec<String> = decisions
        .iter()
        .rev()
        .take(20)
        .filter_map(|d| d["reason"].as_str().map(str::to_string))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| dom.contains(&format!("</span> {r}</span>"))),
        "none of the recent reasons {reasons:?} shown:\n{dom}"
    );
    assert!(
        dom.contains("dry_run"),
        "the dry-run action missing:\n{dom}"
    );
    assert!(dom.contains("<svg"), "no chart:\n{dom}");
    // The invalid file with its file:line:col error.
    assert!(dom.contains("broken.yaml"), "invalid file missing:\n{dom}");
    assert!(
        dom.contains("tag invalid"),
        "invalid status missing:\n{dom}"
    );
    assert!(
        dom.contains("broken.yaml:3:1: "),
        "the file:line:col error missing:\n{dom}"
    );
    // Inserted as text: the file name is escaped, no element made of it.
    assert!(
        dom.contains("&lt;img src=x onerror=alert(1)&gt;.yaml"),
        "the markup file name not shown escaped:\n{dom}"
    );
    assert!(!dom.contains("<img"), "data became markup:\n{dom}");
    // The host and its containers (the embedded collector).
    assert!(dom.contains("Memory used"), "host missing:\n{dom}");
    assert!(
        dom.contains(&format!("{project}-web-1")),
        "the container missing:\n{dom}"
    );

    // Where to look, and what it found, at start.
    let logs = p.logs();
    assert!(
        logs.contains(&format!("status page: http://{}/", p.addr)),
        "{logs}"
    );
    assert!(logs.contains("found 1 scaled target"), "{logs}");

    let shot = screenshot(p.addr, "status_page_run.png");
    eprintln!("screenshot: {}", shot.display());
}

#[test]
fn plimsoll_collect_serves_the_status_page_with_the_host_containers_and_service_graph() {
    let name = support::unique("stpagec");
    let _c = support::Container::run(&name, &[], &[]);
    let otlp = support::free_addr();
    let p = Plimsoll::start(
        "collect",
        &["--interval", "500ms", "--otlp-http", &otlp.to_string()],
    );
    p.wait_for("the container", Duration::from_secs(20), |p| {
        p.container(&name).is_some()
    });
    // Two services calling each other, reported by the OpenTelemetry Python SDK.
    let suffix = format!("-{name}");
    let endpoint = format!("http://{otlp}/v1/traces");
    support::otel::python_sdk("send_spans.py", &["http", &endpoint, "20", &suffix]);
    let (front, back) = (format!("front{suffix}"), format!("back{suffix}"));
    p.wait_for("the front -> back edge", Duration::from_secs(20), |p| {
        p.json("/api/v1/topology").to_string().contains(&back)
    });
    let (code, body) = p.get("/").unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("<title>Plimsoll status</title>"));
    assert!(
        !body.contains("src=\"http") && !body.contains("href=\"http"),
        "the page must load no external asset"
    );

    let dom = rendered(p.addr);
    assert!(dom.contains("plimsoll collect"), "mode missing:\n{dom}");
    assert!(dom.contains(&name), "the container {name} missing:\n{dom}");
    assert!(dom.contains("CPU busy"), "host missing:\n{dom}");
    // The service graph table, with the edge between the two services.
    assert!(
        dom.contains(&format!("<td>{front}</td><td>{back}</td>")),
        "the edge {front} -> {back} missing:\n{dom}"
    );
    // No autoscaler here: the targets section stays hidden.
    assert!(
        dom.contains("<section id=\"targets-section\" hidden=\"\">"),
        "targets shown by a collector:\n{dom}"
    );
    screenshot(p.addr, "status_page_collect.png");
}

#[test]
fn plimsoll_run_without_targets_says_how_to_label_a_service() {
    let policies = tempfile::tempdir().unwrap();
    let nothing = support::unique("stpagenone");
    let p = Plimsoll::run(
        policies.path(),
        &["--interval", "1s", "--project", &nothing],
    );
    p.wait_for("the first discovery", Duration::from_secs(20), |p| {
        p.logs().contains("found no scaled target")
    });
    let logs = p.logs();
    assert!(
        logs.contains(
            "--label-add plimsoll.min=1 --label-add plimsoll.max=5 --label-add plimsoll.cpu=70"
        ),
        "{logs}"
    );
    let dom = rendered(p.addr);
    assert!(
        dom.contains("No scaled targets yet."),
        "no hint on the page:\n{dom}"
    );
}
