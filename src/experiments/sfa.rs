//! Linear slow feature analysis and PCA, the yardsticks of the video experiments (maths §9), and
//! the held-out Δ-values of any features.
//!
//! Δ-values: for features f on sequences of consecutive inputs, Σ = Cov(f) and
//! Π = mean over consecutive pairs of (f_{t+1} − f_t)(f_{t+1} − f_t)ᵀ; the Δ-values are the Ritz
//! values of (Π, Σ) ascending — the slowness of the best features in the span, lower is slower.

use std::ops::Range;

use faer::{Mat, Side};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_distr::Distribution;

use crate::error::{Result, SpinError};

/// Δ-values of `features` (rows × m, row-major) whose rows come in `segments` of consecutive
/// inputs (differences are taken only inside a segment). Features are centred first.
pub fn delta_values(features: &[f64], m: usize, segments: &[Range<usize>]) -> Result<Vec<f64>> {
    let rows = features.len() / m;
    if rows < 2 || m == 0 {
        return Err(SpinError::Shape(format!(
            "Δ-values need at least 2 inputs of at least one feature, got {rows} × {m}"
        )));
    }
    let mean: Vec<f64> = (0..m)
        .map(|j| (0..rows).map(|r| features[r * m + j]).sum::<f64>() / rows as f64)
        .collect();
    let mut sigma = DMatrix::<f64>::zeros(m, m);
    for r in 0..rows {
        for i in 0..m {
            let a = features[r * m + i] - mean[i];
            for j in 0..m {
                sigma[(i, j)] += a * (features[r * m + j] - mean[j]);
            }
        }
    }
    sigma /= rows as f64;
    let mut pi = DMatrix::<f64>::zeros(m, m);
    let mut pairs = 0usize;
    for seg in segments {
        for t in seg.start..seg.end.saturating_sub(1) {
            for i in 0..m {
                let a = features[(t + 1) * m + i] - features[t * m + i];
                for j in 0..m {
                    pi[(i, j)] += a * (features[(t + 1) * m + j] - features[t * m + j]);
                }
            }
            pairs += 1;
        }
    }
    if pairs == 0 {
        return Err(SpinError::Shape(
            "Δ-values need at least one pair of consecutive inputs".into(),
        ));
    }
    pi /= pairs as f64;
    generalized_eigenvalues(&sigma, &pi)
}

/// Streamed second moments of features on sequences, in f64: their mean, covariance and the
/// mean outer product of consecutive differences — what linear SFA, the Δ-values and the
/// read-out refit need, without holding every row.
#[derive(Clone, Debug)]
pub struct SlowMoments {
    m: usize,
    rows: usize,
    sum: DMatrix<f64>,
    gram: DMatrix<f64>,
    pairs: usize,
    diff: DMatrix<f64>,
}

impl SlowMoments {
    /// Moments of `m` features.
    pub fn new(m: usize) -> Self {
        Self {
            m,
            rows: 0,
            sum: DMatrix::zeros(1, m),
            gram: DMatrix::zeros(m, m),
            pairs: 0,
            diff: DMatrix::zeros(m, m),
        }
    }

    /// Adds `features` (rows × m, row-major), consecutive rows of one sequence; `before` is the
    /// row that precedes them in the same sequence (the last row of the previous piece), if any.
    pub fn add(&mut self, features: &[f64], before: Option<&[f64]>) {
        let m = self.m;
        let rows = features.len() / m;
        if rows == 0 {
            return;
        }
        let f = DMatrix::from_row_slice(rows, m, &features[..rows * m]);
        self.gram += f.transpose() * &f;
        self.sum += f.row_sum();
        self.rows += rows;
        let first = before.map(|b| DMatrix::from_row_slice(1, m, &b[..m]));
        let mut d = DMatrix::zeros(rows - 1 + first.is_some() as usize, m);
        let mut at = 0;
        if let Some(b) = &first {
            d.set_row(0, &(f.row(0) - b.row(0)));
            at = 1;
        }
        for r in 1..rows {
            d.set_row(at + r - 1, &(f.row(r) - f.row(r - 1)));
        }
        self.diff += d.transpose() * &d;
        self.pairs += d.nrows();
    }

    /// Rows added.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The features' mean.
    pub fn mean(&self) -> Vec<f64> {
        (&self.sum / self.rows.max(1) as f64)
            .iter()
            .copied()
            .collect()
    }

    /// Σ: the features' covariance (m × m).
    pub fn covariance(&self) -> DMatrix<f64> {
        let n = self.rows.max(1) as f64;
        let mean = &self.sum / n;
        &self.gram / n - mean.transpose() * &mean
    }

    /// Π: the mean outer product of consecutive differences (m × m).
    pub fn slowness(&self) -> DMatrix<f64> {
        &self.diff / self.pairs.max(1) as f64
    }

    /// The `k` slowest directions: Rayleigh–Ritz of (Π, Σ) with nearly dependent directions
    /// (below `rel_tol` of the largest, correlation-scaled) dropped; (Δ-values ascending, m × k
    /// coefficients, Σ-orthonormal).
    pub fn slowest(&self, k: usize, rel_tol: f64) -> Result<(Vec<f64>, DMatrix<f64>)> {
        if self.pairs == 0 || self.rows < 2 {
            return Err(SpinError::Shape(
                "slow features need at least one pair of consecutive inputs".into(),
            ));
        }
        crate::spin::host::lowest_ritz_pairs(&self.covariance(), &self.slowness(), k, rel_tol)
    }
}

/// Eigenvalues of Π v = λ Σ v, ascending (Σ positive definite up to a tiny ridge).
pub fn generalized_eigenvalues(sigma: &DMatrix<f64>, pi: &DMatrix<f64>) -> Result<Vec<f64>> {
    let m = sigma.nrows();
    let ridge = 1e-12 * (sigma.trace() / m as f64).max(1e-300);
    let l = crate::spin::host::cholesky(&(sigma + DMatrix::identity(m, m) * ridge))?;
    let linv = l
        .clone()
        .try_inverse()
        .ok_or_else(|| SpinError::Shape("singular feature covariance".into()))?;
    let lam = &linv * pi * linv.transpose();
    let sym = (&lam + lam.transpose()) * 0.5;
    let mut ev: Vec<f64> = sym.symmetric_eigenvalues().iter().copied().collect();
    ev.sort_by(|a, b| a.total_cmp(b));
    Ok(ev)
}

/// A linear map of inputs: f(x) = (x − mean) W, W of D × k.
#[derive(Clone, Debug)]
pub struct LinearFeatures {
    /// The mean subtracted.
    pub mean: Vec<f64>,
    /// D × k, column-major (faer).
    pub w: Mat<f64>,
}

impl LinearFeatures {
    /// Input dimension D.
    pub fn input_dim(&self) -> usize {
        self.mean.len()
    }

    /// Output dimension k.
    pub fn output_dim(&self) -> usize {
        self.w.ncols()
    }

    /// The features of `inputs` (rows × D, row-major), rows × k row-major.
    pub fn apply(&self, inputs: &[f64]) -> Vec<f64> {
        let d = self.mean.len();
        let rows = inputs.len() / d;
        let x = Mat::from_fn(rows, d, |r, c| inputs[r * d + c] - self.mean[c]);
        let f = &x * &self.w;
        let k = self.w.ncols();
        let mut out = Vec::with_capacity(rows * k);
        for r in 0..rows {
            for c in 0..k {
                out.push(f[(r, c)]);
            }
        }
        out
    }
}

/// The top principal directions of `inputs` (rows × D): (mean, eigenvalues descending, D × k).
fn pca(inputs: &[f64], d: usize, k: usize) -> Result<(Vec<f64>, Vec<f64>, Mat<f64>)> {
    let rows = inputs.len() / d;
    if rows < 2 {
        return Err(SpinError::Shape("PCA needs at least 2 inputs".into()));
    }
    let mean: Vec<f64> = (0..d)
        .map(|c| (0..rows).map(|r| inputs[r * d + c]).sum::<f64>() / rows as f64)
        .collect();
    let x = Mat::from_fn(rows, d, |r, c| inputs[r * d + c] - mean[c]);
    let k = k.min(d);
    if d <= EXACT_PCA_DIM {
        let cov = (x.transpose() * &x) * faer::Scale(1.0 / rows as f64);
        let evd = cov
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| SpinError::Shape(format!("PCA eigendecomposition failed: {e:?}")))?;
        // faer returns ascending eigenvalues: take the last k, largest first.
        let s = evd.S();
        let u = evd.U();
        let vals: Vec<f64> = (0..k).map(|i| s[d - 1 - i]).collect();
        let dirs = Mat::from_fn(d, k, |r, c| u[(r, d - 1 - c)]);
        return Ok((mean, vals, dirs));
    }
    // Randomised range finder (Halko, Martinsson & Tropp) with two power iterations: X ≈ Q B
    // with Q of `l` orthonormal columns, then the SVD of the small B.
    let l = (k + 16).min(rows).min(d);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5FA);
    let omega = Mat::from_fn(d, l, |_, _| {
        let v: f64 = rand_distr::StandardNormal.sample(&mut rng);
        v
    });
    let mut y = &x * &omega;
    for _ in 0..2 {
        y = orthonormal_columns(&y);
        let z = x.transpose() * &y;
        y = &x * &z;
    }
    let q = orthonormal_columns(&y);
    let b = q.transpose() * &x; // l × d
    let bbt = &b * b.transpose();
    let evd = bbt
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| SpinError::Shape(format!("PCA eigendecomposition failed: {e:?}")))?;
    let (s, u) = (evd.S(), evd.U());
    let k = k.min(l);
    // Largest first: column c of u_top is eigenvector l − 1 − c.
    let u_top = Mat::from_fn(l, k, |i, c| u[(i, l - 1 - c)]);
    let mut dirs = b.transpose() * &u_top; // v = Bᵀ u / σ
    let mut vals = Vec::with_capacity(k);
    for c in 0..k {
        let sigma2 = s[l - 1 - c].max(0.0);
        vals.push(sigma2 / rows as f64);
        let inv = if sigma2 > 0.0 {
            1.0 / sigma2.sqrt()
        } else {
            0.0
        };
        for r in 0..d {
            dirs[(r, c)] *= inv;
        }
    }
    Ok((mean, vals, dirs))
}

/// Input dimensions up to which PCA uses the exact D × D covariance; above, a randomised
/// range finder.
pub const EXACT_PCA_DIM: usize = 4096;

/// Orthonormal columns spanning those of `y` (modified Gram–Schmidt, twice for stability).
fn orthonormal_columns(y: &Mat<f64>) -> Mat<f64> {
    let mut q = y.clone();
    let (n, l) = (q.nrows(), q.ncols());
    for _ in 0..2 {
        for j in 0..l {
            for i in 0..j {
                let dot: f64 = (0..n).map(|r| q[(r, i)] * q[(r, j)]).sum();
                for r in 0..n {
                    let v = q[(r, i)];
                    q[(r, j)] -= dot * v;
                }
            }
            let norm: f64 = (0..n).map(|r| q[(r, j)] * q[(r, j)]).sum::<f64>().sqrt();
            let inv = if norm > 1e-300 { 1.0 / norm } else { 0.0 };
            for r in 0..n {
                q[(r, j)] *= inv;
            }
        }
    }
    q
}

/// PCA on pixels: the `k` directions of largest variance of the training inputs.
pub fn pca_features(inputs: &[f64], d: usize, k: usize) -> Result<LinearFeatures> {
    let (mean, _, w) = pca(inputs, d, k)?;
    Ok(LinearFeatures { mean, w })
}

/// PCA whitening: the map onto the (at most) `m` leading principal coordinates of `inputs`
/// (rows × D), each scaled to unit variance; directions with negligible variance (below 1e-10
/// of the largest) are dropped, so the map may have fewer than `m` columns.
pub fn pca_whitening(inputs: &[f64], d: usize, m: usize) -> Result<LinearFeatures> {
    let (mean, vals, dirs) = pca(inputs, d, m)?;
    let top = vals.first().copied().unwrap_or(0.0);
    let keep = vals
        .iter()
        .take_while(|&&v| v > 1e-10 * top.max(1e-300))
        .count();
    if keep == 0 {
        return Err(SpinError::Config(
            "PCA whitening: the inputs do not vary".into(),
        ));
    }
    let w = Mat::from_fn(d, keep, |r, c| dirs[(r, c)] / vals[c].sqrt());
    Ok(LinearFeatures { mean, w })
}

/// Linear SFA: PCA-whiten the training inputs to `m` dimensions (directions with negligible
/// variance dropped), then take the `k` slowest directions of the whitened differences
/// `inputs[t + 1] − inputs[t]` for t in `pairs` (indices of rows whose successor is the next
/// input of the same sequence).
pub fn linear_sfa(
    inputs: &[f64],
    d: usize,
    pairs: &[usize],
    m: usize,
    k: usize,
) -> Result<LinearFeatures> {
    let LinearFeatures { mean, w: white } = pca_whitening(inputs, d, m)?;
    let keep = white.ncols();
    if keep < k {
        return Err(SpinError::Config(format!(
            "linear SFA: the inputs span only {keep} dimensions, fewer than the {k} features asked for"
        )));
    }
    let diffs = Mat::from_fn(pairs.len(), d, |i, c| {
        let t = pairs[i];
        inputs[(t + 1) * d + c] - inputs[t * d + c]
    });
    let z = &diffs * &white;
    let cov = (z.transpose() * &z) * faer::Scale(1.0 / pairs.len().max(1) as f64);
    let evd = cov
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| SpinError::Shape(format!("SFA eigendecomposition failed: {e:?}")))?;
    let u = evd.U();
    let slow = Mat::from_fn(keep, k, |r, c| u[(r, c)]);
    Ok(LinearFeatures {
        mean,
        w: &white * &slow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streamed moments in pieces equal the Δ-values of all rows at once, and the slowest
    /// directions' Ritz values are those Δ-values.
    #[test]
    fn streamed_moments_give_the_delta_values() {
        let (rows, m) = (240, 3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut f = Vec::with_capacity(rows * m);
        let mut walk = [0.0f64; 3];
        for _ in 0..rows {
            for (j, w) in walk.iter_mut().enumerate() {
                let e: f64 = rand_distr::StandardNormal.sample(&mut rng);
                *w = 0.9 * *w + e * (j + 1) as f64;
            }
            f.extend(walk.iter().map(|w| w + 0.3 * walk[0]));
        }
        // Two sequences of 150 and 90 rows, the first streamed in three pieces.
        let segments = [0..150, 150..240];
        let want = delta_values(&f, m, &segments).unwrap();
        let mut s = SlowMoments::new(m);
        s.add(&f[..50 * m], None);
        s.add(&f[50 * m..120 * m], Some(&f[49 * m..50 * m]));
        s.add(&f[120 * m..150 * m], Some(&f[119 * m..120 * m]));
        s.add(&f[150 * m..], None);
        assert_eq!(s.rows(), rows);
        let (got, c) = s.slowest(3, 1e-12).unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-10 * b.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
        // Σ-orthonormal coefficients.
        let g = c.transpose() * s.covariance() * &c;
        assert!((g - DMatrix::identity(3, 3)).norm() < 1e-9);
    }

    /// The refit's situation: a basis whose extra features nearly repeat the others (a copy
    /// and a combination, each off by noise at 1e-7 of their scale, as duplicated coordinates
    /// or a dead unit's rounding give) has the Ritz pairs of the independent features' span.
    #[test]
    fn ritz_pairs_of_a_nearly_dependent_basis_equal_those_of_its_span() {
        let (rows, m) = (400, 3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut f = Vec::with_capacity(rows * m);
        let mut wide = Vec::with_capacity(rows * (m + 2));
        let mut walk = [0.0f64; 3];
        for _ in 0..rows {
            for (j, w) in walk.iter_mut().enumerate() {
                let e: f64 = rand_distr::StandardNormal.sample(&mut rng);
                *w = (0.95 - 0.2 * j as f64) * *w + e;
            }
            let noise: [f64; 2] = [
                rand_distr::StandardNormal.sample(&mut rng),
                rand_distr::StandardNormal.sample(&mut rng),
            ];
            f.extend(walk);
            wide.extend(walk);
            wide.push(walk[0] + 1e-7 * noise[0]);
            wide.push(2.0 * walk[1] - 0.5 * walk[2] + 1e-7 * noise[1]);
        }
        let ritz = |x: &[f64], m: usize| {
            let mut s = SlowMoments::new(m);
            s.add(x, None);
            s.slowest(3, crate::experiments::video::REFIT_REL_TOL)
                .unwrap()
        };
        let (want, _) = ritz(&f, m);
        let (got, c) = ritz(&wide, m + 2);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6 * b.abs(), "{got:?} vs {want:?}");
        }
        // The Ritz vectors give the same features as the span's: the slowest one's values on
        // the rows agree up to sign.
        let (_, c3) = ritz(&f, m);
        let feature = |x: &[f64], c: &DMatrix<f64>, w: usize| -> Vec<f64> {
            x.chunks(w)
                .map(|r| (0..w).map(|i| r[i] * c[(i, 0)]).sum())
                .collect()
        };
        let (a, b) = (feature(&wide, &c, m + 2), feature(&f, &c3, m));
        let sign = if a[0] * b[0] < 0.0 { -1.0 } else { 1.0 };
        let scale = b.iter().map(|v| v * v).sum::<f64>().sqrt();
        let err = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (sign * x - y).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(err < 1e-5 * scale, "feature differs by {err} of {scale}");
    }

    /// Whitened inputs have the identity covariance; a dimension without variance is dropped.
    #[test]
    fn whitening_gives_unit_covariance_and_drops_flat_directions() {
        let (rows, d) = (500, 4);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut x = Vec::with_capacity(rows * d);
        for _ in 0..rows {
            let a: f64 = rand_distr::StandardNormal.sample(&mut rng);
            let b: f64 = rand_distr::StandardNormal.sample(&mut rng);
            let c: f64 = rand_distr::StandardNormal.sample(&mut rng);
            // Three directions of different scales and a constant fourth pixel.
            x.extend([3.0 * a + b, a - 0.5 * c, 0.1 * c + 2.0 * b, 7.0]);
        }
        let w = pca_whitening(&x, d, 4).unwrap();
        assert_eq!((w.input_dim(), w.output_dim()), (4, 3));
        let z = w.apply(&x);
        for i in 0..3 {
            for j in 0..3 {
                let c: f64 =
                    (0..rows).map(|r| z[r * 3 + i] * z[r * 3 + j]).sum::<f64>() / rows as f64;
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((c - want).abs() < 1e-9, "cov[{i}][{j}] = {c}");
            }
        }
    }

    /// The randomised PCA of a wide matrix finds the same leading variances as the exact one.
    #[test]
    fn randomised_pca_matches_exact_on_a_low_rank_signal() {
        let (rows, d) = (300, EXACT_PCA_DIM + 4);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let basis: Vec<f64> = (0..5 * d)
            .map(|_| rand_distr::StandardNormal.sample(&mut rng))
            .collect();
        let mut x = vec![0.0; rows * d];
        for r in 0..rows {
            let coef: Vec<f64> = (0..5)
                .map(|i| {
                    let v: f64 = rand_distr::StandardNormal.sample(&mut rng);
                    v * (5 - i) as f64
                })
                .collect();
            for c in 0..d {
                x[r * d + c] = (0..5).map(|i| coef[i] * basis[i * d + c]).sum::<f64>();
            }
        }
        let (_, vals, dirs) = pca(&x, d, 3).unwrap();
        // Exact: the eigenvalues of the 5 × 5 problem via the Gram matrix of the rows.
        let xm = DMatrix::from_fn(rows, d, |r, c| x[r * d + c]);
        let mean = xm.row_mean();
        let centred = DMatrix::from_fn(rows, d, |r, c| xm[(r, c)] - mean[c]);
        let gram = &centred * centred.transpose() / rows as f64;
        let mut exact: Vec<f64> = gram.symmetric_eigenvalues().iter().copied().collect();
        exact.sort_by(|a, b| b.total_cmp(a));
        for i in 0..3 {
            assert!(
                (vals[i] - exact[i]).abs() < 1e-6 * exact[0],
                "{vals:?} vs {:?}",
                &exact[..3]
            );
            let norm: f64 = (0..d).map(|r| dirs[(r, i)] * dirs[(r, i)]).sum();
            assert!((norm - 1.0).abs() < 1e-6, "direction {i} has norm {norm}");
        }
    }
}
