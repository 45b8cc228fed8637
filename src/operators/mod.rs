//! Linear operators (SPEC §4) and the batches they turn samples into.
//!
//! An operator K enters SpIN only through Π̂ = (1/Q) Σ_q w_q X_q Y_qᵀ, where X and Y are sparse
//! linear combinations of network outputs at the batch's rows. A [`Batch`] carries those rows
//! (network inputs) and the gather lists; the GPU applies them (`operator_apply.wgsl`) and their
//! transpose (`operator_backward.wgsl`). Local operators (Laplacian stencils, potentials and their
//! sums) become [`Operator::Stencil`]; kernels on pairs of samples become [`Operator::PairKernel`].
//! An operator whose Y needs more than network values (the exact Laplacian's forward-mode
//! derivatives) adds a new variant and a kernel that writes Y, without touching the step.

pub mod samplers;
pub mod wgsl_field;

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
    /// 0: the row feeds X[q]; 1: it feeds Y[q].
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

/// A coefficient of a stencil term: a constant, or a scalar field evaluated at the sample.
#[derive(Clone)]
pub enum Coef {
    /// c
    Const(f64),
    /// c · V(x)
    Field(f64, ScalarField),
}

impl Coef {
    /// The coefficient at every point of a batch.
    fn values(&self, points: &[f64], dim: usize) -> Result<Vec<f64>> {
        let count = points.len() / dim;
        match self {
            Coef::Const(c) => Ok(vec![*c; count]),
            Coef::Field(c, v) => {
                let vals = v.values(points, dim)?;
                if vals.len() != count {
                    return Err(SpinError::Shape(format!(
                        "a field gave {} values for {count} points",
                        vals.len()
                    )));
                }
                Ok(vals.into_iter().map(|x| c * x).collect())
            }
        }
    }
    fn scaled(&self, s: f64) -> Self {
        match self {
            Coef::Const(c) => Coef::Const(c * s),
            Coef::Field(c, v) => Coef::Field(c * s, v.clone()),
        }
    }
}

/// One term of a local operator: coefficient(x) · u(x + offset).
#[derive(Clone)]
pub struct StencilTerm {
    /// Offset from the sample point.
    pub offset: Vec<f64>,
    /// Coefficient.
    pub coef: Coef,
}

/// A symmetric linear operator, composable by sums and scalar multiples.
#[derive(Clone)]
pub enum Operator {
    /// (Ku)(x) = Σ_t c_t(x) u(x + δ_t): finite-difference Laplacians, potentials, their sums.
    Stencil {
        /// Dimension of the points.
        dim: usize,
        /// Terms.
        terms: Vec<StencilTerm>,
    },
    /// (Ku)(x) = Σ_t c_t(x) [D_t u](x) with D_t the identity or the exact Laplacian, computed
    /// in forward mode through the network (SPEC §4).
    Tangent {
        /// Dimension of the points.
        dim: usize,
        /// Coefficients of u.
        value: Vec<Coef>,
        /// Coefficients of Δu.
        laplacian: Vec<Coef>,
        /// Coefficients c(x) of the weak-form term ⟨∇u_j, c ∇u_k⟩: Π̂ gains
        /// (1/B) Σ_b w_b c(x_b) Σ_i ∂_i u(x_b) ∂_i u(x_b)ᵀ, which equals ⟨u, −∇·(c∇u)⟩ when u
        /// vanishes on the boundary (the envelope) — symmetric, first derivatives only.
        gradient: Vec<Coef>,
    },
    /// (Ku)(x) = E_{x′}[k(x, x′) u(x′)], estimated on pairs made from the two halves of a batch.
    PairKernel {
        /// The kernel.
        kernel: PairFn,
        /// A scalar multiple.
        scale: f64,
    },
    /// The slowness operator of slow feature analysis (SPEC §4, §9): a batch is clips of
    /// `clip_len` consecutive inputs and Π̂ is the mean of scale · (u(x_{t+1}) − u(x_t))
    /// (u(x_{t+1}) − u(x_t))ᵀ over the steps inside each clip ([`Batch::slowness`]).
    Slowness {
        /// Consecutive inputs per clip (at least 2).
        clip_len: usize,
        /// A scalar multiple.
        scale: f64,
    },
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operator::Stencil { dim, terms } => {
                write!(f, "Stencil(dim {dim}, {} terms)", terms.len())
            }
            Operator::PairKernel { scale, .. } => write!(f, "PairKernel(scale {scale})"),
            Operator::Tangent { dim, .. } => write!(f, "Tangent(dim {dim})"),
            Operator::Slowness { clip_len, scale } => {
                write!(f, "Slowness(clips of {clip_len}, scale {scale})")
            }
        }
    }
}

impl Operator {
    /// The finite-difference Laplacian Δu ≈ Σ_i [u(x+εe_i) + u(x−εe_i) − 2u(x)]/ε².
    pub fn laplacian_fd(dim: usize, eps: f64) -> Result<Self> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(SpinError::Config(format!(
                "finite-difference step must be positive, got {eps}"
            )));
        }
        let h = 1.0 / (eps * eps);
        let mut terms = vec![StencilTerm {
            offset: vec![0.0; dim],
            coef: Coef::Const(-2.0 * dim as f64 * h),
        }];
        for i in 0..dim {
            for s in [1.0, -1.0] {
                let mut offset = vec![0.0; dim];
                offset[i] = s * eps;
                terms.push(StencilTerm {
                    offset,
                    coef: Coef::Const(h),
                });
            }
        }
        Ok(Operator::Stencil { dim, terms })
    }

    /// Multiplication by a potential V(x).
    pub fn potential(dim: usize, v: ScalarField) -> Self {
        Operator::Stencil {
            dim,
            terms: vec![StencilTerm {
                offset: vec![0.0; dim],
                coef: Coef::Field(1.0, v),
            }],
        }
    }

    /// The exact Laplacian Δu, by forward mode through the network.
    pub fn laplacian_exact(dim: usize) -> Self {
        Operator::Tangent {
            dim,
            value: Vec::new(),
            laplacian: vec![Coef::Const(1.0)],
            gradient: Vec::new(),
        }
    }

    /// −Δ in weak form: ⟨u_j, −Δu_k⟩ = ⟨∇u_j, ∇u_k⟩ for functions that vanish on the boundary
    /// (SPEC §4, weak form), by forward mode through the network.
    pub fn dirichlet_form(dim: usize) -> Self {
        Operator::Tangent {
            dim,
            value: Vec::new(),
            laplacian: Vec::new(),
            gradient: vec![Coef::Const(1.0)],
        }
    }

    /// H = −c Δ + V in weak form: Π̂ from c ∇u·∇uᵀ + V u uᵀ.
    pub fn hamiltonian_weak(dim: usize, kinetic: f64, v: ScalarField) -> Result<Self> {
        Operator::dirichlet_form(dim)
            .scaled(kinetic)
            .plus(Operator::potential(dim, v))
    }

    /// H = −c Δ + V with the exact (forward-mode) Laplacian.
    pub fn hamiltonian_exact(dim: usize, kinetic: f64, v: ScalarField) -> Result<Self> {
        Operator::laplacian_exact(dim)
            .scaled(-kinetic)
            .plus(Operator::potential(dim, v))
    }

    /// H = −c Δ + V with the finite-difference Laplacian.
    pub fn hamiltonian_fd(dim: usize, kinetic: f64, eps: f64, v: ScalarField) -> Result<Self> {
        Operator::laplacian_fd(dim, eps)?
            .scaled(-kinetic)
            .plus(Operator::potential(dim, v))
    }

    /// A kernel on pairs, k(x, x′).
    pub fn pair_kernel(kernel: PairFn) -> Self {
        Operator::PairKernel { kernel, scale: 1.0 }
    }

    /// The slowness operator on clips of `clip_len` consecutive inputs.
    pub fn slowness(clip_len: usize) -> Result<Self> {
        if clip_len < 2 {
            return Err(SpinError::Config(format!(
                "the slowness operator needs clips of at least 2 inputs, got {clip_len}"
            )));
        }
        Ok(Operator::Slowness {
            clip_len,
            scale: 1.0,
        })
    }

    /// s K.
    pub fn scaled(self, s: f64) -> Self {
        match self {
            Operator::Slowness { clip_len, scale } => Operator::Slowness {
                clip_len,
                scale: scale * s,
            },
            Operator::Stencil { dim, terms } => Operator::Stencil {
                dim,
                terms: terms
                    .into_iter()
                    .map(|t| StencilTerm {
                        offset: t.offset,
                        coef: t.coef.scaled(s),
                    })
                    .collect(),
            },
            Operator::PairKernel { kernel, scale } => Operator::PairKernel {
                kernel,
                scale: scale * s,
            },
            Operator::Tangent {
                dim,
                value,
                laplacian,
                gradient,
            } => Operator::Tangent {
                dim,
                value: value.iter().map(|c| c.scaled(s)).collect(),
                laplacian: laplacian.iter().map(|c| c.scaled(s)).collect(),
                gradient: gradient.iter().map(|c| c.scaled(s)).collect(),
            },
        }
    }

    /// K + K′ (both local operators of the same dimension, or both kernels on pairs).
    pub fn plus(self, other: Operator) -> Result<Self> {
        match (self, other) {
            (Operator::Stencil { dim, mut terms }, Operator::Stencil { dim: d2, terms: t2 })
                if dim == d2 =>
            {
                terms.extend(t2);
                Ok(Operator::Stencil { dim, terms })
            }
            (
                Operator::PairKernel {
                    kernel: k1,
                    scale: s1,
                },
                Operator::PairKernel {
                    kernel: k2,
                    scale: s2,
                },
            ) => Ok(Operator::PairKernel {
                kernel: Arc::new(move |x: &[f64], y: &[f64]| s1 * k1(x, y) + s2 * k2(x, y)),
                scale: 1.0,
            }),
            (
                Operator::Tangent {
                    dim,
                    mut value,
                    mut laplacian,
                    mut gradient,
                },
                Operator::Tangent {
                    dim: d2,
                    value: v2,
                    laplacian: l2,
                    gradient: g2,
                },
            ) if dim == d2 => {
                value.extend(v2);
                laplacian.extend(l2);
                gradient.extend(g2);
                Ok(Operator::Tangent {
                    dim,
                    value,
                    laplacian,
                    gradient,
                })
            }
            // A local operator without offsets (a potential) acts on the value channel.
            (
                Operator::Tangent {
                    dim,
                    mut value,
                    laplacian,
                    gradient,
                },
                Operator::Stencil { dim: d2, terms },
            )
            | (
                Operator::Stencil { dim: d2, terms },
                Operator::Tangent {
                    dim,
                    mut value,
                    laplacian,
                    gradient,
                },
            ) if dim == d2 && terms.iter().all(|t| t.offset.iter().all(|&o| o == 0.0)) => {
                value.extend(terms.into_iter().map(|t| t.coef));
                Ok(Operator::Tangent {
                    dim,
                    value,
                    laplacian,
                    gradient,
                })
            }
            (a, b) => Err(SpinError::Config(format!(
                "cannot add operators {a:?} and {b:?}"
            ))),
        }
    }

    /// K − K′.
    pub fn minus(self, other: Operator) -> Result<Self> {
        self.plus(other.scaled(-1.0))
    }

    /// Distinct offsets of a stencil, the zero offset first.
    fn distinct_offsets(terms: &[StencilTerm], dim: usize) -> Vec<Vec<f64>> {
        let mut offsets = vec![vec![0.0; dim]];
        for t in terms {
            if !offsets.iter().any(|o| o == &t.offset) {
                offsets.push(t.offset.clone());
            }
        }
        offsets
    }

    /// Builds the batch for samples `points` (count, dim) with importance weights.
    /// Points are the network's inputs.
    pub fn batch(&self, points: &[f64], dim: usize, weights: &[f64]) -> Result<Batch> {
        let count = weights.len();
        if points.len() != count * dim || count == 0 {
            return Err(SpinError::Shape(format!(
                "{} point coordinates for {count} samples of dimension {dim}",
                points.len()
            )));
        }
        match self {
            Operator::Stencil { dim: d, terms } => {
                if *d != dim {
                    return Err(SpinError::Shape(format!(
                        "operator of dimension {d} on points of dimension {dim}"
                    )));
                }
                let offsets = Self::distinct_offsets(terms, dim);
                let rows = count * offsets.len();
                let mut inputs = Vec::with_capacity(rows * dim);
                for off in &offsets {
                    for s in 0..count {
                        for i in 0..dim {
                            inputs.push((points[s * dim + i] + off[i]) as f32);
                        }
                    }
                }
                let ty = offsets.len();
                let coefs = terms
                    .iter()
                    .map(|t| t.coef.values(points, dim))
                    .collect::<Result<Vec<_>>>()?;
                let mut y_terms = Vec::with_capacity(count * ty);
                for s in 0..count {
                    for (oi, off) in offsets.iter().enumerate() {
                        let c: f64 = terms
                            .iter()
                            .zip(&coefs)
                            .filter(|(t, _)| &t.offset == off)
                            .map(|(_, v)| v[s])
                            .sum();
                        y_terms.push(Term {
                            row: (oi * count + s) as u32,
                            coef: c as f32,
                        });
                    }
                }
                Ok(local_batch(dim, rows, 1, inputs, y_terms, weights))
            }
            Operator::Tangent {
                dim: d,
                value,
                laplacian,
                gradient,
            } => {
                if *d != dim {
                    return Err(SpinError::Shape(format!(
                        "operator of dimension {d} on points of dimension {dim}"
                    )));
                }
                let channels = dim + 2;
                let rows = count * channels;
                let mut inputs = Vec::with_capacity(rows * dim);
                inputs.extend(points.iter().map(|&v| v as f32));
                for i in 0..dim {
                    for _ in 0..count {
                        inputs.extend((0..dim).map(|j| if i == j { 1.0f32 } else { 0.0 }));
                    }
                }
                inputs.extend(std::iter::repeat_n(0.0f32, count * dim));
                let sum = |coefs: &[Coef]| -> Result<Vec<f64>> {
                    let mut total = vec![0.0; count];
                    for c in coefs {
                        for (t, v) in total.iter_mut().zip(c.values(points, dim)?) {
                            *t += v;
                        }
                    }
                    Ok(total)
                };
                let (cv, cl) = (sum(value)?, sum(laplacian)?);
                let mut y_terms = Vec::with_capacity(2 * count);
                for s in 0..count {
                    y_terms.push(Term {
                        row: ((dim + 1) * count + s) as u32,
                        coef: cl[s] as f32,
                    });
                    y_terms.push(Term {
                        row: s as u32,
                        coef: cv[s] as f32,
                    });
                }
                let mut batch = local_batch(dim, rows, channels, inputs, y_terms, weights);
                if !gradient.is_empty() {
                    // One more pair per sample and derivative: X = ∂_i u, Y = c ∂_i u. With
                    // (d + 1) pairs per sample, the pair weights carry the factor d + 1.
                    let cg = sum(gradient)?;
                    for i in 1..=dim {
                        for (s, &c) in cg.iter().enumerate() {
                            let row = (i * count + s) as u32;
                            batch.x_terms.push(Term { row, coef: 1.0 });
                            batch.y_terms.push(Term {
                                row,
                                coef: c as f32,
                            });
                            batch.y_terms.push(Term { row, coef: 0.0 });
                        }
                    }
                    let k = (dim + 1) as f32;
                    batch.pair_weights = (0..=dim)
                        .flat_map(|_| weights.iter().map(move |&w| w as f32 * k))
                        .collect();
                    batch.shape.pairs = (dim + 1) * count;
                }
                Ok(batch)
            }
            Operator::Slowness { clip_len, scale } => {
                if !count.is_multiple_of(*clip_len) {
                    return Err(SpinError::Config(format!(
                        "a slowness batch is whole clips of {clip_len} inputs, got {count} inputs"
                    )));
                }
                let inputs: Vec<f32> = points.iter().map(|&v| v as f32).collect();
                let mut batch = Batch::slowness(&inputs, dim, count / clip_len, *clip_len)?;
                batch.sample_weights = weights.iter().map(|&w| w as f32).collect();
                for t in &mut batch.y_terms {
                    t.coef *= *scale as f32;
                }
                Ok(batch)
            }
            Operator::PairKernel { kernel, scale } => {
                if count < 2 || !count.is_multiple_of(2) {
                    return Err(SpinError::Config(format!(
                        "a kernel operator needs an even batch of at least 2 samples, got {count}"
                    )));
                }
                let pairs = count / 2;
                let mut x_terms = Vec::with_capacity(pairs);
                let mut y_terms = Vec::with_capacity(pairs);
                let mut pair_weights = Vec::with_capacity(pairs);
                for q in 0..pairs {
                    let x = &points[q * dim..(q + 1) * dim];
                    let y = &points[(q + pairs) * dim..(q + pairs + 1) * dim];
                    x_terms.push(Term {
                        row: q as u32,
                        coef: 1.0,
                    });
                    y_terms.push(Term {
                        row: (q + pairs) as u32,
                        coef: (scale * kernel(x, y)) as f32,
                    });
                    pair_weights.push((weights[q] * weights[q + pairs]) as f32);
                }
                Ok(Batch {
                    shape: BatchShape {
                        input_dim: dim,
                        rows: count,
                        samples: count,
                        pairs,
                        tx: 1,
                        ty: 1,
                        channels: 1,
                    },
                    inputs: points.iter().map(|&v| v as f32).collect(),
                    sample_weights: weights.iter().map(|&w| w as f32).collect(),
                    x_terms,
                    y_terms,
                    pair_weights,
                })
            }
        }
    }
}

/// A batch of a local operator: pair q is sample q, X_q = u(x_q), Y_q given by `y_terms`
/// (count × ty), sample and pair weights the same.
fn local_batch(
    dim: usize,
    rows: usize,
    channels: usize,
    inputs: Vec<f32>,
    y_terms: Vec<Term>,
    weights: &[f64],
) -> Batch {
    let count = weights.len();
    let w: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
    Batch {
        shape: BatchShape {
            input_dim: dim,
            rows,
            samples: count,
            pairs: count,
            tx: 1,
            ty: y_terms.len() / count,
            channels,
        },
        inputs,
        sample_weights: w.clone(),
        x_terms: (0..count)
            .map(|s| Term {
                row: s as u32,
                coef: 1.0,
            })
            .collect(),
        y_terms,
        pair_weights: w,
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
    /// The slowness operator's batch (SPEC §4, §9): `clips` clips of `clip_len` consecutive
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
