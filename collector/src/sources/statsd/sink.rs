//! The receiver's flush into the store: every live series of the [`Aggregator`] written through the
//! one ingest handle, as source `statsd`.
//!
//! A series attributed to a container (sender address on a Docker network, or DogStatsD's `|c:`
//! field) gets that container's `name`, `service`, `task` and `slot` labels, as its cgroup series
//! have, and is attributed to it in the store. A tag that names one of those labels with another
//! value is kept as `exported_<name>`, as Prometheus keeps a scraped label that clashes with a
//! target label.
//!
//! When discovery removes a container, the store loses its series at once (`remove_attributed`) and
//! the aggregator forgets them at the next flush, so nothing brings them back.
//!
//! The store series of each aggregator series is resolved once and remembered by [`SeriesId`]; a
//! series the store refused (a type or source conflict, an invalid label) is remembered as refused
//! and not tried again while the aggregator keeps it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::aggregate::{Aggregator, FamilyKind, FlushValue, SeriesId, SeriesView, Sink};
use super::SOURCE;
use crate::sources::directory::ContainerDirectory;
use crate::store::{
    Batch, FamilyDesc, FamilyId, Histogram, Ingest, IngestError, Kind, Limits, Millis, SeriesRef,
    SourceDesc, SourceId, Value,
};
use crate::telemetry::IngestDropped;

/// Writes the aggregation into the store at every flush.
pub struct StoreSink {
    ingest: Ingest,
    src: SourceId,
    directory: ContainerDirectory,
    /// By aggregator slot: the generation it was resolved for and the store series (None: refused).
    series: Vec<Option<(u32, Option<SeriesRef>)>>,
    families: HashMap<Arc<str>, Result<FamilyId, ()>>,
    /// A histogram value reused between writes; its bounds are shared with the store's layout.
    hist: Histogram,
    /// The directory's removal count at the previous flush.
    removals: u64,
    /// The flush interval: a starting series' zero point goes one interval before its first flush.
    interval_ms: Millis,
}

impl StoreSink {
    /// Registers source `statsd` with limits no lower than the aggregator's own, so that what the
    /// aggregator admits the store keeps. Series count as current for two flush intervals.
    pub fn new(
        ingest: Ingest,
        directory: ContainerDirectory,
        interval: Duration,
        max_series: usize,
        max_series_per_family: usize,
    ) -> Result<StoreSink, IngestError> {
        let src = ingest.register_source(SourceDesc {
            name: SOURCE,
            stale_after: interval * 2,
            limits: Limits {
                max_series_per_family: Some(max_series_per_family),
                max_series_per_source: Some(max_series),
            },
        })?;
        Ok(StoreSink {
            ingest,
            src,
            directory,
            series: Vec::new(),
            families: HashMap::new(),
            hist: Histogram::new(Arc::from([])),
            interval_ms: (interval.as_millis() as Millis).max(1),
            removals: 0,
        })
    }

    pub fn source(&self) -> SourceId {
        self.src
    }

    /// One flush: the series of containers that are gone are forgotten (discovery already deleted
    /// them from the store), then the zero points of series that start are written one interval
    /// before (at the previous flush, since when their first increments came in: a rate over the
    /// first points is then the rate they were sent at, not the first increment over a
    /// millisecond), then every live series at `now`.
    pub fn flush(&mut self, agg: &mut Aggregator, now: Millis) {
        let removals = self.directory.removals();
        if removals != self.removals {
            self.removals = removals;
            let dir = &self.directory;
            agg.forget_containers(|id| dir.get(id).is_some());
        }
        let ingest = self.ingest.clone();
        ingest.batch(self.src, now - self.interval_ms, |b| {
            agg.flush_starts(&mut Writer { sink: self, b });
        });
        ingest.batch(self.src, now, |b| {
            agg.flush(now, &mut Writer { sink: self, b });
        });
    }

    fn family(&mut self, b: &mut Batch<'_>, s: &SeriesView<'_>) -> Option<FamilyId> {
        if let Some(f) = self.families.get(s.family) {
            return f.ok();
        }
        let kind = match s.kind {
            FamilyKind::Counter => Kind::Counter,
            FamilyKind::Gauge => Kind::Gauge,
            FamilyKind::Histogram => Kind::Histogram,
        };
        let got = b.family(FamilyDesc::float(s.family, s.help, kind));
        let r = match got {
            Ok(f) => Ok(f),
            Err(e) => {
                // Another source registered the name with another type (or a clashing name).
                tracing::warn!(metric = s.family, error = %e, "StatsD metric not stored; further lines of it are only counted in plimsoll_ingest_dropped_total");
                Err(())
            }
        };
        self.families.insert(Arc::from(s.family), r);
        r.ok()
    }

    /// The store series of an aggregator series, created with its container's labels.
    fn resolve(&mut self, b: &mut Batch<'_>, s: &SeriesView<'_>) -> Option<SeriesRef> {
        let Some(fam) = self.family(b, s) else {
            IngestDropped {
                source: SOURCE,
                reason: crate::store::DropReason::TypeConflict.as_str(),
                count: 1,
            }
            .emit();
            return None;
        };
        let info = match s.attribution {
            Some(id) => match self.directory.get(id) {
                Some(info) => Some(info),
                // Removed since the last flush (discovery removes it from the directory before it
                // deletes its series from the store): not created again; forgotten next flush.
                None => return None,
            },
            None => None,
        };
        let own: Vec<(&str, &str)> = info.as_ref().map_or_else(Vec::new, |c| {
            std::iter::once(("name", c.name.as_str()))
                .chain(c.scheduler_labels())
                .collect()
        });
        let exported: Vec<String> = s
            .labels
            .iter()
            .filter(|(k, v)| own.iter().any(|(o, ov)| o == &&**k && ov != &&**v))
            .map(|(k, _)| format!("exported_{k}"))
            .collect();
        let mut labels = own.clone();
        let mut renamed = exported.iter();
        for (k, v) in s.labels.iter() {
            match own.iter().find(|(o, _)| *o == &**k) {
                // The same label with the same value: once is enough.
                Some((_, ov)) if *ov == &**v => {}
                Some(_) => labels.push((renamed.next().expect("counted above"), v)),
                None => labels.push((k, v)),
            }
        }
        b.series(fam, &labels, s.attribution.map(|a| &**a)).ok()
    }
}

/// The sink one flush writes through: the store sink and the open batch.
struct Writer<'a, 'b> {
    sink: &'a mut StoreSink,
    b: &'a mut Batch<'b>,
}

impl Writer<'_, '_> {
    fn put(&mut self, r: SeriesRef, v: &FlushValue<'_>) -> bool {
        let value = match *v {
            FlushValue::Counter(x) | FlushValue::Gauge(x) => Value::Float(x),
            FlushValue::Histogram {
                bounds,
                buckets,
                count,
                sum,
            } => {
                let h = &mut self.sink.hist;
                if *h.bounds != *bounds {
                    h.bounds = Arc::from(bounds);
                }
                h.buckets.clear();
                h.buckets.extend_from_slice(buckets);
                h.count = count;
                h.sum = sum;
                Value::Histogram(h)
            }
        };
        self.b.put(r, value)
    }
}

impl Sink for Writer<'_, '_> {
    fn write(&mut self, id: SeriesId, s: &SeriesView<'_>, v: FlushValue<'_>) {
        let slot = id.slot as usize;
        if self.sink.series.len() <= slot {
            self.sink.series.resize(slot + 1, None);
        }
        let known = match self.sink.series[slot] {
            Some((gen, r)) if gen == id.gen => Some(r),
            _ => None,
        };
        let r = match known {
            Some(None) => return, // refused before
            Some(Some(r)) if self.b.is_live(r) => r,
            // New, or deleted from the store meanwhile (its container went, or it aged out).
            _ => {
                let r = self.sink.resolve(self.b, s);
                self.sink.series[slot] = Some((id.gen, r));
                match r {
                    Some(r) => r,
                    None => return,
                }
            }
        };
        self.put(r, &v);
    }
}

#[cfg(test)]
mod tests;
