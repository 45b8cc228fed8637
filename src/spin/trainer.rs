//! The training loop: samples a batch, runs the GPU passes, does the host's matrix work and the
//! optimiser update; and the final evaluation on a large fresh sample (SPEC §2).

use std::sync::Arc;

use nalgebra::DMatrix;
use rand::SeedableRng;

use super::checkpoint::TrainerState;
use rand_chacha::ChaCha8Rng;

use super::engine::{Engine, EngineOptions, Probe, SigmaGradient};
use super::host::{
    correlation_condition, flat, lag_shift, matrix, ritz_std_errors, ritz_values, shift_gradient,
    step_matrices,
};
use super::optim::{Optimizer, OptimizerConfig};
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

    /// A batch of plain network values at `points` (count, d), with the input features.
    pub fn plain_batch(&self, points: &[f64]) -> Result<Batch> {
        Ok(self.with_features(Batch::plain(points, self.sampler.dim())?))
    }

    fn with_features(&self, mut batch: Batch) -> Batch {
        if self.spec.radial {
            batch.add_radial_feature();
        }
        batch
    }
}

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
    /// effect with β = 1.
    #[serde(default)]
    pub shift: f64,
}

impl TrainConfig {
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

/// Σ̂ = (1/S) Σ_r w_r u_r u_rᵀ and Π̂ = (1/Q) Σ_q w_q x_q y_qᵀ of `batch` ((N, N) row-major),
/// summed in f64 on the host from the values [`Engine::forward_values`] left on the GPU.
fn host_moments(engine: &Engine, batch: &Batch) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = engine.spec().outputs;
    let (s, q) = (batch.shape.samples, batch.shape.pairs);
    let weighted_gram = |a: &[f32], b: &[f32], w: &[f32], rows: usize| -> Vec<f64> {
        let am = DMatrix::from_fn(rows, n, |r, k| a[r * n + k] as f64 * w[r] as f64);
        let bm = DMatrix::from_fn(rows, n, |r, k| b[r * n + k] as f64);
        let g = am.tr_mul(&bm) / rows.max(1) as f64;
        (0..n * n).map(|e| g[(e / n, e % n)]).collect()
    };
    let u = engine.read(Probe::U)?;
    let sigma = weighted_gram(&u[..s * n], &u[..s * n], &batch.sample_weights, s);
    let pi = weighted_gram(
        &engine.read(Probe::X)?,
        &engine.read(Probe::Y)?,
        &batch.pair_weights,
        q,
    );
    Ok((sigma, pi))
}

/// Monte Carlo moments of the network's outputs on a sample.
struct Moments {
    samples: usize,
    sigma: Vec<f64>,
    pi: Vec<f64>,
    chunks: Vec<(DMatrix<f64>, DMatrix<f64>)>,
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
}

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
    mask: Option<Vec<f32>>,
    /// J̄ starts from the next step's Ĵ (β = 1 for J̄ once): a run restored from a checkpoint
    /// without J̄ (written at β = 1, whose gradient needs none).
    jbar_fresh: bool,
    /// Where the time of each step goes.
    pub phase_times: PhaseTimes,
    /// The evaluation engine of [`Trainer::outputs`], kept between calls of one shape.
    outputs_engine: std::cell::RefCell<Option<Engine>>,
}

impl Trainer {
    /// Initialises parameters (reference init), Σ̄ = I, J̄ = 0; the Σ term's path follows β
    /// ([`SigmaGradient::for_beta`]: fused at β = 1).
    pub fn new(ctx: Arc<GpuContext>, problem: Problem, config: TrainConfig) -> Result<Self> {
        let sigma = SigmaGradient::for_beta(config.beta);
        Self::with_sigma_gradient(ctx, problem, config, sigma)
    }

    /// [`Trainer::new`] with the Σ term's path chosen (the J̄ path at β = 1 is the fused
    /// gradient's A/B baseline in `spin bench --jbar`).
    pub fn with_sigma_gradient(
        ctx: Arc<GpuContext>,
        problem: Problem,
        config: TrainConfig,
        sigma: SigmaGradient,
    ) -> Result<Self> {
        config.validate()?;
        if sigma == SigmaGradient::Fused && config.beta != 1.0 {
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
            Some(problem.batch(&points, &weights)?)
        } else {
            None
        };
        let first = match &fixed_batch {
            Some(b) => b.clone(),
            None => {
                let (points, weights) = problem.sampler.sample(&mut rng, config.batch);
                problem.batch(&points, &weights)?
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
            mask: None,
            jbar_fresh: false,
            phase_times: PhaseTimes::default(),
            outputs_engine: Default::default(),
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
                let batch = self.problem.batch(&points, &weights)?;
                let built = std::time::Instant::now();
                self.phase_times.sample += (built - t).as_secs_f64();
                self.engine.set_batch(&batch)?;
                self.phase_times.upload += built.elapsed().as_secs_f64();
            }
        }
        Ok(())
    }

    /// One SpIN step. On a non-finite loss or gradient, or a collapsed Σ̄, returns an error and
    /// leaves θ, Σ̄, J̄ and the optimiser as they were.
    pub fn step(&mut self) -> Result<StepReport> {
        let n = self.problem.spec.outputs;
        let beta = self.config.beta;
        self.upload_next_batch()?;
        let mut clock = std::time::Instant::now();
        let mut lap = |slot: &mut f64| {
            let now = std::time::Instant::now();
            *slot += (now - clock).as_secs_f64();
            clock = now;
        };
        self.engine.set_params(&self.params)?;
        lap(&mut self.phase_times.upload);
        let (sigma, pi) = self.engine.statistics()?;
        lap(&mut self.phase_times.statistics);
        let step = self.step + 1;
        if sigma.iter().chain(&pi).any(|v| !v.is_finite()) {
            return Err(SpinError::NonFinite {
                what: "Σ̂/Π̂ (network outputs)".into(),
                step,
            });
        }
        let sigma_avg = &self.sigma_avg * (1.0 - beta) + matrix(&sigma, n) * beta;
        let pi = matrix(&pi, n);
        let mut m = step_matrices(&sigma_avg, &pi)?;
        if self.config.shift > 0.0 && beta < 1.0 {
            let c = lag_shift(&self.lambda_ema, &m.eigenvalues(), self.config.shift);
            shift_gradient(&mut m, &pi, &matrix(&sigma, n), c);
        }
        let loss = m.loss();
        if !loss.is_finite() {
            return Err(SpinError::NonFinite {
                what: "the loss tr Λ".into(),
                step,
            });
        }
        let jbar_rate = if self.jbar_fresh { 1.0 } else { beta };
        lap(&mut self.phase_times.host_matrices);
        let mut grad = self
            .engine
            .gradient(&flat(&m.g_pi), &flat(&m.g_sigma), jbar_rate)?;
        lap(&mut self.phase_times.gradient);
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
        };
        lap(&mut self.phase_times.optimizer);
        self.phase_times.steps += 1;
        Ok(report)
    }

    /// [`Trainer::evaluate`] with another estimator of the same operator (e.g. the exact
    /// Laplacian's ⟨v, Hv⟩ for a run trained with the weak form ⟨∇v, c∇v⟩ + ⟨v, Vv⟩: the same
    /// integral, but its variance vanishes as v approaches an eigenfunction).
    pub fn evaluate_with(
        &mut self,
        operator: Operator,
        samples: usize,
        chunk: usize,
        seed: u64,
    ) -> Result<Evaluation> {
        let trained = std::mem::replace(&mut self.problem.operator, operator);
        let result = self.evaluate(samples, chunk, seed);
        self.problem.operator = trained;
        result
    }

    /// [`Trainer::evaluate_with`] on points drawn from `sampler` (with its importance weights)
    /// instead of the trainer's own, e.g. a fixed held-out proposal while an adaptive one moves.
    pub fn evaluate_on(
        &mut self,
        operator: Operator,
        sampler: &mut Box<dyn Sampler>,
        samples: usize,
        chunk: usize,
        seed: u64,
    ) -> Result<Evaluation> {
        std::mem::swap(&mut self.problem.sampler, sampler);
        let result = self.evaluate_with(operator, samples, chunk, seed);
        std::mem::swap(&mut self.problem.sampler, sampler);
        result
    }

    /// The final evaluation (SPEC §2): Σ, Π on `samples` fresh points in chunks of `chunk`
    /// (or the exhaustive batch of a finite space), Λ = L⁻¹ Π L⁻ᵀ, its diagonal and Ritz values.
    pub fn evaluate(&mut self, samples: usize, chunk: usize, seed: u64) -> Result<Evaluation> {
        let m = self.moments(samples, chunk, seed, false)?;
        let n = self.problem.spec.outputs;
        let to_m = |v: &[f64]| DMatrix::from_fn(n, n, |i, j| v[i * n + j]);
        let steps = step_matrices(&to_m(&m.sigma), &to_m(&m.pi))?;
        Ok(Evaluation {
            samples: m.samples,
            lambda_diag: steps.eigenvalues(),
            eigenvalues: ritz_values(&steps.lambda),
            eigenvalue_std_errors: ritz_std_errors(&to_m(&m.sigma), &to_m(&m.pi), &m.chunks)?,
            sigma: m.sigma,
            pi: m.pi,
        })
    }

    /// Σ and Π ((N, N) row-major, means over the sample) of the current network on `samples`
    /// fresh points in chunks of `chunk` (or the exhaustive batch of a finite space), with each
    /// chunk's own pair for the standard errors.
    /// With `host`, the reductions are done here in f64 from the outputs and the operator's
    /// X, Y read back (for a wide basis, where the GPU's one-entry-per-thread reduction is slow).
    fn moments(&mut self, samples: usize, chunk: usize, seed: u64, host: bool) -> Result<Moments> {
        let n = self.problem.spec.outputs;
        let mut sigma = vec![0.0f64; n * n];
        let mut pi = vec![0.0f64; n * n];
        let (mut s_total, mut q_total) = (0usize, 0usize);
        let mut chunks = Vec::new();
        let mut add = |engine: &Engine, batch: &Batch| -> Result<()> {
            engine.set_params(&self.params)?;
            engine.set_batch(batch)?;
            let (s, p) = if host {
                engine.forward_values()?;
                host_moments(engine, batch)?
            } else {
                let (s, p) = engine.statistics()?;
                let wide = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
                (wide(s), wide(p))
            };
            let to_m = |v: &[f64]| DMatrix::from_fn(n, n, |i, j| v[i * n + j]);
            chunks.push((to_m(&s), to_m(&p)));
            let (ns, nq) = (batch.shape.samples, batch.shape.pairs);
            for i in 0..n * n {
                sigma[i] += s[i] * ns as f64;
                pi[i] += p[i] * nq as f64;
            }
            s_total += ns;
            q_total += nq;
            Ok(())
        };
        if let Some((points, weights)) = self.problem.sampler.exhaustive() {
            let batch = self.problem.batch(&points, &weights)?;
            let engine = Engine::new(self.ctx.clone(), &self.problem.spec, batch.shape, false)?;
            add(&engine, &batch)?;
        } else {
            let chunk = chunk.max(2).min(samples.max(2)) & !1;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut engine: Option<Engine> = None;
            let mut done = 0;
            while done < samples {
                let (points, weights) = self.problem.sampler.sample(&mut rng, chunk);
                let batch = self.problem.batch(&points, &weights)?;
                if engine.as_ref().is_none_or(|e| e.shape() != batch.shape) {
                    engine = Some(Engine::new(
                        self.ctx.clone(),
                        &self.problem.spec,
                        batch.shape,
                        false,
                    )?);
                }
                if let Some(e) = &engine {
                    add(e, &batch)?;
                }
                done += chunk;
            }
        }
        Ok(Moments {
            samples: s_total,
            sigma: sigma.iter().map(|v| v / s_total as f64).collect(),
            pi: pi.iter().map(|v| v / q_total as f64).collect(),
            chunks,
        })
    }

    /// Rayleigh–Ritz on the span of the last hidden layer's units and the constant (each times
    /// the envelope), estimated on `samples` fresh points with `operator`: the output layer is
    /// replaced by the N lowest Ritz vectors of that space. The N learned functions lie in it
    /// (they are a linear read-out of it), so on the fitting sample the Ritz values can only
    /// fall; they are biased low by the fit, so judge the result on a fresh sample
    /// ([`Trainer::evaluate`] with another seed). Directions of the basis's Gram matrix below
    /// `rel_tol` of its largest (correlation-scaled) are dropped. Returns the Ritz values on
    /// the fitting sample. Only for networks that end in a dense layer after a hidden one,
    /// without a constant first output or a training mask (the new read-out is dense); the
    /// optimiser, Σ̄ and J̄ are left as they were, so training should not go on after it.
    pub fn refit_readout(
        &mut self,
        operator: Operator,
        samples: usize,
        chunk: usize,
        seed: u64,
        rel_tol: f64,
    ) -> Result<Vec<f64>> {
        let spec = self.problem.spec.clone();
        let last = *spec
            .layers()
            .last()
            .ok_or_else(|| SpinError::Config("no layers".into()))?;
        if spec.constant_first || self.mask.is_some() {
            return Err(SpinError::Config(
                "the read-out refit needs a dense last layer after a hidden one, no constant output and no mask".into(),
            ));
        }
        let h = last.inputs;
        let n = spec.outputs;
        let (basis_spec, basis_params) = self.hidden_layer_network(true)?;
        let trained_spec = std::mem::replace(&mut self.problem.spec, basis_spec);
        let trained_params = std::mem::replace(&mut self.params, basis_params);
        let trained_op = std::mem::replace(&mut self.problem.operator, operator);
        let moments = self.moments(samples, chunk, seed, true);
        self.problem.spec = trained_spec;
        self.params = trained_params;
        self.problem.operator = trained_op;
        let m = moments?;
        let f = h + 1;
        let to_m = |v: &[f64]| DMatrix::from_fn(f, f, |i, j| v[i * f + j]);
        let (values, c) =
            super::host::lowest_ritz_pairs(&to_m(&m.sigma), &to_m(&m.pi), n, rel_tol)?;
        for j in 0..n {
            for i in 0..h {
                self.params[last.w(i, j)] = c[(i, j)] as f32;
            }
            self.params[last.b(j)] = c[(h, j)] as f32;
        }
        Ok(values)
    }

    /// Everything needed to resume: reads J̄ back from the GPU.
    pub fn state(&self) -> Result<TrainerState> {
        Ok(TrainerState {
            step: self.step,
            params: self.params.clone(),
            sigma_avg: flat(&self.sigma_avg),
            jbar: self.engine.read_jbar()?,
            opt_m: self.optimizer.m.clone(),
            opt_v: self.optimizer.v.clone(),
            opt_t: self.optimizer.t,
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
        self.lambda_ema = state.lambda_ema.clone();
        self.step = state.step;
        self.rng = ChaCha8Rng::from_seed(state.rng_seed);
        self.rng.set_stream(state.rng_stream);
        self.rng.set_word_pos(state.rng_word_pos);
        Ok(())
    }

    /// The last hidden layer as a network of its own: the same hidden layers, then the identity
    /// on its H units (and, with `constant`, one more unit that is 1). Only for networks that
    /// end in a dense layer after a hidden one.
    pub fn hidden_layer_network(&self, constant: bool) -> Result<(NetworkSpec, Vec<f32>)> {
        let spec = &self.problem.spec;
        let layers = spec.layers();
        let last = *layers
            .last()
            .ok_or_else(|| SpinError::Config("no layers".into()))?;
        if layers.len() < 2 || last.conv().is_some() {
            return Err(SpinError::Config(
                "the read-out refit needs a dense last layer after a hidden one".into(),
            ));
        }
        let h = last.inputs;
        let mut basis_spec = spec.clone();
        basis_spec.outputs = h + constant as usize;
        basis_spec.constant_first = false;
        let basis_last = *basis_spec.layers().last().expect("same layers");
        let mut basis_params = self.params[..last.offset].to_vec();
        basis_params.resize(basis_last.offset + basis_last.len(), 0.0);
        for i in 0..h {
            basis_params[basis_last.w(i, i)] = 1.0;
        }
        if constant {
            basis_params[basis_last.b(h)] = 1.0;
        }
        Ok((basis_spec, basis_params))
    }

    /// The outputs of another network (`spec`, `params`) on this problem's inputs at `points`
    /// (count, dim) → (count, outputs), in pieces that fit the adapter (e.g. the last hidden
    /// layer, [`Trainer::hidden_layer_network`]).
    pub fn outputs_of(
        &self,
        spec: &NetworkSpec,
        params: &[f32],
        points: &[f64],
    ) -> Result<Vec<f64>> {
        let rows = Engine::max_plain_rows(&self.ctx, spec);
        self.evaluate_network(spec, params, points, rows)
    }

    /// Network outputs u at `points` (count, dim) → (count, N), in pieces that fit the
    /// adapter's storage binding limit.
    pub fn outputs(&self, points: &[f64]) -> Result<Vec<f64>> {
        self.outputs_in_pieces(
            points,
            Engine::max_plain_rows(&self.ctx, &self.problem.spec),
        )
    }

    /// [`Trainer::outputs`] evaluated `rows` inputs at a time (the same values).
    pub fn outputs_in_pieces(&self, points: &[f64], rows: usize) -> Result<Vec<f64>> {
        self.evaluate_network(&self.problem.spec, &self.params, points, rows)
    }

    fn evaluate_network(
        &self,
        spec: &NetworkSpec,
        params: &[f32],
        points: &[f64],
        rows: usize,
    ) -> Result<Vec<f64>> {
        let dim = self.problem.sampler.dim().max(1);
        let rows = rows.max(1);
        let mut out = Vec::with_capacity(points.len() / dim * spec.outputs);
        // One evaluation engine kept for the next call of the same shape (an adaptive
        // proposal's refit evaluates the same grid every few hundred steps).
        let mut cached = self.outputs_engine.borrow_mut();
        for piece in points.chunks(rows * dim) {
            let mut batch = Batch::plain(piece, dim)?;
            if spec.radial {
                batch.add_radial_feature();
            }
            let reuse = cached
                .as_ref()
                .is_some_and(|e| e.shape() == batch.shape && e.spec() == spec);
            if !reuse {
                *cached = None;
                *cached = Some(Engine::new(self.ctx.clone(), spec, batch.shape, false)?);
            }
            let engine = cached.as_ref().expect("an engine was just made");
            engine.set_params(params)?;
            engine.set_batch(&batch)?;
            engine.forward_values()?;
            out.extend(engine.read(Probe::U)?.into_iter().map(|v| v as f64));
        }
        Ok(out)
    }

    /// Ordered eigenfunctions v = L⁻¹ u at `points`, with L = chol(`sigma`) ((N, N) row-major).
    pub fn eigenfunctions(&self, points: &[f64], sigma: &[f64]) -> Result<Vec<f64>> {
        let n = self.problem.spec.outputs;
        let u = self.outputs(points)?;
        let l = super::host::cholesky(&DMatrix::from_fn(n, n, |i, j| sigma[i * n + j]))?;
        let count = u.len() / n;
        let umat = DMatrix::from_fn(n, count, |i, c| u[c * n + i]);
        let v = l.solve_lower_triangular(&umat).ok_or(SpinError::Cholesky {
            feature: 0,
            pivot: 0.0,
        })?;
        Ok((0..count)
            .flat_map(|c| (0..n).map(move |i| (c, i)))
            .map(|(c, i)| v[(i, c)])
            .collect())
    }
}
