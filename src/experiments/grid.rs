//! The exact baseline: the finite-difference Hamiltonian H = −c Δ_h + V on an n^d grid with zero
//! boundary values, and its lowest eigenpairs from faer's Krylov–Schur partial eigensolver
//! ([`super::krylov`]) on (H − τI)⁻¹ through a sparse Cholesky factor (shift-and-invert, τ below
//! min V), or on larger 3D grids applied matrix-free to σI − H (whose largest eigenvalues are
//! H's lowest).

use crate::error::{Result, SpinError};
use crate::operators::ScalarField;

/// The grid problem.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GridConfig {
    /// Dimension d (1, 2 or 3).
    pub dim: usize,
    /// Interior points per axis.
    pub n: usize,
    /// Box half-width D (the boundary, where the solution is 0).
    pub half_width: f64,
    /// Kinetic coefficient c.
    pub kinetic: f64,
    /// Eigenpairs wanted.
    pub neig: usize,
}

impl GridConfig {
    /// Grid spacing h = 2D/(n + 1).
    pub fn spacing(&self) -> f64 {
        2.0 * self.half_width / (self.n + 1) as f64
    }

    /// Coordinates of every grid point, axis 0 fastest: (n^d, d).
    pub fn points(&self) -> Vec<f64> {
        let (n, d, h) = (self.n, self.dim, self.spacing());
        let total = n.pow(d as u32);
        let mut pts = Vec::with_capacity(total * d);
        for idx in 0..total {
            let mut rest = idx;
            for _ in 0..d {
                pts.push(-self.half_width + ((rest % n) + 1) as f64 * h);
                rest /= n;
            }
        }
        pts
    }
}

/// The finite-difference Hamiltonian on the grid, applied to one vector.
struct Hamiltonian {
    n: usize,
    dim: usize,
    coupling: f64,
    diag: Vec<f64>,
}

impl Hamiltonian {
    /// H's entries on and below the diagonal: (row, column, value).
    fn lower_entries(&self) -> Vec<(usize, usize, f64)> {
        let n = self.n;
        let strides: Vec<usize> = (0..self.dim).map(|a| n.pow(a as u32)).collect();
        let mut e = Vec::with_capacity(self.diag.len() * (self.dim + 1));
        for (idx, &d) in self.diag.iter().enumerate() {
            e.push((idx, idx, d));
            for &s in &strides {
                if (idx / s) % n > 0 {
                    e.push((idx, idx - s, -self.coupling));
                }
            }
        }
        e
    }

    fn apply_col(&self, out: &mut [f64], x: &[f64]) {
        let n = self.n;
        let strides: Vec<usize> = (0..self.dim).map(|a| n.pow(a as u32)).collect();
        for (idx, o) in out.iter_mut().enumerate() {
            // (Hx)_i = diag_i x_i − coupling Σ_neighbours x_j, coupling = c/h².
            let mut neighbours = 0.0;
            for &s in &strides {
                let coord = (idx / s) % n;
                if coord > 0 {
                    neighbours += x[idx - s];
                }
                if coord + 1 < n {
                    neighbours += x[idx + s];
                }
            }
            *o = self.diag[idx] * x[idx] - self.coupling * neighbours;
        }
    }
}

/// Lowest eigenpairs on the grid.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GridResult {
    /// Eigenvalues, ascending.
    pub eigenvalues: Vec<f64>,
    /// Eigenvectors, one per entry, over the grid (axis 0 fastest).
    #[serde(skip)]
    pub eigenvectors: Vec<Vec<f64>>,
    /// Grid spacing.
    pub spacing: f64,
    /// Unknowns n^d.
    pub unknowns: usize,
}

/// Solves the grid problem for potential `v`.
pub fn solve(cfg: &GridConfig, v: &ScalarField) -> Result<GridResult> {
    if !(1..=3).contains(&cfg.dim) || cfg.n < 3 || cfg.neig == 0 {
        return Err(SpinError::Config(format!(
            "grid needs d in 1..=3, n ≥ 3 and at least one eigenpair (got d {}, n {}, k {})",
            cfg.dim, cfg.n, cfg.neig
        )));
    }
    let total = cfg
        .n
        .checked_pow(cfg.dim as u32)
        .filter(|&t| t <= 20_000_000)
        .ok_or_else(|| {
            SpinError::Config(format!("{}^{} grid points is too many", cfg.n, cfg.dim))
        })?;
    if cfg.neig >= total {
        return Err(SpinError::Config(format!(
            "asked for {} eigenpairs of a {total}-point grid",
            cfg.neig
        )));
    }
    let h = cfg.spacing();
    let coupling = cfg.kinetic / (h * h);
    let pot = v.values(&cfg.points(), cfg.dim)?;
    if let Some(i) = pot.iter().position(|x| !x.is_finite()) {
        return Err(SpinError::Config(format!(
            "the potential is not finite at grid point {i}"
        )));
    }
    let diag: Vec<f64> = pot
        .iter()
        .map(|p| 2.0 * cfg.dim as f64 * coupling + p)
        .collect();
    // Gershgorin: every eigenvalue of H is at most max(diag) + 2d·coupling.
    let shift =
        diag.iter().cloned().fold(f64::NEG_INFINITY, f64::max) + 2.0 * cfg.dim as f64 * coupling;
    let op = Hamiltonian {
        n: cfg.n,
        dim: cfg.dim,
        coupling,
        diag,
    };
    // Shift-and-invert where the Cholesky factor stays small: up to 2²⁰ unknowns in 1D and 2D
    // (399² took 4.7 s and 0.4 GB here), 2¹⁷ in 3D (40³ 1 s to factor, 64³ 2.4 GB); the
    // matrix-free σI − H above, or when the factorisation fails. Every eigenvalue of H is at
    // least min V (Gershgorin).
    let sparse_max = if cfg.dim <= 2 { 1 << 20 } else { 1 << 17 };
    let lower = pot.iter().cloned().fold(f64::INFINITY, f64::min);
    let pairs = (total <= sparse_max)
        .then(|| {
            super::krylov::lowest_eigenpairs_sparse(
                &op.lower_entries(),
                total,
                cfg.neig,
                lower,
                1e-12,
            )
        })
        .and_then(|r| r.ok());
    let pairs = match pairs {
        Some(p) => p,
        None => {
            let apply = |y: &mut [f64], x: &[f64]| op.apply_col(y, x);
            super::krylov::lowest_eigenpairs(&apply, total, cfg.neig, shift, 1e-9).map_err(|e| {
                SpinError::Config(format!("{e}; try a smaller grid or fewer eigenpairs"))
            })?
        }
    };
    Ok(GridResult {
        eigenvalues: pairs.iter().map(|p| p.0).collect(),
        eigenvectors: pairs.into_iter().map(|p| p.1).collect(),
        spacing: h,
        unknowns: total,
    })
}

/// Solves the grid problem for the potential `field` (named `potential`) and writes `grid.json`
/// (with errors against `exact` when known) and `grid.png` (Fig. 1a: the eigenvectors on the
/// z = 0 slice, cropped to ±`plot_extent`) into `out`. Returns the result and the metrics.
pub fn run(
    cfg: &GridConfig,
    potential: &str,
    field: &ScalarField,
    exact: Option<&[f64]>,
    plot_extent: f64,
    out: &std::path::Path,
) -> Result<(GridResult, serde_json::Value)> {
    let start = std::time::Instant::now();
    let r = solve(cfg, field)?;
    let wall = start.elapsed().as_secs_f64();
    let mut m = serde_json::json!({
        "command": "grid",
        "config": cfg,
        "potential": potential,
        "eigenvalues": r.eigenvalues,
        "spacing": r.spacing,
        "unknowns": r.unknowns,
        "wall_seconds": wall,
    });
    if let Some(e) = exact {
        m["exact_eigenvalues"] = serde_json::json!(e);
        m["relative_errors"] =
            serde_json::json!(super::schrodinger::relative_errors(&r.eigenvalues, e));
    }
    std::fs::create_dir_all(out).map_err(|source| SpinError::Io {
        path: out.display().to_string(),
        source,
    })?;
    crate::io::write_json(&out.join("grid.json"), &m)?;
    picture(cfg, &r, plot_extent, potential, &out.join("grid.png"))?;
    Ok((r, m))
}

/// Fig. 1a from the grid's eigenvectors: lines in 1D; in 2D and 3D the z = 0 slice (the middle
/// plane in 3D) with y up, cropped to ±`extent` by taking the nearest grid point.
fn picture(
    cfg: &GridConfig,
    r: &GridResult,
    extent: f64,
    potential: &str,
    path: &std::path::Path,
) -> Result<()> {
    use super::plot;
    let labels: Vec<String> = r
        .eigenvalues
        .iter()
        .enumerate()
        .map(|(k, e)| format!("grid {k}  E = {e:.4}"))
        .collect();
    let title = format!(
        "finite-difference grid: V = {potential} in {}D, {}^{} points, box ±{}",
        cfg.dim, cfg.n, cfg.dim, cfg.half_width
    );
    if cfg.dim == 1 {
        return plot::eigenfunction_lines(path, &cfg.points(), &r.eigenvectors, &labels, &title);
    }
    let n = cfg.n;
    let mid = if cfg.dim == 3 { n / 2 } else { 0 };
    let h = cfg.spacing();
    let d = cfg.half_width;
    let m_px = 96;
    let grid_index = |c: f64| ((c / h).round() as usize).clamp(1, n) - 1;
    let cropped: Vec<Vec<f64>> = r
        .eigenvectors
        .iter()
        .map(|v| {
            (0..m_px * m_px)
                .map(|idx| {
                    let (i, j) = (idx / m_px, idx % m_px);
                    let x = -extent + (j as f64 + 0.5) * 2.0 * extent / m_px as f64;
                    let y = extent - (i as f64 + 0.5) * 2.0 * extent / m_px as f64;
                    let (gj, gi) = (grid_index(x + d), grid_index(d - y));
                    // The slice's row gi counts from the top: grid row n − 1 − gi.
                    v[mid * n * n + (n - 1 - gi) * n + gj]
                })
                .collect()
        })
        .collect();
    let slice = if cfg.dim == 3 { " (z = 0)" } else { "" };
    plot::eigenfunction_panels(
        path,
        &cropped,
        m_px,
        extent,
        &plot::Panels {
            title: &format!("{title}{slice}"),
            labels: &labels,
            axes: ("x", "y"),
            colour: "v / max |v| (per panel)",
        },
    )
}
