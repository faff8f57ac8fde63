//! A scraped body into the store's model: parsed by the `openmetrics-parser` crate (Prometheus
//! text format 0.0.4, or OpenMetrics 1.0 when the target answers with its content type), then
//! translated: counters and gauges as floats, untyped and state sets as gauges, info metrics as
//! `<name>_info` gauges of 1, histograms with explicit buckets and summaries as the store's rows.
//! Gauge histograms are skipped (counted). Exposed timestamps are ignored: samples are stamped
//! with the scrape's time.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use openmetrics_parser::{
    HistogramValue, OpenMetricsType, OpenMetricsValue, PrometheusType, PrometheusValue,
    SummaryValue,
};

use crate::store::{Histogram, Kind, Summary};

/// Exposition format of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    /// By the response's `Content-Type`: OpenMetrics only when the target says so.
    pub fn of(content_type: Option<&str>) -> Format {
        match content_type {
            Some(ct) if ct.trim_start().starts_with("application/openmetrics-text") => {
                Format::OpenMetrics
            }
            _ => Format::Prometheus,
        }
    }
}

/// One value of a scraped series.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    Float(f64),
    Histogram(Histogram),
    Summary(Summary),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// As exposed, before the target's labels are merged in.
    pub labels: Vec<(String, String)>,
    pub value: Sample,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The name the store keeps (OpenMetrics counters get their `_total` back).
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub series: Vec<Series>,
}

/// What one scrape gave.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Scraped {
    pub families: Vec<Family>,
    /// Samples as Prometheus counts them (a histogram: its buckets, `_sum` and `_count`).
    pub samples: usize,
    /// Histograms and summaries whose buckets or quantiles make no sense, skipped.
    pub invalid: usize,
    /// Families of a type the store has no place for (gauge histograms), skipped.
    pub unsupported: usize,
}

/// Why a scrape's body was refused as a whole (the target is then down for this scrape).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("the body is not UTF-8")]
    Utf8,
    #[error("more than {limit} samples")]
    SampleLimit { limit: usize },
    #[error("{0}")]
    Syntax(String),
    #[error("the parser failed on this input")]
    Panicked,
}

impl ParseError {
    /// The `reason` label of `plimsoll_ingest_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Utf8 => "not_utf8",
            ParseError::SampleLimit { .. } => "sample_limit",
            ParseError::Syntax(_) => "parse",
            ParseError::Panicked => "parser_panic",
        }
    }
}

/// Parses and translates a body. Never panics: the parser is run under `catch_unwind` as a last
/// guard, and a body with more sample lines than `sample_limit` is refused before it is parsed
/// (the parser's cost grows with the square of a family's series).
pub fn parse(body: &[u8], format: Format, sample_limit: usize) -> Result<Scraped, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| ParseError::Utf8)?;
    let lines = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !l.is_empty() && !l.starts_with('#')
        })
        .count();
    if lines > sample_limit {
        return Err(ParseError::SampleLimit {
            limit: sample_limit,
        });
    }
    let out = std::panic::catch_unwind(AssertUnwindSafe(|| match format {
        Format::Prometheus => openmetrics_parser::prometheus::parse_prometheus(text)
            .map(|e| translate_prometheus(e.families.into_values())),
        Format::OpenMetrics => openmetrics_parser::openmetrics::parse_openmetrics(text)
            .map(|e| translate_openmetrics(e.families.into_values())),
    }))
    .map_err(|_| ParseError::Panicked)?
    .map_err(|e| ParseError::Syntax(e.to_string()))?;
    if out.samples > sample_limit {
        return Err(ParseError::SampleLimit {
            limit: sample_limit,
        });
    }
    Ok(out)
}

type PromFamily = openmetrics_parser::MetricFamily<PrometheusType, PrometheusValue>;
type OmFamily = openmetrics_parser::MetricFamily<OpenMetricsType, OpenMetricsValue>;

fn labels_of<V: openmetrics_parser::RenderableMetricValue + Clone>(
    s: &openmetrics_parser::Sample<V>,
) -> Vec<(String, String)> {
    s.get_labelset()
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// Translates every family (sorted by name, so that output is deterministic) with `kind_of`
/// (the store's kind and name, None to skip the family as unsupported) and `value_of`.
fn translate<T: Clone, V: openmetrics_parser::RenderableMetricValue + Clone>(
    families: impl Iterator<Item = openmetrics_parser::MetricFamily<T, V>>,
    kind_of: impl Fn(&T, &str) -> Option<(Kind, String)>,
    value_of: impl Fn(&V) -> Option<Sample>,
) -> Scraped {
    let mut out = Scraped::default();
    let mut sorted: Vec<_> = families.collect();
    sorted.sort_by(|a, b| a.family_name.cmp(&b.family_name));
    for f in sorted {
        let Some((kind, name)) = kind_of(&f.family_type, &f.family_name) else {
            out.unsupported += 1;
            continue;
        };
        let mut fam = Family {
            name,
            help: f.help.clone(),
            kind,
            series: Vec::new(),
        };
        for s in f.iter_samples() {
            push(&mut out, &mut fam, labels_of(s), value_of(&s.value));
        }
        out.families.push(fam);
    }
    out
}

fn translate_prometheus(families: impl Iterator<Item = PromFamily>) -> Scraped {
    let kind_of = |t: &PrometheusType, name: &str| {
        let kind = match t {
            PrometheusType::Counter => Kind::Counter,
            PrometheusType::Gauge | PrometheusType::Unknown => Kind::Gauge,
            PrometheusType::Histogram => Kind::Histogram,
            PrometheusType::Summary => Kind::Summary,
        };
        Some((kind, name.to_string()))
    };
    translate(families, kind_of, |v| match v {
        PrometheusValue::Unknown(n) | PrometheusValue::Gauge(n) => Some(Sample::Float(n.as_f64())),
        PrometheusValue::Counter(c) => Some(Sample::Float(c.value.as_f64())),
        PrometheusValue::Histogram(h) => histogram(h).map(Sample::Histogram),
        PrometheusValue::Summary(q) => summary(q).map(Sample::Summary),
    })
}

fn translate_openmetrics(families: impl Iterator<Item = OmFamily>) -> Scraped {
    let kind_of = |t: &OpenMetricsType, name: &str| {
        Some(match t {
            OpenMetricsType::Counter if !name.ends_with("_total") => {
                (Kind::Counter, format!("{name}_total"))
            }
            OpenMetricsType::Counter => (Kind::Counter, name.to_string()),
            OpenMetricsType::Info => (Kind::Gauge, format!("{name}_info")),
            OpenMetricsType::Histogram => (Kind::Histogram, name.to_string()),
            OpenMetricsType::Summary => (Kind::Summary, name.to_string()),
            OpenMetricsType::GaugeHistogram => return None,
            OpenMetricsType::Gauge | OpenMetricsType::StateSet | OpenMetricsType::Unknown => {
                (Kind::Gauge, name.to_string())
            }
        })
    };
    translate(families, kind_of, |v| match v {
        OpenMetricsValue::Unknown(n)
        | OpenMetricsValue::Gauge(n)
        | OpenMetricsValue::StateSet(n) => Some(Sample::Float(n.as_f64())),
        OpenMetricsValue::Counter(c) => Some(Sample::Float(c.value.as_f64())),
        OpenMetricsValue::Info => Some(Sample::Float(1.0)),
        OpenMetricsValue::Histogram(h) | OpenMetricsValue::GaugeHistogram(h) => {
            histogram(h).map(Sample::Histogram)
        }
        OpenMetricsValue::Summary(q) => summary(q).map(Sample::Summary),
    })
}

fn push(out: &mut Scraped, fam: &mut Family, labels: Vec<(String, String)>, value: Option<Sample>) {
    match value {
        Some(value) => {
            out.samples += match &value {
                Sample::Float(_) => 1,
                Sample::Histogram(h) => h.bounds.len() + 3,
                Sample::Summary(q) => q.quantiles.len() + 2,
            };
            fam.series.push(Series { labels, value });
        }
        None => out.invalid += 1,
    }
}

/// Cumulative exposed buckets (`le`, in any order, `+Inf` optional when `_count` is given) into
/// the store's per-bucket counts over finite, ascending bounds. None when they make no sense.
pub fn histogram(h: &HistogramValue) -> Option<Histogram> {
    let mut buckets: Vec<(f64, f64)> = h
        .buckets
        .iter()
        .map(|b| (b.upper_bound, b.count.as_f64()))
        .collect();
    if buckets
        .iter()
        .any(|(le, c)| le.is_nan() || !c.is_finite() || *c < 0.0)
    {
        return None;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let inf = buckets
        .last()
        .filter(|(le, _)| *le == f64::INFINITY)
        .map(|(_, c)| *c);
    let count = match (inf, h.count) {
        (Some(c), _) => c,
        (None, Some(c)) => c as f64,
        (None, None) => return None,
    };
    let finite: Vec<(f64, f64)> = buckets
        .into_iter()
        .filter(|(le, _)| le.is_finite())
        .collect();
    let mut per = Vec::with_capacity(finite.len() + 1);
    let mut below = 0.0;
    for (_, cum) in &finite {
        if *cum < below {
            return None;
        }
        per.push(cum - below);
        below = *cum;
    }
    if count < below {
        return None;
    }
    per.push(count - below);
    Some(Histogram {
        bounds: finite.iter().map(|(le, _)| *le).collect::<Vec<_>>().into(),
        buckets: per,
        count,
        sum: h.sum.map_or(0.0, |s| s.as_f64()),
    })
}

/// Exposed quantiles (any order) into the store's summary. None when they make no sense.
pub fn summary(q: &SummaryValue) -> Option<Summary> {
    let mut qs: Vec<(f64, f64)> = q
        .quantiles
        .iter()
        .map(|x| (x.quantile, x.value.as_f64()))
        .collect();
    if qs.iter().any(|(p, _)| !(0.0..=1.0).contains(p)) {
        return None;
    }
    qs.sort_by(|a, b| a.0.total_cmp(&b.0));
    if qs.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let quantiles: Arc<[f64]> = qs.iter().map(|(p, _)| *p).collect::<Vec<_>>().into();
    Some(Summary {
        quantiles,
        values: qs.into_iter().map(|(_, v)| v).collect(),
        count: q.count.map_or(0.0, |c| c as f64),
        sum: q.sum.map_or(0.0, |s| s.as_f64()),
    })
}
