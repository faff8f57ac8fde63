//! Starting the collector: every component built from its config, Docker discovery, the sampling
//! thread and the HTTP API.
//! This is the shell: the only place that reads the clock and spawns tasks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::{CollectorConfig, ConfigErrors};
use crate::sampler::{DiscoveryEvent, Sampler, Shared};
use crate::sources::directory::ContainerDirectory;
use crate::sources::docker;
use crate::sources::otlp::{
    self, ExportTraceServiceRequest, MetricsReceiver, Rejected, TracesSink,
};
use crate::sources::scrape::{self, Scraper};
use crate::sources::spans::{self, Spans};
use crate::sources::statsd::{self, StatsdReceiver, StoreSink};
use crate::store::{Ingest, IngestError, Millis};
use crate::telemetry;

/// Wall-clock time in milliseconds since the epoch.
pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// The process-wide recorder behind the `metrics` facade, installed once.
pub fn prometheus_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(telemetry::PASS_DURATION.to_string()), telemetry::PASS_DURATION_BUCKETS)
                .expect("buckets are not empty")
                // Histograms, not summaries, for every `_seconds` histogram (a full-name match wins):
                // quantiles can then be aggregated over instances and chosen at query time.
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), telemetry::SECONDS_BUCKETS)
                .expect("buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; plimsoll_collector_* metrics go there");
            }
            telemetry::describe();
            handle
        })
        .clone()
}

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Otlp(#[from] otlp::StartError),
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Statsd(#[from] statsd::StartError),
}

/// A running collector. Dropping it stops the sampling thread and the receivers.
pub struct Collector {
    shared: Shared,
    config: CollectorConfig,
    metrics: PrometheusHandle,
    stop: Arc<AtomicBool>,
    directory: ContainerDirectory,
    otlp: Option<otlp::Servers>,
    spans: Option<Spans>,
    _scraper: Option<Scraper>,
    statsd: Option<StatsdReceiver>,
}

impl Collector {
    /// Builds every component from `config` and starts them. Must be called inside a Tokio runtime
    /// (discovery runs on it). Without a reachable Docker engine it samples the host only and keeps
    /// trying to connect.
    pub fn start(config: CollectorConfig) -> Result<Collector, StartError> {
        let metrics = prometheus_handle();
        let ingest = Ingest::new(config.window);
        let (stats_tx, stats_rx) = tokio::sync::mpsc::unbounded_channel();
        let (tx, rx) = mpsc::channel::<DiscoveryEvent>();
        let mut sampler = Sampler::build(&config, &ingest, Some(stats_tx))?;
        let shared = sampler.shared();
        let directory = ContainerDirectory::new();
        // Before any thread starts: a socket that cannot be bound ends the start.
        let statsd = start_statsd(&config, &ingest, &directory)?;
        let stop = Arc::new(AtomicBool::new(false));
        let interval = config.interval;
        let stop_flag = stop.clone();
        std::thread::Builder::new()
            .name("plimsoll-sampler".into())
            .spawn(move || {
                let mut next = Instant::now();
                while !stop_flag.load(Ordering::Relaxed) {
                    sampler.pass(now_millis());
                    next += interval;
                    let now = Instant::now();
                    if next < now {
                        next = now;
                    }
                    // Apply discovery events as they come until the next tick.
                    while let Some(left) = next
                        .checked_duration_since(Instant::now())
                        .filter(|d| !d.is_zero())
                    {
                        match rx.recv_timeout(left) {
                            Ok(ev) => sampler.apply(ev),
                            Err(mpsc::RecvTimeoutError::Timeout) => break,
                            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(left),
                        }
                    }
                }
            })
            .expect("spawning the sampler thread");
        // Spans: the OTLP servers serve TraceService/Export and POST /v1/traces and hand every
        // decoded request to the spans component; its series are written every interval.
        let spans = if config.otlp.enabled() {
            let spans = Spans::new(&config.spans, &ingest, interval)?;
            start_spans_flush(spans.clone(), interval, stop.clone());
            if let Some(peers) = config.spans.peers.clone() {
                tokio::spawn(spans::forward::run(
                    spans.clone(),
                    peers,
                    spans::forward::Settings::new(config.listen.port(), config.spans.forward_queue),
                    now_millis,
                ));
            }
            Some(spans)
        } else {
            None
        };
        let traces = spans.clone().map(|s| Arc::new(s) as Arc<dyn TracesSink>);
        let otlp = start_otlp(&config, &ingest, &directory, traces)?;
        tokio::spawn(connect_and_discover(
            config.clone(),
            tx,
            directory.clone(),
            stats_rx,
        ));
        let scraper = match config.scrape.enabled {
            true => Some(scrape::start(
                &config.scrape,
                config.interval,
                directory.clone(),
                ingest.clone(),
            )?),
            false => None,
        };
        let handle = metrics.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
        Ok(Collector {
            spans,
            otlp,
            _scraper: scraper,
            directory,
            shared,
            config,
            metrics,
            stop,
            statsd,
        })
    }

    /// The StatsD receiver, when it is on.
    pub fn statsd(&self) -> Option<&StatsdReceiver> {
        self.statsd.as_ref()
    }

    pub fn shared(&self) -> Shared {
        self.shared.clone()
    }

    /// The running containers as discovery knows them, for receivers to attribute input by.
    pub fn directory(&self) -> ContainerDirectory {
        self.directory.clone()
    }

    /// The handle through which more sources (receivers) write into this collector's store.
    pub fn ingest(&self) -> Ingest {
        self.shared.ingest.clone()
    }

    /// The OTLP servers' bound addresses (gRPC, HTTP), when running.
    pub fn otlp_addrs(&self) -> (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>) {
        self.otlp
            .as_ref()
            .map_or((None, None), |s| (s.grpc_addr(), s.http_addr()))
    }

    /// The HTTP API of this collector.
    pub fn router(&self) -> axum::Router {
        self.router_with(None)
    }

    /// The HTTP API, with the replicas of scaled services for the topology (`plimsoll run`).
    pub fn router_with(&self, replicas: Option<crate::http::ReplicaCounts>) -> axum::Router {
        crate::http::router(crate::http::ApiState {
            shared: self.shared.clone(),
            metrics: self.metrics.clone(),
            interval: self.config.interval,
            spans: self.spans.clone(),
            replicas,
        })
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The OTLP servers hand decoded trace requests to the spans component, stamped with the time they
/// arrived.
impl TracesSink for Spans {
    fn export(
        &self,
        request: ExportTraceServiceRequest,
        _peer: Option<std::net::IpAddr>,
    ) -> Rejected {
        let v = self.consume(&request.resource_spans, now_millis());
        Rejected {
            count: v.rejected(),
            message: v.message(),
        }
    }
}

/// Writes the spans component's series every `interval` (and expires what waited too long) until
/// `stop` is set.
fn start_spans_flush(spans: Spans, interval: Duration, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("plimsoll-spans".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(interval);
                spans.flush(now_millis());
            }
        })
        .expect("spawning the spans flush thread");
}

/// Starts the OTLP servers when configured: the metrics receiver writes into `ingest`, attributing
/// by `directory`; `traces`, when given, gets every trace request.
fn start_otlp(
    config: &CollectorConfig,
    ingest: &Ingest,
    directory: &ContainerDirectory,
    traces: Option<Arc<dyn TracesSink>>,
) -> Result<Option<otlp::Servers>, StartError> {
    let c = &config.otlp;
    if !c.enabled() {
        return Ok(None);
    }
    let metrics =
        MetricsReceiver::new(ingest.clone(), directory.clone(), c.stale_after, c.limits())?;
    let handlers = otlp::Handlers {
        metrics: Arc::new(metrics),
        traces,
        max_request_bytes: c.max_request_bytes,
    };
    Ok(Some(otlp::Servers::start(c, handlers)?))
}

/// Starts the StatsD receiver, when a socket is configured: its threads aggregate what arrives and
/// flush it into the store every interval.
fn start_statsd(
    config: &CollectorConfig,
    ingest: &Ingest,
    directory: &ContainerDirectory,
) -> Result<Option<StatsdReceiver>, StartError> {
    if !config.statsd.enabled() {
        return Ok(None);
    }
    let statsd = config.statsd.clone().validate()?;
    let mut sink = StoreSink::new(
        ingest.clone(),
        directory.clone(),
        config.interval,
        statsd.aggregate.max_series,
        statsd.aggregate.max_series_per_family,
    )?;
    let receiver = statsd.start(
        config.interval,
        Arc::new(directory.clone()),
        Box::new(move |agg, now| sink.flush(agg, now)),
    )?;
    Ok(Some(receiver))
}

/// Connects to Docker (retrying with backoff; host-only until then), then runs discovery and the
/// stats API poller.
async fn connect_and_discover(
    config: CollectorConfig,
    tx: mpsc::Sender<DiscoveryEvent>,
    directory: ContainerDirectory,
    stats_rx: tokio::sync::mpsc::UnboundedReceiver<crate::sampler::StatsRequest>,
) {
    let mut backoff = Duration::from_secs(1);
    let mut warned = false;
    let docker = loop {
        match docker::connect(&config.docker.socket).await {
            Ok(d) => break d,
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "Docker engine not reachable: sampling the host only until it is");
                    warned = true;
                } else {
                    tracing::debug!(error = %e, "Docker engine still not reachable");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    };
    tracing::info!(socket = %config.docker.socket, "connected to the Docker engine");
    tokio::spawn(docker::poll_stats(
        docker.clone(),
        stats_rx,
        tx.clone(),
        config.interval,
    ));
    docker::run(docker, tx, directory, config.docker.resync).await;
}
