//! Finite-difference checks of every hand-written derivative, and the maths §2 checks that pin
//! down the masked gradient.

use super::common;

use std::sync::Arc;

use common::{assert_close, ctx, scale, tangent_inputs};
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spectral_inference::nn::oracle::{
    backward, forward, forward_rows, pair_index, sensitivities, sigma_jacobian,
};
use spectral_inference::nn::NetworkSpec;
use spectral_inference::operators::samplers::{OneHot, Sampler, UniformBox};
use spectral_inference::operators::{apply, statistics, Batch, Operator};
use spectral_inference::spin::host::{flat, step_matrices};
use spectral_inference::spin::{oracle, Engine, EngineOptions, SigmaGradient};

fn spec() -> NetworkSpec {
    NetworkSpec {
        input_dim: 2,
        hidden: vec![6, 5],
        outputs: 3,
        envelope: Some(2.5),
        radial: false,
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

fn points(count: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    UniformBox {
        dim: 2,
        half_width: 2.0,
    }
    .sample(&mut rng, count)
    .0
}

fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / (a.abs().max(b.abs()).max(1e-3))
}

#[test]
fn mlp_vjp_matches_finite_differences() {
    let spec = spec();
    let theta = params(&spec, 1);
    let x = points(9, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let c: Vec<f64> = (0..9 * 3).map(|_| rng.random_range(-1.0..1.0)).collect();
    let loss = |th: &[f64]| {
        forward(&spec, th, &x)
            .u
            .iter()
            .zip(&c)
            .map(|(u, c)| u * c)
            .sum::<f64>()
    };
    let fwd = forward(&spec, &theta, &x);
    let grad = backward(&spec, &theta, &x, &fwd, &c);
    let h = 1e-6;
    for p in 0..theta.len() {
        let mut tp = theta.clone();
        tp[p] += h;
        let mut tm = theta.clone();
        tm[p] -= h;
        let fd = (loss(&tp) - loss(&tm)) / (2.0 * h);
        assert!(
            rel_err(grad[p], fd) < 1e-6,
            "param {p}: analytic {} vs fd {fd}",
            grad[p]
        );
    }
}

#[test]
fn per_sample_sigma_jacobian_matches_finite_differences() {
    let spec = spec();
    let theta = params(&spec, 4);
    let s = 7;
    let x = points(s, 5);
    let w: Vec<f64> = (0..s).map(|i| 0.5 + i as f64 * 0.1).collect();
    let n = spec.outputs;
    let fwd = forward(&spec, &theta, &x);
    let sens = sensitivities(&spec, &theta, &fwd, s);
    let jac = sigma_jacobian(&spec, &x, &fwd, &sens, &w);
    let p_total = theta.len();
    let h = 1e-6;
    for p in 0..p_total {
        let mut tp = theta.clone();
        tp[p] += h;
        let mut tm = theta.clone();
        tm[p] -= h;
        let (up, um) = (forward(&spec, &tp, &x).u, forward(&spec, &tm, &x).u);
        for k in 0..n {
            for j in 0..=k {
                let fd: f64 = (0..s)
                    .map(|b| {
                        2.0 / s as f64 * w[b] * fwd.u[b * n + j] * (up[b * n + k] - um[b * n + k])
                            / (2.0 * h)
                    })
                    .sum();
                let an = jac[pair_index(j, k) * p_total + p];
                assert!(
                    rel_err(an, fd) < 1e-5,
                    "Ĵ[{j},{k},{p}]: analytic {an} vs fd {fd}"
                );
            }
        }
    }
}

#[test]
fn beta_one_sigma_term_equals_backprop_of_two_u_g_sigma() {
    let spec = spec();
    let theta = params(&spec, 6);
    let op = Operator::hamiltonian_fd(
        2,
        1.0,
        0.1,
        Arc::new(|x: &[f64]| 0.5 * (x[0] * x[0] + x[1] * x[1])),
    )
    .unwrap();
    let x = points(11, 7);
    let w: Vec<f64> = (0..11).map(|i| 0.7 + 0.05 * i as f64).collect();
    let batch = op.batch(&x, 2, &w).unwrap();
    let n = spec.outputs;
    let p = theta.len();
    let step = oracle::step(
        &spec,
        &theta,
        &batch,
        &DMatrix::identity(n, n),
        &vec![0.0; n * (n + 1) / 2 * p],
        1.0,
    )
    .unwrap();
    let mut sigma_term = vec![0.0; p];
    for k in 0..n {
        for j in 0..=k {
            for (t, r) in sigma_term
                .iter_mut()
                .zip(&step.jacobian[pair_index(j, k) * p..][..p])
            {
                *t += step.matrices.g_sigma[(j, k)] * r;
            }
        }
    }
    // Cotangent 2 w U G_Σ / S on the sample rows' outputs, zero elsewhere, through the envelope.
    let s = batch.shape.samples;
    let inputs: Vec<f64> = batch.inputs.iter().map(|&v| v as f64).collect();
    let fwd = &step.forward;
    let g = &step.matrices.g_sigma;
    let mut cot = vec![0.0; batch.shape.rows * n];
    for b in 0..s {
        for k in 0..n {
            let ug: f64 = (0..n).map(|j| fwd.u[b * n + j] * g[(j, k)]).sum();
            cot[b * n + k] = 2.0 * batch.sample_weights[b] as f64 * ug / s as f64;
        }
    }
    let direct = backward(&spec, &theta, &inputs, fwd, &cot);
    for i in 0..p {
        assert!(
            (sigma_term[i] - direct[i]).abs() < 1e-10 * scale(&direct).max(1.0),
            "param {i}: Σ_jk G_Σ Ĵ = {} vs backprop {}",
            sigma_term[i],
            direct[i]
        );
    }
}

/// Linear model on one-hot inputs with a kernel operator: output k owns W[:, k] and b_k.
fn masked_setup() -> (NetworkSpec, Vec<f64>, Batch) {
    let n_states = 5;
    let spec = NetworkSpec {
        input_dim: n_states,
        hidden: vec![],
        outputs: 3,
        envelope: None,
        radial: false,
        ..Default::default()
    };
    let theta = params(&spec, 8);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let a = DMatrix::from_fn(n_states, n_states, |_, _| rng.random_range(-1.0..1.0));
    let m = a.transpose() * &a;
    let op = Operator::pair_kernel(Arc::new(move |x: &[f64], y: &[f64]| {
        n_states as f64 * m[(OneHot::decode(x), OneHot::decode(y))]
    }));
    // All pairs: Π̂ is then symmetric, as Π is; the masked gradient is the derivative of Λ_kk for
    // symmetric Π̂ (with a sampled, non-symmetric Π̂ it also sees Λ_kj ≠ Λ_jk).
    let sampler = OneHot::new(n_states).unwrap();
    let (pts, w) = sampler.exhaustive().unwrap();
    (spec, theta, op.batch(&pts, n_states, &w).unwrap())
}

fn lambda_kk(spec: &NetworkSpec, theta: &[f64], batch: &Batch, k: usize) -> f64 {
    let n = spec.outputs;
    let inputs: Vec<f64> = batch.inputs.iter().map(|&v| v as f64).collect();
    let u = forward(spec, theta, &inputs).u;
    let (xs, ys) = apply(batch, &u, n);
    let (sigma, pi) = statistics(batch, &u, &xs, &ys, n);
    let to_m = |v: &[f64]| DMatrix::from_fn(n, n, |i, j| v[i * n + j]);
    step_matrices(&to_m(&sigma), &to_m(&pi)).unwrap().lambda[(k, k)]
}

#[test]
fn masked_gradient_is_d_lambda_kk_d_theta_k() {
    let (spec, theta, batch) = masked_setup();
    let n = spec.outputs;
    let p = theta.len();
    let step = oracle::step(
        &spec,
        &theta,
        &batch,
        &DMatrix::identity(n, n),
        &vec![0.0; n * (n + 1) / 2 * p],
        1.0,
    )
    .unwrap();
    // GPU gradients for the same step, from the GPU's own statistics: through J̄ and fused.
    let gpu: Vec<Vec<f32>> = [SigmaGradient::Jacobian, SigmaGradient::Fused]
        .into_iter()
        .map(|sigma| {
            let options = EngineOptions {
                sigma,
                ..Default::default()
            };
            let engine = Engine::with_options(ctx(), &spec, batch.shape, true, options).unwrap();
            engine
                .set_params(&theta.iter().map(|&v| v as f32).collect::<Vec<_>>())
                .unwrap();
            engine.set_batch(&batch).unwrap();
            engine.statistics().unwrap();
            let m = &step.matrices;
            engine
                .gradient(&flat(&m.g_pi), &flat(&m.g_sigma), 1.0)
                .unwrap()
        })
        .collect();
    let layer = spec.layers()[0];
    let h = 1e-6;
    let mut fd_all = vec![0.0; p];
    for k in 0..n {
        let owned: Vec<usize> = (0..layer.inputs)
            .map(|i| layer.w(i, k))
            .chain([layer.b(k)])
            .collect();
        for &q in &owned {
            let mut tp = theta.clone();
            tp[q] += h;
            let mut tm = theta.clone();
            tm[q] -= h;
            let fd =
                (lambda_kk(&spec, &tp, &batch, k) - lambda_kk(&spec, &tm, &batch, k)) / (2.0 * h);
            fd_all[q] = fd;
            assert!(
                rel_err(step.grad[q], fd) < 1e-6,
                "output {k}, param {q}: masked gradient {} vs ∂Λ_kk/∂θ_k {fd}",
                step.grad[q]
            );
        }
    }
    for (g, path) in gpu.iter().zip(["J̄", "fused"]) {
        assert_close(
            &format!("gpu masked gradient ({path}) vs finite differences"),
            g,
            &fd_all,
            1e-3,
            1e-3 * scale(&fd_all),
        );
    }
}

#[test]
fn decay_zero_is_beta_one() {
    // The reference's decay = 0 means "no moving average": Σ̄ = Σ̂ and J̄ = Ĵ whatever came before.
    let (spec, theta, batch) = masked_setup();
    let n = spec.outputs;
    let p = theta.len();
    let a = oracle::step(
        &spec,
        &theta,
        &batch,
        &DMatrix::identity(n, n),
        &vec![0.0; n * (n + 1) / 2 * p],
        1.0,
    )
    .unwrap();
    let b = oracle::step(
        &spec,
        &theta,
        &batch,
        &(DMatrix::identity(n, n) * 3.0),
        &vec![0.7; n * (n + 1) / 2 * p],
        1.0,
    )
    .unwrap();
    for i in 0..p {
        assert!((a.grad[i] - b.grad[i]).abs() < 1e-12);
    }
}

#[test]
fn exact_laplacian_matches_finite_differences_of_the_network() {
    let cases = [
        (1, Some(3.0), false),
        (2, Some(2.5), false),
        (3, None, false),
        (3, Some(2.0), false),
        (2, Some(2.5), true),
        (3, None, true),
    ];
    for (d, envelope, radial) in cases {
        let spec = NetworkSpec {
            input_dim: d + radial as usize,
            hidden: vec![7, 5],
            outputs: 3,
            envelope,
            radial,
            ..Default::default()
        };
        // The network's inputs for value rows or forward-mode rows of points in R^d.
        let features = |rows: Vec<f64>, channels: usize| {
            if radial {
                spectral_inference::nn::radial_inputs(&rows, d, channels)
            } else {
                rows
            }
        };
        let theta = params(&spec, 10 + d as u64);
        let s = 6;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let x: Vec<f64> = (0..s * d).map(|_| rng.random_range(-1.5..1.5)).collect();
        let fwd = forward_rows(
            &spec,
            &theta,
            &features(tangent_inputs(&x, d), d + 2),
            d + 2,
            s,
        );
        let n = spec.outputs;
        let u_at = |p: &[f64]| forward(&spec, &theta, &features(p.to_vec(), 1)).u;
        let h = 1e-3;
        for b in 0..s {
            let x0 = &x[b * d..(b + 1) * d];
            let u0 = u_at(x0);
            let mut lap = vec![0.0; n];
            for i in 0..d {
                let mut xp = x0.to_vec();
                xp[i] += h;
                let mut xm = x0.to_vec();
                xm[i] -= h;
                let (up, um) = (u_at(&xp), u_at(&xm));
                for m in 0..n {
                    lap[m] += (up[m] + um[m] - 2.0 * u0[m]) / (h * h);
                    let grad_fd = (up[m] - um[m]) / (2.0 * h);
                    let grad = fwd.u[((i + 1) * s + b) * n + m];
                    assert!(
                        (grad - grad_fd).abs() < 1e-6 * (1.0 + grad_fd.abs()),
                        "d {d} (radial {radial}), sample {b}, ∂{i}u{m}: {grad} vs fd {grad_fd}"
                    );
                }
            }
            for m in 0..n {
                assert!((fwd.u[b * n + m] - u0[m]).abs() < 1e-12);
                let exact = fwd.u[((d + 1) * s + b) * n + m];
                assert!(
                    (exact - lap[m]).abs() < 1e-4 * (1.0 + lap[m].abs()),
                    "d {d} (radial {radial}), sample {b}, Δu{m}: forward mode {exact} vs fd {}",
                    lap[m]
                );
            }
        }
    }
}

#[test]
fn tangent_backward_matches_finite_differences() {
    for (d, envelope) in [(2, Some(2.5)), (3, None)] {
        let spec = NetworkSpec {
            input_dim: d,
            hidden: vec![6, 5],
            outputs: 2,
            envelope,
            radial: false,
            ..Default::default()
        };
        let theta = params(&spec, 20 + d as u64);
        let s = 5;
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let x: Vec<f64> = (0..s * d).map(|_| rng.random_range(-1.5..1.5)).collect();
        let inputs = tangent_inputs(&x, d);
        let rows = s * (d + 2);
        let c: Vec<f64> = (0..rows * spec.outputs)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let loss = |th: &[f64]| -> f64 {
            forward_rows(&spec, th, &inputs, d + 2, s)
                .u
                .iter()
                .zip(&c)
                .map(|(u, c)| u * c)
                .sum()
        };
        let fwd = forward_rows(&spec, &theta, &inputs, d + 2, s);
        let grad = backward(&spec, &theta, &inputs, &fwd, &c);
        let h = 1e-6;
        for p in 0..theta.len() {
            let mut tp = theta.clone();
            tp[p] += h;
            let mut tm = theta.clone();
            tm[p] -= h;
            let fd = (loss(&tp) - loss(&tm)) / (2.0 * h);
            assert!(
                rel_err(grad[p], fd) < 1e-5,
                "d {d}, param {p}: analytic {} vs fd {fd}",
                grad[p]
            );
        }
    }
}

#[test]
fn weak_form_equals_laplacian_form_by_parts() {
    // With the envelope, u = 0 on the box boundary, so ⟨∇u_j, ∇u_k⟩ = ⟨u_j, −Δu_k⟩: the weak
    // form's Π and the exact Laplacian's Π agree as integrals. Midpoint rule on a fine grid
    // (smooth integrands: O(h²) error).
    let d = 2;
    let half = 2.5;
    let spec = NetworkSpec {
        input_dim: d,
        hidden: vec![7, 5],
        outputs: 3,
        envelope: Some(half as f32),
        radial: false,
        ..Default::default()
    };
    let theta = params(&spec, 41);
    let m = 240;
    let h = 2.0 * half / m as f64;
    let mut pts = Vec::with_capacity(m * m * d);
    for i in 0..m {
        for j in 0..m {
            pts.push(-half + (i as f64 + 0.5) * h);
            pts.push(-half + (j as f64 + 0.5) * h);
        }
    }
    let w = vec![1.0; m * m];
    let n = spec.outputs;
    let pi_of = |op: Operator| {
        let batch = op.batch(&pts, d, &w).unwrap();
        let inputs: Vec<f64> = pts
            .iter()
            .copied()
            .chain(batch.inputs[pts.len()..].iter().map(|&v| v as f64))
            .collect();
        let fwd = forward_rows(
            &spec,
            &theta,
            &inputs,
            batch.shape.channels,
            batch.shape.samples,
        );
        let (xs, ys) = apply(&batch, &fwd.u, n);
        statistics(&batch, &fwd.u, &xs, &ys, n).1
    };
    let weak = pi_of(Operator::dirichlet_form(d));
    let strong = pi_of(Operator::laplacian_exact(d).scaled(-1.0));
    let big = weak.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    for j in 0..n {
        for k in 0..n {
            let (a, b) = (weak[j * n + k], strong[j * n + k]);
            assert!(
                (a - b).abs() < 2e-3 * big,
                "Π[{j},{k}]: weak {a} vs Laplacian {b} (largest |Π| {big})"
            );
            // The weak form is symmetric batch by batch.
            assert!((a - weak[k * n + j]).abs() < 1e-12 * big);
        }
    }
}
