//! β = 1's fused gradient (the Σ term as a cotangent in the Π-VJP's backward pass, no J̄)
//! against the J̄ path and the CPU f64 oracle, for every operator and layer kind; finite
//! differences of the whole masked gradient; and no O(N²·P) buffer.

use super::common;

use std::sync::Arc;

use common::{assert_close, ctx, scale};
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spectral_inference::nn::{Activation, Conv2dSpec, ImageShape, NetworkSpec, Padding};
use spectral_inference::operators::samplers::{OneHot, Sampler, UniformBox};
use spectral_inference::operators::{Batch, Operator};
use spectral_inference::spin::host::flat;
use spectral_inference::spin::{oracle, Engine, EngineOptions, SigmaGradient};

/// An engine of `spec` with the Σ path `sigma`, its parameters and `batch` set and the statistics
/// (submit A) run: ready for [`Engine::gradient`].
fn ready_engine(spec: &NetworkSpec, batch: &Batch, params: &[f32], sigma: SigmaGradient) -> Engine {
    let options = EngineOptions {
        sigma,
        ..Default::default()
    };
    let engine = Engine::with_options(ctx(), spec, batch.shape, true, options).expect("engine");
    engine.set_params(params).unwrap();
    engine.set_batch(batch).unwrap();
    engine.statistics().unwrap();
    engine
}

/// One step of `spec` on `batch` at β = 1 on the fused engine and on the J̄ engine (from the
/// same parameters and a random Σ̄): the gradients agree within 1e-5 relative (and both with
/// the f64 oracle), and the fused engine allocates no J̄.
fn check_fused(spec: &NetworkSpec, batch: &Batch, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let params32 = spec.init_params(&mut rng);
    let params: Vec<f64> = params32.iter().map(|&v| v as f64).collect();
    let n = spec.outputs;
    let p = spec.num_params();
    let sigma_avg = common::random_spd(n, &mut rng);
    // β = 1: the oracle's step uses this batch's Σ̂ and Ĵ alone.
    let want = oracle::step(
        spec,
        &params,
        batch,
        &sigma_avg,
        &vec![0.0; n * (n + 1) / 2 * p],
        1.0,
    )
    .expect("oracle step");
    let m = &want.matrices;
    let zero = vec![0.0; n * n];
    // (G_Π, G_Σ) → gradient on an engine of each kind; the J̄ engine also gives the Π and Σ
    // terms alone, whose size sets the scale of f32 rounding in their sum.
    let run = |sigma: SigmaGradient, gs: &[(&[f64], &[f64])]| {
        let engine = ready_engine(spec, batch, &params32, sigma);
        let grads: Vec<Vec<f32>> = gs
            .iter()
            .map(|(gp, gs)| engine.gradient(gp, gs, 1.0).unwrap())
            .collect();
        (
            grads,
            engine.memory_bytes(),
            engine.read_jbar().unwrap().len(),
        )
    };
    let (g_pi, g_sigma) = (flat(&m.g_pi), flat(&m.g_sigma));
    let (fused, fused_bytes, fused_jbar) = run(SigmaGradient::Fused, &[(&g_pi, &g_sigma)]);
    let (jbar, jbar_bytes, jbar_len) = run(
        SigmaGradient::Jacobian,
        &[(&g_pi, &g_sigma), (&g_pi, &zero), (&zero, &g_sigma)],
    );
    let fused = &fused[0];
    assert_eq!(fused_jbar, 0, "a fused engine has no J̄");
    assert_eq!(jbar_len, n * (n + 1) / 2 * p);
    let jbar_floats = (n * (n + 1) / 2 * spec.gpu_params()) as u64;
    assert!(
        jbar_bytes - fused_bytes >= 2 * 4 * jbar_floats,
        "the fused engine should save J̄ and its undo copy ({jbar_floats} floats each): {fused_bytes} vs {jbar_bytes} bytes"
    );
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let minus = |a: &[f32], b: &[f64]| -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| *x as f64 - y).collect()
    };
    let terms = norm(&wide(&jbar[1])) + norm(&wide(&jbar[2]));
    let (err_fused, err_jbar) = (
        norm(&minus(fused, &want.grad)),
        norm(&minus(&jbar[0], &want.grad)),
    );
    // Both paths share the forward pass and differ only in f32 rounding after it: they agree
    // within 1e-5 of the Π and Σ terms' size, unless the J̄ path is itself further than that
    // from the f64 oracle (finite-difference stencils, the radial feature's 1/r channels), and
    // then within twice its own error.
    let rel = norm(&minus(fused, &wide(&jbar[0]))) / terms.max(1e-30);
    let allowed = 1e-5f64.max(2.0 * err_jbar / terms);
    assert!(
        rel < allowed,
        "fused vs J̄ gradient: difference {rel:.3e} of the Π and Σ terms' size (allowed {allowed:.1e})"
    );
    // Against the f64 oracle the fused gradient is at least as accurate as the J̄ path.
    assert!(
        err_fused <= 1.2 * err_jbar + 1e-6 * terms,
        "fused error {err_fused:.3e} vs the J̄ path's {err_jbar:.3e} (oracle)"
    );
    eprintln!(
        "fused − J̄: {rel:.2e} of the terms; |fused − oracle| {:.2e}, |J̄ − oracle| {:.2e} of the terms",
        err_fused / terms,
        err_jbar / terms
    );
    assert_close(
        "fused vs oracle",
        fused,
        &want.grad,
        2e-3,
        2e-3 * scale(&want.grad),
    );
}

fn uniform_batch(op: &Operator, dim: usize, count: usize, half_width: f64, seed: u64) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (points, _) = UniformBox { dim, half_width }.sample(&mut rng, count);
    let weights: Vec<f64> = (0..count).map(|_| rng.random_range(0.5..1.5)).collect();
    op.batch(&points, dim, &weights).unwrap()
}

fn coulomb(soft: f64) -> spectral_inference::operators::ScalarField {
    Arc::new(move |x: &[f64]| -1.0 / (x.iter().map(|v| v * v).sum::<f64>().sqrt() + soft))
}

fn mlp(input_dim: usize, hidden: Vec<usize>, outputs: usize, envelope: Option<f32>) -> NetworkSpec {
    NetworkSpec {
        input_dim,
        hidden,
        outputs,
        envelope,
        radial: false,
        ..Default::default()
    }
}

#[test]
fn fused_matches_jbar_with_the_fd_laplacian() {
    let spec = mlp(3, vec![9, 7], 4, Some(2.0));
    let op = Operator::hamiltonian_fd(3, 1.0, 0.1, coulomb(0.1)).unwrap();
    check_fused(&spec, &uniform_batch(&op, 3, 13, 1.9, 1), 2);
}

#[test]
fn fused_matches_jbar_with_the_exact_laplacian() {
    let spec = mlp(2, vec![11, 6], 5, Some(3.0));
    let op = Operator::hamiltonian_exact(2, 0.7, coulomb(0.2)).unwrap();
    check_fused(&spec, &uniform_batch(&op, 2, 17, 2.8, 3), 4);
}

#[test]
fn fused_matches_jbar_with_the_weak_form_and_the_radial_feature() {
    let mut spec = mlp(3, vec![10, 10], 6, Some(3.0));
    spec.radial = true;
    let op = Operator::hamiltonian_weak(2, 1.0, coulomb(0.1)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (points, _) = UniformBox {
        dim: 2,
        half_width: 2.9,
    }
    .sample(&mut rng, 15);
    let weights: Vec<f64> = (0..15).map(|_| rng.random_range(0.5..1.5)).collect();
    let mut batch = op.batch(&points, 2, &weights).unwrap();
    batch.add_radial_feature();
    check_fused(&spec, &batch, 6);
}

#[test]
fn fused_matches_jbar_with_a_kernel_on_pairs() {
    let n_states = 7;
    let spec = mlp(n_states, vec![], 4, None);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let a = DMatrix::from_fn(n_states, n_states, |_, _| rng.random_range(-1.0..1.0));
    let m = a.transpose() * &a;
    let op = Operator::pair_kernel(Arc::new(move |x: &[f64], y: &[f64]| {
        m[(OneHot::decode(x), OneHot::decode(y))]
    }));
    let sampler = OneHot::new(n_states).unwrap();
    let (points, _) = sampler.sample(&mut rng, 24);
    let weights = vec![1.0; 24];
    check_fused(&spec, &op.batch(&points, n_states, &weights).unwrap(), 8);
}

#[test]
fn fused_matches_jbar_with_slowness_on_a_dense_net_with_a_constant() {
    let mut spec = mlp(12, vec![9], 5, None);
    spec.activation = Activation::Relu;
    spec.constant_first = true;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let inputs: Vec<f32> = (0..3 * 6 * 12)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    check_fused(&spec, &Batch::slowness(&inputs, 12, 3, 6).unwrap(), 10);
}

#[test]
fn fused_matches_jbar_with_slowness_on_a_conv_net() {
    let (h, w, c) = (9, 8, 2);
    let conv = |channels, stride, padding| Conv2dSpec {
        channels,
        kernel: 3,
        stride,
        padding,
    };
    for constant_first in [false, true] {
        let spec = NetworkSpec {
            input_dim: h * w * c,
            image: Some(ImageShape {
                height: h,
                width: w,
                channels: c,
            }),
            conv: vec![conv(4, 2, Padding::Same), conv(6, 1, Padding::Valid)],
            hidden: vec![6],
            outputs: 4,
            activation: Activation::Relu,
            constant_first,
            ..Default::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let inputs: Vec<f32> = (0..2 * 5 * spec.input_dim)
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let batch = Batch::slowness(&inputs, spec.input_dim, 2, 5).unwrap();
        check_fused(&spec, &batch, 12 + constant_first as u64);
    }
}

/// A full G_Σ (the jointly nested objective's, maths §13) on the fused engine: the Σ term is
/// Σ_{j,k} (G_Σ)_jk E[2 u_j ∂u_k] over every pair, below the diagonal too — against the f64
/// oracle's backward pass with the cotangent (2/S) w_b Σ_j u_{b,j} (G_Σ)_jk on output k. The J̄
/// path, which holds j ≤ k only, refuses such a G_Σ.
fn check_full_sigma_cotangent(spec: &NetworkSpec, batch: &Batch, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let params32 = spec.init_params(&mut rng);
    let params: Vec<f64> = params32.iter().map(|&v| v as f64).collect();
    let n = spec.outputs;
    let g = DMatrix::from_fn(n, n, |_, _| rng.random_range(-1.0..1.0));
    let inputs: Vec<f64> = batch.inputs.iter().map(|&v| v as f64).collect();
    let fwd = spectral_inference::nn::oracle::forward_rows(
        spec,
        &params,
        &inputs,
        batch.shape.channels,
        batch.shape.samples,
    );
    let s = batch.shape.samples;
    let mut cot = vec![0.0; fwd.u.len()];
    for b in 0..s {
        let w = batch.sample_weights[b] as f64;
        for k in 0..n {
            let ug: f64 = (0..n).map(|j| fwd.u[b * n + j] * g[(j, k)]).sum();
            cot[b * n + k] = 2.0 / s as f64 * w * ug;
        }
    }
    let want = spectral_inference::nn::oracle::backward(spec, &params, &inputs, &fwd, &cot);
    let zero = vec![0.0; n * n];
    let engine = |sigma| ready_engine(spec, batch, &params32, sigma);
    let got = engine(SigmaGradient::Fused)
        .gradient(&zero, &flat(&g), 1.0)
        .unwrap();
    assert_close(
        "fused Σ term with a full G_Σ vs oracle",
        &got,
        &want,
        2e-3,
        2e-3 * scale(&want),
    );
    // Below the diagonal alone: not zero, so the sum over every j is what was checked.
    let lower = flat(&(g.lower_triangle() - DMatrix::from_diagonal(&g.diagonal())));
    let below = engine(SigmaGradient::Fused)
        .gradient(&zero, &lower, 1.0)
        .unwrap();
    assert!(below.iter().map(|v| v.abs() as f64).fold(0.0, f64::max) > 1e-3 * scale(&want));
    let err = engine(SigmaGradient::Jacobian)
        .gradient(&zero, &flat(&g), 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("upper triangular"), "{err}");
}

#[test]
fn fused_takes_a_full_sigma_cotangent_on_a_dense_net_and_a_conv_net() {
    let spec = mlp(3, vec![9, 7], 4, Some(2.0));
    let op = Operator::hamiltonian_fd(3, 1.0, 0.1, coulomb(0.1)).unwrap();
    check_full_sigma_cotangent(&spec, &uniform_batch(&op, 3, 13, 1.9, 21), 22);
    let spec = mlp(2, vec![8], 3, Some(3.0));
    let op = Operator::hamiltonian_exact(2, 0.7, coulomb(0.2)).unwrap();
    check_full_sigma_cotangent(&spec, &uniform_batch(&op, 2, 11, 2.8, 23), 24);
    let (h, w, c) = (9, 8, 2);
    let spec = NetworkSpec {
        input_dim: h * w * c,
        image: Some(ImageShape {
            height: h,
            width: w,
            channels: c,
        }),
        conv: vec![Conv2dSpec {
            channels: 4,
            kernel: 3,
            stride: 2,
            padding: Padding::Same,
        }],
        hidden: vec![6],
        outputs: 4,
        activation: Activation::Relu,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(25);
    let inputs: Vec<f32> = (0..2 * 5 * spec.input_dim)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let batch = Batch::slowness(&inputs, spec.input_dim, 2, 5).unwrap();
    check_full_sigma_cotangent(&spec, &batch, 26);
}

/// The fused engine refuses β < 1 (it keeps no J̄ to average).
#[test]
fn a_fused_engine_takes_only_beta_one() {
    let spec = mlp(2, vec![5], 3, Some(2.0));
    let op = Operator::hamiltonian_fd(2, 1.0, 0.1, coulomb(0.1)).unwrap();
    let batch = uniform_batch(&op, 2, 8, 1.5, 14);
    let options = EngineOptions {
        sigma: SigmaGradient::Fused,
        ..Default::default()
    };
    let engine = Engine::with_options(ctx(), &spec, batch.shape, true, options).unwrap();
    engine
        .set_params(&spec.init_params(&mut ChaCha8Rng::seed_from_u64(1)))
        .unwrap();
    engine.set_batch(&batch).unwrap();
    engine.statistics().unwrap();
    let eye = flat(&DMatrix::identity(3, 3));
    let err = engine.gradient(&eye, &eye, 0.5).unwrap_err().to_string();
    assert!(err.contains("β = 1"), "{err}");
    assert!(engine.gradient(&eye, &eye, 1.0).is_ok());
}

fn oscillator_trainer(beta: f64) -> spectral_inference::spin::Trainer {
    use spectral_inference::experiments::schrodinger::{harmonic_potential, FdBox};
    use spectral_inference::spin::{OptimizerConfig, OptimizerKind, TrainConfig, Trainer};
    let problem = FdBox {
        dim: 2,
        kinetic: 1.0,
        eps: 0.05,
        half_width: 4.0,
        hidden: vec![16, 16],
        neig: 3,
        envelope: true,
    }
    .problem(harmonic_potential())
    .unwrap();
    let config = TrainConfig {
        beta,
        batch: 64,
        steps: 100,
        seed: 5,
        optimizer: OptimizerConfig::new(OptimizerKind::Adam, 1e-3),
        eigen_ema: 0.01,
        exhaustive: false,
        shift: 0.0,
        gauge: 0.0,
        objective: Default::default(),
        tail: Default::default(),
        whiten_readout: 0.0,
    };
    Trainer::new(ctx(), problem, config).unwrap()
}

/// β = 1 trains on the fused engine and checkpoints no J̄; that checkpoint resumes at β < 1,
/// whose J̄ starts from the first step's Ĵ (the J̄ that β = 1 would have had); and a β < 1
/// checkpoint resumes at β = 1, which drops J̄.
#[test]
fn a_resumed_run_may_change_beta() {
    let dir = std::env::temp_dir().join(format!("spin-fused-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut fused = oscillator_trainer(1.0);
    assert!(fused.engine().is_fused());
    for _ in 0..5 {
        fused.step().unwrap();
    }
    let state = fused.state().unwrap();
    assert!(state.jbar.is_empty(), "a fused run keeps no J̄");
    spectral_inference::spin::checkpoint::save(&dir, &state, &serde_json::json!({})).unwrap();
    let (loaded, _) = spectral_inference::spin::checkpoint::load(&dir).unwrap();
    assert_eq!(loaded, state);

    // Resumed at β = 0.5 without J̄: J̄ = Ĵ after the first step. From the same state with
    // J̄ = 0 instead, the same step (same batch) gives J̄ = 0.5 Ĵ.
    let mut fresh = oscillator_trainer(0.5);
    assert!(!fresh.engine().is_fused());
    fresh.restore(&loaded).unwrap();
    fresh.step().unwrap();
    let jbar = fresh.engine().read_jbar().unwrap();
    let mut zeroed = oscillator_trainer(0.5);
    let mut from_zero = loaded.clone();
    from_zero.jbar = vec![0.0; jbar.len()];
    zeroed.restore(&from_zero).unwrap();
    zeroed.step().unwrap();
    let half = zeroed.engine().read_jbar().unwrap();
    assert!(jbar.iter().any(|&v| v != 0.0));
    let want: Vec<f64> = half.iter().map(|&v| 2.0 * v as f64).collect();
    assert_close(
        "J̄ after resuming without one",
        &jbar,
        &want,
        1e-5,
        1e-6 * scale(&want),
    );
    for _ in 0..3 {
        fresh.step().unwrap();
    }
    let with_jbar = fresh.state().unwrap();
    assert_eq!(with_jbar.jbar.len(), jbar.len());

    // A checkpoint with J̄ resumes at β = 1: J̄ is dropped.
    let mut back = oscillator_trainer(1.0);
    back.restore(&with_jbar).unwrap();
    back.step().unwrap();
    assert!(back.state().unwrap().jbar.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
