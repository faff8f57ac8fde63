//! `plimsoll run`: the embedded default. One process samples this Docker host and autoscales the
//! services its policies name (files in --policies, and `plimsoll.*` labels on services).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use plimsoll_collector::Collector;

use super::collect::CollectorArgs;
use crate::control::{self, ApiToken, ControlConfig, Controller, DockerActuator, EmbeddedSource};

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
        let collector = Collector::start(config.clone());
        // Rates over three samples: smooth enough to ignore one odd pass, fresh enough to react in seconds.
        let source = EmbeddedSource::new(
            collector.shared(),
            (config.interval * 3).max(Duration::from_secs(2)),
        );
        let controller = Controller::new(
            DockerActuator::new(&config.docker_socket),
            source,
            ControlConfig {
                interval: config.interval,
                dry_run: args.dry_run,
                max_actions_per_minute: args.max_actions_per_minute,
                discovery_interval: Duration::from_secs(5),
                policies_dir: Some(args.policies.clone()),
            },
        );
        let app = collector
            .router()
            .merge(control::router(controller.state(), ApiToken::new(token)));
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        tracing::info!(listen = %config.listen, policies = %args.policies.display(), dry_run = args.dry_run, "plimsoll running");
        tokio::spawn(controller.run());
        axum::serve(listener, app)
            .with_graceful_shutdown(super::shutdown_signal())
            .await
            .context("serving HTTP")?;
        Ok(())
    })
}
