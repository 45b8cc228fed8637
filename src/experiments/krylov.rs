//! The lowest eigenpairs of a large symmetric operator with faer's Krylov–Schur partial
//! eigensolver, on one of two transforms whose largest eigenvalues are the operator's lowest:
//! σI − A applied matrix-free (σ an upper bound of A's spectrum), or, where A is given as a
//! sparse matrix, shift-and-invert (A − τI)⁻¹ through A − τI's sparse Cholesky factor (τ below
//! A's spectrum). With deflation rounds for degenerate eigenvalues. Shared by `spin grid` (the
//! finite-difference Hamiltonian) and `spin graph` (graph Laplacians).
//!
//! σI − A separates A's lowest eigenvalues by their gaps relative to the whole spectrum's width:
//! for a stiff operator (a confining potential that grows fast, a fine grid) the solver needs
//! thousands of restarts. (A − τI)⁻¹ separates them by the ratios (λ_i − τ)/(λ_j − τ), whatever
//! the spectrum's width.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::solvers::Solve;
use faer::matrix_free::eigen::{
    partial_self_adjoint_eigen, partial_self_adjoint_eigen_scratch, PartialEigenParams,
};
use faer::matrix_free::LinOp;
use faer::sparse::linalg::solvers::{Llt, SymbolicLlt};
use faer::sparse::{SparseColMat, Triplet};
use faer::{Col, Mat, MatMut, MatRef, Par, Side};

use crate::error::{Result, SpinError};

/// y = A x for one vector.
pub type Apply<'a> = dyn Fn(&mut [f64], &[f64]) + Sync + 'a;

/// The transform whose largest eigenvalues the solver finds.
enum Transform<'a> {
    /// σI − A, matrix-free.
    Shift { apply: &'a Apply<'a>, sigma: f64 },
    /// (A − τI)⁻¹, from the Cholesky factor of A − τI.
    Invert { llt: Llt<usize, f64>, tau: f64 },
}

impl Transform<'_> {
    /// A's eigenvalue from the transform's eigenvalue `mu`.
    fn eigenvalue(&self, mu: f64) -> f64 {
        match self {
            Transform::Shift { sigma, .. } => sigma - mu,
            Transform::Invert { tau, .. } => tau + 1.0 / mu,
        }
    }
}

/// P T P applied to vectors, with T the transform and P the projector onto the complement of
/// eigenvectors already found (deflation: a single-vector Krylov method sees one vector per
/// exactly degenerate eigenvalue, so the other copies are found in later rounds).
struct Deflated<'a> {
    n: usize,
    transform: Transform<'a>,
    deflate: Vec<Vec<f64>>,
}

impl std::fmt::Debug for Deflated<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.transform {
            Transform::Shift { sigma, .. } => write!(f, "σI − A (n {}, σ {sigma})", self.n),
            Transform::Invert { tau, .. } => write!(f, "(A − τI)⁻¹ (n {}, τ {tau})", self.n),
        }
    }
}

impl Deflated<'_> {
    fn project(&self, x: &mut [f64]) {
        for v in &self.deflate {
            let d: f64 = v.iter().zip(x.iter()).map(|(a, b)| a * b).sum();
            for (xi, vi) in x.iter_mut().zip(v) {
                *xi -= d * vi;
            }
        }
    }
}

impl LinOp<f64> for Deflated<'_> {
    fn apply_scratch(&self, _rhs_ncols: usize, _par: Par) -> faer::dyn_stack::StackReq {
        faer::dyn_stack::StackReq::EMPTY
    }
    fn nrows(&self) -> usize {
        self.n
    }
    fn ncols(&self) -> usize {
        self.n
    }
    fn apply(&self, mut out: MatMut<'_, f64>, rhs: MatRef<'_, f64>, _par: Par, _: &mut MemStack) {
        let mut x = vec![0.0; self.n];
        let mut y = vec![0.0; self.n];
        for c in 0..rhs.ncols() {
            for (i, v) in x.iter_mut().enumerate() {
                *v = rhs[(i, c)];
            }
            self.project(&mut x);
            match &self.transform {
                Transform::Shift { apply, sigma } => {
                    apply(&mut y, &x);
                    for (yi, xi) in y.iter_mut().zip(&x) {
                        *yi = sigma * xi - *yi;
                    }
                }
                Transform::Invert { llt, .. } => {
                    let mut col = Mat::<f64>::from_fn(self.n, 1, |i, _| x[i]);
                    llt.solve_in_place(col.as_mut());
                    for (i, yi) in y.iter_mut().enumerate() {
                        *yi = col[(i, 0)];
                    }
                }
            }
            self.project(&mut y);
            for (i, v) in y.iter().enumerate() {
                out[(i, c)] = *v;
            }
        }
    }
    fn conj_apply(&self, out: MatMut<'_, f64>, rhs: MatRef<'_, f64>, par: Par, s: &mut MemStack) {
        self.apply(out, rhs, par, s);
    }
}

/// Operators on at most this many unknowns are solved densely (the Krylov–Schur solver needs
/// more unknowns than its subspace).
const DENSE_MAX: usize = 600;

/// The `k` lowest eigenpairs of `apply` built as a dense matrix.
fn dense_lowest(apply: &Apply, n: usize, k: usize) -> Vec<(f64, Vec<f64>)> {
    let mut a = nalgebra::DMatrix::zeros(n, n);
    let mut e = vec![0.0; n];
    let mut col = vec![0.0; n];
    for j in 0..n {
        e[j] = 1.0;
        apply(&mut col, &e);
        e[j] = 0.0;
        for i in 0..n {
            a[(i, j)] = col[i];
        }
    }
    let a = (&a + a.transpose()) * 0.5;
    let eig = a.symmetric_eigen();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| eig.eigenvalues[x].total_cmp(&eig.eigenvalues[y]));
    order
        .into_iter()
        .take(k)
        .map(|c| {
            (
                eig.eigenvalues[c],
                eig.eigenvectors.column(c).iter().copied().collect(),
            )
        })
        .collect()
}

/// The `k` lowest eigenpairs (ascending values, unit eigenvectors) of the symmetric operator
/// `apply` on ℝⁿ, whose eigenvalues are all at most `upper` (e.g. a Gershgorin bound).
/// `rel_tol` is the solver's residual tolerance relative to `upper`.
pub fn lowest_eigenpairs(
    apply: &Apply,
    n: usize,
    k: usize,
    upper: f64,
    rel_tol: f64,
) -> Result<Vec<(f64, Vec<f64>)>> {
    check_count(n, k)?;
    if n <= DENSE_MAX {
        return Ok(dense_lowest(apply, n, k));
    }
    let tol = rel_tol * upper.abs().max(1e-300);
    krylov_schur(
        Deflated {
            n,
            transform: Transform::Shift {
                apply,
                sigma: upper,
            },
            deflate: Vec::new(),
        },
        k,
        tol,
    )
}

/// The `k` lowest eigenpairs of the symmetric sparse matrix A on ℝⁿ given by `lower_entries`
/// (row ≥ column, (row, column, value); repeated entries add), whose eigenvalues are all at
/// least `lower` (e.g. a Gershgorin bound), by shift-and-invert: Krylov–Schur on (A − τI)⁻¹,
/// τ = `lower` − δ with δ = max(1, |`lower`|)·10⁻³, through a sparse Cholesky factor of A − τI.
/// `rel_tol` is the solver's residual tolerance relative to 1/δ, the largest eigenvalue the
/// inverse can have. Fails (to fall back on [`lowest_eigenpairs`]) when the factor does not
/// fit in memory or A − τI is not positive definite.
pub fn lowest_eigenpairs_sparse(
    lower_entries: &[(usize, usize, f64)],
    n: usize,
    k: usize,
    lower: f64,
    rel_tol: f64,
) -> Result<Vec<(f64, Vec<f64>)>> {
    check_count(n, k)?;
    if n <= DENSE_MAX {
        let apply = |y: &mut [f64], x: &[f64]| apply_lower(lower_entries, y, x);
        return Ok(dense_lowest(&apply, n, k));
    }
    let delta = lower.abs().max(1.0) * 1e-3;
    let tau = lower - delta;
    let factor_error = |what: &str, e: String| {
        SpinError::Config(format!("the shift-and-invert solver's {what} failed: {e}"))
    };
    let mut triplets: Vec<Triplet<usize, usize, f64>> = lower_entries
        .iter()
        .filter(|&&(r, c, _)| r >= c)
        .map(|&(r, c, v)| Triplet::new(r, c, v))
        .collect();
    triplets.extend((0..n).map(|i| Triplet::new(i, i, -tau)));
    let a = SparseColMat::<usize, f64>::try_new_from_triplets(n, n, &triplets)
        .map_err(|e| factor_error("matrix assembly", format!("{e:?}")))?;
    let symbolic = SymbolicLlt::try_new(a.symbolic(), Side::Lower)
        .map_err(|e| factor_error("symbolic Cholesky factorisation", format!("{e:?}")))?;
    let llt = Llt::try_new_with_symbolic(symbolic, a.as_ref(), Side::Lower)
        .map_err(|e| factor_error("Cholesky factorisation", format!("{e:?}")))?;
    krylov_schur(
        Deflated {
            n,
            transform: Transform::Invert { llt, tau },
            deflate: Vec::new(),
        },
        k,
        rel_tol / delta,
    )
}

/// y = A x for the symmetric A given by its entries on and below the diagonal.
fn apply_lower(lower_entries: &[(usize, usize, f64)], y: &mut [f64], x: &[f64]) {
    y.iter_mut().for_each(|v| *v = 0.0);
    for &(r, c, v) in lower_entries.iter().filter(|e| e.0 >= e.1) {
        y[r] += v * x[c];
        if r != c {
            y[c] += v * x[r];
        }
    }
}

fn check_count(n: usize, k: usize) -> Result<()> {
    if k == 0 || k >= n {
        return Err(SpinError::Config(format!(
            "asked for {k} eigenpairs of an operator on {n} unknowns"
        )));
    }
    Ok(())
}

/// Krylov–Schur rounds on `op` until `k` eigenpairs have converged and a round finds none
/// lower than the k-th; absolute residual tolerance `tol`.
fn krylov_schur(mut op: Deflated, k: usize, tol: f64) -> Result<Vec<(f64, Vec<f64>)>> {
    let n = op.n;
    // The Krylov subspace's bounds: wide for σI − A, whose wanted eigenvalues crowd together;
    // (A − τI)⁻¹ separates them, and its subspace's orthogonalisation would dominate.
    let dims = match op.transform {
        Transform::Shift { .. } => ((8 * k).max(64), (24 * k).max(160)),
        Transform::Invert { .. } => ((2 * k).max(16), (4 * k).max(40)),
    };
    let params = PartialEigenParams {
        min_dim: dims.0,
        max_dim: dims.1,
        max_restarts: 400,
        ..Default::default()
    };
    let mut pairs: Vec<(f64, Vec<f64>)> = Vec::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for _round in 0..12 {
        let want = k.min(n - op.deflate.len());
        if want == 0 {
            break;
        }
        let mut vecs = Mat::<f64>::zeros(n, want);
        let mut vals = vec![0.0f64; want];
        let mut v0: Vec<f64> = (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect();
        op.project(&mut v0);
        let norm = v0.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
        let v0 = Col::<f64>::from_fn(n, |i| v0[i] / norm);
        let mut mem = MemBuffer::new(partial_self_adjoint_eigen_scratch(
            &op,
            want,
            Par::Seq,
            params,
        ));
        let info = partial_self_adjoint_eigen(
            vecs.as_mut(),
            &mut vals,
            &op,
            v0.as_ref(),
            tol,
            Par::Seq,
            MemStack::new(&mut mem),
            params,
        );
        let kth = {
            let mut e: Vec<f64> = pairs.iter().map(|p| p.0).collect();
            e.sort_by(f64::total_cmp);
            e.get(k - 1).copied().unwrap_or(f64::INFINITY)
        };
        let mut improved = false;
        for c in 0..info.n_converged_eigen.min(want) {
            let e = op.transform.eigenvalue(vals[c]);
            if !kth.is_finite() || e < kth - 1e-9 * kth.abs().max(1.0) {
                improved = true;
            }
            let v: Vec<f64> = (0..n).map(|i| vecs[(i, c)]).collect();
            op.deflate.push(v.clone());
            pairs.push((e, v));
        }
        if pairs.len() >= k && info.n_converged_eigen > 0 && !improved {
            break;
        }
    }
    if pairs.len() < k {
        return Err(SpinError::Config(format!(
            "the eigensolver converged {} of {k} eigenpairs",
            pairs.len()
        )));
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    pairs.truncate(k);
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// −Δ_h + V on an m×m grid with a quartic well (stiff: V reaches 10⁴ at the edges), as
    /// lower-triangle entries.
    fn quartic_grid(m: usize) -> (Vec<(usize, usize, f64)>, f64) {
        let h = 12.0 / (m + 1) as f64;
        let c = 1.0 / (h * h);
        let mut e = Vec::new();
        let mut lower = f64::INFINITY;
        for j in 0..m {
            for i in 0..m {
                let (x, y) = (-6.0 + (i + 1) as f64 * h, -6.0 + (j + 1) as f64 * h);
                let v = 0.5 * x * x + 2.0 * y * y + 8.0 * x.powi(4);
                lower = lower.min(v);
                let idx = j * m + i;
                e.push((idx, idx, 4.0 * c + v));
                if i > 0 {
                    e.push((idx, idx - 1, -c));
                }
                if j > 0 {
                    e.push((idx, idx - m, -c));
                }
            }
        }
        (e, lower)
    }

    #[test]
    fn shift_and_invert_matches_the_dense_and_the_matrix_free_solves() {
        let m = 26; // 676 unknowns: above the dense cut-off
        let (e, lower) = quartic_grid(m);
        let n = m * m;
        let apply = |y: &mut [f64], x: &[f64]| apply_lower(&e, y, x);
        let k = 6;
        let dense = dense_lowest(&apply, n, k);
        let inv = lowest_eigenpairs_sparse(&e, n, k, lower, 1e-12).unwrap();
        // Gershgorin: the largest diagonal entry plus four couplings.
        let coupling = -e.iter().map(|t| t.2).fold(f64::INFINITY, f64::min);
        let upper = e.iter().map(|t| t.2).fold(f64::NEG_INFINITY, f64::max) + 4.0 * coupling;
        let shift = lowest_eigenpairs(&apply, n, k, upper, 1e-12).unwrap();
        for c in 0..k {
            let want = dense[c].0;
            for (name, got) in [("shift-and-invert", &inv[c]), ("σI − A", &shift[c])] {
                assert!(
                    (got.0 - want).abs() < 1e-8 * want.abs(),
                    "{name} eigenvalue {c}: {} vs dense {want}",
                    got.0
                );
                // A unit eigenvector with a small residual.
                let mut av = vec![0.0; n];
                apply(&mut av, &got.1);
                let norm: f64 = got.1.iter().map(|v| v * v).sum::<f64>().sqrt();
                let res: f64 = av
                    .iter()
                    .zip(&got.1)
                    .map(|(a, v)| (a - got.0 * v).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!((norm - 1.0).abs() < 1e-9, "{name} vector {c} norm {norm}");
                assert!(res < 1e-6 * want.abs(), "{name} vector {c} residual {res}");
            }
        }
    }

    #[test]
    fn a_small_sparse_operator_is_solved_densely() {
        // 100 unknowns: fewer than the Krylov subspace would hold.
        let (e, lower) = quartic_grid(10);
        let apply = |y: &mut [f64], x: &[f64]| apply_lower(&e, y, x);
        let dense = dense_lowest(&apply, 100, 4);
        let got = lowest_eigenpairs_sparse(&e, 100, 4, lower, 1e-12).unwrap();
        for (g, d) in got.iter().zip(&dense) {
            assert!((g.0 - d.0).abs() < 1e-9 * d.0.abs(), "{} vs {}", g.0, d.0);
        }
    }

    #[test]
    fn shift_and_invert_refuses_a_bound_above_the_spectrum() {
        // τ above the lowest eigenvalue: A − τI is indefinite and its Cholesky factor fails,
        // which is the grid's signal to fall back on the matrix-free solve.
        let (e, _) = quartic_grid(26);
        let err = lowest_eigenpairs_sparse(&e, 26 * 26, 3, 50.0, 1e-12).unwrap_err();
        assert!(err.to_string().contains("Cholesky"), "{err}");
    }
}
