//! Every kernel against the CPU f64 oracle, on shapes that are not multiples of the tile or
//! workgroup sizes.

use super::common;

use std::sync::Arc;

use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spectral_inference::nn::NetworkSpec;
use spectral_inference::operators::samplers::{OneHot, Sampler, UniformBox};
use spectral_inference::operators::{Batch, Operator};
use spectral_inference::spin::EngineOptions;

fn check_engine(spec: &NetworkSpec, batch: &Batch, beta: f64, seed: u64) {
    common::check_engine(spec, batch, beta, seed, EngineOptions::default());
}

#[test]
fn mlp_fd_hamiltonian_step_matches_oracle() {
    let spec = NetworkSpec {
        input_dim: 3,
        hidden: vec![5, 7],
        outputs: 3,
        envelope: Some(2.0),
        radial: false,
        ..Default::default()
    };
    let op = Operator::hamiltonian_fd(
        3,
        1.0,
        0.1,
        Arc::new(|x: &[f64]| -1.0 / (x.iter().map(|v| v * v).sum::<f64>().sqrt() + 0.1)),
    )
    .unwrap();
    let sampler = UniformBox {
        dim: 3,
        half_width: 1.9,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (points, _) = sampler.sample(&mut rng, 13);
    let weights: Vec<f64> = (0..13).map(|_| rng.random_range(0.5..1.5)).collect();
    let batch = op.batch(&points, 3, &weights).unwrap();
    check_engine(&spec, &batch, 0.3, 1);
}

#[test]
fn wide_mlp_without_envelope_matches_oracle() {
    let spec = NetworkSpec {
        input_dim: 2,
        hidden: vec![33, 18, 9],
        outputs: 5,
        envelope: None,
        radial: false,
        ..Default::default()
    };
    let op = Operator::hamiltonian_fd(
        2,
        0.5,
        0.05,
        Arc::new(|x: &[f64]| x[0] * x[0] + 2.0 * x[1] * x[1]),
    )
    .unwrap();
    let sampler = UniformBox {
        dim: 2,
        half_width: 3.0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (points, w) = sampler.sample(&mut rng, 70);
    let batch = op.batch(&points, 2, &w).unwrap();
    check_engine(&spec, &batch, 0.05, 2);
}

#[test]
fn linear_model_kernel_operator_matches_oracle() {
    let spec = NetworkSpec {
        input_dim: 6,
        hidden: vec![],
        outputs: 4,
        envelope: None,
        radial: false,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let m = DMatrix::from_fn(6, 6, |_, _| rng.random_range(-1.0..1.0));
    let m = &m + m.transpose();
    let op = Operator::pair_kernel(Arc::new(move |x: &[f64], y: &[f64]| {
        let (i, j) = (OneHot::decode(x), OneHot::decode(y));
        6.0 * m[(i, j)]
    }));
    let sampler = OneHot::new(6).unwrap();
    let (points, w) = sampler.sample(&mut rng, 150);
    let batch = op.batch(&points, 6, &w).unwrap();
    check_engine(&spec, &batch, 1.0, 4);
}

#[test]
fn single_hidden_layer_one_output_matches_oracle() {
    let spec = NetworkSpec {
        input_dim: 1,
        hidden: vec![1],
        outputs: 1,
        envelope: Some(1.0),
        radial: false,
        ..Default::default()
    };
    let op = Operator::hamiltonian_fd(1, 1.0, 0.01, Arc::new(|x: &[f64]| x[0] * x[0])).unwrap();
    let sampler = UniformBox {
        dim: 1,
        half_width: 1.0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (points, w) = sampler.sample(&mut rng, 1);
    let batch = op.batch(&points, 1, &w).unwrap();
    check_engine(&spec, &batch, 0.5, 6);
}

#[test]
fn exact_laplacian_2d_with_envelope_matches_oracle() {
    let spec = NetworkSpec {
        input_dim: 2,
        hidden: vec![10, 7],
        outputs: 3,
        envelope: Some(3.0),
        radial: false,
        ..Default::default()
    };
    let op = Operator::hamiltonian_exact(
        2,
        1.0,
        Arc::new(|x: &[f64]| -1.0 / (x[0].hypot(x[1]) + 0.1)),
    )
    .unwrap();
    let sampler = UniformBox {
        dim: 2,
        half_width: 2.9,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let (points, _) = sampler.sample(&mut rng, 21);
    let weights: Vec<f64> = (0..21).map(|_| rng.random_range(0.5..1.5)).collect();
    let batch = op.batch(&points, 2, &weights).unwrap();
    assert_eq!(batch.shape.channels, 4);
    check_engine(&spec, &batch, 0.2, 8);
}

#[test]
fn exact_laplacian_3d_without_envelope_matches_oracle() {
    let spec = NetworkSpec {
        input_dim: 3,
        hidden: vec![9, 12, 5],
        outputs: 4,
        envelope: None,
        radial: false,
        ..Default::default()
    };
    let op =
        Operator::hamiltonian_exact(3, 0.5, Arc::new(|x: &[f64]| x.iter().map(|v| v * v).sum()))
            .unwrap();
    let sampler = UniformBox {
        dim: 3,
        half_width: 2.0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let (points, w) = sampler.sample(&mut rng, 13);
    let batch = op.batch(&points, 3, &w).unwrap();
    check_engine(&spec, &batch, 1.0, 9);
}

#[test]
fn exact_laplacian_with_the_envelope_above_3d_matches_oracle() {
    // Two particles in 3D (helium's configuration space) and nine coordinates: the tangent
    // envelope's per-coordinate arrays once held only three, which silently corrupted g, ∇g
    // and Δg for every point above 3D.
    for (d, seed) in [(6usize, 31u64), (9, 37)] {
        let spec = NetworkSpec {
            input_dim: d,
            hidden: vec![9, 6],
            outputs: 3,
            envelope: Some(2.5),
            radial: false,
            ..Default::default()
        };
        let op = Operator::hamiltonian_exact(
            d,
            0.5,
            Arc::new(|x: &[f64]| x.iter().map(|v| v * v).sum()),
        )
        .unwrap();
        let sampler = UniformBox {
            dim: d,
            half_width: 2.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (points, w) = sampler.sample(&mut rng, 11);
        let batch = op.batch(&points, d, &w).unwrap();
        check_engine(&spec, &batch, 0.5, seed + 1);
    }
}

#[test]
fn exact_laplacian_with_radial_feature_matches_oracle() {
    // The network sees (x, ‖x‖): the radial column carries ∂_i r = x_i/r and Δr = (d − 1)/r on
    // the forward-mode rows, so the first layer's Laplacian input is not zero.
    for (d, envelope, seed) in [(2usize, Some(3.0f32), 23u64), (3, None, 29)] {
        let spec = NetworkSpec {
            input_dim: d + 1,
            hidden: vec![10, 7],
            outputs: 3,
            envelope,
            radial: true,
            ..Default::default()
        };
        let op = Operator::hamiltonian_exact(
            d,
            1.0,
            Arc::new(|x: &[f64]| -1.0 / x.iter().map(|v| v * v).sum::<f64>().sqrt()),
        )
        .unwrap();
        let sampler = UniformBox {
            dim: d,
            half_width: 2.9,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (points, w) = sampler.sample(&mut rng, 19);
        let mut batch = op.batch(&points, d, &w).unwrap();
        batch.add_radial_feature();
        assert_eq!(batch.shape.input_dim, d + 1);
        check_engine(&spec, &batch, 0.3, seed + 1);
    }
}

#[test]
fn weak_form_matches_oracle() {
    // Π̂ from ⟨∇u, c∇u⟩ + V u uᵀ: (d + 1) pairs per sample over the derivative channels.
    let spec = NetworkSpec {
        input_dim: 3,
        hidden: vec![10, 7],
        outputs: 3,
        envelope: Some(3.0),
        radial: true,
        ..Default::default()
    };
    let op = Operator::hamiltonian_weak(
        2,
        0.7,
        Arc::new(|x: &[f64]| -1.0 / (x[0].hypot(x[1]) + 0.1)),
    )
    .unwrap();
    let sampler = UniformBox {
        dim: 2,
        half_width: 2.9,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let (points, _) = sampler.sample(&mut rng, 17);
    let weights: Vec<f64> = (0..17).map(|_| rng.random_range(0.5..1.5)).collect();
    let mut batch = op.batch(&points, 2, &weights).unwrap();
    assert_eq!(batch.shape.pairs, 3 * 17);
    batch.add_radial_feature();
    check_engine(&spec, &batch, 0.4, 32);
}

/// Split-K of the batch parameter gradient (row groups added up by `grad_reduce`), forced on
/// this adapter (a GPU takes it by default), against the oracle — ragged last group included.
#[test]
fn split_k_parameter_gradients_match_oracle() {
    let spec = NetworkSpec {
        input_dim: 3,
        hidden: vec![6, 9],
        outputs: 4,
        envelope: Some(2.0),
        radial: false,
        ..Default::default()
    };
    let op = Operator::hamiltonian_fd(3, 1.0, 0.1, Arc::new(|x: &[f64]| x[0] * x[1])).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let (points, _) = UniformBox {
        dim: 3,
        half_width: 1.9,
    }
    .sample(&mut rng, 41);
    let weights: Vec<f64> = (0..41).map(|_| rng.random_range(0.5..1.5)).collect();
    // 41 samples × 7 stencil rows = 287 rows: 8 groups of 36, the last of 35.
    let batch = op.batch(&points, 3, &weights).unwrap();
    let options = EngineOptions {
        param_grad_invocations: Some(1 << 20),
        ..Default::default()
    };
    for beta in [0.4, 1.0] {
        common::check_engine(&spec, &batch, beta, 22, options);
    }
}

/// The 2 × 2-tiled batch parameter gradient (`param_grad_wide`, what single-threaded lavapipe
/// workers run), forced on this adapter, against the oracle: odd input and output quad counts
/// (a tile's second quad beyond the layer, the bias quad beside a weight quad), tangent rows
/// (the bias on the value rows only), split-K groups on top, β < 1 and β = 1.
#[test]
fn wide_parameter_gradients_match_oracle() {
    let spec = NetworkSpec {
        input_dim: 2,
        hidden: vec![20, 9],
        outputs: 5,
        envelope: Some(3.0),
        radial: false,
        ..Default::default()
    };
    let op = Operator::hamiltonian_exact(
        2,
        1.0,
        Arc::new(|x: &[f64]| -1.0 / (x[0].hypot(x[1]) + 0.1)),
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let (points, _) = UniformBox {
        dim: 2,
        half_width: 2.9,
    }
    .sample(&mut rng, 19);
    let weights: Vec<f64> = (0..19).map(|_| rng.random_range(0.5..1.5)).collect();
    let batch = op.batch(&points, 2, &weights).unwrap();
    assert_eq!(batch.shape.channels, 4);
    for split in [None, Some(1 << 20)] {
        let options = EngineOptions {
            wide_param_grad: Some(true),
            shared_weights: Some(false),
            param_grad_invocations: split,
            ..Default::default()
        };
        for beta in [0.3, 1.0] {
            common::check_engine(&spec, &batch, beta, 24, options);
        }
    }
}

/// The dense layers' kernels in both forms against the oracle: per lane (`dense_forward`,
/// `dense_backward`, `jbar_update`, `jbar_factored`: what GPUs run) and with fetches shared by
/// subgroups of 8 lanes (the `_shared` kernels: what lavapipe runs), which a CPU adapter must
/// offer. Odd widths (a tile's quads beyond the layer; 10 and 9 output quads: two groups of 8 for
/// the J̄ and parameter-gradient kernels, the second partial; 3 below the read-out: one partial
/// group), rows and samples
/// that fill no whole subgroup tile (a subgroup's last lanes clamped), plain rows (softplus in
/// the forward kernel, FD) and tangent rows (exact Laplacian), the batch VJP and the per-sample
/// sensitivities with J̄'s update (β < 1), the fused β = 1.
#[test]
fn per_lane_and_subgroup_shared_dense_kernels_match_oracle() {
    let ctx = common::ctx();
    if ctx.adapter().device_type == "Cpu" {
        assert!(
            ctx.has_shared_lanes(),
            "a CPU adapter (lavapipe) should offer subgroups of {} lanes",
            spectral_inference::gpu::tiles::SHARED_LANES
        );
    }
    let spec = NetworkSpec {
        input_dim: 2,
        hidden: vec![40, 36, 9],
        outputs: 5,
        envelope: Some(3.0),
        radial: false,
        ..Default::default()
    };
    let potential = Arc::new(|x: &[f64]| -1.0 / (x[0].hypot(x[1]) + 0.1));
    // (A wide FD step: through four layers, ε = 0.1 loses the f32 stencil's last digits.)
    let ops = [
        Operator::hamiltonian_fd(2, 1.0, 0.5, potential.clone()).unwrap(),
        Operator::hamiltonian_exact(2, 1.0, potential).unwrap(),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(29);
    let (points, _) = UniformBox {
        dim: 2,
        half_width: 2.9,
    }
    .sample(&mut rng, 23);
    let weights: Vec<f64> = (0..23).map(|_| rng.random_range(0.5..1.5)).collect();
    for op in &ops {
        let batch = op.batch(&points, 2, &weights).unwrap();
        for shared in [false, true] {
            if shared && !ctx.has_shared_lanes() {
                eprintln!("this adapter has no subgroups of 8 lanes: shared kernels not run");
                continue;
            }
            let options = EngineOptions {
                shared_weights: Some(shared),
                ..Default::default()
            };
            for beta in [0.3, 1.0] {
                eprintln!(
                    "case: channels {} shared {shared} beta {beta}",
                    batch.shape.channels
                );
                common::check_engine(&spec, &batch, beta, 30, options);
            }
        }
    }
}
