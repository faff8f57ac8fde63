//! The one way to write into the store: [`Ingest`], a handle every source holds.
//!
//! ```ignore
//! let src = ingest.register_source(SourceDesc { name: "statsd", stale_after, limits })?;
//! let fam = ingest.family(FamilyDesc::float("orders_total", "Orders.", Kind::Counter))?;
//! ingest.batch(src, now_ms, |b| {                        // one write lock per batch
//!     let s = b.series(fam, &[("service", "web")], Some(container_id))?;   // or Dropped(reason)
//!     b.put(s, Value::Float(1.0));
//!     Ok::<_, Dropped>(())
//! });
//! ```
//! New series beyond a source's limits are not created: [`Dropped`], counted in
//! `plimsoll_ingest_dropped_total{source,reason}` and logged once per family. Existing series keep
//! working. Sampled sources put the same series in the same order every pass and use a
//! [`SeriesCursor`] (through [`Writer`]) to skip the hash lookup.

use std::borrow::Cow;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use super::histogram::{check_layout, fill_row};
use super::labels::{self, sorted_checked};
use super::{
    append, Codec, Data, FamilyDesc, FamilyId, Histogram, Kind, Millis, Series, SeriesRef, Slot,
    SourceId, Store, Summary,
};
use crate::telemetry::IngestDropped;

/// A source as it registers with the store.
#[derive(Debug, Clone)]
pub struct SourceDesc {
    /// Names the source in `plimsoll_ingest_dropped_total{source=...}` and logs; unique.
    pub name: &'static str,
    /// How long after its last write a series still counts as current, measured on the source's
    /// own clock (the time of its latest batch). Zero for sampled sources that write every series
    /// every pass: a series the latest pass did not write is gone. Push sources that write every
    /// live series at every flush use two flush intervals.
    pub stale_after: Duration,
    pub limits: Limits,
}

/// Cardinality limits of one source. A new series beyond a limit is dropped, never an old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Series of one family (across sources) this source may grow it to.
    pub max_series_per_family: Option<usize>,
    /// Series this source may own.
    pub max_series_per_source: Option<usize>,
}

impl Limits {
    /// For the kernel sources, whose cardinality is bounded by the machine.
    pub const UNLIMITED: Limits = Limits {
        max_series_per_family: None,
        max_series_per_source: None,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_series_per_family: Some(10_000),
            max_series_per_source: Some(100_000),
        }
    }
}

/// Why a series or a sample was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The family holds `max_series_per_family` series.
    FamilyLimit,
    /// The source owns `max_series_per_source` series.
    SourceLimit,
    /// The value does not fit the family (a float into an int family, a histogram with other
    /// bounds than the series').
    TypeConflict,
    /// A label name is not a Prometheus name, reserved, or given twice.
    InvalidLabel,
    /// Another source owns a series with this name and labels.
    SourceConflict,
    /// Older than the series' newest sample.
    OutOfOrder,
    /// A histogram or summary whose bounds, quantiles or sizes make no sense.
    InvalidValue,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::FamilyLimit => "family_limit",
            DropReason::SourceLimit => "source_limit",
            DropReason::TypeConflict => "type_conflict",
            DropReason::InvalidLabel => "invalid_label",
            DropReason::SourceConflict => "source_conflict",
            DropReason::OutOfOrder => "out_of_order",
            DropReason::InvalidValue => "invalid_value",
        }
    }
}

/// A series or sample the store refused; already counted and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("dropped: {}", .0.as_str())]
pub struct Dropped(pub DropReason);

/// Errors of registration (families, sources), which are programming or configuration errors of
/// a source rather than bad input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    #[error("metric {name} is registered as {existing}, not {wanted}")]
    TypeConflict {
        name: String,
        existing: String,
        wanted: String,
    },
    #[error("metric {name} would expose the same name as {other}")]
    NameClash { name: String, other: String },
    #[error("{0:?} is not a valid Prometheus metric name")]
    InvalidName(String),
    #[error("metric {name}: {why}")]
    InvalidFamily { name: String, why: &'static str },
    #[error("a source named {0} is registered already")]
    DuplicateSource(String),
}

/// One sample as a writer hands it over.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// A raw kernel integer, for `Codec::Int` families.
    Raw(i64),
    /// For float counters and gauges.
    Float(f64),
    Histogram(&'a Histogram),
    Summary(&'a Summary),
}

/// The shared handle to the store: writers batch through it, readers lock it for queries.
#[derive(Debug, Clone)]
pub struct Ingest {
    store: Arc<RwLock<Store>>,
}

impl Ingest {
    /// A new, empty store keeping `window` of history per series.
    pub fn new(window: Duration) -> Self {
        Ingest {
            store: Arc::new(RwLock::new(Store::new(window.as_millis() as Millis))),
        }
    }

    pub fn register_source(&self, desc: SourceDesc) -> Result<SourceId, IngestError> {
        self.write().register_source(desc)
    }

    pub fn family(&self, desc: FamilyDesc) -> Result<FamilyId, IngestError> {
        self.write().family(desc)
    }

    /// Runs `f` with the store locked for writing, as one batch of `src` at `now`.
    pub fn batch<R>(&self, src: SourceId, now: Millis, f: impl FnOnce(&mut Batch<'_>) -> R) -> R {
        self.write().batch(src, now, f)
    }

    /// Deletes the series attributed to a container (of one source, or of all).
    pub fn remove_attributed(&self, container: &str, source: Option<SourceId>) -> usize {
        self.write().remove_attributed(container, source)
    }

    /// The store, locked for reading (see `crate::query::Query`).
    pub fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().expect("store lock")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        self.store.write().expect("store lock")
    }
}

impl Store {
    /// Runs `f` as one batch of `src` at `now`: the source's clock moves to `now` (which is what
    /// staleness is measured against), then every write of `f` is stamped `now`.
    pub fn batch<R>(
        &mut self,
        src: SourceId,
        now: Millis,
        f: impl FnOnce(&mut Batch<'_>) -> R,
    ) -> R {
        self.sources[src.0 as usize].last_batch = now;
        let r = f(&mut Batch {
            store: self,
            src,
            now,
        });
        self.maybe_sweep(now);
        r
    }

    /// Counts a drop and logs it once per family and reason.
    fn drop_for(&mut self, src: SourceId, fam: FamilyId, reason: DropReason) -> Dropped {
        let s = &mut self.sources[src.0 as usize];
        let name = s.desc.name;
        let entry = s.dropped.entry(reason).or_insert_with(|| {
            let event = IngestDropped {
                source: name,
                reason: reason.as_str(),
                count: 1,
            };
            (0, event.counter())
        });
        entry.0 += 1;
        entry.1.increment(1);
        if self.logged.insert((fam, reason)) {
            tracing::warn!(
                source = name,
                metric = %self.families[fam.0 as usize].desc.name,
                reason = reason.as_str(),
                "series dropped; further drops of this metric for this reason are only counted in plimsoll_ingest_dropped_total"
            );
        }
        Dropped(reason)
    }
}

/// What a lookup of family + labels found.
enum Lookup<'a> {
    Found(SeriesRef),
    Absent {
        sorted: Vec<(&'a str, &'a str)>,
        hash: u64,
    },
}

/// Writes of one source at one instant, under the store's write lock.
pub struct Batch<'s> {
    store: &'s mut Store,
    src: SourceId,
    now: Millis,
}

impl Batch<'_> {
    pub fn now(&self) -> Millis {
        self.now
    }

    pub fn source(&self) -> SourceId {
        self.src
    }

    /// Registers a family met for the first time mid-batch.
    pub fn family(&mut self, desc: FamilyDesc) -> Result<FamilyId, IngestError> {
        self.store.family(desc)
    }

    pub fn is_live(&self, s: SeriesRef) -> bool {
        self.store.is_live(s)
    }

    fn lookup<'a>(
        &mut self,
        fam: FamilyId,
        labels: &[(&'a str, &'a str)],
    ) -> Result<Lookup<'a>, Dropped> {
        let sorted = match sorted_checked(labels) {
            Ok(s) => s,
            Err(_) => return Err(self.store.drop_for(self.src, fam, DropReason::InvalidLabel)),
        };
        let st = &*self.store;
        let hash = labels::series_hash(&st.hasher, fam.0, sorted.iter().copied());
        let found = st.index.find(hash, |i| {
            st.slots[*i as usize]
                .series
                .as_ref()
                .is_some_and(|s| s.family == fam && s.labels.equals_sorted(&sorted))
        });
        Ok(match found {
            Some(i) => Lookup::Found(SeriesRef {
                idx: *i,
                gen: st.slots[*i as usize].gen,
            }),
            None => Lookup::Absent { sorted, hash },
        })
    }

    /// Whether the series of `fam` with `labels` exists for this source or may be created, without
    /// creating it: receivers ask before they grow their own aggregation state.
    pub fn admit(&mut self, fam: FamilyId, labels: &[(&str, &str)]) -> Result<(), Dropped> {
        match self.lookup(fam, labels)? {
            Lookup::Found(s) => self.owned(fam, s).map(|_| ()),
            Lookup::Absent { .. } => self.room(fam),
        }
    }

    fn owned(&mut self, fam: FamilyId, s: SeriesRef) -> Result<SeriesRef, Dropped> {
        if self.store.source_of(s) == Some(self.src) {
            Ok(s)
        } else {
            Err(self
                .store
                .drop_for(self.src, fam, DropReason::SourceConflict))
        }
    }

    fn room(&mut self, fam: FamilyId) -> Result<(), Dropped> {
        let src = &self.store.sources[self.src.0 as usize];
        let limits = src.desc.limits;
        let reason = if limits
            .max_series_per_family
            .is_some_and(|m| self.store.families[fam.0 as usize].live >= m)
        {
            DropReason::FamilyLimit
        } else if limits
            .max_series_per_source
            .is_some_and(|m| src.series >= m)
        {
            DropReason::SourceLimit
        } else {
            return Ok(());
        };
        Err(self.store.drop_for(self.src, fam, reason))
    }

    /// The series of `fam` with `labels` (any order; rendered in this order when created),
    /// created if new and within the limits. `attribution` (a full container id) is fixed when the
    /// series is created.
    pub fn series(
        &mut self,
        fam: FamilyId,
        labels: &[(&str, &str)],
        attribution: Option<&str>,
    ) -> Result<SeriesRef, Dropped> {
        let (sorted, hash) = match self.lookup(fam, labels)? {
            Lookup::Found(s) => return self.owned(fam, s),
            Lookup::Absent { sorted, hash } => (sorted, hash),
        };
        self.room(fam)?;
        let st = &mut *self.store;
        let desc = &st.families[fam.0 as usize].desc;
        let data = match (desc.codec, desc.kind) {
            (Codec::Int { .. }, _) => Data::Int(Default::default()),
            (Codec::Float, Kind::Counter | Kind::Gauge) => Data::Float(Default::default()),
            (Codec::Float, Kind::Histogram | Kind::Summary) => Data::Rows {
                layout: None,
                row: Box::new([]),
                chunks: Default::default(),
            },
        };
        let series = Series {
            family: fam,
            source: self.src,
            labels: st.interner.label_set(&sorted),
            attribution: attribution.map(|a| st.interner.intern(a)),
            rendered: labels::render(labels),
            hash,
            // Created now: a series not written yet is swept like one written now.
            last_write: self.now,
            data,
        };
        let attribution = series.attribution.clone();
        let idx = match st.free.pop() {
            Some(i) => i,
            None => {
                st.slots.push(Slot::default());
                st.slots.len() as u32 - 1
            }
        };
        let slot = &mut st.slots[idx as usize];
        slot.series = Some(series);
        let r = SeriesRef { idx, gen: slot.gen };
        let slots = &st.slots;
        st.index.insert_unique(hash, idx, |i| {
            slots[*i as usize].series.as_ref().map_or(0, |s| s.hash)
        });
        let f = &mut st.families[fam.0 as usize];
        f.series.push(r);
        f.live += 1;
        st.sources[self.src.0 as usize].series += 1;
        st.live_series += 1;
        if let Some(a) = attribution {
            st.by_container.entry(a).or_default().push(r);
        }
        Ok(r)
    }

    /// Deletes series this source owns (e.g. ones a scrape target stopped exposing); returns how
    /// many were live. Series of other sources are left alone.
    pub fn remove(&mut self, series: &[SeriesRef]) -> usize {
        let mut n = 0;
        for s in series {
            if self.store.source_of(*s) == Some(self.src) {
                self.store.delete(*s);
                n += 1;
            }
        }
        if n > 0 {
            self.store.compact();
        }
        n
    }

    /// Appends `v` at the batch's time. False when the series is gone (re-resolve it with
    /// [`Batch::series`]) or the value was dropped (counted).
    pub fn put(&mut self, s: SeriesRef, v: Value<'_>) -> bool {
        let now = self.now;
        let st = &mut *self.store;
        let horizon = now - st.window_ms;
        let Some(series) = st
            .slots
            .get_mut(s.idx as usize)
            .filter(|x| x.gen == s.gen)
            .and_then(|x| x.series.as_mut())
        else {
            return false;
        };
        let fam = series.family;
        if now < series.last_write {
            return {
                self.store.drop_for(self.src, fam, DropReason::OutOfOrder);
                false
            };
        }
        let kind = st.families[fam.0 as usize].desc.kind;
        // A histogram or summary as (layout, count, sum, fields, is a summary), if the family's.
        let row_value = match v {
            Value::Histogram(h) if kind == Kind::Histogram => {
                Some((&h.bounds, h.count, h.sum, &h.buckets[..], false))
            }
            Value::Summary(q) if kind == Kind::Summary => {
                Some((&q.quantiles, q.count, q.sum, &q.values[..], true))
            }
            _ => None,
        };
        let delta = match (&mut series.data, v, row_value) {
            (Data::Int(c), Value::Raw(r), _) => Ok(append(c, now, &r, horizon)),
            (Data::Float(c), Value::Float(f), _) => Ok(append(c, now, &f, horizon)),
            (Data::Float(c), Value::Raw(r), _) => Ok(append(c, now, &(r as f64), horizon)),
            (
                Data::Rows {
                    layout,
                    row,
                    chunks,
                },
                _,
                Some((given, count, sum, fields, quantiles)),
            ) => fill(layout, row, given, count, sum, fields, quantiles)
                .map(|()| append(chunks, now, row, horizon)),
            _ => Err(DropReason::TypeConflict),
        };
        match delta {
            Ok(d) => {
                series.last_write = now;
                st.sample_bytes = st.sample_bytes.wrapping_add_signed(d);
                true
            }
            Err(reason) => {
                self.store.drop_for(self.src, fam, reason);
                false
            }
        }
    }
}

/// Checks a histogram or summary against the series' layout (fixing it on the first sample) and
/// builds its row.
fn fill(
    layout: &mut Option<Arc<[f64]>>,
    row: &mut Box<[f64]>,
    given: &Arc<[f64]>,
    count: f64,
    sum: f64,
    fields: &[f64],
    quantiles: bool,
) -> Result<(), DropReason> {
    match layout {
        Some(l) if Arc::ptr_eq(l, given) || **l == **given => {}
        Some(_) => return Err(DropReason::TypeConflict),
        None => {
            check_layout(given, fields.len(), quantiles).map_err(|_| DropReason::InvalidValue)?;
            *layout = Some(given.clone());
            *row = vec![0.0; fields.len() + 2].into();
        }
    }
    if fields.len() + 2 != row.len() {
        return Err(DropReason::InvalidValue);
    }
    fill_row(row, count, sum, fields);
    Ok(())
}

/// An entity's base labels as sampled sources give them: names mostly known at compile time, some
/// made at run time (cAdvisor's `container_label_<name>`).
pub type Labels = Vec<(Cow<'static, str>, String)>;

/// Remembers which series a writer's n-th `put` went to last pass, so the next pass, which puts the
/// same metrics in the same order, skips the hash lookup.
#[derive(Debug, Default)]
pub struct SeriesCursor {
    slots: Vec<CursorSlot>,
    pos: usize,
}

#[derive(Debug)]
struct CursorSlot {
    family: FamilyId,
    labels: Vec<(&'static str, String)>,
    series: SeriesRef,
}

/// Writes the samples of one entity (the host, a container) in a batch: every series gets the
/// entity's `base` labels first and its attribution.
pub struct Writer<'b, 's> {
    batch: &'b mut Batch<'s>,
    cursor: &'b mut SeriesCursor,
    base: &'b [(Cow<'static, str>, String)],
    attribution: Option<&'b str>,
}

impl<'b, 's> Writer<'b, 's> {
    pub fn new(
        batch: &'b mut Batch<'s>,
        cursor: &'b mut SeriesCursor,
        base: &'b [(Cow<'static, str>, String)],
        attribution: Option<&'b str>,
    ) -> Self {
        cursor.pos = 0;
        Writer {
            batch,
            cursor,
            base,
            attribution,
        }
    }

    /// The batch being written, e.g. to register a family met for the first time mid-pass.
    pub fn batch(&mut self) -> &mut Batch<'s> {
        self.batch
    }

    /// Appends a raw value to the series `fam{base..., labels...}`, creating it if new.
    pub fn put(&mut self, fam: FamilyId, labels: &[(&'static str, &str)], raw: i64) {
        let pos = self.cursor.pos;
        self.cursor.pos += 1;
        let cached = self.cursor.slots.get(pos).filter(|slot| {
            slot.family == fam
                && slot.labels.len() == labels.len()
                && slot
                    .labels
                    .iter()
                    .zip(labels)
                    .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
                && self.batch.is_live(slot.series)
        });
        if let Some(slot) = cached {
            self.batch.put(slot.series, Value::Raw(raw));
            return;
        }
        let full: Vec<(&str, &str)> = self
            .base
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_str()))
            .chain(labels.iter().copied())
            .collect();
        let Ok(series) = self.batch.series(fam, &full, self.attribution) else {
            return;
        };
        self.batch.put(series, Value::Raw(raw));
        let slot = CursorSlot {
            family: fam,
            labels: labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
            series,
        };
        if pos < self.cursor.slots.len() {
            self.cursor.slots[pos] = slot;
        } else {
            self.cursor.slots.push(slot);
        }
    }
}
