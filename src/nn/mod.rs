//! Networks: a network is a list of layers ([`layer::Layer`]: conv2d and dense, with their
//! parameter layouts), built from a [`NetworkSpec`]; its initialisation, the structural masks
//! (block-sparse, one network per eigenfunction, the constant first eigenfunction) and the CPU
//! f64 oracle of every network computation the GPU kernels perform.
//!
//! Parameter layout (shared with the kernels): layer by layer, the weights as an (IN, OUT)
//! row-major block followed by the bias (OUT), so a layer's parameters are an (IN + 1, OUT) block
//! whose last row is the bias (see [`layer`] for conv layers and the GPU's padded copy).

pub mod layer;
pub mod oracle;

pub use layer::{pad4, Activation, Conv2dSpec, ConvGeom, ImageShape, Layer, LayerKind, Padding};

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Result, SpinError};

/// The most outputs a network may have (evaluation; training takes at most
/// [`MAX_TRAINED_OUTPUTS`]).
pub const MAX_OUTPUTS: usize = 256;

/// The most eigenfunctions a network may be trained for (J̄ holds N(N+1)/2 copies of θ).
pub const MAX_TRAINED_OUTPUTS: usize = 64;

/// A network: optional conv2d layers on an image input, then dense hidden layers, then a linear
/// output layer of N units, with an optional box envelope (point inputs) and an optional constant
/// first eigenfunction.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NetworkSpec {
    /// Input dimension (d for points in R^d, n for one-hot inputs, H·W·C for images).
    pub input_dim: usize,
    /// Widths of the dense hidden layers (empty: a linear model on the last conv features).
    pub hidden: Vec<usize>,
    /// Number of outputs N (eigenfunctions), the constant one included when `constant_first`.
    pub outputs: usize,
    /// Half-width D of the box [−D, D]^d for the boundary envelope; `None`: no envelope.
    pub envelope: Option<f32>,
    /// The last input is the radial feature ‖x‖ of the first `input_dim − 1` (the point's
    /// coordinates), added to every batch by [`radial_inputs`]. Central potentials (hydrogen)
    /// have eigenfunctions that are simple in (x, ‖x‖): a cusp at the origin and exponential
    /// tails are one softplus unit of ‖x‖ each.
    #[serde(default)]
    pub radial: bool,
    /// The input is an image (NHWC) of this shape; required by conv layers.
    #[serde(default)]
    pub image: Option<ImageShape>,
    /// Conv2d layers applied to the image before the dense layers (flattened NHWC in between).
    #[serde(default)]
    pub conv: Vec<Conv2dSpec>,
    /// The activation of every hidden layer (conv and dense).
    #[serde(default)]
    pub activation: Activation,
    /// Output 0 is the constant 1 (paper C.2): its weights are zero, its bias one, and it is
    /// never trained ([`NetworkSpec::structural_mask`]), so its Jacobian is zero and, through
    /// the Cholesky order, every learned feature is zero-mean.
    #[serde(default)]
    pub constant_first: bool,
    /// The network is exchange-symmetrised over particles 0 and 1: every output is
    /// f_s(x) = (f(x) ± f(Px)) / 2 ([`Exchange`]), so each learned eigenfunction lies in one
    /// exchange sector.
    #[serde(default)]
    pub exchange: Option<Exchange>,
    /// Inputs after the coordinates (and after ‖x‖ when `radial`): every particle's distance
    /// from the origin |p_i| and every pair's distance |p_i − p_j| (i < j), added to every
    /// batch by [`particle_inputs`]. Nuclear and electron–electron cusps and the exponential
    /// tails of few-body states are simple in these (Hylleraas' coordinates).
    #[serde(default)]
    pub particle_features: Option<ParticleFeatures>,
}

/// The particles whose distances a network sees ([`NetworkSpec::particle_features`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParticleFeatures {
    /// Particles P.
    pub particles: usize,
    /// Coordinates per particle d (2 or 3: in 1D the distances' kinks have a δ Laplacian that
    /// forward mode cannot see).
    pub particle_dim: usize,
}

impl ParticleFeatures {
    /// Features appended: P distances from the origin and P(P−1)/2 pair distances.
    pub fn count(&self) -> usize {
        self.particles + self.particles * (self.particles - 1) / 2
    }

    /// The pairs (i, j), i < j, in the order of their features.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        let p = self.particles;
        (0..p)
            .flat_map(|i| (i + 1..p).map(move |j| (i, j)))
            .collect()
    }

    /// Where each feature goes when particles 0 and 1 are swapped (a permutation of
    /// 0..[`ParticleFeatures::count`]).
    pub fn swapped(&self) -> Vec<usize> {
        let t = |i: usize| match i {
            0 => 1,
            1 => 0,
            i => i,
        };
        let pairs = self.pairs();
        let mut out: Vec<usize> = (0..self.particles).map(t).collect();
        for &(i, j) in &pairs {
            let (a, b) = (t(i).min(t(j)), t(i).max(t(j)));
            let k = pairs.iter().position(|&q| q == (a, b)).unwrap_or(0);
            out.push(self.particles + k);
        }
        out
    }
}

/// Exchange symmetrisation of a network on the points of two or more particles: the outputs are
/// f_s(x) = (f(x) + s f(Px)) / 2, where P swaps the coordinates of particles 0 and 1
/// (`particle_dim` each, the first 2·`particle_dim` inputs) and s = +1 (symmetric) or −1
/// (antisymmetric). f_s(Px) = s f_s(x) exactly, whatever θ; the engine evaluates f on every row
/// and on its swapped copy.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exchange {
    /// Coordinates per particle.
    pub particle_dim: usize,
    /// Whether the outputs are antisymmetric (s = −1) rather than symmetric (s = +1).
    pub antisymmetric: bool,
}

impl Exchange {
    /// s = ±1.
    pub fn sign(&self) -> f64 {
        if self.antisymmetric {
            -1.0
        } else {
            1.0
        }
    }
}

impl NetworkSpec {
    /// A softplus MLP on points: the Schrödinger and matrix experiments' network.
    pub fn mlp(input_dim: usize, hidden: Vec<usize>, outputs: usize) -> Self {
        Self {
            input_dim,
            hidden,
            outputs,
            ..Default::default()
        }
    }

    /// Dimension d of the points (the inputs without the radial and particle features).
    pub fn space_dim(&self) -> usize {
        self.input_dim - self.feature_count()
    }

    /// Inputs after the coordinates: ‖x‖ and the particle distances.
    pub fn feature_count(&self) -> usize {
        self.radial as usize + self.particle_features.map_or(0, |f| f.count())
    }

    /// A network input row with particles 0 and 1 swapped ([`NetworkSpec::exchange`]): their
    /// coordinates (the first 2d values) and their distance features; ‖x‖ is swap-invariant.
    /// On forward-mode rows this is the row of f∘P: the tangent eᵢ becomes e_π(i), and a
    /// feature's derivative column becomes its swapped partner's.
    pub fn swap_row<T: Copy>(&self, row: &mut [T]) {
        let Some(e) = self.exchange else {
            return;
        };
        let d = e.particle_dim;
        for i in 0..d {
            row.swap(i, d + i);
        }
        if let Some(f) = self.particle_features {
            let start = self.space_dim() + self.radial as usize;
            let old: Vec<T> = row[start..start + f.count()].to_vec();
            for (k, &to) in f.swapped().iter().enumerate() {
                row[start + to] = old[k];
            }
        }
    }

    /// The network's input rows followed, per channel, by their swapped copies
    /// ([`NetworkSpec::swap_row`]): `rows` is (channels · block) rows of `input_dim` values,
    /// channel-major; the result has 2·block rows per channel (the batch's block, then its
    /// copy), the layout the exchange kernel reads.
    pub fn exchange_rows<T: Copy>(&self, rows: &[T], channels: usize) -> Vec<T> {
        let width = self.input_dim;
        let block = rows.len() / width / channels;
        let mut out = Vec::with_capacity(2 * rows.len());
        for chunk in rows.chunks(block * width) {
            out.extend_from_slice(chunk);
            let start = out.len();
            out.extend_from_slice(chunk);
            for row in out[start..].chunks_mut(width) {
                self.swap_row(row);
            }
        }
        out
    }

    /// Whether every layer is dense with softplus hidden units: what forward-mode tangents
    /// (exact Laplacian, weak form) need.
    pub fn supports_tangents(&self) -> bool {
        self.conv.is_empty() && (self.hidden.is_empty() || self.activation == Activation::Softplus)
    }

    /// Checks that every size is usable.
    pub fn validate(&self) -> Result<()> {
        if self.input_dim <= self.feature_count() || self.outputs == 0 || self.hidden.contains(&0) {
            return Err(SpinError::Config(format!(
                "network sizes must be positive (input {}, hidden {:?}, outputs {})",
                self.input_dim, self.hidden, self.outputs
            )));
        }
        if self.outputs > MAX_OUTPUTS {
            return Err(SpinError::Config(format!(
                "at most {MAX_OUTPUTS} outputs are supported, got {}",
                self.outputs
            )));
        }
        if self.constant_first && self.outputs < 2 {
            return Err(SpinError::Config(
                "a constant first eigenfunction needs at least one learned one".into(),
            ));
        }
        if let Some(d) = self.envelope {
            if !(d.is_finite() && d > 0.0) {
                return Err(SpinError::Config(format!(
                    "box half-width must be positive, got {d}"
                )));
            }
            if self.image.is_some() {
                return Err(SpinError::Config(
                    "the box envelope is for point inputs, not images".into(),
                ));
            }
            if self.constant_first {
                return Err(SpinError::Config(
                    "a constant first eigenfunction cannot have the box envelope (it would not be constant)"
                        .into(),
                ));
            }
        }
        if let Some(f) = self.particle_features {
            if f.particles < 2 || !(2..=3).contains(&f.particle_dim) || self.image.is_some() {
                return Err(SpinError::Config(format!(
                    "particle distance features need two or more particles of 2 or 3 coordinates on point inputs, got {} of {}",
                    f.particles, f.particle_dim
                )));
            }
            if f.particles * f.particle_dim != self.space_dim() {
                return Err(SpinError::Config(format!(
                    "{} particles of {} coordinates, but a point has {}",
                    f.particles,
                    f.particle_dim,
                    self.space_dim()
                )));
            }
        }
        if let Some(e) = self.exchange {
            if self.image.is_some() || !self.conv.is_empty() || self.constant_first {
                return Err(SpinError::Config(
                    "exchange symmetrisation is for dense networks on particle coordinates (no image, conv layers or constant first eigenfunction)".into(),
                ));
            }
            if e.particle_dim == 0 || 2 * e.particle_dim > self.space_dim() {
                return Err(SpinError::Config(format!(
                    "exchange symmetrisation swaps two particles of {} coordinates, but a point has {}",
                    e.particle_dim,
                    self.space_dim()
                )));
            }
        }
        match self.image {
            Some(img) => {
                if img.height * img.width * img.channels != self.input_dim || img.channels == 0 {
                    return Err(SpinError::Config(format!(
                        "an image of {}×{}×{} has {} values, but the input dimension is {}",
                        img.height,
                        img.width,
                        img.channels,
                        img.height * img.width * img.channels,
                        self.input_dim
                    )));
                }
                if self.radial {
                    return Err(SpinError::Config(
                        "the radial feature is for point inputs, not images".into(),
                    ));
                }
            }
            None if !self.conv.is_empty() => {
                return Err(SpinError::Config(
                    "conv layers need an image input (height × width × channels)".into(),
                ));
            }
            None => {}
        }
        self.try_layers().map(|_| ())
    }

    /// The layers, input to output, with their parameter offsets and shapes.
    ///
    /// Panics on an invalid spec (conv geometry that does not fit); [`NetworkSpec::validate`]
    /// reports the same problems as errors.
    pub fn layers(&self) -> Vec<Layer> {
        self.try_layers().expect("invalid network spec")
    }

    fn try_layers(&self) -> Result<Vec<Layer>> {
        let mut out = Vec::new();
        let mut offset = 0;
        let mut gpu_offset = 0;
        let mut push = |mut ly: Layer, out: &mut Vec<Layer>| {
            ly.offset = offset;
            ly.gpu_offset = gpu_offset;
            offset += ly.len();
            gpu_offset += ly.gpu_len();
            out.push(ly);
        };
        // The current activation row: its values are `positions × channels` (channels padded).
        let (mut positions, mut channels) = match self.image {
            Some(img) => (img.height * img.width, img.channels),
            None => (1, self.input_dim),
        };
        let mut hw = self.image.map(|i| (i.height, i.width));
        for c in &self.conv {
            let (h, w) =
                hw.ok_or_else(|| SpinError::Config("conv layers need an image input".into()))?;
            let g = ConvGeom::new(h, w, channels, c)?;
            push(
                Layer {
                    kind: LayerKind::Conv2d(g),
                    act: self.activation,
                    inputs: g.kernel * g.kernel * g.in_c,
                    outputs: g.out_c,
                    offset: 0,
                    in_pad: g.kernel * g.kernel * g.in_cp,
                    out_pad: g.out_cp,
                    gpu_offset: 0,
                    group: g.in_c,
                    group_pad: g.in_cp,
                    in_width: h * w * g.in_cp,
                    out_width: g.out_positions() * g.out_cp,
                    positions: g.out_positions(),
                },
                &mut out,
            );
            hw = Some((g.out_h, g.out_w));
            positions = g.out_positions();
            channels = g.out_c;
        }
        let mut widths = self.hidden.clone();
        widths.push(self.outputs);
        let last = widths.len() - 1;
        for (l, &width) in widths.iter().enumerate() {
            let (group, inputs) = (channels, positions * channels);
            let group_pad = pad4(group);
            push(
                Layer {
                    kind: LayerKind::Dense,
                    act: if l == last {
                        Activation::Identity
                    } else {
                        self.activation
                    },
                    inputs,
                    outputs: width,
                    offset: 0,
                    in_pad: positions * group_pad,
                    out_pad: pad4(width),
                    gpu_offset: 0,
                    group,
                    group_pad,
                    in_width: positions * group_pad,
                    out_width: pad4(width),
                    positions: 1,
                },
                &mut out,
            );
            positions = 1;
            channels = width;
        }
        Ok(out)
    }

    /// Floats per input row on the GPU (padded).
    pub fn gpu_input_width(&self) -> usize {
        self.layers()[0].in_width
    }

    /// An input row (input_dim values) in the GPU's padded layout.
    pub fn pad_input_row(&self, row: &[f32], out: &mut [f32]) {
        let first = self.layers()[0];
        let (g, gp) = match first.kind {
            LayerKind::Conv2d(c) => (c.in_c, c.in_cp),
            LayerKind::Dense => (first.group, first.group_pad),
        };
        for (i, &v) in row.iter().enumerate() {
            out[(i / g) * gp + i % g] = v;
        }
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

    /// Multiply-adds of one forward pass of one input.
    pub fn forward_macs(&self) -> usize {
        self.layers().iter().map(|l| l.macs()).sum()
    }

    /// The reference initialisation: W ~ N(0, 1)/√fan_in (conv: fan_in = c_in·k²); biases
    /// ~ N(0, 1) as the reference's MLP on points, 0 in networks on images (as its conv nets). With
    /// `constant_first`, output 0 gets zero weights and bias 1.
    pub fn init_params<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f32> {
        let mut params = vec![0.0f32; self.num_params()];
        let layers = self.layers();
        let image = self.image.is_some();
        for layer in &layers {
            let scale = 1.0 / (layer.fan_in() as f64).sqrt();
            for i in 0..layer.inputs {
                for o in 0..layer.outputs {
                    let v: f64 = StandardNormal.sample(rng);
                    params[layer.w(i, o)] = (v * scale) as f32;
                }
            }
            for o in 0..layer.outputs {
                let v: f64 = StandardNormal.sample(rng);
                // Image networks start with zero biases (the reference's conv nets): a bias of
                // N(0, 1) on features of small variance makes them nearly collinear with the
                // constant, and Σ̂ (f32) loses their differences to rounding.
                params[layer.b(o)] = if image { 0.0 } else { v as f32 };
            }
        }
        if self.constant_first {
            let out = layers.last().expect("a network has an output layer");
            for i in 0..out.inputs {
                params[out.w(i, 0)] = 0.0;
            }
            params[out.b(0)] = 1.0;
        }
        params
    }

    /// The parameters that training never moves, as a 0/1 mask over θ (0: frozen): the
    /// constant first eigenfunction's weights and bias. `None` when everything trains.
    pub fn structural_mask(&self) -> Option<Vec<f32>> {
        if !self.constant_first {
            return None;
        }
        let mut mask = vec![1.0f32; self.num_params()];
        let out = *self.layers().last().expect("a network has an output layer");
        for i in 0..=out.inputs {
            let idx = if i == out.inputs {
                out.b(0)
            } else {
                out.w(i, 0)
            };
            mask[idx] = 0.0;
        }
        Some(mask)
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

/// Appends the particle distance features ([`NetworkSpec::particle_features`]) to network
/// input rows of `width` values whose first P·d are a point's coordinates: |p_i| for every
/// particle, then |p_i − p_j| for i < j. With `channels == 1` every row is a point; with
/// `channels == P·d + 2` the rows are forward-mode channels (value, ∂_1..∂_D, Δ, channel-major)
/// and the features carry their derivatives ∂_k r = (p_i)_k / r on particle i's coordinates
/// (−… on particle j's for a pair), and Laplacians (d − 1)/|p_i| and 2(d − 1)/|p_i − p_j|, at
/// the sample's point. Distances are floored at 1e-6.
pub fn particle_inputs(
    inputs: &[f64],
    width: usize,
    channels: usize,
    f: ParticleFeatures,
) -> Vec<f64> {
    let (p, d) = (f.particles, f.particle_dim);
    let dim = p * d;
    let rows = inputs.len() / width;
    let samples = rows / channels;
    let pairs = f.pairs();
    let point = |b: usize| &inputs[b * width..b * width + dim];
    // (vector, distance) of feature k at point x: the particle, or the pair's difference.
    let vector = |x: &[f64], k: usize| -> Vec<f64> {
        if k < p {
            x[k * d..(k + 1) * d].to_vec()
        } else {
            let (i, j) = pairs[k - p];
            (0..d).map(|c| x[i * d + c] - x[j * d + c]).collect()
        }
    };
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-6);
    let mut out = Vec::with_capacity(rows * (width + f.count()));
    for (row, values) in inputs.chunks(width).enumerate() {
        out.extend_from_slice(values);
        let (c, b) = if channels == 1 {
            (0, row)
        } else {
            (row / samples, row % samples)
        };
        let x = point(b);
        for k in 0..f.count() {
            let v = vector(x, k);
            let r = norm(&v);
            out.push(match c {
                0 => r,
                c if c <= dim => {
                    // ∂r/∂x_m for coordinate m = c − 1 of particle m / d.
                    let (m, part) = ((c - 1) % d, (c - 1) / d);
                    let sign = if k < p {
                        (part == k) as i32 as f64
                    } else {
                        let (i, j) = pairs[k - p];
                        (part == i) as i32 as f64 - (part == j) as i32 as f64
                    };
                    sign * v[m] / r
                }
                _ => (1 + (k >= p) as usize) as f64 * (d as f64 - 1.0) / r,
            });
        }
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

/// The block-sparse connectivity of the paper's appendix C.1 (maths §5) as a 0/1 mask over θ:
/// for layer ℓ of L with m input units, n output units and K blocks, β₀ = (ℓ−1)/L,
/// β₁ = (L−ℓ+1)/L and α_k = k/(K−1)·β₀ (k = 0..K−1), block k joins input units
/// [α_k m, (α_k+β₁) m) to output units [α_k n, (α_k+β₁) n). Units are neurons of dense layers
/// and whole feature maps (channels) of conv layers and of the dense layer after a flatten
/// (paper C.2). The first layer is dense; in the output layer, learned eigenfunction j belongs to
/// block ⌊jK/N⌋ and sees only that block's inputs. Biases are kept. Combined with
/// [`NetworkSpec::structural_mask`].
pub fn block_sparse_mask(spec: &NetworkSpec, blocks: usize) -> Result<Vec<f32>> {
    if blocks < 2 {
        return Err(SpinError::Config(format!(
            "block-sparse layers need at least 2 blocks, got {blocks}"
        )));
    }
    let layers = spec.layers();
    let total = layers.len();
    let last = total - 1;
    let skip = spec.constant_first as usize;
    let mut mask = spec
        .structural_mask()
        .unwrap_or_else(|| vec![1.0f32; spec.num_params()]);
    for (idx, ly) in layers.iter().enumerate().skip(1) {
        let l = (idx + 1) as f64;
        let big_l = total as f64;
        let (b0, b1) = ((l - 1.0) / big_l, (big_l - l + 1.0) / big_l);
        let range = |alpha: f64, width: f64, size: usize| {
            let lo = (alpha * size as f64).floor() as usize;
            let hi = (((alpha + width) * size as f64).ceil() as usize).min(size);
            lo.min(size)..hi.max(lo.min(size) + 1).min(size)
        };
        let units = ly.units();
        let mut keep = vec![false; units * ly.outputs];
        for k in 0..blocks {
            let alpha = k as f64 / (blocks - 1) as f64 * b0;
            let inputs = range(alpha, b1, units);
            let outputs: Vec<usize> = if idx != last {
                range(alpha, b1, ly.outputs).collect()
            } else {
                let learned = ly.outputs - skip;
                (skip..ly.outputs)
                    .filter(|&j| (j - skip) * blocks / learned == k)
                    .collect()
            };
            for i in inputs {
                for &o in &outputs {
                    keep[i * ly.outputs + o] = true;
                }
            }
        }
        for i in 0..ly.inputs {
            for o in 0..ly.outputs {
                if !keep[ly.unit(i) * ly.outputs + o] {
                    mask[ly.w(i, o)] = 0.0;
                }
            }
        }
    }
    Ok(mask)
}

/// One network per eigenfunction, as a 0/1 mask over θ of one wide network: every hidden width
/// (dense units or conv channels) must be a multiple of the learned N, hidden layer ℓ is split
/// into N equal blocks, the first layer is dense (each network sees the whole input), later
/// hidden layers are block-diagonal (between whole feature maps for conv layers) and learned
/// output j reads only block j. Output j then depends on its own parameters θ_j alone. Biases
/// are kept. Combined with [`NetworkSpec::structural_mask`].
pub fn separate_networks_mask(spec: &NetworkSpec) -> Result<Vec<f32>> {
    let skip = spec.constant_first as usize;
    let n = spec.outputs - skip;
    let widths = spec
        .conv
        .iter()
        .map(|c| c.channels)
        .chain(spec.hidden.iter().copied());
    if let Some(w) = widths.clone().find(|&w| w % n != 0) {
        return Err(SpinError::Config(format!(
            "one network per eigenfunction needs hidden widths divisible by N = {n}, got {w}"
        )));
    }
    let layers = spec.layers();
    let last = layers.len() - 1;
    let mut mask = spec
        .structural_mask()
        .unwrap_or_else(|| vec![1.0f32; spec.num_params()]);
    for (idx, ly) in layers.iter().enumerate().skip(1) {
        let in_block = ly.units() / n;
        for i in 0..ly.inputs {
            for o in 0..ly.outputs {
                let block_o = if idx != last {
                    o / (ly.outputs / n)
                } else if o < skip {
                    continue;
                } else {
                    o - skip
                };
                if ly.unit(i) / in_block != block_o {
                    mask[ly.w(i, o)] = 0.0;
                }
            }
        }
    }
    Ok(mask)
}
