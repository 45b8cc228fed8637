//! Networks: a network is a list of layers ([`layer::Layer`]: conv2d and dense, with their
//! parameter layouts), built from a [`NetworkSpec`]; its initialisation, the structural masks
//! (block-sparse, one network per eigenfunction, the constant first eigenfunction) and the CPU
//! f64 oracle of every network computation the GPU kernels perform.
//!
//! Parameter layout (shared with the kernels): layer by layer, the weights as an (IN, OUT)
//! row-major block followed by the bias (OUT), so a layer's parameters are an (IN + 1, OUT) block
//! whose last row is the bias (see [`layer`] for conv layers and the GPU's padded copy).

mod features;
pub mod layer;
mod masks;
pub mod oracle;

pub use features::{
    envelope, envelope_tangent, particle_inputs, radial_inputs, Exchange, ParticleFeatures,
};
pub use layer::{pad4, Activation, Conv2dSpec, ConvGeom, ImageShape, Layer, LayerKind, Padding};
pub use masks::{block_sparse_mask, separate_networks_mask};

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
