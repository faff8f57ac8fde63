//! What the collectors source makes of series as the collectors' JSON API serves them; discovery
//! mapping, read plans and the concurrent reader, with a fake swarm listing and fake collectors over
//! paused time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::discovery::{
    collectors_of, ClusterListing, Collectors, Discover, Endpoint, Listed, SwarmCollectors,
};
use super::fetch::{Http, Reader};
use super::*;
use crate::control::source::ReplicaRef;
use crate::nodes::cluster::{Cluster, NodeView, TaskView};
use crate::nodes::testutil::{cluster, manager, node, task};
use crate::nodes::SwarmError;

/// A series as `GET /api/v1/series` serves it.
fn served(json: &str) -> RemoteSeries {
    serde_json::from_str(json).unwrap()
}

fn p(phi: f64) -> MetricRead {
    MetricRead::new(
        "p",
        "traces_span_metrics_duration_milliseconds",
        Read::Quantile {
            phi,
            window: Duration::from_secs(60),
            scale: 0.001,
        },
        Scope::Service,
        &[("service_name", "checkout")],
    )
}

fn read(m: &MetricRead, series: &[&str]) -> Result<f64, Missing> {
    let req = Request {
        service: "shop_checkout",
        replicas: &[],
        metrics: std::slice::from_ref(m),
    };
    let Read::Quantile { phi, scale, .. } = m.query.read else {
        unreachable!()
    };
    quantile(
        &req,
        m,
        phi,
        scale,
        series.iter().map(|s| served(s)).collect(),
    )
}

#[test]
fn a_quantile_sums_the_buckets_of_every_collector_by_le() {
    // Node A saw 90 fast calls, node B 10 slow ones and one of another span of the same service.
    let a = r#"{"kind":"histogram","labels":{"service_name":"checkout","span_name":"GET /"},
        "points":[[0,0],[60000,90]],
        "buckets":[["100",90],["300",90],["1000",90],["+Inf",90]]}"#;
    let b = r#"{"kind":"histogram","labels":{"service_name":"checkout","span_name":"GET /"},
        "points":[[0,0],[60000,10]],
        "buckets":[["100",0],["300",0],["1000",10],["+Inf",10]]}"#;
    // rank 95 of 100: 5 of the 10 in (300, 1000] ms = 650 ms, which neither collector alone has.
    let got = read(&p(0.95), &[a, b]).unwrap();
    assert!((got - 0.65).abs() < 1e-9, "{got}");
    // rank 50 of 90 in (0, 100] ms.
    let got = read(&p(0.5), &[a, b]).unwrap();
    assert!((got - 0.1 * 50.0 / 90.0).abs() < 1e-9, "{got}");
    // Node A alone: all fast.
    assert!(read(&p(0.95), &[a]).unwrap() < 0.1);
}

#[test]
fn a_quantile_says_why_it_has_no_value() {
    let counter =
        r#"{"kind":"counter","labels":{"service_name":"checkout"},"points":[[0,0],[1000,5]]}"#;
    assert_eq!(read(&p(0.9), &[counter]), Err(Missing::NotAHistogram));
    assert_eq!(read(&p(0.9), &[]), Err(Missing::NoSeries));
    // One point in the window: the collector serves no buckets.
    let young = r#"{"kind":"histogram","labels":{"service_name":"checkout"},"points":[[0,3]]}"#;
    assert_eq!(read(&p(0.9), &[young]), Err(Missing::NoRecentSample));
    // Buckets without calls in the window.
    let idle = r#"{"kind":"histogram","labels":{"service_name":"checkout"},"points":[[0,3],[9,3]],
        "buckets":[["100",0],["+Inf",0]]}"#;
    assert_eq!(read(&p(0.9), &[idle]), Err(Missing::NoRecentSample));
    // Points to compute an increase from but no buckets: an older collector.
    let old = r#"{"kind":"histogram","labels":{"service_name":"checkout"},"points":[[0,3],[9,5]]}"#;
    assert_eq!(read(&p(0.9), &[old]), Err(Missing::NotServed));
}

const C1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const C2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const C3: &str = "3333333333333333333333333333333333333333333333333333333333333333";

fn at(mut n: NodeView, addr: &str) -> NodeView {
    n.addr = addr.into();
    n
}

fn collector_task(id: &str, service: &str, node: &str) -> TaskView {
    let mut t = task(id, service, Some(node), 0.0, 0.0);
    t.global = true;
    t
}

/// Three workers and a manager; the collector service `plim_collector` (a stack's) runs on n1, n2
/// and the manager, its task on n3 is not running; `web` runs t1 on n1, t2 on n2, t3 on n3.
fn swarm() -> Cluster {
    let mut stopped = collector_task("col3", "plim_collector", "n3");
    stopped.running = false;
    cluster(
        vec![
            at(node("n1", None, 2.0, 4.0), "10.0.0.1"),
            at(node("n2", None, 2.0, 4.0), "10.0.0.2"),
            at(node("n3", None, 2.0, 4.0), "10.0.0.3"),
            at(manager("m", None, 2.0, 4.0), "0.0.0.0"),
        ],
        vec![
            collector_task("col1", "plim_collector", "n1"),
            collector_task("col2", "plim_collector", "n2"),
            stopped,
            collector_task("colm", "plim_collector", "m"),
            task("t1", "web", Some("n1"), 0.1, 0.1),
            task("t2", "web", Some("n2"), 0.1, 0.1),
            task("t3", "web", Some("n3"), 0.1, 0.1),
            task("t4", "web", None, 0.1, 0.1),
        ],
    )
}

fn ep(url: &str, node: &str) -> Endpoint {
    Endpoint {
        url: url.into(),
        node: Some(node.into()),
    }
}

#[test]
fn swarm_collectors_are_the_running_tasks_at_their_nodes_addresses() {
    let (found, skipped) = collectors_of(&swarm(), "collector", None, 9180).unwrap();
    assert_eq!(
        found.endpoints,
        [
            ep("http://10.0.0.1:9180", "n1"),
            ep("http://10.0.0.2:9180", "n2")
        ],
        "n3's task is not running; the manager has no usable address"
    );
    assert_eq!(skipped, ["m"]);
    assert_eq!(
        found.absent,
        [ep("http://10.0.0.3:9180", "n3")],
        "n3 runs tasks, its collector's is not running"
    );
    assert_eq!(found.task_nodes["t1"], "n1");
    assert_eq!(found.task_nodes["t3"], "n3");
    assert!(
        !found.task_nodes.contains_key("t4"),
        "a pending task is on no node"
    );
    // The full name works too, and the port is the one given.
    let (full, _) = collectors_of(&swarm(), "plim_collector", None, 9999).unwrap();
    assert_eq!(full.endpoints[0].url, "http://10.0.0.1:9999");
}

#[test]
fn a_missing_or_ambiguous_collector_service_is_an_error_that_says_so() {
    let e = collectors_of(&swarm(), "nothere", None, 9180).unwrap_err();
    assert!(e.contains("no task of a service named nothere"), "{e}");
    let mut c = swarm();
    c.tasks
        .push(collector_task("other", "second_collector", "n1"));
    let e = collectors_of(&c, "collector", None, 9180).unwrap_err();
    assert!(
        e.contains("plim_collector, second_collector") && e.contains("swarm:NAME"),
        "{e}"
    );
    // The autoscaler's own stack (PLIMSOLL_STACK in the stack file) settles it.
    let (found, _) = collectors_of(&c, "collector", Some("second"), 9180).unwrap();
    assert_eq!(found.endpoints, [ep("http://10.0.0.1:9180", "n1")]);
    // An IPv6 node address is bracketed.
    let c = cluster(
        vec![at(node("n1", None, 1.0, 1.0), "fd00::1")],
        vec![collector_task("c", "collector", "n1")],
    );
    let (found, _) = collectors_of(&c, "collector", None, 9180).unwrap();
    assert_eq!(found.endpoints[0].url, "http://[fd00::1]:9180");
}

/// What the fake listing answers (None: never) and how often it was asked.
type Listing = (Option<Result<Cluster, String>>, usize);

/// A swarm listing that answers what the test last set, counting its calls.
#[derive(Clone, Default)]
struct FakeListing(Arc<Mutex<Listing>>);

impl FakeListing {
    fn set(&self, c: Result<Cluster, &str>) {
        self.0.lock().unwrap().0 = Some(c.map_err(str::to_string));
    }
    fn calls(&self) -> usize {
        self.0.lock().unwrap().1
    }
}

impl ClusterListing for FakeListing {
    async fn cluster(&self) -> Result<Cluster, SwarmError> {
        let answer = {
            let mut s = self.0.lock().unwrap();
            s.1 += 1;
            s.0.clone()
        };
        match answer {
            Some(Ok(c)) => Ok(c),
            Some(Err(e)) => Err(SwarmError::Unreachable(e)),
            // Never answers: the discovery's timeout applies.
            None => std::future::pending().await,
        }
    }
}

fn urls(c: &Collectors) -> Vec<&str> {
    c.endpoints.iter().map(|e| e.url.as_str()).collect()
}

#[tokio::test(start_paused = true)]
async fn discovery_lists_once_per_refresh_follows_nodes_and_keeps_the_last_list_on_failure() {
    let listing = FakeListing::default();
    let d = SwarmCollectors::new(
        listing.clone(),
        "collector",
        None,
        9180,
        Duration::from_secs(5),
        Duration::from_secs(2),
    );
    // A listing that hangs, with nothing known yet: an error after the timeout, no crash.
    let start = Instant::now();
    let e = d.collectors().await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(e.to_string().contains("no answer within 2s"), "{e}");

    tokio::time::advance(Duration::from_secs(5)).await;
    listing.set(Ok(swarm()));
    let first = d.collectors().await.unwrap();
    assert_eq!(
        urls(&first),
        ["http://10.0.0.1:9180", "http://10.0.0.2:9180"]
    );
    let calls = listing.calls();
    // Within the refresh every target shares that listing.
    for _ in 0..10 {
        d.collectors().await.unwrap();
    }
    assert_eq!(listing.calls(), calls);

    // n3's collector starts, n1 leaves the swarm: seen at the next refresh.
    let mut c = swarm();
    c.tasks.retain(|t| t.node_id.as_deref() != Some("n1"));
    c.nodes.retain(|n| n.id != "n1");
    c.tasks.iter_mut().for_each(|t| {
        if t.id == "col3" {
            t.running = true
        }
    });
    listing.set(Ok(c));
    assert_eq!(urls(&d.collectors().await.unwrap()), urls(&first));
    tokio::time::advance(Duration::from_secs(5)).await;
    let now = d.collectors().await.unwrap();
    assert_eq!(urls(&now), ["http://10.0.0.2:9180", "http://10.0.0.3:9180"]);
    assert_eq!(listing.calls(), calls + 1);

    // The manager unreachable: the last list is kept, listed again at the next refresh.
    listing.set(Err("connection refused"));
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(d.collectors().await.unwrap(), now);
    assert_eq!(listing.calls(), calls + 2);
}

fn replica(task: &str, container: &str) -> ReplicaRef {
    ReplicaRef {
        replica: task.into(),
        container: container.into(),
    }
}

fn metrics() -> Vec<MetricRead> {
    vec![
        MetricRead::new("rps", "requests_total", Read::Auto, Scope::Replica, &[]),
        MetricRead::new("queue", "queue_depth", Read::Auto, Scope::Service, &[]),
        MetricRead::new(
            "p99",
            "latency_seconds",
            Read::Quantile {
                phi: 0.99,
                window: Duration::from_secs(60),
                scale: 1.0,
            },
            Scope::Service,
            &[],
        ),
    ]
}

/// (url, containers, metric names) of each plan.
fn shown(plans: &[Plan<'_>]) -> Vec<(String, bool, Vec<String>)> {
    plans
        .iter()
        .map(|p| {
            (
                p.endpoint.url.clone(),
                p.containers,
                p.metrics.iter().map(|m| m.name.clone()).collect(),
            )
        })
        .collect()
}

#[test]
fn replicas_are_asked_of_their_nodes_collector_and_service_metrics_of_all() {
    let mut c = collectors_of(&swarm(), "collector", None, 9180).unwrap().0;
    c.endpoints.push(ep("http://10.0.0.3:9180", "n3"));
    let m = metrics();
    let replicas = [replica("t2", C2)];
    let req = Request {
        service: "web",
        replicas: &replicas,
        metrics: &m,
    };
    let s = |u: &str, c, m: &[&str]| (u.to_string(), c, m.iter().map(|x| x.to_string()).collect());
    assert_eq!(
        shown(&plan(&c, &req)),
        [
            s("http://10.0.0.1:9180", false, &["queue", "p99"]),
            s("http://10.0.0.2:9180", true, &["rps", "queue", "p99"]),
            s("http://10.0.0.3:9180", false, &["queue", "p99"]),
        ],
        "the quantile is a service-level metric too"
    );
    // Per-replica metrics only: the other nodes are not asked at all.
    let only = &m[..1];
    let req1 = Request {
        metrics: only,
        ..req
    };
    assert_eq!(
        shown(&plan(&c, &req1)),
        [s("http://10.0.0.2:9180", true, &["rps"])]
    );
    // A task newer than the listing: its node is unknown, every collector may run it.
    let replicas = [replica("t2", C2), replica("new", C3)];
    let req2 = Request {
        replicas: &replicas,
        ..req1
    };
    assert_eq!(plan(&c, &req2).len(), 3);
    assert!(plan(&c, &req2).iter().all(|p| p.containers));
    // Listed URLs have no node: each is asked for everything.
    let listed = Collectors::listed(vec!["http://a:9180/".into()]);
    assert_eq!(
        shown(&plan(&listed, &req)),
        [s("http://a:9180", true, &["rps", "queue", "p99"])]
    );
}

/// How a fake collector answers.
#[derive(Clone)]
enum Behaviour {
    /// After `delay`: its containers and, by metric name, its series (404 for others).
    Serve {
        delay: Duration,
        containers: Value,
        series: HashMap<String, Value>,
    },
    Refuse,
    Hang,
}

#[derive(Default)]
struct FakeState {
    by_base: HashMap<String, Behaviour>,
    calls: Vec<String>,
    in_flight: usize,
    max_in_flight: usize,
}

#[derive(Clone, Default)]
struct FakeHttp(Arc<Mutex<FakeState>>);

impl FakeHttp {
    fn set(&self, base: &str, b: Behaviour) {
        self.0.lock().unwrap().by_base.insert(base.into(), b);
    }
    fn calls_to(&self, base: &str) -> usize {
        let prefix = format!("{base}/");
        self.0
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.starts_with(&prefix))
            .count()
    }
}

impl Http for FakeHttp {
    async fn get(&self, url: &str) -> Result<Option<Vec<u8>>, SourceError> {
        let behaviour = {
            let mut s = self.0.lock().unwrap();
            s.calls.push(url.to_string());
            let b = s
                .by_base
                .iter()
                .find(|(base, _)| url.starts_with(&format!("{base}/")))
                .map(|(_, b)| b.clone())
                .expect("a known collector");
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
            b
        };
        let answer = match behaviour {
            Behaviour::Refuse => Err(SourceError::Unavailable(format!(
                "{url}: connection refused"
            ))),
            Behaviour::Hang => std::future::pending().await,
            Behaviour::Serve {
                delay,
                containers,
                series,
            } => {
                tokio::time::sleep(delay).await;
                if url.contains("/api/v1/containers?") {
                    Ok(Some(containers.to_string().into_bytes()))
                } else {
                    let name = url
                        .split("name=")
                        .nth(1)
                        .and_then(|r| r.split('&').next())
                        .unwrap();
                    Ok(series
                        .get(name)
                        .map(|s| json!({ "series": s }).to_string().into_bytes()))
                }
            }
        };
        self.0.lock().unwrap().in_flight -= 1;
        answer
    }
}

fn container(id: &str, cpu: f64) -> Value {
    json!({ "id": id, "cpu_limit_cores": 1.0, "latest": { "timestamp_ms": 1_700_000_000_000_i64, "cpu_cores": cpu } })
}

fn gauge(labels: Value, container: Option<&str>, v: f64) -> Value {
    json!({ "kind": "gauge", "labels": labels, "container": container, "points": [[1_700_000_000_000_i64, v]] })
}

/// A collector serving `containers` and, per metric, `series`, after `delay`.
fn serving(delay_ms: u64, containers: Vec<Value>, series: &[(&str, Vec<Value>)]) -> Behaviour {
    Behaviour::Serve {
        delay: Duration::from_millis(delay_ms),
        containers: Value::Array(containers),
        series: series
            .iter()
            .map(|(n, s)| (n.to_string(), Value::Array(s.clone())))
            .collect(),
    }
}

fn reader(http: &FakeHttp, concurrency: usize) -> Reader<FakeHttp> {
    Reader::new(
        http.clone(),
        concurrency,
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
}

#[tokio::test(start_paused = true)]
async fn collectors_are_read_at_once_up_to_the_limit() {
    let http = FakeHttp::default();
    let endpoints: Vec<Endpoint> = (0..10)
        .map(|i| ep(&format!("http://10.0.0.{i}:9180"), &format!("n{i}")))
        .collect();
    for e in &endpoints {
        http.set(&e.url, serving(1000, vec![], &[("requests_total", vec![])]));
    }
    let m = metrics();
    let plans: Vec<Plan<'_>> = endpoints
        .iter()
        .map(|e| Plan {
            endpoint: e,
            containers: true,
            metrics: vec![&m[0], &m[1]],
        })
        .collect();
    let start = Instant::now();
    let answers = reader(&http, 4)
        .read_all::<RemoteContainer, RemoteSeries>(plans)
        .await;
    // A batch is its containers, then its two metrics together: 2 s each; 10 batches 4 at a time.
    assert_eq!(start.elapsed(), Duration::from_secs(6));
    assert_eq!(answers.len(), 10);
    assert!(answers.iter().all(|(_, a)| a.is_ok()));
    let state = http.0.lock().unwrap();
    assert_eq!(
        state.calls.len(),
        30,
        "one containers and two series requests per collector"
    );
    assert_eq!(
        state.max_in_flight, 8,
        "4 collectors, 2 metric requests each"
    );
}

/// A source over `http` with the swarm's collectors on n1, n2 and n3.
fn source(http: &FakeHttp) -> CollectorsSource<Listed, FakeHttp> {
    let mut c = collectors_of(&swarm(), "collector", None, 9180).unwrap().0;
    c.endpoints.push(ep("http://10.0.0.3:9180", "n3"));
    CollectorsSource::new(Listed(Arc::new(c)), reader(http, 8))
}

const N1: &str = "http://10.0.0.1:9180";
const N2: &str = "http://10.0.0.2:9180";
const N3: &str = "http://10.0.0.3:9180";

fn healthy(http: &FakeHttp) {
    http.set(
        N1,
        serving(
            10,
            vec![container(C1, 0.5)],
            &[
                ("requests_total", vec![gauge(json!({}), Some(C1), 7.0)]),
                (
                    "queue_depth",
                    vec![gauge(json!({"service": "web"}), None, 4.0)],
                ),
            ],
        ),
    );
    http.set(
        N2,
        serving(
            10,
            vec![container(C2, 0.25)],
            &[("requests_total", vec![gauge(json!({}), Some(C2), 3.0)])],
        ),
    );
    http.set(
        N3,
        serving(
            10,
            vec![container(C3, 0.75)],
            &[(
                "queue_depth",
                vec![gauge(json!({"service": "web"}), None, 1.0)],
            )],
        ),
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_collector_costs_one_timeout_and_leaves_only_its_replicas_missing() {
    let http = FakeHttp::default();
    healthy(&http);
    let src = source(&http);
    let m = metrics();
    let replicas = [replica("t1", C1), replica("t2", C2), replica("t3", C3)];
    let req = Request {
        service: "web",
        replicas: &replicas,
        metrics: &m,
    };
    let all = src.sample(&req).await.unwrap();
    assert_eq!(all.containers.len(), 3);
    assert_eq!(all.service["queue"], 5.0, "summed over the collectors");
    assert_eq!(all.containers[C1].values["rps"], 7.0);
    assert_eq!(all.missing.get("p99"), Some(&Missing::NoSeries));

    // n2's collector hangs: after one timeout (not one per metric), the others' figures are there
    // and t2 is missing, which the decision handles like the HPA's missing pods.
    http.set(N2, Behaviour::Hang);
    let calls = http.calls_to(N2);
    let start = Instant::now();
    let r = src.sample(&req).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(http.calls_to(N2), calls + 1, "nothing more asked of it");
    assert!(!r.containers.contains_key(C2));
    assert_eq!(r.containers[C1].cpu_cores, Some(0.5));
    assert_eq!(r.containers[C3].cpu_cores, Some(0.75));
    assert_eq!(r.service["queue"], 5.0);
    assert!(src.outages.is_down(N2));
    // Logged and counted once per outage, however many reads fail meanwhile.
    let e = SourceError::Unavailable("x".into());
    assert!(!src.outages.down(&ep(N2, "n2"), &e));

    // Refused, then back: the outage ends.
    http.set(N2, Behaviour::Refuse);
    assert!(!src.sample(&req).await.unwrap().containers.contains_key(C2));
    healthy(&http);
    let back = src.sample(&req).await.unwrap();
    assert_eq!(back, all);
    assert!(!src.outages.is_down(N2));
    assert!(src.outages.down(&ep(N2, "n2"), &e), "a new outage starts");
}

#[tokio::test(start_paused = true)]
async fn every_collector_down_is_an_error_and_an_empty_discovery_too() {
    let http = FakeHttp::default();
    for u in [N1, N2, N3] {
        http.set(u, Behaviour::Refuse);
    }
    let src = source(&http);
    let m = metrics();
    let replicas = [replica("t1", C1)];
    let req = Request {
        service: "web",
        replicas: &replicas,
        metrics: &m,
    };
    let e = src.sample(&req).await.unwrap_err();
    assert!(e.to_string().contains("connection refused"), "{e}");
    let empty = CollectorsSource::new(Listed(Arc::new(Collectors::default())), reader(&http, 1));
    let e = empty.sample(&req).await.unwrap_err();
    assert!(e.to_string().contains("no collector found"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_node_without_a_collector_leaves_its_replicas_missing() {
    let http = FakeHttp::default();
    healthy(&http);
    let m = metrics();
    let replicas = [replica("t1", C1), replica("t3", C3)];
    let req = Request {
        service: "web",
        replicas: &replicas,
        metrics: &m,
    };
    // n3's collector task runs, then not (killed; Swarm restarts it later), then again.
    let running = {
        let mut c = collectors_of(&swarm(), "collector", None, 9180).unwrap().0;
        c.endpoints.push(c.absent.remove(0));
        c
    };
    let stopped = collectors_of(&swarm(), "collector", None, 9180).unwrap().0;
    let listing = Arc::new(Mutex::new(stopped.clone()));
    struct Shared(Arc<Mutex<Collectors>>);
    impl Discover for Shared {
        async fn collectors(&self) -> Result<Arc<Collectors>, SourceError> {
            Ok(Arc::new(self.0.lock().unwrap().clone()))
        }
    }
    let src = CollectorsSource::new(Shared(listing.clone()), reader(&http, 8));
    // Not started yet: its replicas are missing, but no collector was lost.
    let r = src.sample(&req).await.unwrap();
    assert!(r.containers.contains_key(C1));
    assert!(!r.containers.contains_key(C3));
    assert_eq!(http.calls_to(N3), 0);
    assert!(!src.outages.is_down(N3));
    *listing.lock().unwrap() = running.clone();
    assert!(src.sample(&req).await.unwrap().containers.contains_key(C3));
    // Gone after it ran: an outage until it answers again.
    *listing.lock().unwrap() = stopped;
    assert!(!src.sample(&req).await.unwrap().containers.contains_key(C3));
    assert!(src.outages.is_down(N3), "n3's collector is in an outage");
    *listing.lock().unwrap() = running;
    assert!(src.sample(&req).await.unwrap().containers.contains_key(C3));
    assert!(!src.outages.is_down(N3));
}
