//! OTLP metrics into the store: names and labels (see `names`), attribution to a container, and
//! the value of each data point by metric type.
//!
//! | OTLP | stored as |
//! | --- | --- |
//! | gauge | gauge |
//! | sum, monotonic, cumulative | counter (`_total`) |
//! | sum, not monotonic, cumulative | gauge |
//! | histogram, cumulative | histogram (explicit buckets, count, sum) |
//! | summary | summary |
//!
//! Every data point is written at the time the request arrived (the store's clock for this source);
//! the points' own timestamps are not used. A point that cannot be stored is rejected: counted in
//! the response's partial success and in `plimsoll_ingest_errors_total{source="otlp",reason}`
//! (malformed) or `plimsoll_ingest_dropped_total` (refused by the store, e.g. beyond a limit).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, HistogramDataPoint, Metric,
    NumberDataPoint, SummaryDataPoint,
};

use super::names::{self, NameKind};
use super::SOURCE;
use crate::sources::directory::ContainerDirectory;
use crate::sources::docker::ContainerInfo;
use crate::sources::statsd::Containers;
use crate::store::{
    Batch, FamilyDesc, FamilyId, Histogram, Ingest, IngestError, Kind, Millis, SourceDesc,
    SourceId, Summary, Value,
};
use crate::telemetry::IngestErrors;

/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`: the point marks a series as gone; it carries no value.
const NO_RECORDED_VALUE: u32 = 1;

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

/// Why a point is rejected as malformed or unsupported (`plimsoll_ingest_errors_total` reasons).
mod reason {
    pub const NO_VALUE: &str = "no_value";
    pub const INVALID_NAME: &str = "invalid_name";
    pub const TYPE_CONFLICT: &str = "type_conflict";
    pub const UNSUPPORTED: &str = "unsupported";
    pub const INVALID_HISTOGRAM: &str = "invalid_histogram";
    pub const INVALID_SUMMARY: &str = "invalid_summary";
    /// Refused by the store (limits, label clashes); counted in `plimsoll_ingest_dropped_total`.
    pub const STORE: &str = "dropped";
}

/// The OTLP metrics receiver's writer: shared by the gRPC and HTTP servers.
#[derive(Debug)]
pub struct MetricsReceiver {
    ingest: Ingest,
    src: SourceId,
    directory: ContainerDirectory,
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
        })
    }

    /// Writes every point of `req` at `now`; `peer` is the sender's address, by which a request
    /// without `container.id` is attributed.
    pub fn export(
        &self,
        req: &ExportMetricsServiceRequest,
        peer: Option<IpAddr>,
        now: Millis,
    ) -> Outcome {
        let mut out = Outcome::default();
        let by_peer = peer.and_then(|ip| self.directory.by_ip(ip));
        self.ingest.batch(self.src, now, |b| {
            for rm in &req.resource_metrics {
                let attrs = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
                let base = self.base_labels(attrs, by_peer.as_ref());
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        write_metric(b, m, &base, &mut out);
                    }
                }
            }
        });
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
/// has no service).
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

fn write_metric(b: &mut Batch<'_>, m: &Metric, base: &Base, out: &mut Outcome) {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let (kind, name_kind) = match &m.data {
        Some(Data::Gauge(_)) => (Kind::Gauge, NameKind::Gauge),
        Some(Data::Sum(s)) if s.aggregation_temporality != cumulative => {
            return out.reject(reason::UNSUPPORTED, points_of(m), || {
                format!("{}: only cumulative sums are supported", m.name)
            })
        }
        Some(Data::Sum(s)) if s.is_monotonic => (Kind::Counter, NameKind::Counter),
        Some(Data::Sum(_)) => (Kind::Gauge, NameKind::Other),
        Some(Data::Histogram(h)) if h.aggregation_temporality != cumulative => {
            return out.reject(reason::UNSUPPORTED, points_of(m), || {
                format!("{}: only cumulative histograms are supported", m.name)
            })
        }
        Some(Data::Histogram(_)) => (Kind::Histogram, NameKind::Other),
        Some(Data::Summary(_)) => (Kind::Summary, NameKind::Other),
        Some(Data::ExponentialHistogram(_)) => {
            return out.reject(reason::UNSUPPORTED, points_of(m), || {
                format!("{}: exponential histograms are not supported", m.name)
            })
        }
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
        Err(e) => {
            return out.reject(reason::TYPE_CONFLICT, points_of(m), || e.to_string());
        }
    };
    let w = PointWriter {
        fam,
        base,
        name: &name,
    };
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.iter().for_each(|p| w.number(b, p, out)),
        Some(Data::Sum(s)) => s.data_points.iter().for_each(|p| w.number(b, p, out)),
        Some(Data::Histogram(h)) => h.data_points.iter().for_each(|p| w.histogram(b, p, out)),
        Some(Data::Summary(s)) => s.data_points.iter().for_each(|p| w.summary(b, p, out)),
        _ => {}
    }
}

/// The base unit a family's name carries, for its metadata.
fn unit_of(unit: &str) -> Option<String> {
    let w = names::unit_word(unit.split('/').next().unwrap_or(""));
    (!w.is_empty() && !unit.contains(['{', '}'])).then(|| w.to_string())
}

/// Writes the points of one family.
struct PointWriter<'a> {
    fam: FamilyId,
    base: &'a Base,
    name: &'a str,
}

impl PointWriter<'_> {
    fn put(&self, b: &mut Batch<'_>, attrs: &[KeyValue], v: Value<'_>, out: &mut Outcome) {
        let labels = labels(&self.base.labels, attrs);
        let refs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (&**k, &**v)).collect();
        let stored = b
            .series(self.fam, &refs, self.base.attribution.as_deref())
            .is_ok_and(|s| b.put(s, v));
        if stored {
            out.accepted += 1;
        } else {
            out.reject(reason::STORE, 1, || {
                format!(
                    "{}: refused by the store (see plimsoll_ingest_dropped_total{{source=\"otlp\"}})",
                    self.name
                )
            });
        }
    }

    fn number(&self, b: &mut Batch<'_>, p: &NumberDataPoint, out: &mut Outcome) {
        if p.flags & NO_RECORDED_VALUE != 0 {
            return;
        }
        let v = match p.value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None => {
                return out.reject(reason::NO_VALUE, 1, || {
                    format!("{}: a data point has no value", self.name)
                })
            }
        };
        self.put(b, &p.attributes, Value::Float(v), out);
    }

    fn histogram(&self, b: &mut Batch<'_>, p: &HistogramDataPoint, out: &mut Outcome) {
        if p.flags & NO_RECORDED_VALUE != 0 {
            return;
        }
        match histogram_of(p) {
            Ok(h) => self.put(b, &p.attributes, Value::Histogram(&h), out),
            Err(why) => out.reject(reason::INVALID_HISTOGRAM, 1, || {
                format!("{}: {why}", self.name)
            }),
        }
    }

    fn summary(&self, b: &mut Batch<'_>, p: &SummaryDataPoint, out: &mut Outcome) {
        if p.flags & NO_RECORDED_VALUE != 0 {
            return;
        }
        match summary_of(p) {
            Ok(s) => self.put(b, &p.attributes, Value::Summary(&s), out),
            Err(why) => out.reject(reason::INVALID_SUMMARY, 1, || {
                format!("{}: {why}", self.name)
            }),
        }
    }
}

/// An explicit-bucket histogram point as the store keeps it.
fn histogram_of(p: &HistogramDataPoint) -> Result<Histogram, String> {
    let bounds = &p.explicit_bounds;
    if p.bucket_counts.is_empty() && bounds.is_empty() {
        // No buckets: only count and sum, as one +Inf bucket.
        return Ok(Histogram {
            bounds: Arc::from(&[][..]),
            buckets: vec![p.count as f64],
            count: p.count as f64,
            sum: p.sum.unwrap_or(0.0),
        });
    }
    if p.bucket_counts.len() != bounds.len() + 1 {
        return Err(format!(
            "{} bucket counts for {} bounds (want bounds + 1)",
            p.bucket_counts.len(),
            bounds.len()
        ));
    }
    if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err("bounds must be finite and strictly increasing".into());
    }
    Ok(Histogram {
        bounds: Arc::from(&bounds[..]),
        buckets: p.bucket_counts.iter().map(|c| *c as f64).collect(),
        count: p.count as f64,
        sum: p.sum.unwrap_or(0.0),
    })
}

fn summary_of(p: &SummaryDataPoint) -> Result<Summary, String> {
    let q = &p.quantile_values;
    if q.iter().any(|v| !(0.0..=1.0).contains(&v.quantile))
        || q.windows(2).any(|w| w[0].quantile >= w[1].quantile)
    {
        return Err("quantiles must be within 0..=1 and strictly increasing".into());
    }
    Ok(Summary {
        quantiles: q.iter().map(|v| v.quantile).collect::<Vec<_>>().into(),
        values: q.iter().map(|v| v.value).collect(),
        count: p.count as f64,
        sum: p.sum,
    })
}

/// The labels of a point: the resource's, then its attributes as label names (values of keys that
/// become the same name joined with `;` in key order, as the Prometheus exporter does). An attribute
/// whose name the resource labels use already is renamed `exported_<name>`; empty values are left out.
fn labels(base: &[(String, String)], attrs: &[KeyValue]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = base.to_vec();
    let n = out.len();
    let mut sorted: Vec<&KeyValue> = attrs.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for kv in sorted {
        let Some(mut name) = names::label_name(&kv.key) else {
            continue;
        };
        let value = kv.value.as_ref().map(value_string).unwrap_or_default();
        if value.is_empty() {
            continue;
        }
        if out[..n].iter().any(|(k, _)| *k == name) {
            name.insert_str(0, "exported_");
        }
        match out[n..].iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => {
                v.push(';');
                v.push_str(&value);
            }
            None => out.push((name, value)),
        }
    }
    out
}

/// An attribute value as a label value: strings as they are, numbers and booleans as text, arrays
/// and maps as JSON, bytes as hex.
pub fn value_string(v: &AnyValue) -> String {
    let mut s = String::new();
    write_value(&mut s, v.value.as_ref(), false);
    s
}

fn write_value(out: &mut String, v: Option<&any_value::Value>, quoted: bool) {
    use any_value::Value as V;
    match v {
        None => {
            if quoted {
                out.push_str("null")
            }
        }
        Some(V::StringValue(s)) if quoted => {
            out.push_str(&serde_json::Value::String(s.clone()).to_string())
        }
        Some(V::StringValue(s)) => out.push_str(s),
        Some(V::BoolValue(b)) => {
            let _ = write!(out, "{b}");
        }
        Some(V::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(V::DoubleValue(d)) => {
            let _ = write!(out, "{d}");
        }
        Some(V::BytesValue(b)) => {
            if quoted {
                out.push('"');
            }
            for x in b {
                let _ = write!(out, "{x:02x}");
            }
            if quoted {
                out.push('"');
            }
        }
        Some(V::ArrayValue(a)) => {
            out.push('[');
            for (i, x) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, x.value.as_ref(), true);
            }
            out.push(']');
        }
        Some(V::KvlistValue(l)) => {
            out.push('{');
            for (i, kv) in l.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(kv.key.clone()).to_string());
                out.push(':');
                write_value(out, kv.value.as_ref().and_then(|x| x.value.as_ref()), true);
            }
            out.push('}');
        }
        Some(_) => {}
    }
}
