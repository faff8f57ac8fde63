//! Command line of the `plimsoll` binary. Each subcommand lives in its own file; this one only dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;
mod collect;

#[derive(Debug, Parser)]
#[command(
    name = "plimsoll",
    version,
    about = "Fine-grained monitoring collector and autoscaler for Docker and Swarm"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sample host and container metrics and serve them on /metrics and the JSON API.
    Collect(collect::CollectArgs),
    /// Validate policy files; exit 0 if all are valid, 1 otherwise.
    Check(check::CheckArgs),
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Collect(args) => collect::run(args),
        Command::Check(args) => check::run(args),
    }
}
