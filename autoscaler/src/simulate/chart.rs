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
    let peak = |values: &mut dyn Iterator<Item = &f64>| values.fold(1.0, |a: f64, b| a.max(*b));
    let grey = RGBColor(90, 90, 90);
    let orange = RGBColor(230, 120, 0);
    let mut upper = vec![
        Line::new(
            &ours.days,
            &ours.demand,
            grey,
            1,
            "demand (peak per column)",
        ),
        Line::new(
            &ours.days,
            &ours.capacity,
            BLUE,
            2,
            "ready capacity, policy (lowest per column)",
        ),
    ];
    let mut lower = vec![Line::new(
        &ours.days,
        &ours.replicas,
        BLUE,
        2,
        "policy (most per column)",
    )];
    if let Some(b) = &base {
        upper.push(Line::new(
            &b.days,
            &b.capacity,
            orange,
            1,
            "ready capacity, HPA baseline (lowest per column)",
        ));
        lower.push(Line::new(
            &b.days,
            &b.replicas,
            orange,
            1,
            "HPA baseline (most per column)",
        ));
    }
    let y_top = peak(&mut upper.iter().flat_map(|l| l.values)) * 1.05;
    panel(
        &top,
        "Demand and ready capacity",
        x_max,
        y_top,
        "demand (trace units)",
        &upper,
    )?;
    let r_max = peak(&mut lower.iter().flat_map(|l| l.values)) * 1.1;
    panel(&bottom, "Replicas", x_max, r_max, "replicas", &lower)?;
    root.present()?;
    Ok(())
}

/// One line of a panel, with its legend entry.
struct Line<'a> {
    days: &'a [f64],
    values: &'a [f64],
    color: RGBColor,
    width: u32,
    label: &'static str,
}

impl<'a> Line<'a> {
    fn new(
        days: &'a [f64],
        values: &'a [f64],
        color: RGBColor,
        width: u32,
        label: &'static str,
    ) -> Self {
        Line {
            days,
            values,
            color,
            width,
            label,
        }
    }
}

/// A panel of lines over days, with its legend in the upper left.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    x_max: f64,
    y_max: f64,
    y_desc: &str,
    lines: &[Line<'_>],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .caption(caption, ("sans-serif", 18))
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .x_desc("days since trace start")
        .y_desc(y_desc)
        .draw()?;
    for l in lines {
        let legend = l.color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                l.days.iter().copied().zip(l.values.iter().copied()),
                l.color.stroke_width(l.width),
            ))?
            .label(l.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], legend));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
