//! Schrödinger operators H = −c∇² + V (maths §4, §7): closed-form spectra ([this module]),
//! the run's configuration and presets (`config`), the training run (`run`), the final
//! evaluation (`evaluate`), the read-out refit (`refit`) and the figures (`figures`).

mod config;
mod evaluate;
mod figures;
mod points;
mod presets;
mod proposals;
mod reference;
mod refit;
mod run;
mod validate;

use std::sync::Arc;

use crate::error::Result;
use crate::nn::NetworkSpec;
use crate::operators::samplers::UniformBox;
use crate::operators::{Operator, ScalarField};
use crate::spin::Problem;

pub use super::training::UNTIL_TIME_LIMIT;
pub use config::{
    ExchangeKind, LaplacianKind, SamplerKind, SchrodingerConfig, GRID_REFERENCE_N, INPUT_SPAN,
    PROPOSAL_SCALES_REL,
};
pub use evaluate::{below_exact, evaluate_to_target, max_relative_std_error, relative_errors};
pub use figures::slice_points;
pub use points::{eigenfunctions_at, points_csv, read_points};
pub use presets::Preset;
pub use reference::EXPRESSION_REFERENCE_TOLERANCE;
pub use refit::{readout_refit, ReadoutRefit, READOUT_REL_TOL};
pub use run::{exchange_parity, refit_proposal, run, PARITY_SAMPLES};

/// The hydrogen-like potential −Z/‖x‖ (softened at the origin by `1e-6` to stay finite).
pub fn hydrogen_potential(charge: f64) -> ScalarField {
    Arc::new(move |x: &[f64]| -charge / x.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-6))
}

/// The isotropic harmonic potential Σ_i x_i².
pub fn harmonic_potential() -> ScalarField {
    Arc::new(|x: &[f64]| x.iter().map(|v| v * v).sum())
}

/// Lowest `k` eigenvalues of −c∇² − Z/‖x‖ in 2D or 3D (maths §7), with degeneracy.
pub fn hydrogen_eigenvalues(dim: usize, charge: f64, kinetic: f64, k: usize) -> Option<Vec<f64>> {
    let mut out = Vec::with_capacity(k);
    let mut n = 0usize;
    while out.len() < k {
        let (e, deg) = match dim {
            2 => (
                -charge * charge / (4.0 * kinetic * (n as f64 + 0.5).powi(2)),
                2 * n + 1,
            ),
            3 => (
                -charge * charge / (4.0 * kinetic * ((n + 1) as f64).powi(2)),
                (n + 1) * (n + 1),
            ),
            _ => return None,
        };
        out.extend(std::iter::repeat_n(e, deg));
        n += 1;
    }
    out.truncate(k);
    Some(out)
}

/// Lowest `k` eigenvalues of −c∇² + Σ_i x_i² in `dim` dimensions: Σ_i (2n_i + 1)√c.
pub fn harmonic_eigenvalues(dim: usize, kinetic: f64, k: usize) -> Vec<f64> {
    let max_level = k + 1;
    let mut levels = vec![0usize];
    for _ in 0..dim {
        levels = levels
            .iter()
            .flat_map(|&s| (0..max_level).map(move |n| s + n))
            .collect();
    }
    levels.sort();
    levels
        .iter()
        .take(k)
        .map(|&s| (2.0 * s as f64 + dim as f64) * kinetic.sqrt())
        .collect()
}

/// A Hamiltonian H = −c∇² + V with the finite-difference Laplacian on the box [−D, D]^d,
/// sampled uniformly, learned by an MLP.
#[derive(Clone, Debug)]
pub struct FdBox {
    /// Dimension d.
    pub dim: usize,
    /// Kinetic coefficient c.
    pub kinetic: f64,
    /// Finite-difference step ε.
    pub eps: f64,
    /// Box half-width D.
    pub half_width: f64,
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Eigenfunctions N.
    pub neig: usize,
    /// Multiply by the boundary envelope of the box.
    pub envelope: bool,
}

impl FdBox {
    /// The SpIN problem for potential `v`.
    pub fn problem(&self, v: ScalarField) -> Result<Problem> {
        Ok(Problem {
            spec: NetworkSpec {
                input_dim: self.dim,
                hidden: self.hidden.clone(),
                outputs: self.neig,
                envelope: self.envelope.then_some(self.half_width as f32),
                radial: false,
                ..Default::default()
            },
            operator: Operator::hamiltonian_fd(self.dim, self.kinetic, self.eps, v)?,
            sampler: Box::new(UniformBox {
                dim: self.dim,
                half_width: self.half_width,
            }),
        })
    }
}

/// Softening length a of [`soft_coulomb_potential`] (the usual choice for 1D atoms).
pub const SOFT_COULOMB_SOFTENING: f64 = 1.0;

/// Two particles on a line, each bound to a nucleus of charge Z at the origin and repelling
/// each other, all through the soft-core Coulomb 1/√(r² + a²) (a = [`SOFT_COULOMB_SOFTENING`]):
/// V(x₀, x₁) = −Z/√(x₀² + a²) − Z/√(x₁² + a²) + 1/√((x₀ − x₁)² + a²), the 1D helium model,
/// a 2D configuration space that a grid solves exactly.
pub fn soft_coulomb_potential(charge: f64) -> ScalarField {
    let a2 = SOFT_COULOMB_SOFTENING * SOFT_COULOMB_SOFTENING;
    Arc::new(move |x: &[f64]| {
        let (p0, p1) = (x[0], x[1]);
        -charge / (p0 * p0 + a2).sqrt() - charge / (p1 * p1 + a2).sqrt()
            + 1.0 / ((p0 - p1) * (p0 - p1) + a2).sqrt()
    })
}

/// `points` (count, P·d) with particles 0 and 1 (d coordinates each) exchanged: the
/// configuration Px of the exchange operator P.
pub fn swap_particles(points: &[f64], space_dim: usize, particle_dim: usize) -> Vec<f64> {
    let mut out = points.to_vec();
    if particle_dim == 0 || space_dim < 2 * particle_dim {
        return out;
    }
    for row in out.chunks_mut(space_dim) {
        let (a, b) = row.split_at_mut(particle_dim);
        a.swap_with_slice(&mut b[..particle_dim]);
    }
    out
}

/// Each function's exchange parity ⟨v(Px) v(x)⟩ / ⟨v(x)²⟩ under the weights `weights`:
/// +1 for a function symmetric under the exchange, −1 antisymmetric, between for a mixture.
/// `at_x` and `at_px` are (count, N) values at the points and at their exchanged copies.
pub fn exchange_parities(at_x: &[f64], at_px: &[f64], weights: &[f64], n: usize) -> Vec<f64> {
    let mut cross = vec![0.0f64; n];
    let mut norm = vec![0.0f64; n];
    for (r, &w) in weights.iter().enumerate() {
        for k in 0..n {
            let (u, v) = (at_x[r * n + k], at_px[r * n + k]);
            cross[k] += w * u * v;
            norm[k] += w * u * u;
        }
    }
    cross
        .iter()
        .zip(&norm)
        .map(|(c, s)| if *s > 0.0 { c / s } else { 0.0 })
        .collect()
}

/// The label of an exchange parity: `symmetric` (> 0.9), `antisymmetric` (< −0.9) or `mixed`.
pub fn parity_label(parity: f64) -> &'static str {
    if parity > 0.9 {
        "symmetric"
    } else if parity < -0.9 {
        "antisymmetric"
    } else {
        "mixed"
    }
}

/// Helium's two electrons around a nucleus of charge Z (6D configuration space, atomic units):
/// V = −Z/|p₀| − Z/|p₁| + 1/|p₀ − p₁|, each distance floored at 1e-6.
pub fn helium_potential(charge: f64) -> ScalarField {
    Arc::new(move |x: &[f64]| {
        let norm = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(1e-6);
        let p0 = [x[0], x[1], x[2]];
        let p1 = [x[3], x[4], x[5]];
        -charge / norm(p0) - charge / norm(p1)
            + 1.0 / norm([p0[0] - p1[0], p0[1] - p1[1], p0[2] - p1[2]])
    })
}

/// Helium's nine lowest non-relativistic levels (infinite nuclear mass, atomic units; Drake's
/// values) with their exchange parity: 1¹S, 2³S, 2¹S, 2³P ×3, 2¹P ×3. Spin singlets are
/// symmetric in space (+1), triplets antisymmetric (−1).
pub const HELIUM_LEVELS: [(f64, f64); 9] = [
    (-2.903724, 1.0),
    (-2.175229, -1.0),
    (-2.145974, 1.0),
    (-2.133164, -1.0),
    (-2.133164, -1.0),
    (-2.133164, -1.0),
    (-2.123843, 1.0),
    (-2.123843, 1.0),
    (-2.123843, 1.0),
];
