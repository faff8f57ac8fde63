//! The in-memory window: a bounded recent history of every series any source writes.
//!
//! A family is a metric name with a kind and a codec; a series is a family and a label set (names
//! and values interned, known only at run time), owned by the source that created it, optionally
//! attributed to a container. Kernel sources keep raw integers in the kernel's unit, scaled to base
//! units when read (`Codec::Int`); everything else keeps floats (`Codec::Float`); histograms and
//! summaries keep one row of floats per sample. See `chunk` for the encodings.
//!
//! Staleness is per series: a series is fresh while its source's latest batch is at most the
//! source's `stale_after` past the series' last write, so one source going quiet never hides
//! another's series. A series whose newest sample has left the window is deleted by a periodic
//! sweep, which frees its memory and its place under the cardinality limits.
//!
//! Writers go through [`Ingest`] (see `ingest`); readers through `crate::query`.

mod chunk;
mod histogram;
mod ingest;
mod labels;
#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;

pub use chunk::CHUNK_SAMPLES;
use chunk::{Chunk, FloatCodec, IntCodec, MultiCodec, ValueCodec};
pub use histogram::{Histogram, Summary};
pub use ingest::{
    Batch, DropReason, Dropped, Ingest, IngestError, Labels, Limits, SeriesCursor, SourceDesc,
    Value, Writer,
};
pub use labels::{check_label_name, is_metric_name, LabelError, LabelSet};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// How often deleted series and unused label strings are swept out.
const SWEEP_EVERY_MS: Millis = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FamilyId(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceId(u32);

/// A series as a writer or reader holds it; the generation tells a deleted series (whose slot may
/// have been reused) from a live one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesRef {
    idx: u32,
    gen: u32,
}

/// Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// How a raw kernel integer becomes a value in base units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    One,
    /// Divide, e.g. nanoseconds to seconds: dividing keeps decimal fractions exact where multiplying
    /// by 1e-9 would not.
    Div(f64),
    Mul(f64),
}

impl Scale {
    pub fn apply(self, raw: i64) -> f64 {
        match self {
            Scale::One => raw as f64,
            Scale::Div(d) => raw as f64 / d,
            Scale::Mul(m) => raw as f64 * m,
        }
    }
}

/// How a family's samples are kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Codec {
    /// Raw kernel integers (`Value::Raw`), scaled when read.
    Int { scale: Scale },
    /// Floats (`Value::Float`, or rows for histograms and summaries).
    Float,
}

/// What a metric family is: its exposition name, help, type, unit and codec.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyDesc {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    /// The base unit (e.g. "seconds", "bytes"), when known; Prometheus names carry it as a suffix.
    pub unit: Option<String>,
    pub codec: Codec,
}

impl FamilyDesc {
    /// A family of raw kernel integers.
    pub fn int(name: &str, help: &str, kind: Kind, scale: Scale) -> Self {
        FamilyDesc {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            unit: None,
            codec: Codec::Int { scale },
        }
    }

    /// A family of floats (counters, gauges, histograms, summaries).
    pub fn float(name: &str, help: &str, kind: Kind) -> Self {
        FamilyDesc {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            unit: None,
            codec: Codec::Float,
        }
    }

    fn describe(&self) -> String {
        let codec = match self.codec {
            Codec::Int { .. } => "int",
            Codec::Float => "float",
        };
        format!("{} ({codec})", self.kind.as_str())
    }
}

#[derive(Debug)]
struct Family {
    desc: FamilyDesc,
    /// In creation order; refs of deleted series stay until the list is compacted.
    series: Vec<SeriesRef>,
    live: usize,
}

#[derive(Debug)]
enum Data {
    Int(VecDeque<Chunk<IntCodec>>),
    Float(VecDeque<Chunk<FloatCodec>>),
    /// Histograms (layout = bounds) and summaries (layout = quantiles); `row` is scratch space for
    /// building a sample without allocating. The layout is fixed by the first sample.
    Rows {
        layout: Option<Arc<[f64]>>,
        row: Box<[f64]>,
        chunks: VecDeque<Chunk<MultiCodec>>,
    },
}

#[derive(Debug)]
struct Series {
    family: FamilyId,
    source: SourceId,
    labels: LabelSet,
    attribution: Option<Arc<str>>,
    /// `{a="b",...}` in the writer's order, escaped, ready for exposition.
    rendered: Box<str>,
    hash: u64,
    last_write: Millis,
    data: Data,
}

#[derive(Debug, Default)]
struct Slot {
    gen: u32,
    series: Option<Series>,
}

#[derive(Debug)]
struct SourceState {
    desc: SourceDesc,
    stale_after_ms: Millis,
    last_batch: Millis,
    series: usize,
    dropped: HashMap<DropReason, (u64, metrics::Counter)>,
}

/// The latest sample of a series, as the exposition needs it.
#[derive(Debug, Clone, Copy)]
pub enum LatestSample<'a> {
    Int(i64, Scale),
    Float(f64),
    /// `[count, sum, fields...]` with the layout (bounds or quantiles).
    Row(&'a [f64], &'a [f64]),
}

#[derive(Debug)]
pub struct Store {
    window_ms: Millis,
    hasher: RandomState,
    interner: labels::Interner,
    families: Vec<Family>,
    family_index: HashMap<String, FamilyId>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: hashbrown::HashTable<u32>,
    sources: Vec<SourceState>,
    by_container: HashMap<Arc<str>, Vec<SeriesRef>>,
    live_series: usize,
    /// Kept up to date on every append and removal: summing all chunks every pass would cost more than
    /// the appends themselves.
    sample_bytes: usize,
    last_sweep: Millis,
    /// (family, reason) pairs already logged, so a flood logs one line per name.
    logged: std::collections::HashSet<(FamilyId, DropReason)>,
}

impl Store {
    /// A store that keeps `window_ms` of history per series.
    pub fn new(window_ms: Millis) -> Self {
        Self {
            window_ms,
            hasher: RandomState::new(),
            interner: labels::Interner::default(),
            families: Vec::new(),
            family_index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            index: hashbrown::HashTable::new(),
            sources: Vec::new(),
            by_container: HashMap::new(),
            live_series: 0,
            sample_bytes: 0,
            last_sweep: Millis::MIN,
            logged: Default::default(),
        }
    }

    pub fn window_ms(&self) -> Millis {
        self.window_ms
    }

    /// Registers a source; its name labels its drops and must be unique.
    pub fn register_source(&mut self, desc: SourceDesc) -> Result<SourceId, IngestError> {
        if self.sources.iter().any(|s| s.desc.name == desc.name) {
            return Err(IngestError::DuplicateSource(desc.name.to_string()));
        }
        let id = SourceId(self.sources.len() as u32);
        self.sources.push(SourceState {
            stale_after_ms: desc.stale_after.as_millis() as Millis,
            desc,
            last_batch: Millis::MIN,
            series: 0,
            dropped: HashMap::new(),
        });
        Ok(id)
    }

    pub fn source_by_name(&self, name: &str) -> Option<SourceId> {
        self.sources
            .iter()
            .position(|s| s.desc.name == name)
            .map(|i| SourceId(i as u32))
    }

    /// Time of a source's latest batch.
    pub fn source_clock(&self, src: SourceId) -> Option<Millis> {
        let t = self.sources[src.0 as usize].last_batch;
        (t != Millis::MIN).then_some(t)
    }

    /// Series dropped for `src` with `reason` since start.
    pub fn dropped(&self, src: SourceId, reason: DropReason) -> u64 {
        self.sources[src.0 as usize]
            .dropped
            .get(&reason)
            .map_or(0, |d| d.0)
    }

    /// Registers a family, or returns the existing one of that name if it has the same kind and
    /// codec. Names a histogram or summary family would also expose (`_bucket`, `_sum`, `_count`)
    /// clash with families of those names.
    pub fn family(&mut self, desc: FamilyDesc) -> Result<FamilyId, IngestError> {
        if let Some(id) = self.family_index.get(&desc.name) {
            let have = &self.families[id.0 as usize].desc;
            if have.kind == desc.kind && have.codec == desc.codec {
                return Ok(*id);
            }
            return Err(IngestError::TypeConflict {
                existing: have.describe(),
                wanted: desc.describe(),
                name: desc.name,
            });
        }
        if !is_metric_name(&desc.name) {
            return Err(IngestError::InvalidName(desc.name));
        }
        let rows = matches!(desc.kind, Kind::Histogram | Kind::Summary);
        if rows && matches!(desc.codec, Codec::Int { .. }) {
            return Err(IngestError::InvalidFamily {
                name: desc.name,
                why: "histograms and summaries are floats",
            });
        }
        if let Some(other) = self.exposition_clash(&desc) {
            return Err(IngestError::NameClash {
                name: desc.name,
                other,
            });
        }
        let id = FamilyId(self.families.len() as u32);
        self.family_index.insert(desc.name.clone(), id);
        self.families.push(Family {
            desc,
            series: Vec::new(),
            live: 0,
        });
        Ok(id)
    }

    /// The family whose exposed names overlap those of `desc`, if any.
    fn exposition_clash(&self, desc: &FamilyDesc) -> Option<String> {
        const SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];
        let rows = |k: Kind| matches!(k, Kind::Histogram | Kind::Summary);
        if rows(desc.kind) {
            for s in SUFFIXES {
                if self.family_index.contains_key(&format!("{}{s}", desc.name)) {
                    return Some(format!("{}{s}", desc.name));
                }
            }
        }
        SUFFIXES.iter().find_map(|s| {
            let base = desc.name.strip_suffix(s)?;
            let id = self.family_index.get(base)?;
            rows(self.families[id.0 as usize].desc.kind).then(|| base.to_string())
        })
    }

    pub fn family_desc(&self, id: FamilyId) -> &FamilyDesc {
        &self.families[id.0 as usize].desc
    }

    pub fn family_by_name(&self, name: &str) -> Option<FamilyId> {
        self.family_index.get(name).copied()
    }

    /// Every family, in registration order.
    pub fn families(&self) -> impl Iterator<Item = FamilyId> {
        (0..self.families.len() as u32).map(FamilyId)
    }

    /// Live series of a family, oldest first.
    pub fn family_series(&self, id: FamilyId) -> impl Iterator<Item = SeriesRef> + '_ {
        self.families[id.0 as usize]
            .series
            .iter()
            .copied()
            .filter(|s| self.get(*s).is_some())
    }

    /// Live series attributed to a container (full id).
    pub fn container_series(&self, container: &str) -> impl Iterator<Item = SeriesRef> + '_ {
        self.by_container
            .get(container)
            .into_iter()
            .flatten()
            .copied()
            .filter(|s| self.get(*s).is_some())
    }

    fn get(&self, s: SeriesRef) -> Option<&Series> {
        self.slots
            .get(s.idx as usize)
            .filter(|slot| slot.gen == s.gen)
            .and_then(|slot| slot.series.as_ref())
    }

    pub fn is_live(&self, s: SeriesRef) -> bool {
        self.get(s).is_some()
    }

    pub fn family_of(&self, s: SeriesRef) -> Option<FamilyId> {
        self.get(s).map(|x| x.family)
    }

    pub fn source_of(&self, s: SeriesRef) -> Option<SourceId> {
        self.get(s).map(|x| x.source)
    }

    pub fn labels(&self, s: SeriesRef) -> Option<&LabelSet> {
        self.get(s).map(|x| &x.labels)
    }

    pub fn attribution(&self, s: SeriesRef) -> Option<&str> {
        self.get(s).and_then(|x| x.attribution.as_deref())
    }

    /// The labels as the exposition writes them, `{a="b",...}` or empty.
    pub fn rendered_labels(&self, s: SeriesRef) -> Option<&str> {
        self.get(s).map(|x| &*x.rendered)
    }

    /// Bounds (histogram) or quantiles (summary) of a row series, once it has a sample.
    pub fn layout(&self, s: SeriesRef) -> Option<&Arc<[f64]>> {
        match &self.get(s)?.data {
            Data::Rows { layout, .. } => layout.as_ref(),
            _ => None,
        }
    }

    /// Written recently enough for its source (see the module documentation).
    pub fn is_fresh(&self, s: SeriesRef) -> bool {
        self.get(s).is_some_and(|x| self.fresh(x))
    }

    fn fresh(&self, s: &Series) -> bool {
        let src = &self.sources[s.source.0 as usize];
        src.last_batch.saturating_sub(s.last_write) <= src.stale_after_ms
    }

    /// The newest sample of a series, fresh or not.
    pub fn latest_sample(&self, s: SeriesRef) -> Option<(Millis, LatestSample<'_>)> {
        let x = self.get(s)?;
        Some(match &x.data {
            Data::Int(c) => {
                let (t, v) = c.back()?.last();
                let Codec::Int { scale } = self.families[x.family.0 as usize].desc.codec else {
                    unreachable!("int data belongs to int families")
                };
                (t, LatestSample::Int(*v, scale))
            }
            Data::Float(c) => {
                let (t, v) = c.back()?.last();
                (t, LatestSample::Float(*v))
            }
            Data::Rows { layout, chunks, .. } => {
                let (t, row) = chunks.back()?.last();
                (t, LatestSample::Row(row, layout.as_deref()?))
            }
        })
    }

    /// Calls `f` with every scalar sample (in base units) at or after `since`, oldest first. Row
    /// series give their count.
    pub fn for_each_point(&self, s: SeriesRef, since: Millis, mut f: impl FnMut(Millis, f64)) {
        let Some(x) = self.get(s) else { return };
        match &x.data {
            Data::Int(chunks) => {
                let Codec::Int { scale } = self.families[x.family.0 as usize].desc.codec else {
                    return;
                };
                walk(chunks, since, |t, v| f(t, scale.apply(*v)));
            }
            Data::Float(chunks) => walk(chunks, since, |t, v| f(t, *v)),
            Data::Rows { chunks, .. } => walk(chunks, since, |t, row| f(t, row[0])),
        }
    }

    /// The newest `n` scalar samples of a series (n small: at most two chunks are decoded).
    pub fn tail_points(&self, s: SeriesRef, n: usize) -> Vec<(Millis, f64)> {
        let Some(x) = self.get(s) else {
            return Vec::new();
        };
        let since = match &x.data {
            Data::Int(c) => c
                .range(c.len().saturating_sub(2)..)
                .next()
                .map(Chunk::first_ts),
            Data::Float(c) => c
                .range(c.len().saturating_sub(2)..)
                .next()
                .map(Chunk::first_ts),
            Data::Rows { chunks, .. } => chunks
                .range(chunks.len().saturating_sub(2)..)
                .next()
                .map(Chunk::first_ts),
        };
        let mut pts = Vec::new();
        if let Some(since) = since {
            self.for_each_point(s, since, |t, v| pts.push((t, v)));
        }
        pts.split_off(pts.len().saturating_sub(n))
    }

    /// Calls `f` with every row (`[count, sum, fields...]`) at or after `since`, oldest first.
    pub fn for_each_row(&self, s: SeriesRef, since: Millis, f: impl FnMut(Millis, &[f64])) {
        if let Some(Series {
            data: Data::Rows { chunks, .. },
            ..
        }) = self.get(s)
        {
            let mut f = f;
            walk(chunks, since, |t, row| f(t, row));
        }
    }

    pub fn series_count(&self) -> usize {
        self.live_series
    }

    /// Heap bytes held by sample data (for the collector's own memory metrics and benchmarks).
    pub fn sample_bytes(&self) -> usize {
        self.sample_bytes
    }

    /// Number of samples held across all series.
    pub fn sample_count(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.series.as_ref())
            .map(|s| match &s.data {
                Data::Int(c) => c.iter().map(Chunk::len).sum::<usize>(),
                Data::Float(c) => c.iter().map(Chunk::len).sum(),
                Data::Rows { chunks, .. } => chunks.iter().map(Chunk::len).sum(),
            })
            .sum()
    }

    /// Strings interned for label sets (for tests of the sweep).
    pub fn interned_strings(&self) -> usize {
        self.interner.len()
    }

    /// Deletes the series attributed to `container` (of one source, or of all); returns how many.
    pub fn remove_attributed(&mut self, container: &str, source: Option<SourceId>) -> usize {
        let Some(list) = self.by_container.get(container) else {
            return 0;
        };
        let doomed: Vec<SeriesRef> = list
            .iter()
            .copied()
            .filter(|s| {
                self.get(*s)
                    .is_some_and(|x| source.is_none_or(|src| x.source == src))
            })
            .collect();
        for s in &doomed {
            self.delete(*s);
        }
        self.compact();
        doomed.len()
    }

    fn delete(&mut self, s: SeriesRef) {
        let Some(slot) = self
            .slots
            .get_mut(s.idx as usize)
            .filter(|x| x.gen == s.gen)
        else {
            return;
        };
        let Some(series) = slot.series.take() else {
            return;
        };
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(s.idx);
        self.sample_bytes -= data_bytes(&series.data);
        self.live_series -= 1;
        self.families[series.family.0 as usize].live -= 1;
        self.sources[series.source.0 as usize].series -= 1;
        if let Ok(entry) = self.index.find_entry(series.hash, |i| *i == s.idx) {
            entry.remove();
        }
    }

    /// Drops refs of deleted series from the per-family and per-container lists once they make up
    /// half of a list.
    fn compact(&mut self) {
        let slots = &self.slots;
        let alive = |s: &SeriesRef| {
            slots
                .get(s.idx as usize)
                .is_some_and(|x| x.gen == s.gen && x.series.is_some())
        };
        for f in &mut self.families {
            if f.series.len() > 2 * f.live + 8 {
                f.series.retain(alive);
            }
        }
        self.by_container.retain(|_, list| {
            list.retain(alive);
            !list.is_empty()
        });
    }

    /// Deletes series whose newest sample has left the window (by their source's clock), then the
    /// label strings no series holds any more. Runs at most every `SWEEP_EVERY_MS` of `now`.
    fn maybe_sweep(&mut self, now: Millis) {
        if now.saturating_sub(self.last_sweep) < SWEEP_EVERY_MS && now >= self.last_sweep {
            return;
        }
        self.last_sweep = now;
        let doomed: Vec<SeriesRef> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| {
                let s = slot.series.as_ref()?;
                let clock = self.sources[s.source.0 as usize].last_batch;
                (clock.saturating_sub(s.last_write) > self.window_ms).then_some(SeriesRef {
                    idx: i as u32,
                    gen: slot.gen,
                })
            })
            .collect();
        for s in &doomed {
            self.delete(*s);
        }
        self.compact();
        self.interner.sweep();
    }
}

/// Walks the samples at or after `since` of a run of chunks.
fn walk<C: ValueCodec>(
    chunks: &VecDeque<Chunk<C>>,
    since: Millis,
    mut f: impl FnMut(Millis, &C::V),
) {
    for c in chunks.iter().filter(|c| c.last_ts() >= since) {
        let mut cur = c.cursor();
        while cur.advance() {
            if cur.ts() >= since {
                f(cur.ts(), cur.value());
            }
        }
    }
}

fn data_bytes(d: &Data) -> usize {
    match d {
        Data::Int(c) => c.iter().map(Chunk::heap_bytes).sum(),
        Data::Float(c) => c.iter().map(Chunk::heap_bytes).sum(),
        Data::Rows { chunks, .. } => chunks.iter().map(Chunk::heap_bytes).sum(),
    }
}

/// Appends a sample and trims whole chunks older than the window (the newest chunk always stays);
/// returns the change in held bytes.
fn append<C: ValueCodec>(
    chunks: &mut VecDeque<Chunk<C>>,
    ts: Millis,
    v: &C::V,
    horizon: Millis,
) -> isize {
    let mut delta = 0isize;
    match chunks.back_mut() {
        Some(c) if !c.is_full() => {
            let before = c.heap_bytes();
            c.push(ts, v);
            delta += c.heap_bytes() as isize - before as isize;
        }
        _ => {
            let c = Chunk::new(ts, v.clone());
            delta += c.heap_bytes() as isize;
            chunks.push_back(c);
        }
    }
    while chunks.len() > 1 && chunks.front().is_some_and(|c| c.last_ts() < horizon) {
        if let Some(c) = chunks.pop_front() {
            delta -= c.heap_bytes() as isize;
        }
    }
    delta
}
