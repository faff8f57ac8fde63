//! `plimsoll collect`: the collector alone, serving /metrics and the JSON API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use plimsoll_collector::sources::cgroup::CgroupConfig;
use plimsoll_collector::sources::docker::DockerConfig;
use plimsoll_collector::sources::host::HostConfig;
use plimsoll_collector::{Collector, CollectorConfig};

#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub collector: CollectorArgs,
}

/// Collector settings, shared by `collect` and `run`.
#[derive(Debug, clap::Args)]
pub struct CollectorArgs {
    /// Address of the HTTP API and /metrics.
    #[arg(long, default_value = "0.0.0.0:9180")]
    pub listen: SocketAddr,
    /// Sampling interval, 100ms..60s.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// History kept in memory per series.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// The host's /proc (e.g. /host/proc inside a container).
    #[arg(long, default_value = "/proc")]
    pub proc_root: PathBuf,
    /// The host's /sys (e.g. /host/sys inside a container).
    #[arg(long, default_value = "/sys")]
    pub sys_root: PathBuf,
    /// Where the host's root filesystem is mounted (e.g. /host): filesystems are measured under it
    /// and reported without it, as node_exporter's --path.rootfs.
    #[arg(long, default_value = "/")]
    pub rootfs: PathBuf,
    /// The host's cgroup mount.
    #[arg(long, default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,
    /// More Docker labels to copy onto container series as cAdvisor's `container_label_<name>`
    /// (comma-separated; `prefix*` allows every label with that prefix). The Docker, Compose and
    /// Swarm labels are always copied; copying every label (`*`) multiplies series, so ask by name.
    #[arg(long, value_delimiter = ',')]
    pub container_labels: Vec<String>,
    /// Docker engine socket; defaults to $DOCKER_HOST when it is a unix:// address.
    #[arg(long)]
    pub docker_socket: Option<String>,
    #[command(flatten)]
    pub otlp: super::otlp::OtlpArgs,
    #[command(flatten)]
    pub scrape: super::scrape::ScrapeArgs,
    #[command(flatten)]
    pub statsd: super::statsd::StatsdArgs,
    #[command(flatten)]
    pub spans: super::spans::SpansArgs,
}

impl CollectorArgs {
    pub fn config(&self) -> anyhow::Result<CollectorConfig> {
        Ok(self.unchecked().validate()?)
    }

    /// The configuration as given, not validated yet (`run` validates it with its own flags).
    pub fn unchecked(&self) -> CollectorConfig {
        let socket = self
            .docker_socket
            .clone()
            .or_else(|| {
                std::env::var("DOCKER_HOST")
                    .ok()
                    .filter(|h| h.starts_with("unix://"))
            })
            .unwrap_or_else(|| "/var/run/docker.sock".to_string());
        let defaults = CollectorConfig::default();
        CollectorConfig {
            listen: self.listen,
            interval: self.interval,
            window: self.window,
            host: HostConfig {
                proc_root: self.proc_root.clone(),
                sys_root: self.sys_root.clone(),
                rootfs: self.rootfs.clone(),
                ..defaults.host
            },
            cgroup: CgroupConfig {
                root: self.cgroup_root.clone(),
                container_labels: self.container_labels.clone(),
            },
            docker: DockerConfig {
                socket: socket.trim_start_matches("unix://").to_string(),
                ..defaults.docker
            },
            otlp: self.otlp.config(),
            scrape: self.scrape.config(),
            statsd: self.statsd.config(),
            spans: self.spans.config(),
        }
    }
}

pub fn run(args: CollectArgs) -> ExitCode {
    super::run_async(async move {
        let config = args.collector.config()?;
        let collector = Collector::start(config.clone())?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        tracing::info!(listen = %config.listen, interval = ?config.interval, "collector serving /metrics and /api/v1");
        tracing::info!("status page: {}", super::status_page_url(&listener));
        axum::serve(listener, collector.router())
            .with_graceful_shutdown(super::shutdown_signal())
            .await
            .context("serving HTTP")?;
        Ok(())
    })
}
