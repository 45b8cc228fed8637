//! Training hyper-parameters and their checks.

use super::super::engine::SigmaGradient;
use super::super::objective::Objective;
use super::super::optim::OptimizerConfig;
use crate::error::{Result, SpinError};

/// The gauge weight ρ of every front end's defaults ([`TrainConfig::gauge`]).
pub const DEFAULT_GAUGE: f64 = 0.0;

/// The bias-correcting tail (maths §14): at β = 1 the masked gradient is a nonlinear function of
/// one minibatch's Σ̂ and Π̂, so its zero is off the eigenfunctions by O(1/batch); over the
/// last `fraction` of the run (by the schedule's progress: steps, or the time limit's share) the
/// Σ term switches to the moving averages Σ̄ and J̄ at rate `beta` (the paper's bias-corrected
/// gradient), started as a running mean so that they hold no single minibatch's noise.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tail {
    /// Share of the run at the end trained with the moving averages (0: off).
    pub fraction: f64,
    /// Their rate β in the tail.
    pub beta: f64,
}

impl Tail {
    /// No tail: β stays as configured to the end (the reference's semantics).
    pub const OFF: Tail = Tail {
        fraction: 0.0,
        beta: 0.01,
    };

    /// The Schrödinger front ends' default (measured in docs/results/robustness.md).
    pub const DEFAULT: Tail = Tail {
        fraction: 0.1,
        beta: 0.1,
    };

    /// The rate of Σ̄ and J̄ at the `k`-th step of the tail (k = 0 first): the running mean
    /// 1/(k + 1) until it falls to `beta`, then `beta`.
    pub fn rate_at(&self, k: u64) -> f64 {
        (1.0 / (k as f64 + 1.0)).max(self.beta)
    }
}

impl Default for Tail {
    fn default() -> Self {
        Tail::OFF
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
    /// The bias-correcting tail ([`Tail`]); it applies to SpIN at β = 1 on sampled minibatches
    /// (an exhaustive batch has no minibatch bias).
    #[serde(default)]
    pub tail: Tail,
    /// Rate ρ of the read-out's whitening (maths §17; 0: off): after every step the outputs
    /// become L⁻¹u with L the Cholesky factor of (1 − ρ) I + ρ Σ̂ — a move along the directions
    /// tr Λ cannot see, exact on every minibatch, that relaxes the features' scale and mixing
    /// toward Σ = I instead of letting them drift. SpIN at β = 1 outside the tail with a dense
    /// last layer and no constant or masked output ([`crate::spin::Trainer::whitens_readout`]).
    #[serde(default)]
    pub whiten_readout: f64,
}

impl TrainConfig {
    /// The Σ term's path this configuration needs: SpIN averages the Σ-Jacobian unless β = 1
    /// ([`SigmaGradient::for_beta`]); the nested objective always uses this minibatch's, so it
    /// takes the fused gradient at any β.
    pub fn sigma_gradient(&self) -> SigmaGradient {
        match self.objective {
            Objective::Spin => SigmaGradient::for_beta(self.beta),
            Objective::Nested | Objective::NestedJoint | Objective::NeuralEf => {
                SigmaGradient::Fused
            }
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
        if !(self.whiten_readout >= 0.0 && self.whiten_readout <= 1.0) {
            return Err(SpinError::Config(format!(
                "the read-out's whitening rate must be in [0, 1], got {}",
                self.whiten_readout
            )));
        }
        if !(self.tail.fraction >= 0.0 && self.tail.fraction < 1.0) {
            return Err(SpinError::Config(format!(
                "the tail's share of the run must be in [0, 1), got {}",
                self.tail.fraction
            )));
        }
        if !(self.tail.beta > 0.0 && self.tail.beta <= 1.0) {
            return Err(SpinError::Config(format!(
                "the tail's β must be in (0, 1], got {}",
                self.tail.beta
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
            tail: Tail::OFF,
            whiten_readout: 0.0,
        };
        let path = |beta, o| config(beta, o).sigma_gradient();
        assert_eq!(path(1.0, Objective::Spin), SigmaGradient::Fused);
        assert_eq!(path(0.1, Objective::Spin), SigmaGradient::Jacobian);
        assert_eq!(path(1.0, Objective::Nested), SigmaGradient::Fused);
        assert_eq!(path(0.1, Objective::Nested), SigmaGradient::Fused);
        assert_eq!(path(0.1, Objective::NeuralEf), SigmaGradient::Fused);
        assert_eq!(path(0.1, Objective::NestedJoint), SigmaGradient::Fused);
    }

    #[test]
    fn the_tail_starts_as_a_running_mean_and_settles_at_its_beta() {
        let tail = Tail {
            fraction: 0.1,
            beta: 0.01,
        };
        assert_eq!(tail.rate_at(0), 1.0);
        assert_eq!(tail.rate_at(1), 0.5);
        assert!((tail.rate_at(9) - 0.1).abs() < 1e-15);
        assert_eq!(tail.rate_at(99), 0.01);
        assert_eq!(tail.rate_at(5000), 0.01);
        // A running mean: after k + 1 steps of rates 1, 1/2, …, 1/(k + 1) every sample has
        // weight 1/(k + 1).
        let mut weights: Vec<f64> = Vec::new();
        for k in 0..50 {
            let r = tail.rate_at(k);
            for w in weights.iter_mut() {
                *w *= 1.0 - r;
            }
            weights.push(r);
        }
        assert!(weights.iter().all(|w| (w - 1.0 / 50.0).abs() < 1e-12));
    }
}
