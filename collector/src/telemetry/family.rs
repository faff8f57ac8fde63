//! One way to declare the process's own metric families (name, kind, unit, HELP), for the two ways
//! they reach /metrics:
//! - recorded through the `metrics` facade: [`describe_all`] gives the recorder their HELP lines;
//! - rendered from a component's state at scrape time by an [`Exposition`] (Prometheus's "custom
//!   collector"), for series that must vanish with what they describe: the facade's Prometheus
//!   recorder can never forget a series, so a scaled target that is gone would keep its gauges forever.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, Weak};

use metrics_exporter_prometheus::PrometheusHandle;

pub use crate::store::Kind;

/// A metric family, declared once in a `const` table next to the code that emits it.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<metrics::Unit>,
    pub help: &'static str,
}

impl Family {
    pub const fn counter(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            kind: Kind::Counter,
            unit: None,
            help,
        }
    }

    pub const fn gauge(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            kind: Kind::Gauge,
            unit: None,
            help,
        }
    }

    /// A histogram of durations in seconds.
    pub const fn seconds(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            kind: Kind::Histogram,
            unit: Some(metrics::Unit::Seconds),
            help,
        }
    }

    /// Gives the `metrics` recorder this family's HELP line.
    pub fn describe(&self) {
        let (name, help) = (self.name, self.help);
        match (self.kind, self.unit) {
            (Kind::Counter, Some(u)) => metrics::describe_counter!(name, u, help),
            (Kind::Counter, None) => metrics::describe_counter!(name, help),
            (Kind::Gauge, Some(u)) => metrics::describe_gauge!(name, u, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            // The facade's histograms render as summaries unless given buckets.
            (Kind::Histogram | Kind::Summary, Some(u)) => {
                metrics::describe_histogram!(name, u, help)
            }
            (Kind::Histogram | Kind::Summary, None) => metrics::describe_histogram!(name, help),
        }
    }

    /// The `# HELP` and `# TYPE` lines, for an [`Exposition`].
    pub fn header(&self, out: &mut String) {
        let help = self.help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(out, "# HELP {} {help}", self.name);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind.as_str());
    }

    /// One sample line of a counter or gauge.
    pub fn sample(&self, out: &mut String, labels: &[(&str, &str)], value: f64) {
        line(out, self.name, "", labels, None, value);
    }
}

/// Describes every family of `families` to the `metrics` recorder.
pub fn describe_all(families: &[Family]) {
    for f in families {
        f.describe();
    }
}

/// Writes `name<suffix>{labels[,le="extra"]} value`.
fn line(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    le: Option<f64>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    let mut w = LabelWriter::new(out);
    for (k, v) in labels {
        w.label(k, v);
    }
    if let Some(le) = le {
        w.label("le", &number(le));
    }
    w.finish();
    out.push(' ');
    out.push_str(&number(value));
    out.push('\n');
}

/// A sample value or `le` bound as the text format writes it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

/// Writes a `{k="v",...}` label set with the text format's escapes (nothing when it is empty).
pub struct LabelWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> LabelWriter<'a> {
    pub fn new(out: &'a mut String) -> Self {
        LabelWriter { out, first: true }
    }

    pub fn label(&mut self, key: &str, value: &str) {
        self.out.push(if self.first { '{' } else { ',' });
        self.first = false;
        self.out.push_str(key);
        self.out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => self.out.push_str(r"\\"),
                '"' => self.out.push_str("\\\""),
                '\n' => self.out.push_str(r"\n"),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    pub fn finish(self) {
        if !self.first {
            self.out.push('}');
        }
    }
}

/// A histogram kept by an [`Exposition`]: counts per upper bound, cumulated when written.
#[derive(Debug, Clone)]
pub struct Buckets {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Buckets {
    pub fn new(bounds: &'static [f64]) -> Self {
        Buckets {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn record(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// The `_bucket`, `_sum` and `_count` lines of one label set of `family`.
    pub fn write(&self, family: &Family, out: &mut String, labels: &[(&str, &str)]) {
        let mut cumulated = 0;
        for (bound, n) in self.bounds.iter().zip(&self.counts) {
            cumulated += n;
            line(
                out,
                family.name,
                "_bucket",
                labels,
                Some(*bound),
                cumulated as f64,
            );
        }
        let (name, count) = (family.name, self.count as f64);
        line(out, name, "_bucket", labels, Some(f64::INFINITY), count);
        line(out, name, "_sum", labels, None, self.sum);
        line(out, name, "_count", labels, None, count);
    }
}

/// Families a component renders from its own state when /metrics is scraped.
pub trait Exposition: Send + Sync {
    /// Appends whole families (header and samples); writes nothing for a family without series.
    fn render(&self, out: &mut String);
}

static EXPOSITIONS: Mutex<Vec<Weak<dyn Exposition>>> = Mutex::new(Vec::new());

/// Adds `e` to /metrics for as long as it lives.
pub fn register_exposition(e: &Arc<dyn Exposition>) {
    EXPOSITIONS
        .lock()
        .expect("expositions lock")
        .push(Arc::downgrade(e));
}

/// The process's own metrics: the facade's recorder, then every live [`Exposition`].
pub fn render(handle: &PrometheusHandle, out: &mut String) {
    out.push_str(&handle.render());
    let live: Vec<Arc<dyn Exposition>> = {
        let mut all = EXPOSITIONS.lock().expect("expositions lock");
        all.retain(|w| w.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    };
    for e in live {
        e.render(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_escape_label_values_and_histograms_cumulate_with_an_inf_bucket() {
        let f = Family::seconds("t_seconds", "A time.\nTwo lines.");
        let mut out = String::new();
        f.header(&mut out);
        let mut b = Buckets::new(&[0.1, 1.0]);
        for v in [0.0625, 0.5, 0.75, 9.0] {
            b.record(v);
        }
        b.write(&f, &mut out, &[("a", "x\"y\\z\nw")]);
        let g = Family::gauge("g", "G.");
        g.sample(&mut out, &[], f64::NAN);
        g.sample(&mut out, &[("k", "v")], f64::NEG_INFINITY);
        assert_eq!(
            out,
            concat!(
                "# HELP t_seconds A time.\\nTwo lines.\n",
                "# TYPE t_seconds histogram\n",
                "t_seconds_bucket{a=\"x\\\"y\\\\z\\nw\",le=\"0.1\"} 1\n",
                "t_seconds_bucket{a=\"x\\\"y\\\\z\\nw\",le=\"1\"} 3\n",
                "t_seconds_bucket{a=\"x\\\"y\\\\z\\nw\",le=\"+Inf\"} 4\n",
                "t_seconds_sum{a=\"x\\\"y\\\\z\\nw\"} 10.3125\n",
                "t_seconds_count{a=\"x\\\"y\\\\z\\nw\"} 4\n",
                "g NaN\n",
                "g{k=\"v\"} -Inf\n",
            )
        );
    }
}
