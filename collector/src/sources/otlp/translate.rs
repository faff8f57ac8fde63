//! OTLP metrics into the store: names and labels (see `names`, `labels`), attribution to a
//! container, and the value of each data point by metric type (see `values`).
//!
//! | OTLP | stored as |
//! | --- | --- |
//! | gauge | gauge |
//! | sum, monotonic | counter (`_total`); delta points added up per series |
//! | sum, not monotonic | gauge; delta points added up per series (an up-down counter's level) |
//! | histogram | histogram (explicit buckets, count, sum); delta points added up per series |
//! | exponential histogram | histogram over power-of-two buckets (see `values`) |
//! | summary | summary |
//!
//! Every data point is written at the time the request arrived (the store's clock for this source);
//! the points' own timestamps only order delta points (an older or repeated one is rejected). A
//! point that cannot be stored is rejected: counted in the response's partial success and in
//! `plimsoll_ingest_errors_total{source="otlp",reason}` (malformed or unsupported) or
//! `plimsoll_ingest_dropped_total` (refused by the store, e.g. beyond a cardinality limit).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Metric,
};

use super::labels::{labels, value_string};
use super::names::{self, NameKind};
use super::values;
use super::SOURCE;
use crate::sources::directory::ContainerDirectory;
use crate::sources::docker::ContainerInfo;
use crate::sources::statsd::Containers;
use crate::store::{
    Batch, FamilyDesc, FamilyId, Histogram, Ingest, IngestError, Kind, Millis, SeriesRef,
    SourceDesc, SourceId, Value,
};
use crate::telemetry::IngestErrors;

/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`: the point marks a series as gone; it carries no value.
const NO_RECORDED_VALUE: u32 = 1;

/// How often the running totals of deleted series are forgotten.
const SWEEP_EVERY_MS: Millis = 10_000;

/// What became of the points of one request: the partial success of the response.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub accepted: u64,
    pub rejected: u64,
    /// Why points were rejected, by reason, with the first example of each.
    reasons: BTreeMap<&'static str, (u64, String)>,
}

impl Outcome {
    fn reject(&mut self, reason: &'static str, n: u64, why: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        self.rejected += n;
        self.reasons.entry(reason).or_insert_with(|| (0, why())).0 += n;
    }

    /// The count of rejected points per reason.
    pub fn reasons(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.reasons.iter().map(|(r, (n, _))| (*r, *n))
    }

    /// The partial success message: each reason with its count and first example; empty when all
    /// points were accepted.
    pub fn message(&self) -> String {
        let mut m = String::new();
        for (reason, (n, example)) in &self.reasons {
            if !m.is_empty() {
                m.push_str("; ");
            }
            let _ = write!(m, "{n} data point(s) rejected ({reason}): {example}");
        }
        m
    }
}

/// Why a point is rejected (`plimsoll_ingest_errors_total` reasons, but [`reason::STORE`]).
pub mod reason {
    pub const NO_VALUE: &str = "no_value";
    pub const INVALID_NAME: &str = "invalid_name";
    pub const TYPE_CONFLICT: &str = "type_conflict";
    pub const UNSPECIFIED_TEMPORALITY: &str = "unspecified_temporality";
    pub const OUT_OF_ORDER: &str = "out_of_order";
    pub const BOUNDS_CHANGED: &str = "bounds_changed";
    pub const INVALID_HISTOGRAM: &str = "invalid_histogram";
    pub const INVALID_EXPONENTIAL_HISTOGRAM: &str = "invalid_exponential_histogram";
    pub const INVALID_SUMMARY: &str = "invalid_summary";
    /// Refused by the store (limits, label clashes); counted in `plimsoll_ingest_dropped_total`.
    pub const STORE: &str = "dropped";
}

/// What the receiver remembers of a series between requests: the running total of delta points,
/// the bounds an exponential histogram series was given. Keyed by the store's series, so it is
/// bounded by the source's cardinality limits and forgotten when the store deletes the series.
#[derive(Debug, Default)]
struct State {
    series: HashMap<SeriesRef, Running>,
    last_sweep: Millis,
}

#[derive(Debug)]
struct Running {
    /// `time_unix_nano` of the latest delta point added.
    last_time: u64,
    value: f64,
    /// Running histogram of delta points, or the bounds of an exponential histogram series.
    histogram: Option<Histogram>,
}

/// The OTLP metrics receiver's writer: shared by the gRPC and HTTP servers.
#[derive(Debug)]
pub struct MetricsReceiver {
    ingest: Ingest,
    src: SourceId,
    directory: ContainerDirectory,
    state: Mutex<State>,
}

impl MetricsReceiver {
    /// Registers the `otlp` source with the store.
    pub fn new(
        ingest: Ingest,
        directory: ContainerDirectory,
        stale_after: std::time::Duration,
        limits: crate::store::Limits,
    ) -> Result<Self, IngestError> {
        let src = ingest.register_source(SourceDesc {
            name: SOURCE,
            stale_after,
            limits,
        })?;
        Ok(MetricsReceiver {
            ingest,
            src,
            directory,
            state: Mutex::default(),
        })
    }

    /// Writes every point of `req` at `now`; `peer` is the sender's address, by which a resource
    /// without `container.id` is attributed.
    pub fn export(
        &self,
        req: &ExportMetricsServiceRequest,
        peer: Option<IpAddr>,
        now: Millis,
    ) -> Outcome {
        let mut out = Outcome::default();
        let by_peer = peer.and_then(|ip| self.directory.by_ip(ip));
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.ingest.batch(self.src, now, |b| {
            for rm in &req.resource_metrics {
                let attrs = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
                let base = self.base_labels(attrs, by_peer.as_ref());
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        write_metric(b, &mut state, m, &base, &mut out);
                    }
                }
            }
            if now.saturating_sub(state.last_sweep) >= SWEEP_EVERY_MS || now < state.last_sweep {
                state.last_sweep = now;
                state.series.retain(|s, _| b.is_live(*s));
            }
        });
        drop(state);
        for (reason, n) in out.reasons() {
            if reason != reason::STORE {
                IngestErrors {
                    source: SOURCE,
                    reason,
                    count: n,
                }
                .emit();
            }
        }
        out
    }

    /// The labels and attribution a resource gives its series.
    fn base_labels(&self, attrs: &[KeyValue], by_peer: Option<&Arc<str>>) -> Base {
        let attr = |k: &str| {
            attrs
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.as_ref())
                .map(value_string)
                .filter(|v| !v.is_empty())
        };
        let container = attr("container.id")
            .and_then(|id| self.directory.by_id(&id))
            .or_else(|| by_peer.cloned())
            .and_then(|id| self.directory.get(&id));
        let service = attr("service.name");
        let mut labels = Vec::new();
        match &container {
            Some(c) => labels.extend(container_labels(c, service)),
            None => {
                if let Some(s) = service {
                    labels.push(("service".to_string(), s));
                }
            }
        }
        Base {
            labels,
            attribution: container.map(|c| c.id.clone()),
        }
    }
}

/// The labels of a series attributed to a container, as its cgroup series have them: `name`, and
/// the `service`, `task` and `slot` its scheduler gave it (the resource's `service.name` when it
/// has no service); then `container_id`, the full id, by which readers of the exposition (a
/// Prometheus) attribute it to the replica as the store does.
fn container_labels(c: &ContainerInfo, service: Option<String>) -> Vec<(String, String)> {
    let mut l = vec![("name".to_string(), c.name.clone())];
    if let Some(s) = c.service.clone().or(service) {
        l.push(("service".into(), s));
    }
    for (k, v) in [("task", &c.swarm_task_id), ("slot", &c.swarm_slot)] {
        if let Some(v) = v {
            l.push((k.into(), v.clone()));
        }
    }
    l.push(("container_id".into(), c.id.clone()));
    l
}

/// What a resource gives each of its series.
#[derive(Debug)]
struct Base {
    labels: Vec<(String, String)>,
    attribution: Option<String>,
}

fn points_of(m: &Metric) -> u64 {
    (match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }) as u64
}

/// Whether points of this temporality are deltas; `None` for an unspecified one.
fn is_delta(temporality: i32) -> Option<bool> {
    match AggregationTemporality::try_from(temporality) {
        Ok(AggregationTemporality::Delta) => Some(true),
        Ok(AggregationTemporality::Cumulative) => Some(false),
        _ => None,
    }
}

fn write_metric(b: &mut Batch<'_>, st: &mut State, m: &Metric, base: &Base, out: &mut Outcome) {
    let temporality = match &m.data {
        Some(Data::Sum(s)) => s.aggregation_temporality,
        Some(Data::Histogram(h)) => h.aggregation_temporality,
        Some(Data::ExponentialHistogram(h)) => h.aggregation_temporality,
        _ => AggregationTemporality::Cumulative as i32,
    };
    let Some(delta) = is_delta(temporality) else {
        return out.reject(reason::UNSPECIFIED_TEMPORALITY, points_of(m), || {
            format!(
                "{}: aggregation temporality {temporality} is neither delta nor cumulative",
                m.name
            )
        });
    };
    let (kind, name_kind) = match &m.data {
        Some(Data::Gauge(_)) => (Kind::Gauge, NameKind::Gauge),
        Some(Data::Sum(s)) if s.is_monotonic => (Kind::Counter, NameKind::Counter),
        Some(Data::Sum(_)) => (Kind::Gauge, NameKind::Other),
        Some(Data::Histogram(_)) | Some(Data::ExponentialHistogram(_)) => {
            (Kind::Histogram, NameKind::Other)
        }
        Some(Data::Summary(_)) => (Kind::Summary, NameKind::Other),
        None => return,
    };
    let name = names::metric_name(&m.name, &m.unit, name_kind);
    if !crate::store::is_metric_name(&name) {
        return out.reject(reason::INVALID_NAME, points_of(m), || {
            format!("{:?} gives no valid metric name", m.name)
        });
    }
    let mut desc = FamilyDesc::float(&name, &m.description, kind);
    desc.unit = unit_of(&m.unit);
    let fam = match b.family(desc) {
        Ok(f) => f,
        Err(e) => return out.reject(reason::TYPE_CONFLICT, points_of(m), || e.to_string()),
    };
    let mut w = PointWriter {
        b,
        st,
        out,
        fam,
        base,
        name: &name,
        delta,
    };
    match &m.data {
        Some(Data::Gauge(g)) => {
            w.delta = false;
            for p in &g.data_points {
                w.number(&p.attributes, p.flags, p.time_unix_nano, p.value);
            }
        }
        Some(Data::Sum(s)) => {
            for p in &s.data_points {
                w.number(&p.attributes, p.flags, p.time_unix_nano, p.value);
            }
        }
        Some(Data::Histogram(h)) => {
            for p in &h.data_points {
                if p.flags & NO_RECORDED_VALUE == 0 {
                    match values::histogram_of(p) {
                        Ok(v) => w.histogram(&p.attributes, p.time_unix_nano, v),
                        Err(why) => w.fail(reason::INVALID_HISTOGRAM, why),
                    }
                }
            }
        }
        Some(Data::ExponentialHistogram(h)) => {
            for p in &h.data_points {
                if p.flags & NO_RECORDED_VALUE == 0 {
                    w.exponential(p);
                }
            }
        }
        Some(Data::Summary(s)) => {
            for p in &s.data_points {
                if p.flags & NO_RECORDED_VALUE == 0 {
                    match values::summary_of(p) {
                        Ok(v) => {
                            if let Some(s) = w.series(&p.attributes) {
                                w.put(s, Value::Summary(&v));
                            }
                        }
                        Err(why) => w.fail(reason::INVALID_SUMMARY, why),
                    }
                }
            }
        }
        None => {}
    }
}

/// The base unit a family's name carries, for its metadata.
fn unit_of(unit: &str) -> Option<String> {
    let w = names::unit_word(unit.split('/').next().unwrap_or(""));
    (!w.is_empty() && !unit.contains(['{', '}'])).then(|| w.to_string())
}

/// Writes the points of one metric.
struct PointWriter<'a, 'b, 's> {
    b: &'a mut Batch<'s>,
    st: &'a mut State,
    out: &'a mut Outcome,
    fam: FamilyId,
    base: &'b Base,
    name: &'b str,
    delta: bool,
}

impl PointWriter<'_, '_, '_> {
    fn fail(&mut self, reason: &'static str, why: String) {
        let name = self.name;
        self.out.reject(reason, 1, || format!("{name}: {why}"));
    }

    fn dropped(&mut self) {
        let name = self.name;
        self.out.reject(reason::STORE, 1, || {
            format!("{name}: refused by the store (see plimsoll_ingest_dropped_total{{source=\"otlp\"}})")
        });
    }

    /// The point's series, created if new; `None` (rejected) when the store refuses it.
    fn series(&mut self, attrs: &[KeyValue]) -> Option<SeriesRef> {
        let labels = labels(&self.base.labels, attrs);
        let refs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (&**k, &**v)).collect();
        match self
            .b
            .series(self.fam, &refs, self.base.attribution.as_deref())
        {
            Ok(s) => Some(s),
            Err(_) => {
                self.dropped();
                None
            }
        }
    }

    fn put(&mut self, s: SeriesRef, v: Value<'_>) {
        if self.b.put(s, v) {
            self.out.accepted += 1;
        } else {
            self.dropped();
        }
    }

    /// The running state of a delta series, after checking that `time` is newer than its last point.
    fn running(&mut self, s: SeriesRef, time: u64) -> Option<&mut Running> {
        let r = self.st.series.entry(s).or_insert(Running {
            last_time: 0,
            value: 0.0,
            histogram: None,
        });
        if time != 0 && time <= r.last_time {
            self.fail(
                reason::OUT_OF_ORDER,
                "a delta point is not newer than the last one".into(),
            );
            return None;
        }
        let r = self.st.series.get_mut(&s)?;
        r.last_time = time;
        Some(r)
    }

    fn number(
        &mut self,
        attrs: &[KeyValue],
        flags: u32,
        time: u64,
        value: Option<number_data_point::Value>,
    ) {
        if flags & NO_RECORDED_VALUE != 0 {
            return;
        }
        let v = match value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None => return self.fail(reason::NO_VALUE, "a data point has no value".into()),
        };
        let Some(s) = self.series(attrs) else { return };
        let v = if self.delta {
            let Some(r) = self.running(s, time) else {
                return;
            };
            r.value += v;
            r.value
        } else {
            v
        };
        self.put(s, Value::Float(v));
    }

    fn histogram(&mut self, attrs: &[KeyValue], time: u64, h: Histogram) {
        let Some(s) = self.series(attrs) else { return };
        if !self.delta {
            return self.put(s, Value::Histogram(&h));
        }
        let Some(r) = self.running(s, time) else {
            return;
        };
        let total = r
            .histogram
            .get_or_insert_with(|| Histogram::new(h.bounds.clone()));
        if !values::add_histogram(total, &h) {
            return self.fail(
                reason::BOUNDS_CHANGED,
                "a delta histogram's bounds changed".into(),
            );
        }
        let total = total.clone();
        self.put(s, Value::Histogram(&total));
    }

    fn exponential(
        &mut self,
        p: &opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint,
    ) {
        let Some(s) = self.series(&p.attributes) else {
            return;
        };
        // The series' bounds: from its first point, kept with its running state.
        let bounds = match self.st.series.get(&s).and_then(|r| r.histogram.as_ref()) {
            Some(h) => h.bounds.clone(),
            None => match values::exponential_layout(p) {
                Ok(b) => b,
                Err(why) => return self.fail(reason::INVALID_EXPONENTIAL_HISTOGRAM, why),
            },
        };
        let h = match values::exponential_of(p, &bounds) {
            Ok(h) => h,
            Err(why) => return self.fail(reason::INVALID_EXPONENTIAL_HISTOGRAM, why),
        };
        if self.delta {
            return self.histogram(&p.attributes, p.time_unix_nano, h);
        }
        self.st.series.entry(s).or_insert(Running {
            last_time: 0,
            value: 0.0,
            histogram: Some(Histogram::new(bounds)),
        });
        self.put(s, Value::Histogram(&h));
    }
}
