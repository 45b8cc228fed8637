//! The figures of a Schrödinger run: the eigenvalue curves (Fig. 1d/1e) and the learned
//! eigenfunctions on a slice through the box (Fig. 1c).

use std::path::Path;

use super::SchrodingerConfig;
use crate::error::Result;
use crate::experiments::plot;
use crate::spin::{Evaluation, Trainer};

/// Grid points of the plotting slice: an n×n grid over [−e, e]² (other coordinates 0), rows from
/// the top (y = e) down; in 1D, n points on [−e, e].
pub fn slice_points(dim: usize, n: usize, extent: f64) -> Vec<f64> {
    let h = 2.0 * extent / n as f64;
    let mut pts = Vec::new();
    if dim == 1 {
        for j in 0..n {
            pts.push(-extent + (j as f64 + 0.5) * h);
        }
        return pts;
    }
    for i in 0..n {
        for j in 0..n {
            let mut p = vec![0.0; dim];
            p[0] = -extent + (j as f64 + 0.5) * h;
            p[1] = extent - (i as f64 + 0.5) * h;
            pts.extend(p);
        }
    }
    pts
}

/// `eigenvalues.png`: the whole run's EMA curves (`eigenvalues.csv`) and held-out values
/// (`heldout.csv`), with the exact values dashed when known.
pub fn curves(out: &Path, cfg: &SchrodingerConfig, exact: Option<&[f64]>) -> Result<()> {
    let n = cfg.neig;
    let (steps, rows) = crate::experiments::training::read_rows(&out.join("eigenvalues.csv"));
    // Columns after the step: loss, diag Λ (N), its EMA (N), …
    let ema: Vec<Vec<f64>> = (0..n)
        .map(|k| {
            rows.iter()
                .map(|r| r.get(1 + n + k).copied().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    let (hsteps, held) = crate::experiments::training::read_rows(&out.join("heldout.csv"));
    let title = format!(
        "{} in {}D{}, box ±{}, N = {}: eigenvalues during training",
        cfg.potential,
        cfg.dim,
        if cfg.particles > 1 {
            format!(" ({} particles)", cfg.particles)
        } else {
            String::new()
        },
        cfg.half_width,
        n
    );
    plot::eigenvalue_curves(
        &out.join("eigenvalues.png"),
        &plot::Curves {
            title: &title,
            y_label: "eigenvalue",
            steps: &steps,
            ema: &ema,
            ema_label: "EMA of the minibatch diag Λ (rate 0.01), one colour per eigenfunction",
            heldout: (!hsteps.is_empty()).then_some((&hsteps[..], &held[..])),
            heldout_label: "Ritz values on a fixed held-out sample (4096 points)",
            exact,
        },
    )
}

/// `health.png`: the run's health from `eigenvalues.csv` — tr Σ̂ / N, cond Σ̂, Σ̄'s correlation
/// condition, the largest importance weight's share × batch and ‖g‖ on one log axis — and,
/// where exact values are known, each state's relative error |EMA − exact| / |exact| (the
/// EMA sorted ascending against the exact values) on a log axis, where a swap of two states or a
/// state lost shows as a jump that the eigenvalue curves squash into one band.
pub fn health(out: &Path, cfg: &SchrodingerConfig, exact: Option<&[f64]>) -> Result<()> {
    let n = cfg.neig;
    let (steps, rows) = crate::experiments::training::read_rows(&out.join("eigenvalues.csv"));
    // Columns after the step: loss, diag Λ (N), EMA (N), diag Σ̄ (N), correlation condition,
    // then the health columns.
    let base = 1 + 3 * n + 1;
    let col = |c: usize, scale: f64| -> Vec<(f64, f64)> {
        steps
            .iter()
            .zip(&rows)
            .filter_map(|(s, r)| r.get(c).map(|v| (*s as f64, v * scale)))
            .collect()
    };
    let names = crate::experiments::training::HEALTH_COLUMNS;
    let mut panels = vec![plot::LogPanel {
        y_label: "value (log scale)".into(),
        series: vec![
            ("tr Σ̂ / N (output scale²)".into(), col(base, 1.0 / n as f64)),
            ("cond Σ̂".into(), col(base + 1, 1.0)),
            ("correlation condition of Σ̄".into(), col(base - 1, 1.0)),
            (
                "largest weight's share × batch".into(),
                col(base + 2, cfg.train.batch as f64),
            ),
            ("‖g‖".into(), col(base + 3, 1.0)),
        ],
    }];
    debug_assert_eq!(names[0], "sigma_trace");
    if let Some(exact) = exact {
        let mut errs = vec![Vec::new(); n.min(exact.len())];
        for (s, r) in steps.iter().zip(&rows) {
            let Some(ema) = r.get(1 + n..1 + 2 * n) else {
                continue;
            };
            let mut sorted = ema.to_vec();
            sorted.sort_by(f64::total_cmp);
            for (k, e) in errs.iter_mut().enumerate() {
                e.push((*s as f64, ((sorted[k] - exact[k]) / exact[k]).abs()));
            }
        }
        panels.push(plot::LogPanel {
            y_label: "relative error of the EMA".into(),
            series: errs
                .into_iter()
                .enumerate()
                .map(|(k, v)| (format!("state {k}"), v))
                .collect(),
        });
    }
    let title = format!(
        "{} in {}D, N = {}, seed {}: the run's health",
        cfg.potential, cfg.dim, n, cfg.train.seed
    );
    plot::log_panels(&out.join("health.png"), &title, &panels)
}

/// `eigenfunctions.png`: v = L⁻¹u (L from the evaluation's Σ) on the z = 0 slice, one panel per
/// eigenfunction (a line each in 1D).
pub fn eigenfunctions(
    out: &Path,
    cfg: &SchrodingerConfig,
    trainer: &Trainer,
    eval: &Evaluation,
) -> Result<()> {
    let n = cfg.neig;
    let grid_n = if cfg.dim == 1 { 400 } else { 96 };
    let pts = slice_points(cfg.dim, grid_n, cfg.plot_extent);
    let v = trainer.eigenfunctions(&pts, &eval.sigma)?;
    let count = pts.len() / cfg.dim;
    let per_fn: Vec<Vec<f64>> = (0..n)
        .map(|k| (0..count).map(|c| v[c * n + k]).collect())
        .collect();
    let labels: Vec<String> = (0..n)
        .map(|k| format!("v{k}  λ = {:.4}", eval.lambda_diag[k]))
        .collect();
    let path = out.join("eigenfunctions.png");
    let particles_1d = cfg.particles > 1 && cfg.particle_dim() == 1;
    let title = if cfg.particles > 1 && cfg.particle_dim() > 1 {
        format!(
            "{}: v = L⁻¹u over particle 0's (x, y), others at 0",
            cfg.potential
        )
    } else if cfg.particles > 1 {
        format!(
            "{}, {} particles in {}D: learned eigenfunctions v = L⁻¹u over (x₀, x₁){}",
            cfg.potential,
            cfg.particles,
            cfg.particle_dim(),
            if cfg.dim == 3 { " with x₂ = 0" } else { "" }
        )
    } else {
        format!(
            "{} in {}D: learned eigenfunctions v = L⁻¹u{}",
            cfg.potential,
            cfg.dim,
            if cfg.dim == 3 {
                " on the plane z = 0"
            } else {
                ""
            }
        )
    };
    if cfg.dim == 1 {
        plot::eigenfunction_lines(&path, &pts, &per_fn, &labels, &title)
    } else {
        plot::eigenfunction_panels(
            &path,
            &per_fn,
            grid_n,
            cfg.plot_extent,
            &plot::Panels {
                title: &title,
                labels: &labels,
                axes: if particles_1d {
                    ("x₀ (particle 0)", "x₁ (particle 1)")
                } else {
                    ("x", "y")
                },
                colour: "v / max |v| (per panel; sign arbitrary)",
            },
        )
    }
}
