//! Optimisers (SPEC §6) and learning-rate schedules.

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
        match self {
            Schedule::Constant => base,
            Schedule::Cosine => {
                let frac = (t as f64 / total.max(1) as f64).min(1.0);
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
        }
    }
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        let ok = self.lr.is_finite()
            && self.lr > 0.0
            && (0.0..1.0).contains(&self.rho)
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2);
        if ok {
            Ok(())
        } else {
            Err(SpinError::Config(format!(
                "optimizer settings out of range (lr {} must be > 0, ρ {}, β₁ {}, β₂ {} in [0, 1))",
                self.lr, self.rho, self.beta1, self.beta2
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
        Self { config, m, v, t: 0 }
    }

    /// θ ← θ − update(g) at step t of `total` (descent).
    pub fn step(&mut self, params: &mut [f32], grad: &[f32], total: u64) {
        let c = &self.config;
        let lr = c.schedule.rate(c.lr, self.t, total);
        self.t += 1;
        match c.kind {
            OptimizerKind::Sgd => {
                for (p, g) in params.iter_mut().zip(grad) {
                    *p -= (lr * *g as f64) as f32;
                }
            }
            OptimizerKind::Rmsprop => {
                for ((p, g), ms) in params.iter_mut().zip(grad).zip(self.v.iter_mut()) {
                    let g = *g as f64;
                    *ms = c.rho * *ms + (1.0 - c.rho) * g * g;
                    *p -= (lr * g / (*ms + 1e-10).sqrt()) as f32;
                }
            }
            OptimizerKind::Adam => {
                let t = self.t as i32;
                let bc1 = 1.0 - c.beta1.powi(t);
                let bc2 = 1.0 - c.beta2.powi(t);
                for (i, (p, g)) in params.iter_mut().zip(grad).enumerate() {
                    let g = *g as f64;
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
