//! Aggregation state of the StatsD receiver: per series a cumulative counter, the last gauge value, a
//! cumulative histogram or the distinct members of a set, flushed every interval.
//!
//! This is decision code: it receives packets, the container lookup and `now`, and never reads a clock
//! or a socket. The hot path (a line of a series already seen) hashes the line's identity (sender,
//! type, name, tags, container field) into a cache of resolved series and updates the state in place,
//! without allocating. Only a new identity pays for mapping, escaping, label sorting and the limits.
//!
//! Bounds: a new series is admitted only under `max_series` and `max_series_per_family`; the caches
//! are cleared when they outgrow their bound, so memory stays proportional to the series limit
//! whatever is sent. Series not written for their TTL are forgotten; a cumulative series that starts
//! (or starts over after expiry) first writes a zero point, so the query layer sees the reset and
//! counts every increment of the new life.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use super::mapping::{Mapped, Mapper};
use super::names;
use super::parse::{self, Kind, Line, Metric, ParseError, Value};
use crate::store::Millis;

/// A container id as the directory knows it (the full 64-hex id).
pub type ContainerId = Arc<str>;

/// What the receiver needs from discovery's container directory.
pub trait Containers {
    /// The container that owns this IP address on a Docker network, if any.
    fn by_ip(&self, ip: std::net::IpAddr) -> Option<ContainerId>;
    /// A full or unique short container id into the full id of a running container.
    fn by_id(&self, id: &str) -> Option<ContainerId>;
}

/// No directory (tests, or no Docker): nothing is attributed to a container.
pub struct NoContainers;

impl Containers for NoContainers {
    fn by_ip(&self, _: std::net::IpAddr) -> Option<ContainerId> {
        None
    }
    fn by_id(&self, _: &str) -> Option<ContainerId> {
        None
    }
}

/// Settings of the aggregation (validated by the receiver's config).
#[derive(Debug, Clone)]
pub struct AggregateConfig {
    /// A series not written for this long is forgotten; zero: never.
    pub ttl: Duration,
    /// Upper bounds of timer / histogram / distribution buckets (seconds for timers).
    pub buckets: Arc<[f64]>,
    pub max_series: usize,
    pub max_series_per_family: usize,
    /// Distinct set members counted per interval, over all sets; more are counted as dropped.
    pub max_set_members: usize,
}

/// The Prometheus type a family is exposed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyKind {
    Counter,
    Gauge,
    Histogram,
}

impl FamilyKind {
    fn of(kind: Kind) -> FamilyKind {
        match kind {
            Kind::Counter => FamilyKind::Counter,
            Kind::Gauge | Kind::Set => FamilyKind::Gauge,
            Kind::Timer | Kind::Histogram | Kind::Distribution => FamilyKind::Histogram,
        }
    }
}

/// Why a line was rejected as malformed (`plimsoll_ingest_errors_total{source="statsd",reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorReason {
    Parse(ParseError),
    /// The name or a tag is not UTF-8.
    NotUtf8,
    /// An empty tag, a tag with an empty value or a reserved name: the tag is skipped, the line kept.
    BadTag,
}

impl ErrorReason {
    pub const COUNT: usize = ParseError::ALL.len() + 2;

    pub fn index(self) -> usize {
        match self {
            ErrorReason::Parse(p) => ParseError::ALL.iter().position(|x| *x == p).unwrap_or(0),
            ErrorReason::NotUtf8 => ParseError::ALL.len(),
            ErrorReason::BadTag => ParseError::ALL.len() + 1,
        }
    }

    pub fn from_index(i: usize) -> ErrorReason {
        match ParseError::ALL.get(i) {
            Some(p) => ErrorReason::Parse(*p),
            None if i == ParseError::ALL.len() => ErrorReason::NotUtf8,
            None => ErrorReason::BadTag,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::Parse(p) => p.reason(),
            ErrorReason::NotUtf8 => "not_utf8",
            ErrorReason::BadTag => "bad_tag",
        }
    }
}

/// Why a well-formed line was not aggregated (`plimsoll_ingest_dropped_total{source="statsd",reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The family already has `max_series_per_family` series.
    FamilyLimit,
    /// The receiver already has `max_series` series.
    SourceLimit,
    /// The name is already used by a metric of another StatsD type.
    TypeConflict,
    /// A mapping with `action: drop` matched.
    Mapping,
    /// A set already counts `max_set_members` members this interval.
    SetMemberLimit,
}

impl DropReason {
    pub const ALL: [DropReason; 5] = [
        DropReason::FamilyLimit,
        DropReason::SourceLimit,
        DropReason::TypeConflict,
        DropReason::Mapping,
        DropReason::SetMemberLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::FamilyLimit => "family_limit",
            DropReason::SourceLimit => "source_limit",
            DropReason::TypeConflict => "type_conflict",
            DropReason::Mapping => "mapping_drop",
            DropReason::SetMemberLimit => "set_member_limit",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What happened since the last [`Aggregator::take_counts`], for the receiver's telemetry.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counts {
    pub lines: u64,
    pub events: u64,
    pub service_checks: u64,
    pub errors: [u64; ErrorReason::COUNT],
    pub dropped: [u64; DropReason::ALL.len()],
    pub created: u64,
    pub expired: u64,
}

impl Counts {
    pub fn error(&self, r: ErrorReason) -> u64 {
        self.errors[r.index()]
    }
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.dropped[r.index()]
    }
    fn add_error(&mut self, r: ErrorReason) {
        self.errors[r.index()] += 1;
    }
}

/// The handle of a live series, stable until it expires (the slot is reused with another generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesId {
    pub slot: u32,
    pub gen: u32,
}

pub type Labels = Arc<[(Arc<str>, Arc<str>)]>;

/// A live series as a flush shows it.
#[derive(Debug)]
pub struct SeriesView<'a> {
    pub family: &'a str,
    pub kind: FamilyKind,
    pub help: &'a str,
    /// Sorted by name.
    pub labels: &'a [(Arc<str>, Arc<str>)],
    pub attribution: Option<&'a ContainerId>,
}

/// The value a flush writes for a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlushValue<'a> {
    Counter(f64),
    Gauge(f64),
    /// Cumulative since the series started; `buckets[i]` counts values in (bounds[i-1], bounds[i]],
    /// the last one those above every bound (+Inf).
    Histogram {
        bounds: &'a [f64],
        buckets: &'a [f64],
        count: f64,
        sum: f64,
    },
}

/// Where a flush writes (the store's ingest handle, or a test's recorder).
pub trait Sink {
    fn write(&mut self, id: SeriesId, series: &SeriesView<'_>, value: FlushValue<'_>);
}

#[derive(Debug)]
struct Family {
    name: Arc<str>,
    kind: Kind,
    help: Arc<str>,
    series: usize,
    /// The limit was logged once for this family.
    warned: bool,
}

#[derive(Debug)]
struct Hist {
    bounds: Arc<[f64]>,
    buckets: Box<[f64]>,
    count: f64,
    sum: f64,
}

impl Hist {
    fn new(bounds: Arc<[f64]>) -> Hist {
        Hist {
            buckets: vec![0.0; bounds.len() + 1].into(),
            bounds,
            count: 0.0,
            sum: 0.0,
        }
    }

    fn observe(&mut self, x: f64, weight: f64) {
        // Few bounds: a linear scan beats a binary search here.
        let i = self
            .bounds
            .iter()
            .position(|b| x <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i] += weight;
        self.count += weight;
        self.sum += x * weight;
    }
}

#[derive(Debug)]
enum State {
    Counter(f64),
    Gauge(f64),
    Histogram(Box<Hist>),
    /// Hashes of the members seen this interval.
    Set(HashSet<u64>),
}

#[derive(Debug)]
struct Series {
    family: u32,
    labels: Labels,
    attribution: Option<ContainerId>,
    state: State,
    /// Applied to every value (timers: milliseconds to seconds, times the mapping's `scale`).
    scale: f64,
    ttl_ms: Millis,
    last_seen: Millis,
    /// Not flushed yet: a cumulative series writes its zero point first.
    fresh: bool,
}

#[derive(Debug, Hash, PartialEq, Eq)]
struct SeriesKey {
    family: u32,
    labels: Labels,
    attribution: Option<ContainerId>,
}

#[derive(Debug, Clone, Copy)]
enum Resolved {
    Series(SeriesId),
    Error(ErrorReason),
    Dropped(DropReason),
}

/// The StatsD aggregation state. See the module documentation.
pub struct Aggregator {
    cfg: AggregateConfig,
    mapper: Arc<Mapper>,
    families: Vec<Option<Family>>,
    free_families: Vec<u32>,
    family_by_name: HashMap<Arc<str>, u32>,
    slots: Vec<(u32, Option<Series>)>,
    free_slots: Vec<u32>,
    by_key: HashMap<SeriesKey, SeriesId>,
    /// Line identity -> what it resolved to. Holds negative answers too, so a flood of rejected
    /// lines costs a lookup each; cleared when a series expires (limits may admit again) or when full.
    cache: HashMap<Box<[u8]>, Resolved>,
    cache_cap: usize,
    strings: HashSet<Arc<str>>,
    members: foldhash::fast::RandomState,
    scratch: Vec<u8>,
    caps: Vec<(usize, usize)>,
    live: usize,
    /// Set members counted this interval, over all sets (bounded by `max_set_members`).
    set_members: usize,
    counts: Counts,
}

impl Aggregator {
    pub fn new(cfg: AggregateConfig, mapper: Arc<Mapper>) -> Aggregator {
        // Several raw spellings (tag order) may name one series; beyond that the cache is rebuilt.
        let cache_cap = cfg.max_series.saturating_mul(2).max(1024);
        Aggregator {
            cfg,
            mapper,
            families: Vec::new(),
            free_families: Vec::new(),
            family_by_name: HashMap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_key: HashMap::new(),
            cache: HashMap::new(),
            cache_cap,
            strings: HashSet::new(),
            members: foldhash::fast::RandomState::default(),
            scratch: Vec::with_capacity(256),
            caps: Vec::new(),
            live: 0,
            set_members: 0,
            counts: Counts::default(),
        }
    }

    /// Live series.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Entries of the line-identity cache (bounded by twice the series limit).
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// The counts since the previous call.
    pub fn take_counts(&mut self) -> Counts {
        std::mem::take(&mut self.counts)
    }

    /// Aggregates every line of one datagram. `peer` is the container the datagram came from, when
    /// the sender's address belongs to one.
    pub fn observe_packet(
        &mut self,
        packet: &[u8],
        peer: Option<&ContainerId>,
        containers: &dyn Containers,
        now: Millis,
    ) {
        for line in parse::lines(packet) {
            self.counts.lines += 1;
            match parse::parse_line(line) {
                Ok(Line::Metric(m)) => self.observe(&m, peer, containers, now),
                Ok(Line::Event) => self.counts.events += 1,
                Ok(Line::ServiceCheck) => self.counts.service_checks += 1,
                Err(e) => self.counts.add_error(ErrorReason::Parse(e)),
            }
        }
    }

    /// Aggregates one parsed metric line.
    pub fn observe(
        &mut self,
        m: &Metric<'_>,
        peer: Option<&ContainerId>,
        containers: &dyn Containers,
        now: Millis,
    ) {
        // The identity of the line: everything but its values, rate and timestamp. The name is the
        // only part that may contain `|`, and it comes before the two `|` separators, so the
        // concatenation is unambiguous.
        let key = &mut self.scratch;
        key.clear();
        let peer_id = peer.map_or("", |p| p);
        key.extend_from_slice(&(peer_id.len() as u16).to_le_bytes());
        key.extend_from_slice(peer_id.as_bytes());
        key.push(m.kind as u8);
        key.extend_from_slice(m.name);
        key.push(b'|');
        key.extend_from_slice(m.tags);
        key.push(b'|');
        key.extend_from_slice(m.container);
        let resolved = match self.cache.get(self.scratch.as_slice()) {
            Some(Resolved::Series(id)) if self.is_live(*id) => Resolved::Series(*id),
            Some(r @ (Resolved::Error(_) | Resolved::Dropped(_))) => *r,
            _ => {
                let r = self.resolve(m, peer, containers, now);
                if self.cache.len() >= self.cache_cap {
                    self.cache.clear();
                }
                self.cache.insert(self.scratch.as_slice().into(), r);
                r
            }
        };
        match resolved {
            Resolved::Series(id) => self.update(id, m, now),
            Resolved::Error(e) => self.counts.add_error(e),
            Resolved::Dropped(d) => self.counts.dropped[d.index()] += 1,
        }
    }

    fn is_live(&self, id: SeriesId) -> bool {
        matches!(self.slots.get(id.slot as usize), Some((gen, Some(_))) if *gen == id.gen)
    }

    fn update(&mut self, id: SeriesId, m: &Metric<'_>, now: Millis) {
        let Some((_, Some(s))) = self.slots.get_mut(id.slot as usize) else {
            return;
        };
        s.last_seen = now;
        let weight = 1.0 / m.sample_rate;
        match &mut s.state {
            // A value that would make the state infinite (1e308 at a rate of 0.001) is refused, so
            // what is flushed stays finite.
            State::Counter(c) => {
                for v in m.values() {
                    if let Value::Number(x) = v {
                        let next = *c + x * s.scale * weight;
                        if next.is_finite() {
                            *c = next;
                        } else {
                            self.counts
                                .add_error(ErrorReason::Parse(ParseError::BadValue));
                        }
                    }
                }
            }
            State::Gauge(g) => {
                for v in m.values() {
                    let next = match v {
                        Value::Number(x) => x * s.scale,
                        Value::Delta(d) => *g + d * s.scale,
                        Value::Member(_) => *g,
                    };
                    if next.is_finite() {
                        *g = next;
                    } else {
                        self.counts
                            .add_error(ErrorReason::Parse(ParseError::BadValue));
                    }
                }
            }
            State::Histogram(h) => {
                for v in m.values() {
                    if let Value::Number(x) = v {
                        let x = x * s.scale;
                        if x.is_finite() && (h.sum + x * weight).is_finite() {
                            h.observe(x, weight);
                        } else {
                            self.counts
                                .add_error(ErrorReason::Parse(ParseError::BadValue));
                        }
                    }
                }
            }
            State::Set(members) => {
                if let Value::Member(member) = m.value {
                    let h = self.members.hash_one(member);
                    if self.set_members < self.cfg.max_set_members {
                        if members.insert(h) {
                            self.set_members += 1;
                        }
                    } else if !members.contains(&h) {
                        self.counts.dropped[DropReason::SetMemberLimit.index()] += 1;
                    }
                }
            }
        }
    }

    /// The slow path: a line identity not seen before.
    fn resolve(
        &mut self,
        m: &Metric<'_>,
        peer: Option<&ContainerId>,
        containers: &dyn Containers,
        now: Millis,
    ) -> Resolved {
        let (Ok(raw_name), Ok(tags)) = (std::str::from_utf8(m.name), std::str::from_utf8(m.tags))
        else {
            return Resolved::Error(ErrorReason::NotUtf8);
        };
        let mapper = self.mapper.clone();
        let (base, rule, mapped_labels) = match mapper.map(raw_name, m.kind, &mut self.caps) {
            Mapped::Drop => return Resolved::Dropped(DropReason::Mapping),
            Mapped::Unmapped => {
                let mut n = String::with_capacity(raw_name.len() + 8);
                names::escape(raw_name, &mut n);
                (n, None, Vec::new())
            }
            Mapped::Map { rule, name, labels } => {
                let mut n = String::with_capacity(name.len() + 8);
                names::escape(&name, &mut n);
                (n, Some(rule), labels)
            }
        };
        let family_name = names::with_suffix(base, m.kind);

        // Labels: tags, then the mapping's labels on top (or under, with honor_labels); the last of
        // a name wins.
        let mut labels: Vec<(String, String)> = Vec::new();
        let honor = rule.is_some_and(|r| r.honor_labels);
        let mapped = mapped_labels.into_iter().map(|(k, v)| (k.to_string(), v));
        if honor {
            labels.extend(mapped.clone());
        }
        for pair in parse::tag_pairs(tags.as_bytes()) {
            let Some((k, v)) = pair else {
                self.counts.add_error(ErrorReason::BadTag);
                continue;
            };
            // Both are sub-slices of a valid UTF-8 string cut at ASCII bytes.
            let k = std::str::from_utf8(k).unwrap_or_default();
            let v = v
                .map_or(Ok("true"), std::str::from_utf8)
                .unwrap_or_default();
            match names::label_name(k) {
                Some(name) if !v.is_empty() => labels.push((name, v.to_string())),
                _ => self.counts.add_error(ErrorReason::BadTag),
            }
        }
        if !honor {
            labels.extend(mapped);
        }
        if m.kind.is_observer() {
            // `le` is the bucket label of a histogram's exposition.
            for (k, _) in labels.iter_mut().filter(|(k, _)| k == "le") {
                *k = "exported_le".to_string();
            }
        }
        labels.retain(|(_, v)| !v.is_empty());
        // Stable sort, then keep the last of each name.
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let mut deduped: Vec<(String, String)> = Vec::with_capacity(labels.len());
        for l in labels {
            match deduped.last_mut() {
                Some(last) if last.0 == l.0 => *last = l,
                _ => deduped.push(l),
            }
        }

        let attribution = self.attribution(m.container, peer, containers);

        // The family: one StatsD type per name.
        let family = match self.family_by_name.get(family_name.as_str()) {
            Some(&f) => {
                let fam = self.families[f as usize].as_ref().expect("indexed family");
                if fam.kind != m.kind {
                    return Resolved::Dropped(DropReason::TypeConflict);
                }
                Some(f)
            }
            None => None,
        };
        if let Some(f) = family {
            // Looked up with uninterned strings: a rejected series must not grow the interner.
            let key = SeriesKey {
                family: f,
                labels: deduped
                    .iter()
                    .map(|(k, v)| (Arc::from(k.as_str()), Arc::from(v.as_str())))
                    .collect(),
                attribution: attribution.clone(),
            };
            if let Some(id) = self.by_key.get(&key) {
                return Resolved::Series(*id);
            }
            let fam = self.families[f as usize].as_mut().expect("indexed family");
            if fam.series >= self.cfg.max_series_per_family {
                if !fam.warned {
                    fam.warned = true;
                    tracing::warn!(family = %fam.name, limit = self.cfg.max_series_per_family,
                        "StatsD: series limit of the family reached; new series of it are dropped and counted in plimsoll_ingest_dropped_total");
                }
                return Resolved::Dropped(DropReason::FamilyLimit);
            }
        }
        if self.live >= self.cfg.max_series {
            return Resolved::Dropped(DropReason::SourceLimit);
        }
        let family = match family {
            Some(f) => f,
            None => self.new_family(
                &family_name,
                m.kind,
                raw_name,
                rule.and_then(|r| r.help.clone()),
            ),
        };
        let labels: Labels = deduped
            .iter()
            .map(|(k, v)| (self.intern(k), self.intern(v)))
            .collect();

        let mut scale = rule.and_then(|r| r.scale).unwrap_or(1.0);
        if m.kind == Kind::Timer {
            scale /= 1000.0;
        }
        let ttl = rule
            .and_then(|r| r.ttl)
            .or(self.mapper.defaults.ttl)
            .unwrap_or(self.cfg.ttl);
        let state = match m.kind {
            Kind::Counter => State::Counter(0.0),
            Kind::Gauge => State::Gauge(0.0),
            Kind::Set => State::Set(HashSet::new()),
            Kind::Timer | Kind::Histogram | Kind::Distribution => {
                let bounds = rule
                    .and_then(|r| r.buckets.clone())
                    .or_else(|| self.mapper.defaults.buckets.clone())
                    .unwrap_or_else(|| self.cfg.buckets.clone());
                State::Histogram(Box::new(Hist::new(bounds)))
            }
        };
        let series = Series {
            family,
            labels: labels.clone(),
            attribution: attribution.clone(),
            state,
            scale,
            ttl_ms: ttl.as_millis().min(Millis::MAX as u128) as Millis,
            last_seen: now,
            fresh: true,
        };
        let id = match self.free_slots.pop() {
            Some(slot) => {
                let entry = &mut self.slots[slot as usize];
                entry.1 = Some(series);
                SeriesId { slot, gen: entry.0 }
            }
            None => {
                self.slots.push((0, Some(series)));
                SeriesId {
                    slot: (self.slots.len() - 1) as u32,
                    gen: 0,
                }
            }
        };
        self.by_key.insert(
            SeriesKey {
                family,
                labels,
                attribution,
            },
            id,
        );
        self.families[family as usize]
            .as_mut()
            .expect("indexed family")
            .series += 1;
        self.live += 1;
        self.counts.created += 1;
        Resolved::Series(id)
    }

    /// DogStatsD's container field, else the sender's container, else none.
    fn attribution(
        &self,
        field: &[u8],
        peer: Option<&ContainerId>,
        containers: &dyn Containers,
    ) -> Option<ContainerId> {
        let from_field = std::str::from_utf8(field).ok().and_then(|f| {
            // Newer clients prefix the id (`ci-<id>`); `in-<inode>` (a cgroup inode) names no id.
            let id = f.strip_prefix("ci-").unwrap_or(f);
            (!id.is_empty() && !f.starts_with("in-"))
                .then(|| containers.by_id(id))
                .flatten()
        });
        from_field.or_else(|| peer.cloned())
    }

    fn new_family(&mut self, name: &str, kind: Kind, raw: &str, help: Option<Arc<str>>) -> u32 {
        let name: Arc<str> = Arc::from(name);
        let help = help.unwrap_or_else(|| {
            let what = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Timer => "timer (seconds)",
                Kind::Histogram => "histogram",
                Kind::Distribution => "distribution",
                Kind::Set => "set (distinct members per interval)",
            };
            Arc::from(format!("StatsD {what} {raw}"))
        });
        let fam = Family {
            name: name.clone(),
            kind,
            help,
            series: 0,
            warned: false,
        };
        let idx = match self.free_families.pop() {
            Some(i) => {
                self.families[i as usize] = Some(fam);
                i
            }
            None => {
                self.families.push(Some(fam));
                (self.families.len() - 1) as u32
            }
        };
        self.family_by_name.insert(name, idx);
        idx
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(a.clone());
        a
    }
}

mod flush;

#[cfg(test)]
mod tests;
