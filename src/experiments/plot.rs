//! Figures: eigenvalue curves (Fig. 1d/1e) and eigenfunction panels (Fig. 1c), as PNG.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::{Result, SpinError};

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");

fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> SpinError + '_ {
    move |e| SpinError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn palette(k: usize) -> RGBColor {
    const C: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = C[k % C.len()];
    RGBColor(r, g, b)
}

/// A tick label on a step axis: a whole number (steps are counted, never fractional), with
/// thousands as `k` from 10 000 on.
pub fn step_label(x: f64) -> String {
    let n = x.round() as i64;
    if n.abs() >= 10_000 && n % 1000 == 0 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// What an eigenvalue-curve figure shows.
pub struct Curves<'a> {
    /// The title (what, which run).
    pub title: &'a str,
    /// The y axis's label.
    pub y_label: &'a str,
    /// Steps of the EMA curves.
    pub steps: &'a [u64],
    /// One EMA curve per eigenfunction (lines).
    pub ema: &'a [Vec<f64>],
    /// What the lines are, for the legend.
    pub ema_label: &'a str,
    /// A held-out curve (dots): steps and the values at each, ascending.
    pub heldout: Option<(&'a [u64], &'a [Vec<f64>])>,
    /// What the dots are, for the legend.
    pub heldout_label: &'a str,
    /// Exact values (dashed), where known.
    pub exact: Option<&'a [f64]>,
}

/// The axes of [`eigenvalue_curves`]: the steps, and the values of the last 90 % of the run
/// (its first stretch is far off) with a margin; `None` without a finite value.
fn curve_axes(c: &Curves) -> Option<(f64, f64, std::ops::Range<f64>)> {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    let skip = c.steps.len() / 10;
    let mut widen = |v: f64| {
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    };
    for curve in c.ema {
        curve.iter().skip(skip).for_each(|v| widen(*v));
    }
    if let Some((steps, rows)) = c.heldout {
        let from = steps.len() / 10;
        rows.iter().skip(from).flatten().for_each(|v| widen(*v));
    }
    c.exact.into_iter().flatten().for_each(|v| widen(*v));
    if !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    let pad = ((hi - lo) * 0.08).max(1e-6);
    let x0 = c.steps[0] as f64;
    let x1 = (*c.steps.last().unwrap_or(&1)).max(c.steps[0] + 1) as f64;
    Some((x0, x1, (lo - pad)..(hi + pad)))
}

/// Eigenvalue curves against training step: the EMA lines, the held-out dots, the exact values
/// dashed, with a legend.
pub fn eigenvalue_curves(path: &Path, c: &Curves) -> Result<()> {
    ensure_font();
    let err = plot_err(path);
    if c.steps.is_empty() || c.ema.is_empty() {
        return Ok(());
    }
    let Some((x0, x1, y_range)) = curve_axes(c) else {
        return Ok(());
    };
    if !crate::spin::parallel::is_writer() {
        return Ok(());
    }
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(c.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y_range)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("training step")
        .x_label_formatter(&|x| step_label(*x))
        .y_desc(c.y_label)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(&err)?;
    // At most about 2000 points per line.
    let stride = c.steps.len().div_ceil(2000).max(1);
    for (k, curve) in c.ema.iter().enumerate() {
        let color = palette(k);
        let series = chart
            .draw_series(LineSeries::new(
                c.steps
                    .iter()
                    .zip(curve)
                    .step_by(stride)
                    .filter(|(_, v)| v.is_finite())
                    .map(|(s, v)| (*s as f64, *v)),
                color.stroke_width(2),
            ))
            .map_err(&err)?;
        if k == 0 {
            series.label(c.ema_label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    if let Some((steps, rows)) = c.heldout {
        for k in 0..rows.first().map_or(0, |r| r.len()) {
            let color = palette(k);
            let series = chart
                .draw_series(
                    steps
                        .iter()
                        .zip(rows)
                        .filter_map(|(s, r)| {
                            r.get(k).filter(|v| v.is_finite()).map(|v| (*s as f64, *v))
                        })
                        .map(move |p| Circle::new(p, 4, color.filled())),
                )
                .map_err(&err)?;
            if k == 0 {
                series
                    .label(c.heldout_label)
                    .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
            }
        }
    }
    if let Some(e) = c.exact {
        for (i, v) in e.iter().enumerate() {
            let n = 60;
            let dashes = (0..n).map(|j| {
                let a = x0 + (x1 - x0) * j as f64 / n as f64;
                let b = a + (x1 - x0) * 0.5 / n as f64;
                PathElement::new(vec![(a, *v), (b, *v)], BLACK.stroke_width(1))
            });
            let series = chart.draw_series(dashes).map_err(&err)?;
            if i == 0 {
                series.label("exact").legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 8, y)], BLACK.stroke_width(1))
                });
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// One panel of [`log_panels`]: named lines against training step on a logarithmic y axis.
pub struct LogPanel {
    /// The y axis's label.
    pub y_label: String,
    /// (name for the legend, points (step, value > 0)); values ≤ 0 or non-finite are left out.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Panels stacked vertically, each a set of lines on a logarithmic y axis over training step,
/// with a legend per panel (the run's health and each state's relative error).
pub fn log_panels(path: &Path, title: &str, panels: &[LogPanel]) -> Result<()> {
    ensure_font();
    let err = plot_err(path);
    let points = || panels.iter().flat_map(|p| &p.series).flat_map(|(_, v)| v);
    let (x0, x1) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| {
        (a.min(*x), b.max(*x))
    });
    if panels.is_empty() || !x0.is_finite() || !crate::spin::parallel::is_writer() {
        return Ok(());
    }
    let x1 = x1.max(x0 + 1.0);
    let root = BitMapBackend::new(path, (1000, 340 * panels.len() as u32 + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(&err)?;
    for (area, panel) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        let ok = |v: &f64| v.is_finite() && *v > 0.0;
        let (lo, hi) = panel
            .series
            .iter()
            .flat_map(|(_, v)| v)
            .filter(|(_, y)| ok(y))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, y)| {
                (a.min(*y), b.max(*y))
            });
        if !lo.is_finite() {
            continue;
        }
        let (lo, hi) = (lo / 1.5, (hi * 1.5).max(lo * 10.0));
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, (lo..hi).log_scale())
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("training step")
            .x_label_formatter(&|x| step_label(*x))
            .y_desc(panel.y_label.as_str())
            .y_label_formatter(&|y| format!("{y:.0e}"))
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .draw()
            .map_err(&err)?;
        for (k, (name, v)) in panel.series.iter().enumerate() {
            let color = palette(k);
            let stride = v.len().div_ceil(2000).max(1);
            chart
                .draw_series(LineSeries::new(
                    v.iter().step_by(stride).filter(|(_, y)| ok(y)).copied(),
                    color.stroke_width(2),
                ))
                .map_err(&err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(&err)?;
    }
    root.present().map_err(&err)?;
    Ok(())
}

/// Diverging colour for v in [−1, 1]: blue – white – red.
fn diverging(v: f64) -> RGBColor {
    let t = v.clamp(-1.0, 1.0);
    let mix = |a: f64, b: f64, s: f64| (a + (b - a) * s).round() as u8;
    if t >= 0.0 {
        RGBColor(
            mix(255.0, 180.0, t),
            mix(255.0, 4.0, t),
            mix(255.0, 38.0, t),
        )
    } else {
        let s = -t;
        RGBColor(
            mix(255.0, 59.0, s),
            mix(255.0, 76.0, s),
            mix(255.0, 192.0, s),
        )
    }
}

/// How heat-map panels are labelled.
pub struct Panels<'a> {
    /// The figure's title (what, which run).
    pub title: &'a str,
    /// One label per panel (eigenfunction k and its eigenvalue).
    pub labels: &'a [String],
    /// The axes' labels, with units.
    pub axes: (&'a str, &'a str),
    /// What the colour shows (the colour bar's label).
    pub colour: &'a str,
}

/// One heat-map panel per eigenfunction on an n×n grid over [−extent, extent]²
/// (`values[k]` is row-major, y from top to bottom), each scaled to its own maximum, with a
/// title, axes and a colour bar.
pub fn eigenfunction_panels(
    path: &Path,
    values: &[Vec<f64>],
    n: usize,
    extent: f64,
    p: &Panels,
) -> Result<()> {
    ensure_font();
    let err = plot_err(path);
    let count = values.len();
    if count == 0 {
        return Ok(());
    }
    let cols = (count as f64).sqrt().ceil() as usize;
    let rows = count.div_ceil(cols);
    let cell = 260u32;
    let (title_h, bar_w) = (40u32, 110u32);
    if !crate::spin::parallel::is_writer() {
        return Ok(());
    }
    let root = BitMapBackend::new(
        path,
        (
            cols as u32 * cell + bar_w,
            rows as u32 * (cell + 20) + title_h,
        ),
    )
    .into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let (top, body) = root.split_vertically(title_h);
    top.titled(p.title, ("sans-serif", 20)).map_err(&err)?;
    let (grid, bar) = body.split_horizontally(cols as u32 * cell);
    let panels = grid.split_evenly((rows, cols));
    let ticks = |v: &f64| {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    };
    for (k, panel) in panels.iter().enumerate().take(count) {
        let v = &values[k];
        let vmax = v.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
        let label = p.labels.get(k).cloned().unwrap_or_else(|| format!("v{k}"));
        let mut chart = ChartBuilder::on(panel)
            .caption(label, ("sans-serif", 14))
            .margin(4)
            .x_label_area_size(30)
            .y_label_area_size(44)
            .build_cartesian_2d(-extent..extent, -extent..extent)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(3)
            .y_labels(3)
            .x_label_formatter(&ticks)
            .y_label_formatter(&ticks)
            .x_desc(p.axes.0)
            .y_desc(p.axes.1)
            .label_style(("sans-serif", 11))
            .axis_desc_style(("sans-serif", 12))
            .draw()
            .map_err(&err)?;
        let h = 2.0 * extent / n as f64;
        chart
            .draw_series((0..n * n).map(|idx| {
                let (i, j) = (idx / n, idx % n);
                let x = -extent + j as f64 * h;
                let y = extent - (i + 1) as f64 * h;
                Rectangle::new([(x, y), (x + h, y + h)], diverging(v[idx] / vmax).filled())
            }))
            .map_err(&err)?;
    }
    colour_bar(&bar, p.colour).map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// A vertical diverging colour bar from −1 (blue) to +1 (red), labelled.
fn colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    label: &str,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(20)
        .margin_bottom(30)
        .margin_left(14)
        .margin_right(56)
        .y_label_area_size(0)
        .right_y_label_area_size(40)
        .build_cartesian_2d(0.0..1.0, -1.0..1.0)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(5)
        .y_desc(label)
        .label_style(("sans-serif", 11))
        .axis_desc_style(("sans-serif", 12))
        .draw()?;
    let steps = 100;
    chart.draw_series((0..steps).map(|i| {
        let a = -1.0 + 2.0 * i as f64 / steps as f64;
        let b = a + 2.0 / steps as f64;
        Rectangle::new([(0.0, a), (1.0, b)], diverging((a + b) / 2.0).filled())
    }))?;
    Ok(())
}

/// Eigenfunctions of a 1D problem as curves, with a title and a legend.
pub fn eigenfunction_lines(
    path: &Path,
    xs: &[f64],
    values: &[Vec<f64>],
    labels: &[String],
    title: &str,
) -> Result<()> {
    ensure_font();
    let err = plot_err(path);
    if xs.is_empty() || values.is_empty() {
        return Ok(());
    }
    let m = values
        .iter()
        .flatten()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-12)
        * 1.05;
    if !crate::spin::parallel::is_writer() {
        return Ok(());
    }
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(xs[0]..xs[xs.len() - 1], -m..m)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("x")
        .y_desc("v(x)")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(&err)?;
    for (k, v) in values.iter().enumerate() {
        let color = palette(k);
        chart
            .draw_series(LineSeries::new(
                xs.iter().copied().zip(v.iter().copied()),
                color.stroke_width(2),
            ))
            .map_err(&err)?
            .label(labels.get(k).cloned().unwrap_or_default())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// Text placed on a picture: (x, y) of its top-left corner in pixels, the text, its size.
pub type Label = (i32, i32, String, u32);

/// `picture` placed `left` pixels from the left and `top` from the top of a white canvas of
/// `size`, with `labels` written on it (titles, row and column labels): figures that are
/// pixels (frames) get their words this way.
pub fn annotate(
    picture: &image::RgbImage,
    size: (u32, u32),
    (left, top): (u32, u32),
    labels: &[Label],
) -> Result<image::RgbImage> {
    ensure_font();
    let mut canvas = image::RgbImage::from_pixel(size.0, size.1, image::Rgb([255, 255, 255]));
    image::imageops::overlay(&mut canvas, picture, left as i64, top as i64);
    let mut buf = canvas.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        for (x, y, text, px) in labels {
            root.draw_text(
                text,
                &("sans-serif", *px as f64).into_font().color(&BLACK),
                (*x, *y),
            )
            .map_err(|e| SpinError::Io {
                path: "figure".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        }
        root.present().map_err(|e| SpinError::Io {
            path: "figure".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    image::RgbImage::from_raw(size.0, size.1, buf).ok_or_else(|| SpinError::Io {
        path: "figure".into(),
        source: std::io::Error::other("canvas size"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn step_labels_are_integers() {
        use super::step_label;
        assert_eq!(step_label(2500.0), "2500");
        assert_eq!(step_label(1234.4), "1234");
        assert_eq!(step_label(60_000.0), "60k");
        assert_eq!(step_label(12_500.0), "12500");
        assert_eq!(step_label(0.0), "0");
    }
}
