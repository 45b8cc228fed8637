//! Named benchmark configurations: whole training steps per second, and a per-kernel breakdown
//! from timestamp queries where the adapter has them.

use std::sync::Arc;
use std::time::Instant;

use super::schrodinger::{hydrogen_potential, FdBox};
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
    /// Exact (forward-mode) Laplacian instead of finite differences.
    pub exact: bool,
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
            exact: false,
        },
        BenchConfig {
            name: "hydrogen-3x64-exact",
            hidden: vec![64; 3],
            neig: 9,
            batch: 128,
            eps: 0.0,
            beta: 0.01,
            exact: true,
        },
        BenchConfig {
            name: "hydrogen-4x128-fd",
            hidden: vec![128; 4],
            neig: 9,
            batch: 128,
            eps: 0.1,
            beta: 0.01,
            exact: false,
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
    let problem = if config.exact {
        crate::spin::Problem {
            spec: crate::nn::MlpSpec {
                input_dim: 2,
                hidden: config.hidden.clone(),
                outputs: config.neig,
                envelope: Some(50.0),
                radial: false,
            },
            operator: crate::operators::Operator::hamiltonian_exact(
                2,
                1.0,
                hydrogen_potential(1.0),
            )?,
            sampler: Box::new(crate::operators::samplers::UniformBox {
                dim: 2,
                half_width: 50.0,
            }),
        }
    } else {
        FdBox {
            dim: 2,
            kinetic: 1.0,
            eps: config.eps,
            half_width: 50.0,
            hidden: config.hidden.clone(),
            neig: config.neig,
            envelope: true,
        }
        .problem(hydrogen_potential(1.0))?
    };
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
