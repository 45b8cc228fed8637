//! The GPU side of one SpIN step: buffers allocated once per (network, batch shape), bind groups
//! built once, and two submits per step. Three stages, each its own file with the maths it
//! computes and the buffers it reads and writes:
//!
//! * `statistics` (submit A): forward pass, envelope, operator gathers, Σ̂/Π̂ → read back 2N²
//!   floats;
//! * `pi_vjp` (submit B): Π̂'s cotangent through the operator, envelope and layers → grad
//!   (at β = 1 with [`SigmaGradient::Fused`], the Σ term's cotangent rides in the same pass and
//!   this is the whole gradient);
//! * `sigma_jacobian` (submit B, after it; β < 1): the N per-sample sensitivity passes, each
//!   layer's share of J̄ ← (1−β)J̄ + βĴ and the G_Σ contraction → read back the P-float gradient.
//!
//! What each layer kind dispatches in each stage is in `dense` and `conv2d` (one function
//! per stage); the buffers are one struct (`buffers::Buffers`) allocated in one place.

mod buffers;
mod conv2d;
mod dense;
mod dispatch;
mod pi_vjp;
mod profile;
mod shared;
mod sigma_jacobian;
mod statistics;

use std::sync::Arc;

use buffers::{Buffers, Dims, TrainBuffers};
use dispatch::{encode, plan_copies, Build, Dispatch};

use crate::error::{Result, SpinError};
use crate::gpu::mirror::Mirrors;
use crate::gpu::GpuContext;
use crate::nn::{Layer, NetworkSpec};
use crate::operators::{Batch, BatchShape};

pub use profile::KernelTime;

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
    /// 1 when G_Σ has entries below its diagonal (the jointly nested objective's), so the fused
    /// cotangent sums over every j; 0 (upper triangular, every other objective): over j ≤ k only.
    /// It pads the scalars to 16 bytes.
    pub sigma_full: f32,
}

/// How the Σ part of the SpIN gradient, Σ_{j≤k} (G_Σ)_jk J̄\[j,k,:\], is formed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SigmaGradient {
    /// From the moving average J̄ of the one-sided Σ-Jacobian (the Σ-Jacobian stage): any β.
    #[default]
    Jacobian,
    /// β = 1 only: J̄ = Ĵ, so the Σ term is the VJP of Σ̂ with the fixed cotangent G_Σ — the
    /// per-row cotangent (2/S) w_b (U G_Σ)_b on u, added to the Π-VJP's own backward pass. No
    /// sensitivity passes, no J̄ (no O(N²·P) buffer).
    Fused,
}

impl SigmaGradient {
    /// The path for moving-average rate `beta`: fused at β = 1, J̄ otherwise.
    pub fn for_beta(beta: f64) -> Self {
        if beta == 1.0 {
            SigmaGradient::Fused
        } else {
            SigmaGradient::Jacobian
        }
    }
}

/// How the engine is built beyond the network and batch shape.
#[derive(Clone, Copy, Debug, Default)]
pub struct EngineOptions {
    /// Samples per chunk of the Σ-Jacobian stage; `None`: as many as fit 64 MiB.
    pub chunk_samples: Option<usize>,
    /// The Σ term's path (the trainer picks [`SigmaGradient::for_beta`]).
    pub sigma: SigmaGradient,
    /// Split-K of the batch parameter gradients: row groups until about this many invocations
    /// run; `None`: [`crate::gpu::tiles::PARAM_GRAD_INVOCATIONS`] on a GPU, no split on a CPU
    /// adapter (tests force it there).
    pub param_grad_invocations: Option<usize>,
    /// The batch parameter gradients of dense layers in 2 × 2 tiles (`param_grad_wide`);
    /// `None`: on a CPU adapter whose lavapipe runs single-threaded (`LP_NUM_THREADS=0`, as
    /// `--workers` sets it), where fewer, larger invocations cost nothing (tests force it).
    pub wide_param_grad: Option<bool>,
    /// The subgroup-shared dense kernels (`dense_forward_shared`, `dense_backward_shared`,
    /// `param_grad_shared`, `jbar_update_shared`, `jbar_factored_shared`: a subgroup of 8 lanes
    /// fetches the operand its lanes share once and broadcasts it); `None`: wherever the device
    /// has subgroups of exactly 8 lanes ([`GpuContext::has_shared_lanes`]: lavapipe). `Some(true)`
    /// where it has not is an error.
    pub shared_weights: Option<bool>,
}

/// What every stage builder reads: the network, the sizes, the buffers and the dispatch
/// builder.
struct Parts<'a> {
    build: Build<'a>,
    spec: &'a NetworkSpec,
    layers: &'a [Layer],
    dims: &'a Dims,
    bufs: &'a Buffers,
}

impl Parts<'_> {
    /// The gradient's buffers (the gradient stages are only built for training).
    fn train(&self) -> &TrainBuffers {
        self.bufs
            .train
            .as_ref()
            .expect("gradient stages are built only with training buffers")
    }

    /// The Σ-Jacobian stage's buffers (the stage is only built when they exist).
    fn jacobian(&self) -> &buffers::JacobianBuffers {
        self.train()
            .jacobian
            .as_ref()
            .expect("the Σ-Jacobian stage is built only with its buffers")
    }
}

/// GPU buffers, bind groups and pipelines for one network and one batch shape.
pub struct Engine {
    ctx: Arc<GpuContext>,
    spec: NetworkSpec,
    layers: Vec<Layer>,
    shape: BatchShape,
    dims: Dims,
    bufs: Buffers,
    memory_bytes: u64,
    /// Submit A.
    forward: Vec<Dispatch>,
    /// Index in `forward` of the first reduction dispatch.
    reductions_at: usize,
    /// Submit B (training engines only).
    backward: Option<Vec<Dispatch>>,
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

    /// The most rows of plain (value-only) inputs that one evaluation engine for `spec` can
    /// take on this adapter, so that a larger set is evaluated in pieces of at most this many.
    pub fn max_plain_rows(ctx: &GpuContext, spec: &NetworkSpec) -> usize {
        let limit = ctx.adapter().max_storage_buffer_binding_size as usize;
        // The activations, and the per-chunk partial N×N statistics (2 N² words per chunk of
        // rows: large for a network whose outputs are a wide hidden layer).
        let n = spec.outputs.max(1);
        let by_stats = limit / (4 * 2 * n * n) * buffers::STATS_CHUNK;
        let copies = 1 + spec.exchange.is_some() as usize;
        (limit / (4 * copies * Dims::widest_row(spec)))
            .min(by_stats)
            .max(1)
    }

    /// [`Engine::new`] with options (the Σ-Jacobian chunk size): validate, allocate, build the
    /// stages, plan the mirror copies.
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
        let layers = spec.layers();
        let dims = Dims::new(&ctx, spec, &layers, shape, training, options)?;
        let bufs = Buffers::allocate(&ctx, &layers, &dims, training);
        let parts = Parts {
            build: Build {
                ctx: &ctx,
                mirrors: Mirrors::default(),
            },
            spec,
            layers: &layers,
            dims: &dims,
            bufs: &bufs,
        };
        let (mut forward, reductions_at) = statistics::build(&parts)?;
        plan_copies(&mut forward);
        let backward = match training {
            true => {
                let mut list = pi_vjp::build(&parts)?;
                if !dims.fused {
                    list.extend(sigma_jacobian::build(&parts)?);
                }
                plan_copies(&mut list);
                Some(list)
            }
            false => None,
        };
        ctx.check("allocating the SpIN engine")?;
        let memory_bytes = bufs.memory_bytes + parts.build.mirrors.bytes();
        drop(parts);
        Ok(Self {
            ctx,
            spec: spec.clone(),
            layers,
            shape,
            dims,
            bufs,
            memory_bytes,
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
        self.dims.chunk_samples
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
        if params.len() != self.dims.nparams {
            return Err(SpinError::Shape(format!(
                "{} parameters, the network has {}",
                params.len(),
                self.dims.nparams
            )));
        }
        let packed = self.spec.pack(params);
        self.ctx
            .queue
            .write_buffer(&self.bufs.params, 0, bytemuck::cast_slice(&packed));
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
        // With exchange the layers see every channel's rows and then their swapped copies.
        let doubled;
        let inputs = match self.dims.exchange {
            Some(_) => {
                doubled = self.spec.exchange_rows(&batch.inputs, batch.shape.channels);
                &doubled
            }
            None => &batch.inputs,
        };
        if d == dp {
            q.write_buffer(&self.bufs.inputs, 0, bytemuck::cast_slice(inputs));
        } else {
            let mut padded = vec![0.0f32; self.dims.net_rows * dp];
            for (dst, src) in padded.chunks_mut(dp).zip(inputs.chunks(d)) {
                self.spec.pad_input_row(src, dst);
            }
            q.write_buffer(&self.bufs.inputs, 0, bytemuck::cast_slice(&padded));
        }
        q.write_buffer(
            &self.bufs.sample_w,
            0,
            bytemuck::cast_slice(&batch.sample_weights),
        );
        q.write_buffer(
            &self.bufs.pair_w,
            0,
            bytemuck::cast_slice(&batch.pair_weights),
        );
        q.write_buffer(&self.bufs.x_terms, 0, bytemuck::cast_slice(&batch.x_terms));
        q.write_buffer(&self.bufs.y_terms, 0, bytemuck::cast_slice(&batch.y_terms));
        if let Some(b) = &self.bufs.train {
            let (row_ptr, entries) = batch.transpose();
            debug_assert_eq!(entries.len(), self.dims.entries_len);
            q.write_buffer(&b.row_ptr, 0, bytemuck::cast_slice(&row_ptr));
            q.write_buffer(&b.entries, 0, bytemuck::cast_slice(&entries));
        }
        Ok(())
    }

    fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }

    /// Submit A without the reductions: the forward pass and the operator's X and Y, for
    /// [`Engine::read`] (the host's own f64 moments of a wide basis, where the reductions'
    /// one-entry-per-thread kernel is slow).
    pub fn forward_values(&self) -> Result<()> {
        let mut enc = self.encoder("forward values");
        encode(&mut enc, &self.forward[..self.reductions_at]);
        self.ctx.queue.submit([enc.finish()]);
        Ok(())
    }

    /// Submit A: forward pass and reductions for the current params and batch.
    /// Returns (Σ̂, Π̂), each (N, N) row-major.
    pub fn statistics(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = self.spec.outputs;
        let mut enc = self.encoder("statistics");
        encode(&mut enc, &self.forward);
        let b = &self.bufs;
        enc.copy_buffer_to_buffer(&b.stats, 0, &b.stats_staging, 0, (2 * n * n * 4) as u64);
        self.ctx.queue.submit([enc.finish()]);
        let all = self.ctx.read_staging(&b.stats_staging, 2 * n * n)?;
        Ok((all[..n * n].to_vec(), all[n * n..].to_vec()))
    }

    /// Submit B's dispatches.
    fn backward(&self) -> Result<&[Dispatch]> {
        self.backward
            .as_deref()
            .ok_or_else(|| SpinError::Config("this engine was built for evaluation only".into()))
    }

    /// The gradient's buffers.
    fn train(&self) -> Result<&TrainBuffers> {
        self.bufs
            .train
            .as_ref()
            .ok_or_else(|| SpinError::Config("this engine was built for evaluation only".into()))
    }

    /// Submit B, after [`Engine::statistics`] on the same params and batch: updates J̄ with
    /// rate `beta` and returns the SpIN gradient g = VJP_Π + Σ_{j≤k} (G_Σ)_jk J̄\[j,k,:\]. A
    /// fused engine ([`SigmaGradient::Fused`]) has no J̄ and takes only β = 1; it takes a full
    /// G_Σ (Σ_{j,k}, the jointly nested objective's), the J̄ path only an upper triangular one.
    pub fn gradient(&self, g_pi: &[f64], g_sigma: &[f64], beta: f64) -> Result<Vec<f32>> {
        let (list, t) = (self.backward()?, self.train()?);
        let n = self.spec.outputs;
        if self.dims.fused && beta != 1.0 {
            return Err(SpinError::Config(format!(
                "this engine forms the Σ term without J̄ and takes only β = 1, got {beta}"
            )));
        }
        if g_pi.len() != n * n || g_sigma.len() != n * n {
            return Err(SpinError::Shape(format!(
                "G_Π and G_Σ must be {n}×{n}, got {} and {} values",
                g_pi.len(),
                g_sigma.len()
            )));
        }
        // (A NaN passes: the trainer's non-finite checks name it.)
        let full = (0..n).any(|k| (k + 1..n).any(|j| g_sigma[j * n + k].abs() > 0.0));
        if full && !self.dims.fused {
            return Err(SpinError::Config(
                "the J̄ path holds Ĵ[j,k] for j ≤ k only: G_Σ must be upper triangular (a full \
                 G_Σ needs the fused gradient)"
                    .into(),
            ));
        }
        let scalars = StepScalars {
            beta: beta as f32,
            two_over_s: 2.0 / self.shape.samples as f32,
            inv_q: 1.0 / self.shape.pairs as f32,
            sigma_full: if full { 1.0 } else { 0.0 },
        };
        let mut step: Vec<f32> = bytemuck::cast_slice(&[scalars]).to_vec();
        step.extend(g_pi.iter().chain(g_sigma).map(|&v| v as f32));
        step.resize(buffers::packed_sigma_offset(n), 0.0);
        step.extend((0..n).flat_map(|k| (0..=k).map(move |j| g_sigma[j * n + k] as f32)));
        self.ctx
            .queue
            .write_buffer(&t.step, 0, bytemuck::cast_slice(&step));
        let mut enc = self.encoder("gradient");
        if let Some(j) = &t.jacobian {
            enc.copy_buffer_to_buffer(&j.jbar, 0, &j.jbar_prev, 0, j.jbar.size());
        }
        encode(&mut enc, list);
        let words = self.dims.gpu_params;
        enc.copy_buffer_to_buffer(&t.grad, 0, &t.grad_staging, 0, (words * 4) as u64);
        self.ctx.queue.submit([enc.finish()]);
        let padded = self.ctx.read_staging(&t.grad_staging, words)?;
        Ok(self.spec.unpack(&padded))
    }

    /// Puts J̄ back to what it was before the last [`Engine::gradient`] (whose step was rejected,
    /// e.g. for a non-finite gradient), so that J̄, θ, Σ̄ and the optimiser describe one step.
    pub fn undo_jbar_update(&self) -> Result<()> {
        let Some(j) = &self.train()?.jacobian else {
            return Ok(());
        };
        let mut enc = self.encoder("undo J̄");
        enc.copy_buffer_to_buffer(&j.jbar_prev, 0, &j.jbar, 0, j.jbar.size());
        self.ctx.queue.submit([enc.finish()]);
        Ok(())
    }

    /// Whether this engine forms the Σ term without J̄ ([`SigmaGradient::Fused`]).
    pub fn is_fused(&self) -> bool {
        self.dims.fused
    }

    /// The moving average J̄ (N(N+1)/2, P), for checkpoints and tests; empty for a fused engine.
    pub fn read_jbar(&self) -> Result<Vec<f32>> {
        let Some(j) = &self.train()?.jacobian else {
            return Ok(Vec::new());
        };
        let words = self.dims.gpu_params;
        let padded = self.ctx.read_buffer(&j.jbar, self.dims.npairs * words)?;
        Ok(padded
            .chunks(words)
            .flat_map(|c| self.spec.unpack(c))
            .collect())
    }

    /// Overwrites J̄ (for resuming from a checkpoint, or zeroing); a fused engine has none and
    /// ignores it.
    pub fn write_jbar(&self, jbar: &[f32]) -> Result<()> {
        let Some(j) = &self.train()?.jacobian else {
            return Ok(());
        };
        let p = self.dims.nparams;
        if jbar.len() != self.dims.npairs * p {
            return Err(SpinError::Shape(format!(
                "J̄ of {} floats, expected {}",
                jbar.len(),
                self.dims.npairs * p
            )));
        }
        let padded: Vec<f32> = jbar.chunks(p).flat_map(|c| self.spec.pack(c)).collect();
        self.ctx
            .queue
            .write_buffer(&j.jbar, 0, bytemuck::cast_slice(&padded));
        Ok(())
    }

    /// Reads an intermediate buffer (tests and diagnostics).
    pub fn read(&self, what: Probe) -> Result<Vec<f32>> {
        let n = self.spec.outputs;
        let (r, net) = (self.shape.rows, self.dims.net_rows);
        // Each row is `positions` runs of a padded width, of which `w` are real.
        let ly = |l: usize| {
            let ly = &self.layers[l];
            (ly.positions, ly.out_pad, ly.outputs)
        };
        // (buffer, rows, (positions, padded width, width))
        let (buf, rows, (pos, wp, w)) = match what {
            Probe::Z(l) => (&self.bufs.z[l], net, ly(l)),
            Probe::A(l) => (&self.bufs.a[l], net, ly(l)),
            Probe::Envelope => (&self.bufs.env, r, (1, 1, 1)),
            Probe::U => (&self.bufs.u, r, (1, n, n)),
            Probe::X => (&self.bufs.xs, self.shape.pairs, (1, n, n)),
            Probe::Y => (&self.bufs.ys, self.shape.pairs, (1, n, n)),
            Probe::Delta(l) => (&self.train()?.delta[l], net, ly(l)),
            Probe::Sens(l) => (
                &self
                    .train()?
                    .jacobian
                    .as_ref()
                    .ok_or_else(|| SpinError::Config("a fused engine has no sensitivities".into()))?
                    .sens[l],
                self.dims.chunk_samples * n,
                ly(l),
            ),
        };
        let padded = self.ctx.read_buffer(buf, rows * pos * wp)?;
        Ok(padded.chunks(wp).flat_map(|c| c[..w].to_vec()).collect())
    }
}

/// Intermediate buffers that [`Engine::read`] can return.
#[derive(Clone, Copy, Debug)]
pub enum Probe {
    /// Pre-activations of layer l (rows, outputs; with exchange, each channel's rows then their
    /// swapped copies).
    Z(usize),
    /// Activations of layer l (rows, outputs; laid out as `Z`).
    A(usize),
    /// Envelope per row.
    Envelope,
    /// Outputs u (rows, N).
    U,
    /// Operator X (pairs, N).
    X,
    /// Operator Y (pairs, N).
    Y,
    /// Batch VJP cotangent at the output of layer l (rows, outputs; laid out as `Z`).
    Delta(usize),
    /// Per-sample sensitivities at the output of layer l (samples, N, outputs), of the last
    /// chunk of the Σ-Jacobian stage (all samples when there is one chunk).
    Sens(usize),
}
