//! The GPU side of one SpIN step: buffers allocated once per (network, batch shape), bind groups
//! built once, and two submits per step.
//!
//! Submit A ([`Engine::statistics`]): forward pass of every layer on all rows, envelope, operator
//! gathers, Σ̂/Π̂ reductions → read back 2N² floats.
//! Submit B ([`Engine::gradient`]): Π̂ cotangent through the operator and envelope, the batch VJP
//! (param_grad + dense_backward per layer), the N per-sample sensitivity back-passes, the fused
//! Σ-Jacobian/moving-average/G_Σ contraction per layer → read back the P-float gradient.

use std::sync::Arc;

use crate::error::{Result, SpinError};
use crate::gpu::{grid, GpuContext, Kernel};
use crate::nn::{DenseLayout, MlpSpec};
use crate::operators::{Batch, BatchShape};

/// Rows per chunk in the first stage of the Σ̂/Π̂ reduction.
const STATS_CHUNK: usize = 64;

struct Dispatch {
    label: String,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    groups: (u32, u32, u32),
}

/// Per-kernel GPU time of one training step, from timestamp queries.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelTime {
    /// Kernel label (kernel and layer).
    pub label: String,
    /// Milliseconds.
    pub ms: f64,
}

/// GPU buffers, bind groups and pipelines for one network and one batch shape.
pub struct Engine {
    ctx: Arc<GpuContext>,
    spec: MlpSpec,
    layers: Vec<DenseLayout>,
    shape: BatchShape,
    nparams: usize,
    gpu_params: usize,
    entries_len: usize,
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
    backward: Option<Backward>,
}

struct Backward {
    row_ptr: wgpu::Buffer,
    entries: wgpu::Buffer,
    gmat: wgpu::Buffer,
    delta: Vec<wgpu::Buffer>,
    sens: Vec<wgpu::Buffer>,
    jbar: wgpu::Buffer,
    grad: wgpu::Buffer,
    grad_staging: wgpu::Buffer,
    dispatches: Vec<Dispatch>,
}

fn u(v: usize) -> f64 {
    v as f64
}

/// Compiles (or fetches) `kernel` with `constants` and binds `buffers` at bindings 0, 1, ...
fn dispatch(
    ctx: &GpuContext,
    kernel: Kernel,
    constants: &[(&'static str, f64)],
    buffers: &[&wgpu::Buffer],
    invocations: usize,
    label: String,
) -> Result<Dispatch> {
    let pipeline = ctx.pipeline(kernel, kernel.name(), constants)?;
    let bind_group = ctx.bind(&label, &pipeline, buffers);
    Ok(Dispatch {
        label,
        pipeline,
        bind_group,
        groups: grid(invocations as u32),
    })
}

impl Engine {
    /// Allocates everything for `spec` on batches of `shape`. With `training = false` only the
    /// statistics pass exists (evaluation).
    pub fn new(
        ctx: Arc<GpuContext>,
        spec: &MlpSpec,
        shape: BatchShape,
        training: bool,
    ) -> Result<Self> {
        spec.validate()?;
        if shape.input_dim != spec.input_dim {
            return Err(SpinError::Shape(format!(
                "batch input dimension {} but the network takes {}",
                shape.input_dim, spec.input_dim
            )));
        }
        let layers = spec.layers();
        let last = layers.len() - 1;
        let n = spec.outputs;
        let npad = crate::nn::pad4(n);
        let nparams = spec.num_params();
        let gpu_params = spec.gpu_params();
        let npar4 = gpu_params / 4;
        let in_pad = layers[0].in_pad;
        let r = shape.rows;
        let s = shape.samples;
        // Forward-mode tangent rows (exact Laplacian): only the value channel carries the bias.
        let tangent = shape.channels > 1;
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
        let widest = layers
            .iter()
            .map(|l| l.out_pad.max(l.in_pad))
            .max()
            .unwrap_or(4);
        let limit = ctx.adapter().max_storage_buffer_binding_size as usize;
        let mut biggest = r * widest;
        if training {
            biggest = biggest.max(npairs * gpu_params).max(s * n * widest);
        }
        if biggest * 4 > limit {
            return Err(SpinError::Config(format!(
                "a buffer of {} bytes exceeds the adapter's storage binding limit of {limit} bytes; use a smaller batch, network or number of eigenfunctions",
                biggest * 4
            )));
        }

        let params = ctx.storage("params", gpu_params);
        let inputs = ctx.storage("inputs", r * in_pad);
        let z: Vec<_> = layers
            .iter()
            .enumerate()
            .map(|(l, ly)| ctx.storage(&format!("z{l}"), r * ly.out_pad))
            .collect();
        let a: Vec<_> = layers
            .iter()
            .enumerate()
            .map(|(l, ly)| ctx.storage(&format!("a{l}"), r * ly.out_pad))
            .collect();
        let env = ctx.storage("envelope", r);
        let ubuf = ctx.storage("u", r * n);
        let x_terms = ctx.storage("x_terms", 2 * shape.pairs * shape.tx);
        let y_terms = ctx.storage("y_terms", 2 * shape.pairs * shape.ty);
        let xs = ctx.storage("X", shape.pairs * n);
        let ys = ctx.storage("Y", shape.pairs * n);
        let sample_w = ctx.storage("sample_weights", s);
        let pair_w = ctx.storage("pair_weights", shape.pairs);
        let chunks = s.max(shape.pairs).div_ceil(STATS_CHUNK);
        let partial = ctx.storage("stats_partial", chunks * 2 * n * n);
        let stats = ctx.storage("stats", 2 * n * n);
        let stats_staging = ctx.staging("stats_staging", 2 * n * n);
        let dense = |ly: &DenseLayout| {
            [
                ("IN4", u(ly.in_pad / 4)),
                ("OUT4", u(ly.out_pad / 4)),
                ("W_OFF4", u(ly.gpu_offset / 4)),
            ]
        };

        let mut forward = Vec::new();
        for (l, ly) in layers.iter().enumerate() {
            let a_in = if l == 0 { &inputs } else { &a[l - 1] };
            let [c0, c1, c2] = dense(ly);
            forward.push(dispatch(
                &ctx,
                Kernel::DenseForward,
                &[
                    ("ROWS", u(r)),
                    c0,
                    c1,
                    c2,
                    ("ACT", u((ly.softplus && !tangent) as usize)),
                    ("BIAS_ROWS", u(value_rows)),
                ],
                &[&params, a_in, &z[l], &a[l]],
                r.div_ceil(4) * ly.out_pad / 4,
                format!("dense_forward[{l}]"),
            )?);
            if tangent && ly.softplus {
                forward.push(dispatch(
                    &ctx,
                    Kernel::TangentAct,
                    &[
                        ("SAMPLES", u(s)),
                        ("DIM", u(space_dim)),
                        ("OUT4", u(ly.out_pad / 4)),
                    ],
                    &[&z[l], &a[l]],
                    s * ly.out_pad / 4,
                    format!("tangent_act[{l}]"),
                )?);
            }
        }
        let envelope_constants = [
            ("DIM", u(space_dim)),
            ("DIM_PAD", u(in_pad)),
            ("NEIG", u(n)),
            ("NEIG_PAD", u(npad)),
            ("ENVELOPE", u(spec.envelope.is_some() as usize)),
            ("BOX", spec.envelope.unwrap_or(1.0) as f64),
        ];
        if tangent {
            let mut c = vec![("SAMPLES", u(s))];
            c.extend(envelope_constants);
            forward.push(dispatch(
                &ctx,
                Kernel::TangentEnvelope,
                &c,
                &[&inputs, &a[last], &env, &ubuf],
                s,
                "tangent_envelope".into(),
            )?);
        } else {
            let mut c = vec![("ROWS", u(r))];
            c.extend(envelope_constants);
            forward.push(dispatch(
                &ctx,
                Kernel::Envelope,
                &c,
                &[&inputs, &a[last], &env, &ubuf],
                r,
                "apply_envelope".into(),
            )?);
        }
        forward.push(dispatch(
            &ctx,
            Kernel::OperatorApply,
            &[
                ("PAIRS", u(shape.pairs)),
                ("NEIG", u(n)),
                ("TX", u(shape.tx)),
                ("TY", u(shape.ty)),
            ],
            &[&ubuf, &x_terms, &y_terms, &xs, &ys],
            shape.pairs * n,
            "operator_apply".into(),
        )?);
        let sizes = [("SAMPLES", u(s)), ("PAIRS", u(shape.pairs)), ("NEIG", u(n))];
        forward.push(dispatch(
            &ctx,
            Kernel::StatsPartial,
            &[sizes[0], sizes[1], sizes[2], ("CHUNK", u(STATS_CHUNK))],
            &[&ubuf, &sample_w, &xs, &ys, &pair_w, &partial],
            chunks * 2 * n * n,
            "stats_partial".into(),
        )?);
        forward.push(dispatch(
            &ctx,
            Kernel::StatsFinal,
            &[sizes[0], sizes[1], sizes[2], ("CHUNKS", u(chunks))],
            &[&partial, &stats],
            2 * n * n,
            "stats_final".into(),
        )?);

        let backward = if training {
            let row_ptr = ctx.storage("row_ptr", r + 1);
            let entries = ctx.storage("entries", 4 * entries_len);
            let gmat = ctx.storage("gmat", 2 * n * n + 4);
            let delta: Vec<_> = layers
                .iter()
                .enumerate()
                .map(|(l, ly)| ctx.storage(&format!("delta{l}"), r * ly.out_pad))
                .collect();
            let sens: Vec<_> = layers
                .iter()
                .enumerate()
                .map(|(l, ly)| ctx.storage(&format!("sens{l}"), s * n * ly.out_pad))
                .collect();
            let jbar = ctx.storage("sigma_jacobian_avg", npairs * gpu_params);
            let grad = ctx.storage("grad", gpu_params);
            let grad_staging = ctx.staging("grad_staging", gpu_params);
            // Tangent rows need two scratch buffers: the cotangent on u before the envelope, and
            // the cotangent on a layer's activations before the tangent softplus.
            let cot_u = ctx.storage("cot_u", if tangent { r * npad } else { 1 });
            let cot_a = ctx.storage("cot_a", if tangent { r * widest } else { 1 });
            let mut d = vec![dispatch(
                &ctx,
                Kernel::OperatorBackward,
                &[
                    ("ROWS", u(r)),
                    ("NEIG", u(n)),
                    ("NEIG_PAD", u(npad)),
                    ("ENV_MULT", u(!tangent as usize)),
                ],
                &[
                    &xs,
                    &ys,
                    &pair_w,
                    &row_ptr,
                    &entries,
                    &gmat,
                    &env,
                    if tangent { &cot_u } else { &delta[last] },
                ],
                r * npad,
                "operator_backward".into(),
            )?];
            if tangent {
                d.push(dispatch(
                    &ctx,
                    Kernel::TangentEnvelopeBackward,
                    &[
                        ("SAMPLES", u(s)),
                        ("DIM", u(space_dim)),
                        ("NEIG", u(n)),
                        ("NEIG_PAD", u(npad)),
                    ],
                    &[&env, &cot_u, &delta[last]],
                    s * npad,
                    "tangent_envelope_backward".into(),
                )?);
            }
            // The batch VJP of Π̂, layer by layer from the output.
            for l in (0..layers.len()).rev() {
                let ly = &layers[l];
                let a_in = if l == 0 { &inputs } else { &a[l - 1] };
                let [c0, c1, c2] = dense(ly);
                d.push(dispatch(
                    &ctx,
                    Kernel::ParamGrad,
                    &[("ROWS", u(r)), c0, c1, c2, ("BIAS_ROWS", u(value_rows))],
                    &[a_in, &delta[l], &grad],
                    (ly.in_pad / 4 + 1) * ly.out_pad / 4,
                    format!("param_grad[{l}]"),
                )?);
                if l > 0 {
                    d.push(dispatch(
                        &ctx,
                        Kernel::DenseBackward,
                        &[
                            ("ROWS", u(r)),
                            c0,
                            c1,
                            c2,
                            ("ROW_DIV", 1.0),
                            ("ACT_D1", u(!tangent as usize)),
                        ],
                        &[
                            &params,
                            &delta[l],
                            &z[l - 1],
                            if tangent { &cot_a } else { &delta[l - 1] },
                        ],
                        r.div_ceil(4) * ly.in_pad / 4,
                        format!("dense_backward[{l}]"),
                    )?);
                    if tangent {
                        d.push(dispatch(
                            &ctx,
                            Kernel::TangentActBackward,
                            &[
                                ("SAMPLES", u(s)),
                                ("DIM", u(space_dim)),
                                ("OUT4", u(ly.in_pad / 4)),
                            ],
                            &[&z[l - 1], &cot_a, &delta[l - 1]],
                            s * ly.in_pad / 4,
                            format!("tangent_act_backward[{l}]"),
                        )?);
                    }
                }
            }
            // N sensitivity back-passes at once: rows are (sample, output) pairs.
            d.push(dispatch(
                &ctx,
                Kernel::SensInit,
                &[("SAMPLES", u(s)), ("NEIG", u(n)), ("NEIG_PAD", u(npad))],
                &[&env, &sens[last]],
                s * n * npad,
                "sens_init".into(),
            )?);
            for l in (1..layers.len()).rev() {
                let [c0, c1, c2] = dense(&layers[l]);
                d.push(dispatch(
                    &ctx,
                    Kernel::DenseBackward,
                    &[
                        ("ROWS", u(s * n)),
                        c0,
                        c1,
                        c2,
                        ("ROW_DIV", u(n)),
                        ("ACT_D1", 1.0),
                    ],
                    &[&params, &sens[l], &z[l - 1], &sens[l - 1]],
                    (s * n).div_ceil(4) * layers[l].in_pad / 4,
                    format!("sens_backward[{l}]"),
                )?);
            }
            for (l, ly) in layers.iter().enumerate() {
                let a_in = if l == 0 { &inputs } else { &a[l - 1] };
                let [c0, c1, c2] = dense(ly);
                d.push(dispatch(
                    &ctx,
                    Kernel::JbarUpdate,
                    &[
                        ("SAMPLES", u(s)),
                        ("NEIG", u(n)),
                        ("NPAR4", u(npar4)),
                        ("OUTPUT_LAYER", u((l == last) as usize)),
                        c0,
                        c1,
                        c2,
                    ],
                    &[a_in, &sens[l], &ubuf, &sample_w, &gmat, &jbar],
                    npairs * (ly.in_pad / 4 + 2) / 2 * ly.out_pad / 4,
                    format!("jbar_update[{l}]"),
                )?);
            }
            d.push(dispatch(
                &ctx,
                Kernel::JbarContract,
                &[("NEIG", u(n)), ("NPAR4", u(npar4))],
                &[&gmat, &jbar, &grad],
                npar4,
                "jbar_contract".into(),
            )?);
            Some(Backward {
                row_ptr,
                entries,
                gmat,
                delta,
                sens,
                jbar,
                grad,
                grad_staging,
                dispatches: d,
            })
        } else {
            None
        };
        ctx.check("allocating the SpIN engine")?;
        Ok(Self {
            ctx,
            spec: spec.clone(),
            layers,
            shape,
            nparams,
            gpu_params,
            entries_len,
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
            backward,
        })
    }

    /// The batch shape this engine was built for.
    pub fn shape(&self) -> BatchShape {
        self.shape
    }

    /// The network.
    pub fn spec(&self) -> &MlpSpec {
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
        let (d, dp) = (batch.shape.input_dim, self.layers[0].in_pad);
        if d == dp {
            q.write_buffer(&self.inputs, 0, bytemuck::cast_slice(&batch.inputs));
        } else {
            let mut padded = vec![0.0f32; batch.shape.rows * dp];
            for (dst, src) in padded.chunks_mut(dp).zip(batch.inputs.chunks(d)) {
                dst[..d].copy_from_slice(src);
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

    fn encode(&self, enc: &mut wgpu::CommandEncoder, list: &[Dispatch]) {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("spin"),
            timestamp_writes: None,
        });
        for d in list {
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
        }
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
        let mut gmat = Vec::with_capacity(2 * n * n + 4);
        gmat.extend(g_pi.iter().map(|&v| v as f32));
        gmat.extend(g_sigma.iter().map(|&v| v as f32));
        gmat.extend([
            beta as f32,
            2.0 / self.shape.samples as f32,
            1.0 / self.shape.pairs as f32,
            0.0,
        ]);
        self.ctx
            .queue
            .write_buffer(&b.gmat, 0, bytemuck::cast_slice(&gmat));
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gradient"),
            });
        self.encode(&mut enc, &b.dispatches);
        enc.copy_buffer_to_buffer(&b.grad, 0, &b.grad_staging, 0, (self.gpu_params * 4) as u64);
        self.ctx.queue.submit([enc.finish()]);
        let padded = self.ctx.read_staging(&b.grad_staging, self.gpu_params)?;
        Ok(self.spec.unpack(&padded))
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
        let ly = |l: usize| (self.layers[l].out_pad, self.layers[l].outputs);
        // (buffer, rows, padded width, width)
        let (buf, rows, (wp, w)) = match what {
            Probe::Z(l) => (&self.z[l], r, ly(l)),
            Probe::A(l) => (&self.a[l], r, ly(l)),
            Probe::Envelope => (&self.env, r, (1, 1)),
            Probe::U => (&self.u, r, (n, n)),
            Probe::X => (&self.xs, self.shape.pairs, (n, n)),
            Probe::Y => (&self.ys, self.shape.pairs, (n, n)),
            Probe::Delta(l) => (&self.backward()?.delta[l], r, ly(l)),
            Probe::Sens(l) => (&self.backward()?.sens[l], self.shape.samples * n, ly(l)),
        };
        let padded = self.ctx.read_buffer(buf, rows * wp)?;
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
        // Make sure gmat holds something sensible, then time each dispatch.
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
    /// Per-sample sensitivities at the output of layer l (samples, N, outputs).
    Sens(usize),
}
