//! `plimsoll simulate --policy FILE --trace CSV ...`: replay a demand trace, optionally against the HPA.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde_json::json;

use super::decide::load_policy;
use crate::simulate::{draw_chart, hpa_baseline, parse_trace, replay, Model, Summary};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Policy file (YAML or JSON).
    #[arg(long)]
    policy: PathBuf,
    /// Demand trace, CSV `timestamp,value` with a header.
    #[arg(long)]
    trace: PathBuf,
    /// Demand one replica serves, in the trace's unit.
    #[arg(long, default_value_t = 1.0)]
    capacity_per_replica: f64,
    /// Time from adding a replica to it being ready.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    startup: Duration,
    /// Decision interval.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    tick: Duration,
    /// Replay the same trace under a baseline and print both side by side.
    #[arg(long, value_enum)]
    baseline: Option<Baseline>,
    /// Write the figures as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Draw demand, capacity and replicas over time as SVG.
    #[arg(long)]
    chart: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Baseline {
    /// The Kubernetes HPA: default behavior and tolerance, the policy's targets and bounds.
    Hpa,
}

/// Exit 0 after printing the table; 2 with a message when an input is invalid.
pub fn run(args: SimulateArgs) -> ExitCode {
    match simulate(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plimsoll simulate: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    if !(args.capacity_per_replica.is_finite() && args.capacity_per_replica > 0.0) {
        bail!("--capacity-per-replica must be a positive number");
    }
    if args.tick.is_zero() {
        bail!("--tick must be greater than 0");
    }
    let policy = load_policy(&args.policy)?;
    let trace_name = args.trace.display().to_string();
    let text = std::fs::read_to_string(&args.trace)
        .with_context(|| format!("cannot read trace {trace_name}"))?;
    let trace = parse_trace(&trace_name, &text)?;
    let model = Model {
        capacity_per_replica: args.capacity_per_replica,
        startup: args.startup,
        tick: args.tick,
    };
    let ours = replay(&policy, &trace, &model)?;
    let base = match args.baseline {
        Some(Baseline::Hpa) => Some(replay(&hpa_baseline(&policy), &trace, &model)?),
        None => None,
    };

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "trace {trace_name}: {} points over {:.1} days; {} per replica, startup {}, tick {}",
        trace.len(),
        ours.summary.hours / 24.0,
        args.capacity_per_replica,
        humantime::format_duration(args.startup),
        humantime::format_duration(args.tick)
    )?;
    write!(
        out,
        "{}",
        table(
            &policy.service,
            &ours.summary,
            base.as_ref().map(|b| &b.summary)
        )
    )?;

    if let Some(path) = &args.report {
        let report = json!({
            "trace": trace_name,
            "policy": args.policy.display().to_string(),
            "model": model,
            "result": ours.summary,
            "baseline": base.as_ref().map(|b| json!({"kind": "hpa", "result": b.summary})),
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write report {}", path.display()))?;
    }
    if let Some(path) = &args.chart {
        let title = format!(
            "{} on {}",
            policy.service,
            args.trace.file_name().unwrap_or_default().to_string_lossy()
        );
        let svg = draw_chart(&title, &model, &ours, base.as_ref())?;
        std::fs::write(path, svg)
            .with_context(|| format!("cannot write chart {}", path.display()))?;
    }
    Ok(())
}

/// Label, figure, decimals.
type Row = (&'static str, fn(&Summary) -> f64, usize);

/// The figures, with the baseline and the policy/baseline ratio when there is one.
fn table(service: &str, ours: &Summary, base: Option<&Summary>) -> String {
    let rows: [Row; 6] = [
        ("replica-hours", |s| s.replica_hours, 1),
        ("overloaded minutes", |s| s.overloaded_minutes, 1),
        ("minutes above target", |s| s.minutes_above_target, 1),
        ("scale events", |s| f64::from(s.scale_events), 0),
        ("peak replicas", |s| f64::from(s.peak_replicas), 0),
        ("mean replicas", |s| s.mean_replicas, 2),
    ];
    let mut t = match base {
        Some(_) => format!("{:<22}{:>14}{:>14}{:>10}\n", "", service, "hpa", "ratio"),
        None => format!("{:<22}{:>14}\n", "", service),
    };
    for (name, get, prec) in rows {
        let v = get(ours);
        match base {
            Some(b) => {
                let bv = get(b);
                let ratio = if bv > 0.0 {
                    format!("{:.3}", v / bv)
                } else {
                    "-".into()
                };
                t += &format!("{name:<22}{v:>14.prec$}{bv:>14.prec$}{ratio:>10}\n");
            }
            None => t += &format!("{name:<22}{v:>14.prec$}\n"),
        }
    }
    t
}
