//! A scraped body into the store's model: read line by line by [`super::text`] (Prometheus text
//! format 0.0.4, or OpenMetrics 1.0 when the target answers with its content type), then grouped into
//! families: counters and gauges as floats, untyped and state sets as gauges, info metrics as
//! `<name>_info` gauges, histograms with explicit buckets and summaries as the store's rows.
//! Gauge histograms are skipped (counted). Exposed timestamps are ignored: samples are stamped
//! with the scrape's time. The whole body costs one pass: each sample finds its family and its
//! series through hash maps.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::text::{self, Line, Type};
use crate::store::{Histogram, Kind, Summary};

#[cfg(test)]
mod tests;
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
    #[error("line {line}: {problem}")]
    Syntax { line: usize, problem: &'static str },
}

impl ParseError {
    /// The `reason` label of `plimsoll_ingest_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Utf8 => "not_utf8",
            ParseError::SampleLimit { .. } => "sample_limit",
            ParseError::Syntax { .. } => "parse",
        }
    }
}

/// Parses and translates a body in one pass; more than `sample_limit` sample lines refuse it, as
/// Prometheus's `sample_limit` does.
pub fn parse(body: &[u8], format: Format, sample_limit: usize) -> Result<Scraped, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| ParseError::Utf8)?;
    let openmetrics = format == Format::OpenMetrics;
    let mut b = Builder {
        openmetrics,
        ..Builder::default()
    };
    let mut eof = false;
    for (i, l) in text.lines().enumerate() {
        let syntax = |problem| ParseError::Syntax {
            line: i + 1,
            problem,
        };
        let parsed = text::line(l, openmetrics).map_err(syntax)?;
        if eof {
            return Err(syntax("text after # EOF"));
        }
        match parsed {
            Line::Nothing => {}
            Line::Eof => eof = true,
            Line::Help { name, text } => {
                b.help.insert(name, text);
            }
            Line::Type { name, kind } => b.declare(name, kind, openmetrics),
            Line::Sample {
                name,
                labels,
                value,
            } => {
                b.samples += 1;
                if b.samples > sample_limit {
                    return Err(ParseError::SampleLimit {
                        limit: sample_limit,
                    });
                }
                b.sample(name, labels, value);
            }
        }
    }
    if openmetrics && !eof {
        return Err(ParseError::Syntax {
            line: text.lines().count(),
            problem: "no # EOF at the end",
        });
    }
    Ok(b.finish())
}

/// What a sample line is to its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The family's own name: a counter, gauge, untyped, state set or summary quantile line.
    Value,
    Bucket,
    Count,
    Sum,
    /// OpenMetrics `_total` of a counter, `_info` of an info metric.
    Suffixed,
    /// `_created` (a counter's, histogram's or summary's start time): not kept.
    Created,
}

const SUFFIXES: &[(&str, Role)] = &[
    ("_bucket", Role::Bucket),
    ("_count", Role::Count),
    ("_sum", Role::Sum),
    ("_total", Role::Suffixed),
    ("_info", Role::Suffixed),
    ("_created", Role::Created),
    ("_gcount", Role::Count),
    ("_gsum", Role::Sum),
];

fn takes(t: Type, role: Role, suffix: &str) -> bool {
    match t {
        Type::Counter => match role {
            Role::Value | Role::Created => true,
            Role::Suffixed => suffix == "_total",
            _ => false,
        },
        Type::Info => role == Role::Suffixed && suffix == "_info",
        Type::Histogram | Type::GaugeHistogram => {
            let gauge = t == Type::GaugeHistogram;
            match role {
                Role::Bucket => true,
                Role::Count => suffix == if gauge { "_gcount" } else { "_count" },
                Role::Sum => suffix == if gauge { "_gsum" } else { "_sum" },
                Role::Created => !gauge,
                _ => false,
            }
        }
        Type::Summary => {
            matches!(role, Role::Value | Role::Created)
                || (role == Role::Count && suffix == "_count")
                || (role == Role::Sum && suffix == "_sum")
        }
        Type::Gauge | Type::StateSet | Type::Untyped => role == Role::Value,
    }
}

/// A histogram or summary series being assembled from its lines.
#[derive(Debug, Default)]
struct Rows {
    /// (le or quantile, value).
    points: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: Option<f64>,
    /// An `le` or `quantile` that is not a number.
    bad: bool,
}

#[derive(Debug)]
struct Building<'a> {
    name: &'a str,
    kind: Type,
    /// The store's name: OpenMetrics counters get their `_total` back, info metrics their `_info`.
    store_name: String,
    floats: Vec<Series>,
    rows: Vec<(Vec<(String, String)>, Rows)>,
    /// Index in `rows` by the labels without `le` or `quantile`.
    row_of: HashMap<Vec<(String, String)>, usize>,
}

#[derive(Debug, Default)]
struct Builder<'a> {
    families: Vec<Building<'a>>,
    by_name: HashMap<&'a str, usize>,
    help: HashMap<&'a str, Cow<'a, str>>,
    samples: usize,
    /// `_total`, `_info` and `_created` lines belong to their family only in OpenMetrics.
    openmetrics: bool,
}

fn owned(labels: text::Labels<'_>) -> Vec<(String, String)> {
    labels
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_owned()))
        .collect()
}

impl<'a> Builder<'a> {
    fn declare(&mut self, name: &'a str, kind: Type, openmetrics: bool) {
        let store_name = match kind {
            Type::Counter if openmetrics && !name.ends_with("_total") => format!("{name}_total"),
            Type::Info => format!("{name}_info"),
            _ => name.to_string(),
        };
        let i = self.families.len();
        self.families.push(Building {
            name,
            kind,
            store_name,
            floats: Vec::new(),
            rows: Vec::new(),
            row_of: HashMap::new(),
        });
        // A second TYPE for a name starts it afresh; the first one's samples stay as they were.
        self.by_name.insert(name, i);
    }

    /// The family a sample name belongs to, with its role there; an undeclared name is an untyped
    /// family of its own.
    fn family_of(&mut self, name: &'a str) -> (usize, Role) {
        if let Some(&i) = self.by_name.get(name) {
            if takes(self.families[i].kind, Role::Value, "") {
                return (i, Role::Value);
            }
        }
        for (suffix, role) in SUFFIXES {
            if !self.openmetrics && matches!(role, Role::Suffixed | Role::Created) {
                continue;
            }
            if let Some(base) = name.strip_suffix(suffix) {
                if let Some(&i) = self.by_name.get(base) {
                    if takes(self.families[i].kind, *role, suffix) {
                        return (i, *role);
                    }
                }
            }
        }
        // Undeclared, or a name its declared family has no place for.
        match self.by_name.get(name) {
            Some(&i) if self.families[i].kind == Type::Untyped => (i, Role::Value),
            _ => {
                self.declare(name, Type::Untyped, false);
                (self.families.len() - 1, Role::Value)
            }
        }
    }

    fn sample(&mut self, name: &'a str, labels: text::Labels<'a>, value: f64) {
        let (i, role) = self.family_of(name);
        let f = &mut self.families[i];
        match (f.kind, role) {
            (_, Role::Created) => {}
            (Type::Histogram | Type::GaugeHistogram | Type::Summary, _) => {
                let point = match f.kind {
                    Type::Summary => "quantile",
                    _ => "le",
                };
                let mut at = None;
                let rest: text::Labels<'a> = labels
                    .into_iter()
                    .filter(|(k, v)| {
                        let is_point = *k == point;
                        if is_point {
                            at = Some(text::number(v));
                        }
                        !is_point
                    })
                    .collect();
                let key = owned(rest);
                let n = f.rows.len();
                let r = *f.row_of.entry(key.clone()).or_insert(n);
                if r == n {
                    f.rows.push((key, Rows::default()));
                }
                let rows = &mut f.rows[r].1;
                match role {
                    Role::Count => rows.count = Some(value),
                    Role::Sum => rows.sum = Some(value),
                    _ => match at {
                        Some(Some(p)) => rows.points.push((p, value)),
                        // A bucket without le, a quantile line without quantile, or either not a
                        // number.
                        _ => rows.bad = true,
                    },
                }
            }
            _ => f.floats.push(Series {
                labels: owned(labels),
                value: Sample::Float(value),
            }),
        }
    }

    /// The families in name order (so that output is deterministic), their rows checked.
    fn finish(self) -> Scraped {
        let mut out = Scraped {
            samples: self.samples,
            ..Scraped::default()
        };
        let mut families = self.families;
        families.sort_by(|a, b| a.store_name.cmp(&b.store_name));
        for f in families {
            let kind = match f.kind {
                Type::Counter => Kind::Counter,
                Type::Gauge | Type::Untyped | Type::StateSet | Type::Info => Kind::Gauge,
                Type::Histogram => Kind::Histogram,
                Type::Summary => Kind::Summary,
                Type::GaugeHistogram => {
                    out.unsupported += 1;
                    continue;
                }
            };
            if f.floats.is_empty() && f.rows.is_empty() {
                continue;
            }
            let mut series = f.floats;
            for (labels, rows) in f.rows {
                let value = match (rows.bad, kind) {
                    (true, _) => None,
                    (false, Kind::Histogram) => {
                        histogram(&rows.points, rows.count, rows.sum).map(Sample::Histogram)
                    }
                    (false, _) => summary(&rows.points, rows.count, rows.sum).map(Sample::Summary),
                };
                match value {
                    Some(value) => series.push(Series { labels, value }),
                    None => out.invalid += 1,
                }
            }
            out.families.push(Family {
                help: self
                    .help
                    .get(f.name)
                    .map(|h| h.to_string())
                    .unwrap_or_default(),
                name: f.store_name,
                kind,
                series,
            });
        }
        out
    }
}

/// Cumulative exposed buckets (`(le, count)`, in any order, `+Inf` optional when `_count` is given)
/// into the store's per-bucket counts over finite, ascending bounds. None when they make no sense.
pub fn histogram(
    buckets: &[(f64, f64)],
    count: Option<f64>,
    sum: Option<f64>,
) -> Option<Histogram> {
    let mut buckets = buckets.to_vec();
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
    let count = match (inf, count) {
        (Some(c), _) => c,
        (None, Some(c)) if c.is_finite() && c >= 0.0 => c,
        _ => return None,
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
        sum: sum.unwrap_or(0.0),
    })
}

/// Exposed quantiles (`(quantile, value)`, any order) into the store's summary. None when they
/// make no sense.
pub fn summary(quantiles: &[(f64, f64)], count: Option<f64>, sum: Option<f64>) -> Option<Summary> {
    let mut qs = quantiles.to_vec();
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
        count: count.unwrap_or(0.0),
        sum: sum.unwrap_or(0.0),
    })
}
