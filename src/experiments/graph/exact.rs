//! Exact quantities on a whole graph (maths §11): Σ and Π summed over every node and edge in
//! f64, the lowest eigenpairs from a sparse eigensolver, and how well a learned subspace spans
//! the exact one.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::data::graph::Graph;
use crate::error::{Result, SpinError};

/// Which Laplacian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// L f = λ D f (D − W against the degree matrix): eigenvalues in [0, 2], nodes weighted by
    /// degree.
    #[default]
    RandomWalk,
    /// (D − W) f = λ f, nodes weighted uniformly.
    Combinatorial,
}

impl std::str::FromStr for Form {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "random-walk" => Ok(Form::RandomWalk),
            "combinatorial" => Ok(Form::Combinatorial),
            _ => Err(format!(
                "`{s}`: the Laplacian is random-walk or combinatorial"
            )),
        }
    }
}

impl Form {
    /// The weight of each node in Σ's inner product (degrees, or ones), normalised to sum 1.
    pub fn node_weights(self, graph: &Graph) -> Vec<f64> {
        match self {
            Form::RandomWalk => {
                let d = graph.degrees();
                let total: f64 = d.iter().sum();
                d.iter().map(|v| v / total).collect()
            }
            Form::Combinatorial => vec![1.0 / graph.n as f64; graph.n],
        }
    }

    /// What Π sums per undirected edge, w (u_i − u_j)(u_i − u_j)ᵀ, is divided by (Σ d, or n),
    /// so that Π/Σ is the Laplacian's Rayleigh quotient.
    pub fn pi_divisor(self, graph: &Graph) -> f64 {
        match self {
            Form::RandomWalk => 2.0 * graph.total_weight(),
            Form::Combinatorial => graph.n as f64,
        }
    }

    /// The scale of the minibatch Π̂ (mean over edges drawn by weight of (u_j − u_i)(…)ᵀ)
    /// that makes its expectation the exact Π: ½ for the random-walk form, W/n (W the total
    /// undirected weight) for the combinatorial one.
    pub fn batch_scale(self, graph: &Graph) -> f64 {
        graph.total_weight() / self.pi_divisor(graph)
    }
}

/// Σ and Π (k, k) of the functions `u` (n, k) over the whole graph, in f64.
pub fn moments(graph: &Graph, form: Form, u: &[f64], k: usize) -> (DMatrix<f64>, DMatrix<f64>) {
    let node_w = form.node_weights(graph);
    let mut sigma = DMatrix::zeros(k, k);
    for (i, &w) in node_w.iter().enumerate() {
        let row = DVector::from_column_slice(&u[i * k..(i + 1) * k]);
        sigma.ger(w, &row, &row, 1.0);
    }
    let mut pi = DMatrix::zeros(k, k);
    let mut diff = DVector::zeros(k);
    let div = form.pi_divisor(graph);
    for (e, &w) in graph.edges.iter().zip(&graph.weights) {
        let (a, b) = (e[0] as usize * k, e[1] as usize * k);
        for c in 0..k {
            diff[c] = u[a + c] - u[b + c];
        }
        pi.ger(w / div, &diff, &diff, 1.0);
    }
    (sigma, pi)
}

/// The `k` lowest eigenpairs of the graph's Laplacian in `form`, from faer's Krylov–Schur
/// solver on the symmetric form (D^{-1/2} W D^{-1/2} for the random walk): ascending values
/// and the eigenvectors f (as the generalised problem defines them, f = D^{-1/2} φ for the
/// random walk), each of unit norm in Σ's inner product.
pub fn reference_eigenpairs(
    graph: &Graph,
    form: Form,
    k: usize,
) -> Result<(Vec<f64>, Vec<Vec<f64>>)> {
    let (row_ptr, cols, ws) = graph.adjacency();
    let deg = graph.degrees();
    let n = graph.n;
    let inv_sqrt: Vec<f64> = deg.iter().map(|&d| 1.0 / d.max(1e-300).sqrt()).collect();
    let apply = |y: &mut [f64], x: &[f64]| {
        for i in 0..n {
            let mut s = 0.0;
            for p in row_ptr[i]..row_ptr[i + 1] {
                let j = cols[p] as usize;
                s += match form {
                    Form::RandomWalk => ws[p] * inv_sqrt[j] * x[j],
                    Form::Combinatorial => ws[p] * x[j],
                };
            }
            y[i] = match form {
                Form::RandomWalk => x[i] - inv_sqrt[i] * s,
                Form::Combinatorial => deg[i] * x[i] - s,
            };
        }
    };
    let upper = match form {
        Form::RandomWalk => 2.0,
        Form::Combinatorial => 2.0 * deg.iter().cloned().fold(0.0, f64::max),
    };
    let pairs = super::super::krylov::lowest_eigenpairs(&apply, n, k, upper, 1e-10)?;
    let node_w = form.node_weights(graph);
    let vectors = pairs
        .iter()
        .map(|(_, phi)| {
            let f: Vec<f64> = match form {
                Form::RandomWalk => phi.iter().zip(&inv_sqrt).map(|(a, b)| a * b).collect(),
                Form::Combinatorial => phi.clone(),
            };
            let norm = f
                .iter()
                .zip(&node_w)
                .map(|(v, w)| w * v * v)
                .sum::<f64>()
                .sqrt()
                .max(1e-300);
            f.iter().map(|v| v / norm).collect()
        })
        .collect();
    Ok((pairs.iter().map(|p| p.0).collect(), vectors))
}

/// How well the span of learned functions `u` (n, k) holds exact eigenvectors, in the inner
/// product with node weights `w`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SubspaceFit {
    /// Principal angles (degrees, ascending) between span(u) and the span of the exact vectors.
    pub principal_angles_degrees: Vec<f64>,
    /// Per exact eigenvector f: ‖P f‖² / ‖f‖², P the projection onto span(u) — the R² of f
    /// regressed on the learned functions (they include the constant).
    pub r2: Vec<f64>,
}

/// The inverse square root of a symmetric positive semi-definite Gram matrix, directions below
/// 1e-12 of its largest eigenvalue dropped.
fn inv_sqrt_gram(g: &DMatrix<f64>) -> DMatrix<f64> {
    let eig = g.clone().symmetric_eigen();
    let top = eig.eigenvalues.iter().cloned().fold(0.0, f64::max);
    let d = eig
        .eigenvalues
        .map(|v| if v > 1e-12 * top { 1.0 / v.sqrt() } else { 0.0 });
    &eig.eigenvectors * DMatrix::from_diagonal(&d) * eig.eigenvectors.transpose()
}

/// [`SubspaceFit`] of `u` (n, k) against `exact` vectors (each of length n), weights `w`.
pub fn subspace_fit(u: &[f64], k: usize, exact: &[Vec<f64>], w: &[f64]) -> Result<SubspaceFit> {
    let n = w.len();
    let m = exact.len();
    if u.len() != n * k || exact.iter().any(|f| f.len() != n) {
        return Err(SpinError::Shape(
            "learned and exact functions on different node sets".into(),
        ));
    }
    let umat = DMatrix::from_row_slice(n, k, u);
    let fmat = DMatrix::from_fn(n, m, |i, j| exact[j][i]);
    let wu = DMatrix::from_fn(n, k, |i, j| w[i] * umat[(i, j)]);
    let wf = DMatrix::from_fn(n, m, |i, j| w[i] * fmat[(i, j)]);
    let guu = umat.tr_mul(&wu);
    let gff = fmat.tr_mul(&wf);
    let guf = umat.tr_mul(&wf);
    let (su, sf) = (inv_sqrt_gram(&guu), inv_sqrt_gram(&gff));
    let c = &su * &guf * &sf;
    let mut cosines: Vec<f64> = c.singular_values().iter().map(|v| v.min(1.0)).collect();
    cosines.sort_by(|a, b| b.total_cmp(a));
    let angles = cosines
        .iter()
        .take(k.min(m))
        .map(|c| c.acos().to_degrees())
        .collect();
    // ‖P f‖² = (Uᵀ W f)ᵀ G_uu⁻¹ (Uᵀ W f).
    let pinv = &su * &su;
    let r2 = (0..m)
        .map(|j| {
            let b = guf.column(j);
            let captured = (b.transpose() * &pinv * b)[(0, 0)];
            captured / gff[(j, j)].max(1e-300)
        })
        .collect();
    Ok(SubspaceFit {
        principal_angles_degrees: angles,
        r2,
    })
}

/// How many nodes carry a function f on the graph: the participation number
/// (Σᵢ wᵢfᵢ²)² / Σᵢ (wᵢfᵢ²)², n for a function spread evenly over n equally weighted nodes, 1 for
/// one node. An exact eigenvector carried by a handful of nodes (a weakly attached outlier of a
/// kNN graph) is a node-level mode that no smooth function of the features follows.
pub fn participation(f: &[f64], w: &[f64]) -> f64 {
    let (s, s2) = f.iter().zip(w).fold((0.0, 0.0), |(s, s2), (v, w)| {
        let m = w * v * v;
        (s + m, s2 + m * m)
    });
    if s2 > 0.0 {
        s * s / s2
    } else {
        0.0
    }
}

/// λ of fixed features along one time series (`f`: `rows` × `n`, row-major): each column's mean
/// squared step over twice its variance on the series — λ = Δ/2 as `--sequence` defines it,
/// with no refitting on the series; 0 for a column that is constant there up to f32 rounding
/// (standard deviation below 10⁻⁵ of its mean: the constant eigenfunction as a network computes
/// it, whose rounding noise alone would give any λ).
pub fn sequence_lambdas(f: &[f64], rows: usize, n: usize) -> Vec<f64> {
    (0..n)
        .map(|k| {
            if rows < 2 {
                return f64::NAN;
            }
            let col = |t: usize| f[t * n + k];
            let mean = (0..rows).map(col).sum::<f64>() / rows as f64;
            let var = (0..rows).map(|t| (col(t) - mean).powi(2)).sum::<f64>() / rows as f64;
            let step = (1..rows)
                .map(|t| (col(t) - col(t - 1)).powi(2))
                .sum::<f64>()
                / (rows - 1) as f64;
            if var <= 1e-10 * mean * mean || var == 0.0 {
                0.0
            } else {
                step / (2.0 * var)
            }
        })
        .collect()
}

/// Exact modes that the learned span misses (R² below one half) and that fewer than 2 % of the
/// nodes carry: (mode, participation) — the ones to put down to the graph, not the training.
pub fn node_level_misses(r2: &[f64], participation: &[f64], nodes: usize) -> Vec<(usize, f64)> {
    r2.iter()
        .zip(participation)
        .enumerate()
        .filter(|(_, (r, p))| **r < 0.5 && **p < 0.02 * nodes as f64)
        .map(|(k, (_, p))| (k, *p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participation_counts_the_nodes_a_function_lives_on() {
        let w = vec![1.0; 100];
        let even = vec![0.3; 100];
        assert!((participation(&even, &w) - 100.0).abs() < 1e-9);
        let mut delta = vec![0.0; 100];
        delta[17] = 2.0;
        assert!((participation(&delta, &w) - 1.0).abs() < 1e-12);
        let mut half = vec![0.0; 100];
        half[..25].fill(1.0);
        assert!((participation(&half, &w) - 25.0).abs() < 1e-9);
        // The node weights count: one heavy node among even values carries most of the mass.
        let mut heavy = vec![1.0; 100];
        heavy[0] = 1000.0;
        assert!(participation(&even, &heavy) < 1.3);
        assert_eq!(participation(&[0.0; 4], &[1.0; 4]), 0.0);
    }

    /// A sampled cosine of frequency ω has λ = 1 − cos ω; a constant column 0; a column that
    /// alternates in sign has the largest λ a unit-variance feature can have on a path, 2.
    #[test]
    fn sequence_lambdas_of_known_series() {
        let rows = 20_000;
        let f: Vec<f64> = (0..rows)
            .flat_map(|t| {
                let t = t as f64;
                let wiggle = 1e-7 * (1.7 * t).sin();
                [
                    3.0 + wiggle,
                    (0.1 * t).cos(),
                    if (t as usize).is_multiple_of(2) {
                        1.0
                    } else {
                        -1.0
                    },
                ]
            })
            .collect();
        let l = sequence_lambdas(&f, rows, 3);
        assert_eq!(l[0], 0.0, "a constant up to rounding");
        assert!((l[1] - (1.0 - 0.1f64.cos())).abs() < 1e-5, "{}", l[1]);
        assert!((l[2] - 2.0).abs() < 1e-3, "{}", l[2]);
        assert!(sequence_lambdas(&f[..3], 1, 3)[1].is_nan());
    }

    #[test]
    fn only_missed_and_localised_modes_are_put_down_to_the_graph() {
        let r2 = [1.0, 0.99, 0.14, 0.2, 0.9];
        let p = [2000.0, 1800.0, 4.0, 900.0, 3.0];
        assert_eq!(node_level_misses(&r2, &p, 2150), vec![(2, 4.0)]);
    }
}
