//! Linear operators (maths §4) and the batches they turn samples into.
//!
//! An operator K enters SpIN only through Π̂ = (1/Q) Σ_q w_q X_q Y_qᵀ, where X and Y are sparse
//! linear combinations of network outputs at the batch's rows. A [`Batch`] carries those rows
//! (network inputs) and the gather lists; the GPU applies them (`operator_apply.wgsl`) and their
//! transpose (`operator_backward.wgsl`). Local operators (Laplacian stencils, potentials and their
//! sums) become [`Operator::Stencil`]; kernels on pairs of samples become [`Operator::PairKernel`].
//! An operator whose Y needs more than network values (the exact Laplacian's forward-mode
//! derivatives) adds a new variant and a kernel that writes Y, without touching the step.

mod operator;
pub mod samplers;
pub mod wgsl_field;

pub use operator::{Coef, Operator, StencilTerm};

use std::sync::Arc;

use crate::error::{Result, SpinError};

/// A scalar function of points, evaluated a batch at a time (on the host, or on the GPU for
/// potentials given as WGSL expressions).
pub trait Field: Send + Sync {
    /// Values at `points` (count, dim).
    fn values(&self, points: &[f64], dim: usize) -> Result<Vec<f64>>;
}

impl<F: Fn(&[f64]) -> f64 + Send + Sync> Field for F {
    fn values(&self, points: &[f64], dim: usize) -> Result<Vec<f64>> {
        Ok(points.chunks(dim).map(self).collect())
    }
}

/// A shared scalar field, e.g. a potential V(x).
pub type ScalarField = Arc<dyn Field>;
/// A kernel k(x, x′) on pairs of points.
pub type PairFn = Arc<dyn Fn(&[f64], &[f64]) -> f64 + Send + Sync>;

/// One gathered term: `coef × u[row]`. Shared with the WGSL `Term` struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Term {
    /// Row of the batch.
    pub row: u32,
    /// Coefficient.
    pub coef: f32,
}

/// One entry of the transposed gathers (which pair a row feeds, on which side, with what
/// coefficient). Shared with the WGSL `Entry` struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Entry {
    /// Pair index q.
    pub q: u32,
    /// 0: the row feeds X\[q\]; 1: it feeds Y\[q\].
    pub side: u32,
    /// Coefficient.
    pub coef: f32,
    /// Padding to 16 bytes.
    pub pad: u32,
}

/// The sizes that fix a batch's GPU buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BatchShape {
    /// Network input dimension.
    pub input_dim: usize,
    /// Rows R the network is evaluated on.
    pub rows: usize,
    /// Rows 0..S that enter Σ̂ (and the Σ-Jacobian).
    pub samples: usize,
    /// Pairs Q that enter Π̂.
    pub pairs: usize,
    /// Terms per X.
    pub tx: usize,
    /// Terms per Y.
    pub ty: usize,
    /// 1: every row is a network value. d + 2 (exact Laplacian): rows are channel-major,
    /// row c·S + b holds channel c of sample b (value, ∂_1..∂_d, Δ) and the network is run in
    /// forward mode.
    pub channels: usize,
}

/// A training or evaluation batch: network inputs and the operator's gathers.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Sizes.
    pub shape: BatchShape,
    /// Network inputs (rows, input_dim).
    pub inputs: Vec<f32>,
    /// Importance weights of the sample rows (samples).
    pub sample_weights: Vec<f32>,
    /// X gathers (pairs, tx).
    pub x_terms: Vec<Term>,
    /// Y gathers (pairs, ty).
    pub y_terms: Vec<Term>,
    /// Importance weights of the pairs (pairs).
    pub pair_weights: Vec<f32>,
}

impl Batch {
    /// Appends the radial feature ‖x‖ (and its derivatives on forward-mode rows) to the inputs:
    /// the batch of a network with [`crate::nn::NetworkSpec::radial`] set.
    pub fn add_radial_feature(&mut self) {
        let d = self.shape.input_dim;
        let inputs: Vec<f64> = self.inputs.iter().map(|&v| v as f64).collect();
        self.inputs = crate::nn::radial_inputs(&inputs, d, self.shape.channels)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        self.shape.input_dim = d + 1;
    }

    /// Appends the input features of `spec` (the radial feature, then the particle distances)
    /// that its coordinates do not already carry.
    pub fn add_features(&mut self, spec: &crate::nn::NetworkSpec) {
        if spec.radial {
            self.add_radial_feature();
        }
        if let Some(f) = spec.particle_features {
            let width = self.shape.input_dim;
            let inputs: Vec<f64> = self.inputs.iter().map(|&v| v as f64).collect();
            self.inputs = crate::nn::particle_inputs(&inputs, width, self.shape.channels, f)
                .into_iter()
                .map(|v| v as f32)
                .collect();
            self.shape.input_dim = width + f.count();
        }
    }

    /// The gathers transposed as CSR over rows: (row_ptr (rows + 1), entries).
    pub fn transpose(&self) -> (Vec<u32>, Vec<Entry>) {
        let rows = self.shape.rows;
        let mut per_row: Vec<Vec<Entry>> = vec![Vec::new(); rows];
        let sides = [
            (&self.x_terms, self.shape.tx, 0u32),
            (&self.y_terms, self.shape.ty, 1u32),
        ];
        for (terms, t, side) in sides {
            for (idx, term) in terms.iter().enumerate() {
                // Zero coefficients are kept so that the entry count is fixed per batch shape.
                per_row[term.row as usize].push(Entry {
                    q: (idx / t) as u32,
                    side,
                    coef: term.coef,
                    pad: 0,
                });
            }
        }
        let mut row_ptr = Vec::with_capacity(rows + 1);
        let mut entries = Vec::new();
        row_ptr.push(0);
        for list in per_row {
            entries.extend(list);
            row_ptr.push(entries.len() as u32);
        }
        (row_ptr, entries)
    }

    /// Checks the internal consistency of the batch (sizes and row indices).
    pub fn validate(&self) -> Result<()> {
        let s = &self.shape;
        let ok = self.inputs.len() == s.rows * s.input_dim
            && self.sample_weights.len() == s.samples
            && s.samples <= s.rows
            && (s.channels == 1 || s.rows == s.channels * s.samples)
            && self.x_terms.len() == s.pairs * s.tx
            && self.y_terms.len() == s.pairs * s.ty
            && self.pair_weights.len() == s.pairs
            && s.samples > 0
            && s.pairs > 0
            && self
                .x_terms
                .iter()
                .chain(&self.y_terms)
                .all(|t| (t.row as usize) < s.rows);
        if ok {
            Ok(())
        } else {
            Err(SpinError::Shape(format!("inconsistent batch {s:?}")))
        }
    }
}

/// CPU f64 oracle of `operator_apply.wgsl`: X and Y (pairs, n) from outputs u (rows, n).
pub fn apply(batch: &Batch, u: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let s = &batch.shape;
    let gather = |terms: &[Term], t: usize| {
        let mut out = vec![0.0; s.pairs * n];
        for q in 0..s.pairs {
            for term in &terms[q * t..(q + 1) * t] {
                for m in 0..n {
                    out[q * n + m] += term.coef as f64 * u[term.row as usize * n + m];
                }
            }
        }
        out
    };
    (gather(&batch.x_terms, s.tx), gather(&batch.y_terms, s.ty))
}

/// CPU f64 oracle of the reductions: (Σ̂, Π̂), each (n, n) row-major.
pub fn statistics(
    batch: &Batch,
    u: &[f64],
    xs: &[f64],
    ys: &[f64],
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    let s = &batch.shape;
    let mut sigma = vec![0.0; n * n];
    let mut pi = vec![0.0; n * n];
    for r in 0..s.samples {
        let w = batch.sample_weights[r] as f64;
        for j in 0..n {
            for k in 0..n {
                sigma[j * n + k] += w * u[r * n + j] * u[r * n + k] / s.samples as f64;
            }
        }
    }
    for q in 0..s.pairs {
        let w = batch.pair_weights[q] as f64;
        for j in 0..n {
            for k in 0..n {
                pi[j * n + k] += w * xs[q * n + j] * ys[q * n + k] / s.pairs as f64;
            }
        }
    }
    (sigma, pi)
}

/// CPU f64 oracle of `operator_backward.wgsl`: the cotangent on the outputs u (rows, n) from
/// Π̂ with the covariance rule, given G_Π (n, n).
pub fn pi_cotangent(batch: &Batch, xs: &[f64], ys: &[f64], g_pi: &[f64], n: usize) -> Vec<f64> {
    let s = &batch.shape;
    let mut cot = vec![0.0; s.rows * n];
    let times_g =
        |z: &[f64], q: usize, m: usize| (0..n).map(|a| z[q * n + a] * g_pi[a * n + m]).sum::<f64>();
    for (terms, t, other) in [(&batch.x_terms, s.tx, ys), (&batch.y_terms, s.ty, xs)] {
        for (idx, term) in terms.iter().enumerate() {
            let q = idx / t;
            let w = batch.pair_weights[q] as f64 / s.pairs as f64;
            for m in 0..n {
                cot[term.row as usize * n + m] += term.coef as f64 * w * times_g(other, q, m);
            }
        }
    }
    cot
}

impl Batch {
    /// A batch that only evaluates the network at `points` (X = Y = u): for reading outputs.
    pub fn plain(points: &[f64], dim: usize) -> Result<Batch> {
        let count = points.len() / dim.max(1);
        if count == 0 || points.len() != count * dim {
            return Err(SpinError::Shape(format!(
                "{} coordinates are not points of dimension {dim}",
                points.len()
            )));
        }
        let terms: Vec<Term> = (0..count)
            .map(|s| Term {
                row: s as u32,
                coef: 1.0,
            })
            .collect();
        Ok(Batch {
            shape: BatchShape {
                input_dim: dim,
                rows: count,
                samples: count,
                pairs: count,
                tx: 1,
                ty: 1,
                channels: 1,
            },
            inputs: points.iter().map(|&v| v as f32).collect(),
            sample_weights: vec![1.0; count],
            x_terms: terms.clone(),
            y_terms: terms,
            pair_weights: vec![1.0; count],
        })
    }
}

impl Batch {
    /// The slowness operator's batch (maths §4, §9): `clips` clips of `clip_len` consecutive
    /// inputs each (rows clip-major, `input_dim` values per input); pair q is one step t → t + 1
    /// inside a clip, X_q = Y_q = u(x_{t+1}) − u(x_t), so Π̂ is the mean outer product of the
    /// differences. Σ̂ is over every input; no difference crosses a clip.
    pub fn slowness(
        inputs: &[f32],
        input_dim: usize,
        clips: usize,
        clip_len: usize,
    ) -> Result<Batch> {
        let rows = clips * clip_len;
        if clips == 0 || clip_len < 2 || inputs.len() != rows * input_dim {
            return Err(SpinError::Shape(format!(
                "a slowness batch needs clips of at least 2 inputs: {clips} clips × {clip_len} inputs of {input_dim} values, got {} values",
                inputs.len()
            )));
        }
        let mut terms = Vec::with_capacity(2 * clips * (clip_len - 1));
        for c in 0..clips {
            for t in 0..clip_len - 1 {
                let row = (c * clip_len + t) as u32;
                terms.push(Term {
                    row: row + 1,
                    coef: 1.0,
                });
                terms.push(Term { row, coef: -1.0 });
            }
        }
        let pairs = clips * (clip_len - 1);
        Ok(Batch {
            shape: BatchShape {
                input_dim,
                rows,
                samples: rows,
                pairs,
                tx: 2,
                ty: 2,
                channels: 1,
            },
            inputs: inputs.to_vec(),
            sample_weights: vec![1.0; rows],
            x_terms: terms.clone(),
            y_terms: terms,
            pair_weights: vec![1.0; pairs],
        })
    }
}

impl Batch {
    /// A graph Laplacian's batch (maths §11): `nodes` leading rows that alone enter Σ̂ (uniform
    /// nodes, the combinatorial form; 0: Σ̂ is over every row), then the endpoints of the edges,
    /// two rows per edge. Pair q is edge q, X_q = u_j − u_i and Y_q = `scale` · (u_j − u_i).
    pub fn edges(inputs: &[f32], input_dim: usize, nodes: usize, scale: f64) -> Result<Batch> {
        let rows = inputs.len() / input_dim.max(1);
        let pairs = rows.saturating_sub(nodes) / 2;
        if pairs == 0 || rows * input_dim != inputs.len() || nodes + 2 * pairs != rows {
            return Err(SpinError::Shape(format!(
                "an edge batch is {nodes} node rows and then two rows per edge: {} values of \
                 dimension {input_dim}",
                inputs.len()
            )));
        }
        let mut x_terms = Vec::with_capacity(2 * pairs);
        for q in 0..pairs {
            let i = (nodes + 2 * q) as u32;
            x_terms.push(Term {
                row: i + 1,
                coef: 1.0,
            });
            x_terms.push(Term { row: i, coef: -1.0 });
        }
        let y_terms = x_terms
            .iter()
            .map(|t| Term {
                row: t.row,
                coef: t.coef * scale as f32,
            })
            .collect();
        let samples = if nodes > 0 { nodes } else { rows };
        Ok(Batch {
            shape: BatchShape {
                input_dim,
                rows,
                samples,
                pairs,
                tx: 2,
                ty: 2,
                channels: 1,
            },
            inputs: inputs.to_vec(),
            sample_weights: vec![1.0; samples],
            x_terms,
            y_terms,
            pair_weights: vec![1.0; pairs],
        })
    }
}
