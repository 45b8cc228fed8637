//! The GPU side of one SpIN step: buffers allocated once per (network, batch shape), bind groups
//! built once, and two submits per step. The network is a list of layers ([`crate::nn::Layer`]);
//! every stage iterates over it and matches on the layer's kind.
//!
//! Submit A ([`Engine::statistics`]) — the *statistics* stage: every layer's forward pass on all
//! rows, envelope, operator gathers, Σ̂/Π̂ reductions → read back 2N² floats.
//! Submit B ([`Engine::gradient`]) — the *Π-VJP* stage (Π̂ cotangent through the operator and
//! envelope, then each layer's parameter gradient and input VJP from the top) and the
//! *Σ-Jacobian* stage, in chunks of samples that bound its memory: the N per-sample sensitivity
//! back-passes, each layer's share of J̄ ← (1−β)J̄ + βĴ (dense: one GEMM per pair; conv:
//! per-sample gradients, then their contraction), and the G_Σ contraction → read back the
//! P-float gradient.

use std::cell::Cell;
use std::sync::Arc;

use crate::error::{Result, SpinError};
use crate::gpu::mirror::{Mirror, Mirrors};
use crate::gpu::{grid, GpuContext, Kernel};
use crate::nn::{ConvGeom, Layer, LayerKind, NetworkSpec};
use crate::operators::{Batch, BatchShape};

/// Register tile of `dense_forward`, `dense_backward` and `conv2d_backward`: rows × vec4s of
/// outputs (inputs) per invocation, fixed in their WGSL.
const TILE_ROWS: usize = 8;
/// See [`TILE_ROWS`].
const TILE_QUADS: usize = 2;

/// Rows per chunk in the first stage of the Σ̂/Π̂ reduction.
const STATS_CHUNK: usize = 64;

/// Bytes that one chunk's largest Σ-Jacobian buffer (sensitivities, per-sample gradients) may
/// take, capped by the adapter's storage binding limit.
const CHUNK_BYTES: usize = 64 << 20;

struct Dispatch {
    label: String,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    groups: (u32, u32, u32),
    /// Buffers this kernel reads through texture mirrors.
    textures: Vec<(wgpu::Buffer, Arc<Mirror>)>,
    /// Buffers it writes.
    writes: Vec<wgpu::Buffer>,
    /// Mirror copies to encode before it ([`plan_copies`]).
    copies: Vec<(wgpu::Buffer, Arc<Mirror>)>,
}

/// Decides, for a list of dispatches encoded in order after host writes, which mirrors must be
/// refreshed before each dispatch: a mirror is copied before the first dispatch that reads it
/// and again after any dispatch that writes its buffer.
// wgpu::Buffer hashes by identity, not by contents.
#[allow(clippy::mutable_key_type)]
fn plan_copies(list: &mut [Dispatch]) {
    let mut fresh: std::collections::HashSet<wgpu::Buffer> = Default::default();
    for d in list.iter_mut() {
        d.copies.clear();
        for (buf, m) in &d.textures {
            if fresh.insert(buf.clone()) {
                d.copies.push((buf.clone(), m.clone()));
            }
        }
        for w in &d.writes {
            fresh.remove(w);
        }
    }
}

/// The context and the mirrors of the engine being built.
struct Build<'a> {
    ctx: &'a GpuContext,
    mirrors: Mirrors,
}

impl std::ops::Deref for Build<'_> {
    type Target = GpuContext;
    fn deref(&self) -> &GpuContext {
        self.ctx
    }
}

/// Per-kernel GPU time of one training step, from timestamp queries.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelTime {
    /// Kernel label (kernel and layer).
    pub label: String,
    /// Milliseconds.
    pub ms: f64,
}

/// The per-step scalars of submit B, the head of the `Step` buffer (`shaders/common.wgsl`);
/// G_Π and G_Σ (N×N each, row-major) follow them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepScalars {
    /// Moving-average rate β.
    pub beta: f32,
    /// 2/S.
    pub two_over_s: f32,
    /// 1/Q.
    pub inv_q: f32,
    /// Padding to 16 bytes.
    pub pad: f32,
}

/// How the engine is built beyond the network and batch shape.
#[derive(Clone, Copy, Debug, Default)]
pub struct EngineOptions {
    /// Samples per chunk of the Σ-Jacobian stage; `None`: as many as fit [`CHUNK_BYTES`].
    pub chunk_samples: Option<usize>,
}

/// GPU buffers, bind groups and pipelines for one network and one batch shape.
pub struct Engine {
    ctx: Arc<GpuContext>,
    spec: NetworkSpec,
    layers: Vec<Layer>,
    shape: BatchShape,
    nparams: usize,
    gpu_params: usize,
    entries_len: usize,
    chunk_samples: usize,
    memory_bytes: u64,
    params: wgpu::Buffer,
    inputs: wgpu::Buffer,
    z: Vec<wgpu::Buffer>,
    a: Vec<wgpu::Buffer>,
    env: wgpu::Buffer,
    u: wgpu::Buffer,
    x_terms: wgpu::Buffer,
    y_terms: wgpu::Buffer,
    xs: wgpu::Buffer,
    ys: wgpu::Buffer,
    sample_w: wgpu::Buffer,
    pair_w: wgpu::Buffer,
    stats: wgpu::Buffer,
    stats_staging: wgpu::Buffer,
    forward: Vec<Dispatch>,
    /// Index in `forward` of the first reduction dispatch.
    reductions_at: usize,
    backward: Option<Backward>,
}

struct Backward {
    row_ptr: wgpu::Buffer,
    entries: wgpu::Buffer,
    step_buf: wgpu::Buffer,
    delta: Vec<wgpu::Buffer>,
    sens: Vec<wgpu::Buffer>,
    jbar: wgpu::Buffer,
    /// J̄ before the last [`Engine::gradient`], so that a rejected step can be undone.
    jbar_prev: wgpu::Buffer,
    grad: wgpu::Buffer,
    grad_staging: wgpu::Buffer,
    dispatches: Vec<Dispatch>,
}

fn u(v: usize) -> f64 {
    v as f64
}

/// Compiles (or fetches) `kernel` with `constants` and binds the named buffers.
fn dispatch(
    ctx: &Build,
    kernel: Kernel,
    constants: &[(&'static str, f64)],
    buffers: &[(&str, &wgpu::Buffer)],
    invocations: usize,
    label: String,
) -> Result<Dispatch> {
    let pipeline = ctx.pipeline(kernel, kernel.name(), constants)?;
    let bound = kernel.bind(ctx.ctx, &ctx.mirrors, &pipeline, buffers, &label)?;
    Ok(Dispatch {
        label,
        pipeline,
        bind_group: bound.bind_group,
        groups: grid(invocations as u32),
        textures: bound.textures,
        writes: bound.writes,
        copies: Vec::new(),
    })
}

/// Tasks per (input-pair, output-quad) tile of `jbar_update`: Σ_k ⌈(k + 1)/4⌉ (eigenfunction k
/// with its j ≤ k in blocks of four).
fn jbar_blocks(n: usize) -> usize {
    (0..n).map(|k| (k + 4) / 4).sum()
}

/// The override constants of a dense layer's kernels.
#[derive(Clone, Copy, Debug)]
struct DenseShape {
    in4: usize,
    out4: usize,
    w_off4: usize,
}

impl DenseShape {
    fn of(ly: &Layer) -> Self {
        Self {
            in4: ly.in_pad / 4,
            out4: ly.out_pad / 4,
            w_off4: ly.gpu_offset / 4,
        }
    }
    fn constants(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("IN4", u(self.in4)),
            ("OUT4", u(self.out4)),
            ("W_OFF4", u(self.w_off4)),
        ]
    }
}

/// The override constants of a conv layer's geometry.
fn conv_constants(g: &ConvGeom) -> Vec<(&'static str, f64)> {
    vec![
        ("IN_H", u(g.in_h)),
        ("IN_W", u(g.in_w)),
        ("CIN4", u(g.in_cp / 4)),
        ("OUT_H", u(g.out_h)),
        ("OUT_W", u(g.out_w)),
        ("COUT4", u(g.out_cp / 4)),
        ("K", u(g.kernel)),
        ("STRIDE", u(g.stride)),
        ("PAD_T", u(g.pad_top)),
        ("PAD_L", u(g.pad_left)),
    ]
}

fn with(mut c: Vec<(&'static str, f64)>, more: &[(&'static str, f64)]) -> Vec<(&'static str, f64)> {
    c.extend_from_slice(more);
    c
}

/// One layer's input VJP: δ_in = act′(z_in) ⊙ (∂z/∂a)ᵀ δ_out on `rows` rows whose z_in row is
/// `chunk.offset + r / row_div`.
#[allow(clippy::too_many_arguments)]
fn input_vjp(
    ctx: &Build,
    params: &wgpu::Buffer,
    ly: &Layer,
    act_below: u32,
    rows: usize,
    row_div: usize,
    bufs: [&wgpu::Buffer; 4],
    label: String,
) -> Result<Dispatch> {
    let [delta_out, z_in, delta_in, chunk] = bufs;
    let named = [
        ("params", params),
        ("delta_out", delta_out),
        ("z_in", z_in),
        ("delta_in", delta_in),
        ("chunk", chunk),
    ];
    let common = [
        ("ROWS", u(rows)),
        ("ROW_DIV", u(row_div)),
        ("ACT_D1", act_below as f64),
    ];
    match ly.kind {
        LayerKind::Dense => dispatch(
            ctx,
            Kernel::DenseBackward,
            &with(DenseShape::of(ly).constants(), &common),
            &named,
            rows.div_ceil(TILE_ROWS) * (ly.in_pad / 4).div_ceil(TILE_QUADS),
            label,
        ),
        LayerKind::Conv2d(g) => dispatch(
            ctx,
            Kernel::Conv2dBackward,
            &with(
                with(conv_constants(&g), &common),
                &[("W_OFF4", u(ly.gpu_offset / 4))],
            ),
            &named,
            rows.div_ceil(TILE_ROWS) * g.in_h * g.in_w * (g.in_cp / 4).div_ceil(TILE_QUADS),
            label.replace("dense", "conv2d"),
        ),
    }
}

/// A conv layer's parameter gradients summed within groups of rows (see conv2d_param_grad).
#[allow(clippy::too_many_arguments)]
fn conv_param_grad(
    ctx: &Build,
    ly: &Layer,
    g: &ConvGeom,
    groups: usize,
    group_rows: usize,
    row_div: usize,
    out_off: usize,
    bufs: [&wgpu::Buffer; 4],
    label: String,
) -> Result<Dispatch> {
    let [a_in, delta, grad, chunk] = bufs;
    dispatch(
        ctx,
        Kernel::Conv2dParamGrad,
        &with(
            conv_constants(g),
            &[
                ("GROUPS", u(groups)),
                ("GROUP_ROWS", u(group_rows)),
                ("ROW_DIV", u(row_div)),
                ("OUT_OFF4", u(out_off / 4)),
                ("G_STRIDE4", u(ly.gpu_len() / 4)),
            ],
        ),
        &[
            ("a_in", a_in),
            ("delta", delta),
            ("grad", grad),
            ("chunk", chunk),
        ],
        groups * (ly.in_pad / 4 + 1) * ly.out_pad / 4,
        label,
    )
}

/// The chunks of the Σ-Jacobian stage: (first sample, count).
fn chunks(samples: usize, per_chunk: usize) -> Vec<(usize, usize)> {
    (0..samples.div_ceil(per_chunk))
        .map(|c| (c * per_chunk, per_chunk.min(samples - c * per_chunk)))
        .collect()
}

impl Engine {
    /// Allocates everything for `spec` on batches of `shape`. With `training = false` only the
    /// statistics pass exists (evaluation).
    pub fn new(
        ctx: Arc<GpuContext>,
        spec: &NetworkSpec,
        shape: BatchShape,
        training: bool,
    ) -> Result<Self> {
        Self::with_options(ctx, spec, shape, training, EngineOptions::default())
    }

    /// Widest activation row of `spec` in f32 words: a buffer of `rows × this` holds every
    /// layer's values.
    fn widest_row(spec: &NetworkSpec) -> usize {
        spec.layers()
            .iter()
            .map(|l| l.out_width.max(l.in_width))
            .max()
            .unwrap_or(4)
    }

    /// The most rows of plain (value-only) inputs that one evaluation engine for `spec` can
    /// take on this adapter, so that a larger set is evaluated in pieces of at most this many.
    pub fn max_plain_rows(ctx: &GpuContext, spec: &NetworkSpec) -> usize {
        let limit = ctx.adapter().max_storage_buffer_binding_size as usize;
        (limit / (4 * Self::widest_row(spec))).max(1)
    }

    /// [`Engine::new`] with options (the Σ-Jacobian chunk size).
    pub fn with_options(
        ctx: Arc<GpuContext>,
        spec: &NetworkSpec,
        shape: BatchShape,
        training: bool,
        options: EngineOptions,
    ) -> Result<Self> {
        spec.validate()?;
        if training && spec.outputs > crate::nn::MAX_TRAINED_OUTPUTS {
            return Err(SpinError::Config(format!(
                "at most {} eigenfunctions can be trained, got {}",
                crate::nn::MAX_TRAINED_OUTPUTS,
                spec.outputs
            )));
        }
        if shape.input_dim != spec.input_dim {
            return Err(SpinError::Shape(format!(
                "batch input dimension {} but the network takes {}",
                shape.input_dim, spec.input_dim
            )));
        }
        let build = Build {
            ctx: &ctx,
            mirrors: Mirrors::default(),
        };
        let layers = spec.layers();
        let last = layers.len() - 1;
        let n = spec.outputs;
        let npad = crate::nn::pad4(n);
        let nparams = spec.num_params();
        let gpu_params = spec.gpu_params();
        let npar4 = gpu_params / 4;
        let in_width = layers[0].in_width;
        let r = shape.rows;
        let s = shape.samples;
        // Forward-mode tangent rows (exact Laplacian): only the value channel carries the bias.
        let tangent = shape.channels > 1;
        if tangent && !spec.supports_tangents() {
            return Err(SpinError::Config(
                "the exact Laplacian and the weak form need a dense softplus network (forward-mode tangents); conv layers and ReLU have none".into(),
            ));
        }
        // Derivative channels of the tangent kernels, and the envelope's coordinates.
        let space_dim = spec.space_dim();
        if tangent && shape.channels != space_dim + 2 {
            return Err(SpinError::Shape(format!(
                "{} forward-mode channels for points of dimension {space_dim}",
                shape.channels
            )));
        }
        let value_rows = if tangent { s } else { r };
        let entries_len = shape.pairs * (shape.tx + shape.ty);
        let npairs = n * (n + 1) / 2;
        let widest = Self::widest_row(spec);
        let widest_out = layers.iter().map(|l| l.out_width).max().unwrap_or(4);
        let conv_block = layers
            .iter()
            .filter(|l| l.conv().is_some())
            .map(|l| l.gpu_len())
            .max()
            .unwrap_or(0);
        let limit = ctx.adapter().max_storage_buffer_binding_size as usize;
        let per_sample = n * widest_out.max(conv_block) * 4;
        let chunk_samples = options
            .chunk_samples
            .unwrap_or_else(|| CHUNK_BYTES.min(limit) / per_sample)
            .clamp(1, s);
        let mut biggest = r * widest;
        if training {
            biggest = biggest
                .max(npairs * gpu_params)
                .max(chunk_samples * per_sample / 4);
        }
        if biggest * 4 > limit {
            return Err(SpinError::Config(format!(
                "a buffer of {} bytes exceeds the adapter's storage binding limit of {limit} bytes; use a smaller batch, network or number of eigenfunctions",
                biggest * 4
            )));
        }
        let memory = Cell::new(0u64);
        let storage = |label: &str, words: usize| {
            memory.set(memory.get() + 4 * words.max(1) as u64);
            ctx.storage(label, words)
        };

        let params = storage("params", gpu_params);
        let inputs = storage("inputs", r * in_width);
        let z: Vec<_> = layers
            .iter()
            .enumerate()
            .map(|(l, ly)| storage(&format!("z{l}"), r * ly.out_width))
            .collect();
        let a: Vec<_> = layers
            .iter()
            .enumerate()
            .map(|(l, ly)| storage(&format!("a{l}"), r * ly.out_width))
            .collect();
        let env = storage("envelope", r);
        let ubuf = storage("u", r * n);
        let x_terms = storage("x_terms", 2 * shape.pairs * shape.tx);
        let y_terms = storage("y_terms", 2 * shape.pairs * shape.ty);
        let xs = storage("X", shape.pairs * n);
        let ys = storage("Y", shape.pairs * n);
        let sample_w = storage("sample_weights", s);
        let pair_w = storage("pair_weights", shape.pairs);
        let stat_chunks = s.max(shape.pairs).div_ceil(STATS_CHUNK);
        let partial = storage("stats_partial", stat_chunks * 2 * n * n);
        let stats = storage("stats", 2 * n * n);
        let stats_staging = ctx.staging("stats_staging", 2 * n * n);

        // Statistics stage: layers forward, envelope, operator, reductions.
        let mut forward = Vec::new();
        for (l, ly) in layers.iter().enumerate() {
            let a_in = if l == 0 { &inputs } else { &a[l - 1] };
            let named = [
                ("params", &params),
                ("a_in", a_in),
                ("z_out", &z[l]),
                ("a_out", &a[l]),
            ];
            match ly.kind {
                LayerKind::Dense => {
                    let act = if tangent { 0 } else { ly.act.code() };
                    forward.push(dispatch(
                        &build,
                        Kernel::DenseForward,
                        &with(
                            DenseShape::of(ly).constants(),
                            &[
                                ("ROWS", u(r)),
                                ("ACT", act as f64),
                                ("BIAS_ROWS", u(value_rows)),
                            ],
                        ),
                        &named,
                        r.div_ceil(TILE_ROWS) * (ly.out_pad / 4).div_ceil(TILE_QUADS),
                        format!("dense_forward[{l}]"),
                    )?);
                    if tangent && ly.act.code() != 0 {
                        forward.push(dispatch(
                            &build,
                            Kernel::TangentAct,
                            &[
                                ("SAMPLES", u(s)),
                                ("DIM", u(space_dim)),
                                ("OUT4", u(ly.out_pad / 4)),
                            ],
                            &[("z", &z[l]), ("a", &a[l])],
                            s * ly.out_pad / 4,
                            format!("tangent_act[{l}]"),
                        )?);
                    }
                }
                LayerKind::Conv2d(g) => forward.push(dispatch(
                    &build,
                    Kernel::Conv2dForward,
                    &with(
                        conv_constants(&g),
                        &[
                            ("ROWS", u(r)),
                            ("W_OFF4", u(ly.gpu_offset / 4)),
                            ("ACT", ly.act.code() as f64),
                        ],
                    ),
                    &named,
                    (r * g.out_positions()).div_ceil(4) * g.out_cp / 4,
                    format!("conv2d_forward[{l}]"),
                )?),
            }
        }
        let envelope_constants = [
            ("DIM", u(space_dim.min(in_width))),
            ("DIM_PAD", u(in_width)),
            ("NEIG", u(n)),
            ("NEIG_PAD", u(npad)),
            ("ENVELOPE", u(spec.envelope.is_some() as usize)),
            ("BOX", spec.envelope.unwrap_or(1.0) as f64),
        ];
        let env_bufs = [("x", &inputs), ("f", &a[last]), ("env", &env), ("u", &ubuf)];
        if tangent {
            forward.push(dispatch(
                &build,
                Kernel::TangentEnvelope,
                &with(vec![("SAMPLES", u(s))], &envelope_constants),
                &env_bufs,
                s,
                "tangent_envelope".into(),
            )?);
        } else {
            forward.push(dispatch(
                &build,
                Kernel::Envelope,
                &with(vec![("ROWS", u(r))], &envelope_constants),
                &env_bufs,
                r,
                "apply_envelope".into(),
            )?);
        }
        forward.push(dispatch(
            &build,
            Kernel::OperatorApply,
            &[
                ("PAIRS", u(shape.pairs)),
                ("NEIG", u(n)),
                ("TX", u(shape.tx)),
                ("TY", u(shape.ty)),
            ],
            &[
                ("u", &ubuf),
                ("x_terms", &x_terms),
                ("y_terms", &y_terms),
                ("xs", &xs),
                ("ys", &ys),
            ],
            shape.pairs * n,
            "operator_apply".into(),
        )?);
        let reductions_at = forward.len();
        let sizes = [("SAMPLES", u(s)), ("PAIRS", u(shape.pairs)), ("NEIG", u(n))];
        forward.push(dispatch(
            &build,
            Kernel::StatsPartial,
            &with(sizes.to_vec(), &[("CHUNK", u(STATS_CHUNK))]),
            &[
                ("u", &ubuf),
                ("w", &sample_w),
                ("xs", &xs),
                ("ys", &ys),
                ("wq", &pair_w),
                ("partial", &partial),
            ],
            stat_chunks * 2 * n * n,
            "stats_partial".into(),
        )?);
        forward.push(dispatch(
            &build,
            Kernel::StatsFinal,
            &with(sizes.to_vec(), &[("CHUNKS", u(stat_chunks))]),
            &[("partial", &partial), ("stats", &stats)],
            2 * n * n,
            "stats_final".into(),
        )?);

        plan_copies(&mut forward);
        let backward = if training {
            let row_ptr = storage("row_ptr", r + 1);
            let entries = storage("entries", 4 * entries_len);
            let step_buf = storage("step", 4 + 2 * n * n);
            let delta: Vec<_> = layers
                .iter()
                .enumerate()
                .map(|(l, ly)| storage(&format!("delta{l}"), r * ly.out_width))
                .collect();
            let c = chunk_samples;
            let sens: Vec<_> = layers
                .iter()
                .enumerate()
                .map(|(l, ly)| storage(&format!("sens{l}"), c * n * ly.out_width))
                .collect();
            let g_bk = storage("per_sample_grads", c * n * conv_block);
            let su = storage("weighted_outputs", c * npad);
            let jbar = storage("sigma_jacobian_avg", npairs * gpu_params);
            let jbar_prev = storage("sigma_jacobian_avg_prev", npairs * gpu_params);
            let grad = storage("grad", gpu_params);
            let grad_staging = ctx.staging("grad_staging", gpu_params);
            let chunk_list = chunks(s, c);
            let chunk_bufs: Vec<wgpu::Buffer> = chunk_list
                .iter()
                .enumerate()
                .map(|(i, &(off, count))| {
                    ctx.storage_from(
                        &format!("chunk{i}"),
                        &[off as u32, count as u32, (i == 0) as u32, 0],
                    )
                })
                .collect();
            let whole = ctx.storage_from("chunk_whole", &[0u32, s as u32, 1, 0]);
            // Tangent rows need two scratch buffers: the cotangent on u before the envelope, and
            // the cotangent on a layer's activations before the tangent softplus.
            let cot_u = storage("cot_u", if tangent { r * npad } else { 1 });
            let cot_a = storage("cot_a", if tangent { r * widest } else { 1 });

            // Π-VJP stage: the cotangent of Π̂ through the operator and envelope, then layer by
            // layer from the output.
            let mut d = vec![dispatch(
                &build,
                Kernel::OperatorBackward,
                &[
                    ("ROWS", u(r)),
                    ("NEIG", u(n)),
                    ("NEIG_PAD", u(npad)),
                    ("ENV_MULT", u(!tangent as usize)),
                ],
                &[
                    ("xs", &xs),
                    ("ys", &ys),
                    ("wq", &pair_w),
                    ("row_ptr", &row_ptr),
                    ("entries", &entries),
                    ("step", &step_buf),
                    ("env", &env),
                    ("delta", if tangent { &cot_u } else { &delta[last] }),
                ],
                r * npad,
                "operator_backward".into(),
            )?];
            if tangent {
                d.push(dispatch(
                    &build,
                    Kernel::TangentEnvelopeBackward,
                    &[
                        ("SAMPLES", u(s)),
                        ("DIM", u(space_dim)),
                        ("NEIG", u(n)),
                        ("NEIG_PAD", u(npad)),
                    ],
                    &[("env", &env), ("cot_u", &cot_u), ("delta", &delta[last])],
                    s * npad,
                    "tangent_envelope_backward".into(),
                )?);
            }
            for l in (0..layers.len()).rev() {
                let ly = &layers[l];
                let a_in = if l == 0 { &inputs } else { &a[l - 1] };
                match ly.kind {
                    LayerKind::Dense => d.push(dispatch(
                        &build,
                        Kernel::ParamGrad,
                        &with(
                            DenseShape::of(ly).constants(),
                            &[("ROWS", u(r)), ("BIAS_ROWS", u(value_rows))],
                        ),
                        &[("a_in", a_in), ("delta", &delta[l]), ("grad", &grad)],
                        (ly.in_pad / 4 + 1) * ly.out_pad / 4,
                        format!("param_grad[{l}]"),
                    )?),
                    LayerKind::Conv2d(g) => d.push(conv_param_grad(
                        &build,
                        ly,
                        &g,
                        1,
                        r,
                        1,
                        ly.gpu_offset,
                        [a_in, &delta[l], &grad, &whole],
                        format!("conv2d_param_grad[{l}]"),
                    )?),
                }
                if l > 0 {
                    let act_below = if tangent { 0 } else { layers[l - 1].act.code() };
                    let target = if tangent { &cot_a } else { &delta[l - 1] };
                    d.push(input_vjp(
                        &build,
                        &params,
                        ly,
                        act_below,
                        r,
                        1,
                        [&delta[l], &z[l - 1], target, &whole],
                        format!("dense_backward[{l}]"),
                    )?);
                    if tangent {
                        d.push(dispatch(
                            &build,
                            Kernel::TangentActBackward,
                            &[
                                ("SAMPLES", u(s)),
                                ("DIM", u(space_dim)),
                                ("OUT4", u(ly.in_pad / 4)),
                            ],
                            &[
                                ("z", &z[l - 1]),
                                ("cot_a", &cot_a),
                                ("delta", &delta[l - 1]),
                            ],
                            s * ly.in_pad / 4,
                            format!("tangent_act_backward[{l}]"),
                        )?);
                    }
                }
            }
            // Σ-Jacobian stage, chunk by chunk: the N sensitivity back-passes at once (rows are
            // (sample, output) pairs), then each layer's share of J̄.
            for (ci, chunk) in chunk_bufs.iter().enumerate() {
                let tag = |name: &str, l: Option<usize>| match (chunk_bufs.len(), l) {
                    (1, Some(l)) => format!("{name}[{l}]"),
                    (1, None) => name.to_string(),
                    (_, Some(l)) => format!("{name}[{l}] chunk {ci}"),
                    (_, None) => format!("{name} chunk {ci}"),
                };
                d.push(dispatch(
                    &build,
                    Kernel::SensInit,
                    &[
                        ("SAMPLES", u(c)),
                        ("NEIG", u(n)),
                        ("NEIG_PAD", u(npad)),
                        ("CONST_FIRST", u(spec.constant_first as usize)),
                    ],
                    &[
                        ("env", &env),
                        ("sens", &sens[last]),
                        ("chunk", chunk),
                        ("u", &ubuf),
                        ("w", &sample_w),
                        ("su", &su),
                    ],
                    c * n * npad,
                    tag("sens_init", None),
                )?);
                for l in (1..layers.len()).rev() {
                    d.push(input_vjp(
                        &build,
                        &params,
                        &layers[l],
                        layers[l - 1].act.code(),
                        c * n,
                        n,
                        [&sens[l], &z[l - 1], &sens[l - 1], chunk],
                        tag("sens_backward", Some(l)),
                    )?);
                }
                for (l, ly) in layers.iter().enumerate() {
                    let a_in = if l == 0 { &inputs } else { &a[l - 1] };
                    match ly.kind {
                        LayerKind::Dense => d.push(dispatch(
                            &build,
                            Kernel::JbarUpdate,
                            &with(
                                DenseShape::of(ly).constants(),
                                &[
                                    ("NEIG", u(n)),
                                    ("NEIG_PAD", u(npad)),
                                    ("NPAR4", u(npar4)),
                                    ("OUTPUT_LAYER", u((l == last) as usize)),
                                ],
                            ),
                            &[
                                ("a_in", a_in),
                                ("sens", &sens[l]),
                                ("su", &su),
                                ("step", &step_buf),
                                ("jbar", &jbar),
                                ("chunk", chunk),
                            ],
                            jbar_blocks(n) * (ly.in_pad / 4 + 2) / 2 * ly.out_pad / 4,
                            tag("jbar_update", Some(l)),
                        )?),
                        LayerKind::Conv2d(g) => {
                            d.push(dispatch(
                                &build,
                                Kernel::Conv2dSampleGrads,
                                &with(
                                    conv_constants(&g),
                                    &[
                                        ("NEIG", u(n)),
                                        ("SAMPLES", u(c)),
                                        ("LAYER4", u(ly.gpu_len() / 4)),
                                    ],
                                ),
                                &[
                                    ("a_in", a_in),
                                    ("delta", &sens[l]),
                                    ("grad", &g_bk),
                                    ("chunk", chunk),
                                ],
                                c * n.div_ceil(2) * (ly.in_pad / 4 + 1) * ly.out_pad / 4,
                                tag("conv2d_sample_grads", Some(l)),
                            )?);
                            let njq = n.div_ceil(4);
                            d.push(dispatch(
                                &build,
                                Kernel::JbarSamples,
                                &[
                                    ("NEIG", u(n)),
                                    ("NEIG_PAD", u(npad)),
                                    ("NJQ", u(njq)),
                                    ("LAYER4", u(ly.gpu_len() / 4)),
                                    ("W_OFF4", u(ly.gpu_offset / 4)),
                                    ("NPAR4", u(npar4)),
                                ],
                                &[
                                    ("g_bk", &g_bk),
                                    ("su", &su),
                                    ("step", &step_buf),
                                    ("jbar", &jbar),
                                    ("chunk", chunk),
                                ],
                                n * njq * (ly.gpu_len() / 4).div_ceil(2),
                                tag("jbar_samples", Some(l)),
                            )?);
                        }
                    }
                }
            }
            d.push(dispatch(
                &build,
                Kernel::JbarContract,
                &[("NEIG", u(n)), ("NPAR4", u(npar4))],
                &[("step", &step_buf), ("jbar", &jbar), ("grad", &grad)],
                npar4,
                "jbar_contract".into(),
            )?);
            Some(Backward {
                row_ptr,
                entries,
                step_buf,
                delta,
                sens,
                jbar,
                jbar_prev,
                grad,
                grad_staging,
                dispatches: {
                    plan_copies(&mut d);
                    d
                },
            })
        } else {
            None
        };
        ctx.check("allocating the SpIN engine")?;
        let memory_bytes = memory.get() + build.mirrors.bytes();
        drop(build);
        Ok(Self {
            ctx,
            spec: spec.clone(),
            layers,
            shape,
            nparams,
            gpu_params,
            entries_len,
            chunk_samples,
            memory_bytes,
            params,
            inputs,
            z,
            a,
            env,
            u: ubuf,
            x_terms,
            y_terms,
            xs,
            ys,
            sample_w,
            pair_w,
            stats,
            stats_staging,
            forward,
            reductions_at,
            backward,
        })
    }

    /// Bytes of GPU storage this engine allocated (staging buffers excluded).
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    /// Samples per chunk of the Σ-Jacobian stage.
    pub fn chunk_samples(&self) -> usize {
        self.chunk_samples
    }

    /// The batch shape this engine was built for.
    pub fn shape(&self) -> BatchShape {
        self.shape
    }

    /// The network.
    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    /// The context.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Uploads the parameters.
    pub fn set_params(&self, params: &[f32]) -> Result<()> {
        if params.len() != self.nparams {
            return Err(SpinError::Shape(format!(
                "{} parameters, the network has {}",
                params.len(),
                self.nparams
            )));
        }
        let packed = self.spec.pack(params);
        self.ctx
            .queue
            .write_buffer(&self.params, 0, bytemuck::cast_slice(&packed));
        Ok(())
    }

    /// Uploads a batch (its shape must be the engine's).
    pub fn set_batch(&self, batch: &Batch) -> Result<()> {
        batch.validate()?;
        if batch.shape != self.shape {
            return Err(SpinError::Shape(format!(
                "batch {:?} on an engine built for {:?}",
                batch.shape, self.shape
            )));
        }
        let q = &self.ctx.queue;
        let (d, dp) = (batch.shape.input_dim, self.layers[0].in_width);
        if d == dp {
            q.write_buffer(&self.inputs, 0, bytemuck::cast_slice(&batch.inputs));
        } else {
            let mut padded = vec![0.0f32; batch.shape.rows * dp];
            for (dst, src) in padded.chunks_mut(dp).zip(batch.inputs.chunks(d)) {
                self.spec.pad_input_row(src, dst);
            }
            q.write_buffer(&self.inputs, 0, bytemuck::cast_slice(&padded));
        }
        q.write_buffer(
            &self.sample_w,
            0,
            bytemuck::cast_slice(&batch.sample_weights),
        );
        q.write_buffer(&self.pair_w, 0, bytemuck::cast_slice(&batch.pair_weights));
        q.write_buffer(&self.x_terms, 0, bytemuck::cast_slice(&batch.x_terms));
        q.write_buffer(&self.y_terms, 0, bytemuck::cast_slice(&batch.y_terms));
        if let Some(b) = &self.backward {
            let (row_ptr, entries) = batch.transpose();
            debug_assert_eq!(entries.len(), self.entries_len);
            q.write_buffer(&b.row_ptr, 0, bytemuck::cast_slice(&row_ptr));
            q.write_buffer(&b.entries, 0, bytemuck::cast_slice(&entries));
        }
        Ok(())
    }

    /// Encodes `list` (planned by [`plan_copies`]): one compute pass per run of dispatches
    /// that need no mirror copy in between.
    fn encode(&self, enc: &mut wgpu::CommandEncoder, list: &[Dispatch]) {
        let mut i = 0;
        while i < list.len() {
            for (buf, m) in &list[i].copies {
                m.encode_copy(enc, buf);
            }
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("spin"),
                timestamp_writes: None,
            });
            loop {
                let d = &list[i];
                pass.set_pipeline(&d.pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
                i += 1;
                if i == list.len() || !list[i].copies.is_empty() {
                    break;
                }
            }
        }
    }

    /// Submit A without the reductions: the forward pass and the operator's X and Y, for
    /// [`Engine::read`] (the host's own f64 moments of a wide basis, where the reductions'
    /// one-entry-per-thread kernel is slow).
    pub fn forward_values(&self) -> Result<()> {
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("forward values"),
            });
        self.encode(&mut enc, &self.forward[..self.reductions_at]);
        self.ctx.queue.submit([enc.finish()]);
        Ok(())
    }

    /// Submit A: forward pass and reductions for the current params and batch.
    /// Returns (Σ̂, Π̂), each (N, N) row-major.
    pub fn statistics(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = self.spec.outputs;
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("statistics"),
            });
        self.encode(&mut enc, &self.forward);
        enc.copy_buffer_to_buffer(
            &self.stats,
            0,
            &self.stats_staging,
            0,
            (2 * n * n * 4) as u64,
        );
        self.ctx.queue.submit([enc.finish()]);
        let all = self.ctx.read_staging(&self.stats_staging, 2 * n * n)?;
        Ok((all[..n * n].to_vec(), all[n * n..].to_vec()))
    }

    fn backward(&self) -> Result<&Backward> {
        self.backward
            .as_ref()
            .ok_or_else(|| SpinError::Config("this engine was built for evaluation only".into()))
    }

    /// Submit B, after [`Engine::statistics`] on the same params and batch: updates J̄ with
    /// rate `beta` and returns the SpIN gradient g = VJP_Π + Σ_{j≤k} (G_Σ)_jk J̄[j,k,:].
    pub fn gradient(&self, g_pi: &[f64], g_sigma: &[f64], beta: f64) -> Result<Vec<f32>> {
        let b = self.backward()?;
        let n = self.spec.outputs;
        if g_pi.len() != n * n || g_sigma.len() != n * n {
            return Err(SpinError::Shape(format!(
                "G_Π and G_Σ must be {n}×{n}, got {} and {} values",
                g_pi.len(),
                g_sigma.len()
            )));
        }
        let scalars = StepScalars {
            beta: beta as f32,
            two_over_s: 2.0 / self.shape.samples as f32,
            inv_q: 1.0 / self.shape.pairs as f32,
            pad: 0.0,
        };
        let mut step: Vec<f32> = bytemuck::cast_slice(&[scalars]).to_vec();
        step.extend(g_pi.iter().chain(g_sigma).map(|&v| v as f32));
        self.ctx
            .queue
            .write_buffer(&b.step_buf, 0, bytemuck::cast_slice(&step));
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gradient"),
            });
        enc.copy_buffer_to_buffer(&b.jbar, 0, &b.jbar_prev, 0, b.jbar.size());
        self.encode(&mut enc, &b.dispatches);
        enc.copy_buffer_to_buffer(&b.grad, 0, &b.grad_staging, 0, (self.gpu_params * 4) as u64);
        self.ctx.queue.submit([enc.finish()]);
        let padded = self.ctx.read_staging(&b.grad_staging, self.gpu_params)?;
        Ok(self.spec.unpack(&padded))
    }

    /// Puts J̄ back to what it was before the last [`Engine::gradient`] (whose step was rejected,
    /// e.g. for a non-finite gradient), so that J̄, θ, Σ̄ and the optimiser describe one step.
    pub fn undo_jbar_update(&self) -> Result<()> {
        let b = self.backward()?;
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("undo J̄"),
            });
        enc.copy_buffer_to_buffer(&b.jbar_prev, 0, &b.jbar, 0, b.jbar.size());
        self.ctx.queue.submit([enc.finish()]);
        Ok(())
    }

    /// The moving average J̄ (N(N+1)/2, P), for checkpoints and tests.
    pub fn read_jbar(&self) -> Result<Vec<f32>> {
        let b = self.backward()?;
        let n = self.spec.outputs;
        let padded = self
            .ctx
            .read_buffer(&b.jbar, n * (n + 1) / 2 * self.gpu_params)?;
        Ok(padded
            .chunks(self.gpu_params)
            .flat_map(|c| self.spec.unpack(c))
            .collect())
    }

    /// Overwrites J̄ (for resuming from a checkpoint, or zeroing).
    pub fn write_jbar(&self, jbar: &[f32]) -> Result<()> {
        let b = self.backward()?;
        let n = self.spec.outputs;
        if jbar.len() != n * (n + 1) / 2 * self.nparams {
            return Err(SpinError::Shape(format!(
                "J̄ of {} floats, expected {}",
                jbar.len(),
                n * (n + 1) / 2 * self.nparams
            )));
        }
        let padded: Vec<f32> = jbar
            .chunks(self.nparams)
            .flat_map(|c| self.spec.pack(c))
            .collect();
        self.ctx
            .queue
            .write_buffer(&b.jbar, 0, bytemuck::cast_slice(&padded));
        Ok(())
    }

    /// Reads an intermediate buffer (tests and diagnostics).
    pub fn read(&self, what: Probe) -> Result<Vec<f32>> {
        let n = self.spec.outputs;
        let r = self.shape.rows;
        // Each row is `positions` runs of a padded width, of which `w` are real.
        let ly = |l: usize| {
            let ly = &self.layers[l];
            (ly.positions, ly.out_pad, ly.outputs)
        };
        // (buffer, rows, (positions, padded width, width))
        let (buf, rows, (pos, wp, w)) = match what {
            Probe::Z(l) => (&self.z[l], r, ly(l)),
            Probe::A(l) => (&self.a[l], r, ly(l)),
            Probe::Envelope => (&self.env, r, (1, 1, 1)),
            Probe::U => (&self.u, r, (1, n, n)),
            Probe::X => (&self.xs, self.shape.pairs, (1, n, n)),
            Probe::Y => (&self.ys, self.shape.pairs, (1, n, n)),
            Probe::Delta(l) => (&self.backward()?.delta[l], r, ly(l)),
            Probe::Sens(l) => (&self.backward()?.sens[l], self.chunk_samples * n, ly(l)),
        };
        let padded = self.ctx.read_buffer(buf, rows * pos * wp)?;
        Ok(padded.chunks(wp).flat_map(|c| c[..w].to_vec()).collect())
    }

    /// Runs statistics + gradient once per dispatch in its own pass with timestamps, returning
    /// per-kernel times; `None` when the adapter has no timestamp queries.
    pub fn profile(
        &self,
        g_pi: &[f64],
        g_sigma: &[f64],
        beta: f64,
    ) -> Result<Option<Vec<KernelTime>>> {
        if !self.ctx.has_timestamps() {
            return Ok(None);
        }
        let b = self.backward()?;
        // Make sure the step buffer holds something sensible, then time each dispatch.
        self.gradient(g_pi, g_sigma, beta)?;
        let list: Vec<&Dispatch> = self.forward.iter().chain(b.dispatches.iter()).collect();
        let count = (2 * list.len()) as u32;
        let qs = self.ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kernel timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolve = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: count as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = self.ctx.staging("timestamps_staging", 2 * count as usize);
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("profile"),
            });
        for (i, d) in list.iter().enumerate() {
            for (buf, m) in &d.copies {
                m.encode_copy(&mut enc, buf);
            }
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&d.label),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &qs,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
        }
        enc.resolve_query_set(&qs, 0..count, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, count as u64 * 8);
        self.ctx.queue.submit([enc.finish()]);
        let raw = self.ctx.read_staging(&staging, 2 * count as usize)?;
        let ticks: Vec<u64> = raw
            .chunks(2)
            .map(|c| (c[0].to_bits() as u64) | ((c[1].to_bits() as u64) << 32))
            .collect();
        let period = self.ctx.queue.get_timestamp_period() as f64;
        Ok(Some(
            list.iter()
                .enumerate()
                .map(|(i, d)| KernelTime {
                    label: d.label.clone(),
                    ms: ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period * 1e-6,
                })
                .collect(),
        ))
    }
}

/// Intermediate buffers that [`Engine::read`] can return.
#[derive(Clone, Copy, Debug)]
pub enum Probe {
    /// Pre-activations of layer l (rows, outputs).
    Z(usize),
    /// Activations of layer l (rows, outputs).
    A(usize),
    /// Envelope per row.
    Envelope,
    /// Outputs u (rows, N).
    U,
    /// Operator X (pairs, N).
    X,
    /// Operator Y (pairs, N).
    Y,
    /// Batch VJP cotangent at the output of layer l (rows, outputs).
    Delta(usize),
    /// Per-sample sensitivities at the output of layer l (samples, N, outputs), of the last
    /// chunk of the Σ-Jacobian stage (all samples when there is one chunk).
    Sens(usize),
}
