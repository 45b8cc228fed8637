//! The layer contract: one parameter block per layer, its place in θ and in the GPU's padded
//! copy, its input and output activation shapes, and its kind (dense or conv2d).
//!
//! Every layer's parameters are one (IN + 1, OUT) block whose last row is the bias, in θ's user
//! layout row-major; a dense layer's rows are its inputs, a conv2d layer's rows are its
//! (dy, dx, c_in) taps (TensorFlow's HWIO order) and its columns are output channels. The GPU
//! keeps each block with rows and columns padded to multiples of 4 (`vec4` loads): user row i is
//! GPU row (i / group)·group_pad + i % group, where `group` is the run of real rows between
//! padding (a conv layer's input channels, a dense layer's input channels after a flatten, or the
//! whole input of a plain dense layer). The padding is zero and never trained.
//!
//! Activations are NHWC with channels padded to a multiple of 4: a row of a conv layer's input
//! is (H, W, C₄) floats. A dense layer after a conv layer reads that row as its input vector —
//! flatten is a view, TensorFlow's NHWC flatten order, with no kernel of its own.
//!
//! Where each layer's pieces live: the WGSL kernels in `shaders/dense_*.wgsl` and
//! `shaders/conv2d_*.wgsl`, their CPU f64 twins in [`super::oracle`], the dispatches in
//! `spin::engine` (one `match` on [`LayerKind`] per stage).

use serde::{Deserialize, Serialize};

use crate::error::{Result, SpinError};

/// The nonlinearity after a layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// None (output layers).
    Identity,
    /// log(1 + eᶻ): smooth, with the derivatives the exact Laplacian needs.
    #[default]
    Softplus,
    /// max(z, 0): no curvature, so not for the Laplacian's tangent rows.
    Relu,
}

impl Activation {
    /// The code the kernels read (`ACT` constants): 0 identity, 1 softplus, 2 ReLU.
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Softplus => 1,
            Activation::Relu => 2,
        }
    }

    /// a = act(z) in f64.
    pub fn apply(self, z: f64) -> f64 {
        match self {
            Activation::Identity => z,
            Activation::Softplus => super::softplus(z),
            Activation::Relu => z.max(0.0),
        }
    }

    /// act′(z) in f64 (ReLU′(0) = 0, as the kernels).
    pub fn derivative(self, z: f64) -> f64 {
        match self {
            Activation::Identity => 1.0,
            Activation::Softplus => super::softplus_d1(z),
            Activation::Relu => {
                if z > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }

    /// Parses `softplus`, `relu` or `identity`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "softplus" => Ok(Activation::Softplus),
            "relu" => Ok(Activation::Relu),
            "identity" | "linear" => Ok(Activation::Identity),
            _ => Err(SpinError::Config(format!(
                "activation must be softplus, relu or identity, got `{s}`"
            ))),
        }
    }
}

/// TensorFlow's padding modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// Output size ⌈in / s⌉; the input is zero-padded, the odd extra pixel at the bottom/right.
    #[default]
    Same,
    /// Output size ⌈(in − k + 1) / s⌉; no padding.
    Valid,
}

impl Padding {
    /// Parses `same` or `valid`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "same" => Ok(Padding::Same),
            "valid" => Ok(Padding::Valid),
            _ => Err(SpinError::Config(format!(
                "padding must be same or valid, got `{s}`"
            ))),
        }
    }
}

/// One conv2d layer of a network's spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conv2dSpec {
    /// Output channels.
    pub channels: usize,
    /// Kernel size k (k × k).
    pub kernel: usize,
    /// Stride s (both directions).
    pub stride: usize,
    /// SAME or VALID.
    pub padding: Padding,
}

/// An image input: height × width × channels, stored NHWC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channels (stacked frames).
    pub channels: usize,
}

/// The geometry of a conv2d layer: input and output images and TensorFlow's padding offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Input channels.
    pub in_c: usize,
    /// Input channels padded to a multiple of 4.
    pub in_cp: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Output channels.
    pub out_c: usize,
    /// Output channels padded to a multiple of 4.
    pub out_cp: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero rows above the input (TF: half the total padding, rounded down).
    pub pad_top: usize,
    /// Zero columns left of the input.
    pub pad_left: usize,
}

impl ConvGeom {
    /// The geometry of `spec` on an (h, w, c) input.
    pub fn new(h: usize, w: usize, c: usize, spec: &Conv2dSpec) -> Result<Self> {
        let (k, s) = (spec.kernel, spec.stride);
        if k == 0 || s == 0 || spec.channels == 0 {
            return Err(SpinError::Config(format!(
                "conv kernel, stride and channels must be positive, got {k}, {s}, {}",
                spec.channels
            )));
        }
        let out = |n: usize| -> Result<(usize, usize)> {
            match spec.padding {
                Padding::Same => {
                    let o = n.div_ceil(s);
                    let total = ((o - 1) * s + k).saturating_sub(n);
                    Ok((o, total / 2))
                }
                Padding::Valid => {
                    if n < k {
                        return Err(SpinError::Config(format!(
                            "a VALID {k}×{k} convolution needs inputs of at least {k} pixels, got {n}"
                        )));
                    }
                    Ok(((n - k) / s + 1, 0))
                }
            }
        };
        let (out_h, pad_top) = out(h)?;
        let (out_w, pad_left) = out(w)?;
        Ok(Self {
            in_h: h,
            in_w: w,
            in_c: c,
            in_cp: super::pad4(c),
            out_h,
            out_w,
            out_c: spec.channels,
            out_cp: super::pad4(spec.channels),
            kernel: k,
            stride: s,
            pad_top,
            pad_left,
        })
    }

    /// Output positions per image.
    pub fn out_positions(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Multiply-adds of the forward pass per image.
    pub fn macs(&self) -> usize {
        self.out_positions() * self.out_c * self.kernel * self.kernel * self.in_c
    }
}

/// What a layer computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// z = a W + b on the flattened input.
    Dense,
    /// z[y, x, o] = b\[o\] + Σ W[dy, dx, i, o] a[s·y + dy − pad_top, s·x + dx − pad_left, i].
    Conv2d(ConvGeom),
}

/// One layer: its kind, activation and parameter block (see the module docs for the layouts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Dense or conv2d.
    pub kind: LayerKind,
    /// The nonlinearity after the layer.
    pub act: Activation,
    /// Rows of the parameter block without the bias (dense: fan-in; conv: k²·c_in).
    pub inputs: usize,
    /// Columns (dense: width; conv: output channels).
    pub outputs: usize,
    /// Offset of W in θ; the bias follows at `offset + inputs * outputs`.
    pub offset: usize,
    /// Rows of the GPU block without the bias, padded.
    pub in_pad: usize,
    /// Columns rounded up to a multiple of 4.
    pub out_pad: usize,
    /// Offset of this layer's (in_pad + 1, out_pad) block in the GPU's padded vector.
    pub gpu_offset: usize,
    /// Real rows per run of the GPU block (see the module docs).
    pub group: usize,
    /// The run padded to a multiple of 4.
    pub group_pad: usize,
    /// Floats per row of the layer's input activations on the GPU (padded).
    pub in_width: usize,
    /// Floats per row of its output activations on the GPU (padded).
    pub out_width: usize,
    /// Output positions per row (1 for dense, H·W for conv): a row of outputs is
    /// `positions × out_pad` floats on the GPU and `positions × outputs` in the oracle.
    pub positions: usize,
}

/// `n` rounded up to a multiple of 4.
pub fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

impl Layer {
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
    /// Index of b\[o\] in the flat vector.
    pub fn b(&self, o: usize) -> usize {
        self.offset + self.inputs * self.outputs + o
    }
    /// Parameters in the GPU's padded block.
    pub fn gpu_len(&self) -> usize {
        (self.in_pad + 1) * self.out_pad
    }
    /// GPU row of user row i (i = inputs: the bias row).
    pub fn gpu_row(&self, i: usize) -> usize {
        if i == self.inputs {
            self.in_pad
        } else {
            (i / self.group) * self.group_pad + i % self.group
        }
    }
    /// Index of W[i, o] (i = inputs: the bias) in the GPU's padded vector.
    pub fn gpu(&self, i: usize, o: usize) -> usize {
        self.gpu_offset + self.gpu_row(i) * self.out_pad + o
    }
    /// Fan-in for the reference initialisation (dense: inputs; conv: c_in·k²).
    pub fn fan_in(&self) -> usize {
        self.inputs
    }
    /// Real floats per output row (positions × outputs), the oracle's row width.
    pub fn out_len(&self) -> usize {
        self.positions * self.outputs
    }
    /// Multiply-adds of the forward pass per row.
    pub fn macs(&self) -> usize {
        match self.kind {
            LayerKind::Dense => self.inputs * self.outputs,
            LayerKind::Conv2d(g) => g.macs(),
        }
    }
    /// The conv geometry, if this is a conv layer.
    pub fn conv(&self) -> Option<ConvGeom> {
        match self.kind {
            LayerKind::Conv2d(g) => Some(g),
            LayerKind::Dense => None,
        }
    }
    /// The block-sparse "unit" of user row i: the input channel (conv, or dense after a
    /// flatten), or the input itself (plain dense). Masks between feature maps act on units.
    pub fn unit(&self, i: usize) -> usize {
        i % self.group
    }
    /// Units in a row of inputs (`group`).
    pub fn units(&self) -> usize {
        self.group
    }
}
