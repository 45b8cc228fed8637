//! Training hyper-parameters and their checks.

use super::super::engine::SigmaGradient;
use super::super::objective::Objective;
use super::super::optim::OptimizerConfig;
use crate::error::{Result, SpinError};

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
    /// ([`crate::spin::host::shift_gradient`], [`crate::spin::host::lag_shift`]). Without it, Σ̄'s
    /// lag makes features with positive eigenvalues shrink or merge until Σ̄ is singular. No
    /// effect with β = 1. With [`Objective::Nested`] it is the margin of that objective's
    /// shift c at every β (0: [`crate::spin::host::NESTED_MARGIN`]).
    #[serde(default)]
    pub shift: f64,
    /// Weight ρ of the gauge term ([`crate::spin::host::gauge_gradient`]): a restoring force that
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
            Objective::Nested | Objective::NeuralEf => SigmaGradient::Fused,
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
        assert_eq!(path(0.1, Objective::NeuralEf), SigmaGradient::Fused);
    }
}
