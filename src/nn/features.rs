//! What a network sees besides its inputs, and what multiplies its outputs: the particles'
//! distance features and the exchange of two particles (maths §12), the radial feature, and the
//! box envelope with its derivatives.

/// The particles whose distances a network sees ([`crate::nn::NetworkSpec::particle_features`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParticleFeatures {
    /// Particles P.
    pub particles: usize,
    /// Coordinates per particle d (2 or 3: in 1D the distances' kinks have a δ Laplacian that
    /// forward mode cannot see).
    pub particle_dim: usize,
}

impl ParticleFeatures {
    /// Features appended: P distances from the origin and P(P−1)/2 pair distances.
    pub fn count(&self) -> usize {
        self.particles + self.particles * (self.particles - 1) / 2
    }

    /// The pairs (i, j), i < j, in the order of their features.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        let p = self.particles;
        (0..p)
            .flat_map(|i| (i + 1..p).map(move |j| (i, j)))
            .collect()
    }

    /// Where each feature goes when particles 0 and 1 are swapped (a permutation of
    /// 0..[`ParticleFeatures::count`]).
    pub fn swapped(&self) -> Vec<usize> {
        let t = |i: usize| match i {
            0 => 1,
            1 => 0,
            i => i,
        };
        let pairs = self.pairs();
        let mut out: Vec<usize> = (0..self.particles).map(t).collect();
        for &(i, j) in &pairs {
            let (a, b) = (t(i).min(t(j)), t(i).max(t(j)));
            let k = pairs.iter().position(|&q| q == (a, b)).unwrap_or(0);
            out.push(self.particles + k);
        }
        out
    }
}

/// Exchange symmetrisation of a network on the points of two or more particles: the outputs are
/// f_s(x) = (f(x) + s f(Px)) / 2, where P swaps the coordinates of particles 0 and 1
/// (`particle_dim` each, the first 2·`particle_dim` inputs) and s = +1 (symmetric) or −1
/// (antisymmetric). f_s(Px) = s f_s(x) exactly, whatever θ; the engine evaluates f on every row
/// and on its swapped copy.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exchange {
    /// Coordinates per particle.
    pub particle_dim: usize,
    /// Whether the outputs are antisymmetric (s = −1) rather than symmetric (s = +1).
    pub antisymmetric: bool,
}

impl Exchange {
    /// s = ±1.
    pub fn sign(&self) -> f64 {
        if self.antisymmetric {
            -1.0
        } else {
            1.0
        }
    }
}

/// Appends the radial feature r = ‖x‖ to network inputs given as rows of `dim` coordinates.
///
/// With `channels == 1` every row is a point. With `channels == dim + 2` the rows are
/// forward-mode channels, channel-major with `inputs.len() / (dim · channels)` samples per
/// channel (value, ∂_1..∂_d, Δ; see `BatchShape::channels`): the new column carries r, its
/// derivatives ∂_i r = x_i / r and its Laplacian Δr = (d − 1)/r, taken at the sample's point
/// (its value row). r is floored at 1e-6 so that the origin stays finite.
pub fn radial_inputs(inputs: &[f64], dim: usize, channels: usize) -> Vec<f64> {
    let rows = inputs.len() / dim;
    let samples = rows / channels;
    let radius = |b: usize| -> f64 {
        inputs[b * dim..(b + 1) * dim]
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt()
            .max(1e-6)
    };
    let mut out = Vec::with_capacity(rows * (dim + 1));
    for (row, x) in inputs.chunks(dim).enumerate() {
        out.extend_from_slice(x);
        let (c, b) = if channels == 1 {
            (0, row)
        } else {
            (row / samples, row % samples)
        };
        let r = radius(b);
        out.push(match c {
            0 => r,
            c if c <= dim => inputs[b * dim + c - 1] / r,
            _ => (dim as f64 - 1.0) / r,
        });
    }
    out
}

/// Appends the particle distance features ([`crate::nn::NetworkSpec::particle_features`]) to network
/// input rows of `width` values whose first P·d are a point's coordinates: |p_i| for every
/// particle, then |p_i − p_j| for i < j. With `channels == 1` every row is a point; with
/// `channels == P·d + 2` the rows are forward-mode channels (value, ∂_1..∂_D, Δ, channel-major)
/// and the features carry their derivatives ∂_k r = (p_i)_k / r on particle i's coordinates
/// (−… on particle j's for a pair), and Laplacians (d − 1)/|p_i| and 2(d − 1)/|p_i − p_j|, at
/// the sample's point. Distances are floored at 1e-6.
pub fn particle_inputs(
    inputs: &[f64],
    width: usize,
    channels: usize,
    f: ParticleFeatures,
) -> Vec<f64> {
    let (p, d) = (f.particles, f.particle_dim);
    let dim = p * d;
    let rows = inputs.len() / width;
    let samples = rows / channels;
    let pairs = f.pairs();
    let point = |b: usize| &inputs[b * width..b * width + dim];
    // (vector, distance) of feature k at point x: the particle, or the pair's difference.
    let vector = |x: &[f64], k: usize| -> Vec<f64> {
        if k < p {
            x[k * d..(k + 1) * d].to_vec()
        } else {
            let (i, j) = pairs[k - p];
            (0..d).map(|c| x[i * d + c] - x[j * d + c]).collect()
        }
    };
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-6);
    let mut out = Vec::with_capacity(rows * (width + f.count()));
    for (row, values) in inputs.chunks(width).enumerate() {
        out.extend_from_slice(values);
        let (c, b) = if channels == 1 {
            (0, row)
        } else {
            (row / samples, row % samples)
        };
        let x = point(b);
        for k in 0..f.count() {
            let v = vector(x, k);
            let r = norm(&v);
            out.push(match c {
                0 => r,
                c if c <= dim => {
                    // ∂r/∂x_m for coordinate m = c − 1 of particle m / d.
                    let (m, part) = ((c - 1) % d, (c - 1) / d);
                    let sign = if k < p {
                        (part == k) as i32 as f64
                    } else {
                        let (i, j) = pairs[k - p];
                        (part == i) as i32 as f64 - (part == j) as i32 as f64
                    };
                    sign * v[m] / r
                }
                _ => (1 + (k >= p) as usize) as f64 * (d as f64 - 1.0) / r,
            });
        }
    }
    out
}

/// The reference boundary envelope of [−D, D]^d at x: Π_i max((√(2D² − x_i²) − D)/D, 0).
pub fn envelope(x: &[f64], d: f64) -> f64 {
    x.iter()
        .map(|&xi| (((2.0 * d * d - xi * xi).max(0.0)).sqrt() - d) / d)
        .map(|v| v.max(0.0))
        .product()
}

/// The envelope with its gradient and Laplacian at x: (g, ∇g, Δg).
pub fn envelope_tangent(x: &[f64], d: f64) -> (f64, Vec<f64>, f64) {
    let parts: Vec<(f64, f64, f64)> = x
        .iter()
        .map(|&t| {
            let q = 2.0 * d * d - t * t;
            let r = q.max(0.0).sqrt();
            if r > d {
                ((r - d) / d, -t / (d * r), -2.0 * d / (q * r))
            } else {
                (0.0, 0.0, 0.0)
            }
        })
        .collect();
    let g: f64 = parts.iter().map(|p| p.0).product();
    let others = |i: usize| -> f64 {
        parts
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p.0)
            .product()
    };
    let grad = (0..x.len()).map(|i| parts[i].1 * others(i)).collect();
    let lap = (0..x.len()).map(|i| parts[i].2 * others(i)).sum();
    (g, grad, lap)
}
