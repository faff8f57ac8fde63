//! `plimsoll run`: by default one process samples this Docker host and autoscales the services its
//! policies name (files in --policies, and `plimsoll.*` labels on services). In a cluster the same loop
//! reads the collectors of every node, or Prometheus, instead of its own collector.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use plimsoll_collector::{Collector, CollectorConfig};

use super::collect::CollectorArgs;
use crate::control::collectors::discovery::{self, Collectors, Discovery, Listed, SwarmCollectors};
use crate::control::collectors::fetch::{Reader, ReqwestHttp};
use crate::control::{
    self, show_duration as show, ApiToken, CollectorsSource, ConfigError, ControlConfig,
    Controller, DockerActuator, EmbeddedSource, MetricSource, Problems, PrometheusSource,
};
use crate::nodes::{DockerSwarm, NodeConfig, NodeController};

/// Where replica metrics come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceArg {
    /// The collector in this process (samples this host only).
    Embedded,
    /// `plimsoll collect` on every node, listed or found on the Swarm.
    Collectors(CollectorsArg),
    /// A Prometheus server scraping the collectors, by base URL.
    Prometheus(String),
}

/// Where the collectors are.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectorsArg {
    /// By base URL (`collectors=URL[,URL...]`).
    Urls(Vec<String>),
    /// The running tasks of a Swarm service, at their nodes' addresses (`collectors=swarm[:NAME[:PORT]]`).
    Swarm { service: String, port: u16 },
}

impl FromStr for CollectorsArg {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, String> {
        if let Some(rest) = list
            .strip_prefix("swarm")
            .filter(|r| r.is_empty() || r.starts_with(':'))
        {
            let mut parts = rest.trim_start_matches(':').splitn(2, ':');
            let service = match parts.next() {
                Some("") | None => discovery::DEFAULT_SERVICE.to_string(),
                Some(s) => s.to_string(),
            };
            let port = match parts.next() {
                None => discovery::DEFAULT_PORT,
                Some(p) => p.parse().ok().filter(|p| *p > 0).ok_or(format!(
                    "collectors=swarm:{service}:{p}: the port must be a number from 1 to 65535"
                ))?,
            };
            return Ok(CollectorsArg::Swarm { service, port });
        }
        let urls: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        if urls.is_empty() {
            return Err("collectors= needs at least one URL, or swarm[:SERVICE[:PORT]]".into());
        }
        urls.iter().try_for_each(|u| url_ok(u))?;
        Ok(CollectorsArg::Urls(urls))
    }
}

fn url_ok(u: &str) -> Result<(), String> {
    (u.starts_with("http://") || u.starts_with("https://"))
        .then_some(())
        .ok_or(format!("{u:?} is not an http:// URL"))
}

impl FromStr for SourceArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            None if s == "embedded" => Ok(SourceArg::Embedded),
            Some(("collectors", list)) => list.parse().map(SourceArg::Collectors),
            Some(("prometheus", url)) => {
                url_ok(url)?;
                Ok(SourceArg::Prometheus(url.to_string()))
            }
            _ => Err(format!(
                "unknown source {s:?}: use embedded, collectors=URL[,URL...], collectors=swarm[:SERVICE[:PORT]] or prometheus=URL"
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
    /// Metric source: embedded, collectors=URL[,URL...], collectors=swarm[:SERVICE[:PORT]] (the
    /// running tasks of the collector's global service, at their nodes' addresses; default service
    /// `collector`, or STACK_collector, port 9180) or prometheus=URL.
    #[arg(long, default_value = "embedded")]
    pub source: SourceArg,
    /// With collectors=: longest wait for one request to a collector; one that does not answer in
    /// time leaves the replicas on its node missing for that decision.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub collector_timeout: Duration,
    /// With collectors=: collectors read at once.
    #[arg(long, default_value_t = crate::control::collectors::DEFAULT_CONCURRENCY)]
    pub collector_concurrency: usize,
    /// How far back CPU and counter rates look; default two intervals, at least 2s. With Prometheus
    /// it must span two scrapes.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub rate_window: Option<Duration>,
}

/// Everything `plimsoll run` starts from, validated.
#[derive(Debug)]
struct Settings {
    collector: CollectorConfig,
    control: ControlConfig,
    rate_window: Duration,
    token: Option<String>,
}

/// Two intervals: smooth enough to ignore one odd pass, fresh enough to react in about two seconds.
fn default_rate_window(interval: Duration) -> Duration {
    (interval * 2).max(Duration::from_secs(2))
}

/// Validates every flag at once: the collector's (when it runs in this process), the loop's, and how
/// the rate window fits both. Reads the token file, so its problems are reported with the rest.
fn settings(args: &RunArgs) -> Result<Settings, ConfigError> {
    let mut problems = Problems::default();
    let collector = args.collector.unchecked();
    let embedded = args.source == SourceArg::Embedded;
    if embedded {
        if let Err(e) = collector.clone().validate() {
            for m in e.0 {
                problems.push("collector", m);
            }
        }
    }
    let interval = collector.interval;
    let rate_window = args.rate_window.unwrap_or(default_rate_window(interval));
    if rate_window < interval {
        problems.push(
            "--rate-window",
            format!(
                "{} is shorter than the interval ({}): each decision would ignore part of the load since the last one",
                show(rate_window),
                show(interval)
            ),
        );
    } else if embedded && rate_window < interval * 2 {
        problems.push(
            "--rate-window",
            format!(
                "{} holds fewer than two samples of the embedded collector (one every {}): a rate needs two; use at least {}",
                show(rate_window),
                show(interval),
                show(interval * 2)
            ),
        );
    }
    if embedded && rate_window > collector.window {
        problems.push(
            "--rate-window",
            format!(
                "{} is longer than the history the collector keeps (--window {})",
                show(rate_window),
                show(collector.window)
            ),
        );
    }
    if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&args.collector_timeout) {
        problems.push(
            "--collector-timeout",
            format!(
                "must be within 100ms..=1m, got {}",
                show(args.collector_timeout)
            ),
        );
    }
    if args.collector_concurrency == 0 {
        problems.push("--collector-concurrency", "must be at least 1");
    }
    let token = match &args.api_token_file {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) if t.trim().is_empty() => {
                problems.push(
                    "--api-token-file",
                    format!(
                        "{} is empty (leave the flag out to disable pause and resume)",
                        f.display()
                    ),
                );
                None
            }
            Ok(t) => Some(t),
            Err(e) => {
                problems.push("--api-token-file", format!("reading {}: {e}", f.display()));
                None
            }
        },
        None => std::env::var("PLIMSOLL_API_TOKEN").ok(),
    };
    let control = ControlConfig {
        interval,
        dry_run: args.dry_run,
        max_actions_per_minute: args.max_actions_per_minute,
        discovery_interval: Duration::from_secs(5),
        policies_dir: Some(args.policies.clone()),
        projects: args.projects.clone(),
    };
    let control = match control.validate() {
        Ok(c) => Some(c),
        Err(e) => {
            problems.extend(e);
            None
        }
    };
    problems.finish(())?;
    Ok(Settings {
        collector,
        control: control.expect("validated"),
        rate_window,
        token,
    })
}

pub fn run(args: RunArgs) -> ExitCode {
    super::run_async(async move {
        let Settings {
            collector: config,
            control,
            rate_window,
            token,
        } = settings(&args)?;
        let actuator = DockerActuator::new(&config.docker.socket);
        let nodes = NodeController::docker(
            &config.docker.socket,
            NodeConfig {
                policies_dir: Some(args.policies.clone()),
                dry_run: args.dry_run,
                discovery_interval: Duration::from_secs(5),
            },
        );
        tracing::info!(listen = %config.listen, policies = %args.policies.display(), source = ?args.source, dry_run = args.dry_run, "plimsoll running");
        match args.source {
            SourceArg::Embedded => {
                let collector = Collector::start(config.clone())?;
                let source = EmbeddedSource::new(collector.shared(), rate_window);
                let controller = Controller::new(actuator, source, control);
                // The topology's service nodes show the replicas of the targets they are.
                let state = controller.state();
                let replicas = Arc::new(move || state.replicas_by_node());
                serve(
                    config.listen,
                    collector.router_with(Some(replicas)),
                    controller,
                    nodes,
                    token,
                )
                .await
            }
            SourceArg::Collectors(where_) => {
                let found = match where_ {
                    CollectorsArg::Urls(urls) => {
                        Discovery::Listed(Listed(Arc::new(Collectors::listed(urls))))
                    }
                    CollectorsArg::Swarm { service, port } => {
                        Discovery::Swarm(Box::new(SwarmCollectors::new(
                            DockerSwarm::new(&config.docker.socket),
                            &service,
                            // Set by the stack file from the service's stack label.
                            std::env::var("PLIMSOLL_STACK").ok(),
                            port,
                            control.discovery_interval,
                            args.collector_timeout.max(Duration::from_secs(5)),
                        )))
                    }
                };
                let reader = Reader::new(
                    ReqwestHttp::default(),
                    args.collector_concurrency,
                    args.collector_timeout,
                    rate_window,
                );
                serve(
                    config.listen,
                    self_metrics_router(),
                    Controller::new(actuator, CollectorsSource::new(found, reader), control),
                    nodes,
                    token,
                )
                .await
            }
            SourceArg::Prometheus(url) => {
                serve(
                    config.listen,
                    self_metrics_router(),
                    Controller::new(actuator, PrometheusSource::new(&url, rate_window), control),
                    nodes,
                    token,
                )
                .await
            }
        }
    })
}

/// The status page, /metrics (the autoscaler's own) and /healthz, when no collector runs in this
/// process.
fn self_metrics_router() -> axum::Router {
    let handle = plimsoll_collector::run::prometheus_handle();
    axum::Router::new()
        .route("/", get(plimsoll_collector::http::status::page))
        .route(
            "/metrics",
            get(move || {
                let mut body = String::new();
                plimsoll_collector::telemetry::render(&handle, &mut body);
                std::future::ready(body)
            }),
        )
        .route("/healthz", get(|| std::future::ready("ok")))
}

async fn serve<S: MetricSource>(
    listen: std::net::SocketAddr,
    base: axum::Router,
    controller: Controller<DockerActuator, S>,
    nodes: NodeController<DockerSwarm>,
    token: Option<String>,
) -> anyhow::Result<()> {
    let app = base
        .merge(control::router(controller.state(), ApiToken::new(token)))
        .merge(crate::nodes::router(nodes.state()));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!("status page: {}", super::status_page_url(&listener));
    tokio::spawn(controller.run());
    tokio::spawn(nodes.run());
    axum::serve(listener, app)
        .with_graceful_shutdown(super::shutdown_signal())
        .await
        .context("serving HTTP")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{settings, CollectorsArg, RunArgs, SourceArg};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    /// The problems of `plimsoll run ARGS`, as `SETTING: message` lines.
    fn problems(args: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied())).unwrap();
        match settings(&cli.run) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.setting, p.message))
                .collect(),
        }
    }

    #[test]
    fn the_defaults_are_valid_and_the_rate_window_defaults_to_two_intervals() {
        assert!(problems(&[]).is_empty());
        let cli = Cli::try_parse_from(["run", "--interval", "3s"]).unwrap();
        assert_eq!(settings(&cli.run).unwrap().rate_window.as_secs(), 6);
        let cli = Cli::try_parse_from(["run", "--interval", "200ms"]).unwrap();
        assert_eq!(settings(&cli.run).unwrap().rate_window.as_secs(), 2);
    }

    #[test]
    fn a_rate_window_shorter_than_the_interval_is_rejected_whatever_the_source() {
        for source in [
            "embedded",
            "prometheus=http://p:9090",
            "collectors=http://c:9180",
        ] {
            let p = problems(&[
                "--source",
                source,
                "--interval",
                "5s",
                "--rate-window",
                "4s",
            ]);
            assert_eq!(p.len(), 1, "{source}: {p:?}");
            assert!(
                p[0].starts_with("--rate-window: 4s is shorter than the interval (5s)"),
                "{p:?}"
            );
        }
        // Prometheus scrapes on its own schedule: one interval is enough there.
        assert!(problems(&[
            "--source",
            "prometheus=http://p:9090",
            "--rate-window",
            "1s"
        ])
        .is_empty());
    }

    #[test]
    fn the_embedded_rate_window_must_hold_two_samples_and_fit_the_history() {
        let p = problems(&["--interval", "1s", "--rate-window", "1500ms"]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("fewer than two samples"), "{p:?}");
        assert!(p[0].ends_with("use at least 2s"), "{p:?}");
        let p = problems(&["--window", "1m", "--rate-window", "2m"]);
        assert_eq!(
            p,
            ["--rate-window: 2m is longer than the history the collector keeps (--window 1m)"]
        );
    }

    #[test]
    fn collector_limits_apply_only_when_the_collector_runs_in_process() {
        let p = problems(&["--interval", "2m"]);
        assert!(
            p.iter()
                .any(|l| l.starts_with("collector: interval 2m is outside")),
            "{p:?}"
        );
        assert!(problems(&["--interval", "2m", "--source", "prometheus=http://p:9090"]).is_empty());
    }

    #[test]
    fn an_empty_or_unreadable_token_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("token");
        std::fs::write(&empty, "\n").unwrap();
        let p = problems(&["--api-token-file", empty.to_str().unwrap()]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("--api-token-file: ") && p[0].contains("is empty"),
            "{p:?}"
        );
        let missing = dir.path().join("nope");
        let p = problems(&["--api-token-file", missing.to_str().unwrap()]);
        assert!(p[0].starts_with("--api-token-file: reading "), "{p:?}");
    }

    #[test]
    fn loop_and_run_problems_are_reported_together() {
        let p = problems(&[
            "--max-actions-per-minute",
            "0",
            "--rate-window",
            "100ms",
            "--project",
            "a b",
        ]);
        let settings: Vec<&str> = p.iter().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(
            settings,
            ["--rate-window", "--max-actions-per-minute", "--project"],
            "{p:?}"
        );
    }

    #[test]
    fn collector_timeout_and_concurrency_are_checked() {
        assert!(problems(&[
            "--collector-timeout",
            "500ms",
            "--collector-concurrency",
            "4"
        ])
        .is_empty());
        assert_eq!(
            problems(&[
                "--collector-timeout",
                "10ms",
                "--collector-concurrency",
                "0"
            ]),
            [
                "--collector-timeout: must be within 100ms..=1m, got 10ms",
                "--collector-concurrency: must be at least 1"
            ]
        );
    }

    #[test]
    fn parses_sources() {
        assert_eq!("embedded".parse::<SourceArg>(), Ok(SourceArg::Embedded));
        assert_eq!(
            "collectors=http://a:9180, http://b:9180".parse::<SourceArg>(),
            Ok(SourceArg::Collectors(CollectorsArg::Urls(vec![
                "http://a:9180".into(),
                "http://b:9180".into()
            ])))
        );
        let swarm = |service: &str, port| {
            Ok(SourceArg::Collectors(CollectorsArg::Swarm {
                service: service.into(),
                port,
            }))
        };
        assert_eq!(
            "collectors=swarm".parse::<SourceArg>(),
            swarm("collector", 9180)
        );
        assert_eq!(
            "collectors=swarm:plim_coll".parse::<SourceArg>(),
            swarm("plim_coll", 9180)
        );
        assert_eq!(
            "collectors=swarm:c:9999".parse::<SourceArg>(),
            swarm("c", 9999)
        );
        assert!("collectors=swarm:c:0"
            .parse::<SourceArg>()
            .unwrap_err()
            .contains("port"));
        assert!("collectors=swarm:c:http"
            .parse::<SourceArg>()
            .unwrap_err()
            .contains("port"));
        assert!("collectors=swarmy"
            .parse::<SourceArg>()
            .unwrap_err()
            .contains("not an http:// URL"));
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
