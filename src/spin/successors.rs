//! The gradient matrices of SpIN's successors in the form the engine contracts (docs/maths.md
//! §13): the sequentially nested low-rank objective of NeuralSVD and NeuralEF. Each is a pair
//! (G_Π, G_Σ) for the fused backward pass — no Cholesky, no Jacobian average.

use nalgebra::DMatrix;

/// The nested objective's shift margin: c = max(0, λ_max + [`NESTED_MARGIN`] × spread) (see
/// [`nested_matrices`] and [`super::host::lag_shift`]), so every learned level of T = cI − K is positive with
/// room to spare (the front ends' `shift`, 0.05, is used when set).
pub const NESTED_MARGIN: f64 = 0.05;

/// The smallest gap c − λ_l the nested objective's preconditioner divides by, as a share of the
/// largest ([`nested_preconditioner`]).
pub const NESTED_GAP_FLOOR: f64 = 0.02;

/// The gradient matrices of the nested (sequentially nested low-rank) objective for the
/// lowest eigenfunctions of K, in the form the engine contracts (docs/maths.md, "The nested
/// objective"): with T = cI − K and M = c Σ − Π,
///
///   ℒ_l = −2 Σ_{i≤l} M_ii + Σ_{i,j≤l} Σ_ij²,
///
/// feature l descends ℒ_l with features 1…l−1 held fixed. Its minimiser is f_l = √(c − λ_l) φ_l
/// in order (φ_l the eigenfunctions of K, λ_l ascending, c > λ_l). Through feature l alone,
/// dℒ_l = 2 dΠ_ll − 2c E[2 f_l df_l] + 2 Σ_{j≤l} Σ_jl E[2 f_j df_l], so with the engine's
/// one-sided Σ-Jacobian J\[j,l\] = E[2 f_j ∂f_l] and the covariance rule for Π:
///
///   G_Π = 2I,   (G_Σ)_jl = 2 C_jl (j < l),   (G_Σ)_ll = 2 (C_ll − c),   0 below the diagonal.
///
/// C is the coefficient matrix standing for Σ in the quadratic term's derivative. Taken from
/// samples independent of this minibatch (the previous steps' Σ̄), the gradient is unbiased; taken
/// from the minibatch's own Σ̂ it is biased by Cov(Σ̂, J) = O(1/batch). Returns (ℒ_N on the batch's
/// Σ̂ and Π̂, G_Π, G_Σ). Unlike tr Λ, ℒ fixes each feature's scale: no Cholesky is needed.
///
/// `precondition[l]` (empty: all 1) multiplies feature l's gradient, column l of both matrices:
/// each feature descends its own ℒ_l, so any positive factors keep the minimiser. With
/// 1/(c − λ_l) — ℒ_l's curvature along f_l is of that order — every feature moves at the same
/// relative rate, as SpIN's Cholesky normalisation makes them, instead of the ones with small
/// c − λ_l crawling behind the first ([`nested_preconditioner`]).
pub fn nested_matrices(
    coef: &DMatrix<f64>,
    sigma: &DMatrix<f64>,
    pi: &DMatrix<f64>,
    c: f64,
    precondition: &[f64],
) -> (f64, DMatrix<f64>, DMatrix<f64>) {
    let n = sigma.nrows();
    let loss = -2.0 * (c * sigma.trace() - pi.trace()) + sigma.norm_squared();
    let mut g_pi = DMatrix::identity(n, n) * 2.0;
    let mut g_sigma = (coef * 2.0).upper_triangle();
    for l in 0..n {
        g_sigma[(l, l)] -= 2.0 * c;
    }
    scale_columns(&mut g_pi, &mut g_sigma, precondition);
    (loss, g_pi, g_sigma)
}

/// Multiplies column l of both gradient matrices by `factors[l]` (empty: unchanged) — one
/// positive factor per feature, which keeps each objective's minimiser.
fn scale_columns(g_pi: &mut DMatrix<f64>, g_sigma: &mut DMatrix<f64>, factors: &[f64]) {
    for (l, &a) in factors.iter().enumerate() {
        g_pi.column_mut(l).scale_mut(a);
        g_sigma.column_mut(l).scale_mut(a);
    }
}

/// The gradient matrices of the *jointly* nested objective (NeuralSVD's joint nesting, docs/maths.md
/// §13): every feature descends the sum of the ranks' objectives, ℒ = Σ_{l=1}^{N} ℒ_l with ℒ_l
/// of [`nested_matrices`], through all its terms — nothing held fixed. Feature m appears in the
/// ranks l ≥ m, so its share is A_m = N − m + 1 (1-based), and the quadratic term's pair (j, m)
/// in the ranks l ≥ max(j, m), B_jm = N − max(j, m) + 1 of them. With the engine's Σ-Jacobian
/// J\[j,m\] = E[2 f_j ∂f_m], now for every j (not only j ≤ m),
///
///   G_Π = 2 diag(A),   (G_Σ)_jm = 2 B_jm C_jm (every j),   (G_Σ)_mm = 2 A_m (C_mm − c).
///
/// G_Σ is full, so only the fused gradient (β = 1's cotangent on u, which sums over every j)
/// carries it. The minimiser is the nest's, f_l = √(c − λ_l) φ_l in order. `precondition[m]`
/// (empty: all 1) multiplies column m of both matrices — a positive factor per feature, so a
/// descent direction of ℒ with the same stationary points; the trainer passes the nest's
/// 1/(c − λ_m) divided by A_m, so that each feature's own terms weigh as in the sequential nest.
/// Returns (ℒ on the batch's Σ̂ and Π̂, G_Π, G_Σ).
pub fn joint_nested_matrices(
    coef: &DMatrix<f64>,
    sigma: &DMatrix<f64>,
    pi: &DMatrix<f64>,
    c: f64,
    precondition: &[f64],
) -> (f64, DMatrix<f64>, DMatrix<f64>) {
    let n = sigma.nrows();
    let ranks = |m: usize| (n - m) as f64;
    let mut loss = 0.0;
    for l in 0..n {
        let m = sigma.view((0, 0), (l + 1, l + 1));
        let pi_l = pi.view((0, 0), (l + 1, l + 1));
        loss += -2.0 * (c * m.trace() - pi_l.trace()) + m.norm_squared();
    }
    let mut g_pi = DMatrix::zeros(n, n);
    let mut g_sigma = DMatrix::from_fn(n, n, |j, m| 2.0 * ranks(j.max(m)) * coef[(j, m)]);
    for m in 0..n {
        g_pi[(m, m)] = 2.0 * ranks(m);
        g_sigma[(m, m)] -= 2.0 * ranks(m) * c;
    }
    scale_columns(&mut g_pi, &mut g_sigma, precondition);
    (loss, g_pi, g_sigma)
}

/// The jointly nested objective's per-feature factors: the nest's 1/(c − λ_m)
/// ([`nested_preconditioner`]) divided by the m-th feature's number of ranks, N − m (0-based),
/// so that its own terms weigh as in the sequential nest ([`joint_nested_matrices`]).
pub fn joint_nested_preconditioner(lambda: &[f64], c: f64, floor: f64) -> Vec<f64> {
    let n = lambda.len();
    nested_preconditioner(lambda, c, floor)
        .into_iter()
        .enumerate()
        .map(|(m, a)| a / (n - m) as f64)
        .collect()
}

/// The nested objective's per-feature factors 1/(c − λ_l) ([`nested_matrices`]), from the
/// eigenvalue estimates `lambda`; each gap is held at no less than `floor` × the largest, so a
/// feature whose estimate is at or above c (early in training) takes a bounded step.
pub fn nested_preconditioner(lambda: &[f64], c: f64, floor: f64) -> Vec<f64> {
    let gaps: Vec<f64> = lambda.iter().map(|l| c - l).collect();
    let top = gaps.iter().fold(0.0f64, |m, &g| m.max(g));
    if !(top.is_finite() && top > 0.0) {
        return vec![1.0; lambda.len()];
    }
    gaps.iter().map(|&g| top / g.max(floor * top)).collect()
}

/// The gradient matrices of NeuralEF (Deng, Shi, Zhu, 2022; docs/maths.md §13) for the lowest
/// eigenfunctions of K: with T = cI − K, R = c Σ − Π and each feature normalised over the batch,
/// R̂ = D^{-1/2} R D^{-1/2} (D = diag Σ), feature j ascends
///
///   J_j = R̂_jj − Σ_{i<j} R̂_ij² / R̂_ii
///
/// with features i < j held fixed (their R̂_ii, and their side of R̂_ij). Its maximiser is the
/// j-th eigenfunction of T in order (the j-th lowest of K), at any scale. Through feature j
/// alone, with the loss ℒ = −Σ_j J_j:
///
///   ∂ℒ/∂R_jj = −1/Σ_jj,   ∂ℒ/∂R_ij = 2 R_ij / (Σ_ii Σ_jj R̂_ii) through j's side only (i < j),
///   ∂ℒ/∂Σ_jj = R_jj/Σ_jj² − Σ_{i<j} R_ij² / (Σ_ii Σ_jj² R̂_ii)  (the normalisation).
///
/// A derivative through one side of R_ij is half of one through both sides with the same
/// coefficient, in expectation, because T is self-adjoint (E[f_i T df_j] = E[T f_i df_j]); so the
/// covariance rule's G_Π, applied with one orientation to both sides, carries it: with G^R upper
/// triangular (G^R_jj = ∂ℒ/∂R_jj, G^R_ij = ½ ∂ℒ/∂R_ij),
///
///   G_Π = −G^R,   G_Σ = c G^R + diag(∂ℒ/∂Σ_jj).
///
/// Unlike the nested objective it fixes no scale (R̂ is scale-free), and it needs no Cholesky.
/// R̂_ii (i < j) is held at no less than [`NESTED_GAP_FLOOR`] × the largest, so a feature whose
/// estimate is at or above c (early in training) is not divided by zero. (The nested
/// objective's per-feature preconditioner measured worse here: docs/results/objectives.md.)
/// Returns (ℒ on the batch's Σ̂ and Π̂, G_Π, G_Σ).
pub fn neuralef_matrices(
    sigma: &DMatrix<f64>,
    pi: &DMatrix<f64>,
    c: f64,
) -> (f64, DMatrix<f64>, DMatrix<f64>) {
    let n = sigma.nrows();
    let r = sigma * c - pi;
    let d: Vec<f64> = sigma.diagonal().iter().copied().collect();
    let diag: Vec<f64> = (0..n).map(|i| r[(i, i)] / d[i]).collect();
    // Held at a share of the largest R̂_ii, or of the largest |R̂_ii| when every feature's
    // estimate is still above c (none positive).
    let top = diag.iter().fold(0.0f64, |m, &x| m.max(x));
    let size = diag.iter().fold(0.0f64, |m, &x| m.max(x.abs()));
    let floor = NESTED_GAP_FLOOR
        * if top > 0.0 {
            top
        } else {
            size.max(f64::MIN_POSITIVE)
        };
    let held: Vec<f64> = diag.iter().map(|&x| x.max(floor)).collect();
    let mut loss = 0.0;
    let mut g_r = DMatrix::zeros(n, n);
    let mut g_sigma = DMatrix::zeros(n, n);
    for j in 0..n {
        let mut penalty = 0.0;
        g_r[(j, j)] = -1.0 / d[j];
        let mut norm = r[(j, j)] / (d[j] * d[j]);
        for i in 0..j {
            let scale = d[i] * d[j] * held[i];
            penalty += r[(i, j)] * r[(i, j)] / scale;
            g_r[(i, j)] = r[(i, j)] / scale;
            norm -= r[(i, j)] * r[(i, j)] / (scale * d[j]);
        }
        loss -= diag[j] - penalty;
        g_sigma[(j, j)] = norm;
    }
    g_sigma += &g_r * c;
    (loss, -g_r, g_sigma)
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

    /// The gradient the engine forms from (G_Π, G_Σ) for linear features f_l = w_l (rows of
    /// `w`) of a finite space with ⟨f, g⟩ = f·g and symmetric K: the covariance rule on Π
    /// (row l gets Σ_a (G_Π)_al (K w_a + K w_a): both sides of Π with the same orientation) and
    /// the Σ-Jacobian J\[j,k\] = 2 w_j ∂w_k (for j ≤ k only unless G_Σ is full).
    fn engine_gradient(
        w: &DMatrix<f64>,
        k: &DMatrix<f64>,
        g_pi: &DMatrix<f64>,
        g_sigma: &DMatrix<f64>,
    ) -> DMatrix<f64> {
        let n = w.nrows();
        let kw = w * k;
        let mut g = DMatrix::zeros(n, w.ncols());
        for l in 0..n {
            let mut row = nalgebra::RowDVector::zeros(w.ncols());
            for a in 0..n {
                row += kw.row(a) * (2.0 * g_pi[(a, l)]);
            }
            // Every j: the one-sided objectives' G_Σ is upper triangular (zero below), the
            // joint nest's is full.
            for j in 0..n {
                row += w.row(j) * (2.0 * g_sigma[(j, l)]);
            }
            g.set_row(l, &row);
        }
        g
    }

    /// Row l of the engine's gradient `g` is the central finite difference of feature l's own
    /// objective `objective(w, l)` through row l of `w` alone.
    fn assert_each_feature_descends(
        w: &DMatrix<f64>,
        g: &DMatrix<f64>,
        objective: impl Fn(&DMatrix<f64>, usize) -> f64,
    ) {
        let h = 1e-6;
        for l in 0..w.nrows() {
            for a in 0..w.ncols() {
                let (mut up, mut down) = (w.clone(), w.clone());
                up[(l, a)] += h;
                down[(l, a)] -= h;
                let fd = (objective(&up, l) - objective(&down, l)) / (2.0 * h);
                assert!(
                    (g[(l, a)] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                    "feature {l}, coordinate {a}: {} vs {fd}",
                    g[(l, a)]
                );
            }
        }
    }

    fn nested_objective(w: &DMatrix<f64>, k: &DMatrix<f64>, l: usize, c: f64) -> f64 {
        let top = w.rows(0, l + 1).into_owned();
        let sigma = &top * top.transpose();
        let pi = &top * k * top.transpose();
        -2.0 * (c * sigma.trace() - pi.trace()) + sigma.norm_squared()
    }

    #[test]
    fn nested_gradient_is_each_objective_through_its_own_feature_by_finite_differences() {
        let (n, d) = (3, 5);
        let k = spd(d, 2);
        let w = DMatrix::from_fn(n, d, |i, j| ((i * 3 + j * 5) % 7) as f64 / 7.0 - 0.45);
        let sigma = &w * w.transpose();
        let pi = &w * &k * w.transpose();
        let c = 1.7;
        let (loss, g_pi, g_sigma) = nested_matrices(&sigma, &sigma, &pi, c, &[]);
        assert!((loss - nested_objective(&w, &k, n - 1, c)).abs() < 1e-12);
        assert_eq!(
            g_sigma.lower_triangle() - DMatrix::from_diagonal(&g_sigma.diagonal()),
            DMatrix::zeros(n, n)
        );
        let g = engine_gradient(&w, &k, &g_pi, &g_sigma);
        assert_each_feature_descends(&w, &g, |w, l| nested_objective(w, &k, l, c));
    }

    /// The gradient matrices of a nested objective: (coef, Σ, Π, c, factors) → (ℒ, G_Π, G_Σ).
    type NestMatrices = fn(
        &DMatrix<f64>,
        &DMatrix<f64>,
        &DMatrix<f64>,
        f64,
        &[f64],
    ) -> (f64, DMatrix<f64>, DMatrix<f64>);

    /// Gradient descent (`steps` at rate `rate`) with `matrices` on linear features of a 6×6
    /// matrix, plain and with the factors `preconditioner(λ, c, 0.05)`, reaches the nest's
    /// minimiser: feature l is ±√(c − λ_l) times the l-th lowest eigenvector.
    fn assert_descends_to_the_nest(
        matrices: NestMatrices,
        preconditioner: fn(&[f64], f64, f64) -> Vec<f64>,
        steps: usize,
        rate: f64,
    ) {
        let (n, d) = (3, 6);
        let k = spd(d, 4);
        let eig = k.clone().symmetric_eigen();
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]));
        let c = eig.eigenvalues[order[n - 1]] + 1.0;
        let lambda: Vec<f64> = order.iter().take(n).map(|&o| eig.eigenvalues[o]).collect();
        // Plain, and with the per-feature factors: the same minimiser.
        for precondition in [vec![], preconditioner(&lambda, c, 0.05)] {
            let mut w = DMatrix::from_fn(n, d, |i, j| ((i * 5 + j * 3) % 7) as f64 / 20.0 - 0.1);
            for _ in 0..steps {
                let sigma = &w * w.transpose();
                let pi = &w * &k * w.transpose();
                let (_, g_pi, g_sigma) = matrices(&sigma, &sigma, &pi, c, &precondition);
                w -= engine_gradient(&w, &k, &g_pi, &g_sigma) * rate;
            }
            for (l, &o) in order.iter().take(n).enumerate() {
                let v = eig.eigenvectors.column(o);
                let target = (c - eig.eigenvalues[o]).sqrt();
                let proj = w.row(l).dot(&v.transpose());
                assert!(
                    (proj.abs() - target).abs() < 1e-6,
                    "feature {l}: {proj} vs ±{target} (preconditioned: {})",
                    !precondition.is_empty()
                );
                assert!((w.row(l).norm() - target).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn nested_descent_finds_the_lowest_eigenvectors_in_order_scaled_by_the_root_of_c_minus_lambda()
    {
        assert_descends_to_the_nest(nested_matrices, nested_preconditioner, 20_000, 0.02);
    }

    /// The joint nest's objective Σ_l ℒ_l for linear features `w`.
    fn joint_objective(w: &DMatrix<f64>, k: &DMatrix<f64>, c: f64) -> f64 {
        (0..w.nrows()).map(|l| nested_objective(w, k, l, c)).sum()
    }

    #[test]
    fn joint_nested_gradient_is_the_whole_objectives_by_finite_differences() {
        let (n, d) = (4, 6);
        let k = spd(d, 3);
        let w = DMatrix::from_fn(n, d, |i, j| ((i * 3 + j * 5) % 7) as f64 / 7.0 - 0.45);
        let sigma = &w * w.transpose();
        let pi = &w * &k * w.transpose();
        let c = 1.3;
        let (loss, g_pi, g_sigma) = joint_nested_matrices(&sigma, &sigma, &pi, c, &[]);
        assert!((loss - joint_objective(&w, &k, c)).abs() < 1e-12);
        // Full: the pairs below the diagonal carry the later features' pull on earlier ones.
        assert!(g_sigma.lower_triangle().amax() > g_sigma.diagonal().amax() * 1e-3);
        let g = engine_gradient(&w, &k, &g_pi, &g_sigma);
        let h = 1e-6;
        for l in 0..n {
            for a in 0..d {
                let (mut up, mut down) = (w.clone(), w.clone());
                up[(l, a)] += h;
                down[(l, a)] -= h;
                let fd = (joint_objective(&up, &k, c) - joint_objective(&down, &k, c)) / (2.0 * h);
                assert!(
                    (g[(l, a)] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                    "feature {l}, coordinate {a}: {} vs {fd}",
                    g[(l, a)]
                );
            }
        }
        // The factors scale each feature's column and nothing else.
        let factors = [1.0, 2.0, 0.5, 3.0];
        let (_, p_pi, p_sigma) = joint_nested_matrices(&sigma, &sigma, &pi, c, &factors);
        for (m, &f) in factors.iter().enumerate() {
            assert!((p_pi.column(m) - g_pi.column(m) * f).amax() < 1e-12);
            assert!((p_sigma.column(m) - g_sigma.column(m) * f).amax() < 1e-12);
        }
    }

    #[test]
    fn joint_nested_descent_finds_the_nests_minimiser() {
        assert_descends_to_the_nest(
            joint_nested_matrices,
            joint_nested_preconditioner,
            60_000,
            0.01,
        );
    }

    #[test]
    fn joint_nested_preconditioner_divides_the_nests_by_each_features_ranks() {
        let (lambda, c) = ([-1.0, -0.2, 0.0, 0.5], 0.1);
        let nest = nested_preconditioner(&lambda, c, 0.05);
        let joint = joint_nested_preconditioner(&lambda, c, 0.05);
        for m in 0..4 {
            assert!((joint[m] * (4 - m) as f64 - nest[m]).abs() < 1e-12);
        }
    }

    #[test]
    fn nested_preconditioner_is_the_inverse_gap_relative_to_the_largest_and_bounded() {
        let p = nested_preconditioner(&[-1.0, -0.2, 0.0, 0.5], 0.1, 0.05);
        assert!((p[0] - 1.0).abs() < 1e-12);
        assert!((p[1] - 1.1 / 0.3).abs() < 1e-12);
        assert!((p[2] - 11.0).abs() < 1e-12);
        assert!(
            (p[3] - 20.0).abs() < 1e-12,
            "an estimate above c: the floor"
        );
        assert_eq!(nested_preconditioner(&[1.0, 2.0], 0.5, 0.05), [1.0, 1.0]);
    }

    /// −J_l of NeuralEF for feature l of linear features `w`: with R = cΣ − Π (T = cI − K) and
    /// R̂ = D^{-1/2} R D^{-1/2}, −(R̂_ll − Σ_{i<l} R̂_il² / R̂_ii).
    fn neuralef_objective(w: &DMatrix<f64>, k: &DMatrix<f64>, l: usize, c: f64) -> f64 {
        let sigma = w * w.transpose();
        let r = &sigma * c - w * k * w.transpose();
        let hat = |i: usize, j: usize| r[(i, j)] / (sigma[(i, i)] * sigma[(j, j)]).sqrt();
        -(hat(l, l) - (0..l).map(|i| hat(i, l).powi(2) / hat(i, i)).sum::<f64>())
    }

    #[test]
    fn neuralef_gradient_is_each_objective_through_its_own_feature_by_finite_differences() {
        let (n, d) = (4, 6);
        let k = spd(d, 3);
        let w = DMatrix::from_fn(n, d, |i, j| ((i * 3 + j * 5) % 7) as f64 / 7.0 - 0.45);
        let sigma = &w * w.transpose();
        let pi = &w * &k * w.transpose();
        let c = pi.diagonal().max() / sigma.diagonal().min() + 1.0;
        let (loss, g_pi, g_sigma) = neuralef_matrices(&sigma, &pi, c);
        let total: f64 = (0..n).map(|l| neuralef_objective(&w, &k, l, c)).sum();
        assert!((loss - total).abs() < 1e-12, "{loss} vs {total}");
        assert_eq!(
            g_sigma.lower_triangle() - DMatrix::from_diagonal(&g_sigma.diagonal()),
            DMatrix::zeros(n, n)
        );
        let g = engine_gradient(&w, &k, &g_pi, &g_sigma);
        assert_each_feature_descends(&w, &g, |w, l| neuralef_objective(w, &k, l, c));
    }

    #[test]
    fn neuralef_stays_finite_when_every_estimate_is_above_the_shift() {
        let (n, d) = (3, 5);
        let k = spd(d, 2);
        let w = DMatrix::from_fn(n, d, |i, j| ((i * 3 + j * 5) % 7) as f64 / 7.0 - 0.45);
        let sigma = &w * w.transpose();
        let pi = &w * &k * w.transpose();
        // c below every Rayleigh quotient: every R̂_ii < 0.
        let (loss, g_pi, g_sigma) = neuralef_matrices(&sigma, &pi, 0.0);
        assert!(loss.is_finite());
        assert!(g_pi.iter().chain(g_sigma.iter()).all(|v| v.is_finite()));
        assert!(g_pi.amax() < 1e6 && g_sigma.amax() < 1e6);
    }

    #[test]
    fn neuralef_descent_finds_the_lowest_eigenvectors_in_order() {
        let (n, d) = (3, 6);
        let k = spd(d, 4);
        let eig = k.clone().symmetric_eigen();
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]));
        let c = eig.eigenvalues[order[d - 1]] + 0.5;
        let mut w = DMatrix::from_fn(n, d, |i, j| ((i * 5 + j * 3) % 7) as f64 / 20.0 - 0.1);
        for _ in 0..20_000 {
            let sigma = &w * w.transpose();
            let pi = &w * &k * w.transpose();
            let (_, g_pi, g_sigma) = neuralef_matrices(&sigma, &pi, c);
            w -= engine_gradient(&w, &k, &g_pi, &g_sigma) * 0.02;
        }
        let sigma = &w * w.transpose();
        let pi = &w * &k * w.transpose();
        for (l, &o) in order.iter().take(n).enumerate() {
            let v = eig.eigenvectors.column(o);
            let cos = w.row(l).dot(&v.transpose()) / w.row(l).norm();
            assert!((cos.abs() - 1.0).abs() < 1e-8, "feature {l}: cos {cos}");
            // Each feature's own estimate, c − R̂_ll, is its eigenvalue.
            let estimate = pi[(l, l)] / sigma[(l, l)];
            assert!((estimate - eig.eigenvalues[o]).abs() < 1e-8);
        }
    }
}
