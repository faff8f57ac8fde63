//! `load`: sends GET requests to a URL at a fixed rate (open loop: the rate does not drop when the
//! answers slow down, as real users do not wait for each other), and prints every 5 seconds what came
//! back and the p50/p95 latency of those answers.
//!
//! `load URL [--rate N] [--duration SECONDS] [--max-in-flight N]`: N requests a second (10), for
//! SECONDS (0: until stopped), at most N requests waiting for an answer (1000; beyond it a request is
//! skipped and counted, so a stalled target does not exhaust this process). Requests time out after
//! 10 s.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Period {
    ok: u64,
    failed: u64,
    skipped: u64,
    latencies_ms: Vec<f64>,
    /// The first failure of the period, to show why.
    first_error: Option<String>,
}

struct Args {
    url: String,
    rate: f64,
    duration: Option<Duration>,
    max_in_flight: usize,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut url = None;
    let (mut rate, mut duration, mut max_in_flight) = (10.0, None, 1000);
    while let Some(a) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        match a.as_str() {
            "--rate" => {
                rate = value("--rate")?
                    .parse::<f64>()
                    .map_err(|e| format!("--rate: {e}"))?;
                if !(rate > 0.0 && rate <= 100_000.0) {
                    return Err("--rate must be above 0 and at most 100000".into());
                }
            }
            "--duration" => {
                let s: u64 = value("--duration")?
                    .parse()
                    .map_err(|e| format!("--duration: {e}"))?;
                duration = (s > 0).then(|| Duration::from_secs(s));
            }
            "--max-in-flight" => {
                max_in_flight = value("--max-in-flight")?
                    .parse()
                    .map_err(|e| format!("--max-in-flight: {e}"))?
            }
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with("--") => return Err(format!("unknown flag {s}")),
            s if url.is_none() => url = Some(s.to_string()),
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    let url = url.ok_or("the URL to load is missing")?;
    reqwest::Url::parse(&url).map_err(|e| format!("{url}: {e}"))?;
    Ok(Args {
        url,
        rate,
        duration,
        max_in_flight,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("load: {e}");
            }
            eprintln!("usage: load URL [--rate N] [--duration SECONDS] [--max-in-flight N]");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let period = Arc::new(Mutex::new(Period::default()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(args.max_in_flight));
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    let mut report = tokio::time::interval(Duration::from_secs(5));
    report.tick().await;
    println!(
        "load: {} requests/s to {}{}",
        args.rate,
        args.url,
        args.duration
            .map(|d| format!(" for {} s", d.as_secs()))
            .unwrap_or_default()
    );
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if args.duration.is_some_and(|d| start.elapsed() >= d) {
                    break;
                }
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    period.lock().unwrap().skipped += 1;
                    continue;
                };
                let (client, url, period) = (client.clone(), args.url.clone(), period.clone());
                tokio::spawn(async move {
                    let sent = Instant::now();
                    let outcome = match client.get(&url).send().await {
                        Ok(r) => {
                            let status = r.status();
                            match r.text().await {
                                Ok(_) if status.is_success() => Ok(()),
                                Ok(body) => Err(format!("{status}: {}", body.trim())),
                                Err(e) => Err(e.to_string()),
                            }
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    let mut p = period.lock().unwrap();
                    match outcome {
                        Ok(()) => {
                            p.ok += 1;
                            p.latencies_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
                        }
                        Err(e) => {
                            p.failed += 1;
                            p.first_error.get_or_insert(e);
                        }
                    }
                    drop(permit);
                });
            }
            _ = report.tick() => print_period(&period, start),
            _ = otel_services::shutdown_signal() => break,
        }
    }
    print_period(&period, start);
    Ok(())
}

fn print_period(period: &Mutex<Period>, start: Instant) {
    let mut p = std::mem::take(&mut *period.lock().unwrap());
    p.latencies_ms.sort_by(f64::total_cmp);
    let q = |phi: f64| {
        let n = p.latencies_ms.len();
        (n > 0).then(|| p.latencies_ms[((n as f64 * phi).ceil() as usize).clamp(1, n) - 1])
    };
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
    println!(
        "{:>5.0} s: ok {} failed {} skipped {}, p50 {} p95 {}{}",
        start.elapsed().as_secs_f64(),
        p.ok,
        p.failed,
        p.skipped,
        ms(q(0.5)),
        ms(q(0.95)),
        p.first_error
            .map(|e| format!(" (first failure: {e})"))
            .unwrap_or_default()
    );
}
