//! The Prometheus text exposition (format 0.0.4) of the fresh series of the store.

use std::fmt::Write as _;

use crate::store::{Kind, LatestSample, Scale, Store};

/// Writes the latest value of every fresh series; families without one are left out.
pub fn render(store: &Store, out: &mut String) {
    for fam in store.families() {
        let d = store.family_desc(fam);
        let mut header = false;
        for s in store.family_series(fam) {
            if !store.is_fresh(s) {
                continue;
            }
            let (Some((_, sample)), Some(labels)) =
                (store.latest_sample(s), store.rendered_labels(s))
            else {
                continue;
            };
            if !header {
                let _ = writeln!(out, "# HELP {} {}", d.name, d.help);
                let _ = writeln!(out, "# TYPE {} {}", d.name, d.kind.as_str());
                header = true;
            }
            match sample {
                LatestSample::Int(raw, Scale::One) => {
                    let _ = writeln!(out, "{}{labels} {raw}", d.name);
                }
                LatestSample::Int(raw, scale) => {
                    let _ = writeln!(out, "{}{labels} {}", d.name, scale.apply(raw));
                }
                LatestSample::Float(v) => {
                    let _ = writeln!(out, "{}{labels} {}", d.name, Num(v));
                }
                LatestSample::Row(row, layout) => rows(out, &d.name, d.kind, labels, row, layout),
            }
        }
    }
}

/// A histogram's cumulative `_bucket{le}` lines, or a summary's `{quantile}` lines, then `_sum` and
/// `_count`.
fn rows(out: &mut String, name: &str, kind: Kind, labels: &str, row: &[f64], layout: &[f64]) {
    let (count, sum, fields) = (row[0], row[1], &row[2..]);
    match kind {
        Kind::Histogram => {
            let mut acc = 0.0;
            for (i, b) in fields.iter().enumerate() {
                acc += b;
                let le = layout.get(i).copied().unwrap_or(f64::INFINITY);
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    with_label(labels, "le", Num(le)),
                    Num(acc)
                );
            }
        }
        _ => {
            for (q, v) in layout.iter().zip(fields) {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    with_label(labels, "quantile", Num(*q)),
                    Num(*v)
                );
            }
        }
    }
    let _ = writeln!(out, "{name}_sum{labels} {}", Num(sum));
    let _ = writeln!(out, "{name}_count{labels} {}", Num(count));
}

/// `{a="b",k="v"}` from `{a="b"}` (or from no labels).
fn with_label(labels: &str, k: &str, v: Num) -> String {
    match labels.strip_suffix('}') {
        Some(open) => format!("{open},{k}=\"{v}\"}}"),
        None => format!("{{{k}=\"{v}\"}}"),
    }
}

/// A float as the text format spells it: `NaN`, `+Inf`, `-Inf`, or Rust's shortest round trip.
#[derive(Clone, Copy)]
pub struct Num(pub f64);

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            f64::INFINITY => f.write_str("+Inf"),
            f64::NEG_INFINITY => f.write_str("-Inf"),
            v => write!(f, "{v}"),
        }
    }
}
