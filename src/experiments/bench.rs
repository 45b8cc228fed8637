//! Named benchmark configurations: whole training steps per second, and a per-kernel breakdown
//! from timestamp queries where the adapter has them.

use std::sync::Arc;
use std::time::Instant;

use super::schrodinger::{LaplacianKind, SamplerKind, SchrodingerConfig};
use crate::error::{Result, SpinError};
use crate::gpu::GpuContext;
use crate::nn::{Activation, Conv2dSpec, ImageShape, LayerKind, NetworkSpec, Padding};
use crate::operators::samplers::Sampler;
use crate::operators::Operator;
use crate::spin::engine::KernelTime;
use crate::spin::host::flat;
use crate::spin::{
    Objective, OptimizerConfig, OptimizerKind, Problem, SigmaGradient, TrainConfig, Trainer,
};

/// A benchmark configuration.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchConfig {
    /// Name.
    pub name: &'static str,
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Eigenfunctions.
    pub neig: usize,
    /// Batch.
    pub batch: usize,
    /// Finite-difference step.
    pub eps: f64,
    /// Moving-average rate.
    pub beta: f64,
    /// Laplacian: finite differences, exact (forward mode) or the weak form.
    pub laplacian: LaplacianKind,
    /// The radial input feature.
    pub radial: bool,
    /// Sampler.
    pub sampler: SamplerKind,
    /// A conv net on video clips with the slowness operator, instead of 2D hydrogen.
    pub video: Option<VideoBench>,
    /// Adam (the defaults users run) instead of the reference's RMSProp.
    pub adam: bool,
    /// The objective (maths §13).
    pub objective: Objective,
}

impl BenchConfig {
    /// Whether its global batch splits into `workers` equal shares (whole clips for video).
    pub fn splits(&self, workers: usize) -> bool {
        match &self.video {
            Some(v) => v.clips.is_multiple_of(workers),
            None => self.batch.is_multiple_of(workers),
        }
    }
}

/// The video part of a benchmark: a conv net on clips of stacked frames (noise frames: the
/// speed does not depend on the pixels).
#[derive(Clone, Debug, serde::Serialize)]
pub struct VideoBench {
    /// Input image (height, width, stacked frames).
    pub image: ImageShape,
    /// Conv layers.
    pub conv: Vec<Conv2dSpec>,
    /// Hidden activation.
    pub activation: Activation,
    /// A constant first eigenfunction in front of the `neig` learned ones.
    pub constant_first: bool,
    /// Clips per batch.
    pub clips: usize,
    /// Inputs per clip.
    pub clip_len: usize,
}

fn convs(channels: &[usize], kernel: usize, padding: &[Padding]) -> Vec<Conv2dSpec> {
    channels
        .iter()
        .zip(padding)
        .map(|(&c, &p)| Conv2dSpec {
            channels: c,
            kernel,
            stride: 2,
            padding: p,
        })
        .collect()
}

fn video(
    name: &'static str,
    image: (usize, usize, usize),
    conv: Vec<Conv2dSpec>,
    hidden: usize,
    neig: usize,
    (clips, clip_len): (usize, usize),
    constant_first: bool,
) -> BenchConfig {
    BenchConfig {
        name,
        hidden: vec![hidden],
        neig,
        batch: clips * clip_len,
        eps: 0.0,
        beta: 0.01,
        laplacian: LaplacianKind::Fd,
        radial: false,
        sampler: SamplerKind::Uniform,
        adam: false,
        objective: Objective::Spin,
        video: Some(VideoBench {
            image: ImageShape {
                height: image.0,
                width: image.1,
                channels: image.2,
            },
            conv,
            activation: Activation::Relu,
            constant_first,
            clips,
            clip_len,
        }),
    }
}

/// The reference's own hydrogen flags (exact Laplacian, 3×64, N = 9, batch 128, uniform
/// sampling, no radial feature, RMSProp, β = 0.01).
fn reference_exact() -> BenchConfig {
    BenchConfig {
        name: "hydrogen-3x64-exact",
        hidden: vec![64; 3],
        neig: 9,
        batch: 128,
        eps: 0.0,
        beta: 0.01,
        laplacian: LaplacianKind::Exact,
        radial: false,
        sampler: SamplerKind::Uniform,
        video: None,
        adam: false,
        objective: Objective::Spin,
    }
}

/// The 2D hydrogen atom as `spin schrodinger` and `spin hydrogen` run it by default (3×64 with
/// the radial feature, the adaptive proposal, Adam, β = 1 — the fused gradient), with the
/// given Laplacian.
fn hydrogen_default(name: &'static str, laplacian: LaplacianKind) -> BenchConfig {
    BenchConfig {
        name,
        hidden: vec![64; 3],
        neig: 9,
        batch: 128,
        eps: 0.1,
        beta: 1.0,
        laplacian,
        radial: true,
        sampler: SamplerKind::Adaptive,
        video: None,
        adam: true,
        objective: Objective::Spin,
    }
}

/// A configuration trained on another objective (maths §13), under its own name.
fn with_objective(name: &'static str, objective: Objective, mut c: BenchConfig) -> BenchConfig {
    c.name = name;
    c.objective = objective;
    c
}

/// A video configuration with `spin video`'s training defaults: Adam and β = 1.
fn video_default(mut c: BenchConfig) -> BenchConfig {
    c.beta = 1.0;
    c.adam = true;
    c
}

/// Uniform noise in [0, 1]: inputs for speed measurements of video networks.
struct NoiseFrames(usize);

impl Sampler for NoiseFrames {
    fn dim(&self) -> usize {
        self.0
    }
    fn sample(&self, rng: &mut dyn rand::RngCore, count: usize) -> (Vec<f64>, Vec<f64>) {
        use rand::Rng;
        let v = (0..count * self.0)
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        (v, vec![1.0; count])
    }
}

/// Multiply-adds of one training step of `spec` on a batch of `rows` rows, `samples` of which
/// enter Σ̂ (maths §3, §9): forward, the Π-VJP (parameter gradients and input VJPs), and unless
/// `fused` (β = 1, whose Σ term rides in the Π-VJP) the N sensitivity passes, each layer's
/// Σ-Jacobian (dense: one GEMM per pair; conv: per-sample gradients and their contraction) and
/// the G_Σ contraction.
pub fn step_macs(spec: &NetworkSpec, rows: usize, samples: usize, fused: bool) -> f64 {
    let layers = spec.layers();
    let n = spec.outputs as f64;
    let npairs = n * (n + 1.0) / 2.0;
    let (r, s) = (rows as f64, samples as f64);
    let macs: Vec<f64> = layers.iter().map(|l| l.macs() as f64).collect();
    let all: f64 = macs.iter().sum();
    let above_first: f64 = macs.iter().skip(1).sum();
    let mut total = r * all + r * (all + above_first);
    if fused {
        return total;
    }
    total += s * n * above_first;
    for (l, m) in layers.iter().zip(&macs) {
        total += match l.kind {
            LayerKind::Dense => npairs * s * l.len() as f64,
            LayerKind::Conv2d(_) => s * n * m + npairs * s * l.len() as f64,
        };
    }
    total + npairs * spec.num_params() as f64
}

/// `spin video`'s net on 3 balls 32×32 (2 frames an input): conv 16,16,16 5×5 SAME, dense 64,
/// N = 8 + the constant, 8 clips × 10.
fn balls_net(name: &'static str) -> BenchConfig {
    video(
        name,
        (32, 32, 2),
        convs(&[16, 16, 16], 5, &[Padding::Same; 3]),
        64,
        9,
        (8, 10),
        true,
    )
}

/// The named configurations.
pub fn configs() -> Vec<BenchConfig> {
    vec![
        BenchConfig {
            name: "hydrogen-3x64-fd",
            eps: 0.1,
            laplacian: LaplacianKind::Fd,
            ..reference_exact()
        },
        reference_exact(),
        // The reference's step at β = 1 (its decay 0: no moving averages), which the fused
        // gradient serves: the identical-work comparison of the speed issue.
        BenchConfig {
            name: "hydrogen-3x64-exact-beta1",
            beta: 1.0,
            ..reference_exact()
        },
        BenchConfig {
            name: "hydrogen-3x64-fd-beta1",
            beta: 1.0,
            eps: 0.1,
            laplacian: LaplacianKind::Fd,
            ..reference_exact()
        },
        BenchConfig {
            name: "hydrogen-3x64-weak-radial",
            beta: 0.5,
            laplacian: LaplacianKind::Weak,
            radial: true,
            sampler: SamplerKind::Importance,
            ..reference_exact()
        },
        BenchConfig {
            name: "hydrogen-4x128-fd",
            hidden: vec![128; 4],
            eps: 0.1,
            laplacian: LaplacianKind::Fd,
            ..reference_exact()
        },
        balls_net("sfa-balls-small"),
        video(
            "sfa-balls-paper",
            (64, 64, 2),
            convs(&[32, 32, 32], 5, &[Padding::Same; 3]),
            128,
            13,
            (24, 10),
            true,
        ),
        video(
            "atari-reference",
            (84, 84, 4),
            convs(
                &[64, 64, 64],
                6,
                &[Padding::Valid, Padding::Same, Padding::Same],
            ),
            128,
            5,
            (1, 129),
            false,
        ),
        hydrogen_default("hydrogen-default-weak", LaplacianKind::Weak),
        hydrogen_default("hydrogen-default-exact", LaplacianKind::Exact),
        hydrogen_default("hydrogen-default-fd", LaplacianKind::Fd),
        video_default(balls_net("sfa-balls-default")),
        with_objective(
            "hydrogen-default-weak-nested",
            Objective::Nested,
            hydrogen_default("", LaplacianKind::Weak),
        ),
        with_objective(
            "sfa-balls-default-nested",
            Objective::Nested,
            video_default(balls_net("")),
        ),
        with_objective(
            "hydrogen-default-weak-nested-joint",
            Objective::NestedJoint,
            hydrogen_default("", LaplacianKind::Weak),
        ),
        with_objective(
            "hydrogen-default-weak-neuralef",
            Objective::NeuralEf,
            hydrogen_default("", LaplacianKind::Weak),
        ),
        with_objective(
            "sfa-balls-default-neuralef",
            Objective::NeuralEf,
            video_default(balls_net("")),
        ),
        video_default(video(
            "atari-default",
            (84, 84, 4),
            convs(&[16, 16, 16], 5, &[Padding::Same; 3]),
            64,
            6,
            (8, 10),
            true,
        )),
    ]
}

/// One benchmark's result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchResult {
    /// Config name.
    pub name: String,
    /// Whole training steps per second (sampling, both submits, host work, optimiser).
    pub steps_per_second: f64,
    /// Mean milliseconds per step.
    pub ms_per_step: f64,
    /// Steps timed.
    pub steps: u64,
    /// Adapter name.
    pub adapter: String,
    /// Per-kernel GPU times of one step, where timestamp queries exist.
    pub kernels: Option<Vec<KernelTime>>,
    /// GPU storage the engine allocated, bytes.
    pub gpu_memory_bytes: u64,
    /// Floating-point operations per step (2 × [`step_macs`]).
    pub flops_per_step: f64,
    /// Achieved GFLOP/s (flops_per_step × steps/s).
    pub gflops: f64,
    /// Whether the Σ term was fused into the Π-VJP (β = 1) or formed from J̄.
    pub fused: bool,
    /// Wall milliseconds per step of each phase of the trainer's step (host work, uploads,
    /// each submit with its readback).
    pub phases: Vec<KernelTime>,
    /// Trained parameters P.
    pub parameters: usize,
    /// What each rank of a data-parallel run sends into a step's two all-reduces, at any W:
    /// Σ̂ and Π̂ (2N² f64) and the gradient (P f32) (maths §10).
    pub allreduce_payload_bytes: usize,
    /// Data-parallel ranks sharing every batch (`mpirun -n W spin bench`; 1 otherwise).
    pub ranks: usize,
    /// Global batch × steps/s: samples through the network per second, over all ranks.
    pub samples_per_second: f64,
    /// Bytes each rank sends into the step's all-reduces, per step (0 for one rank).
    pub allreduce_bytes_per_step: f64,
    /// Milliseconds per step in the all-reduces, waiting for the slowest rank included.
    pub allreduce_ms_per_step: f64,
}

/// Runs `config`: `warmup` untimed steps (fewer if they take longer than `seconds`), then timed
/// steps for at least `seconds` and 2 steps, and at least `min_steps` unless that takes more than
/// twice `seconds` (the big video configurations take seconds a step on a CPU adapter). With
/// `jbar`, the Σ term comes from J̄ even at β = 1 (the fused gradient's A/B baseline).
pub fn run(
    ctx: Arc<GpuContext>,
    config: &BenchConfig,
    warmup: u64,
    min_steps: u64,
    seconds: f64,
    jbar: bool,
) -> Result<BenchResult> {
    let problem = bench_problem(&ctx, config)?;
    let train = bench_train_config(config);
    let sigma = if jbar {
        SigmaGradient::Jacobian
    } else {
        train.sigma_gradient()
    };
    let mut trainer = Trainer::with_sigma_gradient(ctx.clone(), problem, train, sigma)?;
    let shape = trainer.engine().shape();
    let fused = trainer.engine().is_fused();
    let flops_per_step = 2.0 * step_macs(&trainer.problem().spec, shape.rows, shape.samples, fused);
    let warm = Instant::now();
    // Rank 0's clock decides for every rank of a data-parallel run (`agree`), which must all
    // take the same steps.
    for _ in 0..warmup {
        trainer.step()?;
        if trainer.agree(warm.elapsed().as_secs_f64())? > seconds {
            break;
        }
    }
    trainer.phase_times = Default::default();
    let start = Instant::now();
    let mut steps = 0u64;
    loop {
        let t = trainer.agree(start.elapsed().as_secs_f64())?;
        if steps >= 2 && t >= seconds && (steps >= min_steps || t >= 2.0 * seconds) {
            break;
        }
        trainer.step()?;
        steps += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    let phases = trainer
        .phase_times
        .per_step_ms()
        .into_iter()
        .map(|(label, ms)| KernelTime {
            label: label.to_string(),
            ms,
        })
        .collect();
    let n = config.neig;
    let kernels = kernel_profile(&trainer, config)?;
    if steps == 0 {
        return Err(SpinError::Config("no steps timed".into()));
    }
    Ok(BenchResult {
        name: config.name.to_string(),
        gpu_memory_bytes: trainer.engine().memory_bytes(),
        flops_per_step,
        gflops: flops_per_step * steps as f64 / wall * 1e-9,
        steps_per_second: steps as f64 / wall,
        ms_per_step: wall * 1e3 / steps as f64,
        steps,
        adapter: ctx.adapter().name.clone(),
        kernels,
        fused,
        phases,
        parameters: trainer.params.len(),
        allreduce_payload_bytes: 16 * n * n + 4 * trainer.params.len(),
        ranks: trainer.workers().size(),
        samples_per_second: config.batch as f64 * steps as f64 / wall,
        allreduce_bytes_per_step: trainer.phase_times.allreduce_bytes_per_step(),
        allreduce_ms_per_step: trainer.phase_times.allreduce_seconds_per_step() * 1e3,
    })
}

/// The problem a configuration times: its video net on noise frames with the slowness operator,
/// or the 2D hydrogen atom on [−50, 50]² with the envelope, as `spin hydrogen` builds it.
fn bench_problem(ctx: &Arc<GpuContext>, config: &BenchConfig) -> Result<Problem> {
    Ok(match &config.video {
        Some(v) => {
            let spec = NetworkSpec {
                input_dim: v.image.height * v.image.width * v.image.channels,
                hidden: config.hidden.clone(),
                outputs: config.neig,
                image: Some(v.image),
                conv: v.conv.clone(),
                activation: v.activation,
                constant_first: v.constant_first,
                ..Default::default()
            };
            Problem {
                sampler: Box::new(NoiseFrames(spec.input_dim)),
                spec,
                operator: Operator::slowness(v.clip_len)?,
            }
        }
        None => {
            let mut hydrogen = SchrodingerConfig::generic();
            hydrogen.hidden = config.hidden.clone();
            hydrogen.neig = config.neig;
            hydrogen.laplacian = config.laplacian;
            hydrogen.eps = if config.eps > 0.0 { config.eps } else { 0.1 };
            hydrogen.radial = config.radial;
            hydrogen.sampler = config.sampler;
            hydrogen.problem(ctx)?
        }
    })
}

/// A configuration's training settings: its β, batch and objective; Adam 3e-3 (the defaults)
/// or RMSProp 1e-5 (the reference's).
fn bench_train_config(config: &BenchConfig) -> TrainConfig {
    TrainConfig {
        beta: config.beta,
        batch: config.batch,
        steps: 1_000_000,
        seed: 0,
        optimizer: if config.adam {
            OptimizerConfig::new(OptimizerKind::Adam, 3e-3)
        } else {
            OptimizerConfig::new(OptimizerKind::Rmsprop, 1e-5)
        },
        eigen_ema: 0.01,
        exhaustive: false,
        shift: 0.0,
        gauge: 0.0,
        objective: config.objective,
        tail: Default::default(),
        whiten_readout: 0.0,
    }
}

/// The GPU time of each kernel of one step (with identity matrices), one line per kernel and
/// layer: the chunks of the Σ-Jacobian stage are summed. `None` without timestamp queries.
fn kernel_profile(trainer: &Trainer, config: &BenchConfig) -> Result<Option<Vec<KernelTime>>> {
    let n = config.neig;
    let eye = nalgebra::DMatrix::<f64>::identity(n, n);
    Ok(trainer
        .engine()
        .profile(&flat(&eye), &flat(&eye), config.beta)?
        .map(|list| {
            let mut merged: Vec<KernelTime> = Vec::new();
            for t in list {
                let label = t.label.split(" chunk").next().unwrap_or("").to_string();
                match merged.iter_mut().find(|m| m.label == label) {
                    Some(m) => m.ms += t.ms,
                    None => merged.push(KernelTime { label, ms: t.ms }),
                }
            }
            merged
        }))
}
