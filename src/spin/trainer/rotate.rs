//! The read-out's gauge during training: its Rayleigh–Ritz rotation (maths §15) — the outputs
//! replaced by the Ritz vectors of their own span, the same span, so the same tr Λ, but Σ = I and
//! the features in ascending order, with the optimiser's moments carried into the new basis — and
//! its whitening after every step (maths §17).

use nalgebra::DMatrix;

use super::super::host::lowest_ritz_pairs;
use super::Trainer;
use crate::error::Result;

/// Directions of the outputs' Gram matrix below this fraction of the largest are dropped by the
/// Ritz solve (then the rotation is skipped: the span has collapsed, nothing to rotate).
const ROTATE_REL_TOL: f64 = 1e-10;

impl Trainer {
    /// Whether [`Trainer::rotate_readout`] applies: SpIN or a successor at β = 1 outside the
    /// tail (Σ̄ and J̄ would otherwise hold the old basis), a dense last layer and no mask or
    /// constant output (which fix some outputs' parameters).
    pub fn can_rotate_readout(&self) -> bool {
        let spec = &self.problem.spec;
        let dense_last = spec.layers().last().is_some_and(|l| l.conv().is_none());
        dense_last
            && !spec.constant_first
            && self.mask.is_none()
            && self.config.beta >= 1.0
            && self.tail_start.is_none()
    }

    /// Whether the read-out's whitening ([`crate::spin::TrainConfig::whiten_readout`]) acts
    /// on this step: asked for, the objective SpIN (tr Λ is what the move leaves unchanged;
    /// the successors fix each feature's scale themselves), and where the rotation applies
    /// ([`Trainer::can_rotate_readout`]: β = 1 outside the tail, a dense last layer, no constant
    /// or masked output).
    pub fn whitens_readout(&self) -> bool {
        self.config.whiten_readout > 0.0
            && self.config.objective == crate::spin::Objective::Spin
            && self.can_rotate_readout()
    }

    /// The parameter indices of the read-out: `[i][j]` is hidden unit i's weight into output j,
    /// `i` = the last layer's inputs being the bias.
    fn readout_indices(&self) -> Vec<Vec<usize>> {
        let last = *self
            .problem
            .spec
            .layers()
            .last()
            .expect("a network has a layer");
        let n = self.problem.spec.outputs;
        (0..=last.inputs)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        if i < last.inputs {
                            last.w(i, j)
                        } else {
                            last.b(j)
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// The read-out's whitening (maths §17), after every step with that step's minibatch Σ̂
    /// and ρ = [`crate::spin::TrainConfig::whiten_readout`]: S = (1 − ρ) I + ρ Σ̂ and L its
    /// Cholesky factor, the outputs become u' = L⁻¹u
    /// through the last layer — lower triangular, so every minibatch's Λ, the span and the
    /// masked order are exactly as they were — and S becomes I: the features' scale and mixing
    /// relax toward Σ = I at rate ρ per step instead of drifting. Σ̄ and the optimiser's moments
    /// follow. Returns false (nothing done) where S has no Cholesky factor.
    pub fn whiten_readout(&mut self, sigma: &DMatrix<f64>, rho: f64) -> bool {
        let n = sigma.nrows();
        let s = DMatrix::identity(n, n) * (1.0 - rho) + sigma * rho;
        let Some(chol) = nalgebra::Cholesky::new((&s + s.transpose()) * 0.5) else {
            return false;
        };
        let l = chol.l();
        let Some(l_inv) = l.clone().try_inverse() else {
            return false;
        };
        if !l_inv.iter().all(|v| v.is_finite()) {
            return false;
        }
        // u' = L⁻¹u, so the gradient maps as g' = Lᵀg.
        self.apply_readout_transform(&l_inv, &l.transpose());
        self.sigma_avg = &l_inv * &self.sigma_avg * l_inv.transpose();
        true
    }

    /// Rotates the read-out to the Ritz vectors of the outputs' span, estimated on `samples`
    /// fresh points (the training operator and sampler; `seed` their stream): with C the
    /// Σ-orthonormal Ritz coefficients (columns, ascending values), the new outputs are
    /// u' = Cᵀu, the last layer's weights and bias W' = CᵀW, and the optimiser's moments follow
    /// the gradient, which transforms as g' = C⁻¹g (m' = C⁻¹m; v' = (C⁻¹)∘² v, exact for a
    /// permutation or a scaling). Σ̄ becomes CᵀΣ̄C and the eigenvalue EMA the Ritz values.
    /// Returns the Ritz values, or None where the rotation does not apply
    /// ([`Trainer::can_rotate_readout`]) or the span is numerically singular.
    pub fn rotate_readout(
        &mut self,
        samples: usize,
        chunk: usize,
        seed: u64,
    ) -> Result<Option<Vec<f64>>> {
        if !self.can_rotate_readout() {
            return Ok(None);
        }
        let n = self.problem.spec.outputs;
        let e = self.evaluate(samples, chunk, seed)?;
        let sigma = DMatrix::from_row_slice(n, n, &e.sigma);
        let pi = DMatrix::from_row_slice(n, n, &e.pi);
        let Ok((values, c)) = lowest_ritz_pairs(&sigma, &pi, n, ROTATE_REL_TOL) else {
            return Ok(None);
        };
        let Some(c_inv) = c.clone().try_inverse() else {
            return Ok(None);
        };
        self.apply_readout_transform(&c.transpose(), &c_inv);
        self.sigma_avg = c.transpose() * &self.sigma_avg * &c;
        self.lambda_ema = values.clone();
        Ok(Some(values))
    }

    /// u' = T u through the last layer (W' = T W, b' = T b), with the optimiser's moments
    /// carried by `g_map` (the gradient's map, g' = g_map g; its squares for v).
    fn apply_readout_transform(&mut self, t: &DMatrix<f64>, g_map: &DMatrix<f64>) {
        let g_sq = g_map.map(|x| x * x);
        for idx in &self.readout_indices() {
            mix_f32(&mut self.params, idx, t);
            mix_f64(&mut self.optimizer.m, idx, g_map);
            mix_f64(&mut self.optimizer.v, idx, &g_sq);
        }
    }
}

/// x[idx] ← A x[idx]: one hidden unit's (or the bias's) weights into the outputs, mixed.
fn mixed(x: impl Fn(usize) -> f64, idx: &[usize], a: &DMatrix<f64>) -> Vec<f64> {
    let old: Vec<f64> = idx.iter().map(|&p| x(p)).collect();
    (0..idx.len())
        .map(|j| (0..idx.len()).map(|k| a[(j, k)] * old[k]).sum())
        .collect()
}

/// [`mixed`] on θ.
fn mix_f32(v: &mut [f32], idx: &[usize], a: &DMatrix<f64>) {
    let new = mixed(|p| v[p] as f64, idx, a);
    for (&p, x) in idx.iter().zip(new) {
        v[p] = x as f32;
    }
}

/// [`mixed`] on an optimiser moment (none for SGD, so an empty vector is left alone).
fn mix_f64(v: &mut [f64], idx: &[usize], a: &DMatrix<f64>) {
    if v.is_empty() {
        return;
    }
    let new = mixed(|p| v[p], idx, a);
    for (&p, x) in idx.iter().zip(new) {
        v[p] = x;
    }
}
