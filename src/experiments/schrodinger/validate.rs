//! A Schrödinger configuration's checks: what the trainer does not check, with the flag to change
//! in each message.

use super::config::{
    two_electron_model, ExchangeKind, LaplacianKind, SamplerKind, SchrodingerConfig,
    MAX_CONFIGURATION_DIM,
};
use crate::error::Result;

impl SchrodingerConfig {
    /// Checks the values that the trainer does not.
    pub fn validate(&self) -> Result<()> {
        self.validate_particles()?;
        self.validate_values()?;
        self.validate_combinations()?;
        self.train.validate()
    }

    /// The configuration space: particles, dimensions, and what each particle option needs.
    fn validate_particles(&self) -> Result<()> {
        use crate::error::SpinError;
        if self.particles == 0 || !self.dim.is_multiple_of(self.particles) {
            return Err(SpinError::Config(format!(
                "--particles must be at least 1, got {}",
                self.particles
            )));
        }
        let max_dim = if self.particles > 1 {
            MAX_CONFIGURATION_DIM
        } else {
            3
        };
        if !(1..=max_dim).contains(&self.dim) {
            return Err(SpinError::Config(if self.particles > 1 {
                format!(
                    "{} particles in {}D make a {}-dimensional configuration space; at most {MAX_CONFIGURATION_DIM} are supported",
                    self.particles,
                    self.dim / self.particles,
                    self.dim
                )
            } else {
                format!("--dim must be 1, 2 or 3, got {}", self.dim)
            }));
        }
        if self.particle_dim() > 3 && self.sampler == SamplerKind::Adaptive {
            return Err(SpinError::Config(format!(
                "the adaptive proposal's grid exists up to 3 dimensions (per particle), not {}: use --sampler importance",
                self.particle_dim()
            )));
        }
        if self.particle_features && (self.particles < 2 || !(2..=3).contains(&self.particle_dim()))
        {
            return Err(SpinError::Config(format!(
                "--particle-features needs two or more particles in 2D or 3D (in 1D a distance's kink has a δ Laplacian), not {} in {}D",
                self.particles,
                self.particle_dim()
            )));
        }
        if self.exchange != ExchangeKind::None {
            if self.particles < 2 {
                return Err(SpinError::Config(
                    "--exchange swaps particles 0 and 1: it needs --particles 2 or more".into(),
                ));
            }
            if self.train.tail.fraction > 0.0 {
                return Err(SpinError::Config(format!(
                    "--exchange trains with the fused gradient only: no bias-correcting tail (--tail 0), got --tail {}",
                    self.train.tail.fraction
                )));
            }
            if self.train.beta != 1.0 {
                return Err(SpinError::Config(format!(
                    "--exchange trains with β = 1 only (the fused gradient; no Σ-Jacobian moving average is built for the symmetrised network), got --beta {}",
                    self.train.beta
                )));
            }
        }
        if let Some((d, _)) = two_electron_model(&self.potential) {
            if self.particles != 2 || self.dim != 2 * d {
                return Err(SpinError::Config(format!(
                    "--potential {} is two particles in {d}D (--particles 2 --dim {d}), not {} particle(s) in {}D",
                    self.potential,
                    self.particles,
                    self.dim / self.particles
                )));
            }
        }
        Ok(())
    }

    /// Each number on its own: lengths, scales, counts and limits.
    fn validate_values(&self) -> Result<()> {
        use crate::error::SpinError;
        let positive = [
            ("--kinetic", self.kinetic),
            ("--box", self.half_width),
            ("--eps", self.eps),
            ("--plot-extent", self.plot_extent),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(SpinError::Config(format!(
                    "{name} must be positive, got {v}"
                )));
            }
        }
        if !(self.input_scale.is_finite() && self.input_scale >= 0.0) {
            return Err(SpinError::Config(format!(
                "--input-scale must be positive (or 0: from the box), got {}",
                self.input_scale
            )));
        }
        if self
            .proposal_scales
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(SpinError::Config(format!(
                "--proposal-scales must be positive lengths, got {:?}",
                self.proposal_scales
            )));
        }
        if self.neig == 0 || self.neig > 64 {
            return Err(SpinError::Config(format!(
                "--neig must be between 1 and 64, got {}",
                self.neig
            )));
        }
        if self.eval_samples < 2 {
            return Err(SpinError::Config(
                "the evaluation needs at least 2 samples".into(),
            ));
        }
        if !(self.eval_target.is_finite() && self.eval_target >= 0.0) {
            return Err(SpinError::Config(format!(
                "--eval-target must be a fraction ≥ 0, got {}",
                self.eval_target
            )));
        }
        if let Some(t) = self.time_limit {
            if !(t.is_finite() && t > 0.0) {
                return Err(SpinError::Config(format!(
                    "--time-limit must be positive seconds, got {t}"
                )));
            }
        }
        Ok(())
    }

    /// Options that exclude each other, or that need another.
    fn validate_combinations(&self) -> Result<()> {
        use crate::error::SpinError;
        if self.separate && self.blocks > 0 {
            return Err(SpinError::Config(
                "choose one of --blocks and --separate".into(),
            ));
        }
        if self.laplacian == LaplacianKind::Weak && !self.envelope {
            return Err(SpinError::Config(
                "--laplacian weak needs the boundary envelope (--envelope true): the weak form \
                 is exact only for functions that vanish on the boundary"
                    .into(),
            ));
        }
        if self.dim == 1
            && self.radial
            && (self.laplacian == LaplacianKind::Exact
                || self.evaluation_laplacian() == LaplacianKind::Exact)
        {
            return Err(SpinError::Config(
                "--radial true with --laplacian exact in 1D would drop the kink's kinetic term \
                 (the feature |x| has Δ|x| = 2δ(x), which forward mode cannot see); use \
                 --laplacian weak or fd, or --radial false"
                    .into(),
            ));
        }
        Ok(())
    }
}
