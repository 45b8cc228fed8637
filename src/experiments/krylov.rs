//! The lowest eigenpairs of a large symmetric operator applied matrix-free: faer's Krylov–Schur
//! partial eigensolver on σI − A (whose largest eigenvalues are A's lowest when σ bounds A's
//! spectrum from above), with deflation rounds for degenerate eigenvalues. Shared by `spin grid`
//! (the finite-difference Hamiltonian) and `spin graph` (graph Laplacians).

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::matrix_free::eigen::{
    partial_self_adjoint_eigen, partial_self_adjoint_eigen_scratch, PartialEigenParams,
};
use faer::matrix_free::LinOp;
use faer::{Col, Mat, MatMut, MatRef, Par};

use crate::error::{Result, SpinError};

/// y = A x for one vector.
pub type Apply<'a> = dyn Fn(&mut [f64], &[f64]) + Sync + 'a;

/// P(σI − A)P applied matrix-free, with P the projector onto the complement of eigenvectors
/// already found (deflation: a single-vector Krylov method sees one vector per exactly
/// degenerate eigenvalue, so the other copies are found in later rounds).
struct Shifted<'a> {
    n: usize,
    apply: &'a Apply<'a>,
    shift: f64,
    deflate: Vec<Vec<f64>>,
}

impl std::fmt::Debug for Shifted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shifted(n {}, σ {})", self.n, self.shift)
    }
}

impl Shifted<'_> {
    fn project(&self, x: &mut [f64]) {
        for v in &self.deflate {
            let d: f64 = v.iter().zip(x.iter()).map(|(a, b)| a * b).sum();
            for (xi, vi) in x.iter_mut().zip(v) {
                *xi -= d * vi;
            }
        }
    }
}

impl LinOp<f64> for Shifted<'_> {
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
            (self.apply)(&mut y, &x);
            for (yi, xi) in y.iter_mut().zip(&x) {
                *yi = self.shift * xi - *yi;
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
    if k == 0 || k >= n {
        return Err(SpinError::Config(format!(
            "asked for {k} eigenpairs of an operator on {n} unknowns"
        )));
    }
    if n <= DENSE_MAX {
        return Ok(dense_lowest(apply, n, k));
    }
    let mut op = Shifted {
        n,
        apply,
        shift: upper,
        deflate: Vec::new(),
    };
    let params = PartialEigenParams {
        min_dim: (8 * k).max(64),
        max_dim: (24 * k).max(160),
        max_restarts: 400,
        ..Default::default()
    };
    let tol = rel_tol * upper.abs().max(1e-300);
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
            let e = upper - vals[c];
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
