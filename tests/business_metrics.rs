//! Business metrics read by the autoscaler, against the real parts: a `plimsoll collect` fed by the
//! OpenTelemetry Python SDK (PyPI `opentelemetry-sdk` with its OTLP/HTTP exporter), read over its
//! JSON API (`--source collectors=`) and through a real Prometheus server scraping it
//! (`--source prometheus=`); and end to end on the real engine with the embedded source: a Swarm
//! service scaled on the order rate its replicas send through StatsD (the PyPI `statsd` client run
//! inside each replica), a Compose service on the queue depth gauge of its service sent with the PyPI
//! `datadog` client (DogStatsD, `service:` tag).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plimsoll_autoscaler::control::{
    CollectorsSource, MetricRead, MetricSource, PrometheusSource, Readings, Request,
};
use plimsoll_autoscaler::policy::{Missing, Read, Scope};
use support::{free_addr, replicas, running_tasks, Plimsoll, Prometheus, Service};

/// The OTel Python SDK exporting, for `service.name` SERVICE, every 500 ms: a counter `orders`
/// (`orders_total` in the store) growing by RATE per second with `status=ok` and by 1 per second with
/// `status=error`, a gauge `queue_depth` at DEPTH, and a histogram `latency` in ms
/// (`latency_milliseconds`, the SDK's default buckets) of 10 calls a second, one in ten at 700 ms and
/// the others at 50 ms.
const OTEL_SENDER: &str = r#"
import sys, time
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

endpoint, service, rate, depth = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint), export_interval_millis=500)
provider = MeterProvider(resource=Resource.create({"service.name": service}), metric_readers=[reader])
meter = provider.get_meter("shop")
orders = meter.create_counter("orders")
latency = meter.create_histogram("latency", unit="ms")
meter.create_observable_gauge("queue_depth", callbacks=[lambda options: [Observation(depth)]])
i = 0
while True:
    orders.add(rate / 10, {"status": "ok"})
    orders.add(0.1, {"status": "error"})
    # Nine calls in ten take 50 ms, one 700 ms.
    latency.record(700 if i % 10 == 0 else 50)
    i += 1
    time.sleep(0.1)
"#;

/// A sender process, killed when dropped.
struct Sender(Child);

impl Sender {
    fn start(otlp_http: std::net::SocketAddr, service: &str, rate: f64, depth: f64) -> Sender {
        let child = Command::new("python3")
            .args(["-c", OTEL_SENDER])
            .arg(format!("http://{otlp_http}/v1/metrics"))
            .args([service, &rate.to_string(), &depth.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with opentelemetry-sdk (tests/setup.sh installs it)");
        Sender(child)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn metric(name: &str, family: &str, read: Read, matchers: &[(&str, &str)]) -> MetricRead {
    MetricRead::new(name, family, read, Scope::Service, matchers)
}

/// The metrics every source is asked for: the `ok` order rate, the queue depth, a metric nobody
/// sends, and a rate of the gauge.
fn metrics() -> Vec<MetricRead> {
    vec![
        metric(
            "orders",
            "orders_total",
            Read::Rate(Duration::from_secs(5)),
            &[("status", "ok")],
        ),
        metric("queue", "queue_depth", Read::Auto, &[]),
        metric("absent", "refunds_total", Read::Auto, &[]),
        metric(
            "gauge_rate",
            "queue_depth",
            Read::Rate(Duration::from_secs(5)),
            &[],
        ),
        metric(
            "p95",
            "latency_milliseconds",
            Read::Quantile {
                phi: 0.95,
                window: Duration::from_secs(10),
                scale: 0.001,
            },
            &[],
        ),
        metric(
            "errors",
            "orders_total",
            Read::ErrorRatio {
                errors: [("status".to_string(), "error".to_string())].into(),
                window: Duration::from_secs(5),
            },
            &[],
        ),
    ]
}

/// Reads `service`'s metrics from `source` until `done` holds (or panics after a minute).
fn read_until(
    source: &impl MetricSource,
    service: &str,
    what: &str,
    done: impl Fn(&Readings) -> bool,
) -> Readings {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let metrics = metrics();
    let req = Request {
        service,
        replicas: &[],
        metrics: &metrics,
    };
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(60) {
        match rt.block_on(source.sample(&req)) {
            Ok(r) if done(&r) => return r,
            other => last = Some(other),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("{what}: last answer {last:?}");
}

fn near(v: Option<&f64>, want: f64, tolerance: f64) -> bool {
    v.is_some_and(|v| (v - want).abs() <= tolerance)
}

#[test]
fn every_cluster_source_reads_service_rates_and_gauges_and_says_what_it_lacks() {
    let service = support::unique("bizsrc");
    let otlp = free_addr();
    let collector = Plimsoll::start(
        "collect",
        &["--interval", "1s", "--otlp-http", &otlp.to_string()],
    );
    let _sender = Sender::start(otlp, &service, 20.0, 42.0);
    // Another service's orders, on the same collector: never counted for ours.
    let other = support::unique("bizother");
    let _other = Sender::start(otlp, &other, 500.0, 1000.0);

    let collectors = CollectorsSource::listed(
        vec![format!("http://{}", collector.addr)],
        Duration::from_secs(2),
    );
    let r = read_until(
        &collectors,
        &service,
        "collectors: 20 orders/s, depth 42",
        |r| near(r.service.get("orders"), 20.0, 3.0) && near(r.service.get("queue"), 42.0, 0.0),
    );
    assert_eq!(r.missing.get("absent"), Some(&Missing::NoSeries), "{r:?}");
    assert_eq!(
        r.missing.get("gauge_rate"),
        Some(&Missing::NotACounter),
        "{r:?}"
    );
    assert!(r.containers.is_empty(), "no replica was asked for");
    // The error ratio, and p95 from the buckets the collector serves: among the 700 ms calls, in the
    // SDK's (500, 750] ms bucket, as Prometheus computes it below.
    let r = read_until(&collectors, &service, "collectors: p95 of 625 ms", |r| {
        near(r.service.get("p95"), 0.625, 0.06)
    });
    assert!(near(r.service.get("errors"), 1.0 / 21.0, 0.02), "{r:?}");

    let prom = Prometheus::start(collector.addr);
    let prometheus =
        PrometheusSource::new(&format!("http://{}", prom.addr), Duration::from_secs(5));
    let r = read_until(
        &prometheus,
        &service,
        "prometheus: 20 orders/s, depth 42",
        |r| near(r.service.get("orders"), 20.0, 3.0) && near(r.service.get("queue"), 42.0, 0.0),
    );
    // PromQL has no "not a counter": an absent series is all Prometheus can say.
    assert_eq!(r.missing.get("absent"), Some(&Missing::NoSeries), "{r:?}");
    assert!(near(r.service.get("errors"), 1.0 / 21.0, 0.02), "{r:?}");
    // p95 falls among the 700 ms calls, in the SDK's (500, 750] ms bucket: 500 + 250 * 0.5.
    let r = read_until(&prometheus, &service, "prometheus: p95 of 625 ms", |r| {
        near(r.service.get("p95"), 0.625, 0.06)
    });
    assert!(r.service["p95"] > 0.5, "{r:?}");
}

/// The host's Python with the PyPI `statsd` client, made runnable inside a FROM-scratch test
/// container: its prefix, site-packages and the C libraries bind-mounted read-only at the same paths.
struct HostPython {
    exe: String,
    /// `--mount` values.
    mounts: Vec<String>,
}

impl HostPython {
    fn find() -> HostPython {
        let out = Command::new("python3")
            .args([
                "-c",
                "import os, site, sys, statsd\nprint(os.path.realpath(sys.executable))\nprint(sys.prefix)\nprint(sys.base_prefix)\nprint(os.path.dirname(os.path.dirname(statsd.__file__)))\nfor p in site.getsitepackages(): print(p)",
            ])
            .output()
            .expect("python3 with the statsd package (tests/setup.sh installs it)");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines().map(str::to_string);
        let exe = lines.next().unwrap();
        let mut dirs: Vec<String> = vec!["/usr".into()];
        for d in lines {
            if !dirs
                .iter()
                .any(|m| d == *m || d.starts_with(&format!("{m}/")))
                && Path::new(&d).is_dir()
            {
                dirs.push(d);
            }
        }
        let mut mounts: Vec<String> = dirs
            .iter()
            .map(|d| format!("type=bind,src={d},dst={d},readonly"))
            .collect();
        // The dynamic loader and libc where the executable expects them (merged /usr or not).
        for l in ["/lib", "/lib64"] {
            if let Ok(real) = std::fs::canonicalize(l) {
                mounts.push(format!("type=bind,src={},dst={l},readonly", real.display()));
            }
        }
        HostPython { exe, mounts }
    }
}

/// Sends, with the PyPI `statsd` client, `orders:N|c` once a second to the container's gateway on
/// port argv[1], N read from /ctl/rate: N orders per second from each replica.
const REPLICA_SENDER: &str = r#"
import subprocess, sys, time, statsd
gateway = open('/proc/net/route').read().splitlines()[1].split()[2]
gateway = '.'.join(str(int(gateway[i:i + 2], 16)) for i in (6, 4, 2, 0))
client = statsd.StatsClient(gateway, int(sys.argv[1]))
while True:
    try:
        n = int(open('/ctl/rate').read().strip() or 0)
    except (OSError, ValueError):
        n = 0
    if n:
        client.incr('orders', n)
    time.sleep(1)
"#;

/// Replica 1 of Compose service `name` in `project`: an idle container with Compose's labels.
fn first_compose_replica(project: &str, name: &str) -> support::Container {
    let labels = [
        format!("com.docker.compose.project={project}"),
        format!("com.docker.compose.service={name}"),
        "com.docker.compose.container-number=1".to_string(),
    ];
    let mut flags = Vec::new();
    for l in &labels {
        flags.extend(["--label", l.as_str()]);
    }
    support::Container::run(&format!("{project}-{name}-1"), &flags, &["sleep", "100000"])
}

fn decided_scale(p: &Plimsoll, service: &str, up: bool) -> Option<serde_json::Value> {
    p.decisions(service).into_iter().find(|r| {
        r["action"] == "scaled"
            && (r["desired"].as_u64() > r["current"].as_u64()) == up
            && r["metrics"][0]["name"] == "orders"
    })
}

#[test]
fn a_swarm_service_scales_on_the_order_rate_its_replicas_send_through_statsd() {
    let service = support::unique("bizswarm");
    let ctl = tempfile::tempdir().unwrap();
    std::fs::write(ctl.path().join("send.py"), REPLICA_SENDER).unwrap();
    std::fs::write(ctl.path().join("rate"), "30").unwrap();
    let statsd_port = free_addr().port();
    let python = HostPython::find();
    let ctl_mount = format!("type=bind,src={},dst=/ctl", ctl.path().display());
    let mut flags = vec!["--mount".to_string(), ctl_mount];
    for m in &python.mounts {
        flags.extend(["--mount".to_string(), m.clone()]);
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let port = statsd_port.to_string();
    // The image's entrypoint is busybox: `sh -c` runs the host's Python in the replica.
    let run = format!("exec {} /ctl/send.py {port}", python.exe);
    let _svc = Service::create_cmd(&service, 1, &flags, &["sh", "-c", &run]);
    // 10 orders per second per replica is on target; 30 from each is three replicas' worth.
    let policies = support::policy_dir(&format!(
        "service: {service}\nmin: 1\nmax: 3\nmetrics:\n  - name: orders\n    query: {{ metric: orders_total, rate: 5s }}\n    target: {{ average: 10 }}\nbehavior:\n  scale_down: {{ stabilization: 5s, policies: [ {{ percent: 100, period: 5s }} ] }}\n"
    ));
    let p = Plimsoll::run(
        policies.path(),
        &[
            "--interval",
            "1s",
            "--statsd-udp",
            &format!("0.0.0.0:{statsd_port}"),
        ],
    );
    p.wait_for(
        "a scale-up on the order rate",
        Duration::from_secs(90),
        |p| decided_scale(p, &service, true).is_some(),
    );
    let up = decided_scale(&p, &service, true).unwrap();
    let per_replica = up["metrics"][0]["current"].as_f64().unwrap();
    assert!((25.0..=35.0).contains(&per_replica), "{up}");
    p.wait_for("3 replicas", Duration::from_secs(60), |_| {
        replicas(&service) == 3 && running_tasks(&service) == 3
    });
    // The order rate falls to 2 per replica: back to one.
    std::fs::write(ctl.path().join("rate"), "2").unwrap();
    p.wait_for("back to 1 replica", Duration::from_secs(90), |_| {
        replicas(&service) == 1
    });
    // The first step down follows the order rate (the stabilization window may hold part of it).
    let down = decided_scale(&p, &service, false).expect("a recorded scale-down");
    let per_replica = down["metrics"][0]["current"].as_f64().unwrap();
    assert!((1.0..=3.0).contains(&per_replica), "{down}");
    // The series carry the replicas' container labels, as their cgroup series do.
    let (_, metrics) = p.get("/metrics").unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("orders_total{"))
        .unwrap_or_else(|| panic!("no orders_total on /metrics"));
    assert!(
        line.contains(&format!("service=\"{service}\"")) && line.contains("task=\""),
        "{line}"
    );
}

/// Sends, with the PyPI `datadog` client (DogStatsD), the gauge `queue_depth` tagged
/// `service:argv[3]` twice a second to 127.0.0.1:argv[1], its value read from the file argv[2].
const QUEUE_SENDER: &str = r#"
import sys, time
from datadog.dogstatsd import DogStatsd
client = DogStatsd(host='127.0.0.1', port=int(sys.argv[1]), disable_telemetry=True)
while True:
    try:
        depth = float(open(sys.argv[2]).read())
        client.gauge('queue_depth', depth, tags=['service:' + sys.argv[3]])
    except (OSError, ValueError):
        pass
    time.sleep(0.5)
"#;

#[test]
fn a_compose_service_scales_on_the_queue_depth_gauge_of_its_service() {
    let project = support::unique("bizq");
    // A service name of this test's own: the gauge is the service's, not a container's.
    let name = support::unique("worker");
    let _cleanup = support::ProjectCleanup(project.clone());
    let _first = first_compose_replica(&project, &name);
    let ctl = tempfile::tempdir().unwrap();
    let depth = ctl.path().join("depth");
    std::fs::write(&depth, "250").unwrap();
    let statsd_port = free_addr().port();
    let sender = Command::new("python3")
        .args(["-c", QUEUE_SENDER, &statsd_port.to_string()])
        .arg(&depth)
        .arg(&name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with the datadog package (tests/setup.sh installs it)");
    let _sender = Sender(sender);
    // 100 queued jobs per replica: 250 queued is 3 replicas.
    let policies = support::policy_dir(&format!(
        "service: {name}\nproject: {project}\nmin: 1\nmax: 4\nmetrics:\n  - name: queue_depth\n    target: {{ value: 100 }}\nbehavior:\n  scale_down: {{ stabilization: 3s, policies: [ {{ percent: 100, period: 3s }} ] }}\n"
    ));
    let p = Plimsoll::run(
        policies.path(),
        &[
            "--interval",
            "1s",
            "--project",
            &project,
            "--statsd-udp",
            &format!("127.0.0.1:{statsd_port}"),
        ],
    );
    let running = || {
        support::compose_members(&project)
            .iter()
            .filter(|m| m.1 == "running")
            .count()
    };
    p.wait_for("3 running replicas", Duration::from_secs(60), |_| {
        running() == 3
    });
    let records = p.decisions(&name);
    let up = records
        .iter()
        .find(|r| r["action"] == "scaled")
        .expect("a scale-up record");
    assert_eq!(
        (&up["desired"], &up["metrics"][0]["current"]),
        (&serde_json::json!(3), &serde_json::json!(250.0)),
        "{up}"
    );
    // The queue drains: back to one replica.
    std::fs::write(&depth, "40").unwrap();
    p.wait_for("1 running replica", Duration::from_secs(60), |_| {
        running() == 1
    });
}

/// `plimsoll run` says at start which policy metrics no source has: the first decision of a target
/// whose metric nobody sends logs it (with the reason), and the record shows it as missing.
#[test]
fn plimsoll_run_says_at_start_which_policy_metric_it_cannot_find() {
    let project = support::unique("bizmiss");
    let name = support::unique("lonely");
    let metric = format!("{}_total", name.replace('-', "_"));
    let _cleanup = support::ProjectCleanup(project.clone());
    let _first = first_compose_replica(&project, &name);
    let policies = support::policy_dir(&format!(
        "service: {name}\nproject: {project}\nmin: 1\nmax: 3\nmetrics:\n  - name: orders\n    query: {{ metric: {metric}, rate: 1m }}\n    target: {{ value: 10 }}\n"
    ));
    let p = Plimsoll::run(
        policies.path(),
        &["--interval", "1s", "--project", &project],
    );
    p.wait_for("the missing metric logged", Duration::from_secs(30), |p| {
        p.logs().contains("policy metric cannot be read")
    });
    let logs = p.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("policy metric cannot be read"))
        .unwrap();
    assert!(
        line.contains("orders") && line.contains("no_series"),
        "{line}"
    );
    // The record says the same, and the replica count holds.
    let records = p.decisions(&name);
    let last = records.last().expect("a decision record");
    assert_eq!(last["metrics"][0]["missing"], "no_series", "{last}");
    assert_eq!(last["desired"], 1, "{last}");
}
