//! The divergence guard (maths §16): a run whose held-out curve jumps goes back to its last
//! healthy held-out point and continues at half the learning rate.
//!
//! The held-out curve is the sum S of the held-out eigenvalue estimates (Ritz values on a fixed
//! sample; every experiment minimises it). A healthy run's S falls, with excursions above its
//! best of at most ≈ 6–8 % of the estimates' spread on 2D hydrogen (60 runs measured); a run
//! that loses a state jumps by 10–40 % of the spread and mostly stays there
//! (docs/results/robustness.md). The guard keeps the trainer's state at every held-out point
//! whose rise is within the tolerance and, at the first that is not, restores it and halves the
//! learning rate for the rest of the run.

use crate::error::Result;
use crate::spin::checkpoint::TrainerState;
use crate::spin::Trainer;

/// Held-out points that only set the baseline before the guard can act: early in a run S falls
/// fast and swings (during the warm-up and the first steps at the peak rate, 2D hydrogen runs
/// that ended well rose up to 0.18 spreads at their second or third point and recovered).
pub const ARM_AFTER: usize = 3;
/// Rollbacks at most in one invocation; after them the guard only watches.
pub const MAX_ROLLBACKS: usize = 3;
/// The learning rate's factor at each rollback.
pub const LR_FACTOR: f64 = 0.5;

/// One rollback, for `metrics.json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Rollback {
    /// The held-out point that rose too far.
    pub step: u64,
    /// The step the run went back to.
    pub to_step: u64,
    /// (S − best S) / spread there.
    pub rise: f64,
    /// The learning-rate factor from then on.
    pub lr_scale: f64,
}

/// What the guard decided at a held-out point.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Within the tolerance: the state here is the new fallback.
    Healthy,
    /// Not armed yet and above the tolerance: neither a fallback nor a reason to act.
    Baseline,
    /// Rose too far: go back to the fallback.
    RollBack,
    /// Rose too far, but no fallback or rollback is left: carry on.
    Watch,
}

/// The guard's state over one invocation of the training loop.
#[derive(Debug)]
pub struct Guard {
    tolerance: f64,
    best: f64,
    seen: usize,
    fallback: Option<TrainerState>,
    /// The rollbacks so far.
    pub rollbacks: Vec<Rollback>,
}

/// (S − `best`) / spread for held-out `values`, S their sum and the spread their largest minus
/// smallest (their mean magnitude when they do not spread, 1 when that is 0 too).
pub fn rise(values: &[f64], best: f64) -> f64 {
    let sum: f64 = values.iter().sum();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean_abs = values.iter().map(|v| v.abs()).sum::<f64>() / values.len().max(1) as f64;
    let spread = if hi > lo {
        hi - lo
    } else if mean_abs > 0.0 {
        mean_abs
    } else {
        1.0
    };
    (sum - best) / spread
}

impl Guard {
    /// A guard with this tolerance, or none when it is 0.
    pub fn new(tolerance: f64) -> Option<Self> {
        (tolerance > 0.0).then(|| Self {
            tolerance,
            best: f64::INFINITY,
            seen: 0,
            fallback: None,
            rollbacks: Vec::new(),
        })
    }

    /// The verdict on the held-out `values` (a pure function of the curve so far), recording S.
    /// `agreed` maps the rise to the value every worker uses (rank 0's in a data-parallel run).
    pub fn judge(
        &mut self,
        values: &[f64],
        agreed: impl FnOnce(f64) -> Result<f64>,
    ) -> Result<Verdict> {
        let sum: f64 = values.iter().sum();
        let r = if sum.is_finite() {
            agreed(rise(values, self.best.min(sum)))?
        } else {
            agreed(f64::INFINITY)?
        };
        self.seen += 1;
        if sum.is_finite() {
            self.best = self.best.min(sum);
        }
        if r <= self.tolerance {
            return Ok(Verdict::Healthy);
        }
        if self.seen <= ARM_AFTER {
            return Ok(Verdict::Baseline);
        }
        if self.fallback.is_some() && self.rollbacks.len() < MAX_ROLLBACKS {
            Ok(Verdict::RollBack)
        } else {
            Ok(Verdict::Watch)
        }
    }

    /// Judges the trainer at a held-out point and acts: keeps its state when healthy, restores
    /// the last kept state and scales the learning rate by [`LR_FACTOR`] when it rose too far.
    /// Returns the rollback, if there was one.
    pub fn check(&mut self, trainer: &mut Trainer, values: &[f64]) -> Result<Option<&Rollback>> {
        let step = trainer.step;
        let parallel = trainer.workers().is_parallel();
        let verdict = self.judge(values, |r| if parallel { trainer.agree(r) } else { Ok(r) })?;
        match verdict {
            Verdict::Healthy => {
                self.fallback = Some(trainer.state()?);
                Ok(None)
            }
            Verdict::Baseline | Verdict::Watch => Ok(None),
            Verdict::RollBack => {
                let fallback = self.fallback.as_ref().expect("judged with a fallback");
                trainer.restore(fallback)?;
                trainer.optimizer.lr_scale *= LR_FACTOR;
                self.rollbacks.push(Rollback {
                    step,
                    to_step: fallback.step,
                    rise: rise(values, self.best),
                    lr_scale: trainer.optimizer.lr_scale,
                });
                Ok(self.rollbacks.last())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(g: &mut Guard, values: &[f64]) -> Verdict {
        g.judge(values, Ok).unwrap()
    }

    #[test]
    fn rise_is_in_units_of_the_spread() {
        // Sum −1.5, spread 1: 0.1 above a best of −1.6.
        assert!((rise(&[-1.0, -0.5, 0.0], -1.6) - 0.1).abs() < 1e-12);
        // No spread: the mean magnitude.
        assert!((rise(&[2.0, 2.0], 3.0) - 0.5).abs() < 1e-12);
        assert_eq!(rise(&[0.0, 0.0], -1.0), 1.0);
    }

    #[test]
    fn the_guard_arms_after_three_points_and_rolls_back_on_a_jump() {
        let mut g = Guard::new(0.1).unwrap();
        // Early points set the baseline, however they move; one above the tolerance is no
        // fallback.
        assert_eq!(judge(&mut g, &[-1.0, 0.0]), Verdict::Healthy);
        assert_eq!(judge(&mut g, &[-0.5, 0.0]), Verdict::Baseline);
        assert_eq!(judge(&mut g, &[-0.95, 0.0]), Verdict::Healthy);
        // Improving, or a small excursion: healthy.
        assert_eq!(judge(&mut g, &[-1.2, 0.0]), Verdict::Healthy);
        assert_eq!(judge(&mut g, &[-1.15, 0.0]), Verdict::Healthy);
        // A jump of 0.2 spreads with no fallback kept (judge alone keeps none): watch only.
        assert_eq!(judge(&mut g, &[-0.96, 0.0]), Verdict::Watch);
        g.fallback = Some(dummy_state());
        assert_eq!(judge(&mut g, &[-0.96, 0.0]), Verdict::RollBack);
        // A non-finite curve is a jump too.
        assert_eq!(judge(&mut g, &[f64::NAN, 0.0]), Verdict::RollBack);
        // The best is kept through a jump.
        assert_eq!(judge(&mut g, &[-1.19, 0.0]), Verdict::Healthy);
    }

    #[test]
    fn after_max_rollbacks_the_guard_only_watches() {
        let mut g = Guard::new(0.05).unwrap();
        g.fallback = Some(dummy_state());
        for _ in 0..ARM_AFTER {
            judge(&mut g, &[-1.0, 0.0]);
        }
        for k in 0..MAX_ROLLBACKS {
            assert_eq!(judge(&mut g, &[-0.5, 0.0]), Verdict::RollBack);
            g.rollbacks.push(Rollback {
                step: k as u64,
                to_step: 0,
                rise: 0.5,
                lr_scale: 1.0,
            });
        }
        assert_eq!(judge(&mut g, &[-0.5, 0.0]), Verdict::Watch);
        assert!(Guard::new(0.0).is_none());
    }

    fn dummy_state() -> TrainerState {
        TrainerState {
            step: 0,
            params: Vec::new(),
            sigma_avg: Vec::new(),
            jbar: Vec::new(),
            opt_m: Vec::new(),
            opt_v: Vec::new(),
            opt_t: 0,
            opt_grad_norm: 0.0,
            lambda_ema: Vec::new(),
            rng_seed: [0; 32],
            rng_stream: 0,
            rng_word_pos: 0,
            sampler: Vec::new(),
            final_params: Vec::new(),
            train_seconds: 0.0,
            readout: Vec::new(),
            readout_shape: [0; 3],
            tail_start: None,
            lr_scale: 1.0,
        }
    }
}
