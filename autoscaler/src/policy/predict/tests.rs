use super::*;
use crate::policy::calc::MetricStatus;
use crate::policy::model::Target;
use crate::policy::testutil::policy;

const T0: i64 = 1_767_225_600_000;

fn at_min(m: i64) -> Timestamp {
    Timestamp(T0 + m * 60_000)
}

/// Samples every 5 minutes from minute `from` to `to` (exclusive) of `f(minute)`.
fn series(from: i64, to: i64, f: impl Fn(i64) -> f64) -> Vec<LoadSample> {
    (from..to)
        .step_by(5)
        .map(|m| LoadSample {
            at: at_min(m),
            value: f(m),
        })
        .collect()
}

#[test]
fn linear_ramp_is_extrapolated_exactly() {
    let s = series(0, 120, |m| 100.0 + m as f64); // +60 per hour
    let latest = LoadSample {
        at: at_min(120),
        value: 220.0,
    };
    let f = forecast(&s, latest, at_min(130)).unwrap();
    assert!((f - 230.0).abs() < 1e-6, "{f}");
}

#[test]
fn daily_season_is_used_when_covered() {
    let daily = |m: i64| 100.0 + 50.0 * ((m % 1440) as f64 / 1440.0 * std::f64::consts::TAU).sin();
    let s = series(0, 2 * 1440, daily);
    let now = 2 * 1440;
    let f = forecast(
        &s,
        LoadSample {
            at: at_min(now),
            value: daily(now),
        },
        at_min(now + 360),
    )
    .unwrap();
    // Six hours ahead on a sine a linear trend would miss badly; yesterday's value gets it.
    assert!(
        (f - daily(now + 360)).abs() < 1.0,
        "forecast {f}, truth {}",
        daily(now + 360)
    );
    let trend_only = forecast(
        &s[s.len() - 20..],
        LoadSample {
            at: at_min(now),
            value: daily(now),
        },
        at_min(now + 360),
    );
    assert!(
        (trend_only.unwrap() - daily(now + 360)).abs() > 10.0,
        "without a season the sine is missed"
    );
}

#[test]
fn weekly_season_wins_over_daily_when_covered() {
    // Weekdays at 100, the 8th day (same weekday as day 1) at 300: only a weekly lag can know.
    let weekly = |m: i64| if (m / 1440) % 7 == 0 { 300.0 } else { 100.0 };
    let s = series(0, 7 * 1440 + 600, weekly);
    let now = 7 * 1440 + 600;
    let f = forecast(
        &s,
        LoadSample {
            at: at_min(now),
            value: weekly(now),
        },
        at_min(now + 10),
    )
    .unwrap();
    assert!((f - 300.0).abs() < 1.0, "{f}");
}

#[test]
fn noise_adds_a_margin() {
    let noisy = |m: i64| 100.0 + if (m / 5) % 2 == 0 { 10.0 } else { -10.0 };
    let s = series(0, 120, noisy);
    let f = forecast(
        &s,
        LoadSample {
            at: at_min(120),
            value: noisy(120),
        },
        at_min(130),
    )
    .unwrap();
    assert!(
        f > 105.0,
        "a positive residual quantile must lift the forecast: {f}"
    );
}

#[test]
fn too_little_history_gives_nothing() {
    let s = series(100, 105, |_| 1.0);
    assert_eq!(
        forecast(
            &s,
            LoadSample {
                at: at_min(110),
                value: 1.0
            },
            at_min(120)
        ),
        None
    );
}

#[test]
fn forecast_becomes_replicas_with_tolerance() {
    let mut p = policy(1, 50, &[("rps", Target::Average(10.0))]);
    p.predictive.enabled = true;
    let mut h = History::default();
    h.load
        .insert("rps".into(), series(0, 120, |m| 100.0 + m as f64));
    let detail = |load: f64| MetricDetail {
        status: crate::policy::calc::MetricStatus::Steady,
        load: Some(load),
        load_per_replica_at_target: Some(10.0),
        ..MetricDetail::unread("rps", "average", 10.0)
    };
    // 10 minutes ahead on +1/minute from 220: 230, i.e. ceil(23.0...) replicas of 10 (the fit is not
    // bit-exact, so ask for a count away from an integer boundary: 230 / 9 = 25.6 -> 26).
    let per9 = |load| MetricDetail {
        load_per_replica_at_target: Some(9.0),
        ..detail(load)
    };
    p.tolerance = crate::policy::model::Tolerance::symmetric(0.0);
    assert_eq!(predict(&p, &h, &[per9(220.0)], 22, at_min(120)), Some(26));
    // 230 over 25 replicas of 9 is a ratio of 1.022: inside a 0.1 tolerance, so keep 25.
    p.tolerance = crate::policy::model::Tolerance::symmetric(0.1);
    assert_eq!(predict(&p, &h, &[per9(220.0)], 25, at_min(120)), Some(25));
    assert_eq!(predict(&p, &h, &[per9(220.0)], 22, at_min(120)), Some(26));
}

#[test]
fn ramp_extrapolates_the_current_rise_over_the_horizon() {
    let s = series(0, 10, |m| 100.0 + m as f64); // samples at minutes 0 and 5
                                                 // From 105 at minute 5 to 111 at minute 8: +2 per minute, 90 s ahead.
    let latest = LoadSample {
        at: at_min(8),
        value: 111.0,
    };
    let f = ramp(&s, latest, latest.at.plus(Duration::from_secs(90))).unwrap();
    assert!((f - 114.0).abs() < 1e-9, "{f}");
}

#[test]
fn ramp_says_nothing_while_demand_is_flat_or_falling_or_unknown() {
    let s = series(0, 10, |_| 100.0);
    let at = |m, value| LoadSample {
        at: at_min(m),
        value,
    };
    assert_eq!(ramp(&s, at(8, 100.0), at_min(10)), None, "flat");
    assert_eq!(ramp(&s, at(8, 90.0), at_min(10)), None, "falling");
    assert_eq!(ramp(&[], at(8, 150.0), at_min(10)), None, "no history");
    // A sample at the same instant as the latest is not an earlier one.
    assert_eq!(ramp(&s[..1], at(0, 150.0), at_min(2)), None);
}

#[test]
fn ramp_method_pre_scales_only_ahead_of_a_rise() {
    let mut p = policy(1, 100, &[("rps", Target::Value(10.0))]);
    p.predictive.enabled = true;
    p.predictive.method = PredictMethod::Ramp;
    p.predictive.horizon = Duration::from_secs(120);
    let mut history = History::default();
    history.load.insert("rps".into(), series(0, 5, |_| 100.0));
    let detail = |load: f64| MetricDetail {
        current: Some(load),
        ratio: Some(1.0),
        proposal: Some(10),
        status: MetricStatus::WithinTolerance,
        counted: 10,
        load: Some(load),
        load_per_replica_at_target: Some(10.0),
        ..MetricDetail::unread("rps", "value", 10.0)
    };
    // 100 at minute 0, 150 at minute 5: +10 per minute, 170 two minutes ahead: 17 replicas.
    assert_eq!(
        predict(&p, &history, &[detail(150.0)], 15, at_min(5)),
        Some(17)
    );
    assert_eq!(predict(&p, &history, &[detail(90.0)], 9, at_min(3)), None);
}

const DAY_MIN: i64 = 1440;

/// Demand in steps: 100, and 300 from 09:00 to 17:00 every day, sampled every 5 minutes.
fn office_hours(m: i64) -> f64 {
    if (540..1020).contains(&(m % DAY_MIN)) {
        300.0
    } else {
        100.0
    }
}

fn rise(
    s: &[LoadSample],
    now: i64,
    value: f64,
    horizon_s: u64,
    seasons: &[Duration],
) -> Option<f64> {
    seasonal_rise(
        s,
        LoadSample {
            at: at_min(now),
            value,
        },
        Duration::from_secs(horizon_s),
        seasons,
    )
}

#[test]
fn seasonal_rise_announces_yesterdays_jump_one_horizon_ahead() {
    // Three days of samples: the function reads only those before `now`.
    let s = series(0, 3 * DAY_MIN, office_hours);
    let day = [Duration::from_secs(86_400)];
    // 08:59 on day 2: yesterday the jump to 300 came one minute later, inside a 75 s horizon.
    let now = 2 * DAY_MIN + 539;
    assert_eq!(rise(&s, now, 100.0, 75, &day), Some(300.0));
    // Two minutes before: the jump is beyond the horizon.
    assert_eq!(rise(&s, now - 1, 100.0, 75, &day), None);
    // Flat, or falling (17:00): no rise, no forecast.
    assert_eq!(rise(&s, 2 * DAY_MIN + 700, 300.0, 75, &day), None);
    assert_eq!(rise(&s, 2 * DAY_MIN + 1019, 300.0, 75, &day), None);
    // A period the history does not reach back to is skipped.
    let week = [Duration::from_secs(7 * 86_400)];
    assert_eq!(rise(&s, now, 100.0, 75, &week), None);
    assert_eq!(rise(&s, now, 100.0, 75, &[week[0], day[0]]), Some(300.0));
    // Samples newer than the latest observation are not read (they cannot exist in a live history).
    assert_eq!(rise(&s, DAY_MIN - 1, 100.0, 75, &day), None);
}

#[test]
fn seasonal_rise_is_added_to_todays_level() {
    // Today runs 50 above yesterday: the jump of 200 lands at 350.
    let s = series(0, 2 * DAY_MIN, |m| {
        office_hours(m) + if m >= DAY_MIN { 50.0 } else { 0.0 }
    });
    let day = [Duration::from_secs(86_400)];
    assert_eq!(rise(&s, DAY_MIN + 539, 150.0, 75, &day), Some(350.0));
}

#[test]
fn on_a_line_seasonal_rise_forecasts_the_next_sample_not_a_whole_rise_more() {
    // Demand rising 10 a minute, yesterday and today: 4 minutes after a sample, the forecast is the next
    // sample's demand (1 minute ahead), not the current demand plus a whole 5-minute rise.
    let s = series(0, DAY_MIN + 5, |m| (m % DAY_MIN) as f64 * 10.0);
    let day = [Duration::from_secs(86_400)];
    let now = DAY_MIN + 9; // last sample at DAY_MIN + 5 (50); yesterday's at 10 was 100
    assert_eq!(rise(&s, now, 90.0, 75, &day), Some(100.0));
}

#[test]
fn seasonal_rise_takes_the_largest_rise_over_its_periods() {
    // Yesterday's 08:00 rose by 50, last week's by 200.
    let f = |m: i64| match (m / DAY_MIN, m % DAY_MIN) {
        (0, 480..) => 300.0,
        (6, 480..) => 150.0,
        _ => 100.0,
    };
    let s = series(0, 8 * DAY_MIN, f);
    let seasons = [Duration::from_secs(86_400), Duration::from_secs(7 * 86_400)];
    assert_eq!(
        rise(&s, 7 * DAY_MIN + 479, 100.0, 75, &seasons),
        Some(300.0)
    );
    assert_eq!(
        rise(&s, 7 * DAY_MIN + 479, 100.0, 75, &seasons[..1]),
        Some(150.0)
    );
}

proptest::proptest! {
    /// Whatever the history, the forecast lies above today's last sample by at most the history's spread,
    /// and there is none without periods.
    #[test]
    fn seasonal_rise_is_bounded(
        values in proptest::collection::vec(0.0f64..1e6, 2..700),
        now_step in 0usize..700,
        current in 0.0f64..1e6,
        horizon_s in 1u64..3600,
    ) {
        let s: Vec<LoadSample> = values
            .iter()
            .enumerate()
            .map(|(i, v)| LoadSample { at: at_min(5 * i as i64), value: *v })
            .collect();
        let now = 5 * now_step as i64 + 2;
        let seasons = [Duration::from_secs(86_400), Duration::from_secs(3_600)];
        let spread = values.iter().cloned().fold(0.0, f64::max) - values.iter().cloned().fold(f64::INFINITY, f64::min);
        let last = s.iter().rev().find(|p| p.at < at_min(now)).map(|p| p.value);
        if let Some(f) = rise(&s, now, current, horizon_s, &seasons) {
            let last = last.unwrap();
            proptest::prop_assert!(f > last && f <= last + spread, "{f} {last} {spread}");
        }
        proptest::prop_assert_eq!(rise(&s, now, current, horizon_s, &[]), None);
    }
}
