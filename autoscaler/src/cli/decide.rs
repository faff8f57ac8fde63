//! `plimsoll decide --policy FILE --snapshot FILE [--history FILE] [--now TIME]`: one decision as JSON.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{bail, Context};
use clap::Args;

use crate::policy::{decide, parse_policy, recommend, History, Observation, Policy, Timestamp};

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Policy file (YAML or JSON).
    #[arg(long)]
    policy: PathBuf,
    /// Observation snapshot (JSON): service, current_replicas, replicas with readiness and samples.
    #[arg(long)]
    snapshot: PathBuf,
    /// Earlier recommendations and scale events (JSON); without it the behavior section is not applied.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Decision instant (RFC 3339, e.g. 2026-01-01T12:00:00Z) for replaying a history; default: now.
    #[arg(long, value_parser = parse_now)]
    now: Option<Timestamp>,
}

/// Prints the decision; exit 2 with a message on stderr when an input is unreadable or invalid.
pub fn run(args: DecideArgs) -> ExitCode {
    match decide_from_files(&args) {
        // A closed stdout (e.g. piped into `head`) is not an input error: exit 1, not 2, and do not panic.
        Ok(json) => match writeln!(std::io::stdout().lock(), "{json}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("plimsoll decide: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn decide_from_files(args: &DecideArgs) -> anyhow::Result<String> {
    let policy = load_policy(&args.policy)?;
    let obs: Observation = read_json(&args.snapshot, "snapshot")?;
    if obs.service != policy.service {
        bail!(
            "snapshot is for service `{}` but the policy is for `{}`",
            obs.service,
            policy.service
        );
    }
    let decision = match &args.history {
        Some(path) => {
            let history: History = read_json(path, "history")?;
            let now = args
                .now
                .unwrap_or_else(|| Timestamp::from_system_time(SystemTime::now()));
            decide(&policy, &obs, &history, now)
        }
        None => recommend(&policy, &obs),
    };
    Ok(serde_json::to_string_pretty(&decision)?)
}

pub(crate) fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read policy {name}"))?;
    // PolicyError already lists every problem as file:line:col.
    parse_policy(&name, &text).map_err(|e| anyhow::anyhow!("invalid policy:\n{e}"))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let name = path.display();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {name}"))?;
    serde_json::from_str(&text).with_context(|| format!("invalid {what} {name}"))
}

fn parse_now(s: &str) -> Result<Timestamp, String> {
    humantime::parse_rfc3339_weak(s)
        .map(Timestamp::from_system_time)
        .map_err(|e| format!("{e}; expected RFC 3339"))
}
