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
