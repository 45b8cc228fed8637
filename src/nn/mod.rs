//! Networks: the shape and parameter layout of the MLP, its initialisation, and the CPU f64
//! oracle of every network computation the GPU kernels perform.
//!
//! Parameter layout (shared with the kernels): layer by layer, the weights as an (IN, OUT)
//! row-major block followed by the bias (OUT), so a layer's parameters are an (IN + 1, OUT) block
//! whose last row is the bias.

pub mod oracle;

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Result, SpinError};

/// An MLP with softplus hidden layers, a linear output layer and an optional box envelope.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MlpSpec {
    /// Input dimension (d for points in R^d, n for one-hot inputs).
    pub input_dim: usize,
    /// Widths of the softplus hidden layers (empty: a linear model).
    pub hidden: Vec<usize>,
    /// Number of outputs N (eigenfunctions).
    pub outputs: usize,
    /// Half-width D of the box [−D, D]^d for the boundary envelope; `None`: no envelope.
    pub envelope: Option<f32>,
    /// The last input is the radial feature ‖x‖ of the first `input_dim − 1` (the point's
    /// coordinates), added to every batch by [`radial_inputs`]. Central potentials (hydrogen)
    /// have eigenfunctions that are simple in (x, ‖x‖): a cusp at the origin and exponential
    /// tails are one softplus unit of ‖x‖ each.
    #[serde(default)]
    pub radial: bool,
}

/// One dense layer's place in the flat parameter vector.
///
/// The GPU keeps its own copy of the parameters with every width rounded up to a multiple of 4
/// (`in_pad`, `out_pad`), so that kernels load `vec4`s; the padding is zero and never trained
/// (the host packs θ into it and unpacks gradients from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenseLayout {
    /// Inputs.
    pub inputs: usize,
    /// Outputs.
    pub outputs: usize,
    /// Offset of W (inputs, outputs); the bias (outputs) follows at `offset + inputs * outputs`.
    pub offset: usize,
    /// Whether a softplus follows (hidden) or not (output layer).
    pub softplus: bool,
    /// Inputs rounded up to a multiple of 4.
    pub in_pad: usize,
    /// Outputs rounded up to a multiple of 4.
    pub out_pad: usize,
    /// Offset of this layer's (in_pad + 1, out_pad) block in the GPU's padded vector.
    pub gpu_offset: usize,
}

/// `n` rounded up to a multiple of 4.
pub fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

impl DenseLayout {
    /// Parameters in this layer, bias included.
    pub fn len(&self) -> usize {
        (self.inputs + 1) * self.outputs
    }
    /// Whether the layer has no parameters (never, for a valid spec).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Index of W[i, o] in the flat vector.
    pub fn w(&self, i: usize, o: usize) -> usize {
        self.offset + i * self.outputs + o
    }
    /// Index of b[o] in the flat vector.
    pub fn b(&self, o: usize) -> usize {
        self.offset + self.inputs * self.outputs + o
    }
    /// Parameters in the GPU's padded block.
    pub fn gpu_len(&self) -> usize {
        (self.in_pad + 1) * self.out_pad
    }
    /// Index of W[i, o] (i = inputs: the bias) in the GPU's padded vector.
    pub fn gpu(&self, i: usize, o: usize) -> usize {
        let row = if i == self.inputs { self.in_pad } else { i };
        self.gpu_offset + row * self.out_pad + o
    }
}

impl MlpSpec {
    /// Dimension d of the points (the inputs without the radial feature).
    pub fn space_dim(&self) -> usize {
        self.input_dim - self.radial as usize
    }

    /// Checks that every size is usable.
    pub fn validate(&self) -> Result<()> {
        if self.input_dim <= self.radial as usize || self.outputs == 0 || self.hidden.contains(&0) {
            return Err(SpinError::Config(format!(
                "network sizes must be positive (input {}, hidden {:?}, outputs {})",
                self.input_dim, self.hidden, self.outputs
            )));
        }
        if self.outputs > 64 {
            return Err(SpinError::Config(format!(
                "at most 64 eigenfunctions are supported, got {}",
                self.outputs
            )));
        }
        if let Some(d) = self.envelope {
            if !(d.is_finite() && d > 0.0) {
                return Err(SpinError::Config(format!(
                    "box half-width must be positive, got {d}"
                )));
            }
        }
        Ok(())
    }

    /// The dense layers, input to output, with their parameter offsets.
    pub fn layers(&self) -> Vec<DenseLayout> {
        let mut dims = vec![self.input_dim];
        dims.extend(&self.hidden);
        dims.push(self.outputs);
        let mut offset = 0;
        let mut gpu_offset = 0;
        let last = dims.len() - 2;
        (0..dims.len() - 1)
            .map(|l| {
                let layer = DenseLayout {
                    inputs: dims[l],
                    outputs: dims[l + 1],
                    offset,
                    softplus: l != last,
                    in_pad: pad4(dims[l]),
                    out_pad: pad4(dims[l + 1]),
                    gpu_offset,
                };
                offset += layer.len();
                gpu_offset += layer.gpu_len();
                layer
            })
            .collect()
    }

    /// Size of the GPU's padded parameter vector.
    pub fn gpu_params(&self) -> usize {
        self.layers().iter().map(|l| l.gpu_len()).sum()
    }

    /// θ in the GPU's padded layout (padding zero).
    pub fn pack(&self, params: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.gpu_params()];
        for l in self.layers() {
            for i in 0..=l.inputs {
                for o in 0..l.outputs {
                    let src = if i == l.inputs { l.b(o) } else { l.w(i, o) };
                    out[l.gpu(i, o)] = params[src];
                }
            }
        }
        out
    }

    /// A vector in the GPU's padded layout (e.g. a gradient) back in θ's layout.
    pub fn unpack(&self, padded: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.num_params()];
        for l in self.layers() {
            for i in 0..=l.inputs {
                for o in 0..l.outputs {
                    let dst = if i == l.inputs { l.b(o) } else { l.w(i, o) };
                    out[dst] = padded[l.gpu(i, o)];
                }
            }
        }
        out
    }

    /// Total number of parameters P.
    pub fn num_params(&self) -> usize {
        self.layers().iter().map(|l| l.len()).sum()
    }

    /// The reference initialisation: W ~ N(0, 1)/√fan_in, b ~ N(0, 1).
    pub fn init_params<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f32> {
        let mut params = vec![0.0f32; self.num_params()];
        for layer in self.layers() {
            let scale = 1.0 / (layer.inputs as f64).sqrt();
            for i in 0..layer.inputs {
                for o in 0..layer.outputs {
                    let v: f64 = StandardNormal.sample(rng);
                    params[layer.w(i, o)] = (v * scale) as f32;
                }
            }
            for o in 0..layer.outputs {
                let v: f64 = StandardNormal.sample(rng);
                params[layer.b(o)] = v as f32;
            }
        }
        params
    }
}

/// Softplus σ(z) = log(1 + eᶻ), stable for large |z|.
pub fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// σ′(z), the logistic function.
pub fn softplus_d1(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// σ″(z) = σ′(z)(1 − σ′(z)).
pub fn softplus_d2(z: f64) -> f64 {
    let s = softplus_d1(z);
    s * (1.0 - s)
}

/// Appends the radial feature r = ‖x‖ to network inputs given as rows of `dim` coordinates.
///
/// With `channels == 1` every row is a point. With `channels == dim + 2` the rows are
/// forward-mode channels, channel-major with `inputs.len() / (dim · channels)` samples per
/// channel (value, ∂_1..∂_d, Δ; see `BatchShape::channels`): the new column carries r, its
/// derivatives ∂_i r = x_i / r and its Laplacian Δr = (d − 1)/r, taken at the sample's point
/// (its value row). r is floored at 1e-6 so that the origin stays finite.
pub fn radial_inputs(inputs: &[f64], dim: usize, channels: usize) -> Vec<f64> {
    let rows = inputs.len() / dim;
    let samples = rows / channels;
    let radius = |b: usize| -> f64 {
        inputs[b * dim..(b + 1) * dim]
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt()
            .max(1e-6)
    };
    let mut out = Vec::with_capacity(rows * (dim + 1));
    for (row, x) in inputs.chunks(dim).enumerate() {
        out.extend_from_slice(x);
        let (c, b) = if channels == 1 {
            (0, row)
        } else {
            (row / samples, row % samples)
        };
        let r = radius(b);
        out.push(match c {
            0 => r,
            c if c <= dim => inputs[b * dim + c - 1] / r,
            _ => (dim as f64 - 1.0) / r,
        });
    }
    out
}

/// The reference boundary envelope of [−D, D]^d at x: Π_i max((√(2D² − x_i²) − D)/D, 0).
pub fn envelope(x: &[f64], d: f64) -> f64 {
    x.iter()
        .map(|&xi| (((2.0 * d * d - xi * xi).max(0.0)).sqrt() - d) / d)
        .map(|v| v.max(0.0))
        .product()
}

/// The envelope with its gradient and Laplacian at x: (g, ∇g, Δg).
pub fn envelope_tangent(x: &[f64], d: f64) -> (f64, Vec<f64>, f64) {
    let parts: Vec<(f64, f64, f64)> = x
        .iter()
        .map(|&t| {
            let q = 2.0 * d * d - t * t;
            let r = q.max(0.0).sqrt();
            if r > d {
                ((r - d) / d, -t / (d * r), -2.0 * d / (q * r))
            } else {
                (0.0, 0.0, 0.0)
            }
        })
        .collect();
    let g: f64 = parts.iter().map(|p| p.0).product();
    let others = |i: usize| -> f64 {
        parts
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p.0)
            .product()
    };
    let grad = (0..x.len()).map(|i| parts[i].1 * others(i)).collect();
    let lap = (0..x.len()).map(|i| parts[i].2 * others(i)).sum();
    (g, grad, lap)
}

/// The block-sparse connectivity of the paper's appendix C.1 (SPEC §5) as a 0/1 mask over θ:
/// for layer ℓ of L with m inputs, n outputs and K blocks, β₀ = (ℓ−1)/L, β₁ = (L−ℓ+1)/L and
/// α_k = k/(K−1)·β₀ (k = 0..K−1), block k joins inputs [α_k m, (α_k+β₁) m) to outputs
/// [α_k n, (α_k+β₁) n). The first layer is dense; in the output layer, eigenfunction j belongs to
/// block ⌊jK/N⌋ and sees only that block's inputs. Biases are kept.
pub fn block_sparse_mask(spec: &MlpSpec, blocks: usize) -> Result<Vec<f32>> {
    if blocks < 2 {
        return Err(SpinError::Config(format!(
            "block-sparse layers need at least 2 blocks, got {blocks}"
        )));
    }
    let layers = spec.layers();
    let total = layers.len();
    let mut mask = vec![1.0f32; spec.num_params()];
    for (idx, ly) in layers.iter().enumerate().skip(1) {
        let l = (idx + 1) as f64;
        let big_l = total as f64;
        let (b0, b1) = ((l - 1.0) / big_l, (big_l - l + 1.0) / big_l);
        let range = |alpha: f64, width: f64, size: usize| {
            let lo = (alpha * size as f64).floor() as usize;
            let hi = (((alpha + width) * size as f64).ceil() as usize).min(size);
            lo.min(size)..hi.max(lo.min(size) + 1).min(size)
        };
        for i in 0..ly.inputs {
            for o in 0..ly.outputs {
                mask[ly.w(i, o)] = 0.0;
            }
        }
        for k in 0..blocks {
            let alpha = k as f64 / (blocks - 1) as f64 * b0;
            let inputs = range(alpha, b1, ly.inputs);
            let outputs: Vec<usize> = if ly.softplus {
                range(alpha, b1, ly.outputs).collect()
            } else {
                (0..ly.outputs)
                    .filter(|&j| j * blocks / ly.outputs == k)
                    .collect()
            };
            for i in inputs {
                for &o in &outputs {
                    mask[ly.w(i, o)] = 1.0;
                }
            }
        }
    }
    Ok(mask)
}

/// One network per eigenfunction, as a 0/1 mask over θ of one wide MLP: every hidden width must
/// be a multiple of N, hidden layer ℓ is split into N equal blocks, the first layer is dense (each
/// network sees the whole input), later hidden layers are block-diagonal and output j reads only
/// block j. Output j then depends on its own parameters θ_j alone. Biases are kept.
pub fn separate_networks_mask(spec: &MlpSpec) -> Result<Vec<f32>> {
    let n = spec.outputs;
    if let Some(w) = spec.hidden.iter().find(|&&w| w % n != 0) {
        return Err(SpinError::Config(format!(
            "one network per eigenfunction needs hidden widths divisible by N = {n}, got {w}"
        )));
    }
    let layers = spec.layers();
    let mut mask = vec![1.0f32; spec.num_params()];
    for ly in layers.iter().skip(1) {
        let in_block = ly.inputs / n;
        let out_block = if ly.softplus { ly.outputs / n } else { 1 };
        for i in 0..ly.inputs {
            for o in 0..ly.outputs {
                if i / in_block != o / out_block {
                    mask[ly.w(i, o)] = 0.0;
                }
            }
        }
    }
    Ok(mask)
}
