//! Command line of the `plimsoll` binary. Each subcommand lives in its own file; this one only
//! dispatches and holds what they share (logging, the runtime, shutdown).

use std::future::Future;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod check;
mod collect;
mod decide;
mod otlp;
mod run;
mod scrape;
mod simulate;
mod spans;
mod statsd;

#[derive(Debug, Parser)]
#[command(
    name = "plimsoll",
    version,
    about = "Fine-grained monitoring collector and autoscaler for Docker and Swarm"
)]
struct Cli {
    /// Log line format (the level comes from RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sample this Docker host and autoscale the services that policies name (the embedded default).
    Run(run::RunArgs),
    /// Sample host and container metrics and serve them on /metrics and the JSON API.
    Collect(collect::CollectArgs),
    /// Validate policy files; exit 0 if all are valid, 1 otherwise.
    Check(check::CheckArgs),
    /// Make one decision from a policy and an observation snapshot, printed as JSON.
    Decide(decide::DecideArgs),
    /// Replay a demand trace under a policy (and optionally the HPA) and report what it would have done.
    Simulate(simulate::SimulateArgs),
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Collect(args) => collect::run(args),
        Command::Check(args) => check::run(args),
        Command::Decide(args) => decide::run(args),
        Command::Simulate(args) => simulate::run(args),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs a long-lived async command on a multi-threaded runtime; errors end the process with 1.
/// Where the status page of a process listening on `listener` is: `localhost` for an unspecified
/// address.
fn status_page_url(listener: &tokio::net::TcpListener) -> String {
    match listener.local_addr() {
        Ok(a) if a.ip().is_unspecified() => format!("http://localhost:{}/", a.port()),
        Ok(a) => format!("http://{a}/"),
        Err(_) => "unknown (no local address)".to_string(),
    }
}

fn run_async(fut: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plimsoll: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("plimsoll: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
