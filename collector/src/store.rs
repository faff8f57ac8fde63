//! The embedded store: a bounded recent window of every sampled series, in memory.
//!
//! Values are kept as raw integers in the unit the kernel reports (nanoseconds, bytes, ticks) and
//! scaled to base units (seconds, bytes) only when read, so they compress well (see `chunk`). A series
//! belongs to an entity (the host, or one container) and disappears with it. Writers resolve series
//! through a per-entity [`SeriesCursor`], so a steady-state pass appends without hashing.

mod chunk;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

use serde::Serialize;

use chunk::Chunk;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetricId(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesId(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntityId(u32);

/// Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
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

/// What a metric family is: its exposition name, help, type, and how raw values become base units.
#[derive(Debug, Clone)]
pub struct FamilyDesc {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub scale: Scale,
}

impl FamilyDesc {
    pub fn new(name: &str, help: &str, kind: Kind, scale: Scale) -> Self {
        FamilyDesc {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            scale,
        }
    }
}

/// Label pairs with names known at compile time.
pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
struct Family {
    desc: FamilyDesc,
    series: Vec<SeriesId>,
}

#[derive(Debug)]
struct Series {
    metric: MetricId,
    entity: EntityId,
    labels: Labels,
    /// `{a="b",...}` with the entity's labels first, escaped, ready for exposition.
    rendered: String,
    chunks: VecDeque<Chunk>,
}

#[derive(Debug)]
struct Entity {
    labels: Labels,
    series: Vec<SeriesId>,
    /// Time of the entity's latest pass: a series it no longer writes (a removed interface) is stale.
    last_write: Millis,
}

/// A read-only view of one series for queries.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesInfo {
    pub name: String,
    pub kind: Kind,
    pub labels: HashMap<&'static str, String>,
    #[serde(skip)]
    pub id: SeriesId,
    #[serde(skip)]
    pub entity: EntityId,
}

#[derive(Debug)]
pub struct Store {
    window_ms: Millis,
    families: Vec<Family>,
    family_index: HashMap<String, MetricId>,
    series: Vec<Option<Series>>,
    free: Vec<u32>,
    series_index: HashMap<(MetricId, EntityId, Labels), SeriesId>,
    entities: HashMap<EntityId, Entity>,
    next_entity: u32,
    /// Kept up to date on every append and removal: summing all chunks every pass would cost more than
    /// the appends themselves.
    sample_bytes: usize,
}

impl Store {
    /// A store that keeps `window_ms` of history per series.
    pub fn new(window_ms: Millis) -> Self {
        Self {
            window_ms,
            families: Vec::new(),
            family_index: HashMap::new(),
            series: Vec::new(),
            free: Vec::new(),
            series_index: HashMap::new(),
            entities: HashMap::new(),
            next_entity: 0,
            sample_bytes: 0,
        }
    }

    pub fn window_ms(&self) -> Millis {
        self.window_ms
    }

    /// Registers a family, or returns the existing one of that name.
    pub fn family(&mut self, desc: FamilyDesc) -> MetricId {
        if let Some(id) = self.family_index.get(&desc.name) {
            return *id;
        }
        let id = MetricId(self.families.len() as u32);
        self.family_index.insert(desc.name.clone(), id);
        self.families.push(Family {
            desc,
            series: Vec::new(),
        });
        id
    }

    pub fn family_desc(&self, id: MetricId) -> &FamilyDesc {
        &self.families[id.0 as usize].desc
    }

    pub fn family_by_name(&self, name: &str) -> Option<MetricId> {
        self.family_index.get(name).copied()
    }

    pub fn add_entity(&mut self, labels: Labels) -> EntityId {
        let id = EntityId(self.next_entity);
        self.next_entity += 1;
        self.entities.insert(
            id,
            Entity {
                labels,
                series: Vec::new(),
                last_write: Millis::MIN,
            },
        );
        id
    }

    /// Drops an entity and all its series.
    pub fn remove_entity(&mut self, id: EntityId) {
        let Some(entity) = self.entities.remove(&id) else {
            return;
        };
        for sid in entity.series {
            if let Some(s) = self.series[sid.0 as usize].take() {
                self.sample_bytes -= s.chunks.iter().map(Chunk::heap_bytes).sum::<usize>();
                self.families[s.metric.0 as usize]
                    .series
                    .retain(|x| *x != sid);
                self.series_index.remove(&(s.metric, s.entity, s.labels));
                self.free.push(sid.0);
            }
        }
    }

    /// Starts writing one pass of samples for `entity`, taken at `ts`.
    pub fn writer<'s>(
        &'s mut self,
        entity: EntityId,
        cursor: &'s mut SeriesCursor,
        ts: Millis,
    ) -> EntityWriter<'s> {
        cursor.pos = 0;
        if let Some(e) = self.entities.get_mut(&entity) {
            e.last_write = ts;
        }
        EntityWriter {
            store: self,
            entity,
            cursor,
            ts,
        }
    }

    fn resolve(
        &mut self,
        metric: MetricId,
        entity: EntityId,
        labels: &[(&'static str, &str)],
    ) -> Option<SeriesId> {
        let owned: Labels = labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect();
        let key = (metric, entity, owned);
        if let Some(id) = self.series_index.get(&key) {
            return Some(*id);
        }
        let ent = self.entities.get(&entity)?;
        let mut rendered = String::from("{");
        for (k, v) in ent.labels.iter().chain(key.2.iter()) {
            if rendered.len() > 1 {
                rendered.push(',');
            }
            let _ = write!(rendered, "{k}=\"");
            escape_label_value(&mut rendered, v);
            rendered.push('"');
        }
        rendered.push('}');
        if rendered == "{}" {
            rendered.clear();
        }
        let series = Series {
            metric,
            entity,
            labels: key.2.clone(),
            rendered,
            chunks: VecDeque::new(),
        };
        let id = match self.free.pop() {
            Some(slot) => {
                self.series[slot as usize] = Some(series);
                SeriesId(slot)
            }
            None => {
                self.series.push(Some(series));
                SeriesId(self.series.len() as u32 - 1)
            }
        };
        self.series_index.insert(key, id);
        self.families[metric.0 as usize].series.push(id);
        self.entities
            .get_mut(&entity)
            .expect("checked above")
            .series
            .push(id);
        Some(id)
    }

    fn append(&mut self, id: SeriesId, ts: Millis, raw: i64) {
        let horizon = ts - self.window_ms;
        let s = self.series[id.0 as usize].as_mut().expect("live series");
        match s.chunks.back_mut() {
            Some(c) if !c.is_full() => {
                let before = c.heap_bytes();
                c.push(ts, raw);
                self.sample_bytes = self.sample_bytes + c.heap_bytes() - before;
            }
            _ => {
                let c = Chunk::new(ts, raw);
                self.sample_bytes += c.heap_bytes();
                s.chunks.push_back(c);
            }
        }
        // Whole chunks older than the window go; the newest chunk always stays.
        while s.chunks.len() > 1 && s.chunks.front().is_some_and(|c| c.last_ts() < horizon) {
            if let Some(c) = s.chunks.pop_front() {
                self.sample_bytes -= c.heap_bytes();
            }
        }
    }

    fn live(&self, id: SeriesId) -> Option<&Series> {
        self.series.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// The latest sample of a series, in base units.
    pub fn latest(&self, id: SeriesId) -> Option<(Millis, f64)> {
        let s = self.live(id)?;
        let (ts, raw) = s.chunks.back()?.last();
        Some((ts, self.families[s.metric.0 as usize].desc.scale.apply(raw)))
    }

    /// All samples of a series at or after `since`, in base units, oldest first.
    pub fn points(&self, id: SeriesId, since: Millis) -> Vec<(Millis, f64)> {
        let Some(s) = self.live(id) else {
            return Vec::new();
        };
        let scale = self.families[s.metric.0 as usize].desc.scale;
        s.chunks
            .iter()
            .filter(|c| c.last_ts() >= since)
            .flat_map(|c| c.iter())
            .filter(|(ts, _)| *ts >= since)
            .map(|(ts, raw)| (ts, scale.apply(raw)))
            .collect()
    }

    /// The newest `n` samples of a series (n small: at most two chunks are decoded).
    pub fn tail(&self, id: SeriesId, n: usize) -> Vec<(Millis, f64)> {
        let Some(s) = self.live(id) else {
            return Vec::new();
        };
        let scale = self.families[s.metric.0 as usize].desc.scale;
        let from = s.chunks.len().saturating_sub(2);
        let pts: Vec<_> = s
            .chunks
            .range(from..)
            .flat_map(|c| c.iter())
            .map(|(ts, raw)| (ts, scale.apply(raw)))
            .collect();
        pts[pts.len().saturating_sub(n)..].to_vec()
    }

    /// Per-second rate of a counter between its two newest samples.
    pub fn last_rate(&self, id: SeriesId) -> Option<f64> {
        rates(&self.tail(id, 2)).next().map(|(_, r)| r)
    }

    /// Per-second rate of a counter over the samples at or after `since` (Prometheus `rate` without
    /// extrapolation: a decrease is a reset and counts from zero). None with fewer than two samples.
    pub fn rate(&self, id: SeriesId, since: Millis) -> Option<f64> {
        let pts = self.points(id, since);
        let (first, last) = (pts.first()?, pts.last()?);
        if last.0 <= first.0 {
            return None;
        }
        let increase: f64 = pts
            .windows(2)
            .map(|w| counter_increase(w[0].1, w[1].1))
            .sum();
        Some(increase / ((last.0 - first.0) as f64 / 1000.0))
    }

    /// Series of the family `name` matching `filter` on their entity.
    pub fn select(&self, name: &str, mut filter: impl FnMut(EntityId) -> bool) -> Vec<SeriesInfo> {
        let Some(mid) = self.family_by_name(name) else {
            return Vec::new();
        };
        let fam = &self.families[mid.0 as usize];
        fam.series
            .iter()
            .filter_map(|sid| self.live(*sid).map(|s| (*sid, s)))
            .filter(|(_, s)| filter(s.entity))
            .map(|(sid, s)| SeriesInfo {
                name: fam.desc.name.clone(),
                kind: fam.desc.kind,
                labels: self.entities[&s.entity]
                    .labels
                    .iter()
                    .chain(s.labels.iter())
                    .map(|(k, v)| (*k, v.clone()))
                    .collect(),
                id: sid,
                entity: s.entity,
            })
            .collect()
    }

    /// The series of one family for one entity with no series-level labels (e.g. a container's CPU).
    pub fn entity_series(&self, entity: EntityId, name: &str) -> Option<SeriesId> {
        let mid = self.family_by_name(name)?;
        self.series_index.get(&(mid, entity, Vec::new())).copied()
    }

    /// Writes the latest value of every series in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        for fam in &self.families {
            if fam.series.is_empty() {
                continue;
            }
            let d = &fam.desc;
            let _ = writeln!(out, "# HELP {} {}", d.name, d.help);
            let _ = writeln!(out, "# TYPE {} {}", d.name, d.kind.as_str());
            for sid in &fam.series {
                let Some(s) = self.live(*sid) else { continue };
                let Some(c) = s.chunks.back() else { continue };
                let (ts, raw) = c.last();
                if ts < self.entities[&s.entity].last_write {
                    continue;
                }
                out.push_str(&d.name);
                out.push_str(&s.rendered);
                out.push(' ');
                match d.scale {
                    Scale::One => writeln!(out, "{raw}"),
                    s => writeln!(out, "{}", s.apply(raw)),
                }
                .expect("writing to a String");
            }
        }
    }

    pub fn series_count(&self) -> usize {
        self.series_index.len()
    }

    /// Heap bytes held by sample data (for the collector's own memory metrics and benchmarks).
    pub fn sample_bytes(&self) -> usize {
        self.sample_bytes
    }

    /// Number of samples held across all series.
    pub fn sample_count(&self) -> usize {
        self.series
            .iter()
            .flatten()
            .flat_map(|s| s.chunks.iter())
            .map(Chunk::len)
            .sum()
    }
}

/// Per-second rates between consecutive counter samples, stamped with the later sample's time.
pub fn rates(points: &[(Millis, f64)]) -> impl Iterator<Item = (Millis, f64)> + '_ {
    points.windows(2).filter(|w| w[1].0 > w[0].0).map(|w| {
        (
            w[1].0,
            counter_increase(w[0].1, w[1].1) / ((w[1].0 - w[0].0) as f64 / 1000.0),
        )
    })
}

/// The increase between two consecutive counter samples; a decrease means the counter was reset.
pub fn counter_increase(prev: f64, next: f64) -> f64 {
    if next >= prev {
        next - prev
    } else {
        next
    }
}

fn escape_label_value(out: &mut String, v: &str) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Remembers which series a writer's n-th `put` went to last pass, so the next pass, which puts the
/// same metrics in the same order, skips the hash lookup.
#[derive(Debug, Default)]
pub struct SeriesCursor {
    slots: Vec<Slot>,
    pos: usize,
}

#[derive(Debug)]
struct Slot {
    metric: MetricId,
    labels: Labels,
    id: SeriesId,
}

pub struct EntityWriter<'s> {
    store: &'s mut Store,
    entity: EntityId,
    cursor: &'s mut SeriesCursor,
    ts: Millis,
}

impl EntityWriter<'_> {
    /// The store being written, e.g. to register a family met for the first time mid-pass.
    pub fn store(&mut self) -> &mut Store {
        self.store
    }

    /// Appends a raw value to the series `metric{labels}` of this entity, creating it if new.
    pub fn put(&mut self, metric: MetricId, labels: &[(&'static str, &str)], raw: i64) {
        let pos = self.cursor.pos;
        self.cursor.pos += 1;
        let cached = self.cursor.slots.get(pos).filter(|slot| {
            slot.metric == metric
                && slot.labels.len() == labels.len()
                && slot
                    .labels
                    .iter()
                    .zip(labels)
                    .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
        });
        let id = match cached {
            Some(slot)
                if self
                    .store
                    .live(slot.id)
                    .is_some_and(|s| s.entity == self.entity) =>
            {
                slot.id
            }
            _ => {
                let Some(id) = self.store.resolve(metric, self.entity, labels) else {
                    return;
                };
                let slot = Slot {
                    metric,
                    labels: labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
                    id,
                };
                if pos < self.cursor.slots.len() {
                    self.cursor.slots[pos] = slot;
                } else {
                    self.cursor.slots.push(slot);
                }
                id
            }
        };
        self.store.append(id, self.ts, raw);
    }
}
