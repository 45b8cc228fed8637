//! The exchange-symmetrised network f_s(x) = (f(x) ± f(Px))/2 (`--exchange`) and the particle
//! distance features (`--particle-features`): the symmetry holds exactly, the forward-mode
//! derivatives and the parameter gradient match finite differences (CPU f64 oracle), and one GPU
//! step matches the oracle step for the finite-difference stencil, the exact Laplacian and the
//! weak form.

use super::common;

use std::sync::Arc;

use common::{check_engine, tangent_inputs};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spectral_inference::nn::oracle::{backward, forward, forward_rows};
use spectral_inference::nn::{particle_inputs, Exchange, NetworkSpec, ParticleFeatures};
use spectral_inference::operators::samplers::{Sampler, UniformBox};
use spectral_inference::operators::{Batch, Operator, ScalarField};
use spectral_inference::spin::{Engine, EngineOptions, SigmaGradient};

/// A network on two particles of `pd` coordinates each (plus a radial feature when `radial`).
fn net(pd: usize, radial: bool, antisymmetric: bool, envelope: Option<f32>) -> NetworkSpec {
    NetworkSpec {
        input_dim: 2 * pd + radial as usize,
        particle_features: None,
        hidden: vec![7, 6],
        outputs: 3,
        envelope,
        radial,
        exchange: Some(Exchange {
            particle_dim: pd,
            antisymmetric,
        }),
        ..Default::default()
    }
}

fn params(spec: &NetworkSpec, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    spec.init_params(&mut rng)
        .iter()
        .map(|&v| v as f64)
        .collect()
}

fn swap(x: &[f64], pd: usize) -> Vec<f64> {
    let mut y = x.to_vec();
    for i in 0..pd {
        y.swap(i, pd + i);
    }
    y
}

/// [`net`] with the particle distance features of `particles` particles of `pd` coordinates.
fn net_with_distances(
    particles: usize,
    pd: usize,
    radial: bool,
    antisymmetric: bool,
) -> NetworkSpec {
    let f = ParticleFeatures {
        particles,
        particle_dim: pd,
    };
    NetworkSpec {
        input_dim: particles * pd + radial as usize + f.count(),
        particle_features: Some(f),
        ..net(pd, radial, antisymmetric, Some(3.0))
    }
}

/// Network inputs for points (rows of d coordinates) with `channels` channels: the spec's
/// features appended in f64, as a batch appends them (radial, then the particle distances).
fn features(spec: &NetworkSpec, rows: Vec<f64>, channels: usize) -> Vec<f64> {
    let d = spec.space_dim();
    let mut out = match spec.radial {
        true => spectral_inference::nn::radial_inputs(&rows, d, channels),
        false => rows,
    };
    if let Some(f) = spec.particle_features {
        out = particle_inputs(&out, d + spec.radial as usize, channels, f);
    }
    out
}

/// A potential symmetric under the swap of two particles of `pd` coordinates.
fn pair_potential(pd: usize) -> ScalarField {
    Arc::new(move |x: &[f64]| {
        let r = |p: &[f64]| p.iter().map(|v| v * v).sum::<f64>().sqrt();
        let diff: Vec<f64> = (0..pd).map(|i| x[i] - x[pd + i]).collect();
        -1.0 / (r(&x[..pd]) + 0.3) - 1.0 / (r(&x[pd..2 * pd]) + 0.3) + 0.5 / (r(&diff) + 0.5)
    })
}

#[test]
fn exchanged_outputs_have_the_exchange_symmetry_exactly() {
    let cases = [
        net(1, false, true, Some(3.0)),
        net(3, false, false, Some(3.0)),
        net(2, true, true, Some(3.0)),
        net_with_distances(2, 3, false, true),
        net_with_distances(3, 2, true, false),
    ];
    for spec in cases {
        spec.validate().unwrap();
        let pd = spec.exchange.unwrap().particle_dim;
        let anti = spec.exchange.unwrap().antisymmetric;
        let d = spec.space_dim();
        let theta = params(&spec, 1);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let x: Vec<f64> = (0..5 * d).map(|_| rng.random_range(-2.0..2.0)).collect();
        let px: Vec<f64> = x.chunks(d).flat_map(|p| swap(p, pd)).collect();
        let u = forward(&spec, &theta, &features(&spec, x.clone(), 1)).u;
        let up = forward(&spec, &theta, &features(&spec, px, 1)).u;
        let sign = if anti { -1.0 } else { 1.0 };
        let size = u.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(size > 1e-8, "outputs should not vanish: {size}");
        for (a, b) in u.iter().zip(&up) {
            assert!(
                (b - sign * a).abs() < 1e-12 * (1.0 + a.abs()),
                "pd {pd}: u(Px) = {b}, s·u(x) = {}",
                sign * a
            );
        }
        // The exchange is the only thing that symmetrises: without it, outputs are not.
        let plain = NetworkSpec {
            exchange: None,
            ..spec.clone()
        };
        let f = forward(&plain, &theta, &features(&spec, x.clone(), 1)).u;
        assert!(f.iter().zip(&u).any(|(a, b)| (a - b).abs() > 1e-6));
    }
}

#[test]
fn exchanged_tangents_match_finite_differences() {
    let cases = [
        net(1, false, true, Some(2.5)),
        net(2, true, false, Some(2.5)),
        net(3, false, true, Some(2.5)),
        net_with_distances(2, 3, false, true),
        net_with_distances(3, 2, true, false),
        NetworkSpec {
            exchange: None,
            ..net_with_distances(2, 2, false, false)
        },
    ];
    for spec in cases {
        let d = spec.space_dim();
        let pd = spec.particle_features.map_or(d, |f| f.particle_dim);
        let theta = params(&spec, 3 + d as u64);
        let s = 4;
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let x: Vec<f64> = (0..s * d).map(|_| rng.random_range(-1.5..1.5)).collect();
        let fwd = forward_rows(
            &spec,
            &theta,
            &features(&spec, tangent_inputs(&x, d), d + 2),
            d + 2,
            s,
        );
        let n = spec.outputs;
        let u_at = |p: &[f64]| forward(&spec, &theta, &features(&spec, p.to_vec(), 1)).u;
        let h = 1e-3;
        for b in 0..s {
            let x0 = &x[b * d..(b + 1) * d];
            let u0 = u_at(x0);
            let mut lap = vec![0.0; n];
            for i in 0..d {
                let (mut xp, mut xm) = (x0.to_vec(), x0.to_vec());
                xp[i] += h;
                xm[i] -= h;
                let (up, um) = (u_at(&xp), u_at(&xm));
                for m in 0..n {
                    lap[m] += (up[m] + um[m] - 2.0 * u0[m]) / (h * h);
                    let fd = (up[m] - um[m]) / (2.0 * h);
                    let grad = fwd.u[((i + 1) * s + b) * n + m];
                    assert!(
                        (grad - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                        "pd {pd}: ∂{i}u{m} at sample {b}: {grad} vs fd {fd}"
                    );
                }
            }
            for m in 0..n {
                assert!((fwd.u[b * n + m] - u0[m]).abs() < 1e-12);
                let exact = fwd.u[((d + 1) * s + b) * n + m];
                assert!(
                    (exact - lap[m]).abs() < 1e-4 * (1.0 + lap[m].abs()),
                    "pd {pd} ({:?}, radial {}): Δu{m} at sample {b}: {exact} vs fd {}",
                    spec.particle_features,
                    spec.radial,
                    lap[m]
                );
            }
        }
    }
}

#[test]
fn exchanged_parameter_gradient_matches_finite_differences() {
    // Plain rows and forward-mode rows: the gradient of Σ c·u through the exchange's transpose.
    for (pd, channels) in [(1, 1), (2, 1), (1, 4), (2, 6)] {
        let spec = net(pd, false, pd == 1, Some(2.5));
        let d = spec.space_dim();
        let theta = params(&spec, 7);
        let s = 5;
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let x: Vec<f64> = (0..s * d).map(|_| rng.random_range(-1.5..1.5)).collect();
        let inputs = if channels == 1 {
            x
        } else {
            tangent_inputs(&x, d)
        };
        let rows = s * channels;
        let c: Vec<f64> = (0..rows * spec.outputs)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let loss = |th: &[f64]| -> f64 {
            forward_rows(&spec, th, &inputs, channels, s)
                .u
                .iter()
                .zip(&c)
                .map(|(u, c)| u * c)
                .sum()
        };
        let fwd = forward_rows(&spec, &theta, &inputs, channels, s);
        let grad = backward(&spec, &theta, &inputs, &fwd, &c);
        let h = 1e-6;
        for p in 0..theta.len() {
            let (mut tp, mut tm) = (theta.clone(), theta.clone());
            tp[p] += h;
            tm[p] -= h;
            let fd = (loss(&tp) - loss(&tm)) / (2.0 * h);
            let err = (grad[p] - fd).abs() / grad[p].abs().max(fd.abs()).max(1e-3);
            assert!(
                err < 1e-5,
                "pd {pd}, channels {channels}, param {p}: {} vs fd {fd}",
                grad[p]
            );
        }
    }
}

fn batch(op: &Operator, dim: usize, count: usize, seed: u64) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (points, _) = UniformBox {
        dim,
        half_width: 1.8,
    }
    .sample(&mut rng, count);
    let weights: Vec<f64> = (0..count).map(|_| rng.random_range(0.5..1.5)).collect();
    op.batch(&points, dim, &weights).unwrap()
}

fn fused() -> EngineOptions {
    EngineOptions {
        sigma: SigmaGradient::Fused,
        ..Default::default()
    }
}

#[test]
fn exchanged_step_matches_the_oracle_with_the_fd_stencil() {
    let spec = net(2, false, true, Some(2.0));
    let op = Operator::hamiltonian_fd(4, 0.5, 0.1, pair_potential(2)).unwrap();
    check_engine(&spec, &batch(&op, 4, 11, 1), 1.0, 2, fused());
}

#[test]
fn exchanged_step_matches_the_oracle_with_the_exact_laplacian() {
    let spec = net(3, false, false, Some(2.0));
    let op = Operator::hamiltonian_exact(6, 0.5, pair_potential(3)).unwrap();
    check_engine(&spec, &batch(&op, 6, 9, 3), 1.0, 4, fused());
}

#[test]
fn exchanged_step_matches_the_oracle_with_the_weak_form_and_radial_feature() {
    let spec = net(1, true, true, Some(2.0));
    let op = Operator::hamiltonian_weak(2, 0.5, pair_potential(1)).unwrap();
    let mut b = batch(&op, 2, 13, 5);
    b.add_radial_feature();
    check_engine(&spec, &b, 1.0, 6, fused());
}

#[test]
fn exchanged_step_with_particle_distances_matches_the_oracle() {
    // Helium's network: two particles in 3D with |p0|, |p1|, |p0 − p1| as inputs, the exact
    // Laplacian and the weak form; the swapped copy swaps |p0| and |p1| on every channel.
    let spec = net_with_distances(2, 3, false, true);
    for op in [
        Operator::hamiltonian_exact(6, 0.5, pair_potential(3)).unwrap(),
        Operator::hamiltonian_weak(6, 0.5, pair_potential(3)).unwrap(),
    ] {
        let mut b = batch(&op, 6, 9, 11);
        b.add_features(&spec);
        check_engine(&spec, &b, 1.0, 12, fused());
    }
    // Without exchange, at β < 1 (the Σ-Jacobian path) too.
    let plain = NetworkSpec {
        exchange: None,
        ..net_with_distances(3, 2, false, false)
    };
    let op = Operator::hamiltonian_exact(6, 0.5, pair_potential(3)).unwrap();
    let mut b = batch(&op, 6, 7, 13);
    b.add_features(&plain);
    check_engine(&plain, &b, 0.5, 14, EngineOptions::default());
}

#[test]
fn exchange_is_refused_where_it_cannot_work() {
    // β < 1 (the Σ-Jacobian's moving average is not built for it).
    let spec = net(1, false, true, Some(2.0));
    let op = Operator::hamiltonian_fd(2, 0.5, 0.1, pair_potential(1)).unwrap();
    let b = batch(&op, 2, 8, 7);
    let err = Engine::new(common::ctx(), &spec, b.shape, true)
        .err()
        .expect("the J̄ path refuses exchange");
    assert!(err.to_string().contains("β = 1"), "{err}");
    // Evaluation engines take it at any β.
    assert!(Engine::new(common::ctx(), &spec, b.shape, false).is_ok());
    // Particles larger than the point.
    let bad = NetworkSpec {
        exchange: Some(Exchange {
            particle_dim: 2,
            antisymmetric: false,
        }),
        ..net(1, false, false, None)
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("swaps two particles"));
}
