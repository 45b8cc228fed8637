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
        let n = spec.outputs;
        let nparams = spec.num_params();
        let r = shape.rows;
        let entries_len = shape.pairs * (shape.tx + shape.ty);
        let npairs = n * (n + 1) / 2;
        let limit = ctx.adapter().max_storage_buffer_binding_size as usize;
        let biggest = [
            r * layers
                .iter()
                .map(|l| l.outputs.max(l.inputs))
                .max()
                .unwrap_or(1),
            if training { npairs * nparams } else { 0 },
            if training {
                shape.samples * n * layers.iter().map(|l| l.outputs).max().unwrap_or(1)
            } else {
                0
            },
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
            * 4;
        if biggest > limit {
            return Err(SpinError::Config(format!(
                "a buffer of {biggest} bytes exceeds the adapter's storage binding limit of {limit} bytes; use a smaller batch, network or number of eigenfunctions"
            )));
        }

        let params = ctx.storage("params", nparams);
        let inputs = ctx.storage("inputs", r * shape.input_dim);
        let z: Vec<_> = layers
            .iter()
            .enumerate()
            .map(|(l, ly)| ctx.storage(&format!("z{l}"), r * ly.outputs))
            .collect();
        let a: Vec<_> = layers
            .iter()
            .enumerate()
            .map(|(l, ly)| ctx.storage(&format!("a{l}"), r * ly.outputs))
            .collect();
        let env = ctx.storage("envelope", r);
        let ubuf = ctx.storage("u", r * n);
        let x_terms = ctx.storage("x_terms", 2 * shape.pairs * shape.tx);
        let y_terms = ctx.storage("y_terms", 2 * shape.pairs * shape.ty);
        let xs = ctx.storage("X", shape.pairs * n);
        let ys = ctx.storage("Y", shape.pairs * n);
        let sample_w = ctx.storage("sample_weights", shape.samples);
        let pair_w = ctx.storage("pair_weights", shape.pairs);
        let chunks = shape.samples.max(shape.pairs).div_ceil(STATS_CHUNK);
        let partial = ctx.storage("stats_partial", chunks * 2 * n * n);
        let stats = ctx.storage("stats", 2 * n * n);
        let stats_staging = ctx.staging("stats_staging", 2 * n * n);

        let mut forward = Vec::new();
        for (l, ly) in layers.iter().enumerate() {
            let a_in = if l == 0 { &inputs } else { &a[l - 1] };
            let p = ctx.pipeline(
                Kernel::DenseForward,
                "dense_forward",
                &[
                    ("ROWS", u(r)),
                    ("IN", u(ly.inputs)),
                    ("OUT", u(ly.outputs)),
                    ("W_OFF", u(ly.offset)),
                    ("ACT", if ly.softplus { 1.0 } else { 0.0 }),
                ],
            )?;
            let bg = ctx.bind("dense_forward", &p, &[&params, a_in, &z[l], &a[l]]);
            forward.push(Dispatch {
                label: format!("dense_forward[{l}]"),
                pipeline: p,
                bind_group: bg,
                groups: grid((r.div_ceil(4) * ly.outputs.div_ceil(4)) as u32),
            });
        }
        let last = layers.len() - 1;
        let p = ctx.pipeline(
            Kernel::Envelope,
            "apply_envelope",
            &[
                ("ROWS", u(r)),
                ("DIM", u(shape.input_dim)),
                ("NEIG", u(n)),
                ("ENVELOPE", if spec.envelope.is_some() { 1.0 } else { 0.0 }),
                ("BOX", spec.envelope.unwrap_or(1.0) as f64),
            ],
        )?;
        let bg = ctx.bind("apply_envelope", &p, &[&inputs, &a[last], &env, &ubuf]);
        forward.push(Dispatch {
            label: "apply_envelope".into(),
            pipeline: p,
            bind_group: bg,
            groups: grid(r as u32),
        });
        let p = ctx.pipeline(
            Kernel::OperatorApply,
            "operator_apply",
            &[
                ("PAIRS", u(shape.pairs)),
                ("NEIG", u(n)),
                ("TX", u(shape.tx)),
                ("TY", u(shape.ty)),
            ],
        )?;
        let bg = ctx.bind("operator_apply", &p, &[&ubuf, &x_terms, &y_terms, &xs, &ys]);
        forward.push(Dispatch {
            label: "operator_apply".into(),
            pipeline: p,
            bind_group: bg,
            groups: grid((shape.pairs * n) as u32),
        });
        let p = ctx.pipeline(
            Kernel::StatsPartial,
            "stats_partial",
            &[
                ("SAMPLES", u(shape.samples)),
                ("PAIRS", u(shape.pairs)),
                ("NEIG", u(n)),
                ("CHUNK", u(STATS_CHUNK)),
            ],
        )?;
        let bg = ctx.bind(
            "stats_partial",
            &p,
            &[&ubuf, &sample_w, &xs, &ys, &pair_w, &partial],
        );
        forward.push(Dispatch {
            label: "stats_partial".into(),
            pipeline: p,
            bind_group: bg,
            groups: grid((chunks * 2 * n * n) as u32),
        });
        let p = ctx.pipeline(
            Kernel::StatsFinal,
            "stats_final",
            &[
                ("SAMPLES", u(shape.samples)),
                ("PAIRS", u(shape.pairs)),
                ("NEIG", u(n)),
                ("CHUNKS", u(chunks)),
            ],
        )?;
        let bg = ctx.bind("stats_final", &p, &[&partial, &stats]);
        forward.push(Dispatch {
            label: "stats_final".into(),
            pipeline: p,
            bind_group: bg,
            groups: grid((2 * n * n) as u32),
        });

        let backward = if training {
            let row_ptr = ctx.storage("row_ptr", r + 1);
            let entries = ctx.storage("entries", 4 * entries_len);
            let gmat = ctx.storage("gmat", 2 * n * n + 4);
            let delta: Vec<_> = layers
                .iter()
                .enumerate()
                .map(|(l, ly)| ctx.storage(&format!("delta{l}"), r * ly.outputs))
                .collect();
            let sens: Vec<_> = layers
                .iter()
                .enumerate()
                .map(|(l, ly)| ctx.storage(&format!("sens{l}"), shape.samples * n * ly.outputs))
                .collect();
            let jbar = ctx.storage("sigma_jacobian_avg", npairs * nparams);
            let grad = ctx.storage("grad", nparams);
            let grad_staging = ctx.staging("grad_staging", nparams);
            let mut d = Vec::new();
            let p = ctx.pipeline(
                Kernel::OperatorBackward,
                "operator_backward",
                &[("ROWS", u(r)), ("NEIG", u(n))],
            )?;
            let bg = ctx.bind(
                "operator_backward",
                &p,
                &[
                    &xs,
                    &ys,
                    &pair_w,
                    &row_ptr,
                    &entries,
                    &gmat,
                    &env,
                    &delta[last],
                ],
            );
            d.push(Dispatch {
                label: "operator_backward".into(),
                pipeline: p,
                bind_group: bg,
                groups: grid((r * n) as u32),
            });
            for l in (0..layers.len()).rev() {
                let ly = &layers[l];
                let a_in = if l == 0 { &inputs } else { &a[l - 1] };
                let p = ctx.pipeline(
                    Kernel::ParamGrad,
                    "param_grad",
                    &[
                        ("ROWS", u(r)),
                        ("IN", u(ly.inputs)),
                        ("OUT", u(ly.outputs)),
                        ("W_OFF", u(ly.offset)),
                    ],
                )?;
                let bg = ctx.bind("param_grad", &p, &[a_in, &delta[l], &grad]);
                d.push(Dispatch {
                    label: format!("param_grad[{l}]"),
                    pipeline: p,
                    bind_group: bg,
                    groups: grid(((ly.inputs + 1).div_ceil(4) * ly.outputs.div_ceil(4)) as u32),
                });
                if l > 0 {
                    d.push(Self::backward_dispatch(
                        &ctx,
                        &params,
                        ly,
                        r,
                        1,
                        &delta[l],
                        &z[l - 1],
                        &delta[l - 1],
                        l,
                    )?);
                }
            }
            let p = ctx.pipeline(
                Kernel::SensInit,
                "sens_init",
                &[("SAMPLES", u(shape.samples)), ("NEIG", u(n))],
            )?;
            let bg = ctx.bind("sens_init", &p, &[&env, &sens[last]]);
            d.push(Dispatch {
                label: "sens_init".into(),
                pipeline: p,
                bind_group: bg,
                groups: grid((shape.samples * n * n) as u32),
            });
            for l in (1..layers.len()).rev() {
                d.push(Self::backward_dispatch(
                    &ctx,
                    &params,
                    &layers[l],
                    shape.samples * n,
                    n,
                    &sens[l],
                    &z[l - 1],
                    &sens[l - 1],
                    l,
                )?);
            }
            for (l, ly) in layers.iter().enumerate() {
                let a_in = if l == 0 { &inputs } else { &a[l - 1] };
                let p = ctx.pipeline(
                    Kernel::JbarUpdate,
                    "jbar_update",
                    &[
                        ("SAMPLES", u(shape.samples)),
                        ("IN", u(ly.inputs)),
                        ("OUT", u(ly.outputs)),
                        ("NEIG", u(n)),
                        ("W_OFF", u(ly.offset)),
                        ("NPARAMS", u(nparams)),
                        ("FIRST_K", 0.0),
                    ],
                )?;
                let bg = ctx.bind(
                    "jbar_update",
                    &p,
                    &[a_in, &sens[l], &ubuf, &sample_w, &gmat, &jbar, &grad],
                );
                d.push(Dispatch {
                    label: format!("jbar_update[{l}]"),
                    pipeline: p,
                    bind_group: bg,
                    groups: grid(ly.len() as u32),
                });
            }
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

    #[allow(clippy::too_many_arguments)]
    fn backward_dispatch(
        ctx: &GpuContext,
        params: &wgpu::Buffer,
        ly: &DenseLayout,
        rows: usize,
        row_div: usize,
        delta_out: &wgpu::Buffer,
        z_in: &wgpu::Buffer,
        delta_in: &wgpu::Buffer,
        l: usize,
    ) -> Result<Dispatch> {
        let p = ctx.pipeline(
            Kernel::DenseBackward,
            "dense_backward",
            &[
                ("ROWS", u(rows)),
                ("IN", u(ly.inputs)),
                ("OUT", u(ly.outputs)),
                ("W_OFF", u(ly.offset)),
                ("ROW_DIV", u(row_div)),
            ],
        )?;
        let bg = ctx.bind("dense_backward", &p, &[params, delta_out, z_in, delta_in]);
        Ok(Dispatch {
            label: format!(
                "{}[{l}]",
                if row_div == 1 {
                    "dense_backward"
                } else {
                    "sens_backward"
                }
            ),
            pipeline: p,
            bind_group: bg,
            groups: grid((rows.div_ceil(4) * ly.inputs.div_ceil(4)) as u32),
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
        self.ctx
            .queue
            .write_buffer(&self.params, 0, bytemuck::cast_slice(params));
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
        q.write_buffer(&self.inputs, 0, bytemuck::cast_slice(&batch.inputs));
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
        enc.copy_buffer_to_buffer(&b.grad, 0, &b.grad_staging, 0, (self.nparams * 4) as u64);
        self.ctx.queue.submit([enc.finish()]);
        self.ctx.read_staging(&b.grad_staging, self.nparams)
    }

    /// The moving average J̄ (N(N+1)/2, P), for checkpoints and tests.
    pub fn read_jbar(&self) -> Result<Vec<f32>> {
        let b = self.backward()?;
        let n = self.spec.outputs;
        self.ctx
            .read_buffer(&b.jbar, n * (n + 1) / 2 * self.nparams)
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
        self.ctx
            .queue
            .write_buffer(&b.jbar, 0, bytemuck::cast_slice(jbar));
        Ok(())
    }

    /// Reads an intermediate buffer (tests and diagnostics).
    pub fn read(&self, what: Probe) -> Result<Vec<f32>> {
        let n = self.spec.outputs;
        let r = self.shape.rows;
        let (buf, len) = match what {
            Probe::Z(l) => (&self.z[l], r * self.layers[l].outputs),
            Probe::A(l) => (&self.a[l], r * self.layers[l].outputs),
            Probe::Envelope => (&self.env, r),
            Probe::U => (&self.u, r * n),
            Probe::X => (&self.xs, self.shape.pairs * n),
            Probe::Y => (&self.ys, self.shape.pairs * n),
            Probe::Delta(l) => (&self.backward()?.delta[l], r * self.layers[l].outputs),
            Probe::Sens(l) => (
                &self.backward()?.sens[l],
                self.shape.samples * n * self.layers[l].outputs,
            ),
        };
        self.ctx.read_buffer(buf, len)
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
