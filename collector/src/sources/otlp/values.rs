//! Data point values as the store keeps them: explicit-bucket histograms checked, exponential
//! histograms converted to explicit buckets, summaries checked, and delta points accumulated into
//! cumulative values per series.
//!
//! **Exponential histograms.** A bucket of scale `s` and index `i` holds the values in
//! `(2^(i·2^-s), 2^((i+1)·2^-s)]`. Every bucket is merged exactly into the power-of-two bucket that
//! contains it (index `i >> s`, the OTel "downscale" to scale 0), and those become the explicit
//! buckets `le = 2^(j+1)`. A series' bounds are fixed by its first point: the powers of two its
//! populated buckets span, widened by [`WIDEN`] on each side and at most [`MAX_BOUNDS`] long; later
//! values below them count in the lowest bucket and above them in `+Inf`, so `le` counts stay exact
//! for every bound. The zero bucket and negative values count in the lowest bucket (they are below
//! every bound). Scales below 0 (buckets wider than a power of two) are counted in the power-of-two
//! bucket holding their upper end.

use std::sync::Arc;

use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, SummaryDataPoint,
};

use crate::store::{Histogram, Summary};

/// Powers of two added below and above the first point's range.
pub const WIDEN: i64 = 4;
/// Most bounds a converted exponential histogram gets.
pub const MAX_BOUNDS: usize = 64;
/// Scales the OTLP specification allows.
const SCALES: std::ops::RangeInclusive<i32> = -10..=20;

/// An explicit-bucket histogram point, checked.
pub fn histogram_of(p: &HistogramDataPoint) -> Result<Histogram, String> {
    let bounds = &p.explicit_bounds;
    if p.bucket_counts.is_empty() && bounds.is_empty() {
        // No buckets: count and sum only, as one +Inf bucket.
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

pub fn summary_of(p: &SummaryDataPoint) -> Result<Summary, String> {
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

/// The populated power-of-two buckets of an exponential histogram point as (index, count), index
/// ascending, and the count below every positive bucket (zero bucket and negatives).
fn power_of_two_buckets(
    p: &ExponentialHistogramDataPoint,
) -> Result<(Vec<(i64, u64)>, u64), String> {
    if !SCALES.contains(&p.scale) {
        return Err(format!("scale {} is outside -10..=20", p.scale));
    }
    let s = p.scale;
    let below = p
        .zero_count
        .saturating_add(p.negative.as_ref().map_or(0, |n| {
            n.bucket_counts
                .iter()
                .fold(0u64, |a, c| a.saturating_add(*c))
        }));
    // Index of the power-of-two bucket holding scale-`s` bucket `i`: for scales below 0 the one
    // holding its upper end 2^((i+1)·m), m = 2^-s.
    let to_j = |i: i64| -> i64 {
        if s >= 0 {
            i >> s
        } else {
            (i + 1) * (1i64 << -s) - 1
        }
    };
    let mut out: Vec<(i64, u64)> = Vec::new();
    if let Some(pos) = &p.positive {
        for (k, c) in pos.bucket_counts.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            let j = to_j(i64::from(pos.offset) + k as i64);
            match out.last_mut() {
                Some((lj, lc)) if *lj == j => *lc = lc.saturating_add(*c),
                _ => out.push((j, *c)),
            }
        }
    }
    Ok((out, below))
}

/// The bounds a series of exponential histograms gets from its first point: `2^(j+1)` for the
/// power-of-two buckets `j` it spans, widened by [`WIDEN`], at most [`MAX_BOUNDS`].
pub fn exponential_layout(p: &ExponentialHistogramDataPoint) -> Result<Arc<[f64]>, String> {
    let (buckets, _) = power_of_two_buckets(p)?;
    let (lo, hi) = match (buckets.first(), buckets.last()) {
        (Some((a, _)), Some((b, _))) => (a - WIDEN, b + WIDEN),
        _ => (-WIDEN, WIDEN),
    };
    // Keep the highest buckets when the span is too wide: the tail matters most for latency.
    let hi = hi.clamp(-1000, 1000);
    let lo = lo.max(hi - MAX_BOUNDS as i64 + 1).clamp(-1000, hi);
    Ok((lo..=hi)
        .map(|j| 2f64.powi((j + 1) as i32))
        .collect::<Vec<_>>()
        .into())
}

/// An exponential histogram point over `bounds` (from [`exponential_layout`]).
pub fn exponential_of(
    p: &ExponentialHistogramDataPoint,
    bounds: &Arc<[f64]>,
) -> Result<Histogram, String> {
    let (buckets, below) = power_of_two_buckets(p)?;
    let mut h = Histogram::new(bounds.clone());
    h.buckets[0] += below as f64;
    for (j, c) in buckets {
        // Power-of-two bucket j holds values up to 2^(j+1): the first bound at or above that.
        let upper = 2f64.powi((j + 1).clamp(-1074, 1024) as i32);
        let i = bounds.partition_point(|b| *b < upper);
        h.buckets[i] += c as f64;
    }
    h.count = p.count as f64;
    h.sum = p.sum.unwrap_or(0.0);
    Ok(h)
}

/// Adds a delta histogram to the running total; false (and nothing added) when the bounds differ.
pub fn add_histogram(total: &mut Histogram, delta: &Histogram) -> bool {
    if total.bounds[..] != delta.bounds[..] || total.buckets.len() != delta.buckets.len() {
        return false;
    }
    for (t, d) in total.buckets.iter_mut().zip(&delta.buckets) {
        *t += d;
    }
    total.count += delta.count;
    total.sum += delta.sum;
    true
}
