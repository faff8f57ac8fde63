//! RED metrics from spans, as the OTel collector's spanmetrics connector makes them:
//! `traces_span_metrics_calls_total` and the histogram `traces_span_metrics_duration_milliseconds`,
//! labelled `service_name`, `span_name`, `span_kind`, `status_code` and the configured dimensions.
//!
//! Cumulative since a series was created. A service has at most `max_series_per_service` series and
//! all services `max_series`; spans that would make a new series beyond either are counted into an
//! overflow series (`otel_metric_overflow="true"`, with the service's name under the per-service
//! limit), as the connector's `aggregation_cardinality_limit` does, so memory stays bounded and
//! nothing is silently lost. Pure: spans and `now` in, series out through [`SpanMetrics::flush`].

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use super::normalize;
use super::put_series;
use super::span::SpanView;
use crate::sources::statsd::names::escape;
use crate::store::{
    Batch, FamilyDesc, FamilyId, Histogram, Ingest, IngestError, Kind, Millis, SeriesRef, Value,
};

pub const CALLS: &str = "traces_span_metrics_calls_total";
pub const DURATION: &str = "traces_span_metrics_duration_milliseconds";
/// The label of overflow series, as OTel SDKs and the connector name it (`otel.metric.overflow`).
pub const OVERFLOW_LABEL: &str = "otel_metric_overflow";

/// The labels spanmetrics sets on every series itself.
pub const BASE_LABELS: [&str; 5] = [
    "service_name",
    "span_name",
    "span_kind",
    "status_code",
    OVERFLOW_LABEL,
];

/// The Prometheus label of an attribute key (`http.method` → `http_method`).
pub fn label_for(key: &str) -> String {
    let mut s = String::with_capacity(key.len());
    escape(key, &mut s);
    s
}

/// A configured dimension, its label name resolved.
#[derive(Debug, Clone)]
pub struct Dim {
    pub key: String,
    pub label: Arc<str>,
    pub default: Option<String>,
}

/// What the aggregator is built from (see `SpansConfig::spanmetrics`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub dimensions: Arc<[Dim]>,
    pub bounds: Arc<[f64]>,
    pub max_series_per_service: usize,
    pub max_series: usize,
    pub normalize: bool,
    /// 0: series never expire.
    pub ttl_ms: Millis,
}

/// The store families spanmetrics writes.
#[derive(Debug, Clone, Copy)]
pub struct Families {
    pub calls: FamilyId,
    pub duration: FamilyId,
}

impl Families {
    pub fn register(ingest: &Ingest) -> Result<Families, IngestError> {
        Ok(Families {
            calls: ingest.family(FamilyDesc::float(
                CALLS,
                "Spans received, by service, span name, kind and status (OTel spanmetrics).",
                Kind::Counter,
            ))?,
            duration: ingest.family(FamilyDesc {
                unit: Some("milliseconds".into()),
                ..FamilyDesc::float(
                    DURATION,
                    "Span durations in milliseconds, by service, span name, kind and status (OTel spanmetrics).",
                    Kind::Histogram,
                )
            })?,
        })
    }
}

#[derive(Debug)]
struct Entry {
    /// Label names and values, in exposition order.
    labels: Vec<(Arc<str>, Box<str>)>,
    calls: f64,
    hist: Histogram,
    last_span: Millis,
    /// The store series of the calls and the duration, once resolved.
    refs: [Option<SeriesRef>; 2],
}

#[derive(Debug, Default)]
struct ServiceState {
    series: usize,
    /// Index of the service's overflow entry.
    overflow: Option<usize>,
}

/// Counts since the last [`SpanMetrics::take_counts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Spans counted into an overflow series.
    pub overflowed: u64,
    pub series_created: u64,
    pub series_expired: u64,
}

/// The spanmetrics aggregation state.
#[derive(Debug)]
pub struct SpanMetrics {
    s: Settings,
    index: HashMap<Box<[u8]>, usize, foldhash::fast::RandomState>,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    services: HashMap<Box<str>, ServiceState, foldhash::fast::RandomState>,
    global_overflow: Option<usize>,
    live: usize,
    /// The series key of the span being counted, reused from span to span.
    key: Vec<u8>,
    counts: Counts,
    names: [Arc<str>; 5],
}

/// Appends one part of a series key, length-prefixed: attribute values may hold any character, so
/// no separator could be relied on.
fn push_part(key: &mut Vec<u8>, part: &str) {
    key.extend_from_slice(&(part.len() as u32).to_le_bytes());
    key.extend_from_slice(part.as_bytes());
}

/// The key part of an absent dimension: a length no part has.
const ABSENT: [u8; 4] = u32::MAX.to_le_bytes();

/// A dimension's value for a span: the span's attribute, else its resource's, else the default.
fn dim_value<'a>(d: &'a Dim, span: &SpanView<'a>) -> Option<std::borrow::Cow<'a, str>> {
    span.attr(&d.key)
        .or_else(|| d.default.as_deref().map(Into::into))
}

impl SpanMetrics {
    pub fn new(s: Settings) -> SpanMetrics {
        SpanMetrics {
            s,
            index: HashMap::default(),
            entries: Vec::new(),
            free: Vec::new(),
            services: HashMap::default(),
            global_overflow: None,
            live: 0,
            key: Vec::with_capacity(256),
            counts: Counts::default(),
            names: BASE_LABELS.map(Arc::from),
        }
    }

    /// Series held (overflow series included).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn take_counts(&mut self) -> Counts {
        std::mem::take(&mut self.counts)
    }

    /// Counts one span.
    pub fn observe(&mut self, span: &SpanView<'_>, now: Millis) {
        let name = if self.s.normalize {
            normalize::span_name(span.name())
        } else {
            span.name().into()
        };
        // The key is built without allocating; the dimension values are read again only for a new
        // series.
        let key = &mut self.key;
        key.clear();
        push_part(key, span.service);
        push_part(key, &name);
        key.extend_from_slice(&[span.kind as u8, span.status as u8]);
        for d in self.s.dimensions.iter() {
            match dim_value(d, span) {
                Some(v) => push_part(key, &v),
                None => key.extend_from_slice(&ABSENT),
            }
        }
        let ms = span.duration_ns() as f64 / 1e6;
        let idx = match self.index.get(self.key.as_slice()) {
            Some(i) => *i,
            None => self.new_series(span, &name),
        };
        let e = self.entries[idx]
            .as_mut()
            .expect("indexed entries are live");
        e.calls += 1.0;
        e.hist.observe(ms, 1.0);
        e.last_span = now;
    }

    fn new_series(&mut self, span: &SpanView<'_>, name: &str) -> usize {
        let per_service = self.s.max_series_per_service;
        let global_full = self.live >= self.s.max_series;
        let svc = self.services.get(span.service);
        let service_full = svc.is_some_and(|s| s.series >= per_service);
        let service_overflow = svc.and_then(|s| s.overflow);
        if global_full && !service_full {
            self.counts.overflowed += 1;
            if let Some(i) = self.global_overflow {
                return i;
            }
            let labels = vec![(self.names[4].clone(), "true".into())];
            let i = self.insert(labels);
            self.global_overflow = Some(i);
            return i;
        }
        if service_full {
            self.counts.overflowed += 1;
            if let Some(i) = service_overflow {
                return i;
            }
            let labels = vec![
                (self.names[0].clone(), span.service.into()),
                (self.names[4].clone(), "true".into()),
            ];
            let i = self.insert(labels);
            if let Some(s) = self.services.get_mut(span.service) {
                s.overflow = Some(i);
            }
            return i;
        }
        let mut labels = vec![
            (self.names[0].clone(), span.service.into()),
            (self.names[1].clone(), name.into()),
            (self.names[2].clone(), span.kind.as_str().into()),
            (self.names[3].clone(), span.status.as_str().into()),
        ];
        for d in self.s.dimensions.iter() {
            if let Some(v) = dim_value(d, span) {
                labels.push((d.label.clone(), (*v).into()));
            }
        }
        let i = self.insert(labels);
        self.index.insert(self.key.as_slice().into(), i);
        match self.services.get_mut(span.service) {
            Some(s) => s.series += 1,
            None => {
                self.services.insert(
                    span.service.into(),
                    ServiceState {
                        series: 1,
                        overflow: None,
                    },
                );
            }
        }
        i
    }

    fn insert(&mut self, labels: Vec<(Arc<str>, Box<str>)>) -> usize {
        let e = Entry {
            labels,
            calls: 0.0,
            hist: Histogram::new(self.s.bounds.clone()),
            last_span: 0,
            refs: [None, None],
        };
        self.live += 1;
        self.counts.series_created += 1;
        match self.free.pop() {
            Some(i) => {
                self.entries[i] = Some(e);
                i
            }
            None => {
                self.entries.push(Some(e));
                self.entries.len() - 1
            }
        }
    }

    /// Forgets the series with no span for the TTL (overflow series included).
    pub fn expire(&mut self, now: Millis) {
        if self.s.ttl_ms <= 0 {
            return;
        }
        let horizon = now - self.s.ttl_ms;
        let gone: Vec<usize> = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().filter(|e| e.last_span < horizon).map(|_| i))
            .collect();
        if gone.is_empty() {
            return;
        }
        let gone_set: std::collections::HashSet<usize> = gone.iter().copied().collect();
        self.index.retain(|_, i| !gone_set.contains(i));
        if self.global_overflow.is_some_and(|i| gone_set.contains(&i)) {
            self.global_overflow = None;
        }
        for i in &gone {
            let e = self.entries[*i].take().expect("listed as live");
            self.free.push(*i);
            self.live -= 1;
            self.counts.series_expired += 1;
            let is_overflow = e.labels.iter().any(|(k, _)| **k == *OVERFLOW_LABEL);
            let service = e
                .labels
                .iter()
                .find(|(k, _)| **k == *BASE_LABELS[0])
                .map(|(_, v)| v.clone());
            if let Some(svc) = service.and_then(|s| self.services.get_mut(&*s)) {
                if is_overflow {
                    svc.overflow = None;
                } else {
                    svc.series -= 1;
                }
            }
        }
        self.services
            .retain(|_, s| s.series > 0 || s.overflow.is_some());
    }

    /// Writes every series' cumulative values in `b` (one batch of the spans source).
    pub fn flush(&mut self, fams: Families, b: &mut Batch<'_>) {
        for e in self.entries.iter_mut().flatten() {
            let labels = &e.labels;
            put_series(b, fams.calls, &mut e.refs[0], labels, Value::Float(e.calls));
            put_series(
                b,
                fams.duration,
                &mut e.refs[1],
                labels,
                Value::Histogram(&e.hist),
            );
        }
    }
}
