//! The StatsD / DogStatsD receiver of `plimsoll collect`, fed by the real PyPI clients (`statsd`
//! 4.0.1 and `datadog` 0.56.0, installed by tests/setup.sh) over real UDP, read back on /metrics and
//! /api/v1/series.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use support::{
    docker_ok, free_udp_addr, metric_value, unique, Container, Network, Overlay, Plimsoll, Service,
};

/// Runs a Python script with the receiver's port as `PORT` and `HOST`; panics with its stderr.
fn python(addr: SocketAddr, script: &str) {
    python_in(&[], addr, script)
}

/// As [`python`], run under `prefix` (e.g. `nsenter` into a container's network namespace).
fn python_in(prefix: &[&str], addr: SocketAddr, script: &str) {
    let full = format!("HOST = '{}'\nPORT = {}\n{script}", addr.ip(), addr.port());
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.extend(["python3", "-c", &full]);
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .expect("python3 (tests/setup.sh installs the clients)");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{full}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start() -> (Plimsoll, SocketAddr) {
    start_with(&[])
}

/// `plimsoll collect` at a 200 ms interval with StatsD on a free loopback port, and `flags`.
fn start_with(flags: &[&str]) -> (Plimsoll, SocketAddr) {
    let udp = free_udp_addr();
    let addr = udp.to_string();
    let mut args = vec!["--interval", "200ms", "--statsd-udp", &addr];
    args.extend_from_slice(flags);
    (Plimsoll::start("collect", &args), udp)
}

/// `plimsoll collect` at a 200 ms interval with StatsD on a free port of every address, so that
/// containers reach it at their gateway; returns the port.
fn start_for_containers() -> (Plimsoll, u16) {
    let port = free_udp_addr().port();
    let addr = format!("0.0.0.0:{port}");
    let p = Plimsoll::start("collect", &["--interval", "200ms", "--statsd-udp", &addr]);
    (p, port)
}

fn metrics(p: &Plimsoll) -> String {
    p.get("/metrics").map(|(_, b)| b).unwrap_or_default()
}

/// Waits until /metrics shows `name{labels}` at `want`.
fn wait_metric(p: &Plimsoll, name: &str, labels: &[(&str, &str)], want: f64) {
    p.wait_for(
        &format!(
            "{name}{labels:?} = {want} on /metrics; it was {:?}",
            metric_value(&metrics(p), name, labels)
        ),
        Duration::from_secs(15),
        |p| metric_value(&metrics(p), name, labels) == Some(want),
    );
}

/// The series of /api/v1/series?name=NAME.
fn api_series(p: &Plimsoll, name: &str) -> Vec<serde_json::Value> {
    p.json(&format!("/api/v1/series?name={name}"))["series"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn the_python_statsd_client_counters_gauges_timers_and_sets() {
    let (p, udp) = start();
    python(
        udp,
        r#"
import random
import statsd
# Sampled calls are sent when random() <= rate: make every one go out, with its @0.5.
random.random = lambda: 0.0
c = statsd.StatsClient(HOST, PORT, prefix='shop')
for _ in range(4):
    c.incr('orders', 1, rate=0.5)
c.gauge('queue', 10)
c.gauge('queue', 5, delta=True)
c.gauge('queue', -3, delta=True)
c.timing('checkout', 250)
c.timing('checkout', 1500)
with c.pipeline() as pl:
    pl.set('visitors', 'ann')
    pl.set('visitors', 'bob')
    pl.set('visitors', 'ann')
"#,
    );
    // 4 increments of 1 sampled at 0.5 count as 8.
    wait_metric(&p, "shop_orders_total", &[], 8.0);
    wait_metric(&p, "shop_queue", &[], 12.0);
    // Timers are histograms in seconds, with the Prometheus client default buckets.
    wait_metric(&p, "shop_checkout_seconds_count", &[], 2.0);
    let m = metrics(&p);
    assert_eq!(
        metric_value(&m, "shop_checkout_seconds_sum", &[]),
        Some(1.75),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "shop_checkout_seconds_bucket", &[("le", "0.25")]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&m, "shop_checkout_seconds_bucket", &[("le", "2.5")]),
        Some(2.0)
    );
    assert!(m.contains("# TYPE shop_orders_total counter"), "{m}");
    assert!(m.contains("# TYPE shop_checkout_seconds histogram"), "{m}");

    let orders = api_series(&p, "shop_orders_total");
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0]["kind"], "counter");
    // The series starts from a zero point, so its first increment shows in the rates.
    let points = orders[0]["points"].as_array().unwrap();
    assert_eq!(points[0][1], 0.0, "{points:?}");
    assert!(orders[0]["rates"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r[1].as_f64() > Some(0.0)));
    // A set is the number of distinct members since the previous flush.
    let visitors = api_series(&p, "shop_visitors");
    let values: Vec<f64> = visitors[0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[1].as_f64().unwrap())
        .collect();
    assert!(values.contains(&2.0), "{values:?}");
    assert!(values.iter().all(|v| *v <= 2.0), "{values:?}");
}

#[test]
fn the_datadog_client_tags_distributions_events_and_service_checks() {
    let (p, udp) = start();
    python(
        udp,
        r#"
from datadog.dogstatsd import DogStatsd
d = DogStatsd(host=HOST, port=PORT, disable_telemetry=True, origin_detection_enabled=False)
d.increment('checkout.orders', 2, tags=['env:prod', 'canary'])
# The same name with other tag keys is another series, never an error (statsd_exporter #170).
d.increment('checkout.orders', 3, tags=['env:prod', 'region:eu'])
d.increment('checkout.orders', 4)
d.gauge('queue.depth', 7, tags=['service:worker'])
d.histogram('basket.size', 3)
d.histogram('basket.size', 30)
d.distribution('render.time', 0.2)
d.timing('db.query', 40)
d.set('sessions', 'a')
d.event('deployed', 'v2 is out', tags=['env:prod'])
d.service_check('shop.up', 0)
d.service_check('shop.up', 2, message='down')
d.flush()
"#,
    );
    wait_metric(
        &p,
        "checkout_orders_total",
        &[("env", "prod"), ("canary", "true")],
        2.0,
    );
    wait_metric(
        &p,
        "checkout_orders_total",
        &[("env", "prod"), ("region", "eu")],
        3.0,
    );
    wait_metric(
        &p,
        "plimsoll_statsd_events_total",
        &[("kind", "service_check")],
        2.0,
    );
    let m = metrics(&p);
    assert!(m.contains("\ncheckout_orders_total 4\n"), "{m}");
    assert_eq!(
        metric_value(&m, "queue_depth", &[("service", "worker")]),
        Some(7.0)
    );
    assert_eq!(metric_value(&m, "basket_size_count", &[]), Some(2.0), "{m}");
    assert_eq!(metric_value(&m, "basket_size_sum", &[]), Some(33.0));
    assert_eq!(metric_value(&m, "render_time_count", &[]), Some(1.0));
    assert_eq!(
        metric_value(&m, "render_time_bucket", &[("le", "0.25")]),
        Some(1.0)
    );
    let db = metric_value(&m, "db_query_seconds_sum", &[]).unwrap();
    assert!((db - 0.04).abs() < 1e-9, "{db}");
    assert_eq!(
        metric_value(&m, "plimsoll_statsd_events_total", &[("kind", "event")]),
        Some(1.0)
    );
    // Events and service checks are skipped: no series of theirs.
    assert!(!m.contains("deployed") && !m.contains("shop_up"), "{m}");

    let orders = api_series(&p, "checkout_orders_total");
    assert_eq!(orders.len(), 3, "{orders:?}");
    let labels: Vec<&serde_json::Value> = orders.iter().map(|s| &s["labels"]).collect();
    assert!(
        labels
            .iter()
            .any(|l| l["region"] == "eu" && l["env"] == "prod"),
        "{labels:?}"
    );
    assert!(labels.iter().any(|l| l["canary"] == "true"), "{labels:?}");
    let worker = api_series(&p, "queue_depth");
    assert_eq!(worker[0]["labels"]["service"], "worker");
    assert_eq!(worker[0]["kind"], "gauge");
}

#[test]
fn malformed_lines_are_counted_by_reason_and_the_rest_of_the_packet_kept() {
    let (p, udp) = start();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.send_to(
        b"good:1|c\nno value here\nx:1|q\n:1|c\ny:abc|g\nz:-1|c\nr:1|c|@2\nkept:5|g",
        udp,
    )
    .unwrap();
    // A datagram that is not text at all.
    tx.send_to(&[0xff, 0xfe, 0x00, b'\n', 0x80], udp).unwrap();
    wait_metric(&p, "kept", &[], 5.0);
    let m = metrics(&p);
    assert_eq!(metric_value(&m, "good_total", &[]), Some(1.0));
    for (reason, n) in [
        // One text line and the two lines of the binary datagram have no `:value`.
        ("no_value", 3.0),
        ("unknown_type", 1.0),
        ("empty_name", 1.0),
        ("bad_value", 1.0),
        ("negative_counter", 1.0),
        ("bad_sample_rate", 1.0),
    ] {
        assert_eq!(
            metric_value(
                &m,
                "plimsoll_ingest_errors_total",
                &[("source", "statsd"), ("reason", reason)]
            ),
            Some(n),
            "{reason}:\n{m}"
        );
    }
    assert!(
        metric_value(&m, "plimsoll_statsd_lines_received_total", &[]) >= Some(10.0),
        "{m}"
    );
    assert_eq!(
        metric_value(
            &m,
            "plimsoll_statsd_packets_received_total",
            &[("transport", "udp")]
        ),
        Some(2.0)
    );
    // The collector is still serving after all that.
    assert_eq!(p.get("/healthz").unwrap().0, 200);
}

#[test]
fn a_taken_statsd_port_stops_the_start_with_a_clear_message_and_off_turns_it_off() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(support::plimsoll_bin())
        .args(["collect", "--listen", &support::free_addr().to_string()])
        .args(["--statsd-udp", &addr.to_string()])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("StatsD: cannot listen on UDP {addr}"))
            && err.contains("--statsd-udp off"),
        "{err}"
    );
    let p = Plimsoll::start("collect", &["--statsd-udp", "off"]);
    assert!(!metrics(&p).contains("plimsoll_statsd_packets_received_total"));
}

#[test]
fn a_containers_datagrams_carry_its_labels_and_are_forgotten_with_it() {
    let (p, port) = start_for_containers();
    let net = Network::create("statsd");
    let name = unique("statsd-app");
    let c = Container::run(
        &name,
        &[
            "--network",
            &net.name,
            "--label",
            "com.docker.compose.project=plimsollit",
            "--label",
            "com.docker.compose.service=shop",
        ],
        &["sleep", "100000"],
    );
    p.wait_for(
        "the container in the directory",
        Duration::from_secs(20),
        |p| p.container(&name).is_some(),
    );
    let pid = docker_ok(&["inspect", "-f", "{{.State.Pid}}", &name]);
    let gateway = docker_ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}",
        &name,
    ]);
    let to_host: SocketAddr = format!("{gateway}:{port}").parse().unwrap();
    // The real client, run in the container's network namespace: the datagrams leave from the
    // container's address on its network to the host's side of the bridge, as an app's would.
    python_in(
        &["nsenter", "-t", &pid, "-n"],
        to_host,
        r#"
import statsd
c = statsd.StatsClient(HOST, PORT)
c.incr('app.orders', 3)
"#,
    );
    // DogStatsD's container field attributes a datagram from anywhere (here, the host).
    python(
        SocketAddr::from(([127, 0, 0, 1], port)),
        &format!(
            r#"
from datadog.dogstatsd import DogStatsd
d = DogStatsd(host=HOST, port=PORT, disable_telemetry=True, container_id='{}')
d.gauge('app.queue', 5, tags=['region:eu'])
import statsd
statsd.StatsClient(HOST, PORT).incr('app.orders', 1)
"#,
            c.id
        ),
    );
    let mine = [("name", name.as_str()), ("service", "shop")];
    wait_metric(&p, "app_orders_total", &mine, 3.0);
    wait_metric(&p, "app_queue", &[mine[0], mine[1], ("region", "eu")], 5.0);
    // The host's datagram may land in the next flush than the container's: wait for its series.
    p.wait_for(
        "the host's datagram as a series of its own",
        Duration::from_secs(20),
        |p| api_series(p, "app_orders_total").len() >= 2,
    );
    let orders = api_series(&p, "app_orders_total");
    assert_eq!(orders.len(), 2, "{orders:?}");
    assert!(
        orders.iter().any(|s| s["labels"].get("name").is_none()),
        "the host's datagram is host-level: {orders:?}"
    );
    let of_container = p.json(&format!(
        "/api/v1/series?name=app_orders_total&container={name}"
    ));
    assert_eq!(
        of_container["series"].as_array().unwrap().len(),
        1,
        "{of_container}"
    );

    drop(c);
    p.wait_for(
        "the container's StatsD series to go with it",
        Duration::from_secs(10),
        |p| {
            let left = api_series(p, "app_orders_total");
            left.len() == 1 && api_series(p, "app_queue").is_empty()
        },
    );
    // What was not the container's is intact.
    let m = metrics(&p);
    assert_eq!(metric_value(&m, "app_orders_total", &[]), Some(1.0), "{m}");
    assert!(!m.contains(&name), "{m}");
}

/// A Swarm task on an overlay network sends to its default gateway (docker_gwbridge's): the datagram
/// leaves from the task's docker_gwbridge address, which discovery records, so the series carries the
/// task's labels as the cluster-mode design says.
#[test]
fn a_swarm_tasks_datagrams_from_an_overlay_network_carry_its_task_labels() {
    let (p, port) = start_for_containers();
    let net = Overlay::create("statsd-ov");
    let svc = unique("statsd-svc");
    let _s = Service::create(&svc, 1, &["--network", &net.0]);
    let mut id = String::new();
    p.wait_for("the task's container", Duration::from_secs(60), |_| {
        id = docker_ok(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=com.docker.swarm.service.name={svc}"),
        ]);
        !id.is_empty()
    });
    let id = id.lines().next().unwrap().to_string();
    let cname = docker_ok(&["inspect", "-f", "{{.Name}}", &id])
        .trim_start_matches('/')
        .to_string();
    p.wait_for("the task in the directory", Duration::from_secs(20), |p| {
        p.container(&cname).is_some()
    });
    let pid = docker_ok(&["inspect", "-f", "{{.State.Pid}}", &id]);
    let to_host: SocketAddr = format!("{}:{port}", support::gwbridge_gateway())
        .parse()
        .unwrap();
    python_in(
        &["nsenter", "-t", &pid, "-n"],
        to_host,
        r#"
import statsd
statsd.StatsClient(HOST, PORT).incr('ov.orders', 3)
"#,
    );
    wait_metric(
        &p,
        "ov_orders_total",
        &[("name", cname.as_str()), ("service", svc.as_str())],
        3.0,
    );
    let m = metrics(&p);
    let line = m
        .lines()
        .find(|l| l.starts_with("ov_orders_total{"))
        .unwrap();
    assert!(
        line.contains("task=\"") && line.contains("slot=\"1\""),
        "{line}"
    );
}

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb * 1024
}

/// Sends `lines` over UDP, many to a datagram, paced so that the receiver's buffer never overflows.
fn send_lines(to: SocketAddr, lines: impl Iterator<Item = String>) {
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut packet = String::new();
    let mut sent = 0;
    for line in lines {
        if packet.len() + line.len() + 1 > 1400 {
            tx.send_to(packet.as_bytes(), to).unwrap();
            packet.clear();
            sent += 1;
            if sent % 200 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if !packet.is_empty() {
            packet.push('\n');
        }
        packet.push_str(&line);
    }
    if !packet.is_empty() {
        tx.send_to(packet.as_bytes(), to).unwrap();
    }
}

#[test]
fn a_cardinality_attack_is_capped_counted_and_leaves_other_series_intact() {
    let (p, udp) = start_with(&["--statsd-max-series-per-metric", "1000"]);
    send_lines(udp, ["steady:1|c|#service:shop".to_string()].into_iter());
    wait_metric(&p, "steady_total", &[("service", "shop")], 1.0);
    let before = rss_bytes(p.child.id());
    // 100,000 distinct tag values of one metric: the first 1000 are admitted, the rest counted.
    send_lines(udp, (0..100_000).map(|i| format!("attack:1|c|#user:u{i}")));
    send_lines(udp, ["steady:1|c|#service:shop".to_string()].into_iter());
    wait_metric(
        &p,
        "plimsoll_ingest_dropped_total",
        &[("source", "statsd"), ("reason", "family_limit")],
        99_000.0,
    );
    wait_metric(&p, "steady_total", &[("service", "shop")], 2.0);
    let first = rss_bytes(p.child.id());
    // More rounds of new values: memory reaches its bound (the line cache is capped at twice
    // --statsd-max-series, then rebuilt) and stays there.
    let mut after = Vec::new();
    for round in 1..3 {
        send_lines(
            udp,
            (round * 100_000..(round + 1) * 100_000).map(|i| format!("attack:1|c|#user:u{i}")),
        );
        wait_metric(
            &p,
            "plimsoll_ingest_dropped_total",
            &[("source", "statsd"), ("reason", "family_limit")],
            99_000.0 + round as f64 * 100_000.0,
        );
        after.push(rss_bytes(p.child.id()));
    }
    let (second, third) = (after[0], after[1]);
    let m = metrics(&p);
    assert_eq!(
        m.lines().filter(|l| l.starts_with("attack_total{")).count(),
        1000,
        "series capped at --statsd-max-series-per-metric"
    );
    assert_eq!(
        metric_value(&m, "plimsoll_statsd_series", &[]),
        Some(1001.0)
    );
    assert_eq!(
        metric_value(&m, "plimsoll_statsd_udp_kernel_drops_total", &[]),
        Some(0.0)
    );
    let mib = |b: u64| b as f64 / 1048576.0;
    let report = format!(
        "RSS {:.1} MiB before the attack, {:.1} / {:.1} / {:.1} after 100k / 200k / 300k values",
        mib(before),
        mib(first),
        mib(second),
        mib(third)
    );
    assert!(third < before + (64 << 20), "{report}");
    assert!(third < second + (4 << 20), "{report}");
    eprintln!("{report}");
    assert!(
        p.logs().matches("attack").count() <= 2,
        "one log line per metric name, not per drop:\n{}",
        p.logs()
    );
    wait_metric(&p, "steady_total", &[("service", "shop")], 2.0);
}

#[test]
fn a_counter_back_after_its_ttl_starts_over_from_zero() {
    let (p, udp) = start_with(&["--statsd-ttl", "1s"]);
    send_lines(udp, ["jobs:5|c".to_string()].into_iter());
    wait_metric(&p, "jobs_total", &[], 5.0);
    p.wait_for("the series to expire", Duration::from_secs(10), |p| {
        metric_value(&metrics(p), "plimsoll_statsd_series_expired_total", &[]) >= Some(1.0)
    });
    // Expired: no longer current, so not on /metrics.
    p.wait_for(
        "jobs_total to leave /metrics",
        Duration::from_secs(5),
        |p| metric_value(&metrics(p), "jobs_total", &[]).is_none(),
    );
    send_lines(udp, ["jobs:2|c".to_string()].into_iter());
    wait_metric(&p, "jobs_total", &[], 2.0);
    let s = &api_series(&p, "jobs_total")[0];
    let values: Vec<f64> = s["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[1].as_f64().unwrap())
        .collect();
    // 5 ... then a zero point where it starts over, then 2: a reset, never a drop of -3.
    let first_five = values
        .iter()
        .position(|v| *v == 5.0)
        .expect("the first life");
    let restart = values
        .iter()
        .rposition(|v| *v == 0.0)
        .expect("a zero point");
    assert!(first_five < restart, "{values:?}");
    assert!(
        values[restart + 1..].iter().all(|v| *v == 2.0),
        "{values:?}"
    );
    assert!(
        s["rates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r[1].as_f64() >= Some(0.0)),
        "{s}"
    );
}

#[test]
fn the_datadog_client_over_the_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsd.socket");
    let (p, udp) = start_with(&["--statsd-unix", path.to_str().unwrap()]);
    python(
        udp,
        &format!(
            r#"
from datadog.dogstatsd import DogStatsd
d = DogStatsd(socket_path='{}', disable_telemetry=True, origin_detection_enabled=False)
d.increment('uds.orders', 3, tags=['service:shop'])
d.flush()
"#,
            path.display()
        ),
    );
    wait_metric(&p, "uds_orders_total", &[("service", "shop")], 3.0);
    let m = metrics(&p);
    assert_eq!(
        metric_value(
            &m,
            "plimsoll_statsd_packets_received_total",
            &[("transport", "unix")]
        ),
        Some(1.0),
        "{m}"
    );
    drop(p);
    // The socket file a killed collector left behind is replaced at the next start.
    let (p, _) = start_with(&["--statsd-unix", path.to_str().unwrap()]);
    assert_eq!(p.get("/healthz").unwrap().0, 200);
}

#[test]
fn plimsoll_run_receives_statsd_too() {
    let policies = tempfile::tempdir().unwrap();
    let udp = free_udp_addr();
    let p = Plimsoll::run(
        policies.path(),
        &["--dry-run", "--statsd-udp", &udp.to_string()],
    );
    python(
        udp,
        "import statsd\nstatsd.StatsClient(HOST, PORT).gauge('run.queue', 4)\n",
    );
    wait_metric(&p, "run_queue", &[], 4.0);
    assert_eq!(api_series(&p, "run_queue")[0]["kind"], "gauge");
}
