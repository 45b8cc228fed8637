//! A Schrödinger run's sampling proposals: the fixed importance mixture, the adaptive grid and
//! the per-particle products.

use super::config::*;
use crate::error::Result;

impl SchrodingerConfig {
    /// The importance proposal's length scales: `--proposal-scales`, or D × [`PROPOSAL_SCALES_REL`]
    /// (for the hydrogen box D = 50: 0.5, 1.5, 3, 6, 12).
    pub fn proposal_lengths(&self) -> Vec<f64> {
        if self.proposal_scales.is_empty() {
            PROPOSAL_SCALES_REL
                .iter()
                .map(|r| r * self.half_width)
                .collect()
        } else {
            self.proposal_scales.clone()
        }
    }

    /// The fixed importance proposal: 10 % uniform, the rest radial around the origin.
    pub fn importance_proposal(&self) -> Result<crate::operators::samplers::ImportanceBox> {
        crate::operators::samplers::ImportanceBox::new(
            self.dim,
            self.half_width,
            self.proposal_lengths(),
            0.1,
        )
    }

    /// The fixed proposal of `--sampler importance` and of the held-out sample: the importance
    /// proposal over the whole configuration for one particle, the product of one such
    /// proposal per particle (over its d coordinates) for several
    /// ([`crate::operators::samplers::ParticleProduct`]).
    pub fn fixed_proposal(&self) -> Result<Box<dyn crate::operators::samplers::Sampler>> {
        if self.particles <= 1 {
            return Ok(Box::new(self.importance_proposal()?));
        }
        Ok(Box::new(self.particle_proposal(false)?))
    }

    /// Several particles' proposal: one per particle over its d coordinates, the fixed radial
    /// mixture or (`adaptive`) the adaptive grid over one particle's coordinates, refitted to
    /// the learned states' one-particle density.
    pub fn particle_proposal(
        &self,
        adaptive: bool,
    ) -> Result<crate::operators::samplers::ParticleProduct> {
        use crate::operators::samplers::{AdaptiveBox, ImportanceBox, ParticleProduct};
        let d = self.particle_dim();
        let part = ImportanceBox::new(d, self.half_width, self.proposal_lengths(), 0.1)?;
        match adaptive {
            false => ParticleProduct::new(part, self.particles),
            true => ParticleProduct::adaptive(
                AdaptiveBox::new(part, adaptive_cells(d), 0.7, 0.1)?,
                self.particles,
            ),
        }
    }

    /// The adaptive proposal before its first fit: 30 % the importance proposal, 70 % a grid
    /// (256 cells in 1D, 64² in 2D, 24³ in 3D) with a tenth of its mass spread evenly, so that
    /// p/q ≤ 10 as for the importance proposal.
    pub fn adaptive_proposal(&self) -> Result<crate::operators::samplers::AdaptiveBox> {
        crate::operators::samplers::AdaptiveBox::new(
            self.importance_proposal()?,
            adaptive_cells(self.dim),
            0.7,
            0.1,
        )
    }
}

/// The adaptive grid's cells per axis in `dim` dimensions (256, 64², 24³).
fn adaptive_cells(dim: usize) -> usize {
    match dim {
        1 => 256,
        2 => 64,
        _ => 24,
    }
}
