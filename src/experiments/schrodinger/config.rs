//! What defines a Schrödinger run (its checks: `validate.rs`; the presets: `presets.rs`; the
//! sampling proposals: `proposals.rs`; the reference eigenvalues: `reference.rs`).

use std::sync::Arc;

use super::{harmonic_potential, hydrogen_eigenvalues, hydrogen_potential};
use crate::error::Result;
use crate::nn::NetworkSpec;
use crate::operators::samplers::UniformBox;
use crate::operators::{Operator, ScalarField};
use crate::spin::Problem;

/// How the Laplacian is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LaplacianKind {
    /// Central finite differences with step ε (network at 2d + 1 points per sample).
    Fd,
    /// Forward mode through the network: (h, ∇h, Δh) carried through every layer.
    Exact,
    /// The weak form ⟨∇u_j, c ∇u_k⟩ (first derivatives in forward mode; needs u = 0 on the
    /// boundary, i.e. the envelope).
    Weak,
}

impl std::str::FromStr for LaplacianKind {
    type Err = crate::error::SpinError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fd" => Ok(Self::Fd),
            "exact" => Ok(Self::Exact),
            "weak" => Ok(Self::Weak),
            _ => Err(crate::error::SpinError::Config(format!(
                "unknown Laplacian `{s}` (expected fd, exact or weak)"
            ))),
        }
    }
}

/// How samples are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplerKind {
    /// Uniform on the box (the reference).
    Uniform,
    /// A proposal concentrated near the origin with importance weights p/q.
    Importance,
    /// The importance proposal mixed with a grid density refitted during training to the
    /// current eigenfunctions' Σ_k v_k² (see [`crate::operators::samplers::AdaptiveBox`]).
    Adaptive,
}

impl std::str::FromStr for SamplerKind {
    type Err = crate::error::SpinError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "uniform" => Ok(Self::Uniform),
            "importance" => Ok(Self::Importance),
            "adaptive" => Ok(Self::Adaptive),
            _ => Err(crate::error::SpinError::Config(format!(
                "unknown sampler `{s}` (expected uniform, importance or adaptive)"
            ))),
        }
    }
}

/// Which exchange sector the network is built in (`--exchange`): the outputs are
/// (f(x) ± f(Px))/2 with P the swap of particles 0 and 1 ([`crate::nn::Exchange`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeKind {
    /// A plain network: the states of both sectors, each labelled by its measured parity.
    #[default]
    None,
    /// Symmetric under the swap (spin singlets of two electrons).
    Symmetric,
    /// Antisymmetric under the swap (spin triplets of two electrons).
    Antisymmetric,
}

impl ExchangeKind {
    /// The exact parity of every state in this sector (`None` for a plain network).
    pub fn parity(self) -> Option<f64> {
        match self {
            Self::None => None,
            Self::Symmetric => Some(1.0),
            Self::Antisymmetric => Some(-1.0),
        }
    }
}

impl std::str::FromStr for ExchangeKind {
    type Err = crate::error::SpinError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "symmetric" => Ok(Self::Symmetric),
            "antisymmetric" => Ok(Self::Antisymmetric),
            _ => Err(crate::error::SpinError::Config(format!(
                "unknown exchange symmetry `{s}` (expected none, symmetric or antisymmetric)"
            ))),
        }
    }
}

/// Everything that defines a Schrödinger run (saved in metrics and checkpoints).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SchrodingerConfig {
    /// Dimension of the configuration space (1, 2 or 3): `particles` × each particle's
    /// dimension.
    pub dim: usize,
    /// Particles sharing the configuration space, each with `dim / particles` coordinates
    /// (1: one particle in `dim` dimensions).
    #[serde(default = "one_particle")]
    pub particles: usize,
    /// The network's exchange sector under swapping particles 0 and 1 (two or more particles).
    #[serde(default)]
    pub exchange: ExchangeKind,
    /// `hydrogen`, `harmonic` or a WGSL expression in `x`.
    pub potential: String,
    /// Nuclear charge Z (hydrogen).
    pub charge: f64,
    /// Kinetic coefficient c in H = −c∇² + V.
    pub kinetic: f64,
    /// Box half-width D.
    pub half_width: f64,
    /// Multiply the network by the box envelope.
    pub envelope: bool,
    /// Laplacian.
    pub laplacian: LaplacianKind,
    /// Finite-difference step.
    pub eps: f64,
    /// Sampler.
    pub sampler: SamplerKind,
    /// Length scales of the importance proposal (empty: relative to the box, see
    /// [`SchrodingerConfig::proposal_lengths`]).
    pub proposal_scales: Vec<f64>,
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Eigenfunctions N.
    pub neig: usize,
    /// Training.
    pub train: crate::spin::TrainConfig,
    /// Stop after this many seconds of training, if set.
    pub time_limit: Option<f64>,
    /// Checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Points in the final evaluation.
    pub eval_samples: usize,
    /// Half-width of the eigenfunction plots.
    pub plot_extent: f64,
    /// Length scale of the inputs: the first layer's initial weights are divided by it, so the
    /// first layer starts out seeing x / scale (1: the reference initialisation; 0: from the
    /// box, see [`SchrodingerConfig::effective_input_scale`]).
    #[serde(default = "one")]
    pub input_scale: f64,
    /// Block-sparse hidden and output layers with this many blocks (0: dense).
    #[serde(default)]
    pub blocks: usize,
    /// Give the network ‖x‖ as an extra input (see [`NetworkSpec::radial`]).
    #[serde(default)]
    pub radial: bool,
    /// Give the network every particle's distance from the origin and every pair's distance
    /// as extra inputs (see [`NetworkSpec::particle_features`]; two or more particles in 2D or
    /// 3D).
    #[serde(default)]
    pub particle_features: bool,
    /// One network per eigenfunction, each with the widths `hidden` (one MLP N times as wide
    /// with a block-diagonal mask, see [`crate::nn::separate_networks_mask`]).
    #[serde(default)]
    pub separate: bool,
    /// Refit the adaptive proposal every this many steps (and before the evaluation).
    #[serde(default = "default_adapt_every")]
    pub adapt_every: u64,
    /// The evaluation grows its sample (from `eval_samples`, up to `eval_max_samples`) until
    /// every eigenvalue's standard error is below this fraction of its value (0: one pass).
    #[serde(default = "default_eval_target")]
    pub eval_target: f64,
    /// The evaluation's largest sample.
    #[serde(default = "default_eval_max_samples")]
    pub eval_max_samples: usize,
    /// The Laplacian of the evaluation's estimator (None: exact where the network allows it —
    /// its ⟨v, Hv⟩ has a variance that vanishes as v approaches an eigenfunction — else the
    /// training's).
    #[serde(default)]
    pub eval_laplacian: Option<LaplacianKind>,
    /// After training, replace the output layer by the Rayleigh–Ritz solution on the span of
    /// the last hidden layer's units ([`crate::spin::Trainer::refit_readout`], fitted on
    /// `eval_samples` points of their own, weak form), then evaluate that. Both evaluations
    /// are reported.
    #[serde(default)]
    pub readout_refit: bool,
    /// The held-out curve: the evaluation's estimator on a fixed sample of 4096 points of the
    /// importance proposal, every this many steps (0: none).
    #[serde(default = "default_heldout_every")]
    pub heldout_every: u64,
    /// Rotate the read-out to the Ritz vectors of the outputs' span every this many steps
    /// ([`crate::spin::Trainer::rotate_readout`], on [`ROTATE_SAMPLES`] fresh points; 0: never,
    /// what runs saved before it existed do). Only at β = 1 before the tail.
    #[serde(default)]
    pub rotate_every: u64,
}

/// Points of each read-out rotation's estimate of Σ and Π.
pub const ROTATE_SAMPLES: usize = 16384;

pub(super) fn default_heldout_every() -> u64 {
    1000
}

pub(super) fn default_eval_target() -> f64 {
    5e-4
}

pub(super) fn default_eval_max_samples() -> usize {
    1 << 22
}

pub(super) fn default_adapt_every() -> u64 {
    250
}

/// The smallest batch above 3 coordinates (several particles), unless one is given.
pub const MANY_COORDINATES_BATCH: usize = 1024;

/// The largest input span the default input scale lets through (see
/// [`SchrodingerConfig::effective_input_scale`]).
pub const INPUT_SPAN: f64 = 50.0;

/// The built-in two-electron models: each particle's dimension and the default box. `helium`
/// (3D) has a box of ±10: in 6D the proposal's mass outside the states grows with the box's
/// volume (the comparison that chose it, ±20 stalling where ±8 trained, was made before the
/// envelope above 3D was fixed, and has not been repeated). `soft-coulomb` (two particles on a
/// line) has ±20, which holds the singly excited states below the ion's threshold.
pub(super) fn two_electron_model(potential: &str) -> Option<(usize, f64)> {
    match potential {
        "helium" => Some((3, 10.0)),
        "soft-coulomb" => Some((1, 20.0)),
        _ => None,
    }
}

/// The largest configuration space of several particles (P·d).
pub const MAX_CONFIGURATION_DIM: usize = 9;

/// Interior points per axis of the coarser grid of [`SchrodingerConfig::grid_reference`]. On
/// the 1D two-particle model (box 20) the extrapolation from 128 and 257 points agrees with
/// the one from 192 and 385 to 5e-6 relative on all six lowest levels.
pub const GRID_REFERENCE_N: usize = 128;

/// Box-relative length scales of the default importance proposal: D × these.
pub const PROPOSAL_SCALES_REL: [f64; 5] = [0.01, 0.03, 0.06, 0.12, 0.24];

pub(super) fn one() -> f64 {
    1.0
}

pub(super) fn one_particle() -> usize {
    1
}

impl SchrodingerConfig {
    /// Sets the particles and each one's dimension (`None`: as they are), the configuration
    /// space becoming P·d.
    pub fn set_particles(
        &mut self,
        particles: Option<usize>,
        particle_dim: Option<usize>,
    ) -> Result<()> {
        let p = particles.unwrap_or(self.particles);
        if p == 0 {
            return Err(crate::error::SpinError::Config(
                "--particles must be at least 1".into(),
            ));
        }
        let d = particle_dim.unwrap_or(self.particle_dim());
        self.particles = p;
        self.dim = p * d;
        self.many_coordinate_defaults();
        Ok(())
    }

    /// The defaults above 3 coordinates (several particles), applied by [`Self::set_particles`];
    /// a front end lays its flags on top afterwards:
    /// - the fixed per-particle proposal: the per-particle adaptive one made helium's training
    ///   unstable (Σ̄ ill-conditioned, a positive loss);
    /// - a batch of at least `MANY_COORDINATES_BATCH`: at β = 1, Σ̄ is the minibatch's own Σ̂,
    ///   and with the product proposal's weights in 6D a batch of 128 left the gradient too
    ///   noisy for helium's triplets (docs/results/particles.md);
    /// - no read-out refit: on a helium network it gave read-outs whose Ritz values fell far
    ///   below the exact levels, on independent samples and in both forms.
    pub fn many_coordinate_defaults(&mut self) {
        if self.dim > 3 {
            if self.sampler == SamplerKind::Adaptive {
                self.sampler = SamplerKind::Importance;
            }
            self.train.batch = self.train.batch.max(MANY_COORDINATES_BATCH);
            self.readout_refit = false;
        }
    }

    /// The particle distance features of the network, when `particle_features` is set.
    pub fn particle_feature_spec(&self) -> Option<crate::nn::ParticleFeatures> {
        self.particle_features
            .then_some(crate::nn::ParticleFeatures {
                particles: self.particles,
                particle_dim: self.particle_dim(),
            })
    }

    /// Each particle's dimension d.
    pub fn particle_dim(&self) -> usize {
        self.dim / self.particles.max(1)
    }

    /// The built-in potentials (evaluated on the host in f64, no GPU needed); `None` for an
    /// expression.
    pub fn builtin_potential(&self) -> Option<ScalarField> {
        match self.potential.as_str() {
            "hydrogen" => Some(hydrogen_potential(self.charge)),
            "harmonic" => Some(harmonic_potential()),
            "soft-coulomb" => Some(super::soft_coulomb_potential(self.charge)),
            "helium" => Some(super::helium_potential(self.charge)),
            _ => None,
        }
    }

    /// The potential as a field (built-ins on the host in f64, expressions on the GPU).
    pub fn potential_field(
        &self,
        ctx: &std::sync::Arc<crate::gpu::GpuContext>,
    ) -> Result<ScalarField> {
        Ok(match self.builtin_potential() {
            Some(v) => v,
            None => Arc::new(crate::operators::wgsl_field::WgslField::with_particles(
                ctx.clone(),
                &self.potential,
                self.dim,
                self.particles,
            )?),
        })
    }

    /// The Laplacian the evaluation uses: `eval_laplacian`, or exact when the network is a
    /// softplus MLP and the exact form is valid (not 1D with the radial feature), else the
    /// training's.
    pub fn evaluation_laplacian(&self) -> LaplacianKind {
        self.eval_laplacian.unwrap_or({
            if self.dim == 1 && self.radial {
                self.laplacian
            } else {
                LaplacianKind::Exact
            }
        })
    }

    /// The operator with the given Laplacian.
    pub fn operator(
        &self,
        ctx: &std::sync::Arc<crate::gpu::GpuContext>,
        laplacian: LaplacianKind,
    ) -> Result<Operator> {
        let v = self.potential_field(ctx)?;
        match laplacian {
            LaplacianKind::Fd => Operator::hamiltonian_fd(self.dim, self.kinetic, self.eps, v),
            LaplacianKind::Exact => Operator::hamiltonian_exact(self.dim, self.kinetic, v),
            LaplacianKind::Weak => Operator::hamiltonian_weak(self.dim, self.kinetic, v),
        }
    }

    /// The SpIN problem.
    pub fn problem(&self, ctx: &std::sync::Arc<crate::gpu::GpuContext>) -> Result<Problem> {
        let per_net = if self.separate { self.neig } else { 1 };
        let spec = NetworkSpec {
            hidden: self.hidden.iter().map(|w| w * per_net).collect(),
            outputs: self.neig,
            envelope: self.envelope.then_some(self.half_width as f32),
            radial: self.radial,
            input_dim: self.dim
                + self.radial as usize
                + self.particle_feature_spec().map_or(0, |f| f.count()),
            particle_features: self.particle_feature_spec(),
            exchange: self.exchange.parity().map(|p| crate::nn::Exchange {
                particle_dim: self.particle_dim(),
                antisymmetric: p < 0.0,
            }),
            ..Default::default()
        };
        let operator = self.operator(ctx, self.laplacian)?;
        let sampler: Box<dyn crate::operators::samplers::Sampler> = match self.sampler {
            SamplerKind::Uniform => Box::new(UniformBox {
                dim: self.dim,
                half_width: self.half_width,
            }),
            SamplerKind::Importance => self.fixed_proposal()?,
            SamplerKind::Adaptive if self.particles > 1 => Box::new(self.particle_proposal(true)?),
            SamplerKind::Adaptive => Box::new(self.adaptive_proposal()?),
        };
        Ok(Problem {
            spec,
            operator,
            sampler,
        })
    }
}

impl SchrodingerConfig {
    /// The input length scale in use: `input_scale`, or for 0 min(1, D/4) — the reference
    /// initialisation suits inputs spread over a few units; in a small box the first layer is
    /// nearly linear over the box and a feature collapses Σ̄, which inputs scaled up avoid.
    ///
    /// Above D = 50 it is D/50, so that the inputs span at most ±50: with raw inputs in a box of
    /// 98 the 16 lowest hydrogen states were found far later than with x/2
    /// (docs/results/schrodinger.md, the input scale).
    pub fn effective_input_scale(&self) -> f64 {
        if self.input_scale > 0.0 {
            self.input_scale
        } else {
            (self.half_width / 4.0)
                .min(1.0)
                .max(self.half_width / INPUT_SPAN)
        }
    }

    /// The box half-width for the built-in Coulomb potential (`hydrogen`, 2D or 3D): twice the
    /// classical turning radius Z/|E_N| of the highest level learned, rounded, and at least 50.
    /// Bound states of −Z/r reach out to about that radius (the box's own effect on them falls
    /// steeply beyond it, see `docs/box_effect.py`), so the box grows with N: 50 up to N = 9 in
    /// 2D (turning radius 25) and N = 5 in 3D, 98 for N = 10–16 in 2D, 72 for N = 6–14 in 3D.
    /// `None` for other potentials, whose box is the user's to choose.
    pub fn coulomb_box(&self) -> Option<f64> {
        if self.potential != "hydrogen" {
            return None;
        }
        let levels = hydrogen_eigenvalues(self.dim, self.charge, self.kinetic, self.neig)?;
        let top = levels.last()?.abs();
        (top > 0.0).then(|| (2.0 * self.charge / top).round().max(50.0))
    }

    /// The last hidden layer's width when the read-out refit is on and `--hidden` is not given:
    /// at least 7 units per eigenfunction, rounded up to a multiple of 32, between 64 and 224
    /// (the refit's basis is these units and a constant, at most [`crate::nn::MAX_OUTPUTS`]).
    /// N ≤ 9 keeps 64, N = 10–13 gets 96, N = 14–18 gets 128. With many states the refit's span
    /// is what limits the result, not the trained network, so a wider last layer pays for its
    /// time per step (16 hydrogen states, 64 against 128 units: docs/results/schrodinger.md).
    pub fn refit_width(neig: usize) -> usize {
        (7 * neig).div_ceil(32).clamp(2, 7) * 32
    }

    /// Widens the last hidden layer to [`SchrodingerConfig::refit_width`] when the read-out
    /// refit is on (never narrows it).
    pub fn widen_for_refit(&mut self) {
        if !self.readout_refit {
            return;
        }
        let want = Self::refit_width(self.neig);
        if let Some(last) = self.hidden.last_mut() {
            *last = (*last).max(want);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::schrodinger::Preset;
    #[test]
    fn one_dimensional_radial_exact_is_refused() {
        let mut c = SchrodingerConfig::generic();
        c.dim = 1;
        c.set_potential("x * x");
        c.radial = true;
        c.laplacian = LaplacianKind::Exact;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("2δ(x)"), "{e}");
        c.laplacian = LaplacianKind::Weak;
        c.validate().unwrap();
    }

    #[test]
    fn defaults_follow_the_box_and_the_potential() {
        let mut c = SchrodingerConfig::generic();
        assert!(c.radial);
        assert_eq!(c.proposal_lengths(), vec![0.5, 1.5, 3.0, 6.0, 12.0]);
        c.set_potential("dot(x, x)");
        c.half_width = 6.0;
        assert!(!c.radial);
        let l = c.proposal_lengths();
        assert!((l[4] - 1.44).abs() < 1e-12 && (l[0] - 0.06).abs() < 1e-12);
        c.validate().unwrap();
        assert_eq!(c.coulomb_box(), None);
        // The input scale: D/4 in small boxes, 1 up to D = 50, D/50 beyond.
        for (d, s) in [(1.0, 0.25), (6.0, 1.0), (50.0, 1.0), (98.0, 1.96)] {
            c.half_width = d;
            assert!((c.effective_input_scale() - s).abs() < 1e-12, "D = {d}");
        }
        c.input_scale = 3.0;
        assert_eq!(c.effective_input_scale(), 3.0);
    }

    #[test]
    fn the_last_hidden_layer_grows_with_n_for_the_refit() {
        let widths: Vec<usize> = [1, 9, 10, 13, 14, 16, 18, 19, 32, 64]
            .iter()
            .map(|&n| SchrodingerConfig::refit_width(n))
            .collect();
        assert_eq!(widths, [64, 64, 96, 96, 128, 128, 128, 160, 224, 224]);
        assert!(SchrodingerConfig::refit_width(64) < crate::nn::MAX_OUTPUTS);
        let mut c = SchrodingerConfig::generic();
        c.neig = 16;
        c.widen_for_refit();
        assert_eq!(c.hidden, [64, 64, 128]);
        c.hidden = vec![256, 256];
        c.widen_for_refit();
        assert_eq!(c.hidden, [256, 256], "never narrows");
        let mut c = SchrodingerConfig::hydrogen(Preset::Reference);
        c.neig = 16;
        c.widen_for_refit();
        assert_eq!(c.hidden, [64, 64, 64], "no refit, no widening");
    }

    #[test]
    fn the_coulomb_box_holds_the_highest_level() {
        let mut c = SchrodingerConfig::generic();
        // 2D: E_n = −1/(2n + 1)², turning radius (2n + 1)²; n ≤ 2 is N = 9, n ≤ 3 is N = 16.
        for (n, d) in [(1, 50.0), (9, 50.0), (10, 98.0), (16, 98.0), (17, 162.0)] {
            c.neig = n;
            assert_eq!(c.coulomb_box(), Some(d), "2D N = {n}");
        }
        // 3D: E_n = −1/(4n²); n = 3 (N = 14) reaches 36.
        c.dim = 3;
        c.neig = 14;
        assert_eq!(c.coulomb_box(), Some(72.0));
        c.neig = 6;
        assert_eq!(c.coulomb_box(), Some(72.0));
        c.neig = 5;
        assert_eq!(c.coulomb_box(), Some(50.0));
        // A stronger charge pulls the levels in: Z = 2 at N = 16 in 2D turns at 49/2.
        c.dim = 2;
        c.neig = 16;
        c.charge = 2.0;
        assert_eq!(c.coulomb_box(), Some(50.0));
        c.dim = 1;
        assert_eq!(c.coulomb_box(), None);
    }
}
