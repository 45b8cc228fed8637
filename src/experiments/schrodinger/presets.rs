//! The starting points of a Schrödinger run: the generic defaults for any potential and
//! `spin hydrogen`'s presets.

use super::config::*;
use crate::error::Result;

/// Named starting points for `spin hydrogen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Our best defaults for the 2D hydrogen atom: [`SchrodingerConfig::generic`]'s (weak
    /// form, the radial input feature, the adaptive proposal, 3×64, batch 128, Adam 3e-3 with a
    /// warm-up and a cosine schedule, β 1, the read-out refit) over 60 000 steps or 30 minutes.
    Best,
    /// The reference code's flag defaults.
    Reference,
}

/// `spin schrodinger`'s gradient clipping: a gradient whose norm exceeds this multiple of the
/// running mean is scaled down to it (docs/results/robustness.md: it kept `spin hydrogen`'s seed
/// 0 from the early blow-up of the scale that lost its states).
pub const DEFAULT_CLIP: f64 = 2.0;

/// `spin schrodinger`'s read-out whitening rate (maths §17): after every step the outputs move
/// toward Σ = I along the directions tr Λ cannot see. With it, `spin hydrogen --time-limit 300`
/// kept cond Σ̂ at a median of 3 where it sat at 10²–10³ and a run lost its states at a blow-up
/// (docs/results/robustness.md).
pub const DEFAULT_WHITEN: f64 = 0.1;

/// `spin schrodinger`'s divergence guard (maths §16): off. `--guard 0.1` rescued 2D hydrogen's
/// reproducible failure (7.32 % → 0.122 %), but on the suite it also acted on swings that
/// recover by themselves, and the halved rate cost a short run more than the swing did
/// (hydrogen-2d seed 0 at 150 s: 0.469 % with it, 0.076 % without; docs/results/robustness.md).
pub const DEFAULT_GUARD: f64 = 0.0;

impl std::str::FromStr for Preset {
    type Err = crate::error::SpinError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "best" => Ok(Self::Best),
            "reference" => Ok(Self::Reference),
            _ => Err(crate::error::SpinError::Config(format!(
                "unknown preset `{s}` (expected best or reference)"
            ))),
        }
    }
}

impl SchrodingerConfig {
    /// The defaults of `spin schrodinger`, for any potential: the weak form, the adaptive
    /// proposal (box-relative scales), the radial input feature for the Coulomb potential only,
    /// 3×64, N = 9, batch 128, Adam 3e-3 (after a 500-step warm-up) with a cosine schedule over
    /// 20 000 steps (or over the time limit, if one is set and comes first), β 1; on the 2D
    /// hydrogen atom, box 50.
    pub fn generic() -> Self {
        use crate::spin::{OptimizerConfig, OptimizerKind, Schedule, TrainConfig};
        let mut optimizer = OptimizerConfig::new(OptimizerKind::Adam, 3e-3);
        optimizer.schedule = Schedule::Cosine;
        optimizer.warmup = 500;
        optimizer.clip = DEFAULT_CLIP;
        optimizer.guard = DEFAULT_GUARD;
        Self {
            dim: 2,
            particles: 1,
            exchange: ExchangeKind::None,
            potential: "hydrogen".into(),
            charge: 1.0,
            kinetic: 1.0,
            half_width: 50.0,
            envelope: true,
            laplacian: LaplacianKind::Weak,
            eps: 0.1,
            sampler: SamplerKind::Adaptive,
            proposal_scales: Vec::new(),
            hidden: vec![64, 64, 64],
            neig: 9,
            train: TrainConfig {
                beta: 1.0,
                batch: 128,
                steps: 20_000,
                seed: 0,
                optimizer,
                eigen_ema: 0.01,
                exhaustive: false,
                shift: 0.05,
                gauge: crate::spin::trainer::DEFAULT_GAUGE,
                objective: Default::default(),
                tail: crate::spin::trainer::Tail::DEFAULT,
                whiten_readout: DEFAULT_WHITEN,
            },
            time_limit: None,
            checkpoint_every: 1000,
            eval_samples: 1 << 20,
            plot_extent: 25.0,
            input_scale: 0.0,
            blocks: 0,
            radial: true,
            particle_features: false,
            separate: false,
            adapt_every: default_adapt_every(),
            eval_target: default_eval_target(),
            eval_max_samples: default_eval_max_samples(),
            eval_laplacian: None,
            readout_refit: true,
            heldout_every: default_heldout_every(),
            rotate_every: 0,
        }
    }

    /// Sets the potential and the default that goes with it: the radial input feature ‖x‖
    /// only for the built-in Coulomb potential `hydrogen` (its cusp at the nucleus).
    pub fn set_potential(&mut self, potential: &str) {
        self.potential = potential.to_string();
        self.radial = potential == "hydrogen";
        if let Some((d, half_width)) = two_electron_model(potential) {
            // Two electrons around a nucleus of charge 2 in atomic units, H = −½(∇₀² + ∇₁²) + V.
            self.particles = 2;
            self.dim = 2 * d;
            self.charge = 2.0;
            self.kinetic = 0.5;
            self.half_width = half_width;
            if self.dim > 3 {
                self.sampler = SamplerKind::Importance;
            }
            // Helium: the exact Laplacian (⟨u, Hu⟩, whose variance vanishes at an eigenfunction)
            // and the distances |pᵢ|, |p₀ − p₁| as inputs (the Coulomb cusps become linear in
            // them); measured against the weak form without them in docs/results/particles.md.
            if potential == "helium" {
                self.laplacian = LaplacianKind::Exact;
                self.particle_features = true;
            }
        }
    }

    /// The 2D hydrogen atom with `preset`'s settings.
    pub fn hydrogen(preset: Preset) -> Self {
        use crate::spin::{OptimizerConfig, OptimizerKind};
        let mut c = Self::generic();
        match preset {
            // `spin schrodinger`'s defaults, run longer: with the read-out refit they beat the
            // earlier hydrogen-specific recipe (β 0.5, fixed importance proposal, Adam 1e-3
            // without warm-up; docs/results/schrodinger.md).
            Preset::Best => {
                c.train.steps = 60_000;
                c.time_limit = Some(1800.0);
            }
            Preset::Reference => {
                c.input_scale = 1.0;
                c.laplacian = LaplacianKind::Exact;
                c.sampler = SamplerKind::Uniform;
                c.radial = false;
                c.train.optimizer = OptimizerConfig::new(OptimizerKind::Rmsprop, 1e-5);
                c.train.beta = 0.01;
                c.train.shift = 0.0;
                c.train.gauge = 0.0;
                c.train.tail = crate::spin::trainer::Tail::OFF;
                c.train.whiten_readout = 0.0;
                c.train.batch = 128;
                c.train.steps = 1_000_000;
                c.readout_refit = false;
            }
        }
        c
    }
}
