//! The training loop: samples a batch, runs the GPU passes, does the host's matrix work and the
//! optimiser update; and the final evaluation on a large fresh sample (maths §2).

use std::sync::Arc;

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod config;
mod evaluate;
mod report;
mod rotate;
mod state;
mod step;

pub use config::{Tail, TrainConfig, DEFAULT_GAUGE};
pub use report::{max_weight_share, Evaluation, PhaseTimes, StepHealth, StepReport, StepTrace};

use super::engine::{Engine, EngineOptions, SigmaGradient};
pub use super::objective::Objective;
use super::optim::Optimizer;
use super::parallel::{Collective, Workers};
use crate::error::{Result, SpinError};
use crate::gpu::GpuContext;
use crate::nn::NetworkSpec;
use crate::operators::samplers::Sampler;
use crate::operators::{Batch, Operator};

/// What is learned: a network, an operator and the sampling distribution.
pub struct Problem {
    /// The network.
    pub spec: NetworkSpec,
    /// The operator K.
    pub operator: Operator,
    /// p(x).
    pub sampler: Box<dyn Sampler>,
}

impl Problem {
    /// The operator's batch for `points` (count, d) with importance weights, with the network's
    /// input features (the radial feature, when the network has one).
    pub fn batch(&self, points: &[f64], weights: &[f64]) -> Result<Batch> {
        Ok(self.with_features(self.operator.batch(points, self.sampler.dim(), weights)?))
    }

    /// Worker `part` of `parts`'s share of the samples `points` (count, d) with `weights`,
    /// as a batch ([`Operator::shard`]).
    pub fn shard_batch(
        &self,
        points: &[f64],
        weights: &[f64],
        part: usize,
        parts: usize,
    ) -> Result<Batch> {
        let dim = self.sampler.dim();
        let (p, w) = self.operator.shard(points, dim, weights, part, parts)?;
        self.batch(&p, &w)
    }

    /// A batch of plain network values at `points` (count, d), with the input features.
    pub fn plain_batch(&self, points: &[f64]) -> Result<Batch> {
        Ok(self.with_features(Batch::plain(points, self.sampler.dim())?))
    }

    fn with_features(&self, mut batch: Batch) -> Batch {
        batch.add_features(&self.spec);
        batch
    }
}

/// At β = 1, how many minibatches in a row may be set aside as degenerate (Σ̂ not positive
/// definite) before a step fails with the collapse.
pub const MAX_REDRAWS: usize = 20;

/// In a data-parallel run, the workers compare a hash of θ every this many steps.
pub const REPLICA_CHECK_EVERY: u64 = 100;

/// A training run in progress.
pub struct Trainer {
    ctx: Arc<GpuContext>,
    problem: Problem,
    config: TrainConfig,
    engine: Engine,
    /// Parameters θ.
    pub params: Vec<f32>,
    /// Optimiser state.
    pub optimizer: Optimizer,
    /// Σ̄.
    pub sigma_avg: DMatrix<f64>,
    /// EMA of diag Λ.
    pub lambda_ema: Vec<f64>,
    /// Steps done.
    pub step: u64,
    rng: ChaCha8Rng,
    fixed_batch: Option<Batch>,
    fixed_uploaded: bool,
    /// Minibatches set aside (in this invocation) because the features were linearly
    /// dependent on them at β = 1 (see [`Trainer::step`]).
    pub degenerate_batches: u64,
    mask: Option<Vec<f32>>,
    /// J̄ starts from the next step's Ĵ (β = 1 for J̄ once): a run restored from a checkpoint
    /// without J̄ (written at β = 1, whose gradient needs none).
    jbar_fresh: bool,
    /// Where the time of each step goes.
    pub phase_times: PhaseTimes,
    /// The evaluation engine of [`Trainer::outputs`], kept between calls of one shape.
    outputs_engine: std::cell::RefCell<Option<Engine>>,
    /// The workers sharing every batch (one, outside `mpirun`).
    workers: Workers,
    /// Σ̂, Π̂ (the workers' means) and the gradient (their mean, before the mask) of the last
    /// step, for tests of the data-parallel step.
    pub last_step: Option<StepTrace>,
    /// The largest importance weight's share of the last minibatch drawn.
    last_weight_share: f64,
    /// The successor objective's shift c of the last step.
    last_shift: f64,
    /// The step after which the bias-correcting tail began ([`Tail`]), once it has.
    tail_start: Option<u64>,
}

impl Trainer {
    /// Initialises parameters (reference init), Σ̄ = I, J̄ = 0; the Σ term's path is
    /// [`TrainConfig::sigma_gradient`].
    pub fn new(ctx: Arc<GpuContext>, problem: Problem, config: TrainConfig) -> Result<Self> {
        let sigma = config.sigma_gradient();
        Self::with_sigma_gradient(ctx, problem, config, sigma)
    }

    /// [`Trainer::new`] as one of the workers of `collective`, which share every batch
    /// ([`Trainer::new`] takes the process's workers, [`super::parallel::world`]).
    pub fn with_workers(
        ctx: Arc<GpuContext>,
        problem: Problem,
        config: TrainConfig,
        collective: Arc<dyn Collective>,
    ) -> Result<Self> {
        let sigma = config.sigma_gradient();
        Self::build(ctx, problem, config, sigma, collective)
    }

    /// [`Trainer::new`] with the Σ term's path chosen (the J̄ path at β = 1 is the fused
    /// gradient's A/B baseline in `spin bench --jbar`).
    pub fn with_sigma_gradient(
        ctx: Arc<GpuContext>,
        problem: Problem,
        config: TrainConfig,
        sigma: SigmaGradient,
    ) -> Result<Self> {
        Self::build(ctx, problem, config, sigma, super::parallel::world())
    }

    fn build(
        ctx: Arc<GpuContext>,
        problem: Problem,
        config: TrainConfig,
        sigma: SigmaGradient,
        collective: Arc<dyn Collective>,
    ) -> Result<Self> {
        config.validate()?;
        let workers = Workers::new(collective);
        let (rank, size) = (workers.rank(), workers.size());
        if sigma == SigmaGradient::Fused && config.sigma_gradient() != SigmaGradient::Fused {
            return Err(SpinError::Config(format!(
                "the fused Σ gradient needs β = 1, got {}",
                config.beta
            )));
        }
        problem.spec.validate()?;
        if problem.sampler.dim() != problem.spec.space_dim() {
            return Err(SpinError::Shape(format!(
                "sampler gives points of dimension {}, the network takes {}",
                problem.sampler.dim(),
                problem.spec.space_dim()
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let params = problem.spec.init_params(&mut rng);
        let fixed_batch = if config.exhaustive {
            let (points, weights) = problem.sampler.exhaustive().ok_or_else(|| {
                SpinError::Config(
                    "this sampler has no exhaustive batch (only finite spaces do)".into(),
                )
            })?;
            Some(problem.shard_batch(&points, &weights, rank, size)?)
        } else {
            None
        };
        let first = match &fixed_batch {
            Some(b) => b.clone(),
            None => {
                let (points, weights) = problem.sampler.sample(&mut rng, config.batch);
                problem.shard_batch(&points, &weights, rank, size)?
            }
        };
        let options = EngineOptions {
            sigma,
            ..Default::default()
        };
        let engine = Engine::with_options(ctx.clone(), &problem.spec, first.shape, true, options)?;
        let n = problem.spec.outputs;
        let optimizer = Optimizer::new(config.optimizer.clone(), params.len());
        // Re-seed so that the first training batch does not depend on whether a probe batch was drawn.
        let rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(0x5EED));
        Ok(Self {
            ctx,
            problem,
            config,
            engine,
            params,
            optimizer,
            sigma_avg: DMatrix::identity(n, n),
            lambda_ema: Vec::new(),
            step: 0,
            rng,
            fixed_batch,
            fixed_uploaded: false,
            degenerate_batches: 0,
            mask: None,
            jbar_fresh: false,
            phase_times: PhaseTimes::default(),
            outputs_engine: Default::default(),
            workers,
            last_step: None,
            last_weight_share: 0.0,
            last_shift: 0.0,
            tail_start: None,
        })
        .and_then(|mut t| {
            if let Some(m) = t.problem.spec.structural_mask() {
                t.set_mask(m)?;
            }
            Ok(t)
        })
    }

    /// Restricts training to the parameters where `mask` is 1 (block-sparse layers): the others
    /// are set to 0 now and their gradient is dropped at every step. The network's own frozen
    /// parameters ([`crate::nn::NetworkSpec::structural_mask`]: the constant first
    /// eigenfunction, whose bias stays 1) stay frozen whatever `mask` says.
    pub fn set_mask(&mut self, mut mask: Vec<f32>) -> Result<()> {
        if mask.len() != self.params.len() {
            return Err(SpinError::Shape(format!(
                "mask of {} for {} parameters",
                mask.len(),
                self.params.len()
            )));
        }
        if let Some(fixed) = self.problem.spec.structural_mask() {
            for (m, f) in mask.iter_mut().zip(fixed) {
                *m *= f;
            }
        }
        for (p, m) in self.params.iter_mut().zip(&mask) {
            *p *= m;
        }
        if self.problem.spec.constant_first {
            let out = *self.problem.spec.layers().last().expect("output layer");
            self.params[out.b(0)] = 1.0;
        }
        self.mask = Some(mask);
        Ok(())
    }

    /// Makes the learning-rate schedule treat the run as at least `fraction` done (e.g. the
    /// share of a time limit already spent), so a cosine anneals within the time it has.
    pub fn set_schedule_progress(&mut self, fraction: f64) {
        self.optimizer.progress_floor = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
    }

    /// The share of the run done: the larger of the steps' and the time limit's
    /// ([`Trainer::set_schedule_progress`]).
    pub fn progress(&self) -> f64 {
        let by_steps = self.step as f64 / self.config.steps.max(1) as f64;
        by_steps.max(self.optimizer.progress_floor).min(1.0)
    }

    /// Whether this run ends with the bias-correcting tail: SpIN at β = 1 on sampled
    /// minibatches with a tail configured ([`Tail`]).
    pub fn has_tail(&self) -> bool {
        self.config.tail.fraction > 0.0
            && self.config.objective == Objective::Spin
            && self.config.beta >= 1.0
            && self.fixed_batch.is_none()
    }

    /// The step after which the bias-correcting tail began, if it has.
    pub fn tail_start(&self) -> Option<u64> {
        self.tail_start
    }

    /// Starts the tail when the run's progress reaches it: the engine is rebuilt on the
    /// Σ-Jacobian path (J̄ starts from the next step's Ĵ, at the tail's first rate 1).
    fn enter_tail_if_due(&mut self) -> Result<()> {
        if self.tail_start.is_none()
            && self.has_tail()
            && self.progress() >= 1.0 - self.config.tail.fraction
        {
            self.use_jacobian_engine()?;
            self.tail_start = Some(self.step);
        }
        Ok(())
    }

    /// Rebuilds the engine on the Σ-Jacobian path (J̄ = 0 until written or updated at rate 1).
    fn use_jacobian_engine(&mut self) -> Result<()> {
        if !self.engine.is_fused() {
            return Ok(());
        }
        let options = EngineOptions {
            sigma: SigmaGradient::Jacobian,
            ..Default::default()
        };
        let shape = self.engine.shape();
        self.engine =
            Engine::with_options(self.ctx.clone(), &self.problem.spec, shape, true, options)?;
        self.fixed_uploaded = false;
        Ok(())
    }

    /// The moving averages' rate this step: the configured β, or in the tail its rate.
    fn beta_now(&self) -> f64 {
        match self.tail_start.filter(|_| self.has_tail()) {
            Some(start) => self.config.tail.rate_at(self.step.saturating_sub(start)),
            None => self.config.beta,
        }
    }

    /// Replaces the sampler (same dimension), e.g. a proposal refitted to the current network.
    /// Every estimator keeps targeting the same p as long as the new sampler's weights do.
    pub fn set_sampler(&mut self, sampler: Box<dyn Sampler>) -> Result<()> {
        if sampler.dim() != self.problem.sampler.dim() {
            return Err(SpinError::Shape(format!(
                "new sampler gives points of dimension {}, the old one {}",
                sampler.dim(),
                self.problem.sampler.dim()
            )));
        }
        self.problem.sampler = sampler;
        Ok(())
    }

    /// The GPU context.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// The problem.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The GPU engine (for profiling and tests).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The workers sharing every batch.
    pub fn workers(&self) -> &Workers {
        &self.workers
    }

    /// Checks that every worker holds the same θ, bit for bit, and returns its hash (a
    /// collective call: every worker must make it).
    pub fn check_replicas(&mut self) -> Result<u64> {
        let step = self.step;
        self.workers.check_same(&self.params, step)
    }

    /// In a data-parallel run, checks that every worker holds the same θ and has each report
    /// its hash ([`super::parallel::note`]); nothing in one process. A collective call.
    pub fn report_replicas(&mut self) -> Result<()> {
        if self.workers.is_parallel() {
            let hash = self.check_replicas()?;
            super::parallel::note(&format!(
                "step {}, θ hash {hash:016x}, the same on every rank; {:.0} bytes and {:.2} ms in all-reduces per step",
                self.step,
                self.phase_times.allreduce_bytes_per_step(),
                self.phase_times.allreduce_seconds_per_step() * 1e3
            ));
        }
        Ok(())
    }

    /// The `parallel` block of a run's `metrics.json`: the ranks, the transport, and per step
    /// the bytes each rank sends into the all-reduces and the seconds they take (maths §10).
    pub fn parallel_metrics(&self) -> serde_json::Value {
        let t = &self.phase_times;
        let step_seconds =
            t.sample + t.upload + t.statistics + t.host_matrices + t.gradient + t.optimizer;
        serde_json::json!({
            "ranks": self.workers.size(),
            "transport": self.workers.transport(),
            "allreduce_bytes_per_step": t.allreduce_bytes_per_step(),
            "allreduce_seconds_per_step": t.allreduce_seconds_per_step(),
            "allreduce_share_of_step_time": t.allreduce.seconds / step_seconds.max(1e-12),
            "theta_hash": format!("{:016x}", super::parallel::params_hash(&self.params)),
        })
    }

    /// Rank 0's `value` on every worker (a collective call; `value` itself in one process).
    pub fn agree(&mut self, value: f64) -> Result<f64> {
        self.workers.from_rank0(value)
    }
}
