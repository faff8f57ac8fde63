//! Reading the store: select series, latest values, counter rates and increases, histogram
//! quantiles. Used by the HTTP API and, in-process, by the autoscaler.
//!
//! Every window ends at an explicit `end` (the caller's `now`, or a series' newest sample) and holds
//! the samples with `end - window <= t <= end`. Rates are Prometheus' `rate` without extrapolation:
//! the reset-aware increase between the first and last sample of the window over the time between
//! them. There is one implementation of it, [`increase_of`], which every rate here and in the
//! autoscaler's sources goes through.

mod container;
mod histogram;
#[cfg(test)]
mod tests;

use crate::store::{Kind, Millis, SeriesRef, Store};

pub use container::Latest;
pub use histogram::{bucket_quantile, quantile_of_sum};

/// Which series to read: a family name, label matchers (equality) and an optional container.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selector<'a> {
    pub name: &'a str,
    pub matchers: &'a [(&'a str, &'a str)],
    /// Full container id the series are attributed to.
    pub container: Option<&'a str>,
}

/// Queries over a store the caller has locked for reading.
#[derive(Clone, Copy)]
pub struct Query<'a> {
    store: &'a Store,
}

impl<'a> Query<'a> {
    pub fn new(store: &'a Store) -> Self {
        Query { store }
    }

    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// Live series (fresh or not) matching `sel`, in creation order.
    pub fn select(&self, sel: &Selector<'_>) -> Vec<SeriesRef> {
        let Some(fam) = self.store.family_by_name(sel.name) else {
            return Vec::new();
        };
        let st = self.store;
        let matches = |s: &SeriesRef| {
            sel.container.is_none_or(|c| st.attribution(*s) == Some(c))
                && st.labels(*s).is_some_and(|l| {
                    sel.matchers
                        .iter()
                        .all(|(k, v)| l.get(k).unwrap_or("") == *v)
                })
        };
        match sel.container {
            // A container's own list is short; a family's may be long.
            Some(c) => st
                .container_series(c)
                .filter(|s| st.family_of(*s) == Some(fam))
                .filter(matches)
                .collect(),
            None => st.family_series(fam).filter(matches).collect(),
        }
    }

    pub fn kind(&self, s: SeriesRef) -> Option<Kind> {
        self.store
            .family_of(s)
            .map(|f| self.store.family_desc(f).kind)
    }

    /// The newest sample of a fresh series, in base units (a histogram or summary gives its count).
    pub fn latest(&self, s: SeriesRef) -> Option<(Millis, f64)> {
        if !self.store.is_fresh(s) {
            return None;
        }
        self.store.tail_points(s, 1).pop()
    }

    /// Samples at or after `since`, oldest first, in base units.
    pub fn points(&self, s: SeriesRef, since: Millis) -> Vec<(Millis, f64)> {
        let mut out = Vec::new();
        self.store.for_each_point(s, since, |t, v| out.push((t, v)));
        out
    }

    fn window(&self, s: SeriesRef, end: Millis, window: Millis) -> Vec<(Millis, f64)> {
        let mut out = Vec::new();
        self.store.for_each_point(s, end - window, |t, v| {
            if t <= end {
                out.push((t, v))
            }
        });
        out
    }

    /// Per-second rate of a counter over the window ending at `end`; None with fewer than two
    /// samples in it.
    pub fn rate(&self, s: SeriesRef, end: Millis, window: Millis) -> Option<f64> {
        rate_of(&self.window(s, end, window))
    }

    /// Reset-aware increase of a counter over the window ending at `end`.
    pub fn increase(&self, s: SeriesRef, end: Millis, window: Millis) -> Option<f64> {
        increase_of(&self.window(s, end, window)).map(|(inc, _)| inc)
    }

    /// Rate over the window that ends at the series' newest sample.
    pub fn rate_to_newest(&self, s: SeriesRef, window: Millis) -> Option<f64> {
        let (end, _) = self.store.tail_points(s, 1).pop()?;
        self.rate(s, end, window)
    }

    /// Rate between the two newest samples.
    pub fn last_rate(&self, s: SeriesRef) -> Option<f64> {
        rate_of(&self.store.tail_points(s, 2))
    }

    /// The φ-quantile of the observations the histogram series made over the window, summed across
    /// the series as `histogram_quantile(φ, sum by (le) (increase(x_bucket[window])))` does.
    pub fn histogram_quantile(
        &self,
        phi: f64,
        series: &[SeriesRef],
        end: Millis,
        window: Millis,
    ) -> Option<f64> {
        histogram::quantile(self.store, phi, series, end, window)
    }

    /// A histogram series' increase per bucket over the samples with `start <= t <= end`, as
    /// (upper bound, cumulative count) pairs ascending, the last +Inf; None for a series without
    /// buckets or with fewer than two samples in the range. [`quantile_of_sum`] of these (from one
    /// store or several) is [`Query::histogram_quantile`].
    pub fn bucket_increases(
        &self,
        s: SeriesRef,
        start: Millis,
        end: Millis,
    ) -> Option<Vec<(f64, f64)>> {
        histogram::bucket_increases(self.store, s, start, end)
    }

    /// Observations per second over the window, summed across histogram (or summary) series.
    pub fn histogram_count_rate(
        &self,
        series: &[SeriesRef],
        end: Millis,
        window: Millis,
    ) -> Option<f64> {
        self.row_field_rate(series, end, window, 0)
    }

    /// Sum of observed values per second over the window, summed across series; with the count
    /// rate it gives the mean observation.
    pub fn histogram_sum_rate(
        &self,
        series: &[SeriesRef],
        end: Millis,
        window: Millis,
    ) -> Option<f64> {
        self.row_field_rate(series, end, window, 1)
    }

    fn row_field_rate(
        &self,
        series: &[SeriesRef],
        end: Millis,
        window: Millis,
        field: usize,
    ) -> Option<f64> {
        let rates: Vec<f64> = series
            .iter()
            .filter_map(|s| {
                let mut pts = Vec::new();
                self.store.for_each_row(*s, end - window, |t, row| {
                    if t <= end {
                        pts.push((t, row[field]));
                    }
                });
                rate_of(&pts)
            })
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum())
    }
}

/// The increase between two consecutive counter samples; a decrease means the counter was reset
/// and counts from zero.
fn counter_increase(prev: f64, next: f64) -> f64 {
    if next >= prev {
        next - prev
    } else {
        next
    }
}

/// Reset-aware increase over `points` (oldest first) and the time they span; None with fewer than
/// two points or no time between them.
pub fn increase_of(points: &[(Millis, f64)]) -> Option<(f64, Millis)> {
    let (first, last) = (points.first()?, points.last()?);
    if last.0 <= first.0 {
        return None;
    }
    let inc = points
        .windows(2)
        .map(|w| counter_increase(w[0].1, w[1].1))
        .sum();
    Some((inc, last.0 - first.0))
}

/// Per-second rate of a counter over `points` (oldest first).
pub fn rate_of(points: &[(Millis, f64)]) -> Option<f64> {
    increase_of(points).map(|(inc, span)| inc / (span as f64 / 1000.0))
}

/// Per-second rates between consecutive counter samples, stamped with the later sample's time.
pub fn rates(points: &[(Millis, f64)]) -> impl Iterator<Item = (Millis, f64)> + '_ {
    points
        .windows(2)
        .filter_map(|w| rate_of(w).map(|r| (w[1].0, r)))
}
