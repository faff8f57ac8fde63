//! SVG chart of a replay: demand against ready capacity on top, replica counts below, with the HPA
//! baseline drawn alongside when given.

use plotters::prelude::*;

use super::{Model, Replay, SimulateError};

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 900;
/// Long traces are drawn as at most this many buckets, keeping each bucket's extremes (peak demand,
/// lowest ready capacity, most replicas) so short overloads stay visible.
const MAX_POINTS: usize = 1500;

struct Series {
    days: Vec<f64>,
    demand: Vec<f64>,
    capacity: Vec<f64>,
    replicas: Vec<f64>,
}

fn bucket(replay: &Replay, model: &Model) -> Series {
    let start = replay.ticks[0].at;
    let per = replay.ticks.len().div_ceil(MAX_POINTS).max(1);
    let mut s = Series {
        days: vec![],
        demand: vec![],
        capacity: vec![],
        replicas: vec![],
    };
    for chunk in replay.ticks.chunks(per) {
        s.days
            .push(chunk[0].at.since(start).as_secs_f64() / 86_400.0);
        s.demand
            .push(chunk.iter().map(|t| t.demand).fold(0.0, f64::max));
        let min_ready = chunk.iter().map(|t| t.ready).min().unwrap_or(0);
        s.capacity
            .push(f64::from(min_ready) * model.capacity_per_replica);
        s.replicas.push(f64::from(
            chunk.iter().map(|t| t.replicas).max().unwrap_or(0),
        ));
    }
    s
}

/// Renders the chart as an SVG document.
pub fn draw_chart(
    title: &str,
    model: &Model,
    replay: &Replay,
    baseline: Option<&Replay>,
) -> Result<String, SimulateError> {
    let mut svg = String::new();
    draw(&mut svg, title, model, replay, baseline)
        .map_err(|e| SimulateError::Chart(e.to_string()))?;
    Ok(svg)
}

fn draw(
    svg: &mut String,
    title: &str,
    model: &Model,
    replay: &Replay,
    baseline: Option<&Replay>,
) -> Result<(), Box<dyn std::error::Error>> {
    let ours = bucket(replay, model);
    let base = baseline.map(|b| bucket(b, model));
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 24))?;
    let (top, bottom) = root.split_vertically(HEIGHT * 55 / 100);
    let x_max = ours.days.last().copied().unwrap_or(1.0).max(1e-3);
    let y_top = ours
        .demand
        .iter()
        .chain(&ours.capacity)
        .chain(base.iter().flat_map(|b| &b.capacity))
        .fold(1.0, |a: f64, b| a.max(*b))
        * 1.05;

    let mut chart = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .caption("Demand and ready capacity", ("sans-serif", 18))
        .build_cartesian_2d(0.0..x_max, 0.0..y_top)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .x_desc("days since trace start")
        .y_desc("demand (trace units)")
        .draw()?;
    let line = |xs: &[f64], ys: &[f64]| {
        xs.iter()
            .copied()
            .zip(ys.iter().copied())
            .collect::<Vec<_>>()
    };
    let grey = RGBColor(90, 90, 90);
    let orange = RGBColor(230, 120, 0);
    chart
        .draw_series(LineSeries::new(
            line(&ours.days, &ours.demand),
            grey.stroke_width(1),
        ))?
        .label("demand (peak per column)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            line(&ours.days, &ours.capacity),
            BLUE.stroke_width(2),
        ))?
        .label("ready capacity, policy (lowest per column)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    if let Some(b) = &base {
        chart
            .draw_series(LineSeries::new(
                line(&b.days, &b.capacity),
                orange.stroke_width(1),
            ))?
            .label("ready capacity, HPA baseline (lowest per column)")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], orange.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;

    let r_max = ours
        .replicas
        .iter()
        .chain(base.iter().flat_map(|b| &b.replicas))
        .fold(1.0, |a: f64, b| a.max(*b))
        * 1.1;
    let mut chart = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .caption("Replicas", ("sans-serif", 18))
        .build_cartesian_2d(0.0..x_max, 0.0..r_max)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .x_desc("days since trace start")
        .y_desc("replicas")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            line(&ours.days, &ours.replicas),
            BLUE.stroke_width(2),
        ))?
        .label("policy (most per column)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    if let Some(b) = &base {
        chart
            .draw_series(LineSeries::new(
                line(&b.days, &b.replicas),
                orange.stroke_width(1),
            ))?
            .label("HPA baseline (most per column)")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], orange.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
