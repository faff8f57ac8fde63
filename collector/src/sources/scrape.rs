//! Prometheus scrape of the app containers that ask for it by label (see `target` for the
//! labels). The collector scrapes the containers of its own engine only: in a cluster, each node's
//! collector scrapes its node's containers, so each target is scraped once.
//!
//! The shell: a manager task follows the container directory (what discovery knows) and keeps
//! one task per target; each scrapes on its own schedule (its interval, at an offset spread over
//! it), with a bound on scrapes in flight over all targets. A target whose container goes away or
//! stops asking is stopped and its series deleted at once. Pure parts: `target` (labels into a
//! target, label merging), `translate` (body into samples), `write` (samples into the store).

pub mod config;
pub mod fetch;
pub mod route;
pub mod target;
#[cfg(test)]
mod tests;
mod text;
pub mod translate;
pub mod write;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

pub use config::ScrapeConfig;
pub use target::Target;

use crate::config::MAX_INTERVAL;
use crate::run::now_millis;
use crate::sources::directory::ContainerDirectory;
use crate::store::{Ingest, IngestError, Limits, SourceDesc, SourceId};
use crate::telemetry::IngestErrors;
use config::Defaults;
use route::LocalNetworks;
use write::{Health, Outcome, TargetWriter};

/// The `source` label of this component's ingest metrics.
pub const SOURCE: &str = "scrape";

/// How often the manager compares the directory with the running targets.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Registers the scrape source with the store; the series of a target stay fresh for two of the
/// longest intervals (they are deleted explicitly when they go).
pub fn register(ingest: &Ingest, config: &ScrapeConfig) -> Result<Health, IngestError> {
    let src = ingest.register_source(SourceDesc {
        name: SOURCE,
        stale_after: MAX_INTERVAL * 2,
        limits: Limits {
            max_series_per_family: Some(config.max_series_per_family),
            max_series_per_source: Some(config.max_series),
        },
    })?;
    Health::register(ingest, src)
}

/// A running scrape. Dropping it stops every target task.
pub struct Scraper {
    manager: JoinHandle<()>,
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.manager.abort();
    }
}

/// Starts the manager task on the current Tokio runtime.
pub fn start(
    config: &ScrapeConfig,
    collector_interval: Duration,
    directory: ContainerDirectory,
    ingest: Ingest,
) -> Result<Scraper, IngestError> {
    let health = register(&ingest, config)?;
    let shared = Arc::new(Shared {
        ingest,
        health,
        client: fetch::client(),
        permits: Semaphore::new(config.max_concurrent),
        body_size_limit: config.body_size_limit,
        sample_limit: config.sample_limit,
    });
    let defaults = config.defaults(collector_interval);
    let manager = tokio::spawn(follow(directory, shared, defaults));
    Ok(Scraper { manager })
}

/// What every target task shares.
struct Shared {
    ingest: Ingest,
    health: Health,
    client: reqwest::Client,
    permits: Semaphore,
    body_size_limit: usize,
    sample_limit: usize,
}

impl Shared {
    fn src(&self) -> SourceId {
        self.health.src
    }
}

/// A target task, aborted when dropped.
struct Running {
    target: Target,
    task: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// The manager: keeps one task per wanted target.
async fn follow(directory: ContainerDirectory, shared: Arc<Shared>, defaults: Defaults) {
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut reported: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut wanted: HashMap<String, Target> = HashMap::new();
        let mut local: Option<LocalNetworks> = None;
        for info in directory.all() {
            let found = target::target_of(&info, &defaults).and_then(|t| match t {
                Some(t) if !local.get_or_insert_with(LocalNetworks::read).allows(t.addr.ip()) => {
                    Err(vec![format!(
                        "{} is not on a network attached to this host (a Docker bridge); not scraped, so that no scrape leaves the host",
                        t.addr.ip()
                    )])
                }
                t => Ok(t),
            });
            match found {
                Ok(Some(t)) => {
                    wanted.insert(info.id.clone(), t);
                }
                Ok(None) => {}
                Err(problems) => {
                    if reported.insert(info.id.clone()) {
                        tracing::warn!(container = %info.name, problems = %problems.join("; "), "container asks to be scraped but its labels cannot be used; not scraped");
                        IngestErrors {
                            source: SOURCE,
                            reason: "bad_target_labels",
                            count: 1,
                        }
                        .emit();
                    }
                }
            }
        }
        reported.retain(|id| directory.get(id).is_some());
        let stale: Vec<String> = running
            .iter()
            .filter(|(id, r)| wanted.get(*id) != Some(&r.target))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(r) = running.remove(&id) {
                stop(r, &shared).await;
            }
        }
        for (id, t) in wanted {
            if running.contains_key(&id) {
                continue;
            }
            tracing::info!(container = %t.labels[0].1, url = %t.url(), interval = ?t.interval, "scraping container");
            let task = tokio::spawn(scrape_loop(t.clone(), shared.clone()));
            running.insert(
                id,
                Running {
                    target: t,
                    task: Some(task),
                },
            );
        }
    }
}

/// Stops a target's task (waiting until it cannot write any more), then deletes its series.
async fn stop(mut r: Running, shared: &Shared) {
    if let Some(task) = r.task.take() {
        task.abort();
        // The task writes under the store lock without awaiting in between: once it is seen
        // finished it has written its last batch.
        let _ = task.await;
    }
    let n = shared
        .ingest
        .remove_attributed(&r.target.container, Some(shared.src()));
    tracing::info!(container = %r.target.container, series = n, "stopped scraping container; its series are deleted");
}

/// One target: scrape, parse, write, on its schedule, until aborted.
async fn scrape_loop(target: Target, shared: Arc<Shared>) {
    let start = tokio::time::Instant::now() + target.offset();
    let mut tick = tokio::time::interval_at(start, target.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut writer = TargetWriter::default();
    let mut last_error: Option<&'static str> = None;
    loop {
        tick.tick().await;
        let outcome = {
            let Ok(_permit) = shared.permits.acquire().await else {
                return;
            };
            let began = Instant::now();
            let result = scrape_once(&target, &shared).await;
            (result, began.elapsed())
        };
        let (result, took) = outcome;
        let outcome = match result {
            Ok(scraped) => {
                for (reason, n) in [
                    ("invalid_value", scraped.invalid),
                    ("unsupported_type", scraped.unsupported),
                ] {
                    if n > 0 {
                        IngestErrors {
                            source: SOURCE,
                            reason,
                            count: n as u64,
                        }
                        .emit();
                    }
                }
                if last_error.take().is_some() {
                    tracing::info!(url = %target.url(), "scrape target is up again");
                }
                Outcome::Ok(scraped)
            }
            Err((reason, message)) => {
                IngestErrors {
                    source: SOURCE,
                    reason,
                    count: 1,
                }
                .emit();
                if last_error != Some(reason) {
                    tracing::warn!(url = %target.url(), reason, error = %message, "scrape failed; the target is down until a scrape succeeds");
                    last_error = Some(reason);
                }
                Outcome::Failed
            }
        };
        shared.ingest.batch(shared.src(), now_millis(), |b| {
            writer.write(b, &shared.health, &target, &outcome, took)
        });
    }
}

/// Fetches and parses (the parse on a blocking thread: a large body takes a while).
async fn scrape_once(
    target: &Target,
    shared: &Shared,
) -> Result<translate::Scraped, (&'static str, String)> {
    let (body, format) = fetch::fetch(&shared.client, target, shared.body_size_limit)
        .await
        .map_err(|e| (e.reason(), e.to_string()))?;
    let limit = shared.sample_limit;
    match tokio::task::spawn_blocking(move || translate::parse(&body, format, limit)).await {
        Ok(parsed) => parsed.map_err(|e| (e.reason(), e.to_string())),
        // Only a bug in the parser (its tests say it does not panic) or a runtime shutting down.
        Err(e) => Err(("parse", format!("the parser task failed: {e}"))),
    }
}
