//! The host's part of a SpIN step (maths §2), in f64 with nalgebra: Σ̄ update, Cholesky, Λ and
//! the two gradient matrices G_Π and G_Σ.

use nalgebra::DMatrix;

use crate::error::{Result, SpinError};

pub use super::successors::{
    joint_nested_matrices, joint_nested_preconditioner, nested_matrices, nested_preconditioner,
    neuralef_matrices, NESTED_GAP_FLOOR, NESTED_MARGIN,
};

/// What the host derives from Σ̄ and Π̂ in one step.
#[derive(Clone, Debug)]
pub struct StepMatrices {
    /// L = chol(Σ̄), lower triangular.
    pub chol: DMatrix<f64>,
    /// L⁻¹.
    pub chol_inv: DMatrix<f64>,
    /// Λ = L⁻¹ Π̂ L⁻ᵀ.
    pub lambda: DMatrix<f64>,
    /// G_Π = L⁻ᵀ diag(L⁻¹) (upper triangular).
    pub g_pi: DMatrix<f64>,
    /// G_Σ = −L⁻ᵀ triu(Λ diag(L⁻¹)) (upper triangular).
    pub g_sigma: DMatrix<f64>,
}

impl StepMatrices {
    /// tr Λ, the loss.
    pub fn loss(&self) -> f64 {
        self.lambda.trace()
    }
    /// diag Λ, the eigenvalue estimates.
    pub fn eigenvalues(&self) -> Vec<f64> {
        self.lambda.diagonal().iter().copied().collect()
    }
}

/// A row-major n×n matrix from a flat slice.
pub fn matrix(flat: &[f32], n: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, n, |i, j| flat[i * n + j] as f64)
}

/// Flattens a matrix row-major.
pub fn flat(m: &DMatrix<f64>) -> Vec<f64> {
    let mut out = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            out.push(m[(i, j)]);
        }
    }
    out
}

/// Cholesky factor of a symmetric matrix, or an error naming the first feature whose pivot is
/// not positive.
pub fn cholesky(sigma: &DMatrix<f64>) -> Result<DMatrix<f64>> {
    let sym = (sigma + sigma.transpose()) * 0.5;
    if let Some(c) = nalgebra::Cholesky::new(sym.clone()) {
        let l = c.l();
        if l.iter().all(|v| v.is_finite()) {
            return Ok(l);
        }
    }
    // Find the first leading block that is not positive definite, for the message.
    let n = sym.nrows();
    for k in 1..=n {
        let block = sym.view((0, 0), (k, k)).into_owned();
        if nalgebra::Cholesky::new(block.clone()).is_none() {
            let pivot = if k == 1 {
                block[(0, 0)]
            } else {
                let prev = nalgebra::Cholesky::new(sym.view((0, 0), (k - 1, k - 1)).into_owned())
                    .map(|c| c.l())
                    .unwrap_or_else(|| DMatrix::identity(k - 1, k - 1));
                let b = sym.view((0, k - 1), (k - 1, 1)).into_owned();
                let y = prev.solve_lower_triangular(&b).unwrap_or(b);
                block[(k - 1, k - 1)] - y.norm_squared()
            };
            return Err(SpinError::Cholesky {
                feature: k - 1,
                pivot,
            });
        }
    }
    Err(SpinError::Cholesky {
        feature: n.saturating_sub(1),
        pivot: f64::NAN,
    })
}

/// Λ, G_Π and G_Σ from the moving average Σ̄ and this step's Π̂ (maths §2).
pub fn step_matrices(sigma_avg: &DMatrix<f64>, pi: &DMatrix<f64>) -> Result<StepMatrices> {
    let n = sigma_avg.nrows();
    let chol = cholesky(sigma_avg)?;
    let chol_inv = chol
        .solve_lower_triangular(&DMatrix::identity(n, n))
        .ok_or(SpinError::Cholesky {
            feature: 0,
            pivot: 0.0,
        })?;
    let lambda = &chol_inv * pi * chol_inv.transpose();
    let dl = DMatrix::from_diagonal(&chol_inv.diagonal());
    let g_pi = chol_inv.transpose() * &dl;
    let g_sigma = -(chol_inv.transpose() * (&lambda * &dl).upper_triangle());
    Ok(StepMatrices {
        chol,
        chol_inv,
        lambda,
        g_pi,
        g_sigma,
    })
}

/// Re-takes G_Σ of `m` (from [`step_matrices`]) for the shifted operator K − cI: Π̂ − c Σ̂ in
/// place of Π̂, Σ̂ this step's batch estimate, its Jacobian the averaged one (J̄, as for Σ).
/// With β = 1 (Σ̄ = Σ̂) this is the same gradient: tr Λ only moves by −cN. With β < 1 it is
/// not: Σ̄ lags the features, and along the directions where tr Λ is flat (rescaling a feature,
/// mixing earlier features into it) the lag pushes feature k with the sign of its eigenvalue
/// λ_k — away from the flat minimum when λ_k > 0 (the feature shrinks or merges into earlier
/// ones until Σ̄ is singular), back to it when λ_k < 0. Shifting by c > λ_max makes every
/// direction stable. `lambda` and G_Π stay as they were.
pub fn shift_gradient(m: &mut StepMatrices, pi: &DMatrix<f64>, sigma_batch: &DMatrix<f64>, c: f64) {
    if c != 0.0 {
        let shifted = &m.chol_inv * (pi - sigma_batch * c) * m.chol_inv.transpose();
        let dl = DMatrix::from_diagonal(&m.chol_inv.diagonal());
        m.g_sigma = -(m.chol_inv.transpose() * (&shifted * &dl).upper_triangle()) - &m.g_pi * c;
    }
}

/// The shift c for [`shift_gradient`]: the smallest that makes the shifted spectrum
/// negative with room to spare, c = max(0, λ_max + `margin` × spread) (spread: largest minus
/// smallest estimate; with one feature, its magnitude), estimates from the reported EMA once
/// there is one. 0 — no shift — when the spectrum is already that far below zero: Σ̄'s lag is
/// then stabilising by itself, and every unit of c adds c × (noise of Σ̂) to the gradient.
pub fn lag_shift(ema: &[f64], current: &[f64], margin: f64) -> f64 {
    let v = if ema.is_empty() { current } else { ema };
    let (lo, hi) = v
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
    if !hi.is_finite() {
        return 0.0;
    }
    let spread = if v.len() > 1 { hi - lo } else { hi.abs() };
    (hi + margin * spread).max(0.0)
}

/// The gauge term of the gradient matrix G_Σ: μ (I − L⁻¹)ᵀ, upper triangular like G_Σ, with
/// `chol_inv` = L⁻¹ of Σ̄ = L Lᵀ.
///
/// tr Λ = tr(L⁻¹ Π L⁻ᵀ) is unchanged when the features u are replaced by A u for any lower
/// triangular A with a positive diagonal (each feature rescaled, earlier features mixed into
/// later ones): along those directions nothing holds the features, and their scale and
/// correlation drift with the noise of Σ̂ until Σ̂ is ill-conditioned. Contracted with the
/// Σ-Jacobian like G_Σ (Σ_{j≤k} G_jk J\[j,k,:\], J\[j,k\] = (2/S) Σ_b w_b u_{b,j} ∂u_{b,k}/∂θ),
/// this matrix gives every sample the cotangent (2/S) w_b μ (I − L⁻¹) u_b: a descent step moves
/// u toward L⁻¹ u, the whitened features (Σ = I), along exactly those directions — it is
/// lower triangular in feature space, so feature k is only ever pulled by features j ≤ k and
/// the masked gradient's order is kept. It vanishes at Σ̄ = I, and since Λ is the same on the
/// whole orbit, the optimum of SpIN is unchanged.
pub fn gauge_gradient(chol_inv: &DMatrix<f64>, mu: f64) -> DMatrix<f64> {
    let n = chol_inv.nrows();
    (DMatrix::identity(n, n) - chol_inv).transpose() * mu
}

/// Adds the gauge term of weight ρ = `rho` ([`gauge_gradient`], μ = ρ × [`gauge_scale`]) to
/// `m`'s G_Σ; returns its share ‖G_gauge‖ / (‖G_gauge‖ + ‖G_Σ‖) for the run's health (0 when
/// `rho` is 0, which leaves `m` as it was).
pub fn add_gauge(m: &mut StepMatrices, ema: &[f64], rho: f64) -> f64 {
    if rho == 0.0 {
        return 0.0;
    }
    let g = gauge_gradient(&m.chol_inv, rho * gauge_scale(ema, &m.eigenvalues()));
    let share = g.norm() / (g.norm() + m.g_sigma.norm()).max(f64::MIN_POSITIVE);
    m.g_sigma += g;
    share
}

/// The eigenvalue scale that the gauge weight multiplies: the spread of the estimates (largest
/// minus smallest; the EMA once there is one), which is unchanged by a shift of the operator;
/// their largest magnitude when they do not spread; 1 when both are 0. The SpIN gradient's own
/// cotangents scale with the eigenvalues, so the gauge's weight relative to them does not
/// depend on the units of the operator.
pub fn gauge_scale(ema: &[f64], current: &[f64]) -> f64 {
    let v = if ema.is_empty() { current } else { ema };
    let finite = || v.iter().copied().filter(|x| x.is_finite());
    let lo = finite().fold(f64::INFINITY, f64::min);
    let hi = finite().fold(f64::NEG_INFINITY, f64::max);
    let mag = finite().fold(0.0f64, |m, x| m.max(x.abs()));
    let spread = if hi > lo { hi - lo } else { 0.0 };
    if spread > 0.0 {
        spread
    } else if mag > 0.0 {
        mag
    } else {
        1.0
    }
}

/// Condition number (largest over smallest eigenvalue) of a symmetric positive matrix;
/// infinite when it is singular.
pub fn condition(sigma: &DMatrix<f64>) -> f64 {
    let sym = (sigma + sigma.transpose()) * 0.5;
    let e = sym.symmetric_eigenvalues();
    let (lo, hi) = e.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    if lo > 0.0 && hi.is_finite() {
        hi / lo
    } else {
        f64::INFINITY
    }
}

/// Condition number (largest over smallest eigenvalue) of the correlation matrix of a symmetric
/// positive matrix; infinite when it is singular.
pub fn correlation_condition(sigma: &DMatrix<f64>) -> f64 {
    let d: Vec<f64> = sigma
        .diagonal()
        .iter()
        .map(|v| 1.0 / v.max(0.0).sqrt())
        .collect();
    condition(&DMatrix::from_fn(sigma.nrows(), sigma.ncols(), |i, j| {
        sigma[(i, j)] * d[i] * d[j]
    }))
}

/// Rayleigh–Ritz eigenvalues of (Λ + Λᵀ)/2, ascending.
pub fn ritz_values(lambda: &DMatrix<f64>) -> Vec<f64> {
    let sym = (lambda + lambda.transpose()) * 0.5;
    let mut v: Vec<f64> = sym.symmetric_eigenvalues().iter().copied().collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The `k` lowest Rayleigh–Ritz pairs of the pencil (sym Π, Σ) on a basis that may be nearly
/// linearly dependent: Σ = Q D Qᵀ is truncated to the directions with d > `rel_tol` · d_max
/// (correlation-scaled first, so units do not matter), and the reduced symmetric problem is
/// solved there. Returns the ascending values and the coefficient vectors as columns of a
/// (basis, k) matrix, Σ-orthonormal (cᵀ Σ c = I). Fails when fewer than `k` directions survive.
pub fn lowest_ritz_pairs(
    sigma: &DMatrix<f64>,
    pi: &DMatrix<f64>,
    k: usize,
    rel_tol: f64,
) -> Result<(Vec<f64>, DMatrix<f64>)> {
    let m = sigma.nrows();
    let scale: Vec<f64> = (0..m)
        .map(|i| {
            let d = sigma[(i, i)];
            if d > 0.0 && d.is_finite() {
                1.0 / d.sqrt()
            } else {
                0.0
            }
        })
        .collect();
    let s = DMatrix::from_fn(m, m, |i, j| {
        0.5 * (sigma[(i, j)] + sigma[(j, i)]) * scale[i] * scale[j]
    });
    let p = DMatrix::from_fn(m, m, |i, j| {
        0.5 * (pi[(i, j)] + pi[(j, i)]) * scale[i] * scale[j]
    });
    let eig = s.symmetric_eigen();
    let top = eig.eigenvalues.iter().copied().fold(0.0f64, f64::max);
    let keep: Vec<usize> = (0..m)
        .filter(|&i| eig.eigenvalues[i] > rel_tol * top)
        .collect();
    if keep.len() < k || !top.is_finite() {
        return Err(SpinError::Shape(format!(
            "the basis spans {} independent directions, {k} eigenfunctions asked for",
            keep.len()
        )));
    }
    // T = Q_keep D_keep^{-1/2}: Tᵀ S T = I.
    let t = DMatrix::from_fn(m, keep.len(), |i, c| {
        eig.eigenvectors[(i, keep[c])] / eig.eigenvalues[keep[c]].sqrt()
    });
    let reduced = t.transpose() * &p * &t;
    let reduced = (&reduced + reduced.transpose()) * 0.5;
    let r = reduced.symmetric_eigen();
    let mut order: Vec<usize> = (0..keep.len()).collect();
    order.sort_by(|&a, &b| r.eigenvalues[a].total_cmp(&r.eigenvalues[b]));
    let values = order[..k].iter().map(|&i| r.eigenvalues[i]).collect();
    let y = DMatrix::from_fn(keep.len(), k, |i, c| r.eigenvectors[(i, order[c])]);
    let c = t * y;
    let c = DMatrix::from_fn(m, k, |i, j| c[(i, j)] * scale[i]);
    Ok((values, c))
}

/// Standard errors of the Rayleigh–Ritz eigenvalues of (Σ, Π) estimated from independent,
/// equally sized chunks (Σ_c, Π_c) whose mean is (Σ, Π), by first-order perturbation: with the
/// Ritz vectors v_k (v_kᵀ Σ v_k = 1, ascending λ_k), chunk c moves λ_k by
/// δ_ck = v_kᵀ (sym Π_c − λ_k Σ_c) v_k, and the error of the mean is std(δ_·k)/√C.
/// Empty with fewer than two chunks.
pub fn ritz_std_errors(
    sigma: &DMatrix<f64>,
    pi: &DMatrix<f64>,
    chunks: &[(DMatrix<f64>, DMatrix<f64>)],
) -> Result<Vec<f64>> {
    let c = chunks.len();
    if c < 2 {
        return Ok(Vec::new());
    }
    let l_inv = cholesky(sigma)?
        .solve_lower_triangular(&DMatrix::identity(sigma.nrows(), sigma.ncols()))
        .ok_or_else(|| SpinError::Shape("singular Cholesky factor".into()))?;
    let sym = |m: &DMatrix<f64>| (m + m.transpose()) * 0.5;
    let eig = (&l_inv * sym(pi) * l_inv.transpose()).symmetric_eigen();
    let mut order: Vec<usize> = (0..eig.eigenvalues.len()).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]));
    Ok(order
        .into_iter()
        .map(|k| {
            let lambda = eig.eigenvalues[k];
            let v = l_inv.transpose() * eig.eigenvectors.column(k);
            let deltas: Vec<f64> = chunks
                .iter()
                .map(|(s, p)| (v.transpose() * (sym(p) - s * lambda) * &v)[(0, 0)])
                .collect();
            let mean = deltas.iter().sum::<f64>() / c as f64;
            let var = deltas.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (c - 1) as f64;
            (var / c as f64).sqrt()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize, seed: u64) -> DMatrix<f64> {
        // A fixed, well-conditioned symmetric positive matrix without an RNG dependency.
        let a = DMatrix::from_fn(n, n, |i, j| {
            ((i * 7 + j * 13 + seed as usize * 5) % 11) as f64 / 11.0 - 0.4
        });
        &a * a.transpose() + DMatrix::identity(n, n) * 0.5
    }

    #[test]
    fn ritz_pairs_of_a_dependent_basis_are_those_of_its_span() {
        // Four basis functions spanning three dimensions: the fourth is b₀ + 2 b₁ (scaled by
        // 1000, so correlation scaling matters). Their Ritz values are the pencil (Π₀, Σ₀)'s.
        let s0 = spd(3, 1);
        let p0 = {
            let a = spd(3, 4) - DMatrix::identity(3, 3) * 2.0;
            (&a + a.transpose()) * 0.5
        };
        let a = DMatrix::from_row_slice(
            3,
            4,
            &[1.0, 0.0, 0.0, 1e3, 0.0, 1.0, 0.0, 2e3, 0.0, 0.0, 1.0, 0.0],
        );
        let sigma = a.transpose() * &s0 * &a;
        let pi = a.transpose() * &p0 * &a;
        let want = ritz_values(&step_matrices(&s0, &p0).unwrap().lambda);
        let (got, c) = lowest_ritz_pairs(&sigma, &pi, 3, 1e-10).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-9, "{got:?} vs {want:?}");
        }
        let gram = c.transpose() * &sigma * &c;
        assert!((gram - DMatrix::identity(3, 3)).amax() < 1e-9);
        for (j, g) in got.iter().enumerate() {
            let r = &pi * c.column(j) - &sigma * c.column(j) * *g;
            assert!(r.amax() < 1e-8, "residual {}", r.amax());
        }
        // Only three independent directions: four pairs cannot be had.
        assert!(lowest_ritz_pairs(&sigma, &pi, 4, 1e-10).is_err());
    }

    #[test]
    fn shift_leaves_the_gradient_unchanged_when_sigma_is_this_batch_s() {
        let sigma = spd(4, 1);
        let pi = spd(4, 2) * 3.0 - DMatrix::identity(4, 4);
        let plain = step_matrices(&sigma, &pi).unwrap();
        for c in [-2.0, 0.5, 7.3] {
            let mut shifted = plain.clone();
            shift_gradient(&mut shifted, &pi, &sigma, c);
            assert!((&shifted.g_pi - &plain.g_pi).amax() < 1e-12);
            assert!(
                (&shifted.g_sigma - &plain.g_sigma).amax() < 1e-10,
                "shift {c}: {} vs {}",
                shifted.g_sigma,
                plain.g_sigma
            );
            assert!((&shifted.lambda - &plain.lambda).amax() < 1e-12);
        }
    }

    #[test]
    fn shift_changes_the_gradient_when_sigma_lags() {
        let sigma = spd(3, 1);
        let batch = &sigma * 0.8;
        let pi = spd(3, 2);
        let plain = step_matrices(&sigma, &pi).unwrap();
        let mut shifted = plain.clone();
        shift_gradient(&mut shifted, &pi, &batch, 2.0);
        // Λ' = Λ − c L⁻¹ Σ̂ L⁻ᵀ = Λ − 0.8 c I, so G_Σ' = G_Σ + 0.8 c G_Π − c G_Π = G_Σ − 0.4 G_Π.
        let expected = &plain.g_sigma - &plain.g_pi * 0.4;
        assert!((&shifted.g_sigma - expected).amax() < 1e-10);
    }

    /// Linear features u = W x on a whitened sample (E[x xᵀ] = I): Σ = W Wᵀ, Π = W A Wᵀ, and the
    /// masked Σ-Jacobian contracted with G gives ∂/∂W = 2 Gᵀ W (row k of W only sees j ≤ k).
    fn gauge_descent(w: &DMatrix<f64>, mu: f64) -> DMatrix<f64> {
        let sigma = w * w.transpose();
        let l_inv = cholesky(&sigma)
            .unwrap()
            .solve_lower_triangular(&DMatrix::identity(w.nrows(), w.nrows()))
            .unwrap();
        let g = gauge_gradient(&l_inv, mu);
        assert!(
            g.lower_triangle().amax() <= g.diagonal().amax() + 1e-15
                && (g.clone() - g.upper_triangle()).amax() == 0.0,
            "G must be upper triangular like G_Σ: {g}"
        );
        w - g.transpose() * w * 2.0
    }

    #[test]
    fn gauge_vanishes_at_identity_and_is_upper_triangular() {
        let i = DMatrix::<f64>::identity(4, 4);
        assert_eq!(gauge_gradient(&i, 3.0).amax(), 0.0);
        let l_inv = cholesky(&spd(4, 3))
            .unwrap()
            .solve_lower_triangular(&DMatrix::identity(4, 4))
            .unwrap();
        let g = gauge_gradient(&l_inv, 0.5);
        assert_eq!((g.clone() - g.upper_triangle()).amax(), 0.0);
        assert!(g.amax() > 0.0);
    }

    #[test]
    fn gauge_descent_whitens_the_features_and_never_moves_lambda() {
        // Features with scales 1e-2 … 30 and strong mixing; a fixed symmetric operator A.
        let n = 4;
        let mut w = DMatrix::from_fn(n, n, |i, j| ((i * 3 + j * 5) % 7) as f64 / 7.0 - 0.3);
        for (k, s) in [30.0, 0.01, 2.0, 0.5].iter().enumerate() {
            w.row_mut(k).scale_mut(*s);
        }
        w += DMatrix::identity(n, n) * 0.05;
        let a = {
            let b = spd(n, 7) - DMatrix::identity(n, n);
            (&b + b.transpose()) * 0.5
        };
        let lambda = |w: &DMatrix<f64>| {
            step_matrices(&(w * w.transpose()), &(w * &a * w.transpose()))
                .unwrap()
                .lambda
        };
        let before = lambda(&w);
        for _ in 0..400 {
            w = gauge_descent(&w, 0.1);
        }
        let sigma = &w * w.transpose();
        assert!(
            (&sigma - DMatrix::identity(n, n)).amax() < 1e-6,
            "Σ after the gauge's descent: {sigma}"
        );
        // Every step was u → (I − 2μ(I − L⁻¹)) u, lower triangular: Λ (not only its trace) is
        // the same matrix, so the ordered eigenfunctions are too.
        let after = lambda(&w);
        assert!(
            (&after - &before).amax() < 1e-9 * before.amax(),
            "Λ moved: {before} → {after}"
        );
    }

    #[test]
    fn gauge_scale_is_the_spread_then_the_magnitude_then_one() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(gauge_scale(&[-2.0, -0.5, -0.1], &[]), 1.9));
        assert!(close(gauge_scale(&[], &[3.0, 1.0]), 2.0));
        // A shift of the operator does not change it.
        assert!(close(gauge_scale(&[98.0, 99.5, 99.9], &[]), 1.9));
        assert!(close(gauge_scale(&[-4.0], &[]), 4.0));
        assert!(close(gauge_scale(&[0.0, 0.0], &[]), 1.0));
        assert!(close(gauge_scale(&[f64::NAN, 2.0, 5.0], &[]), 3.0));
    }

    #[test]
    fn condition_sees_scale_unlike_the_correlation_condition() {
        let d = DMatrix::from_diagonal(&nalgebra::DVector::from_vec(vec![1e-3, 1.0, 1e4]));
        assert!((condition(&d) / 1e7 - 1.0).abs() < 1e-9);
        assert!(condition(&DMatrix::from_element(2, 2, 1.0)).is_infinite());
    }

    #[test]
    fn correlation_condition_ignores_scale_and_sees_dependence() {
        let d = DMatrix::from_diagonal(&nalgebra::DVector::from_vec(vec![1e-3, 1.0, 1e4]));
        assert!((correlation_condition(&d) - 1.0).abs() < 1e-12);
        let near = DMatrix::from_row_slice(2, 2, &[1.0, 0.999, 0.999, 1.0]);
        assert!((correlation_condition(&near) - 1.999 / 0.001).abs() < 1e-6);
        assert!(correlation_condition(&DMatrix::from_element(2, 2, 1.0)).is_infinite());
    }

    #[test]
    fn lag_shift_sits_just_above_the_top_of_the_spectrum_and_never_below_zero() {
        let v = [1.0, 3.0, 7.0];
        assert!((lag_shift(&v, &[], 0.05) - 7.3).abs() < 1e-12);
        assert!((lag_shift(&v, &[], 0.5) - 10.0).abs() < 1e-12);
        // A spectrum well below zero needs no shift; one just below it still gets a little.
        let low: Vec<f64> = v.iter().map(|x| x - 20.0).collect();
        assert_eq!(lag_shift(&low, &[], 0.05), 0.0);
        let near: Vec<f64> = v.iter().map(|x| x - 7.1).collect();
        assert!((lag_shift(&near, &[], 0.05) - 0.2).abs() < 1e-12);
        // Before the EMA exists, this step's estimates; one feature: its magnitude.
        assert!((lag_shift(&[], &[2.0], 0.5) - 3.0).abs() < 1e-12);
        assert_eq!(lag_shift(&[], &[f64::NAN], 1.0), 0.0);
    }
}
