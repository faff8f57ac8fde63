//! `plimsoll run`: by default one process samples this Docker host and autoscales the services its
//! policies name (files in --policies, and `plimsoll.*` labels on services). In a cluster the same loop
//! reads the collectors of every node, or Prometheus, instead of its own collector.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use plimsoll_collector::Collector;

use super::collect::CollectorArgs;
use crate::control::{
    self, ApiToken, CollectorsSource, ControlConfig, Controller, DockerActuator, EmbeddedSource,
    MetricSource, PrometheusSource,
};

/// Where replica metrics come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceArg {
    /// The collector in this process (samples this host only).
    Embedded,
    /// `plimsoll collect` on every node, by base URL.
    Collectors(Vec<String>),
    /// A Prometheus server scraping the collectors, by base URL.
    Prometheus(String),
}

impl FromStr for SourceArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let url_ok = |u: &str| {
            (u.starts_with("http://") || u.starts_with("https://"))
                .then_some(())
                .ok_or(format!("{u:?} is not an http:// URL"))
        };
        match s.split_once('=') {
            None if s == "embedded" => Ok(SourceArg::Embedded),
            Some(("collectors", list)) => {
                let urls: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_string)
                    .collect();
                if urls.is_empty() {
                    return Err("collectors= needs at least one URL".into());
                }
                urls.iter().try_for_each(|u| url_ok(u))?;
                Ok(SourceArg::Collectors(urls))
            }
            Some(("prometheus", url)) => {
                url_ok(url)?;
                Ok(SourceArg::Prometheus(url.to_string()))
            }
            _ => Err(format!(
                "unknown source {s:?}: use embedded, collectors=URL[,URL...] or prometheus=URL"
            )),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub collector: CollectorArgs,
    /// Directory of policy files (*.yaml, *.yml, *.json), re-read when they change.
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
    /// Decide and log every action, but never act.
    #[arg(long)]
    pub dry_run: bool,
    /// Scale actions allowed per minute across all services.
    #[arg(long, default_value_t = 30)]
    pub max_actions_per_minute: u32,
    /// File holding the bearer token for pause/resume (else $PLIMSOLL_API_TOKEN; without either they are disabled).
    #[arg(long)]
    pub api_token_file: Option<PathBuf>,
    /// Only scale this Compose project or Swarm stack (repeatable); default: every service on the engine.
    #[arg(long = "project", value_name = "NAME")]
    pub projects: Vec<String>,
    /// Metric source: embedded, collectors=URL[,URL...] or prometheus=URL.
    #[arg(long, default_value = "embedded")]
    pub source: SourceArg,
    /// How far back CPU and counter rates look; default two intervals, at least 2s. With Prometheus
    /// it must span two scrapes.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub rate_window: Option<Duration>,
}

pub fn run(args: RunArgs) -> ExitCode {
    super::run_async(async move {
        let config = args.collector.config()?;
        let token = match &args.api_token_file {
            Some(f) => Some(
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            ),
            None => std::env::var("PLIMSOLL_API_TOKEN").ok(),
        };
        // Two intervals: smooth enough to ignore one odd pass, fresh enough to react in about two seconds.
        let rate_window = args
            .rate_window
            .unwrap_or((config.interval * 2).max(Duration::from_secs(2)));
        let control = ControlConfig {
            interval: config.interval,
            dry_run: args.dry_run,
            max_actions_per_minute: args.max_actions_per_minute,
            discovery_interval: Duration::from_secs(5),
            policies_dir: Some(args.policies.clone()),
            projects: args.projects.clone(),
        };
        let actuator = DockerActuator::new(&config.docker_socket);
        tracing::info!(listen = %config.listen, policies = %args.policies.display(), source = ?args.source, dry_run = args.dry_run, "plimsoll running");
        match args.source {
            SourceArg::Embedded => {
                let collector = Collector::start(config.clone());
                let source = EmbeddedSource::new(collector.shared(), rate_window);
                serve(
                    config.listen,
                    collector.router(),
                    Controller::new(actuator, source, control),
                    token,
                )
                .await
            }
            SourceArg::Collectors(urls) => {
                serve(
                    config.listen,
                    self_metrics_router(),
                    Controller::new(actuator, CollectorsSource::new(urls, rate_window), control),
                    token,
                )
                .await
            }
            SourceArg::Prometheus(url) => {
                serve(
                    config.listen,
                    self_metrics_router(),
                    Controller::new(actuator, PrometheusSource::new(&url, rate_window), control),
                    token,
                )
                .await
            }
        }
    })
}

/// /metrics (the autoscaler's own) and /healthz, when no collector runs in this process.
fn self_metrics_router() -> axum::Router {
    let handle = plimsoll_collector::run::prometheus_handle();
    axum::Router::new()
        .route("/metrics", get(move || std::future::ready(handle.render())))
        .route("/healthz", get(|| std::future::ready("ok")))
}

async fn serve<S: MetricSource>(
    listen: std::net::SocketAddr,
    base: axum::Router,
    controller: Controller<DockerActuator, S>,
    token: Option<String>,
) -> anyhow::Result<()> {
    let app = base.merge(control::router(controller.state(), ApiToken::new(token)));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tokio::spawn(controller.run());
    axum::serve(listener, app)
        .with_graceful_shutdown(super::shutdown_signal())
        .await
        .context("serving HTTP")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::SourceArg;

    #[test]
    fn parses_sources() {
        assert_eq!("embedded".parse::<SourceArg>(), Ok(SourceArg::Embedded));
        assert_eq!(
            "collectors=http://a:9180, http://b:9180".parse::<SourceArg>(),
            Ok(SourceArg::Collectors(vec![
                "http://a:9180".into(),
                "http://b:9180".into()
            ]))
        );
        assert_eq!(
            "prometheus=http://p:9090".parse::<SourceArg>(),
            Ok(SourceArg::Prometheus("http://p:9090".into()))
        );
        assert!("collectors=".parse::<SourceArg>().is_err());
        assert!("prometheus=p:9090"
            .parse::<SourceArg>()
            .unwrap_err()
            .contains("not an http:// URL"));
        assert!("kafka=x"
            .parse::<SourceArg>()
            .unwrap_err()
            .contains("unknown source"));
    }
}
