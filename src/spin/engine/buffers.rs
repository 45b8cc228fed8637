//! Every GPU buffer of an engine, allocated in one place, and the sizes they follow from.

use std::cell::Cell;

use super::EngineOptions;
use crate::error::{Result, SpinError};
use crate::gpu::GpuContext;
use crate::nn::{Layer, NetworkSpec};
use crate::operators::BatchShape;

/// The most coordinates a point may have on forward-mode tangent rows (the exact Laplacian and
/// the weak form): the size of `tangent_envelope`'s per-coordinate arrays (`MAX_DIM` there).
pub const MAX_TANGENT_DIM: usize = 16;

/// Rows per chunk in the first stage of the Σ̂/Π̂ reduction.
pub(super) const STATS_CHUNK: usize = 64;

/// Bytes that one chunk's largest Σ-Jacobian buffer (sensitivities, per-sample gradients) may
/// take, capped by the adapter's storage binding limit.
pub(super) const CHUNK_BYTES: usize = 64 << 20;

/// The sizes of one engine, derived once from the network and the batch shape.
#[derive(Clone, Debug)]
pub(super) struct Dims {
    /// Outputs N and N rounded up to a multiple of 4.
    pub n: usize,
    pub npad: usize,
    /// N(N+1)/2: the pairs j ≤ k of the Σ-Jacobian.
    pub npairs: usize,
    /// Parameters in the user layout and in the padded GPU layout (and its vec4s).
    pub nparams: usize,
    pub gpu_params: usize,
    pub npar4: usize,
    /// Rows R, samples S (rows 0..S enter Σ̂) and pairs Q of a batch.
    pub rows: usize,
    pub samples: usize,
    pub pairs: usize,
    /// Forward-mode tangent rows (exact Laplacian, weak form): only the value channel, rows
    /// 0..S, carries the bias.
    pub tangent: bool,
    /// Rows that get the bias: R, or S with tangent rows (doubled with `exchange`).
    pub value_rows: usize,
    /// The exchange-symmetrised network ([`crate::nn::Exchange`]): the layers run on
    /// `net_rows` = 2R rows (each channel's block of rows, then its swapped copy) and the
    /// exchange kernel combines them into the R rows of f.
    pub exchange: Option<crate::nn::Exchange>,
    /// Rows the layers run on: R, or 2R with `exchange`.
    pub net_rows: usize,
    /// Samples per channel on the layers' rows: S, or 2S with `exchange`.
    pub net_samples: usize,
    /// Rows per channel block of the batch (S with tangent rows, R otherwise).
    pub block: usize,
    /// Coordinates of a point (the envelope's and the tangents' dimension).
    pub space_dim: usize,
    /// Floats per input row on the GPU (padded).
    pub in_width: usize,
    /// The widest activation row: a buffer of R × this holds any layer's values.
    pub widest: usize,
    /// The largest conv layer's padded parameter block (0 without conv layers).
    pub conv_block: usize,
    /// Samples per chunk of the Σ-Jacobian stage.
    pub chunk_samples: usize,
    /// β = 1's fused gradient: no Σ-Jacobian stage and none of its buffers.
    pub fused: bool,
    /// Row groups of each layer's batch parameter gradient (split-K; 1: none).
    pub param_groups: Vec<usize>,
    /// The batch parameter gradients in 2 × 2 tiles (`param_grad_wide`).
    pub wide_param_grad: bool,
    /// The subgroup-shared dense kernels (the `_shared` forms).
    pub shared_weights: bool,
    /// Terms per X and per Y of the operator's gathers, and entries of their transpose.
    pub tx: usize,
    pub ty: usize,
    pub entries_len: usize,
    /// Chunks of the first reduction stage.
    pub stat_chunks: usize,
}

impl Dims {
    /// The sizes of `spec` (whose layers are `layers`) on batches of `shape`; refuses shapes the
    /// network cannot run and buffers over the adapter's binding limit.
    pub fn new(
        ctx: &GpuContext,
        spec: &NetworkSpec,
        layers: &[Layer],
        shape: BatchShape,
        training: bool,
        options: EngineOptions,
    ) -> Result<Self> {
        let n = spec.outputs;
        let (r, s) = (shape.rows, shape.samples);
        let tangent = shape.channels > 1;
        let space_dim = spec.space_dim();
        Self::check_tangents(spec, shape)?;
        let npairs = n * (n + 1) / 2;
        let gpu_params = spec.gpu_params();
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
        let fused = options.sigma == super::SigmaGradient::Fused;
        let exchange = spec.exchange;
        if exchange.is_some() && training && !fused {
            return Err(SpinError::Config(
                "the exchange-symmetrised network is trained with β = 1 only (the fused gradient); its Σ-Jacobian moving average is not built".into(),
            ));
        }
        let copies = 1 + exchange.is_some() as usize;
        let mut biggest = copies * r * widest;
        if training && !fused {
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
        Ok(Self {
            n,
            npad: crate::nn::pad4(n),
            npairs,
            nparams: spec.num_params(),
            gpu_params,
            npar4: gpu_params / 4,
            rows: r,
            samples: s,
            pairs: shape.pairs,
            tangent,
            value_rows: copies * if tangent { s } else { r },
            exchange,
            net_rows: copies * r,
            net_samples: copies * s,
            block: if tangent { s } else { r },
            space_dim,
            in_width: layers[0].in_width,
            widest,
            conv_block,
            chunk_samples,
            fused,
            param_groups: Self::param_groups(ctx, layers, copies * r, options),
            wide_param_grad: options.wide_param_grad.unwrap_or_else(|| {
                ctx.adapter().device_type == "Cpu"
                    && crate::gpu::context::lavapipe_single_threaded()
            }),
            shared_weights: match options.shared_weights {
                Some(true) if !ctx.has_shared_lanes() => {
                    return Err(SpinError::Config(format!(
                        "the subgroup-shared kernels need subgroups of exactly {} lanes; \
                         this adapter has none",
                        crate::gpu::tiles::SHARED_LANES
                    )))
                }
                Some(v) => v,
                None => ctx.has_shared_lanes(),
            },
            tx: shape.tx,
            ty: shape.ty,
            entries_len: shape.pairs * (shape.tx + shape.ty),
            stat_chunks: s.max(shape.pairs).div_ceil(STATS_CHUNK),
        })
    }

    /// Refuses forward-mode channels (the exact Laplacian, the weak form) that the network or
    /// the point dimension cannot take.
    fn check_tangents(spec: &NetworkSpec, shape: BatchShape) -> Result<()> {
        let tangent = shape.channels > 1;
        let space_dim = spec.space_dim();
        if tangent && !spec.supports_tangents() {
            return Err(SpinError::Config(
                "the exact Laplacian and the weak form need a dense softplus network (forward-mode tangents); conv layers and ReLU have none".into(),
            ));
        }
        if tangent && space_dim > MAX_TANGENT_DIM {
            return Err(SpinError::Config(format!(
                "the exact Laplacian and the weak form take points of at most {MAX_TANGENT_DIM} coordinates, got {space_dim}; use the finite-difference Laplacian"
            )));
        }
        if tangent && shape.channels != space_dim + 2 {
            return Err(SpinError::Shape(format!(
                "{} forward-mode channels for points of dimension {space_dim}",
                shape.channels
            )));
        }
        Ok(())
    }

    /// Row groups of each layer's batch parameter gradient (split-K) for `rows` rows: one on a
    /// CPU adapter, where they measured slower; enough for the device's invocations elsewhere.
    fn param_groups(
        ctx: &GpuContext,
        layers: &[Layer],
        rows: usize,
        options: EngineOptions,
    ) -> Vec<usize> {
        let target =
            options
                .param_grad_invocations
                .unwrap_or(if ctx.adapter().device_type == "Cpu" {
                    1
                } else {
                    crate::gpu::tiles::PARAM_GRAD_INVOCATIONS
                });
        layers
            .iter()
            .map(|l| {
                let base = (l.in_pad / 4 + 1) * l.out_pad / 4;
                crate::gpu::tiles::param_grad_groups(base, rows, target)
            })
            .collect()
    }

    /// Widest activation row of `spec` in f32 words: a buffer of `rows × this` holds every
    /// layer's values.
    pub fn widest_row(spec: &NetworkSpec) -> usize {
        spec.layers()
            .iter()
            .map(|l| l.out_width.max(l.in_width))
            .max()
            .unwrap_or(4)
    }

    /// The Σ-Jacobian stage's chunks of samples: (first sample, count).
    pub fn chunks(&self) -> Vec<(usize, usize)> {
        let (samples, per) = (self.samples, self.chunk_samples);
        (0..samples.div_ceil(per))
            .map(|c| (c * per, per.min(samples - c * per)))
            .collect()
    }
}

/// Every buffer of an engine. Shapes are (rows, cols) in f32 words, widths padded to 4.
pub(super) struct Buffers {
    /// θ in the padded GPU layout (gpu_params).
    pub params: wgpu::Buffer,
    /// Network inputs (net rows: R, or 2R with exchange; in_width).
    pub inputs: wgpu::Buffer,
    /// Pre-activations and activations of layer l (net rows, out_width of l).
    pub z: Vec<wgpu::Buffer>,
    pub a: Vec<wgpu::Buffer>,
    /// With exchange: the symmetrised network output f_s (R, NPAD) that the envelope reads.
    pub f_sym: wgpu::Buffer,
    /// Envelope per row (R), or (g, ∇g, Δg) channel-major on tangent rows.
    pub env: wgpu::Buffer,
    /// Outputs u (R, N).
    pub u: wgpu::Buffer,
    /// The operator's gathers (Q, TX) and (Q, TY) as (row, coef) pairs, and their results X, Y
    /// (Q, N).
    pub x_terms: wgpu::Buffer,
    pub y_terms: wgpu::Buffer,
    pub xs: wgpu::Buffer,
    pub ys: wgpu::Buffer,
    /// Importance weights of the samples (S) and of the pairs (Q).
    pub sample_w: wgpu::Buffer,
    pub pair_w: wgpu::Buffer,
    /// The reductions' partial sums (chunks, 2N²) and result Σ̂ then Π̂ (2N²), with its
    /// staging buffer.
    pub partial: wgpu::Buffer,
    pub stats: wgpu::Buffer,
    pub stats_staging: wgpu::Buffer,
    /// Training only.
    pub train: Option<TrainBuffers>,
    /// Bytes of storage allocated (staging and chunk descriptors excluded).
    pub memory_bytes: u64,
}

/// Where the `Step` buffer holds G_Σ a second time, its upper triangle packed in J̄'s pair order
/// ((j, k) at k(k+1)/2 + j), in floats: after the scalars, G_Π and G_Σ, on a whole vec4, so that
/// `jbar_contract` fetches four pairs' weights at a time.
pub(super) fn packed_sigma_offset(n: usize) -> usize {
    (4 + 2 * n * n).next_multiple_of(4)
}

/// The buffers of the gradient (submit B).
pub(super) struct TrainBuffers {
    /// The transposed gathers as CSR over rows: row_ptr (R + 1) and entries.
    pub row_ptr: wgpu::Buffer,
    pub entries: wgpu::Buffer,
    /// The `Step` uniform of `shaders/common.wgsl`: β, 2/S, 1/Q, whether G_Σ is full, then G_Π
    /// and G_Σ.
    pub step: wgpu::Buffer,
    /// The covariance rule's cotangents of X and Y per pair (Q, 2, NPAD).
    pub pair_cot: wgpu::Buffer,
    /// Batch cotangents at the output of layer l (net rows, out_width of l).
    pub delta: Vec<wgpu::Buffer>,
    /// With exchange: the cotangent on f_s (R, NPAD), which the exchange kernel spreads over
    /// the rows and their swapped copies into the last layer's delta.
    pub delta_sym: wgpu::Buffer,
    /// Tangent rows only: the cotangent on u before the envelope (R, NPAD) and on a layer's
    /// activations before the tangent softplus (R, widest).
    pub cot_u: wgpu::Buffer,
    pub cot_a: wgpu::Buffer,
    /// The gradient (gpu_params) and its staging buffer.
    pub grad: wgpu::Buffer,
    /// The split-K groups' partial parameter gradients of one layer (groups × layer block).
    pub grad_partial: wgpu::Buffer,
    pub grad_staging: wgpu::Buffer,
    /// A `Chunk` descriptor of all samples, for the batch passes that share kernels with the
    /// chunked Σ-Jacobian stage.
    pub whole: wgpu::Buffer,
    /// The Σ-Jacobian stage's buffers (none for the fused β = 1 gradient).
    pub jacobian: Option<JacobianBuffers>,
}

/// The buffers of the Σ-Jacobian stage.
pub(super) struct JacobianBuffers {
    /// Per-sample sensitivities at the output of layer l for one chunk (chunk·N, out_width).
    pub sens: Vec<wgpu::Buffer>,
    /// g_b act'(z_{b,o}) of the layer below a dense read-out for one chunk (chunk, widest).
    pub factor_scale: wgpu::Buffer,
    /// Per-(sample, k) conv weight gradients of one chunk (chunk·N, conv_block).
    pub per_sample_grads: wgpu::Buffer,
    /// w_b u_{b,j} of one chunk (chunk, NPAD).
    pub su: wgpu::Buffer,
    /// J̄ (N(N+1)/2, gpu_params) and its value before the last gradient (to undo a step).
    pub jbar: wgpu::Buffer,
    pub jbar_prev: wgpu::Buffer,
    /// One `Chunk` descriptor per chunk of samples.
    pub chunks: Vec<wgpu::Buffer>,
}

impl Buffers {
    /// Allocates every buffer for `layers` and `dims` (the gradient's only when `training`).
    pub fn allocate(ctx: &GpuContext, layers: &[Layer], dims: &Dims, training: bool) -> Self {
        let memory = Cell::new(0u64);
        let storage = |label: &str, words: usize| {
            memory.set(memory.get() + 4 * words.max(1) as u64);
            ctx.storage(label, words)
        };
        let per_layer = |name: &str, rows: usize| -> Vec<wgpu::Buffer> {
            layers
                .iter()
                .enumerate()
                .map(|(l, ly)| storage(&format!("{name}{l}"), rows * ly.out_width))
                .collect()
        };
        let (r, s, n) = (dims.rows, dims.samples, dims.n);
        let (q, net) = (dims.pairs, dims.net_rows);
        let exchange = dims.exchange.is_some();
        let params = storage("params", dims.gpu_params);
        let inputs = storage("inputs", net * dims.in_width);
        let z = per_layer("z", net);
        let a = per_layer("a", net);
        let f_sym = storage("f_exchanged", if exchange { r * dims.npad } else { 1 });
        let env = storage("envelope", r);
        let u = storage("u", r * n);
        let x_terms = storage("x_terms", 2 * q * dims.tx);
        let y_terms = storage("y_terms", 2 * q * dims.ty);
        let xs = storage("X", q * n);
        let ys = storage("Y", q * n);
        let sample_w = storage("sample_weights", s);
        let pair_w = storage("pair_weights", q);
        let partial = storage("stats_partial", dims.stat_chunks * 2 * n * n);
        let stats = storage("stats", 2 * n * n);
        let stats_staging = ctx.staging("stats_staging", 2 * n * n);
        let train = training.then(|| {
            let c = dims.chunk_samples;
            let jacobian = (!dims.fused).then(|| JacobianBuffers {
                sens: per_layer("sens", c * n),
                factor_scale: storage("factor_scale", c * dims.widest),
                per_sample_grads: storage("per_sample_grads", c * n * dims.conv_block),
                su: storage("weighted_outputs", c * dims.npad),
                jbar: storage("sigma_jacobian_avg", dims.npairs * dims.gpu_params),
                jbar_prev: storage("sigma_jacobian_avg_prev", dims.npairs * dims.gpu_params),
                chunks: dims
                    .chunks()
                    .iter()
                    .enumerate()
                    .map(|(i, &(off, count))| {
                        ctx.storage_from(
                            &format!("chunk{i}"),
                            &[off as u32, count as u32, (i == 0) as u32, 0],
                        )
                    })
                    .collect(),
            });
            TrainBuffers {
                row_ptr: storage("row_ptr", r + 1),
                entries: storage("entries", 4 * dims.entries_len),
                step: storage("step", packed_sigma_offset(n) + n * (n + 1) / 2),
                pair_cot: storage("pair_cotangents", 2 * q * dims.npad),
                delta: per_layer("delta", net),
                delta_sym: storage("delta_exchanged", if exchange { r * dims.npad } else { 1 }),
                cot_u: storage("cot_u", if dims.tangent { r * dims.npad } else { 1 }),
                cot_a: storage("cot_a", if dims.tangent { net * dims.widest } else { 1 }),
                grad: storage("grad", dims.gpu_params),
                grad_partial: storage(
                    "grad_partial",
                    layers
                        .iter()
                        .zip(&dims.param_groups)
                        .filter(|(_, &g)| g > 1)
                        .map(|(l, &g)| g * l.gpu_len())
                        .max()
                        .unwrap_or(1),
                ),
                grad_staging: ctx.staging("grad_staging", dims.gpu_params),
                whole: ctx.storage_from("chunk_whole", &[0u32, s as u32, 1, 0]),
                jacobian,
            }
        });
        Self {
            params,
            inputs,
            z,
            a,
            f_sym,
            env,
            u,
            x_terms,
            y_terms,
            xs,
            ys,
            sample_w,
            pair_w,
            partial,
            stats,
            stats_staging,
            train,
            memory_bytes: memory.get(),
        }
    }

    /// The input activations of layer l: the network's inputs, or the layer below's output.
    pub fn a_in(&self, l: usize) -> &wgpu::Buffer {
        if l == 0 {
            &self.inputs
        } else {
            &self.a[l - 1]
        }
    }
}
