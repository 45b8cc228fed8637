//! One training step (maths §2, §13): draw and upload a minibatch, submit A's Σ̂ and Π̂, the
//! host's matrices, submit B's gradient, the mask and the optimiser.

use std::time::Instant;

use nalgebra::DMatrix;

use super::super::host::{
    add_gauge, condition, correlation_condition, flat, joint_nested_matrices,
    joint_nested_preconditioner, lag_shift, nested_matrices, nested_preconditioner,
    neuralef_matrices, shift_gradient, step_matrices, StepMatrices, NESTED_GAP_FLOOR,
    NESTED_MARGIN,
};
use super::super::objective::Objective;
use super::super::parallel::Traffic;
use super::{
    max_weight_share, StepHealth, StepReport, StepTrace, Trainer, MAX_REDRAWS, REPLICA_CHECK_EVERY,
};
use crate::error::{Result, SpinError};

/// f32 statistics as f64.
fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Adds the time since `clock` to `slot` and restarts the clock (the step's phase timer).
fn lap(clock: &mut Instant, slot: &mut f64) {
    let now = Instant::now();
    *slot += (now - *clock).as_secs_f64();
    *clock = now;
}

/// A minibatch on which the step is defined: its pooled Σ̂ and Π̂, the new Σ̄ and SpIN's
/// matrices from them.
struct Drawn {
    /// Σ̂ (the workers' mean).
    sigma: DMatrix<f64>,
    /// Σ̂ and Π̂ row-major, for [`StepTrace`].
    sigma_hat: Vec<f64>,
    pi_hat: Vec<f64>,
    /// (1 − β) Σ̄ + β Σ̂.
    sigma_avg: DMatrix<f64>,
    /// Π̂.
    pi: DMatrix<f64>,
    /// Λ, G_Π and G_Σ of SpIN from Σ̄ and Π̂ ([`step_matrices`]).
    m: StepMatrices,
}

impl Trainer {
    /// Uploads the next batch: a fresh sample, or the exhaustive batch (uploaded once, since
    /// evaluation uses engines of its own and never overwrites it).
    fn upload_next_batch(&mut self) -> Result<()> {
        let t = Instant::now();
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
                let built = Instant::now();
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
        let step = self.step + 1;
        let traffic_before = self.workers.traffic.clone();
        // θ is uploaded once; a degenerate minibatch is redrawn against the same θ.
        self.enter_tail_if_due()?;
        let mut clock = Instant::now();
        self.engine.set_params(&self.params)?;
        lap(&mut clock, &mut self.phase_times.upload);
        let Drawn {
            sigma,
            sigma_hat,
            pi_hat,
            sigma_avg,
            pi,
            mut m,
        } = self.draw_defined_batch(step, &mut clock)?;
        let (loss, gauge_share, jbar_rate) = self.objective_matrices(&mut m, &sigma, &pi);
        if !loss.is_finite() {
            return Err(SpinError::NonFinite {
                what: format!("the loss ({})", self.config.objective.name()),
                step,
            });
        }
        lap(&mut clock, &mut self.phase_times.host_matrices);
        let trace = StepTrace {
            sigma: sigma_hat,
            pi: pi_hat,
            gradient: Vec::new(),
        };
        let grad = self.masked_gradient(&m, jbar_rate, trace, step, &mut clock)?;
        let grad_norm = grad
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        self.optimizer
            .step(&mut self.params, &grad, self.config.steps);
        self.sigma_avg = sigma_avg;
        if self.whitens_readout() {
            self.whiten_readout(&sigma, self.config.whiten_readout);
        }
        self.jbar_fresh = false;
        let health = StepHealth {
            sigma_trace: sigma.trace(),
            sigma_hat_condition: condition(&sigma),
            max_weight_share: if self.fixed_batch.is_some() {
                0.0
            } else {
                self.last_weight_share
            },
            grad_norm,
            gauge_share,
        };
        let report = self.record_step(step, loss, &m, health);
        if self.workers.is_parallel() && step.is_multiple_of(REPLICA_CHECK_EVERY) {
            self.workers.check_same(&self.params, step)?;
        }
        lap(&mut clock, &mut self.phase_times.optimizer);
        self.count_traffic(&traffic_before);
        Ok(report)
    }

    /// Draws and uploads minibatches until Σ̄ has a Cholesky factor: at β = 1 Σ̄ is this
    /// minibatch's Σ̂ alone, and a minibatch on which the features are linearly dependent (e.g.
    /// frames that do not change) defines no step, so it is set aside and another drawn; the
    /// network itself has collapsed only when batch after batch is.
    fn draw_defined_batch(&mut self, step: u64, clock: &mut Instant) -> Result<Drawn> {
        let n = self.problem.spec.outputs;
        let beta = self.beta_now();
        let mut redraws = 0;
        loop {
            self.upload_next_batch()?;
            let (sigma_hat, pi_hat) = self.pooled_statistics(step, clock)?;
            let sigma = DMatrix::from_fn(n, n, |i, j| sigma_hat[i * n + j]);
            let sigma_avg = &self.sigma_avg * (1.0 - beta) + &sigma * beta;
            let pi = DMatrix::from_fn(n, n, |i, j| pi_hat[i * n + j]);
            let matrices = step_matrices(&sigma_avg, &pi);
            lap(clock, &mut self.phase_times.host_matrices);
            match matrices {
                Ok(m) => {
                    return Ok(Drawn {
                        sigma,
                        sigma_hat,
                        pi_hat,
                        sigma_avg,
                        pi,
                        m,
                    })
                }
                Err(SpinError::Cholesky { .. })
                    if beta >= 1.0 && self.fixed_batch.is_none() && redraws < MAX_REDRAWS =>
                {
                    redraws += 1;
                    self.degenerate_batches += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Submit A on the uploaded batch: Σ̂ and Π̂ ((N, N) row-major, f64), the workers' means.
    fn pooled_statistics(
        &mut self,
        step: u64,
        clock: &mut Instant,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let n = self.problem.spec.outputs;
        *clock = Instant::now();
        let (sigma, pi) = self.engine.statistics()?;
        let (mut sigma, mut pi) = (widen(&sigma), widen(&pi));
        if self.workers.is_parallel() {
            let mut both = [sigma, pi].concat();
            self.workers.mean_f64(&mut both)?;
            pi = both.split_off(n * n);
            sigma = both;
        }
        lap(clock, &mut self.phase_times.statistics);
        if sigma.iter().chain(&pi).any(|v| !v.is_finite()) {
            return Err(SpinError::NonFinite {
                what: "Σ̂/Π̂ (network outputs)".into(),
                step,
            });
        }
        Ok((sigma, pi))
    }

    /// Submit B with the objective's matrices: the workers' mean gradient (kept in
    /// `last_step` with `trace`'s Σ̂ and Π̂), masked; a non-finite one is an error that puts J̄
    /// back.
    fn masked_gradient(
        &mut self,
        m: &StepMatrices,
        jbar_rate: f64,
        mut trace: StepTrace,
        step: u64,
        clock: &mut Instant,
    ) -> Result<Vec<f32>> {
        let mut grad = self
            .engine
            .gradient(&flat(&m.g_pi), &flat(&m.g_sigma), jbar_rate)?;
        self.workers.mean_f32(&mut grad)?;
        trace.gradient = grad.clone();
        self.last_step = Some(trace);
        lap(clock, &mut self.phase_times.gradient);
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
        Ok(grad)
    }

    /// Counts the step as done: the eigenvalue EMA, the step number, and what it reports.
    fn record_step(
        &mut self,
        step: u64,
        loss: f64,
        m: &StepMatrices,
        health: StepHealth,
    ) -> StepReport {
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
        StepReport {
            step,
            loss,
            eigenvalues: eig,
            eigenvalues_ema: self.lambda_ema.clone(),
            sigma_diag: self.sigma_avg.diagonal().iter().copied().collect(),
            sigma_condition: correlation_condition(&self.sigma_avg),
            health,
        }
    }

    /// Adds the step and the all-reduce traffic since `before` to the phase times.
    fn count_traffic(&mut self, before: &Traffic) {
        self.phase_times.steps += 1;
        let (now, sums) = (&self.workers.traffic, &mut self.phase_times.allreduce);
        sums.calls += now.calls - before.calls;
        sums.bytes += now.bytes - before.bytes;
        sums.seconds += now.seconds - before.seconds;
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
        let beta = self.beta_now();
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
            Objective::Nested | Objective::NestedJoint => {
                let (estimates, c) = self.successor_shift_for(m);
                // The quadratic term's coefficient from samples this minibatch did not draw
                // (unbiased); on the very first step there are none yet.
                let coef = if self.step == 0 {
                    sigma
                } else {
                    &self.sigma_avg
                };
                let (loss, g_pi, g_sigma) = if self.config.objective == Objective::Nested {
                    let precondition = nested_preconditioner(&estimates, c, NESTED_GAP_FLOOR);
                    nested_matrices(coef, sigma, pi, c, &precondition)
                } else {
                    let precondition = joint_nested_preconditioner(&estimates, c, NESTED_GAP_FLOOR);
                    joint_nested_matrices(coef, sigma, pi, c, &precondition)
                };
                (m.g_pi, m.g_sigma) = (g_pi, g_sigma);
                self.last_shift = c;
                (loss, 0.0, 1.0)
            }
            Objective::NeuralEf => {
                let (_, c) = self.successor_shift_for(m);
                let (loss, g_pi, g_sigma) = neuralef_matrices(sigma, pi, c);
                (m.g_pi, m.g_sigma) = (g_pi, g_sigma);
                self.last_shift = c;
                (loss, 0.0, 1.0)
            }
        }
    }

    /// The successors' eigenvalue estimates (the EMA of diag Λ, or this step's before there is
    /// one) and their shift c = max(0, λ_max + margin × spread), the margin the configured
    /// `shift` when set, else [`NESTED_MARGIN`].
    fn successor_shift_for(&self, m: &StepMatrices) -> (Vec<f64>, f64) {
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
        (estimates, c)
    }

    /// The successor objective's shift c of the last step (T = cI − K; 0 for SpIN).
    pub fn successor_shift(&self) -> f64 {
        self.last_shift
    }

    /// The objective and its own estimates, for metrics.json: for [`Objective::Nested`] (and
    /// [`Objective::NestedJoint`]) the last
    /// step's shift c and c − Σ̄_ll, each feature's eigenvalue as the nested objective's scale
    /// says it (Σ̄ of the last step: at β = 1 one minibatch, so noisy; the reported eigenvalues
    /// are the evaluation's Ritz values); for [`Objective::NeuralEf`] the shift and each
    /// feature's Rayleigh quotient Π̂_ll / Σ̂_ll on the last minibatch.
    pub fn objective_metrics(&self) -> serde_json::Value {
        match self.config.objective {
            Objective::Spin => serde_json::json!({
                "name": "spin",
                "tail": {
                    "fraction": if self.has_tail() { self.config.tail.fraction } else { 0.0 },
                    "beta": self.config.tail.beta,
                    "start_step": self.tail_start,
                },
            }),
            Objective::Nested | Objective::NestedJoint => {
                let c = self.last_shift;
                let estimates: Vec<f64> = self.sigma_avg.diagonal().iter().map(|s| c - s).collect();
                serde_json::json!({
                    "name": self.config.objective.name(),
                    "shift": c,
                    "estimates": estimates,
                })
            }
            Objective::NeuralEf => {
                // Each feature's Rayleigh quotient on the last minibatch (its Σ̂ and Π̂, kept in
                // `last_step`).
                let estimates: Vec<f64> = self.last_step.as_ref().map_or(Vec::new(), |t| {
                    let n = self.problem.spec.outputs;
                    (0..n)
                        .map(|l| t.pi[l * n + l] / t.sigma[l * n + l])
                        .collect()
                });
                serde_json::json!({
                    "name": "neuralef",
                    "shift": self.last_shift,
                    "estimates": estimates,
                })
            }
        }
    }
}
