//! Prometheus scrape of labelled containers on the real engine: FROM-scratch busybox containers
//! serving static exposition files with `busybox httpd` (a real HTTP server) on a Docker network,
//! scraped by the real `plimsoll collect`.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{docker, Container, Network, Overlay, Plimsoll, Service};

const EXPOSITION: &str = r#"# HELP orders_total Orders taken.
# TYPE orders_total counter
orders_total{kind="web",name="checkout"} 42
# HELP queue_depth Jobs waiting.
# TYPE queue_depth gauge
queue_depth 7
# HELP latency_seconds Request latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 1
latency_seconds_bucket{le="1"} 3
latency_seconds_bucket{le="+Inf"} 4
latency_seconds_sum 2.5
latency_seconds_count 4
room_temperature{room="lab \"2\", east"} 21.5 1700000000000
"#;

const OPENMETRICS: &str = "# TYPE answers counter\n# HELP answers Answers served.\nanswers_total 5\nanswers_created 1.7e9\n# EOF\n";

/// A folder served at / by `busybox httpd`, with `metrics` holding `body`.
fn www(body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("metrics"), body).unwrap();
    // busybox httpd types responses by extension: `.om` as OpenMetrics.
    std::fs::write(
        dir.path().join("httpd.conf"),
        ".om:application/openmetrics-text; version=1.0.0; charset=utf-8\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("metrics.om"), OPENMETRICS).unwrap();
    dir
}

/// `busybox httpd` on :8080 serving `dir` at /, on `net`, with `labels`.
fn server(name: &str, net: &Network, dir: &Path, labels: &[&str]) -> Container {
    let mount = format!("{}:/www:ro", dir.display());
    let mut flags = vec!["--network", net.name.as_str(), "-v", mount.as_str()];
    for l in labels {
        flags.extend(["--label", l]);
    }
    Container::run(
        name,
        &flags,
        &[
            "httpd",
            "-f",
            "-p",
            "8080",
            "-h",
            "/www",
            "-c",
            "/www/httpd.conf",
        ],
    )
}

/// The lines of /metrics for `metric` whose labels include `name="<container>"`.
fn lines(p: &Plimsoll, metric: &str, container: &str) -> Vec<String> {
    lines_with(p, metric, "name", container)
}

/// The lines of /metrics for `metric` whose labels include `label="<value>"`.
fn lines_with(p: &Plimsoll, metric: &str, label: &str, value: &str) -> Vec<String> {
    let (_, body) = p.get("/metrics").unwrap();
    let want = format!("{label}=\"{value}\"");
    body.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&want))
        .map(str::to_string)
        .collect()
}

fn value(line: &str) -> f64 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn labelled_containers_are_scraped_with_their_labels_and_forgotten_when_they_go() {
    let net = Network::create("scrape");
    let app_dir = www(EXPOSITION);
    let bad_dir = www("this is { not an exposition\n");
    let app_name = support::unique("scrape-app");
    let bad_name = support::unique("scrape-bad");
    let om_name = support::unique("scrape-om");
    let app = server(
        &app_name,
        &net,
        app_dir.path(),
        &["plimsoll.scrape.port=8080", "plimsoll.scrape.interval=1s"],
    );
    let _bad = server(
        &bad_name,
        &net,
        bad_dir.path(),
        &["prometheus.io/scrape=true", "prometheus.io/port=8080"],
    );
    let _om = server(
        &om_name,
        &net,
        app_dir.path(),
        &[
            "plimsoll.scrape.port=8080",
            "plimsoll.scrape.path=/metrics.om",
        ],
    );
    let p = Plimsoll::start("collect", &["--interval", "1s"]);
    p.wait_for(
        "the app's series on /metrics",
        Duration::from_secs(30),
        |p| !lines(p, "orders_total", &app_name).is_empty(),
    );

    // The scraped series carry the container's labels; the app's own `name` label is exported.
    let orders = lines(&p, "orders_total", &app_name);
    assert_eq!(orders.len(), 1, "{orders:?}");
    let ip = support::docker_ok(&[
        "inspect",
        "-f",
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            net.name
        ),
        &app_name,
    ]);
    for want in [
        format!("instance=\"{ip}:8080\""),
        "kind=\"web\"".to_string(),
        "exported_name=\"checkout\"".to_string(),
    ] {
        assert!(orders[0].contains(&want), "{want} in {}", orders[0]);
    }
    assert_eq!(value(&orders[0]), 42.0);
    assert_eq!(value(&lines(&p, "queue_depth", &app_name)[0]), 7.0);
    let buckets = lines(&p, "latency_seconds_bucket", &app_name);
    assert_eq!(buckets.len(), 3, "{buckets:?}");
    assert!(
        buckets
            .iter()
            .any(|l| l.contains("le=\"1\"") && value(l) == 3.0),
        "{buckets:?}"
    );
    assert_eq!(
        value(&lines(&p, "latency_seconds_count", &app_name)[0]),
        4.0
    );
    // No TYPE: untyped, kept as a gauge; an escaped quote and a comma stay in the label value.
    let room = lines(&p, "room_temperature", &app_name);
    assert!(
        room.len() == 1 && room[0].contains(r#"room="lab \"2\", east""#),
        "{room:?}"
    );
    assert_eq!(value(&room[0]), 21.5);
    let (_, body) = p.get("/metrics").unwrap();
    assert!(body.contains("# TYPE orders_total counter"), "{body}");
    assert!(body.contains("# HELP queue_depth Jobs waiting."), "{body}");

    // Per target: up, scrape_duration_seconds and scrape_samples_scraped.
    let up = lines(&p, "up", &app_name);
    assert_eq!((up.len(), value(&up[0])), (1, 1.0), "{up:?}");
    let took = value(&lines(&p, "scrape_duration_seconds", &app_name)[0]);
    assert!(took > 0.0 && took < 1.0, "{took}");
    assert_eq!(
        value(&lines(&p, "scrape_samples_scraped", &app_name)[0]),
        8.0
    );

    // The JSON API has them too, attributed to the container.
    let v = p.json(&format!(
        "/api/v1/series?name=orders_total&container={app_name}"
    ));
    let s = &v["series"][0];
    assert_eq!(s["labels"]["name"], app_name.as_str(), "{v}");
    assert_eq!(s["labels"]["exported_name"], "checkout", "{v}");
    assert_eq!(s["container"], app.id.as_str(), "{v}");
    assert_eq!(s["kind"], "counter", "{v}");
    assert!(!s["points"].as_array().unwrap().is_empty(), "{v}");

    // OpenMetrics, by the response's content type: the counter gets its _total back.
    p.wait_for("the OpenMetrics target", Duration::from_secs(15), |p| {
        !lines(p, "answers_total", &om_name).is_empty()
    });
    assert_eq!(value(&lines(&p, "answers_total", &om_name)[0]), 5.0);

    // Garbage: the target is down and the error counted.
    p.wait_for(
        "the garbage target to be down",
        Duration::from_secs(15),
        |p| {
            lines(p, "up", &bad_name)
                .first()
                .is_some_and(|l| value(l) == 0.0)
        },
    );
    let (_, body) = p.get("/metrics").unwrap();
    let errors: Vec<&str> = body
        .lines()
        .filter(|l| {
            l.starts_with("plimsoll_ingest_errors_total{")
                && l.contains("source=\"scrape\"")
                && l.contains("reason=\"parse\"")
        })
        .collect();
    assert!(errors.len() == 1 && value(errors[0]) >= 1.0, "{errors:?}");
    assert!(p.logs().contains("scrape failed"), "{}", p.logs());

    // A series the app stops exposing is gone at the next scrape.
    std::fs::write(
        app_dir.path().join("metrics"),
        "# TYPE orders_total counter\norders_total{kind=\"web\",name=\"checkout\"} 43\n",
    )
    .unwrap();
    p.wait_for("queue_depth to vanish", Duration::from_secs(15), |p| {
        lines(p, "queue_depth", &app_name).is_empty()
    });
    assert_eq!(value(&lines(&p, "orders_total", &app_name)[0]), 43.0);

    // The container goes: every series of the target goes with it.
    let out = docker(&["rm", "-f", &app_name]);
    assert!(out.status.success());
    p.wait_for(
        "the app's series to be deleted",
        Duration::from_secs(15),
        |p| lines(p, "orders_total", &app_name).is_empty() && lines(p, "up", &app_name).is_empty(),
    );
    assert!(lines(&p, "latency_seconds_bucket", &app_name).is_empty());
    assert!(!lines(&p, "up", &om_name).is_empty(), "other targets stay");
}

#[test]
fn scrape_off_scrapes_nothing() {
    let net = Network::create("scrape-off");
    let dir = www(EXPOSITION);
    let name = support::unique("scrape-off");
    let _c = server(&name, &net, dir.path(), &["plimsoll.scrape.port=8080"]);
    let p = Plimsoll::start("collect", &["--interval", "1s", "--scrape", "off"]);
    p.wait_for(
        "the container to be tracked",
        Duration::from_secs(15),
        |p| p.container(&name).is_some(),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(lines(&p, "orders_total", &name).is_empty());
    assert!(lines(&p, "up", &name).is_empty());
}

#[test]
fn swarm_tasks_on_an_overlay_network_are_scraped_at_their_gateway_bridge_address() {
    let net = Overlay::create("scrape-ov");
    let dir = www(EXPOSITION);
    let svc = support::unique("scrape-svc");
    let mount = format!("type=bind,src={},dst=/www,readonly", dir.path().display());
    let _s = Service::create_cmd(
        &svc,
        2,
        &[
            "--network",
            &net.0,
            "--container-label",
            "plimsoll.scrape.port=8080",
            "--mount",
            &mount,
        ],
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
    );
    let p = Plimsoll::start("collect", &["--interval", "1s"]);
    p.wait_for("both replicas' series", Duration::from_secs(45), |p| {
        lines_with(p, "orders_total", "service", &svc).len() == 2
    });
    let orders = lines_with(&p, "orders_total", "service", &svc);
    let mut slots: Vec<&str> = Vec::new();
    for l in &orders {
        assert!(l.contains("task=\""), "{l}");
        assert!(l.contains("slot=\"1\"") || l.contains("slot=\"2\""), "{l}");
        slots.push(if l.contains("slot=\"1\"") { "1" } else { "2" });
        assert_eq!(value(l), 42.0, "{l}");
    }
    slots.sort();
    assert_eq!(slots, ["1", "2"], "{orders:?}");
    // Scraped at the task's docker_gwbridge address (the overlay one is not routed on the host).
    let gw = support::docker_ok(&[
        "network",
        "inspect",
        "docker_gwbridge",
        "-f",
        "{{range .Containers}}{{.IPv4Address}} {{end}}",
    ]);
    for l in &orders {
        let instance = l
            .split("instance=\"")
            .nth(1)
            .unwrap()
            .split(':')
            .next()
            .unwrap();
        assert!(
            gw.split_whitespace()
                .any(|a| a.starts_with(&format!("{instance}/"))),
            "{instance} not in {gw}"
        );
    }
    let up = lines_with(&p, "up", "service", &svc);
    assert!(
        up.len() == 2 && up.iter().all(|l| value(l) == 1.0),
        "{up:?}"
    );
}
