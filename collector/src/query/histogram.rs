//! `histogram_quantile` with Prometheus' semantics, over histogram series of the store.

use std::collections::BTreeMap;

use super::counter_increase;
use crate::store::{Millis, SeriesRef, Store};

/// Below this relative difference two cumulative bucket counts are taken as equal (floating point
/// noise), as Prometheus does.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// A bucket bound as a map key: bounds are finite (+Inf is added as `f64::INFINITY`, which
/// `total_cmp` orders last), never NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Le(f64);

impl Eq for Le {}

impl PartialOrd for Le {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Le {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Sums, per `le`, the reset-aware increase of each series' cumulative bucket counts over the window
/// (as `sum by (le) (increase(x_bucket[w]))` without extrapolation), then interpolates.
pub(super) fn quantile(
    store: &Store,
    phi: f64,
    series: &[SeriesRef],
    end: Millis,
    window: Millis,
) -> Option<f64> {
    quantile_of_sum(
        phi,
        series
            .iter()
            .filter_map(|s| bucket_increases(store, *s, end - window, end)),
    )
}

/// One histogram series' reset-aware increase per bucket over the samples with
/// `start <= t <= end`, as (upper bound, cumulative count) ascending, the last bound +Inf (what
/// `increase(x_bucket[w])` gives per `le`, without extrapolation). None with fewer than two samples.
pub(super) fn bucket_increases(
    store: &Store,
    s: SeriesRef,
    start: Millis,
    end: Millis,
) -> Option<Vec<(f64, f64)>> {
    let bounds = store.layout(s)?;
    // Cumulative counts per le of the previous and current sample, and increases so far.
    let n = bounds.len() + 1;
    let (mut prev, mut cur, mut inc) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut samples = 0usize;
    store.for_each_row(s, start, |t, row| {
        if t > end {
            return;
        }
        let mut acc = 0.0;
        for (i, b) in row[2..].iter().enumerate() {
            acc += b;
            cur[i] = acc;
        }
        if samples > 0 {
            for i in 0..n {
                inc[i] += counter_increase(prev[i], cur[i]);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
        samples += 1;
    });
    (samples >= 2).then(|| {
        inc.into_iter()
            .enumerate()
            .map(|(i, v)| (bounds.get(i).copied().unwrap_or(f64::INFINITY), v))
            .collect()
    })
}

/// The φ-quantile of histograms given as per-series (upper bound, cumulative count) buckets, summed
/// by `le` across them first (series with different bounds add up where their bounds agree, as
/// `sum by (le)` does). None without buckets or when [`bucket_quantile`] cannot say.
pub fn quantile_of_sum(
    phi: f64,
    per_series: impl IntoIterator<Item = Vec<(f64, f64)>>,
) -> Option<f64> {
    let mut by_le: BTreeMap<Le, f64> = BTreeMap::new();
    for buckets in per_series {
        for (le, v) in buckets {
            if le.is_nan() {
                continue;
            }
            *by_le.entry(Le(le)).or_default() += v;
        }
    }
    if by_le.is_empty() {
        return None;
    }
    let buckets: Vec<(f64, f64)> = by_le.into_iter().map(|(le, c)| (le.0, c)).collect();
    let q = bucket_quantile(phi, &buckets);
    (!q.is_nan()).then_some(q)
}

/// Prometheus' `bucketQuantile`: `buckets` are (upper bound, cumulative count), ascending by
/// bound, the last one +Inf. NaN when it cannot say (no +Inf bucket, fewer than two buckets, no
/// observations), -Inf/+Inf for φ below 0 or above 1.
pub fn bucket_quantile(phi: f64, buckets: &[(f64, f64)]) -> f64 {
    if phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    if buckets.len() < 2 || buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    ensure_monotonic(&mut b);
    let observations = b[b.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = phi * observations;
    let i = b[..b.len() - 1].partition_point(|x| x.1 < rank);
    if i == b.len() - 1 {
        return b[b.len() - 2].0;
    }
    if i == 0 && b[0].0 <= 0.0 {
        return b[0].0;
    }
    let (mut start, end, mut count) = (0.0, b[i].0, b[i].1);
    if i > 0 {
        start = b[i - 1].0;
        count -= b[i - 1].1;
        rank -= b[i - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Cumulative counts never decrease; tiny differences are floating point noise and are evened out
/// (`ensureMonotonicAndIgnoreSmallDeltas`).
fn ensure_monotonic(b: &mut [(f64, f64)]) {
    let mut prev = b[0].1;
    for x in b.iter_mut().skip(1) {
        let cur = x.1;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, SMALL_DELTA_TOLERANCE) || cur < prev {
            x.1 = prev;
            continue;
        }
        prev = cur;
    }
}

/// Prometheus' `almost.Equal`.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    let sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / sum.min(f64::MAX) < epsilon
}
