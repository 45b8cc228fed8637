//! Sampling distributions p(x) that define the inner product ⟨f, g⟩ = E_p[f g].

use rand::Rng;

use crate::error::{Result, SpinError};

/// Draws batches of points (and importance weights p/q, 1 when drawing from p itself).
pub trait Sampler: Send + Sync {
    /// Dimension of one point (= the network's input dimension).
    fn dim(&self) -> usize;
    /// `count` points, row-major (count, dim), and their weights.
    fn sample(&self, rng: &mut dyn rand::RngCore, count: usize) -> (Vec<f64>, Vec<f64>);
    /// A fixed batch that makes the estimators exact, where one exists (finite spaces).
    fn exhaustive(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        None
    }
    /// State that a checkpoint must keep (an adaptive proposal's fit); empty for fixed samplers.
    fn state(&self) -> Vec<f64> {
        Vec::new()
    }
    /// Restores [`Sampler::state`].
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        if state.is_empty() {
            Ok(())
        } else {
            Err(SpinError::Shape(
                "the checkpoint holds a sampler state, but this sampler keeps none".into(),
            ))
        }
    }
}

/// Uniform on the box [−D, D]^d.
#[derive(Clone, Debug)]
pub struct UniformBox {
    /// Dimension d.
    pub dim: usize,
    /// Half-width D.
    pub half_width: f64,
}

impl Sampler for UniformBox {
    fn dim(&self) -> usize {
        self.dim
    }
    fn sample(&self, rng: &mut dyn rand::RngCore, count: usize) -> (Vec<f64>, Vec<f64>) {
        let d = self.half_width;
        let points = (0..count * self.dim)
            .map(|_| rng.random_range(-d..d))
            .collect();
        (points, vec![1.0; count])
    }
}

/// Uniform over n states {0..n−1}, encoded as one-hot vectors scaled by √n (the reference's
/// encoding for the matrix test, so that E_x[x xᵀ] = I).
#[derive(Clone, Debug)]
pub struct OneHot {
    /// Number of states.
    pub n: usize,
}

impl OneHot {
    /// The encoding of state i.
    pub fn encode(&self, i: usize, out: &mut Vec<f64>) {
        let scale = (self.n as f64).sqrt();
        out.extend((0..self.n).map(|j| if j == i { scale } else { 0.0 }));
    }
    /// The state a point encodes.
    pub fn decode(point: &[f64]) -> usize {
        point
            .iter()
            .enumerate()
            .fold(
                (0, f64::MIN),
                |best, (i, &v)| if v > best.1 { (i, v) } else { best },
            )
            .0
    }
    /// A sampler over n states; n must be positive.
    pub fn new(n: usize) -> Result<Self> {
        if n == 0 {
            return Err(SpinError::Config(
                "a one-hot space needs at least one state".into(),
            ));
        }
        Ok(Self { n })
    }
}

impl Sampler for OneHot {
    fn dim(&self) -> usize {
        self.n
    }
    fn sample(&self, rng: &mut dyn rand::RngCore, count: usize) -> (Vec<f64>, Vec<f64>) {
        let mut points = Vec::with_capacity(count * self.n);
        for _ in 0..count {
            let i = rng.random_range(0..self.n);
            self.encode(i, &mut points);
        }
        (points, vec![1.0; count])
    }
    /// All n² ordered pairs, as the two halves of a batch of 2n² points.
    fn exhaustive(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        let n = self.n;
        let mut points = Vec::with_capacity(2 * n * n * n);
        for q in 0..n * n {
            self.encode(q / n, &mut points);
        }
        for q in 0..n * n {
            self.encode(q % n, &mut points);
        }
        Some((points, vec![1.0; 2 * n * n]))
    }
}

/// Uniform p on the box [−D, D]^d, drawn from a proposal q concentrated near the origin, with
/// importance weights w = p/q so that every estimator still targets E_p: a mixture of the uniform
/// box (a fraction `uniform_fraction`, so w stays bounded) and, for each scale s, a radial
/// component q_s(x) ∝ e^{−r/s} / r (r = ‖x‖; in 1D ∝ e^{−|x|/s}). The 1/r makes w ∝ r near the
/// origin, which cancels a Coulomb singularity: w·V stays bounded, so Π̂ has finite variance
/// (with q ∝ e^{−r/s}, or uniform sampling, E[(wVu²)²] diverges logarithmically in 2D).
/// Draws outside the box get w = 0.
#[derive(Clone, Debug)]
pub struct ImportanceBox {
    /// Dimension d.
    pub dim: usize,
    /// Half-width D.
    pub half_width: f64,
    /// Length scales of the radial components.
    pub scales: Vec<f64>,
    /// Probability of drawing from the uniform box.
    pub uniform_fraction: f64,
}

impl ImportanceBox {
    /// Checks the settings.
    pub fn new(
        dim: usize,
        half_width: f64,
        scales: Vec<f64>,
        uniform_fraction: f64,
    ) -> Result<Self> {
        if dim == 0
            || !(half_width.is_finite() && half_width > 0.0)
            || scales.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || !(0.0..=1.0).contains(&uniform_fraction)
            || (scales.is_empty() && uniform_fraction < 1.0)
        {
            return Err(SpinError::Config(format!(
                "importance sampler needs d ≥ 1, D > 0, positive scales and a uniform fraction in [0, 1] (got d {dim}, D {half_width}, scales {scales:?}, fraction {uniform_fraction})"
            )));
        }
        Ok(Self {
            dim,
            half_width,
            scales,
            uniform_fraction,
        })
    }

    /// Surface area of the unit sphere in R^d.
    fn sphere_area(d: usize) -> f64 {
        let h = d as f64 / 2.0;
        2.0 * std::f64::consts::PI.powf(h) / gamma(h)
    }

    /// Shape of the Gamma law of the radius: r^{k−1} e^{−r/s} with k = max(d − 1, 1).
    fn radial_shape(&self) -> usize {
        self.dim.saturating_sub(1).max(1)
    }

    /// The proposal density q(x).
    pub fn density(&self, x: &[f64]) -> f64 {
        let d = self.dim;
        let inside = x.iter().all(|v| v.abs() <= self.half_width);
        let p_box = if inside {
            (2.0 * self.half_width).powi(-(d as i32))
        } else {
            0.0
        };
        let r = x.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
        let k = self.radial_shape();
        // q_s(x) = f(r) / (S_{d−1} r^{d−1}) with f the Gamma(k, s) density of r.
        let radial: f64 = self
            .scales
            .iter()
            .map(|&s| {
                let f =
                    r.powi(k as i32 - 1) * (-r / s).exp() / (gamma(k as f64) * s.powi(k as i32));
                f / (Self::sphere_area(d) * r.powi(d as i32 - 1))
            })
            .sum::<f64>()
            / self.scales.len().max(1) as f64;
        self.uniform_fraction * p_box + (1.0 - self.uniform_fraction) * radial
    }
}

/// Γ(x) for the half-integers and integers used here (x ≥ 0.5).
fn gamma(x: f64) -> f64 {
    if (x - 0.5).abs() < 1e-12 {
        return std::f64::consts::PI.sqrt();
    }
    if (x - 1.0).abs() < 1e-12 {
        return 1.0;
    }
    (x - 1.0) * gamma(x - 1.0)
}

impl Sampler for ImportanceBox {
    fn dim(&self) -> usize {
        self.dim
    }
    fn sample(&self, rng: &mut dyn rand::RngCore, count: usize) -> (Vec<f64>, Vec<f64>) {
        use rand_distr::{Distribution, Gamma, StandardNormal};
        let d = self.dim;
        let p_box = (2.0 * self.half_width).powi(-(d as i32));
        let mut points = Vec::with_capacity(count * d);
        let mut weights = Vec::with_capacity(count);
        for _ in 0..count {
            let start = points.len();
            if self.scales.is_empty() || rng.random::<f64>() < self.uniform_fraction {
                points.extend((0..d).map(|_| rng.random_range(-self.half_width..self.half_width)));
            } else {
                let s = self.scales[rng.random_range(0..self.scales.len())];
                let r = Gamma::new(self.radial_shape() as f64, s)
                    .map(|g| g.sample(rng))
                    .unwrap_or(0.0);
                let dir: Vec<f64> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
                let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
                points.extend(dir.iter().map(|v| v / norm * r));
            }
            let x = &points[start..];
            let inside = x.iter().all(|v| v.abs() <= self.half_width);
            weights.push(if inside { p_box / self.density(x) } else { 0.0 });
        }
        (points, weights)
    }
}

/// Uniform p on the box [−D, D]^d drawn from a proposal that adapts to what is being learned:
/// a mixture of a fixed [`ImportanceBox`] (weight 1 − `grid_fraction`) and a piecewise-constant
/// density on a grid of cells (weight `grid_fraction`), fitted with [`AdaptiveBox::fit`] to the
/// current eigenfunctions' density Σ_k v_k(x)² at the cell centres. Each fitted cell keeps a
/// floor of `floor`/cells of the grid's mass, so with the fixed part's uniform fraction the
/// weights p/q stay bounded. Until the first fit the grid is uniform.
#[derive(Clone, Debug)]
pub struct AdaptiveBox {
    /// The fixed part (uniform fraction and radial components at the origin).
    pub base: ImportanceBox,
    /// Cells per dimension.
    pub cells: usize,
    /// Mixture weight of the grid.
    pub grid_fraction: f64,
    /// Share of the grid's mass spread evenly over all cells.
    pub floor: f64,
    /// Probability of each cell (row-major, last coordinate fastest).
    prob: Vec<f64>,
    /// Cumulative probabilities, for drawing a cell.
    cdf: Vec<f64>,
}

impl AdaptiveBox {
    /// A proposal with a uniform grid of `cells`^d cells; `cells`^d must stay below 2²⁴.
    pub fn new(base: ImportanceBox, cells: usize, grid_fraction: f64, floor: f64) -> Result<Self> {
        let total = (cells as f64).powi(base.dim as i32);
        if cells == 0
            || total > (1u64 << 24) as f64
            || !(0.0..=1.0).contains(&grid_fraction)
            || !(0.0..=1.0).contains(&floor)
            || floor == 0.0
        {
            return Err(SpinError::Config(format!(
                "adaptive sampler needs 1 ≤ cells^d ≤ 2^24, a grid fraction in [0, 1] and a floor in (0, 1] (got {cells} cells in {}D, fraction {grid_fraction}, floor {floor})",
                base.dim
            )));
        }
        let n = total as usize;
        let mut s = Self {
            base,
            cells,
            grid_fraction,
            floor,
            prob: Vec::new(),
            cdf: Vec::new(),
        };
        s.set_prob(vec![1.0 / n as f64; n]);
        Ok(s)
    }

    /// Number of grid cells.
    pub fn num_cells(&self) -> usize {
        self.cells.pow(self.base.dim as u32)
    }

    /// The cells' centres, row-major (cells^d, d), in the order [`AdaptiveBox::fit`] expects.
    pub fn cell_centres(&self) -> Vec<f64> {
        let d = self.base.dim;
        let h = 2.0 * self.base.half_width / self.cells as f64;
        let mut out = Vec::with_capacity(self.num_cells() * d);
        for c in 0..self.num_cells() {
            let mut rest = c;
            let mut idx = vec![0usize; d];
            for i in (0..d).rev() {
                idx[i] = rest % self.cells;
                rest /= self.cells;
            }
            out.extend(
                idx.iter()
                    .map(|&j| -self.base.half_width + (j as f64 + 0.5) * h),
            );
        }
        out
    }

    /// Fits the grid to a non-negative density given at the cell centres (any scale); cells
    /// with a non-finite or negative value count as zero.
    pub fn fit(&mut self, density: &[f64]) -> Result<()> {
        if density.len() != self.num_cells() {
            return Err(SpinError::Shape(format!(
                "{} density values for {} cells",
                density.len(),
                self.num_cells()
            )));
        }
        let clean: Vec<f64> = density
            .iter()
            .map(|&v| if v.is_finite() && v > 0.0 { v } else { 0.0 })
            .collect();
        let sum: f64 = clean.iter().sum();
        let n = self.num_cells() as f64;
        let prob = if sum > 0.0 {
            clean
                .iter()
                .map(|v| (1.0 - self.floor) * v / sum + self.floor / n)
                .collect()
        } else {
            vec![1.0 / n; self.num_cells()]
        };
        self.set_prob(prob);
        Ok(())
    }

    fn set_prob(&mut self, prob: Vec<f64>) {
        let mut acc = 0.0;
        self.cdf = prob
            .iter()
            .map(|p| {
                acc += p;
                acc
            })
            .collect();
        self.prob = prob;
    }

    /// The cell holding `x`, if inside the box.
    fn cell_of(&self, x: &[f64]) -> Option<usize> {
        let d = self.base.half_width;
        let mut c = 0usize;
        for &v in x {
            if v.abs() > d {
                return None;
            }
            let j = (((v + d) / (2.0 * d)) * self.cells as f64).floor() as usize;
            c = c * self.cells + j.min(self.cells - 1);
        }
        Some(c)
    }

    /// The proposal density q(x).
    pub fn density(&self, x: &[f64]) -> f64 {
        let cell_volume = (2.0 * self.base.half_width / self.cells as f64).powi(x.len() as i32);
        let grid = self.cell_of(x).map_or(0.0, |c| self.prob[c] / cell_volume);
        (1.0 - self.grid_fraction) * self.base.density(x) + self.grid_fraction * grid
    }
}

impl Sampler for AdaptiveBox {
    fn dim(&self) -> usize {
        self.base.dim
    }
    /// The cells' probabilities.
    fn state(&self) -> Vec<f64> {
        self.prob.clone()
    }
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        let sum: f64 = state.iter().sum();
        if state.len() != self.num_cells()
            || state.iter().any(|p| !(p.is_finite() && *p >= 0.0))
            || (sum - 1.0).abs() > 1e-9
        {
            return Err(SpinError::Shape(format!(
                "the checkpoint's proposal has {} cell probabilities (sum {sum}), this one {} cells",
                state.len(),
                self.num_cells()
            )));
        }
        self.set_prob(state.to_vec());
        Ok(())
    }
    fn sample(&self, rng: &mut dyn rand::RngCore, count: usize) -> (Vec<f64>, Vec<f64>) {
        let d = self.base.dim;
        let p_box = (2.0 * self.base.half_width).powi(-(d as i32));
        let h = 2.0 * self.base.half_width / self.cells as f64;
        let mut points = Vec::with_capacity(count * d);
        let mut weights = Vec::with_capacity(count);
        for _ in 0..count {
            let start = points.len();
            if rng.random::<f64>() < self.grid_fraction {
                let u = rng.random::<f64>() * self.cdf.last().copied().unwrap_or(1.0);
                let mut c = self
                    .cdf
                    .partition_point(|&v| v <= u)
                    .min(self.prob.len() - 1);
                let mut idx = vec![0usize; d];
                for i in (0..d).rev() {
                    idx[i] = c % self.cells;
                    c /= self.cells;
                }
                points.extend(
                    idx.iter()
                        .map(|&j| -self.base.half_width + (j as f64 + rng.random::<f64>()) * h),
                );
            } else {
                let (p, _) = self.base.sample(rng, 1);
                points.extend(p);
            }
            let x = &points[start..];
            let q = self.density(x);
            let inside = x.iter().all(|v| v.abs() <= self.base.half_width);
            weights.push(if inside && q > 0.0 { p_box / q } else { 0.0 });
        }
        (points, weights)
    }
}

/// Several particles, each drawn from its own proposal over its d coordinates (a product of
/// one per-particle proposal): configurations with one particle near the origin and another far
/// out are as likely as under each particle's own proposal, which a single radial mixture over
/// all P·d coordinates is not. The weight is the product of the particles' weights, so the
/// target stays uniform on the whole box. The per-particle proposal is the fixed radial mixture
/// ([`ParticleProduct::new`]) or an [`AdaptiveBox`] over one particle's coordinates
/// ([`ParticleProduct::adaptive`]) refitted to the learned states' one-particle density
/// ([`ParticleProduct::fit_marginal`]).
pub struct ParticleProduct {
    part: AdaptiveBox,
    adaptive: bool,
    particles: usize,
}

impl ParticleProduct {
    /// `particles` independent copies of the fixed proposal `part` (one particle's).
    pub fn new(part: ImportanceBox, particles: usize) -> Result<Self> {
        let fixed = AdaptiveBox::new(part, 1, 0.0, 1.0)?;
        Self::with_part(fixed, false, particles)
    }

    /// `particles` independent copies of the adaptive proposal `part` (one particle's).
    pub fn adaptive(part: AdaptiveBox, particles: usize) -> Result<Self> {
        Self::with_part(part, true, particles)
    }

    fn with_part(part: AdaptiveBox, adaptive: bool, particles: usize) -> Result<Self> {
        if particles == 0 {
            return Err(SpinError::Config("a product of zero particles".into()));
        }
        Ok(Self {
            part,
            adaptive,
            particles,
        })
    }

    /// Fits every particle's grid to the one-particle density of `mass` given at `points`
    /// (count × P·d, drawn from any proposal; `mass` = weight · density, so that the sum over a
    /// cell estimates the density's integral over configurations with that particle in the
    /// cell). Each point counts once for each particle, so the fit is the particles' mean
    /// marginal (one shared grid, which suits particles that the density treats alike).
    pub fn fit_marginal(&mut self, points: &[f64], mass: &[f64]) -> Result<()> {
        if !self.adaptive {
            return Err(SpinError::Config(
                "the fixed per-particle proposal has no grid to fit".into(),
            ));
        }
        let d = self.part.base.dim;
        if points.len() != mass.len() * d * self.particles {
            return Err(SpinError::Shape(format!(
                "{} coordinates for {} masses of {} particles in {d}D",
                points.len(),
                mass.len(),
                self.particles
            )));
        }
        let mut cells = vec![0.0; self.part.num_cells()];
        for (x, &m) in points.chunks(d * self.particles).zip(mass) {
            if !(m.is_finite() && m > 0.0) {
                continue;
            }
            for p in x.chunks(d) {
                if let Some(c) = self.part.cell_of(p) {
                    cells[c] += m;
                }
            }
        }
        self.part.fit(&cells)
    }
}

impl Sampler for ParticleProduct {
    fn dim(&self) -> usize {
        self.part.base.dim * self.particles
    }
    /// The adaptive part's cell probabilities (none for the fixed proposal).
    fn state(&self) -> Vec<f64> {
        match self.adaptive {
            true => self.part.state(),
            false => Vec::new(),
        }
    }
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        match self.adaptive {
            true => self.part.set_state(state),
            false if state.is_empty() => Ok(()),
            false => Err(SpinError::Shape(
                "the checkpoint holds a fitted proposal, but this run's per-particle proposal is fixed".into(),
            )),
        }
    }
    fn sample(&self, rng: &mut dyn rand::RngCore, count: usize) -> (Vec<f64>, Vec<f64>) {
        let d = self.part.base.dim;
        let draws: Vec<(Vec<f64>, Vec<f64>)> = (0..self.particles)
            .map(|_| match self.adaptive {
                true => self.part.sample(rng, count),
                false => self.part.base.sample(rng, count),
            })
            .collect();
        let mut points = Vec::with_capacity(count * self.dim());
        let mut weights = vec![1.0; count];
        for r in 0..count {
            for (pts, w) in &draws {
                points.extend_from_slice(&pts[r * d..(r + 1) * d]);
                weights[r] *= w[r];
            }
        }
        (points, weights)
    }
}
