//! Loopback load generator for the OTLP metrics receiver: the real servers (HTTP and gRPC) on
//! 127.0.0.1, fed by concurrent clients in the same process, and the same requests handed to the
//! receiver directly (no network, no server) as the same-run baseline. For each it reports data
//! points/s and data points per CPU-second of the receiving threads (= per core): the servers run on
//! their own one-thread runtime (`otlp-srv`), the clients on another (`otlp-load`, not counted).
//!
//!   cargo bench -p plimsoll-collector --bench otlp_load -- [--seconds 5] [--clients 4]
//!
//! Workload: `common/otlp_workload.rs` (500 data points a request, steady-state series).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use plimsoll_collector::run::now_millis;
use plimsoll_collector::sources::directory::ContainerDirectory;
use plimsoll_collector::sources::otlp::{Handlers, MetricsReceiver, OtlpConfig, Servers};
use plimsoll_collector::store::Ingest;
use prost::Message;

#[path = "common/otlp_workload.rs"]
mod workload;
use workload::{request, POINTS};

#[path = "common/load.rs"]
mod load;
use load::{arg, threads_cpu};

struct Run {
    what: &'static str,
    requests: u64,
    secs: f64,
    cpu: f64,
}

impl Run {
    fn print(&self, baseline: Option<&Run>) {
        let points = (self.requests * POINTS) as f64;
        let per_core = points / self.cpu;
        let ratio = baseline.map_or("1 (baseline)".to_string(), |b| {
            let b = (b.requests * POINTS) as f64 / b.cpu;
            format!("{:.2}", per_core / b)
        });
        println!(
            "| {} | {:.0} k/s | {:.2} s | {:.0} k | {} |",
            self.what,
            points / self.secs / 1e3,
            self.cpu,
            per_core / 1e3,
            ratio
        );
    }
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu_now() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn runtime(name: &'static str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `clients` copies of `send` on the load runtime for `secs`, counting the requests that
/// succeeded, and the receiving threads' CPU over that time.
fn load<F, Fut>(
    what: &'static str,
    load_rt: &tokio::runtime::Runtime,
    clients: usize,
    secs: f64,
    send: F,
) -> Run
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let send = Arc::new(send);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = threads_cpu("otlp-srv");
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (send, done, stop) = (send.clone(), done.clone(), stop.clone());
            load_rt.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if send().await {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = load_rt.block_on(t);
    }
    Run {
        what,
        requests: done.load(Ordering::Relaxed),
        secs: start.elapsed().as_secs_f64(),
        cpu: threads_cpu("otlp-srv") - cpu0,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let secs: f64 = arg(&args, "--seconds", "5").parse().expect("--seconds");
    let clients: usize = arg(&args, "--clients", "4").parse().expect("--clients");
    let req = request();
    let body = Arc::new(req.encode_to_vec());
    let ingest = Ingest::new(Duration::from_secs(60));
    let cfg = OtlpConfig {
        grpc: Some("127.0.0.1:0".parse().unwrap()),
        http: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    };
    let receiver = Arc::new(
        MetricsReceiver::new(
            ingest,
            ContainerDirectory::new(),
            cfg.stale_after,
            cfg.limits(),
        )
        .unwrap(),
    );
    let srv_rt = runtime("otlp-srv");
    let servers = {
        let _in = srv_rt.enter();
        Servers::start(
            &cfg,
            Handlers {
                metrics: receiver.clone(),
                traces: None,
                max_request_bytes: cfg.max_request_bytes,
            },
        )
        .unwrap()
    };
    let load_rt = runtime("otlp-load");
    println!(
        "{} data points a request, {clients} clients, {secs} s a run",
        POINTS
    );
    println!("| path | data points/s | receiver CPU | data points per CPU-second (per core) | vs. in-process |");
    println!("| --- | --- | --- | --- | --- |");

    // Baseline: the same request decoded and written by a thread of its own, with no network and
    // no server; its CPU time is read by the thread itself before it ends.
    let baseline = {
        let (body, receiver) = (body.clone(), receiver.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let start = Instant::now();
        let t = std::thread::Builder::new()
            .name("otlp-inproc".into())
            .spawn(move || {
                let mut n = 0u64;
                while !stop2.load(Ordering::Relaxed) {
                    let req =
                        plimsoll_collector::sources::otlp::ExportMetricsServiceRequest::decode(
                            &body[..],
                        )
                        .unwrap();
                    let out = receiver.export(&req, None, now_millis());
                    assert_eq!(out.accepted, POINTS, "{}", out.message());
                    n += 1;
                }
                (n, thread_cpu_now())
            })
            .unwrap();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        let (requests, cpu) = t.join().unwrap();
        Run {
            what: "in-process decode + translate + ingest (baseline)",
            requests,
            secs: start.elapsed().as_secs_f64(),
            cpu,
        }
    };
    baseline.print(None);

    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/metrics", servers.http_addr().unwrap());
    let run = {
        let body = body.clone();
        load("HTTP protobuf", &load_rt, clients, secs, move || {
            let (http, url, body) = (http.clone(), url.clone(), body.clone());
            async move {
                http.post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(body.to_vec())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
    };
    run.print(Some(&baseline));

    let channel = load_rt
        .block_on(
            tonic::transport::Endpoint::from_shared(format!(
                "http://{}",
                servers.grpc_addr().unwrap()
            ))
            .unwrap()
            .connect(),
        )
        .expect("connecting to the gRPC server");
    let client = MetricsServiceClient::new(channel);
    let run = load("gRPC", &load_rt, clients, secs, move || {
        let (mut client, req) = (client.clone(), req.clone());
        async move {
            client
                .export(req)
                .await
                .is_ok_and(|r| r.into_inner().partial_success.is_none())
        }
    });
    run.print(Some(&baseline));
    drop(servers);
}
