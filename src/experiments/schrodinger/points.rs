//! `spin eval` on a Schrödinger run: its eigenfunctions at new points (out of sample).

use std::path::Path;
use std::sync::Arc;

use super::SchrodingerConfig;
use crate::error::{Result, SpinError};
use crate::gpu::GpuContext;
use crate::spin::checkpoint::TrainerState;
use crate::spin::Trainer;

/// Points of dimension `dim` from a CSV, one per line; with a header that names x0 … x{d−1}
/// (as [`points_csv`] writes) those columns are taken, so this command's output reads back.
pub fn read_points(path: &Path, dim: usize) -> Result<Vec<f64>> {
    let table = crate::io::read_numbers_csv(path)?;
    let bad = |message: String| SpinError::Parse {
        path: path.display().to_string(),
        message,
    };
    let columns: Option<Vec<usize>> = table.header.as_ref().and_then(|h| {
        (0..dim)
            .map(|i| h.iter().position(|c| c == &format!("x{i}")))
            .collect()
    });
    let mut points = Vec::new();
    for (row, line) in table.rows.iter().zip(&table.lines) {
        if let Some(cols) = &columns {
            if let Some(&c) = cols.iter().find(|&&c| c >= row.len()) {
                return Err(bad(format!(
                    "line {line}: no value in column {} (`x{}` of the header)",
                    c + 1,
                    cols.iter().position(|&x| x == c).unwrap_or(0)
                )));
            }
            points.extend(cols.iter().map(|&c| row[c]));
            continue;
        }
        if row.len() != dim {
            return Err(bad(format!(
                "line {line}: {} coordinates, the run is {dim}-dimensional",
                row.len()
            )));
        }
        points.extend(row);
    }
    if points.is_empty() {
        return Err(bad("no points".into()));
    }
    Ok(points)
}

/// The eigenfunctions v = L⁻¹u of the run saved as `state` (its final, possibly refitted,
/// network) at `points`, with L = chol Σ of 65 536 fresh samples so that E_p[v_j v_k] = δ_jk
/// under the uniform density p on the box; with `unit`, scaled so that ∫v² dx = 1 instead.
pub fn eigenfunctions_at(
    ctx: Arc<GpuContext>,
    cfg: &SchrodingerConfig,
    state: &TrainerState,
    points: &[f64],
    unit: bool,
) -> Result<Vec<f64>> {
    let problem = cfg.problem(&ctx)?;
    let mut trainer = Trainer::new(ctx, problem, cfg.train.clone())?;
    trainer.restore(state)?;
    if !state.final_params.is_empty() {
        if state.final_params.len() != trainer.params.len() {
            return Err(SpinError::Shape(
                "the checkpoint's final parameters do not match its network".into(),
            ));
        }
        // The network the run evaluated last (its read-out refit).
        trainer.params = state.final_params.clone();
    }
    // L from Σ of a fresh sample of p (not the moving average Σ̄, which lags a short run).
    let sigma = trainer
        .evaluate(1 << 16, 8192, cfg.train.seed ^ 0xE7A1)?
        .sigma;
    let mut v = trainer.eigenfunctions(points, &sigma)?;
    if unit {
        // p is uniform on [−D, D]^d with density (2D)^−d: ∫v² dx = (2D)^d E_p[v²].
        let scale = (2.0 * cfg.half_width).powf(-(cfg.dim as f64) / 2.0);
        for x in &mut v {
            *x *= scale;
        }
    }
    Ok(v)
}

/// CSV with a header `x0,…,v0,…`: each point and its N eigenfunction values.
pub fn points_csv(points: &[f64], v: &[f64], dim: usize, n: usize) -> String {
    let mut out = String::new();
    let coords: Vec<String> = (0..dim).map(|i| format!("x{i}")).collect();
    let funcs: Vec<String> = (0..n).map(|k| format!("v{k}")).collect();
    out.push_str(&format!("{},{}\n", coords.join(","), funcs.join(",")));
    for (p, row) in points.chunks(dim).zip(v.chunks(n)) {
        let cells: Vec<String> = p.iter().chain(row).map(|x| format!("{x}")).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}
