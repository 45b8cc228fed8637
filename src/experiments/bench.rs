//! Named benchmark configurations: whole training steps per second, and a per-kernel breakdown
//! from timestamp queries where the adapter has them.

use std::sync::Arc;
use std::time::Instant;

use super::schrodinger::{LaplacianKind, SamplerKind, SchrodingerConfig};
use crate::error::{Result, SpinError};
use crate::gpu::GpuContext;
use crate::spin::engine::KernelTime;
use crate::spin::host::flat;
use crate::spin::{OptimizerConfig, OptimizerKind, TrainConfig, Trainer};

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
}

/// The named configurations.
pub fn configs() -> Vec<BenchConfig> {
    vec![
        BenchConfig {
            name: "hydrogen-3x64-fd",
            hidden: vec![64; 3],
            neig: 9,
            batch: 128,
            eps: 0.1,
            beta: 0.01,
            laplacian: LaplacianKind::Fd,
            radial: false,
            sampler: SamplerKind::Uniform,
        },
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
        },
        BenchConfig {
            name: "hydrogen-3x64-weak-radial",
            hidden: vec![64; 3],
            neig: 9,
            batch: 128,
            eps: 0.0,
            beta: 0.5,
            laplacian: LaplacianKind::Weak,
            radial: true,
            sampler: SamplerKind::Importance,
        },
        BenchConfig {
            name: "hydrogen-4x128-fd",
            hidden: vec![128; 4],
            neig: 9,
            batch: 128,
            eps: 0.1,
            beta: 0.01,
            laplacian: LaplacianKind::Fd,
            radial: false,
            sampler: SamplerKind::Uniform,
        },
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
}

/// Runs `config`: `warmup` untimed steps, then timed steps for at least `seconds` (and at least
/// `min_steps`).
pub fn run(
    ctx: Arc<GpuContext>,
    config: &BenchConfig,
    warmup: u64,
    min_steps: u64,
    seconds: f64,
) -> Result<BenchResult> {
    // The 2D hydrogen atom on [−50, 50]² with the envelope, as `spin hydrogen` builds it.
    let mut hydrogen = SchrodingerConfig::generic();
    hydrogen.hidden = config.hidden.clone();
    hydrogen.neig = config.neig;
    hydrogen.laplacian = config.laplacian;
    hydrogen.eps = if config.eps > 0.0 { config.eps } else { 0.1 };
    hydrogen.radial = config.radial;
    hydrogen.sampler = config.sampler;
    let problem = hydrogen.problem(&ctx)?;
    let train = TrainConfig {
        beta: config.beta,
        batch: config.batch,
        steps: 1_000_000,
        seed: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Rmsprop, 1e-5),
        eigen_ema: 0.01,
        exhaustive: false,
    };
    let mut trainer = Trainer::new(ctx.clone(), problem, train)?;
    for _ in 0..warmup {
        trainer.step()?;
    }
    let start = Instant::now();
    let mut steps = 0u64;
    while steps < min_steps || start.elapsed().as_secs_f64() < seconds {
        trainer.step()?;
        steps += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    let n = config.neig;
    let eye = nalgebra::DMatrix::<f64>::identity(n, n);
    let kernels = trainer
        .engine()
        .profile(&flat(&eye), &flat(&eye), config.beta)?;
    if steps == 0 {
        return Err(SpinError::Config("no steps timed".into()));
    }
    Ok(BenchResult {
        name: config.name.to_string(),
        steps_per_second: steps as f64 / wall,
        ms_per_step: wall * 1e3 / steps as f64,
        steps,
        adapter: ctx.adapter().name.clone(),
        kernels,
    })
}
