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
