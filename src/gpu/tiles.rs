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

    /// Invocations of a subgroup-shared kernel (subgroups of [`SHARED_LANES`] lanes, each lane
    /// `rows` rows, a subgroup's lanes the same `quads`): whole subgroups.
    pub const fn shared_invocations(&self, rows: usize, quads: usize) -> usize {
        rows.div_ceil(self.rows * SHARED_LANES) * quads.div_ceil(self.quads) * SHARED_LANES
    }
}

/// The subgroup size the subgroup-shared kernels are written for (lavapipe's with 256-bit
/// vectors): they run only where every subgroup has exactly this many lanes.
pub const SHARED_LANES: usize = 8;

/// `dense_forward`: 8 rows × 2 vec4s of outputs; per quad of inputs, 8 weight and 8 activation
/// fetches feed 64 vec4 multiply-adds.
pub const DENSE_TILE: RowTile = RowTile { rows: 8, quads: 2 };

/// `dense_forward_shared` and `dense_backward_shared` (subgroups of 8 lanes share the weights):
/// 8 rows × 4 vec4s of outputs (of inputs); per quad of inputs (of outputs) 2 weight and 8
/// activation fetches feed 128 vec4 multiply-adds.
pub const DENSE_SHARED_TILE: RowTile = RowTile { rows: 8, quads: 4 };

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

    /// Invocations of `jbar_factored` (the same tile, one block of four j for every k ≥ j):
    /// ⌈n/4⌉ j-blocks × the (bias-extended) input quads in tiles × outputs.
    pub fn factored_invocations(&self, n: usize, in4: usize, out4: usize) -> usize {
        n.div_ceil(4) * (in4 + 1).div_ceil(self.in_quads) * out4
    }

    /// Invocations of the `_shared` kernels (`factored` or not): the same tasks, the outputs in
    /// groups of [`SHARED_LANES`] quads, one subgroup each.
    pub fn shared_invocations(&self, n: usize, in4: usize, out4: usize, factored: bool) -> usize {
        let groups = out4.div_ceil(SHARED_LANES);
        let tasks = match factored {
            true => self.factored_invocations(n, in4, groups),
            false => self.invocations(n, in4, groups),
        };
        tasks * SHARED_LANES
    }
}

/// `jbar_update`'s tile: 4 j × 2 input quads × 1 vec4 of outputs.
pub const JBAR_TILE: JbarTile = JbarTile { in_quads: 2 };

/// `param_grad`: input quads × output vec4s per invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamGradTile {
    /// Input quads per invocation (the bias is input quad IN4).
    pub in_quads: usize,
    /// vec4s of outputs per invocation.
    pub out_quads: usize,
}

impl ParamGradTile {
    /// Invocations for `groups` row groups of a layer with `in4` input and `out4` output quads.
    pub const fn invocations(&self, groups: usize, in4: usize, out4: usize) -> usize {
        groups * (in4 + 1).div_ceil(self.in_quads) * out4.div_ceil(self.out_quads)
    }

    /// Invocations of `param_grad_shared`: the output tiles in groups of [`SHARED_LANES`], one
    /// subgroup each.
    pub const fn shared_invocations(&self, groups: usize, in4: usize, out4: usize) -> usize {
        let out_groups = out4.div_ceil(self.out_quads).div_ceil(SHARED_LANES);
        groups * (in4 + 1).div_ceil(self.in_quads) * out_groups * SHARED_LANES
    }
}

/// `param_grad_shared`: 4 input quads × one vec4 of outputs per lane, a subgroup's 8 lanes on
/// the same input quads (fetched once per 8 rows and broadcast): per 8 rows 4 + 8 fetches feed
/// 128 vec4 multiply-adds.
pub const PARAM_GRAD_SHARED_TILE: ParamGradTile = ParamGradTile {
    in_quads: 4,
    out_quads: 1,
};

/// `param_grad`: one input quad × one vec4 of outputs — many invocations, for lavapipe's thread
/// pool and GPUs (2 × 2 left most of a 4-thread pool idle on the output layer).
pub const PARAM_GRAD_TILE: ParamGradTile = ParamGradTile {
    in_quads: 1,
    out_quads: 1,
};

/// `param_grad_wide`: 2 × 2, for a single-threaded lavapipe (`--workers`), where each row's
/// texel fetches, not idle threads, bound the kernel: 4 fetches feed 16 vec4 multiply-adds.
pub const PARAM_GRAD_WIDE_TILE: ParamGradTile = ParamGradTile {
    in_quads: 2,
    out_quads: 2,
};

/// Split-K of the batch parameter gradients (`param_grad`, `conv2d_param_grad`) on a GPU: a
/// layer's rows are cut into groups until about this many invocations run (one per (group,
/// input quad, output quad)), so that a small layer's reduction over many rows (3×64 hydrogen:
/// 272 invocations over 512 rows) does not leave most of the GPU idle; `grad_reduce` adds the
/// groups up. On a CPU adapter the split is off: there every invocation is a thread's loop
/// anyway and the extra `grad_reduce` only costs (measured: docs/results/speed.md).
pub const PARAM_GRAD_INVOCATIONS: usize = 4096;

/// … but a group keeps at least this many rows.
pub const PARAM_GRAD_MIN_ROWS: usize = 32;

/// Row groups for a batch parameter gradient of `base` invocations (one group) over `rows`
/// rows, aiming at `target` invocations: 1 (no split) when the layer alone fills the target.
pub fn param_grad_groups(base: usize, rows: usize, target: usize) -> usize {
    (target / base.max(1)).clamp(1, (rows / PARAM_GRAD_MIN_ROWS).max(1))
}
