//! Histogram and summary values as writers hand them to the store, and how they become one row of
//! floats per sample (see `chunk::MultiCodec`): `[count, sum, field...]`.

use std::sync::Arc;

/// One cumulative (since the series started) histogram with explicit buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds, finite and strictly ascending; the +Inf bucket is implicit.
    pub bounds: Arc<[f64]>,
    /// Observations per bucket, not cumulative across buckets: `bounds.len() + 1` entries, the last
    /// one above the highest bound. Floats, because sampled StatsD timings count fractionally.
    pub buckets: Vec<f64>,
    pub count: f64,
    pub sum: f64,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: Arc<[f64]>) -> Self {
        let n = bounds.len() + 1;
        Histogram {
            bounds,
            buckets: vec![0.0; n],
            count: 0.0,
            sum: 0.0,
        }
    }

    /// Counts one observation of `v` with weight `n` (1, or 1/sample-rate).
    pub fn observe(&mut self, v: f64, n: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.buckets[i] += n;
        self.count += n;
        self.sum += v * n;
    }
}

/// One summary: precomputed quantiles with the count and sum of observations.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Quantiles (0..=1), strictly ascending.
    pub quantiles: Arc<[f64]>,
    /// The value at each quantile.
    pub values: Vec<f64>,
    pub count: f64,
    pub sum: f64,
}

/// Why a histogram or summary cannot be stored.
pub(crate) fn check_layout(layout: &[f64], fields: usize, quantiles: bool) -> Result<(), String> {
    if fields != layout.len() + usize::from(!quantiles) {
        return Err(format!(
            "{fields} values for {} {}",
            layout.len(),
            if quantiles { "quantiles" } else { "bounds" }
        ));
    }
    if layout.iter().any(|b| !b.is_finite()) {
        return Err("bounds and quantiles must be finite".into());
    }
    if layout.windows(2).any(|w| w[0] >= w[1]) {
        return Err("bounds and quantiles must be strictly ascending".into());
    }
    if quantiles && layout.iter().any(|q| !(0.0..=1.0).contains(q)) {
        return Err("quantiles must be within 0..=1".into());
    }
    Ok(())
}

/// Fills `row` with `[count, sum, fields...]`.
pub(crate) fn fill_row(row: &mut [f64], count: f64, sum: f64, fields: &[f64]) {
    row[0] = count;
    row[1] = sum;
    row[2..].copy_from_slice(fields);
}
