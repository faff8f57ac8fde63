//! Predictive scaling: forecast each metric's demand one horizon ahead and turn it into replicas.
//!
//! Two deliberately simple, inspectable methods ([`PredictMethod`]):
//! - `seasonal` ([`forecast`]): seasonal naive (the demand one season before the target instant: a week if
//!   the history covers it, else a day, else no season), plus a linear trend fitted by least squares over
//!   the recent [`TREND_WINDOW`] of what the seasonal value misses, plus a safety margin (the 90th
//!   percentile of that fit's residuals). Meant for horizons of many minutes on periodic demand.
//! - `ramp` ([`ramp`]): the rise since the last recorded demand sample, extrapolated over the horizon;
//!   nothing while demand is flat or falling. Meant for a horizon equal to the actuation lag (replica
//!   start-up plus a tick), so that replicas asked for now are ready when the demand gets there.
//!
//! - `seasonal_rise` ([`seasonal_rise`], on top of either method): the rise demand made over the same
//!   stretch one period (a day, a week) earlier, added to today's level. A ramp sees a rise only once
//!   it has started, so a jump (demand arriving in steps) overloads for one start-up; when jumps come at
//!   the same time of day or week, the history announces them one horizon ahead.
//!
//! Replicas = ceil(forecast / demand one replica serves at target), kept at the current count when inside
//! the tolerance band, as a reactive vote would be. The caller takes max(reactive, predicted), so
//! prediction can only add replicas ahead of demand, never remove them.

use std::time::Duration;

use statrs::statistics::{Data, OrderStatistics};

use super::behavior::{History, LoadSample};
use super::calc::MetricDetail;
use super::model::{Policy, PredictMethod};
use super::time::Timestamp;

/// Trend fits use the last two hours: long enough to average out minute-level noise, short enough to
/// follow a ramp.
pub const TREND_WINDOW: Duration = Duration::from_secs(2 * 3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
/// Fewer points than this cannot support a trend line.
const MIN_POINTS: usize = 3;
const MARGIN_QUANTILE: f64 = 0.9;

/// Replicas needed one horizon ahead, the max over the metrics that can be forecast; `None` when no
/// metric has enough history.
pub fn predict(
    policy: &Policy,
    history: &History,
    metrics: &[MetricDetail],
    current: u32,
    now: Timestamp,
) -> Option<u32> {
    let target_at = now.plus(policy.predictive.horizon);
    metrics
        .iter()
        .filter_map(|m| {
            let (load, per_replica) = (m.load?, m.load_per_replica_at_target?);
            let series = history.load.get(&m.name)?;
            let latest = LoadSample {
                at: now,
                value: load,
            };
            let by_method = match policy.predictive.method {
                PredictMethod::Seasonal => forecast(series, latest, target_at),
                PredictMethod::Ramp => ramp(series, latest, target_at),
            };
            let by_season = seasonal_rise(
                series,
                latest,
                policy.predictive.horizon,
                &policy.predictive.seasonal_rise,
            );
            let forecast = match (by_method, by_season) {
                (Some(a), Some(b)) => a.max(b),
                (a, b) => a.or(b)?,
            };
            let ratio = forecast / (per_replica * f64::from(current));
            if policy.tolerance.contains(ratio) {
                Some(current)
            } else {
                Some(
                    (forecast / per_replica)
                        .ceil()
                        .clamp(0.0, f64::from(u32::MAX)) as u32,
                )
            }
        })
        .max()
}

/// Demand forecast at `target_at` from `series` (oldest first) and the latest observation.
pub fn forecast(series: &[LoadSample], latest: LoadSample, target_at: Timestamp) -> Option<f64> {
    let mut points: Vec<LoadSample> = series
        .iter()
        .copied()
        .filter(|s| s.at < latest.at)
        .collect();
    points.push(latest);
    let window_start = latest.at.minus(TREND_WINDOW);
    let first = points.first()?.at;
    // A season is usable when its lag reaches back into the history for the whole trend window.
    let season = [WEEK, DAY]
        .into_iter()
        .find(|s| first <= window_start.minus(*s));
    let recent: Vec<LoadSample> = points
        .iter()
        .copied()
        .filter(|p| p.at >= window_start)
        .collect();
    if recent.len() < MIN_POINTS {
        return None;
    }
    // What the trend has to explain: the demand itself, or what the seasonal value misses.
    let baseline = |at: Timestamp| season.map_or(0.0, |s| interpolate(&points, at.minus(s)));
    let xs: Vec<f64> = recent.iter().map(|p| hours(p.at, latest.at)).collect();
    let ys: Vec<f64> = recent.iter().map(|p| p.value - baseline(p.at)).collect();
    let (intercept, slope) = least_squares(&xs, &ys)?;
    let residuals: Vec<f64> = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| y - (intercept + slope * x))
        .collect();
    let margin = Data::new(residuals).quantile(MARGIN_QUANTILE).max(0.0);
    let trend = intercept + slope * hours(target_at, latest.at);
    Some((baseline(target_at) + trend + margin).max(0.0))
}

/// Demand at `target_at` if it keeps rising as it did since the last sample of `series` before `latest`;
/// `None` when it is not rising (or there is no earlier sample), so this method never holds replicas up.
pub fn ramp(series: &[LoadSample], latest: LoadSample, target_at: Timestamp) -> Option<f64> {
    let last = series.iter().rev().find(|s| s.at < latest.at)?;
    let rise = latest.value - last.value;
    (rise > 0.0)
        .then(|| latest.value + rise * hours(target_at, latest.at) / hours(latest.at, last.at))
}

/// Demand at the coming horizon as one period ago, brought to today's level: for each period P of
/// `seasons` that `series` covers, the last sample of today (at `s`, value `L`) plus how far demand rose
/// from `s − P` to the highest sample in `(s − P, now + horizon − P]`. Both ends are samples of `series`
/// (the level at `s − P` interpolated when samples drift), so a rise between two samples counts the same
/// whether demand went there as a line or as a jump: on a line it forecasts the demand at the next sample
/// time, which lies within the horizon. The largest over the periods; `None` when no period is covered or
/// demand did not rise in any, so this never holds replicas up by itself.
pub fn seasonal_rise(
    series: &[LoadSample],
    latest: LoadSample,
    horizon: Duration,
    seasons: &[Duration],
) -> Option<f64> {
    let series = &series[..series.partition_point(|s| s.at < latest.at)];
    let last = *series.last()?;
    let until = latest.at.plus(horizon);
    seasons
        .iter()
        .filter_map(|period| {
            let (from, to) = (last.at.minus(*period), until.minus(*period));
            if series[0].at > from {
                return None;
            }
            let then = interpolate(series, from);
            let peak = series[series.partition_point(|s| s.at <= from)..]
                .iter()
                .take_while(|s| s.at <= to)
                .map(|s| s.value)
                .fold(f64::NEG_INFINITY, f64::max);
            Some(peak - then)
        })
        .filter(|rise| *rise > 0.0)
        .fold(None, |most: Option<f64>, rise| {
            Some(most.map_or(rise, |m| m.max(rise)))
        })
        .map(|rise| last.value + rise)
}

fn hours(at: Timestamp, origin: Timestamp) -> f64 {
    (at.millis() - origin.millis()) as f64 / 3_600_000.0
}

/// Linear interpolation in a series sorted by time, held flat beyond its ends.
pub fn interpolate(points: &[LoadSample], at: Timestamp) -> f64 {
    let i = points.partition_point(|p| p.at <= at);
    match (i.checked_sub(1).map(|j| points[j]), points.get(i)) {
        (Some(a), Some(b)) => {
            let f = (at.millis() - a.at.millis()) as f64 / (b.at.millis() - a.at.millis()) as f64;
            a.value + f * (b.value - a.value)
        }
        (Some(p), None) => p.value,
        (None, Some(p)) => p.value,
        (None, None) => 0.0,
    }
}

/// Ordinary least squares y = a + b·x (statrs has no regression); `None` when x has no spread.
fn least_squares(xs: &[f64], ys: &[f64]) -> Option<(f64, f64)> {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx <= f64::EPSILON {
        return None;
    }
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = sxy / sxx;
    Some((my - slope * mx, slope))
}

#[cfg(test)]
mod tests;
