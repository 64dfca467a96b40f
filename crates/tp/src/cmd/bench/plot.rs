//! SVG plots (plotters' SVG backend: pure Rust, text left to the viewer's fonts, so it runs
//! headless with no font or system library).

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::cmd::CmdError;

/// A named curve.
pub type Series = (String, Vec<(f64, f64)>);

/// How an axis's tick labels read.
#[derive(Debug, Clone, Copy)]
enum Ticks {
    Plain,
    Bytes,
    /// x holds `1 / (1 - p)`; the label shows the percentile `p`.
    Percentile,
}

fn tick(t: Ticks, x: f64) -> String {
    match t {
        Ticks::Plain if x >= 100.0 || x == x.round() => format!("{x:.0}"),
        Ticks::Plain if x >= 1.0 => format!("{x:.1}"),
        Ticks::Plain => format!("{x:.2}"),
        Ticks::Bytes => super::throughput::size_label(x.round() as usize),
        Ticks::Percentile => {
            let p = 100.0 * (1.0 - 1.0 / x);
            let text = format!("{p:.4}");
            text.trim_end_matches('0').trim_end_matches('.').to_owned() + "%"
        }
    }
}

/// One chart of an image.
struct Panel<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    x_ticks: Ticks,
    y_log: bool,
    legend: SeriesLabelPosition,
    series: &'a [Series],
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn err(e: impl std::fmt::Display) -> CmdError {
    format!("plot: {e}").into()
}

fn bounds(series: &[Series], pick: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    let vals = series.iter().flat_map(|(_, p)| p.iter().map(&pick));
    let (lo, hi) = vals
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi { (1.0, 10.0) } else { (lo, hi) }
}

fn draw_panel<DB, YS>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    p: &Panel<'_>,
    y_spec: YS,
) -> Result<(), CmdError>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    YS: AsRangedCoord<Value = f64>,
    YS::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let (x0, x1) = bounds(p.series, |q| q.0);
    // sizes and consumer counts are powers of two; percentiles go by decades
    let base = if matches!(p.x_ticks, Ticks::Percentile) {
        10.0
    } else {
        2.0
    };
    let mut chart = ChartBuilder::on(area)
        .caption(p.title, ("sans-serif", 18))
        .margin(12)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d((x0..x1 * 1.001).log_scale().base(base), y_spec)
        .map_err(err)?;
    let xt = p.x_ticks;
    let x_fmt = move |x: &f64| tick(xt, *x);
    let y_fmt = |y: &f64| tick(Ticks::Plain, *y);
    chart
        .configure_mesh()
        .x_desc(p.x_desc)
        .y_desc(p.y_desc)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_labels(16)
        .y_labels(12)
        .draw()
        .map_err(err)?;
    for (i, (name, points)) in p.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|(x, y)| *x > 0.0 && y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&pt| Circle::new(pt, 3, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(p.legend.clone())
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn draw(path: &Path, size: (u32, u32), panels: &[Panel<'_>]) -> Result<(), CmdError> {
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, p) in areas.iter().zip(panels) {
        let (y0, y1) = bounds(p.series, |q| q.1);
        if p.y_log {
            draw_panel(area, p, (y0 / 1.5..y1 * 1.5).log_scale())?;
        } else {
            draw_panel(area, p, 0.0..y1 * 1.15)?;
        }
    }
    root.present().map_err(err)
}

/// GB/s against frame size.
pub fn sizes(path: &Path, series: &[(&str, Vec<(f64, f64)>)]) -> Result<(), CmdError> {
    let s: Vec<Series> = series
        .iter()
        .map(|(n, p)| ((*n).to_owned(), p.clone()))
        .collect();
    draw(
        path,
        (960, 560),
        &[Panel {
            title: "Payload throughput against frame size (every byte written and read)",
            x_desc: "frame size",
            y_desc: "GB/s",
            x_ticks: Ticks::Bytes,
            y_log: true,
            legend: SeriesLabelPosition::LowerRight,
            series: &s,
        }],
    )
}

/// Latency percentile curves (µs against percentile).
pub fn latency(path: &Path, series: &[Series]) -> Result<(), CmdError> {
    let s: Vec<Series> = series
        .iter()
        .map(|(n, pts)| {
            let p = pts
                .iter()
                .filter(|(p, _)| *p < 100.0)
                .map(|&(p, v)| (1.0 / (1.0 - p / 100.0), v))
                .collect();
            (n.clone(), p)
        })
        .collect();
    draw(
        path,
        (960, 600),
        &[Panel {
            title: "4 KiB one-way latency, commit -> accept, by percentile",
            x_desc: "percentile",
            y_desc: "latency (us)",
            x_ticks: Ticks::Percentile,
            y_log: true,
            legend: SeriesLabelPosition::UpperLeft,
            series: &s,
        }],
    )
}

/// Producer rate and per-consumer losses against the consumer count:
/// rows of (consumers, frames/s, lateness p99 µs, lost mean, lost max).
pub fn fanout(path: &Path, rows: &[(usize, f64, f64, f64, f64)]) -> Result<(), CmdError> {
    let col = |f: fn(&(usize, f64, f64, f64, f64)) -> f64| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r.0 as f64, f(r))).collect()
    };
    let rate = vec![("producer frames/s committed".to_owned(), col(|r| r.1))];
    // +1 so that zero losses show on a log axis
    let lost = vec![
        (
            "frames not accepted per consumer + 1, mean".to_owned(),
            col(|r| r.3 + 1.0),
        ),
        (
            "frames not accepted per consumer + 1, max".to_owned(),
            col(|r| r.4 + 1.0),
        ),
        ("producer commit lateness p99 (us)".to_owned(), col(|r| r.2)),
    ];
    draw(
        path,
        (1200, 520),
        &[
            Panel {
                title: "Producer rate (1 000 frames/s offered, 64 KiB)",
                x_desc: "consumers",
                y_desc: "frames/s",
                x_ticks: Ticks::Plain,
                y_log: false,
                legend: SeriesLabelPosition::LowerLeft,
                series: &rate,
            },
            Panel {
                title: "Per-consumer losses and producer lateness",
                x_desc: "consumers",
                y_desc: "frames / us",
                x_ticks: Ticks::Plain,
                y_log: true,
                legend: SeriesLabelPosition::UpperLeft,
                series: &lost,
            },
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks() {
        assert_eq!(tick(Ticks::Percentile, 2.0), "50%");
        assert_eq!(tick(Ticks::Percentile, 1000.0), "99.9%");
        assert_eq!(tick(Ticks::Bytes, 65536.0), "64 KiB");
        assert_eq!(tick(Ticks::Plain, 64.0), "64");
    }

    #[test]
    fn writes_svg_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.svg");
        sizes(&p, &[("a", vec![(1024.0, 1.0), (1_048_576.0, 10.0)])]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("<svg") && text.contains("GB/s"));
        let q = dir.path().join("f.svg");
        fanout(
            &q,
            &[(1, 1000.0, 5.0, 0.0, 0.0), (64, 990.0, 50.0, 3.0, 9.0)],
        )
        .unwrap();
        let l = dir.path().join("l.svg");
        latency(
            &l,
            &[(
                "x".into(),
                vec![(0.0, 1.0), (50.0, 2.0), (99.9, 9.0), (100.0, 20.0)],
            )],
        )
        .unwrap();
        assert!(std::fs::read_to_string(&l).unwrap().contains("99.9%"));
    }
}
