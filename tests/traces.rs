//! OTLP spans from the official OpenTelemetry Python SDK (HTTP with gzip, and gRPC exporters) and
//! the Rust SDK with `opentelemetry-otlp` (gRPC, HTTP protobuf, HTTP JSON) into RED metrics, the
//! service graph and the topology of a running `plimsoll collect`.
//!
//! `tests/support/send_spans.py` reports two services calling each other (`front` → `back`, every
//! fifth call failing in back) and an uninstrumented Redis call of back. Each protocol sends under
//! service names of its own, so the two runs check the same figures independently.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{free_addr, http_request, series_value as value, Plimsoll};

const CALLS: u32 = 20;

fn send(protocol: &str, endpoint: &str, suffix: &str) {
    send_split(protocol, endpoint, endpoint, suffix)
}

/// As [`send`], with `back`'s spans going to `back_endpoint` (another collector).
fn send_split(protocol: &str, endpoint: &str, back_endpoint: &str, suffix: &str) {
    let calls = CALLS.to_string();
    let args = [protocol, endpoint, &calls, suffix, back_endpoint];
    support::otel::python_sdk("send_spans.py", &args);
}

/// The same calls as send_spans.py, from the Rust SDK and `opentelemetry-otlp` (`grpc`,
/// `http-proto` or `http-json`), with the same fixed durations.
fn rust_sdk(protocol: &str, endpoint: &str, suffix: &str) {
    use std::time::{Duration as D, SystemTime};

    use opentelemetry::trace::{
        Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
    };
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_otlp::SpanExporter;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::Resource;

    let rt = support::otel::sdk_runtime();
    let provider = |service: &str| {
        let exporter = support::otel::otlp_exporter!(
            SpanExporter::builder(),
            rt,
            protocol,
            endpoint,
            "/v1/traces"
        );
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(format!("{service}{suffix}"))
                    .build(),
            )
            .build()
    };
    let (front_p, back_p) = (provider("front"), provider("back"));
    let (front, back) = (front_p.tracer("shop.front"), back_p.tracer("shop.back"));
    let ms = |n: u64| D::from_millis(n);
    for i in 0..CALLS {
        let t = SystemTime::now();
        let root = front
            .span_builder("GET /checkout")
            .with_kind(SpanKind::Server)
            .with_start_time(t)
            .start(&front);
        let root_cx = Context::current_with_span(root);
        let call = front
            .span_builder("GET /stock")
            .with_kind(SpanKind::Client)
            .with_start_time(t + ms(5))
            .start_with_context(&front, &root_cx);
        let call_cx = Context::current_with_span(call);
        let served = back
            .span_builder("GET /stock")
            .with_kind(SpanKind::Server)
            .with_start_time(t + ms(10))
            .start_with_context(&back, &call_cx);
        let served_cx = Context::current_with_span(served);
        let mut db = back
            .span_builder("GET")
            .with_kind(SpanKind::Client)
            .with_start_time(t + ms(12))
            .with_attributes([KeyValue::new("db.system", "redis")])
            .start_with_context(&back, &served_cx);
        db.end_with_timestamp(t + ms(15));
        if i % 5 == 0 {
            served_cx.span().set_status(Status::error("out of stock"));
        }
        served_cx.span().end_with_timestamp(t + ms(40));
        call_cx.span().end_with_timestamp(t + ms(45));
        root_cx.span().end_with_timestamp(t + ms(125));
    }
    // Shutting down flushes the batches; the gRPC exporter's calls need the runtime.
    let _in_rt = rt.enter();
    for p in [front_p, back_p] {
        p.shutdown().expect("flushing the spans");
    }
}

fn metrics(p: &Plimsoll) -> String {
    p.get("/metrics").expect("GET /metrics").1
}

fn check(p: &Plimsoll, suffix: &str) {
    let (front, back) = (format!("front{suffix}"), format!("back{suffix}"));
    let calls = |svc: &str, span: &str, kind: &str, status: &str| {
        format!(
            r#"traces_span_metrics_calls_total{{service_name="{svc}",span_name="{span}",span_kind="SPAN_KIND_{kind}",status_code="STATUS_CODE_{status}"}}"#
        )
    };
    let edge = |name: &str, client: &str, server: &str, ct: &str| {
        format!(r#"{name}{{client="{client}",server="{server}",connection_type="{ct}"}}"#)
    };
    let n = f64::from(CALLS);
    let want = [
        (calls(&front, "GET /checkout", "SERVER", "UNSET"), n),
        (calls(&front, "GET /stock", "CLIENT", "UNSET"), n),
        (calls(&back, "GET /stock", "SERVER", "UNSET"), n * 4.0 / 5.0),
        (calls(&back, "GET /stock", "SERVER", "ERROR"), n / 5.0),
        (calls(&back, "GET", "CLIENT", "UNSET"), n),
        (
            edge("traces_service_graph_request_total", &front, &back, ""),
            n,
        ),
        (
            edge(
                "traces_service_graph_request_failed_total",
                &front,
                &back,
                "",
            ),
            n / 5.0,
        ),
        // Unpaired after the 2 s wait: the root spans' client is the user, Redis a virtual node.
        (
            edge(
                "traces_service_graph_request_total",
                "user",
                &front,
                "virtual_node",
            ),
            n,
        ),
        (
            edge(
                "traces_service_graph_request_total",
                &back,
                "redis",
                "virtual_node",
            ),
            n,
        ),
    ];
    p.wait_for(
        &format!("the spans of run {suffix} on /metrics"),
        Duration::from_secs(30),
        |p| {
            let text = metrics(p);
            want.iter().all(|(s, v)| value(&text, s) == Some(*v))
        },
    );
    let text = metrics(p);
    // Durations are fixed: the root spans take 125 ms, back's server spans 30 ms.
    let root = r#"service_name="front"#.to_string()
        + suffix
        + r#"",span_name="GET /checkout",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET""#;
    for (le, v) in [("100", 0.0), ("200", n), ("+Inf", n)] {
        let line =
            format!(r#"traces_span_metrics_duration_milliseconds_bucket{{{root},le="{le}"}}"#);
        assert_eq!(value(&text, &line), Some(v), "{line}\n{text}");
    }
    let served = format!(r#"client="{front}",server="{back}",connection_type="""#);
    for (le, v) in [("0.01", 0.0), ("0.05", n), ("+Inf", n)] {
        let line =
            format!(r#"traces_service_graph_request_server_seconds_bucket{{{served},le="{le}"}}"#);
        assert_eq!(value(&text, &line), Some(v), "{line}\n{text}");
    }
    // The topology names the same nodes and edges.
    let t = p.json("/api/v1/topology?window=5m");
    let nodes = t["nodes"].as_array().unwrap();
    let node = |id: &str| {
        nodes
            .iter()
            .find(|x| x["id"] == id)
            .unwrap_or_else(|| panic!("no node {id} in {t}"))
    };
    assert_eq!(node(&front)["kind"], "service");
    assert_eq!(node(&back)["kind"], "service");
    assert_eq!(node("redis")["kind"], "virtual");
    assert_eq!(node("user")["kind"], "virtual");
    let e = t["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["client"] == front.as_str() && e["server"] == back.as_str())
        .unwrap_or_else(|| panic!("no edge {front} -> {back} in {t}"));
    assert_eq!(e["connection_type"], "");
}

/// A `plimsoll collect` receiving OTLP on free gRPC and HTTP ports.
fn collector() -> (Plimsoll, SocketAddr, SocketAddr) {
    let (grpc, http) = (free_addr(), free_addr());
    let p = Plimsoll::start(
        "collect",
        &[
            "--otlp-grpc",
            &grpc.to_string(),
            "--otlp-http",
            &http.to_string(),
        ],
    );
    (p, grpc, http)
}

#[test]
fn python_sdk_spans_over_http_and_grpc_become_red_metrics_a_service_graph_and_a_topology() {
    let (p, grpc, http) = collector();
    send("http", &format!("http://{http}/v1/traces"), "-http");
    send("grpc", &grpc.to_string(), "-grpc");
    check(&p, "-http");
    check(&p, "-grpc");
    let text = metrics(&p);
    assert_eq!(
        value(&text, r#"plimsoll_servicegraph_edges_total{how="paired"}"#),
        Some(f64::from(2 * CALLS)),
        "{text}"
    );
}

#[test]
fn rust_sdk_spans_over_grpc_http_protobuf_and_http_json_give_the_same_figures() {
    let (p, grpc, http) = collector();
    rust_sdk("grpc", &grpc.to_string(), "-rs-grpc");
    rust_sdk("http-proto", &http.to_string(), "-rs-proto");
    rust_sdk("http-json", &http.to_string(), "-rs-json");
    for suffix in ["-rs-grpc", "-rs-proto", "-rs-json"] {
        check(&p, suffix);
    }
}

#[test]
fn spans_without_a_service_name_are_rejected_as_a_partial_success() {
    let http = free_addr();
    let p = Plimsoll::start(
        "collect",
        &["--otlp-grpc", "off", "--otlp-http", &http.to_string()],
    );
    let span = |id: &str| {
        format!(
            r#"{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"{id}","name":"GET /x","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2000001"}}"#
        )
    };
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"named-{pid}"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}},{{"scopeSpans":[{{"spans":[{},{}]}}]}}]}}"#,
        span("eee19b7ec3c1b174"),
        span("eee19b7ec3c1b175"),
        span("eee19b7ec3c1b176"),
        pid = std::process::id()
    );
    let (code, resp) = http_request(
        http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        &body,
    )
    .unwrap();
    assert_eq!(code, 200, "{resp}");
    let j: serde_json::Value = serde_json::from_str(&resp).unwrap();
    let ps = &j["partialSuccess"];
    assert_eq!(
        ps["rejectedSpans"].to_string().trim_matches('"'),
        "2",
        "{resp}"
    );
    assert!(
        ps["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("service.name"),
        "{resp}"
    );
    let series = format!(
        r#"traces_span_metrics_calls_total{{service_name="named-{}",span_name="GET /x",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"}}"#,
        std::process::id()
    );
    // Bad requests to the JSON API are answered 400 with the reason.
    for (path, want) in [
        ("/api/v1/topology?window=soon", "window"),
        ("/api/v1/topology?window=1h", "at most the store's window"),
        ("/api/v1/topology?since=5m", "unknown field"),
    ] {
        let (code, body) = p.get(path).unwrap();
        assert_eq!(code, 400, "{path}: {body}");
        assert!(body.contains(want), "{path}: {body}");
    }
    let (code, body) = http_request(
        p.addr,
        "POST",
        "/api/v1/spans/halves",
        &[("Content-Type", "application/json")],
        r#"[{"trace_id": "nope"}]"#,
    )
    .unwrap();
    assert_eq!(code, 400, "{body}");
    p.wait_for("the accepted span", Duration::from_secs(10), |p| {
        value(&metrics(p), &series) == Some(1.0)
    });
    assert!(
        value(
            &metrics(&p),
            r#"plimsoll_spans_rejected_total{reason="no_service_name"}"#
        ) >= Some(2.0)
    );
}

/// Cluster mode: `front` reports to one collector and `back` to another, as on two nodes. Each
/// forwards the edge halves of the traces the other owns, so every call is paired exactly once
/// across the two, and no half expires into a virtual node for want of its other half.
#[test]
fn two_collectors_pair_the_calls_whose_spans_each_received_half_of() {
    let (a, b): (SocketAddr, SocketAddr) = (free_addr(), free_addr());
    let peers = format!("{a},{b}");
    let start = |listen: SocketAddr, http: SocketAddr| {
        Plimsoll::start_at(
            listen,
            "collect",
            &[
                "--otlp-grpc",
                "off",
                "--otlp-http",
                &http.to_string(),
                "--spans-peers",
                &peers,
            ],
        )
    };
    let (http_a, http_b) = (free_addr(), free_addr());
    let (pa, pb) = (start(a, http_a), start(b, http_b));
    send_split(
        "http",
        &format!("http://{http_a}/v1/traces"),
        &format!("http://{http_b}/v1/traces"),
        "-split",
    );
    let total = |series: &str| -> f64 {
        [&pa, &pb]
            .iter()
            .map(|p| value(&metrics(p), series).unwrap_or(0.0))
            .sum()
    };
    let n = f64::from(CALLS);
    let paired = r#"traces_service_graph_request_total{client="front-split",server="back-split",connection_type=""}"#;
    let user = r#"traces_service_graph_request_total{client="user",server="front-split",connection_type="virtual_node"}"#;
    let redis = r#"traces_service_graph_request_total{client="back-split",server="redis",connection_type="virtual_node"}"#;
    pa.wait_for(
        "every call paired across the two collectors",
        Duration::from_secs(30),
        |_| total(paired) == n && total(user) == n && total(redis) == n,
    );
    assert_eq!(
        total(
            r#"traces_service_graph_request_failed_total{client="front-split",server="back-split",connection_type=""}"#
        ),
        n / 5.0
    );
    // No client half expired unpaired (it would be an edge to `unknown`).
    let unknown = r#"traces_service_graph_request_total{client="front-split",server="unknown",connection_type="virtual_node"}"#;
    assert_eq!(total(unknown), 0.0);
    for p in [&pa, &pb] {
        let text = metrics(p);
        assert!(
            value(&text, "plimsoll_servicegraph_forwarded_total").is_some_and(|v| v > 0.0),
            "{text}"
        );
    }
    // Each collector counts the spans it received itself: the RED metrics add up across them.
    assert_eq!(
        value(
            &metrics(&pa),
            r#"traces_span_metrics_calls_total{service_name="front-split",span_name="GET /checkout",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"}"#
        ),
        Some(n)
    );
    assert_eq!(
        value(
            &metrics(&pb),
            r#"traces_span_metrics_calls_total{service_name="back-split",span_name="GET /stock",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR"}"#
        ),
        Some(n / 5.0)
    );
}

/// `GET /metrics` of a collector that is not a child of this test (a Swarm task).
fn remote_metrics(addr: SocketAddr) -> String {
    support::http_get(addr, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// Cluster mode as a Swarm deployment runs it (README "Cluster mode: where each signal goes"): the
/// collectors are a global Swarm service on the host network of each of two extra nodes (dockerd in
/// namespaces of their own, tests/support/swarm.rs), given the nodes' addresses as `--spans-peers`.
/// `front` reports to node A's collector and `back` to node B's: each call's edge is counted once in
/// the cluster, by the owner of its trace, and no half expires into a virtual node. Then node B dies
/// with its collector: A counts the halves of its first batch for B as `send_failed`, marks B down,
/// and pairs every trace itself while B stays down, with nothing left queued.
#[test]
fn a_global_collector_service_on_two_swarm_nodes_pairs_each_call_once() {
    let tag = support::unique("spans-swarm");
    let nodes = support::swarm::Nodes::workers(&tag, 2, &[("spanstest", &tag)]);
    let (node_a, node_b) = (&nodes.nodes[0], &nodes.nodes[1]);
    let _routes = support::swarm::NodeRoutes::between(&nodes.nodes);
    let api =
        |n: &support::swarm::Node| -> SocketAddr { format!("{}:9180", n.address).parse().unwrap() };
    let (a, b) = (api(node_a), api(node_b));
    // The `plimsoll` under test, run by the busybox test image (loaded on every node) from the host's
    // file system, as a FROM-scratch image of it would run.
    let bin = support::plimsoll_bin().display().to_string();
    let mut mounts = vec![format!("type=bind,src={bin},dst=/plimsoll,readonly")];
    for l in ["/lib", "/lib64"] {
        if let Ok(real) = std::fs::canonicalize(l) {
            mounts.push(format!("type=bind,src={},dst={l},readonly", real.display()));
        }
    }
    let constraint = format!("node.labels.spanstest=={tag}");
    let mut flags = vec![
        "--mode",
        "global",
        "--network",
        "host",
        "--constraint",
        &constraint,
    ];
    for m in &mounts {
        flags.extend(["--mount", m.as_str()]);
    }
    let cmd = format!(
        "exec /plimsoll collect --listen 0.0.0.0:9180 --otlp-grpc off --otlp-http 0.0.0.0:4318 --spans-peers {a},{b}"
    );
    let _svc = support::Service::create_placed(&tag, support::IMAGE, &flags, &["sh", "-c", &cmd]);
    for addr in [a, b] {
        support::swarm::wait_until(
            &format!("the collector task at {addr}"),
            Duration::from_secs(90),
            || support::http_get(addr, "/healthz").is_ok_and(|(c, _)| c == 200),
        );
    }
    let otlp = |n: &support::swarm::Node| format!("http://{}:4318/v1/traces", n.address);
    send_split("http", &otlp(node_a), &otlp(node_b), "-swarm");

    let n = f64::from(CALLS);
    let edge = |client: &str, server: &str, ct: &str| {
        format!(
            r#"traces_service_graph_request_total{{client="{client}",server="{server}",connection_type="{ct}"}}"#
        )
    };
    let paired = edge("front-swarm", "back-swarm", "");
    let on = |addr: SocketAddr, series: &str| value(&remote_metrics(addr), series).unwrap_or(0.0);
    let total = |series: &str| on(a, series) + on(b, series);
    let graph = |addr: SocketAddr| -> String {
        remote_metrics(addr)
            .lines()
            .filter(|l| {
                l.contains("-swarm") && l.starts_with("traces_service_graph_request_total")
                    || l.starts_with("plimsoll_servicegraph_forward")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let start = std::time::Instant::now();
    while !(total(&paired) == n
        && total(&edge("user", "front-swarm", "virtual_node")) == n
        && total(&edge("back-swarm", "redis", "virtual_node")) == n)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "every call paired once across the two nodes:\nA:\n{}\nB:\n{}",
            graph(a),
            graph(b)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Both own some of the traces (20 random trace ids), and both forwarded to the other.
    assert!(
        on(a, &paired) > 0.0 && on(b, &paired) > 0.0,
        "{}",
        remote_metrics(a)
    );
    for addr in [a, b] {
        assert!(
            on(addr, "plimsoll_servicegraph_forwarded_total") > 0.0,
            "{addr}"
        );
    }
    // No half waited in vain for its other one: no edge to `unknown`, no server without a client.
    assert_eq!(total(&edge("front-swarm", "unknown", "virtual_node")), 0.0);
    assert_eq!(total(&edge("user", "back-swarm", "virtual_node")), 0.0);
    let failed = r#"plimsoll_servicegraph_forward_dropped_total{reason="send_failed"}"#;
    assert_eq!(on(a, failed), 0.0);

    // Node B is gone with its collector. Both services now report to A, which still lists B.
    nodes.kill(&node_b.hostname);
    support::swarm::wait_until("B's collector gone", Duration::from_secs(30), || {
        support::http_get(b, "/healthz").is_err()
    });
    send("http", &otlp(node_a), "-alone");
    // The first batch for B fails: A counts its halves as `send_failed`, marks B down (once) and
    // from then on pairs B's traces itself; B's retries are empty batches, so nothing more is lost
    // while it stays down.
    let peer_up = format!(r#"plimsoll_spans_peer_up{{peer="{b}"}}"#);
    let peer_down = format!(r#"plimsoll_spans_peer_down_total{{peer="{b}"}}"#);
    support::swarm::wait_until(
        "B marked down, its first batch counted as failed",
        Duration::from_secs(60),
        || {
            let text = remote_metrics(a);
            value(&text, &peer_up) == Some(0.0)
                && value(&text, &peer_down) == Some(1.0)
                && value(&text, failed).is_some_and(|f| f > 0.0)
        },
    );
    let lost = on(a, failed);
    // Each call is one trace of four halves (front's root server span and client span, back's
    // server span and Redis client span).
    assert!(lost <= 4.0 * n, "{lost}");
    // Another round while B is down: A owns every trace, every call is paired there, nothing lost.
    send("http", &otlp(node_a), "-down");
    let paired = edge("front-down", "back-down", "");
    let user = edge("user", "front-down", "virtual_node");
    support::swarm::wait_until(
        "every call paired on A while B is down",
        Duration::from_secs(60),
        || {
            let text = remote_metrics(a);
            value(&text, &paired) == Some(n) && value(&text, &user) == Some(n)
        },
    );
    let text = remote_metrics(a);
    assert_eq!(value(&text, failed), Some(lost), "{text}");
    assert_eq!(value(&text, &peer_down), Some(1.0), "down once: {text}");
    assert!(
        value(&text, "plimsoll_servicegraph_forward_rerouted_total").is_some(),
        "{text}"
    );
    assert_eq!(
        value(&text, "plimsoll_servicegraph_forward_queued"),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            r#"plimsoll_servicegraph_forward_dropped_total{reason="queue_full"}"#
        ),
        Some(0.0)
    );
    assert!(support::http_get(a, "/healthz").is_ok_and(|(c, _)| c == 200));
}
