//! `plimsoll simulate --policy FILE (--trace CSV | --traces DIR) ...`: replay demand traces, against the
//! HPA's default behavior.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde_json::json;

use super::decide::load_policy;
use crate::policy::Policy;
use crate::simulate::{
    compare, draw_chart, hpa_baseline, parse_trace, read_traces, replay, Comparison, Interpolation,
    Model, Summary, Trace,
};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Policy file (YAML or JSON).
    #[arg(long)]
    policy: PathBuf,
    /// Demand trace, CSV `timestamp,value` with a header.
    #[arg(long, required_unless_present = "traces", conflicts_with = "traces")]
    trace: Option<PathBuf>,
    /// A folder of traces (every `*.csv` in it): one row per trace, each against the HPA baseline.
    #[arg(long)]
    traces: Option<PathBuf>,
    /// Demand one replica serves, in the trace's unit: `N` for every trace, `NAME=N` for the trace whose
    /// file is NAME.csv. Repeatable; 1 when not given.
    #[arg(long, value_name = "N|NAME=N")]
    capacity_per_replica: Vec<String>,
    /// Demand between two trace points: a straight line, or the earlier value held until the next point.
    #[arg(long, value_enum, default_value_t = Interpolate::Linear)]
    interpolate: Interpolate,
    /// Time from adding a replica to it being ready.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    startup: Duration,
    /// Decision interval.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    tick: Duration,
    /// Not a policy, a bound: show the policy the highest demand of the coming DURATION instead of the
    /// current one (it knows the future; overload is still counted on the current demand; the HPA
    /// baseline never gets it). With the start-up time plus a tick: what the same policy would reach if
    /// it could forecast perfectly.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    oracle_lookahead: Option<Duration>,
    /// Replay the same trace under a baseline and print both side by side (always done with --traces).
    #[arg(long, value_enum)]
    baseline: Option<Baseline>,
    /// Write the figures as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Draw demand, capacity and replicas over time as SVG (with --trace).
    #[arg(long, conflicts_with = "traces")]
    chart: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Baseline {
    /// The Kubernetes HPA: default behavior and tolerance, the policy's targets and bounds.
    Hpa,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Interpolate {
    Linear,
    Step,
}

impl From<Interpolate> for Interpolation {
    fn from(i: Interpolate) -> Self {
        match i {
            Interpolate::Linear => Interpolation::Linear,
            Interpolate::Step => Interpolation::Step,
        }
    }
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

/// `--capacity-per-replica` values: the default and the per-trace ones.
struct Capacities {
    default: f64,
    by_trace: BTreeMap<String, f64>,
}

impl Capacities {
    fn parse(specs: &[String]) -> anyhow::Result<Self> {
        let positive = |v: &str| -> anyhow::Result<f64> {
            match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
                _ => bail!("--capacity-per-replica must be a positive number, got `{v}`"),
            }
        };
        let mut c = Capacities {
            default: 1.0,
            by_trace: BTreeMap::new(),
        };
        for spec in specs {
            match spec.split_once('=') {
                Some((name, v)) => {
                    c.by_trace.insert(name.trim().to_string(), positive(v)?);
                }
                None => c.default = positive(spec)?,
            }
        }
        Ok(c)
    }

    fn of(&self, trace: &str) -> f64 {
        self.by_trace.get(trace).copied().unwrap_or(self.default)
    }
}

fn simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    if args.tick.is_zero() {
        bail!("--tick must be greater than 0");
    }
    let capacities = Capacities::parse(&args.capacity_per_replica)?;
    let policy = load_policy(&args.policy)?;
    let model = |capacity_per_replica| Model {
        capacity_per_replica,
        startup: args.startup,
        tick: args.tick,
        interpolation: args.interpolate.into(),
        oracle_lookahead: args.oracle_lookahead.unwrap_or_default(),
    };
    match (&args.trace, &args.traces) {
        (Some(path), _) => one_trace(args, &policy, path, &capacities, model),
        (None, Some(dir)) => {
            let traces = read_traces(dir)?;
            if traces.is_empty() {
                bail!("no *.csv trace in {}", dir.display());
            }
            for name in capacities.by_trace.keys() {
                if !traces.iter().any(|t| &t.name == name) {
                    bail!(
                        "--capacity-per-replica {name}=...: no trace {name}.csv in {}",
                        dir.display()
                    );
                }
            }
            folder(args, &policy, &traces, &capacities, model)
        }
        (None, None) => bail!("give --trace FILE or --traces DIR"),
    }
}

fn one_trace(
    args: &SimulateArgs,
    policy: &Policy,
    path: &std::path::Path,
    capacities: &Capacities,
    model: impl Fn(f64) -> Model,
) -> anyhow::Result<()> {
    let trace_name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read trace {trace_name}"))?;
    let trace = parse_trace(&trace_name, &text)?;
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let model = model(capacities.of(&stem));
    let ours = replay(policy, &trace, &model)?;
    let base = match args.baseline {
        Some(Baseline::Hpa) => Some(replay(&hpa_baseline(policy), &trace, &model)?),
        None => None,
    };

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "trace {trace_name}: {} points over {:.1} days; {} per replica, startup {}, tick {}, {} interpolation",
        trace.len(),
        ours.summary.hours / 24.0,
        model.capacity_per_replica,
        humantime::format_duration(args.startup),
        humantime::format_duration(args.tick),
        model.interpolation.as_str(),
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
        let title = format!("{} on {}", policy.service, stem);
        let svg = draw_chart(&title, &model, &ours, base.as_ref())?;
        std::fs::write(path, svg)
            .with_context(|| format!("cannot write chart {}", path.display()))?;
    }
    Ok(())
}

/// Every trace of a folder against the HPA baseline, one thread per trace.
fn folder(
    args: &SimulateArgs,
    policy: &Policy,
    traces: &[Trace],
    capacities: &Capacities,
    model: impl Fn(f64) -> Model + Sync,
) -> anyhow::Result<()> {
    let rows: Vec<(Model, Comparison)> = std::thread::scope(|s| {
        let handles: Vec<_> = traces
            .iter()
            .map(|t| {
                let m = model(capacities.of(&t.name));
                s.spawn(move || compare(policy, &t.points, &m).map(|c| (m, c)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a replay thread panicked"))
            .collect::<Result<_, _>>()
    })?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "policy {} on {}: startup {}, tick {}, {} interpolation; ratio = policy / HPA default behavior, same run",
        args.policy.display(),
        args.traces.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
        humantime::format_duration(args.startup),
        humantime::format_duration(args.tick),
        rows[0].0.interpolation.as_str(),
    )?;
    write!(out, "{}", folder_table(traces, &rows))?;

    if let Some(path) = &args.report {
        let report = json!({
            "policy": args.policy.display().to_string(),
            "interpolation": rows[0].0.interpolation,
            "traces": traces.iter().zip(&rows).map(|(t, (m, c))| json!({
                "trace": t.name,
                "model": m,
                "result": c.policy,
                "baseline": {"kind": "hpa", "result": c.hpa},
                "ratios": {
                    "replica_hours": c.replica_hours_ratio(),
                    "overloaded_minutes": c.overloaded_ratio(),
                    "scale_events": c.scale_events_ratio(),
                },
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write report {}", path.display()))?;
    }
    Ok(())
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.3}"))
}

/// One row per trace: policy / HPA figures and their ratio.
fn folder_table(traces: &[Trace], rows: &[(Model, Comparison)]) -> String {
    let mut t = format!(
        "{:<40}{:>9}{:>27}{:>27}{:>23}\n",
        "trace",
        "capacity",
        "replica-hours (ratio)",
        "overloaded min (ratio)",
        "scale events (ratio)"
    );
    for (trace, (m, c)) in traces.iter().zip(rows) {
        let (p, h) = (&c.policy, &c.hpa);
        t += &format!(
            "{:<40}{:>9}{:>27}{:>27}{:>23}\n",
            trace.name,
            m.capacity_per_replica,
            format!(
                "{:.1} / {:.1} {}",
                p.replica_hours,
                h.replica_hours,
                ratio(Some(c.replica_hours_ratio()))
            ),
            format!(
                "{:.1} / {:.1} {}",
                p.overloaded_minutes,
                h.overloaded_minutes,
                ratio(c.overloaded_ratio())
            ),
            format!(
                "{} / {} {}",
                p.scale_events,
                h.scale_events,
                ratio(c.scale_events_ratio())
            ),
        );
    }
    t
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
