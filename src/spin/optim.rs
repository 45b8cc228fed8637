//! Optimisers (maths §6) and learning-rate schedules.

use crate::error::{Result, SpinError};

/// Which optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain gradient descent.
    Sgd,
    /// RMSProp with TF1 semantics (ms starts at 1, ε = 1e-10 inside the root).
    Rmsprop,
    /// Adam.
    Adam,
}

impl std::str::FromStr for OptimizerKind {
    type Err = SpinError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sgd" => Ok(Self::Sgd),
            "rmsprop" => Ok(Self::Rmsprop),
            "adam" => Ok(Self::Adam),
            _ => Err(SpinError::Config(format!(
                "unknown optimizer `{s}` (expected sgd, rmsprop or adam)"
            ))),
        }
    }
}

/// Learning-rate schedule over the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// η.
    Constant,
    /// η · ½(1 + cos(π t/T)).
    Cosine,
    /// η / t (t from 1), the reference's stochastic matrix test.
    Inverse,
}

impl std::str::FromStr for Schedule {
    type Err = SpinError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "constant" => Ok(Self::Constant),
            "cosine" => Ok(Self::Cosine),
            "inverse" => Ok(Self::Inverse),
            _ => Err(SpinError::Config(format!(
                "unknown schedule `{s}` (expected constant, cosine or inverse)"
            ))),
        }
    }
}

impl Schedule {
    /// Learning rate at step `t` (0-based) of `total`.
    pub fn rate(self, base: f64, t: u64, total: u64) -> f64 {
        self.rate_with_floor(base, t, total, 0.0)
    }

    /// Learning rate at step `t` of `total` when the run is at least a fraction `floor` done
    /// by another measure (e.g. the time limit): the cosine follows the larger of the two.
    pub fn rate_with_floor(self, base: f64, t: u64, total: u64, floor: f64) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Cosine => {
                let frac = (t as f64 / total.max(1) as f64).max(floor).min(1.0);
                base * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos())
            }
            Schedule::Inverse => base / (t + 1) as f64,
        }
    }
}

/// Optimiser hyper-parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimizerConfig {
    /// Which optimiser.
    pub kind: OptimizerKind,
    /// Base learning rate η.
    pub lr: f64,
    /// RMSProp decay ρ (reference 0.999).
    pub rho: f64,
    /// Adam β₁.
    pub beta1: f64,
    /// Adam β₂.
    pub beta2: f64,
    /// Adam ε.
    pub eps: f64,
    /// Schedule.
    pub schedule: Schedule,
    /// Linear warm-up over this many first updates (0: none): the rate ramps from η/warmup to η,
    /// then the schedule applies. Adam's early moment estimates are poor; large early steps can
    /// collapse Σ̄.
    #[serde(default)]
    pub warmup: u64,
    /// Gradient-norm clipping (0: off): from the 100th update on, a gradient whose norm
    /// exceeds this multiple of the running mean of earlier (clipped) norms is scaled down to
    /// it, so one minibatch with a nearly singular Σ̂ cannot move every parameter at once.
    #[serde(default)]
    pub clip: f64,
    /// The divergence guard's tolerance (0: off; maths §16): when the run's held-out curve —
    /// the sum of its held-out eigenvalue estimates — rises more than this many times their
    /// spread above its best, the run goes back to its last healthy held-out point and halves
    /// this rate ([`Optimizer::lr_scale`]). It acts in the training loop
    /// (`experiments::guard`); runs without a held-out curve are not guarded.
    #[serde(default)]
    pub guard: f64,
}

impl OptimizerConfig {
    /// Defaults for `kind` with learning rate `lr`.
    pub fn new(kind: OptimizerKind, lr: f64) -> Self {
        Self {
            kind,
            lr,
            rho: 0.999,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            schedule: Schedule::Constant,
            warmup: 0,
            clip: 0.0,
            guard: 0.0,
        }
    }
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        let ok = self.lr.is_finite()
            && self.lr > 0.0
            && (0.0..1.0).contains(&self.rho)
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.clip.is_finite()
            && (self.clip == 0.0 || self.clip >= 1.0)
            && self.guard.is_finite()
            && self.guard >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(SpinError::Config(format!(
                "optimizer settings out of range (lr {} must be > 0, ρ {}, β₁ {}, β₂ {} in [0, 1), \
                 clip {} 0 or ≥ 1, guard {} ≥ 0)",
                self.lr, self.rho, self.beta1, self.beta2, self.clip, self.guard
            )))
        }
    }
}

/// Optimiser state: the parameters' first and second moments.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Optimizer {
    /// Hyper-parameters.
    pub config: OptimizerConfig,
    /// First moment (Adam) — empty otherwise.
    pub m: Vec<f64>,
    /// Second moment (RMSProp's ms, Adam's v) — empty for SGD.
    pub v: Vec<f64>,
    /// Updates applied.
    pub t: u64,
    /// Running mean (rate 0.01, bias-corrected by `t`) of the clipped gradient norms, for
    /// `clip`.
    #[serde(default)]
    pub grad_norm: f64,
    /// Updates whose gradient was clipped.
    #[serde(default)]
    pub clipped: u64,
    /// The schedule's progress is at least this fraction (set from the time limit; not saved).
    #[serde(skip)]
    pub progress_floor: f64,
    /// Every step's learning rate is multiplied by this (1 unless the divergence guard rolled
    /// the run back: each rollback halves it).
    #[serde(default = "one")]
    pub lr_scale: f64,
}

fn one() -> f64 {
    1.0
}

impl Optimizer {
    /// Fresh state for `n` parameters.
    pub fn new(config: OptimizerConfig, n: usize) -> Self {
        let (m, v) = match config.kind {
            OptimizerKind::Sgd => (Vec::new(), Vec::new()),
            // TF1's RMSProp starts the mean square at 1.
            OptimizerKind::Rmsprop => (Vec::new(), vec![1.0; n]),
            OptimizerKind::Adam => (vec![0.0; n], vec![0.0; n]),
        };
        Self {
            config,
            m,
            v,
            t: 0,
            grad_norm: 0.0,
            clipped: 0,
            progress_floor: 0.0,
            lr_scale: 1.0,
        }
    }

    /// The factor (≤ 1) that `clip` scales this gradient by; updates the running norm.
    fn clip_factor(&mut self, grad: &[f32]) -> f64 {
        const RATE: f64 = 0.01;
        const FROM: u64 = 100;
        if self.config.clip <= 0.0 {
            return 1.0;
        }
        let norm = grad
            .iter()
            .map(|&g| g as f64 * g as f64)
            .sum::<f64>()
            .sqrt();
        // The running mean after `t` earlier updates, bias-corrected.
        let mean = self.grad_norm / (1.0 - (1.0 - RATE).powi(self.t.min(1 << 20) as i32));
        let limit = self.config.clip * mean;
        let factor = if self.t >= FROM && norm > limit && norm.is_finite() {
            self.clipped += 1;
            limit / norm
        } else {
            1.0
        };
        self.grad_norm = (1.0 - RATE) * self.grad_norm + RATE * norm * factor;
        factor
    }

    /// θ ← θ − update(g) at step t of `total` (descent).
    pub fn step(&mut self, params: &mut [f32], grad: &[f32], total: u64) {
        let c = &self.config;
        let ramp = if self.t < c.warmup {
            (self.t + 1) as f64 / c.warmup as f64
        } else {
            1.0
        };
        let lr = ramp
            * c.schedule
                .rate_with_floor(c.lr, self.t, total, self.progress_floor)
            * self.lr_scale;
        let scale = self.clip_factor(grad);
        let c = &self.config;
        self.t += 1;
        match c.kind {
            OptimizerKind::Sgd => {
                for (p, g) in params.iter_mut().zip(grad) {
                    *p -= (lr * scale * *g as f64) as f32;
                }
            }
            OptimizerKind::Rmsprop => {
                for ((p, g), ms) in params.iter_mut().zip(grad).zip(self.v.iter_mut()) {
                    let g = scale * *g as f64;
                    *ms = c.rho * *ms + (1.0 - c.rho) * g * g;
                    *p -= (lr * g / (*ms + 1e-10).sqrt()) as f32;
                }
            }
            OptimizerKind::Adam => {
                let t = self.t as i32;
                let bc1 = 1.0 - c.beta1.powi(t);
                let bc2 = 1.0 - c.beta2.powi(t);
                for (i, (p, g)) in params.iter_mut().zip(grad).enumerate() {
                    let g = scale * *g as f64;
                    self.m[i] = c.beta1 * self.m[i] + (1.0 - c.beta1) * g;
                    self.v[i] = c.beta2 * self.v[i] + (1.0 - c.beta2) * g * g;
                    let mh = self.m[i] / bc1;
                    let vh = self.v[i] / bc2;
                    *p -= (lr * mh / (vh.sqrt() + c.eps)) as f32;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!((*x as f64 - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    /// One RMSProp step with TF1 semantics: ms starts at 1, ms ← ρ ms + (1−ρ) g²,
    /// θ ← θ − η g / √(ms + 1e-10). Values worked out by hand:
    /// ms = 0.999 + 0.001·0.25 = 0.99925, θ₀ = 1 − 0.01·0.5/√0.99925 = 0.99499812…;
    /// ms = 0.999 + 0.001·9 = 1.008, θ₁ = −2 + 0.01·3/√1.008 = −1.97011928…
    #[test]
    fn rmsprop_step_matches_tf1() {
        let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Rmsprop, 0.01), 2);
        let mut p = [1.0f32, -2.0];
        opt.step(&mut p, &[0.5, -3.0], 100);
        close(&p, &[0.994_998_123_9, -1.970_119_284_8]);
        assert!((opt.v[0] - 0.99925).abs() < 1e-12 && (opt.v[1] - 1.008).abs() < 1e-12);
    }

    /// Two Adam steps (β₁ 0.9, β₂ 0.999, ε 1e-8, bias-corrected). Step 1 moves each θ by
    /// η·sign(g); step 2 with g = (−1, 1): m = (−0.055, −0.17), v = (0.00124975, 0.009991),
    /// θ ← θ − η (m/0.19)/(√(v/0.001999) + ε).
    #[test]
    fn adam_steps_match_hand_values() {
        let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam, 0.01), 2);
        let mut p = [1.0f32, -2.0];
        opt.step(&mut p, &[0.5, -3.0], 100);
        close(&p, &[0.99, -1.99]);
        opt.step(&mut p, &[-1.0, 1.0], 100);
        close(&p, &[0.993_661_035_4, -1.985_997_814_3]);
        assert_eq!(opt.t, 2);
    }

    /// Clipping: nothing before the 100th update or below the limit; a spike 100× the
    /// running norm is scaled to `clip` times it; off (0) changes nothing.
    #[test]
    fn clipping_scales_a_spike_to_the_running_norm() {
        let mut cfg = OptimizerConfig::new(OptimizerKind::Sgd, 1.0);
        cfg.clip = 3.0;
        let mut opt = Optimizer::new(cfg.clone(), 2);
        let mut p = [0.0f32; 2];
        for _ in 0..150 {
            opt.step(&mut p, &[0.6, 0.8], 1000);
        }
        assert_eq!(opt.clipped, 0);
        assert!(
            (p[0] + 90.0).abs() < 1e-3 && (p[1] + 120.0).abs() < 1e-3,
            "{p:?}"
        );
        let before = p;
        opt.step(&mut p, &[60.0, 80.0], 1000);
        assert_eq!(opt.clipped, 1);
        // The running norm is 1, so the step has norm 3 along the spike's direction.
        let d = [(before[0] - p[0]) as f64, (before[1] - p[1]) as f64];
        assert!(
            (d[0] - 1.8).abs() < 1e-4 && (d[1] - 2.4).abs() < 1e-4,
            "{d:?}"
        );
        // Early spikes are not clipped; clip 0 never clips.
        let mut early = Optimizer::new(cfg.clone(), 2);
        let mut q = [0.0f32; 2];
        early.step(&mut q, &[0.6, 0.8], 1000);
        early.step(&mut q, &[60.0, 80.0], 1000);
        assert_eq!(early.clipped, 0);
        cfg.clip = 0.0;
        let mut off = Optimizer::new(cfg.clone(), 2);
        for _ in 0..150 {
            off.step(&mut q, &[0.6, 0.8], 1000);
        }
        off.step(&mut q, &[60.0, 80.0], 1000);
        assert_eq!(off.clipped, 0);
        cfg.clip = 0.5;
        assert!(cfg.validate().is_err());
    }

    /// SGD under the schedules: constant η, cosine η·½(1 + cos πt/T), inverse η/(t+1).
    #[test]
    fn sgd_and_schedules() {
        let mut cfg = OptimizerConfig::new(OptimizerKind::Sgd, 0.1);
        let mut opt = Optimizer::new(cfg.clone(), 1);
        let mut p = [1.0f32];
        opt.step(&mut p, &[2.0], 10);
        close(&p, &[0.8]);
        assert!((Schedule::Cosine.rate(1.0, 5, 10) - 0.5).abs() < 1e-12);
        assert!(Schedule::Cosine.rate(1.0, 10, 10).abs() < 1e-12);
        assert!((Schedule::Inverse.rate(1.0, 3, 10) - 0.25).abs() < 1e-12);
        // A time limit half spent puts the cosine at least half-way.
        assert!((Schedule::Cosine.rate_with_floor(1.0, 1, 100, 0.5) - 0.5).abs() < 1e-12);
        assert!((Schedule::Cosine.rate_with_floor(1.0, 50, 100, 0.1) - 0.5).abs() < 1e-12);
        // Warm-up: η/4, 2η/4, … then the schedule.
        cfg.warmup = 4;
        let mut opt = Optimizer::new(cfg.clone(), 1);
        let mut p = [0.0f32];
        opt.step(&mut p, &[1.0], 100);
        close(&p, &[-0.025]);
        opt.step(&mut p, &[1.0], 100);
        close(&p, &[-0.075]);
        cfg.lr = -1.0;
        assert!(cfg.validate().is_err());
    }
}
