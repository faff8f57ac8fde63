//! Command line of the `plimsoll` binary. Each subcommand lives in its own file; this one only dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod collect;

#[derive(Debug, Parser)]
#[command(name = "plimsoll", version, about = "Fine-grained monitoring collector and autoscaler for Docker and Swarm")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sample host and container metrics and serve them on /metrics and the JSON API.
    Collect(collect::CollectArgs),
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Collect(args) => collect::run(args),
    }
}
