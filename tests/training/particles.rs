//! Few-body bookkeeping: particles sharing a configuration space, the exchange of particles 0
//! and 1 and the parity it measures, potentials that see each particle (`p0`, `p1`) compiled
//! for the GPU, and the grid reference of the 1D two-particle soft-Coulomb model.

use super::common;

use common::ctx;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spectral_inference::experiments::schrodinger::{
    exchange_parities, helium_potential, parity_label, soft_coulomb_potential, swap_particles,
    SchrodingerConfig,
};
use spectral_inference::operators::samplers::Sampler;
use spectral_inference::operators::wgsl_field::WgslField;
use spectral_inference::operators::Field;

#[test]
fn swapping_exchanges_the_first_two_particles_only() {
    // Two particles in 2D, then three in 1D.
    let pts = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    assert_eq!(
        swap_particles(&pts, 4, 2),
        [3.0, 4.0, 1.0, 2.0, 7.0, 8.0, 5.0, 6.0]
    );
    let pts = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    assert_eq!(swap_particles(&pts, 3, 1), [2.0, 1.0, 3.0, 5.0, 4.0, 6.0]);
    // Swapping twice is the identity.
    assert_eq!(swap_particles(&swap_particles(&pts, 3, 1), 3, 1), pts);
}

#[test]
fn parity_of_known_symmetric_and_antisymmetric_functions() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let count = 4000;
    let pts: Vec<f64> = (0..2 * count)
        .map(|_| rng.random_range(-3.0..3.0))
        .collect();
    let weights: Vec<f64> = (0..count).map(|_| rng.random_range(0.5..1.5)).collect();
    let g = |x: &[f64]| (-(x[0] * x[0] + x[1] * x[1]) / 2.0).exp();
    // Columns: symmetric, antisymmetric, and an equal mixture of the two.
    let f = |x: &[f64]| {
        let s = g(x) * (1.0 + x[0] * x[1]);
        let a = g(x) * (x[0] - x[1]);
        [s, a, s + a]
    };
    let values = |p: &[f64]| -> Vec<f64> { p.chunks(2).flat_map(f).collect() };
    let at_x = values(&pts);
    let at_px = values(&swap_particles(&pts, 2, 1));
    let parity = exchange_parities(&at_x, &at_px, &weights, 3);
    assert!((parity[0] - 1.0).abs() < 1e-12, "{parity:?}");
    assert!((parity[1] + 1.0).abs() < 1e-12, "{parity:?}");
    assert!(parity[2].abs() < 0.9, "{parity:?}");
    assert_eq!(
        parity.iter().map(|p| parity_label(*p)).collect::<Vec<_>>(),
        ["symmetric", "antisymmetric", "mixed"]
    );
}

#[test]
fn an_expression_sees_each_particle() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let pts: Vec<f64> = (0..2 * 300).map(|_| rng.random_range(-6.0..6.0)).collect();
    // The 1D model written with p0 and p1 equals the host's built-in.
    let expr = "-2.0 / sqrt(p0 * p0 + 1.0) - 2.0 / sqrt(p1 * p1 + 1.0) \
                + 1.0 / sqrt((p0 - p1) * (p0 - p1) + 1.0)";
    let gpu = WgslField::with_particles(ctx(), expr, 2, 2)
        .unwrap()
        .values(&pts, 2)
        .unwrap();
    let host = soft_coulomb_potential(2.0).values(&pts, 2).unwrap();
    for (g, h) in gpu.iter().zip(&host) {
        assert!((g - h).abs() <= 1e-5 * (1.0 + h.abs()), "{g} vs {h}");
    }
    // Three particles in 1D, and a particle seen as a vector: the distance between particles
    // 0 and 1 of two particles in 1D is |x.x − x.y|.
    let three: Vec<f64> = (0..3 * 50).map(|_| rng.random_range(-2.0..2.0)).collect();
    let v = WgslField::with_particles(ctx(), "p0 + 2.0 * p1 + 3.0 * p2", 3, 3)
        .unwrap()
        .values(&three, 3)
        .unwrap();
    for (r, val) in three.chunks(3).zip(&v) {
        let want = r[0] + 2.0 * r[1] + 3.0 * r[2];
        assert!((val - want).abs() < 1e-5, "{val} vs {want}");
    }
    // Two particles in 3D: a 6-coordinate configuration (an array in WGSL) and helium's
    // potential written with p0 and p1 against the host's built-in.
    let six: Vec<f64> = (0..6 * 200).map(|_| rng.random_range(-4.0..4.0)).collect();
    let expr = "-2.0 / length(p0) - 2.0 / length(p1) + 1.0 / length(p0 - p1)";
    let gpu = WgslField::with_particles(ctx(), expr, 6, 2)
        .unwrap()
        .values(&six, 6)
        .unwrap();
    let host = helium_potential(2.0).values(&six, 6).unwrap();
    for (g, h) in gpu.iter().zip(&host) {
        assert!((g - h).abs() <= 1e-4 * (1.0 + h.abs()), "{g} vs {h}");
    }
    // Particles that do not share the coordinates evenly are refused.
    assert!(WgslField::with_particles(ctx(), "p0", 3, 2).is_err());
}

/// The 1D helium model's levels from the grid: the ground state is the literature's −2.2382
/// (Z = 2, softening 1, kinetic ½), singlets and triplets alternate, and the extrapolation
/// from a coarse grid already agrees with a finer one.
#[test]
fn the_one_dimensional_model_s_grid_reference() {
    let mut c = SchrodingerConfig::generic();
    c.set_potential("soft-coulomb");
    c.neig = 4;
    c.validate().unwrap();
    let coarse = c.grid_reference_at(64).unwrap();
    let fine = c.grid_reference_at(96).unwrap();
    assert_eq!(fine.len(), 4);
    assert!((fine[0] + 2.23825).abs() < 2e-4, "E0 = {}", fine[0]);
    for (a, b) in coarse.iter().zip(&fine) {
        eprintln!("{a} vs {b}: {:.1e}", (a - b).abs() / b.abs());
        assert!((a - b).abs() < 1e-4 * b.abs(), "{coarse:?} vs {fine:?}");
    }
    assert!(fine.windows(2).all(|w| w[0] < w[1]), "{fine:?}");
    // The ground state is a singlet (symmetric), the first excited level a triplet: the labels
    // alternate over the four lowest levels.
    let (_, parity) = c.grid_reference_with_parities(96).unwrap();
    assert_eq!(parity.len(), 4);
    for (k, p) in parity.iter().enumerate() {
        let want = if k % 2 == 0 { 1.0 } else { -1.0 };
        assert!(
            (p - want).abs() < 1e-6,
            "level {k}: parity {p}; all {parity:?}"
        );
    }
}

/// Helium's proposal in its 6D configuration space (one radial mixture per electron) is
/// unbiased for the uniform density on the box: E_q[w] = 1 and E_q[w x_i²] = D²/3 for every
/// coordinate, within 4 standard errors; its weights stay below 10 per particle.
#[test]
fn the_six_dimensional_proposal_is_unbiased() {
    let mut c = SchrodingerConfig::generic();
    c.set_potential("helium");
    c.validate().unwrap();
    assert_eq!((c.dim, c.particles, c.particle_dim()), (6, 2, 3));
    check_unbiased(&c, c.fixed_proposal().unwrap().as_ref(), 21);
}

/// The per-particle adaptive proposal after a fit to a one-particle density concentrated off
/// the origin: its grid follows the density (a cell there gets far more than a corner cell's
/// share), and it stays unbiased, its weights bounded by 10 per particle.
#[test]
fn the_per_particle_adaptive_proposal_follows_the_density_and_stays_unbiased() {
    let mut c = SchrodingerConfig::generic();
    c.set_potential("helium");
    c.sampler = spectral_inference::experiments::schrodinger::SamplerKind::Adaptive;
    c.validate().unwrap();
    let mut q = c.particle_proposal(true).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (pts, w) = q.sample(&mut rng, 50_000);
    // Mass w·ρ(x) with ρ a product of one-particle bumps at (3, 0, 0).
    let bump = |p: &[f64]| (-((p[0] - 3.0).powi(2) + p[1] * p[1] + p[2] * p[2])).exp();
    let mass: Vec<f64> = pts
        .chunks(6)
        .zip(&w)
        .map(|(x, w)| w * bump(&x[..3]) * bump(&x[3..]))
        .collect();
    q.fit_marginal(&pts, &mass).unwrap();
    let probs = q.state();
    let cells = probs.len();
    assert_eq!(cells, 24 * 24 * 24);
    // The cell holding (3, 0, 0) against a corner's (the floor's share only).
    let side = 20.0 / 24.0;
    let index = |v: f64| ((v + 10.0) / side).floor() as usize;
    let at = probs[(index(3.0) * 24 + index(0.0)) * 24 + index(0.0)];
    assert!(at > 100.0 * probs[0], "bump cell {at}, corner {}", probs[0]);
    check_unbiased(&c, &q, 22);
    // The wrong number of masses is refused.
    assert!(q.fit_marginal(&pts, &mass[1..]).is_err());
}

fn check_unbiased(c: &SchrodingerConfig, q: &dyn Sampler, seed: u64) {
    assert_eq!(q.dim(), 6);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let count = 400_000;
    let (pts, w) = q.sample(&mut rng, count);
    let mean_sd = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64;
        (m, (var / v.len() as f64).sqrt())
    };
    let wmax = w.iter().cloned().fold(0.0, f64::max);
    // Points that a radial component draws outside the box weigh 0 (p is 0 there).
    assert!(
        w.iter().all(|&x| x >= 0.0) && wmax <= 100.0 + 1e-6,
        "max weight {wmax}"
    );
    let (m, se) = mean_sd(&w);
    assert!((m - 1.0).abs() < 4.0 * se, "E[w] = {m} ± {se}");
    let d = c.half_width;
    for i in 0..6 {
        let v: Vec<f64> = (0..count)
            .map(|r| w[r] * pts[r * 6 + i] * pts[r * 6 + i])
            .collect();
        let (m, se) = mean_sd(&v);
        let want = d * d / 3.0;
        assert!(
            (m - want).abs() < 4.0 * se,
            "coordinate {i}: E[w x²] = {m} ± {se}, want {want}"
        );
    }
}
