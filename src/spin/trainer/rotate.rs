//! The read-out's Rayleigh–Ritz rotation during training (maths §15): the outputs replaced by the
//! Ritz vectors of their own span — the same span, so the same tr Λ, but Σ = I and the features
//! in ascending order — with the optimiser's moments carried into the new basis.

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
        let last = *self
            .problem
            .spec
            .layers()
            .last()
            .expect("a network has a layer");
        let n = t.nrows();
        let g_sq = g_map.map(|x| x * x);
        let rows: Vec<Vec<usize>> = (0..=last.inputs)
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
            .collect();
        for idx in &rows {
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
