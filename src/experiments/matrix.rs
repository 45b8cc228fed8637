//! The reference's sanity check: the K lowest eigenpairs of a symmetric matrix M, learned with
//! one-hot inputs, a linear network and the kernel operator k(x, x′) = xᵀ M x′ on pairs.

use std::path::Path;
use std::sync::Arc;

use nalgebra::DMatrix;

use crate::error::{Result, SpinError};
use crate::gpu::GpuContext;
use crate::nn::NetworkSpec;
use crate::operators::samplers::OneHot;
use crate::operators::Operator;
use crate::spin::{Problem, TrainConfig, Trainer};

/// Reads a square symmetric matrix from CSV ([`crate::io::read_numbers_csv`]: comma-, semicolon-
/// or whitespace-separated, an optional header line).
pub fn read_matrix_csv(path: &Path) -> Result<DMatrix<f64>> {
    let name = path.display().to_string();
    let table = crate::io::read_numbers_csv(path)?;
    let rows = table.rows;
    let n = rows.len();
    if n == 0 {
        return Err(SpinError::Parse {
            path: name,
            message: "the file holds no matrix".into(),
        });
    }
    if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != n) {
        return Err(SpinError::Parse {
            path: name,
            message: format!(
                "the matrix is not square: {n} rows but row {} has {} entries",
                i + 1,
                r.len()
            ),
        });
    }
    let m = DMatrix::from_fn(n, n, |i, j| rows[i][j]);
    let scale = m.amax().max(1e-300);
    for i in 0..n {
        for j in 0..i {
            if (m[(i, j)] - m[(j, i)]).abs() > 1e-9 * scale {
                return Err(SpinError::Parse {
                    path: name,
                    message: format!(
                        "the matrix is not symmetric: M[{i},{j}] = {} but M[{j},{i}] = {}",
                        m[(i, j)],
                        m[(j, i)]
                    ),
                });
            }
        }
    }
    Ok(m)
}

/// Eigenpairs of a symmetric matrix, ascending: (values, vectors as columns).
pub fn exact_eigenpairs(m: &DMatrix<f64>) -> (Vec<f64>, DMatrix<f64>) {
    let eig = m.clone().symmetric_eigen();
    let mut order: Vec<usize> = (0..m.nrows()).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]));
    let values = order.iter().map(|&i| eig.eigenvalues[i]).collect();
    let vectors = DMatrix::from_fn(m.nrows(), m.nrows(), |r, c| eig.eigenvectors[(r, order[c])]);
    (values, vectors)
}

/// The SpIN problem for the lowest `k` eigenpairs of `m`.
pub fn matrix_problem(m: &DMatrix<f64>, k: usize) -> Result<Problem> {
    let n = m.nrows();
    if k == 0 || k > n {
        return Err(SpinError::Config(format!(
            "--neig must be between 1 and {n}, got {k}"
        )));
    }
    let mm = Arc::new(m.clone());
    let operator = Operator::pair_kernel(Arc::new(move |x: &[f64], y: &[f64]| {
        n as f64 * mm[(OneHot::decode(x), OneHot::decode(y))]
    }));
    Ok(Problem {
        spec: NetworkSpec {
            input_dim: n,
            hidden: vec![],
            outputs: k,
            envelope: None,
            radial: false,
            ..Default::default()
        },
        operator,
        sampler: Box::new(OneHot::new(n)?),
    })
}

/// The learned eigenpairs next to the exact ones.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MatrixResult {
    /// Learned eigenvalues (Rayleigh–Ritz of the final evaluation), ascending.
    pub eigenvalues: Vec<f64>,
    /// diag Λ of the final evaluation (in the network's order).
    pub lambda_diag: Vec<f64>,
    /// Exact lowest eigenvalues (nalgebra), ascending.
    pub exact_eigenvalues: Vec<f64>,
    /// |learned − exact| / |exact|.
    pub relative_errors: Vec<f64>,
    /// Learned eigenvectors v = L⁻¹ u over the states, unit norm, one per row (k, n).
    #[serde(skip)]
    pub eigenvectors: Vec<Vec<f64>>,
    /// Exact eigenvectors, one per row (k, n).
    #[serde(skip)]
    pub exact_eigenvectors: Vec<Vec<f64>>,
    /// Steps run.
    pub steps: u64,
    /// Wall time of training in seconds.
    pub wall_seconds: f64,
    /// Steps per second.
    pub steps_per_second: f64,
    /// Adapter name.
    pub adapter: String,
    /// The data-parallel ranks and their traffic ([`Trainer::parallel_metrics`]).
    pub parallel: serde_json::Value,
}

/// Trains on the lowest `k` eigenpairs of `m` and evaluates exactly (all pairs).
pub fn learn_matrix(
    ctx: Arc<GpuContext>,
    m: &DMatrix<f64>,
    k: usize,
    config: TrainConfig,
    mut on_step: impl FnMut(&crate::spin::StepReport),
) -> Result<MatrixResult> {
    let problem = matrix_problem(m, k)?;
    let steps = config.steps;
    let mut trainer = Trainer::new(ctx.clone(), problem, config)?;
    let start = std::time::Instant::now();
    for _ in 0..steps {
        let report = trainer.step()?;
        on_step(&report);
    }
    trainer.report_replicas()?;
    let wall = start.elapsed().as_secs_f64();
    let eval = trainer.evaluate(0, 0, 0)?;
    let n = m.nrows();
    let sampler = OneHot::new(n)?;
    let mut points = Vec::new();
    for i in 0..n {
        sampler.encode(i, &mut points);
    }
    let v = trainer.eigenfunctions(&points, &eval.sigma)?;
    let eigenvectors: Vec<Vec<f64>> = (0..k)
        .map(|j| {
            let col: Vec<f64> = (0..n).map(|i| v[i * k + j]).collect();
            let norm = col.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
            col.iter().map(|x| x / norm).collect()
        })
        .collect();
    let (values, vectors) = exact_eigenpairs(m);
    let exact: Vec<f64> = values[..k].to_vec();
    let relative_errors = eval
        .eigenvalues
        .iter()
        .zip(&exact)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1e-12))
        .collect();
    Ok(MatrixResult {
        eigenvalues: eval.eigenvalues,
        lambda_diag: eval.lambda_diag,
        exact_eigenvalues: exact,
        relative_errors,
        eigenvectors,
        exact_eigenvectors: (0..k)
            .map(|j| vectors.column(j).iter().copied().collect())
            .collect(),
        steps,
        wall_seconds: wall,
        steps_per_second: steps as f64 / wall.max(1e-9),
        adapter: ctx.adapter().name.clone(),
        parallel: trainer.parallel_metrics(),
    })
}

/// `metrics.json` of a `spin matrix` run on `file` with `config`.
pub fn metrics(
    result: &MatrixResult,
    file: &Path,
    neig: usize,
    config: &TrainConfig,
) -> serde_json::Value {
    serde_json::json!({
        "command": "matrix",
        "file": file.display().to_string(),
        "n": result.exact_eigenvectors.first().map_or(0, |v| v.len()),
        "neig": neig,
        "config": config,
        "eigenvalues": result.eigenvalues,
        "lambda_diag": result.lambda_diag,
        "exact_eigenvalues": result.exact_eigenvalues,
        "relative_errors": result.relative_errors,
        "eigenvector_overlaps": result
            .eigenvectors
            .iter()
            .zip(&result.exact_eigenvectors)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>().abs())
            .collect::<Vec<_>>(),
        "steps": result.steps,
        "wall_seconds": result.wall_seconds,
        "steps_per_second": result.steps_per_second,
        "adapter": result.adapter,
        "parallel": result.parallel,
    })
}
