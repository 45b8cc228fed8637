//! The training loop: samples a batch, runs the GPU passes, does the host's matrix work and the
//! optimiser update; and the final evaluation on a large fresh sample (maths §2).

use std::sync::Arc;

use nalgebra::DMatrix;
use rand::SeedableRng;

mod evaluate;

use super::checkpoint::TrainerState;
use rand_chacha::ChaCha8Rng;

use super::engine::{Engine, EngineOptions, SigmaGradient};
use super::host::{
    add_gauge, condition, correlation_condition, flat, lag_shift, nested_matrices,
    nested_preconditioner, shift_gradient, step_matrices, StepMatrices, NESTED_GAP_FLOOR,
    NESTED_MARGIN,
};
pub use super::objective::Objective;
use super::optim::{Optimizer, OptimizerConfig};
use super::parallel::{Collective, Traffic, Workers};
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

/// The gauge weight ρ of every front end's defaults ([`TrainConfig::gauge`]).
pub const DEFAULT_GAUGE: f64 = 0.0;

/// Training hyper-parameters.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Moving-average rate β of Σ̄ and J̄ (1: no averaging).
    pub beta: f64,
    /// Samples per step (ignored with `exhaustive`).
    pub batch: usize,
    /// Total steps (for schedules).
    pub steps: u64,
    /// RNG seed.
    pub seed: u64,
    /// Optimiser.
    pub optimizer: OptimizerConfig,
    /// Rate of the eigenvalue EMA reported in curves (reference: 0.01).
    pub eigen_ema: f64,
    /// Use the sampler's exhaustive batch every step (deterministic; finite spaces only).
    pub exhaustive: bool,
    /// Shift margin for β < 1 (0: no shift, the reference's semantics): the gradient is
    /// taken for K − cI with c = max(0, λ_max + margin × spread of the estimates)
    /// ([`super::host::shift_gradient`], [`super::host::lag_shift`]). Without it, Σ̄'s
    /// lag makes features with positive eigenvalues shrink or merge until Σ̄ is singular. No
    /// effect with β = 1. With [`Objective::Nested`] it is the margin of that objective's
    /// shift c at every β (0: [`super::host::NESTED_MARGIN`]).
    #[serde(default)]
    pub shift: f64,
    /// Weight ρ of the gauge term ([`super::host::gauge_gradient`]): a restoring force that
    /// holds Σ̂ near I along the directions tr Λ cannot see (each feature's scale, and the mixing
    /// of earlier features into later ones), scaled by the spread of the eigenvalue estimates.
    /// It vanishes at Σ̂ = I and never moves Λ, so the optimum is the same; 0 turns it off (the
    /// reference's semantics).
    #[serde(default)]
    pub gauge: f64,
    /// The objective ([`Objective::Spin`] unless set). With [`Objective::Nested`], β is the rate
    /// of the Σ̄ that gives the quadratic term its coefficient; the Jacobian is always this
    /// minibatch's (the fused path), and `shift` and `gauge` do not apply.
    #[serde(default)]
    pub objective: Objective,
}

impl TrainConfig {
    /// The Σ term's path this configuration needs: SpIN averages the Σ-Jacobian unless β = 1
    /// ([`SigmaGradient::for_beta`]); the nested objective always uses this minibatch's, so it
    /// takes the fused gradient at any β.
    pub fn sigma_gradient(&self) -> SigmaGradient {
        match self.objective {
            Objective::Spin => SigmaGradient::for_beta(self.beta),
            Objective::Nested => SigmaGradient::Fused,
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate()?;
        if !(self.beta > 0.0 && self.beta <= 1.0) {
            return Err(SpinError::Config(format!(
                "β must be in (0, 1], got {}",
                self.beta
            )));
        }
        if !self.exhaustive && self.batch < 2 {
            return Err(SpinError::Config(format!(
                "batch must be at least 2, got {}",
                self.batch
            )));
        }
        if !(self.shift >= 0.0 && self.shift.is_finite()) {
            return Err(SpinError::Config(format!(
                "the shift margin must be a finite number ≥ 0, got {}",
                self.shift
            )));
        }
        if !(self.gauge >= 0.0 && self.gauge.is_finite()) {
            return Err(SpinError::Config(format!(
                "the gauge weight must be a finite number ≥ 0, got {}",
                self.gauge
            )));
        }
        if !(self.eigen_ema > 0.0 && self.eigen_ema <= 1.0) {
            return Err(SpinError::Config(format!(
                "eigenvalue EMA rate must be in (0, 1], got {}",
                self.eigen_ema
            )));
        }
        Ok(())
    }
}

/// What one step reports.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// Step number (1-based, after this step).
    pub step: u64,
    /// tr Λ.
    pub loss: f64,
    /// diag Λ this step.
    pub eigenvalues: Vec<f64>,
    /// EMA of diag Λ.
    pub eigenvalues_ema: Vec<f64>,
    /// diag Σ̄: each feature's second moment (the loss does not fix it).
    pub sigma_diag: Vec<f64>,
    /// Condition number of Σ̄'s correlation matrix D^{-1/2} Σ̄ D^{-1/2}: how close the features
    /// are to linearly dependent (the loss does not fix that either).
    pub sigma_condition: f64,
    /// Per-step diagnostics of the run's health (scale, conditioning, sampling, step size).
    pub health: StepHealth,
}

/// What one step shows of the run's health: the quantities that drift before a run fails.
#[derive(Clone, Debug, Default)]
pub struct StepHealth {
    /// tr Σ̂ of this step's minibatch: the features' overall scale (tr Λ does not fix it).
    pub sigma_trace: f64,
    /// Condition number of Σ̂ itself (largest over smallest eigenvalue: scale and mixing).
    pub sigma_hat_condition: f64,
    /// The largest importance weight's share of the minibatch's total weight (1/batch for
    /// uniform weights; near 1 when one sample steers Σ̂).
    pub max_weight_share: f64,
    /// ‖g‖ of the step's gradient (after the mask, before the optimiser).
    pub grad_norm: f64,
    /// The gauge term's share of the gradient matrix G_Σ (Frobenius norms; 0 with the gauge off).
    pub gauge_share: f64,
}

/// The final evaluation on a large sample.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Evaluation {
    /// Samples used.
    pub samples: usize,
    /// diag Λ with Λ = L⁻¹ Π L⁻ᵀ, L = chol(Σ) of the evaluation sample (ordered eigenfunctions).
    pub lambda_diag: Vec<f64>,
    /// Rayleigh–Ritz eigenvalues of (Λ + Λᵀ)/2, ascending.
    pub eigenvalues: Vec<f64>,
    /// Monte Carlo standard errors of `eigenvalues`, from the spread over the evaluation's
    /// chunks ([`super::host::ritz_std_errors`]); empty for an exhaustive (exact) evaluation.
    pub eigenvalue_std_errors: Vec<f64>,
    /// Σ (N, N) row-major.
    #[serde(skip)]
    pub sigma: Vec<f64>,
    /// Π (N, N) row-major.
    #[serde(skip)]
    pub pi: Vec<f64>,
}

/// Wall time spent in each phase of [`Trainer::step`], summed over steps (for `spin bench`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PhaseTimes {
    /// Steps counted.
    pub steps: u64,
    /// Drawing the samples and building the operator's batch (host).
    pub sample: f64,
    /// Uploading θ and the batch (with the gathers' transpose, built on the host).
    pub upload: f64,
    /// Submit A and its readback of Σ̂, Π̂ (GPU work and the wait for it).
    pub statistics: f64,
    /// Σ̄, Cholesky, Λ, G_Π, G_Σ (host, f64).
    pub host_matrices: f64,
    /// Submit B and its readback of the gradient (GPU work and the wait for it).
    pub gradient: f64,
    /// Masks, finite checks, the optimiser and the eigenvalue EMA (host).
    pub optimizer: f64,
    /// Of `statistics` and `gradient`: the sums over the workers of a data-parallel run
    /// (maths §10), with their traffic.
    pub allreduce: Traffic,
}

impl PhaseTimes {
    /// Milliseconds per step of each phase, in order, with its name.
    pub fn per_step_ms(&self) -> Vec<(&'static str, f64)> {
        let k = 1e3 / self.steps.max(1) as f64;
        vec![
            ("sample + batch", self.sample * k),
            ("upload", self.upload * k),
            ("statistics (submit A + readback)", self.statistics * k),
            ("host matrices", self.host_matrices * k),
            ("gradient (submit B + readback)", self.gradient * k),
            ("optimiser", self.optimizer * k),
        ]
    }

    /// Bytes each worker sends into the step's sums, per step.
    pub fn allreduce_bytes_per_step(&self) -> f64 {
        self.allreduce.bytes as f64 / self.steps.max(1) as f64
    }

    /// Seconds in the step's sums, per step.
    pub fn allreduce_seconds_per_step(&self) -> f64 {
        self.allreduce.seconds / self.steps.max(1) as f64
    }
}

/// f32 statistics as f64.
fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Adds the time since `clock` to `slot` and restarts the clock (the step's phase timer).
fn lap(clock: &mut std::time::Instant, slot: &mut f64) {
    let now = std::time::Instant::now();
    *slot += (now - *clock).as_secs_f64();
    *clock = now;
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
    last_nested_shift: f64,
}

/// The largest weight's share of the total (1/len for equal weights; 0 for none).
pub fn max_weight_share(weights: &[f64]) -> f64 {
    let total: f64 = weights.iter().map(|w| w.abs()).sum();
    let max = weights.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    if total > 0.0 {
        max / total
    } else {
        0.0
    }
}

/// The pooled quantities of one step (maths §10), kept by [`Trainer::step`].
#[derive(Clone, Debug)]
pub struct StepTrace {
    /// Σ̂ (N, N) row-major, the mean over the global batch.
    pub sigma: Vec<f64>,
    /// Π̂ (N, N) row-major.
    pub pi: Vec<f64>,
    /// The gradient, the mean over the global batch.
    pub gradient: Vec<f32>,
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
            last_nested_shift: 0.0,
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

    /// Uploads the next batch: a fresh sample, or the exhaustive batch (uploaded once, since
    /// evaluation uses engines of its own and never overwrites it).
    fn upload_next_batch(&mut self) -> Result<()> {
        let t = std::time::Instant::now();
        match &self.fixed_batch {
            Some(b) => {
                if !self.fixed_uploaded {
                    self.engine.set_batch(b)?;
                    self.fixed_uploaded = true;
                }
                self.phase_times.upload += t.elapsed().as_secs_f64();
            }
            None => {
                let (points, weights) = self
                    .problem
                    .sampler
                    .sample(&mut self.rng, self.config.batch);
                self.last_weight_share = max_weight_share(&weights);
                let batch = self.problem.shard_batch(
                    &points,
                    &weights,
                    self.workers.rank(),
                    self.workers.size(),
                )?;
                let built = std::time::Instant::now();
                self.phase_times.sample += (built - t).as_secs_f64();
                self.engine.set_batch(&batch)?;
                self.phase_times.upload += built.elapsed().as_secs_f64();
            }
        }
        Ok(())
    }

    /// One SpIN step. On a non-finite loss or gradient, or a collapsed Σ̄, returns an error and
    /// leaves θ, Σ̄, J̄ and the optimiser as they were. At β = 1 a minibatch on which Σ̂ is not
    /// positive definite is set aside and another drawn (counted in `degenerate_batches`), up
    /// to [`MAX_REDRAWS`] times in a row before the collapse is an error.
    pub fn step(&mut self) -> Result<StepReport> {
        let n = self.problem.spec.outputs;
        let beta = self.config.beta;
        let step = self.step + 1;
        let mut redraws = 0;
        let traffic_before = self.workers.traffic.clone();
        // θ is uploaded once; a degenerate minibatch is redrawn against the same θ.
        let mut clock = std::time::Instant::now();
        self.engine.set_params(&self.params)?;
        lap(&mut clock, &mut self.phase_times.upload);
        let ((sigma, sigma_hat, pi_hat), sigma_avg, pi, mut m) = loop {
            self.upload_next_batch()?;
            clock = std::time::Instant::now();
            let (sigma, pi) = self.engine.statistics()?;
            let (mut sigma, mut pi) = (widen(&sigma), widen(&pi));
            if self.workers.is_parallel() {
                let mut both = [sigma, pi].concat();
                self.workers.mean_f64(&mut both)?;
                pi = both.split_off(n * n);
                sigma = both;
            }
            lap(&mut clock, &mut self.phase_times.statistics);
            if sigma.iter().chain(&pi).any(|v| !v.is_finite()) {
                return Err(SpinError::NonFinite {
                    what: "Σ̂/Π̂ (network outputs)".into(),
                    step,
                });
            }
            let (sigma_hat, pi_hat) = (sigma.clone(), pi.clone());
            let sigma = DMatrix::from_fn(n, n, |i, j| sigma[i * n + j]);
            let sigma_avg = &self.sigma_avg * (1.0 - beta) + &sigma * beta;
            let pi = DMatrix::from_fn(n, n, |i, j| pi[i * n + j]);
            let matrices = step_matrices(&sigma_avg, &pi);
            lap(&mut clock, &mut self.phase_times.host_matrices);
            match matrices {
                Ok(m) => break ((sigma, sigma_hat, pi_hat), sigma_avg, pi, m),
                // At β = 1 Σ̄ is this minibatch's Σ̂ alone: a minibatch on which the features
                // are linearly dependent (e.g. frames that do not change) defines no step, so
                // it is set aside and another drawn; the network itself has collapsed only
                // when batch after batch is.
                Err(SpinError::Cholesky { .. })
                    if beta >= 1.0 && self.fixed_batch.is_none() && redraws < MAX_REDRAWS =>
                {
                    redraws += 1;
                    self.degenerate_batches += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let (loss, gauge_share, jbar_rate) = self.objective_matrices(&mut m, &sigma, &pi);
        if !loss.is_finite() {
            return Err(SpinError::NonFinite {
                what: format!("the loss ({})", self.config.objective.name()),
                step,
            });
        }
        lap(&mut clock, &mut self.phase_times.host_matrices);
        let mut grad = self
            .engine
            .gradient(&flat(&m.g_pi), &flat(&m.g_sigma), jbar_rate)?;
        self.workers.mean_f32(&mut grad)?;
        self.last_step = Some(StepTrace {
            sigma: sigma_hat,
            pi: pi_hat,
            gradient: grad.clone(),
        });
        lap(&mut clock, &mut self.phase_times.gradient);
        if let Some(mask) = &self.mask {
            for (g, k) in grad.iter_mut().zip(mask) {
                *g *= k;
            }
        }
        if grad.iter().any(|v| !v.is_finite()) {
            // J̄ advanced with this rejected step; put it back so a checkpoint stays one step.
            self.engine.undo_jbar_update()?;
            return Err(SpinError::NonFinite {
                what: "the gradient".into(),
                step,
            });
        }
        let grad_norm = grad
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        self.optimizer
            .step(&mut self.params, &grad, self.config.steps);
        self.sigma_avg = sigma_avg;
        self.jbar_fresh = false;
        let eig = m.eigenvalues();
        if self.lambda_ema.is_empty() {
            self.lambda_ema = eig.clone();
        } else {
            let r = self.config.eigen_ema;
            for (e, v) in self.lambda_ema.iter_mut().zip(&eig) {
                *e = (1.0 - r) * *e + r * v;
            }
        }
        self.step = step;
        let report = StepReport {
            step,
            loss,
            eigenvalues: eig,
            eigenvalues_ema: self.lambda_ema.clone(),
            sigma_diag: self.sigma_avg.diagonal().iter().copied().collect(),
            sigma_condition: correlation_condition(&self.sigma_avg),
            health: StepHealth {
                sigma_trace: sigma.trace(),
                sigma_hat_condition: condition(&sigma),
                max_weight_share: if self.fixed_batch.is_some() {
                    0.0
                } else {
                    self.last_weight_share
                },
                grad_norm,
                gauge_share,
            },
        };
        if self.workers.is_parallel() && step.is_multiple_of(REPLICA_CHECK_EVERY) {
            self.workers.check_same(&self.params, step)?;
        }
        lap(&mut clock, &mut self.phase_times.optimizer);
        self.phase_times.steps += 1;
        let (now, sums) = (&self.workers.traffic, &mut self.phase_times.allreduce);
        sums.calls += now.calls - traffic_before.calls;
        sums.bytes += now.bytes - traffic_before.bytes;
        sums.seconds += now.seconds - traffic_before.seconds;
        Ok(report)
    }

    /// The objective's gradient matrices in `m` (SpIN's from [`step_matrices`], with the shift
    /// and the gauge; or the nested objective's), from this step's Σ̂ and Π̂. Returns the loss,
    /// the gauge's share of G_Σ and the rate at which the engine updates J̄.
    fn objective_matrices(
        &mut self,
        m: &mut StepMatrices,
        sigma: &DMatrix<f64>,
        pi: &DMatrix<f64>,
    ) -> (f64, f64, f64) {
        let beta = self.config.beta;
        match self.config.objective {
            Objective::Spin => {
                if self.config.shift > 0.0 && beta < 1.0 {
                    let c = lag_shift(&self.lambda_ema, &m.eigenvalues(), self.config.shift);
                    shift_gradient(m, pi, sigma, c);
                }
                let share = add_gauge(m, &self.lambda_ema, self.config.gauge);
                let rate = if self.jbar_fresh { 1.0 } else { beta };
                (m.loss(), share, rate)
            }
            Objective::Nested => {
                let estimates = if self.lambda_ema.is_empty() {
                    m.eigenvalues()
                } else {
                    self.lambda_ema.clone()
                };
                let margin = if self.config.shift > 0.0 {
                    self.config.shift
                } else {
                    NESTED_MARGIN
                };
                let c = lag_shift(&estimates, &[], margin);
                // The quadratic term's coefficient from samples this minibatch did not draw
                // (unbiased); on the very first step there are none yet.
                let coef = if self.step == 0 {
                    sigma
                } else {
                    &self.sigma_avg
                };
                let precondition = nested_preconditioner(&estimates, c, NESTED_GAP_FLOOR);
                let (loss, g_pi, g_sigma) = nested_matrices(coef, sigma, pi, c, &precondition);
                (m.g_pi, m.g_sigma) = (g_pi, g_sigma);
                self.last_nested_shift = c;
                (loss, 0.0, 1.0)
            }
        }
    }

    /// The nested objective's shift c of the last step (T = cI − K; 0 for SpIN). Each feature's
    /// own eigenvalue estimate is c − Σ̄_ll.
    pub fn nested_shift(&self) -> f64 {
        self.last_nested_shift
    }

    /// The objective and its own estimates, for metrics.json: for [`Objective::Nested`] the last
    /// step's shift c and c − Σ̄_ll, each feature's eigenvalue as the nested objective's scale
    /// says it (Σ̄ of the last step: at β = 1 one minibatch, so noisy; the reported eigenvalues
    /// are the evaluation's Ritz values).
    pub fn objective_metrics(&self) -> serde_json::Value {
        match self.config.objective {
            Objective::Spin => serde_json::json!({ "name": "spin" }),
            Objective::Nested => {
                let c = self.last_nested_shift;
                let estimates: Vec<f64> = self.sigma_avg.diagonal().iter().map(|s| c - s).collect();
                serde_json::json!({ "name": "nested", "shift": c, "estimates": estimates })
            }
        }
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

    /// Everything needed to resume: reads J̄ back from the GPU. In a data-parallel run J̄ is
    /// the workers' mean, all that the gradient uses (maths §10), so a run resumes at any W, and
    /// every worker's J̄ is set to it; a collective call then, which every worker must make.
    pub fn state(&mut self) -> Result<TrainerState> {
        let mut jbar = self.engine.read_jbar()?;
        if !jbar.is_empty() && self.workers.is_parallel() {
            self.workers.mean_f32(&mut jbar)?;
            // Every rank continues from the mean too (the gradient only ever uses the mean, so
            // this changes nothing but rounding): a run resumed from this checkpoint then
            // takes the same steps, bit for bit, as the run that wrote it.
            self.engine.write_jbar(&jbar)?;
        }
        Ok(TrainerState {
            step: self.step,
            params: self.params.clone(),
            sigma_avg: flat(&self.sigma_avg),
            jbar,
            opt_m: self.optimizer.m.clone(),
            opt_v: self.optimizer.v.clone(),
            opt_t: self.optimizer.t,
            opt_grad_norm: self.optimizer.grad_norm,
            lambda_ema: self.lambda_ema.clone(),
            rng_seed: self.rng.get_seed(),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos(),
            sampler: self.problem.sampler.state(),
            final_params: Vec::new(),
            readout: Vec::new(),
            readout_shape: [0; 3],
            train_seconds: 0.0,
        })
    }

    /// Continues from a saved state (same problem; β may differ from the saved run's). A state
    /// without J̄ (saved at β = 1, whose fused gradient keeps none) resumed at β < 1 starts J̄
    /// from the first step's Ĵ, as β = 1 would have; a state with J̄ resumed at β = 1 drops it.
    pub fn restore(&mut self, state: &TrainerState) -> Result<()> {
        let n = self.problem.spec.outputs;
        let p = self.params.len();
        let opt_len = |v: &Vec<f64>, want: &Vec<f64>| v.len() == want.len();
        let jbar_len = n * (n + 1) / 2 * p;
        if state.params.len() != p
            || state.sigma_avg.len() != n * n
            || !(state.jbar.is_empty() || state.jbar.len() == jbar_len)
            || !opt_len(&state.opt_m, &self.optimizer.m)
            || !opt_len(&state.opt_v, &self.optimizer.v)
        {
            return Err(SpinError::Shape(
                "the checkpoint does not match this network, number of eigenfunctions or optimiser"
                    .into(),
            ));
        }
        self.problem.sampler.set_state(&state.sampler)?;
        self.jbar_fresh = state.jbar.is_empty() && !self.engine.is_fused();
        if !state.jbar.is_empty() {
            self.engine.write_jbar(&state.jbar)?;
        }
        self.params = state.params.clone();
        self.sigma_avg = DMatrix::from_fn(n, n, |i, j| state.sigma_avg[i * n + j]);
        self.optimizer.m = state.opt_m.clone();
        self.optimizer.v = state.opt_v.clone();
        self.optimizer.t = state.opt_t;
        self.optimizer.grad_norm = state.opt_grad_norm;
        self.lambda_ema = state.lambda_ema.clone();
        self.step = state.step;
        self.rng = ChaCha8Rng::from_seed(state.rng_seed);
        self.rng.set_stream(state.rng_stream);
        self.rng.set_word_pos(state.rng_word_pos);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spin::OptimizerKind;

    #[test]
    fn only_spin_below_beta_one_averages_the_sigma_jacobian() {
        let config = |beta, objective| TrainConfig {
            beta,
            batch: 16,
            steps: 1,
            seed: 0,
            optimizer: OptimizerConfig::new(OptimizerKind::Adam, 1e-3),
            eigen_ema: 0.01,
            exhaustive: false,
            shift: 0.0,
            gauge: 0.0,
            objective,
        };
        let path = |beta, o| config(beta, o).sigma_gradient();
        assert_eq!(path(1.0, Objective::Spin), SigmaGradient::Fused);
        assert_eq!(path(0.1, Objective::Spin), SigmaGradient::Jacobian);
        assert_eq!(path(1.0, Objective::Nested), SigmaGradient::Fused);
        assert_eq!(path(0.1, Objective::Nested), SigmaGradient::Fused);
    }
}
