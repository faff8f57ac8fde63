//! One target's scrapes into the store: every series with the target's labels and attributed to
//! its container, `up`, `scrape_duration_seconds` and `scrape_samples_scraped` per scrape, and the
//! series a scrape no longer exposes (or all of them, when it fails) deleted at once, as
//! Prometheus marks them stale.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::target::{merge_labels, Target};
use super::translate::{Sample, Scraped};
use super::SOURCE;
use crate::store::{
    Batch, FamilyDesc, FamilyId, Ingest, IngestError, Kind, SeriesRef, SourceId, Value,
};
use crate::telemetry::IngestDropped;

/// Metric names the scrape writes itself for every target; a target exposing one of them has it
/// skipped (counted as dropped, `reserved_name`).
pub const UP: &str = "up";
pub const DURATION: &str = "scrape_duration_seconds";
pub const SAMPLES: &str = "scrape_samples_scraped";

const MAX_CACHED_FAMILIES: usize = 10_000;

/// The families every target writes, registered once.
#[derive(Debug, Clone, Copy)]
pub struct Health {
    pub src: SourceId,
    up: FamilyId,
    duration: FamilyId,
    samples: FamilyId,
}

impl Health {
    pub fn register(ingest: &Ingest, src: SourceId) -> Result<Health, IngestError> {
        let g = |name: &str, help: &str| ingest.family(FamilyDesc::float(name, help, Kind::Gauge));
        Ok(Health {
            src,
            up: g(
                UP,
                "1 if the latest scrape of the target succeeded, else 0.",
            )?,
            duration: g(DURATION, "Wall time of the latest scrape of the target.")?,
            samples: g(SAMPLES, "Samples the latest scrape of the target exposed.")?,
        })
    }
}

/// How one scrape went, as the writer needs it.
#[derive(Debug)]
pub enum Outcome {
    Ok(Scraped),
    /// Failed; the target is down for this scrape.
    Failed,
}

/// What a target has written: its families (by name) and the series of its latest scrape.
#[derive(Debug, Default)]
pub struct TargetWriter {
    families: HashMap<String, Option<FamilyId>>,
    written: HashSet<SeriesRef>,
}

/// Counts of one write, for the caller's telemetry.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub series: usize,
    pub removed: usize,
    /// Families skipped because their name or type clashes with what the store holds.
    pub skipped_families: usize,
}

impl TargetWriter {
    /// Writes one scrape's outcome in `batch` (of the scrape source).
    pub fn write(
        &mut self,
        batch: &mut Batch<'_>,
        health: &Health,
        target: &Target,
        outcome: &Outcome,
        took: Duration,
    ) -> Written {
        let mut w = Written::default();
        let mut now_written = HashSet::with_capacity(self.written.len());
        let attribution = Some(target.container.as_str());
        let (up, samples) = match outcome {
            Outcome::Ok(s) => (1.0, s.samples as f64),
            Outcome::Failed => (0.0, 0.0),
        };
        if let Outcome::Ok(scraped) = outcome {
            for fam in &scraped.families {
                let Some(id) = self.family(batch, &fam.name, &fam.help, fam.kind) else {
                    w.skipped_families += 1;
                    continue;
                };
                for s in &fam.series {
                    let merged = merge_labels(&target.labels, &s.labels);
                    let labels: Vec<(&str, &str)> =
                        merged.iter().map(|(k, v)| (&**k, *v)).collect();
                    let Ok(series) = batch.series(id, &labels, attribution) else {
                        continue;
                    };
                    let value = match &s.value {
                        Sample::Float(f) => Value::Float(*f),
                        Sample::Histogram(h) => Value::Histogram(h),
                        Sample::Summary(q) => Value::Summary(q),
                    };
                    if batch.put(series, value) {
                        now_written.insert(series);
                        w.series += 1;
                    }
                }
            }
        }
        let labels: Vec<(&str, &str)> = target
            .labels
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        for (fam, v) in [
            (health.up, up),
            (health.duration, took.as_secs_f64()),
            (health.samples, samples),
        ] {
            if let Ok(series) = batch.series(fam, &labels, attribution) {
                if batch.put(series, Value::Float(v)) {
                    now_written.insert(series);
                }
            }
        }
        let gone: Vec<SeriesRef> = self.written.difference(&now_written).copied().collect();
        w.removed = batch.remove(&gone);
        self.written = now_written;
        w
    }

    /// The family of a scraped metric, registered on first sight; None (counted once) when the
    /// name is one the scrape writes itself, or clashes with a family of another type.
    fn family(
        &mut self,
        batch: &mut Batch<'_>,
        name: &str,
        help: &str,
        kind: Kind,
    ) -> Option<FamilyId> {
        if let Some(f) = self.families.get(name) {
            return *f;
        }
        if self.families.len() >= MAX_CACHED_FAMILIES {
            // A target that invents names keeps this cache bounded; the store's registry holds them.
            self.families.clear();
        }
        let reason = if [UP, DURATION, SAMPLES].contains(&name) {
            Err("reserved_name")
        } else {
            batch
                .family(FamilyDesc::float(name, help, kind))
                .map_err(|e| {
                    tracing::warn!(metric = name, error = %e, "scraped metric skipped");
                    match e {
                        IngestError::InvalidName(_) => "invalid_name",
                        _ => "type_conflict",
                    }
                })
        };
        let id = match reason {
            Ok(id) => Some(id),
            Err(reason) => {
                IngestDropped {
                    source: SOURCE,
                    reason,
                    count: 1,
                }
                .emit();
                None
            }
        };
        self.families.insert(name.to_string(), id);
        id
    }
}
