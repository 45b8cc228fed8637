//! The operators themselves: local stencils and potentials, forward-mode (exact Laplacian, weak
//! form), kernels on pairs and slowness; their sums and scalar multiples; and one batch builder
//! per kind, which turns samples into the rows and gathers of a [`Batch`].

use std::sync::Arc;

use super::{Batch, BatchShape, PairFn, ScalarField, Term};
use crate::error::{Result, SpinError};

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
    /// in forward mode through the network (maths §4).
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
    /// The slowness operator of slow feature analysis (maths §4, §9): a batch is clips of
    /// `clip_len` consecutive inputs and Π̂ is the mean of scale · (u(x_{t+1}) − u(x_t))
    /// (u(x_{t+1}) − u(x_t))ᵀ over the steps inside each clip ([`Batch::slowness`]).
    Slowness {
        /// Consecutive inputs per clip (at least 2).
        clip_len: usize,
        /// A scalar multiple.
        scale: f64,
    },
    /// A graph Laplacian on edges drawn by weight (maths §11): Π̂ is the mean of
    /// scale · (u_j − u_i)(u_j − u_i)ᵀ over the batch's edges ([`Batch::edges`]). Σ̂ is over the
    /// edges' endpoints (nodes drawn by degree: the random-walk form) or, with `uniform_nodes`,
    /// over a first half of the batch holding nodes drawn uniformly (the combinatorial form).
    GraphEdges {
        /// Σ̂ over uniform nodes in the batch's first half, not over the endpoints.
        uniform_nodes: bool,
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
            Operator::GraphEdges {
                uniform_nodes,
                scale,
            } => write!(
                f,
                "GraphEdges(uniform nodes {uniform_nodes}, scale {scale})"
            ),
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
    /// (maths §4, weak form), by forward mode through the network.
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
            Operator::GraphEdges {
                uniform_nodes,
                scale,
            } => Operator::GraphEdges {
                uniform_nodes,
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

    /// How a batch of `count` samples is laid out for this operator: runs of rows
    /// (start, length, unit) that must be kept in whole units (a clip, an edge's two
    /// endpoints), and whose rows pair up with the same positions of the other runs (a kernel's
    /// two halves). A worker's share of the batch is the same fraction of every run.
    fn layout(&self, count: usize) -> Vec<(usize, usize, usize)> {
        match self {
            Operator::Stencil { .. } | Operator::Tangent { .. } => vec![(0, count, 1)],
            Operator::Slowness { clip_len, .. } => vec![(0, count, *clip_len)],
            Operator::PairKernel { .. } => {
                let half = count / 2;
                vec![(0, half, 1), (half, half, 1)]
            }
            Operator::GraphEdges { uniform_nodes, .. } => {
                let nodes = if *uniform_nodes { count / 2 } else { 0 };
                let mut runs = Vec::new();
                if nodes > 0 {
                    runs.push((0, nodes, 1));
                }
                runs.push((nodes, count - nodes, 2));
                runs
            }
        }
    }

    /// Worker `part` of `parts`'s share of a batch of samples `points` (count, dim) with
    /// `weights`: the same fraction of every run of the operator's layout, so that the mean of
    /// the workers' Σ̂, Π̂ and gradients is the whole batch's (maths §10). An error when the
    /// batch does not split into equal whole shares.
    pub fn shard(
        &self,
        points: &[f64],
        dim: usize,
        weights: &[f64],
        part: usize,
        parts: usize,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let count = weights.len();
        if parts <= 1 {
            return Ok((points.to_vec(), weights.to_vec()));
        }
        let runs = self.layout(count);
        let mut p = Vec::with_capacity(points.len() / parts);
        let mut w = Vec::with_capacity(count / parts);
        for &(start, len, unit) in &runs {
            if len % unit != 0 || (len / unit) % parts != 0 {
                let what = if unit == 1 {
                    "rows".to_string()
                } else {
                    format!("whole runs of {unit} rows (clips or edges)")
                };
                return Err(SpinError::Config(format!(
                    "a global batch of {count} samples does not split into {parts} equal shares: its {len} rows from row {start} must split into {parts} equal parts of {what}; make the batch a multiple of {} samples",
                    parts * runs.len() * unit
                )));
            }
            let share = len / parts;
            let from = start + part * share;
            p.extend_from_slice(&points[from * dim..(from + share) * dim]);
            w.extend_from_slice(&weights[from..from + share]);
        }
        Ok((p, w))
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
        let same_dim = |d: usize| {
            if d == dim {
                Ok(())
            } else {
                Err(SpinError::Shape(format!(
                    "operator of dimension {d} on points of dimension {dim}"
                )))
            }
        };
        match self {
            Operator::Stencil { dim: d, terms } => {
                same_dim(*d)?;
                stencil_batch(terms, points, dim, weights)
            }
            Operator::Tangent {
                dim: d,
                value,
                laplacian,
                gradient,
            } => {
                same_dim(*d)?;
                tangent_batch((value, laplacian, gradient), points, dim, weights)
            }
            Operator::Slowness { clip_len, scale } => {
                slowness_batch(*clip_len, *scale, points, dim, weights)
            }
            Operator::GraphEdges {
                uniform_nodes,
                scale,
            } => {
                let inputs: Vec<f32> = points.iter().map(|&v| v as f32).collect();
                let nodes = if *uniform_nodes { count / 2 } else { 0 };
                let mut batch = Batch::edges(&inputs, dim, nodes, *scale)?;
                for (b, &w) in batch.sample_weights.iter_mut().zip(weights) {
                    *b = w as f32;
                }
                Ok(batch)
            }
            Operator::PairKernel { kernel, scale } => {
                pair_kernel_batch(kernel, *scale, points, dim, weights)
            }
        }
    }
}

/// A stencil's batch: rows are the samples shifted by each distinct offset (the zero offset
/// first), X_q = u(x_q), Y_q = Σ_t c_t(x_q) u(x_q + δ_t).
fn stencil_batch(
    terms: &[StencilTerm],
    points: &[f64],
    dim: usize,
    weights: &[f64],
) -> Result<Batch> {
    let count = weights.len();
    let offsets = Operator::distinct_offsets(terms, dim);
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

/// The forward-mode batch (exact Laplacian, weak form): d + 2 channels per sample stored
/// channel-major — the value (inputs x), the gradient ∂ᵢ (inputs eᵢ) and the Laplacian (inputs
/// 0) — with Y = c_v u + c_Δ Δu on the value row; the weak form adds the pairs (∂ᵢu, c ∂ᵢu).
fn tangent_batch(
    (value, laplacian, gradient): (&[Coef], &[Coef], &[Coef]),
    points: &[f64],
    dim: usize,
    weights: &[f64],
) -> Result<Batch> {
    let count = weights.len();
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
        // One more pair per sample and derivative: X = ∂_i u, Y = c ∂_i u. With (d + 1) pairs
        // per sample, the pair weights carry the factor d + 1.
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

/// The slowness operator's batch on whole clips of `clip_len` inputs ([`Batch::slowness`]),
/// Y scaled by `scale`.
fn slowness_batch(
    clip_len: usize,
    scale: f64,
    points: &[f64],
    dim: usize,
    weights: &[f64],
) -> Result<Batch> {
    let count = weights.len();
    if !count.is_multiple_of(clip_len) {
        return Err(SpinError::Config(format!(
            "a slowness batch is whole clips of {clip_len} inputs, got {count} inputs"
        )));
    }
    let inputs: Vec<f32> = points.iter().map(|&v| v as f32).collect();
    let mut batch = Batch::slowness(&inputs, dim, count / clip_len, clip_len)?;
    batch.sample_weights = weights.iter().map(|&w| w as f32).collect();
    for t in &mut batch.y_terms {
        t.coef *= scale as f32;
    }
    Ok(batch)
}

/// A kernel's batch: the two halves of the samples form the pairs, X_q = u(x_q),
/// Y_q = s k(x_q, x′_q) u(x′_q), pair weights w_q w′_q.
fn pair_kernel_batch(
    kernel: &PairFn,
    scale: f64,
    points: &[f64],
    dim: usize,
    weights: &[f64],
) -> Result<Batch> {
    let count = weights.len();
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
