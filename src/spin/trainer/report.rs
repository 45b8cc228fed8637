//! What a step and an evaluation report, and where a step's time goes.

use super::super::parallel::Traffic;

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
    /// chunks ([`crate::spin::host::ritz_std_errors`]); empty for an exhaustive (exact) evaluation.
    pub eigenvalue_std_errors: Vec<f64>,
    /// Σ (N, N) row-major.
    #[serde(skip)]
    pub sigma: Vec<f64>,
    /// Π (N, N) row-major.
    #[serde(skip)]
    pub pi: Vec<f64>,
}

/// Wall time spent in each phase of [`crate::spin::Trainer::step`], summed over steps (for `spin bench`).
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

/// The pooled quantities of one step (maths §10), kept by [`crate::spin::Trainer::step`].
#[derive(Clone, Debug)]
pub struct StepTrace {
    /// Σ̂ (N, N) row-major, the mean over the global batch.
    pub sigma: Vec<f64>,
    /// Π̂ (N, N) row-major.
    pub pi: Vec<f64>,
    /// The gradient, the mean over the global batch.
    pub gradient: Vec<f32>,
}
