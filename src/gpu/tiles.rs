//! Register tiles of the tiled kernels, in one place for Rust (dispatch counts) and WGSL (the
//! generated kernels' loops, see [`super::template`]). Changing a tile is one edit here, then
//! `cargo run --example generate_shaders` and a `spin bench` A/B.

/// A tile of `rows` rows × `quads` vec4s of features per invocation (`dense_forward`,
/// `dense_backward`, `conv2d_backward`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowTile {
    /// Rows per invocation.
    pub rows: usize,
    /// vec4s of features per invocation.
    pub quads: usize,
}

impl RowTile {
    /// Invocations that cover `rows` rows × `quads` vec4s.
    pub const fn invocations(&self, rows: usize, quads: usize) -> usize {
        rows.div_ceil(self.rows) * quads.div_ceil(self.quads)
    }
}

/// `dense_forward`: 8 rows × 2 vec4s of outputs; per quad of inputs, 8 weight and 8 activation
/// fetches feed 64 vec4 multiply-adds.
pub const DENSE_TILE: RowTile = RowTile { rows: 8, quads: 2 };

/// `dense_backward`: 8 rows × 2 vec4s of inputs.
pub const DENSE_BACKWARD_TILE: RowTile = RowTile { rows: 8, quads: 2 };

/// `conv2d_backward`: 8 rows × one input pixel × 2 vec4s of input channels.
pub const CONV_BACKWARD_TILE: RowTile = RowTile { rows: 8, quads: 2 };

/// `conv2d_forward`: output pixels per invocation (× one vec4 of output channels).
pub const CONV_FORWARD_PIXELS: usize = 4;

/// `jbar_update`: one eigenfunction k, a block of four j (one vec4 of w·u), `in_quads` vec4s of
/// inputs (the bias is input quad IN4) and one vec4 of outputs per invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JbarTile {
    /// Input quads per invocation.
    pub in_quads: usize,
}

impl JbarTile {
    /// Invocations for `n` eigenfunctions of a layer with `in4` input and `out4` output quads:
    /// Σ_k ⌈(k + 1)/4⌉ (k, j-block) tasks × the (bias-extended) input quads in tiles × outputs.
    pub fn invocations(&self, n: usize, in4: usize, out4: usize) -> usize {
        let blocks: usize = (0..n).map(|k| (k + 4) / 4).sum();
        blocks * (in4 + 1).div_ceil(self.in_quads) * out4
    }
}

/// `jbar_update`'s tile: 4 j × 2 input quads × 1 vec4 of outputs.
pub const JBAR_TILE: JbarTile = JbarTile { in_quads: 2 };
