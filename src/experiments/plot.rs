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

/// Eigenvalue curves against training step, with the exact values dashed.
pub fn eigenvalue_curves(
    path: &Path,
    steps: &[u64],
    curves: &[Vec<f64>],
    exact: Option<&[f64]>,
    title: &str,
) -> Result<()> {
    ensure_font();
    let err = plot_err(path);
    if steps.is_empty() || curves.is_empty() {
        return Ok(());
    }
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    // The first stretch of a run is far off; scale the axis to the last 90 %.
    let skip = steps.len() / 10;
    for c in curves {
        for v in c.iter().skip(skip).filter(|v| v.is_finite()) {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    if let Some(e) = exact {
        for v in e {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    if !lo.is_finite() || !hi.is_finite() {
        return Ok(());
    }
    let pad = ((hi - lo) * 0.08).max(1e-6);
    let (x0, x1) = (
        steps[0] as f64,
        (*steps.last().unwrap_or(&1)).max(steps[0] + 1) as f64,
    );
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad))
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|x| step_label(*x))
        .y_desc("eigenvalue (EMA of diag Λ)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(&err)?;
    for (k, c) in curves.iter().enumerate() {
        let color = palette(k);
        chart
            .draw_series(LineSeries::new(
                steps
                    .iter()
                    .zip(c)
                    .filter(|(_, v)| v.is_finite())
                    .map(|(s, v)| (*s as f64, *v)),
                color.stroke_width(2),
            ))
            .map_err(&err)?;
    }
    if let Some(e) = exact {
        for v in e {
            let n = 60;
            let dashes = (0..n).map(|i| {
                let a = x0 + (x1 - x0) * i as f64 / n as f64;
                let b = a + (x1 - x0) * 0.5 / n as f64;
                PathElement::new(vec![(a, *v), (b, *v)], BLACK.stroke_width(1))
            });
            chart.draw_series(dashes).map_err(&err)?;
        }
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

/// One heat-map panel per eigenfunction on an n×n grid over [−extent, extent]²
/// (`values[k]` is row-major, y from top to bottom), each scaled to its own maximum.
pub fn eigenfunction_panels(
    path: &Path,
    values: &[Vec<f64>],
    n: usize,
    extent: f64,
    labels: &[String],
) -> Result<()> {
    ensure_font();
    let err = plot_err(path);
    let count = values.len();
    if count == 0 {
        return Ok(());
    }
    let cols = (count as f64).sqrt().ceil() as usize;
    let rows = count.div_ceil(cols);
    let cell = 240u32;
    let root = BitMapBackend::new(path, (cols as u32 * cell, rows as u32 * (cell + 24)))
        .into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let panels = root.split_evenly((rows, cols));
    for (k, panel) in panels.iter().enumerate().take(count) {
        let v = &values[k];
        let vmax = v.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
        let label = labels.get(k).cloned().unwrap_or_else(|| format!("v{k}"));
        let mut chart = ChartBuilder::on(panel)
            .caption(label, ("sans-serif", 14))
            .margin(4)
            .build_cartesian_2d(-extent..extent, -extent..extent)
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
    root.present().map_err(&err)?;
    Ok(())
}

/// Eigenfunctions of a 1D problem as curves.
pub fn eigenfunction_lines(
    path: &Path,
    xs: &[f64],
    values: &[Vec<f64>],
    labels: &[String],
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
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xs[0]..xs[xs.len() - 1], -m..m)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("x")
        .label_style(("sans-serif", 14))
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
