//! Whole conv networks: SpIN steps against the oracle step (one chunk and several, split-K
//! parameter gradients), an MLP in chunks, finite differences of a small conv network, separate
//! networks, block masks between feature maps and the frozen constant eigenfunction.

use super::common;
use super::conv::random;

use std::sync::Arc;

use common::{ctx, small_net};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spectral_inference::nn::oracle::{
    backward, forward, layer_backward, pair_index, sensitivities, sigma_jacobian,
};
use spectral_inference::nn::{separate_networks_mask, Activation, NetworkSpec};
use spectral_inference::operators::{Batch, Operator};
use spectral_inference::spin::{Engine, EngineOptions};

fn video_batch(spec: &NetworkSpec, clips: usize, len: usize, seed: u64) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let inputs: Vec<f32> = (0..clips * len * spec.input_dim)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    Batch::slowness(&inputs, spec.input_dim, clips, len).unwrap()
}

#[test]
fn conv_net_step_matches_oracle() {
    let spec = small_net(Activation::Softplus, false, 4);
    let batch = video_batch(&spec, 3, 4, 5);
    common::check_engine(&spec, &batch, 0.3, 6, EngineOptions::default());
}

#[test]
fn conv_net_step_in_chunks_with_relu_and_constant_matches_oracle() {
    let spec = small_net(Activation::Relu, true, 5);
    let batch = video_batch(&spec, 4, 3, 7);
    let options = EngineOptions {
        chunk_samples: Some(5),
        ..Default::default()
    };
    common::check_engine(&spec, &batch, 0.2, 8, options);
}

/// A conv net's batch parameter gradients split into row groups (forced here; a GPU's default).
#[test]
fn conv_net_step_with_split_k_matches_oracle() {
    let spec = small_net(Activation::Softplus, false, 4);
    let batch = video_batch(&spec, 7, 10, 23);
    let options = EngineOptions {
        param_grad_invocations: Some(1 << 20),
        ..Default::default()
    };
    common::check_engine(&spec, &batch, 0.6, 24, options);
}

#[test]
fn mlp_step_in_chunks_matches_oracle() {
    let spec = NetworkSpec::mlp(3, vec![9, 6], 4);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let points: Vec<f64> = (0..17 * 3).map(|_| rng.random_range(-1.0..1.0)).collect();
    let op = Operator::hamiltonian_fd(3, 1.0, 0.1, Arc::new(|x: &[f64]| x[0] * x[0])).unwrap();
    let batch = op.batch(&points, 3, &[1.0; 17]).unwrap();
    let options = EngineOptions {
        chunk_samples: Some(4),
        ..Default::default()
    };
    common::check_engine(&spec, &batch, 0.5, 10, options);
}

#[test]
fn conv_net_refuses_tangent_operators() {
    let spec = small_net(Activation::Softplus, false, 3);
    let shape = spectral_inference::operators::BatchShape {
        input_dim: spec.input_dim,
        rows: 8,
        samples: 2,
        pairs: 2,
        tx: 1,
        ty: 2,
        channels: 4,
    };
    let err = Engine::new(ctx(), &spec, shape, true)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("conv"), "{err}");
}

/// Σ_b Σ_k c_bk u_bk, the scalar whose gradient `backward` gives for cotangent c.
fn objective(spec: &NetworkSpec, params: &[f64], inputs: &[f64], cot: &[f64]) -> f64 {
    let f = forward(spec, params, inputs);
    f.u.iter().zip(cot).map(|(u, c)| u * c).sum()
}

#[test]
fn conv_net_gradients_match_finite_differences() {
    let spec = small_net(Activation::Softplus, false, 3);
    let n = spec.outputs;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let params: Vec<f64> = spec
        .init_params(&mut rng)
        .iter()
        .map(|&v| v as f64 + rng.random_range(-0.1..0.1))
        .collect();
    let s = 4;
    let inputs = random(s * spec.input_dim, &mut rng);
    let cot = random(s * n, &mut rng);
    let fwd = forward(&spec, &params, &inputs);
    let grad = backward(&spec, &params, &inputs, &fwd, &cot);
    let h = 1e-5;
    let p = params.len();
    let step = p / 150 + 1;
    for i in (0..p).step_by(step) {
        let mut plus = params.clone();
        let mut minus = params.clone();
        plus[i] += h;
        minus[i] -= h;
        let fd = (objective(&spec, &plus, &inputs, &cot) - objective(&spec, &minus, &inputs, &cot))
            / (2.0 * h);
        assert!(
            (fd - grad[i]).abs() <= 1e-6 + 1e-5 * fd.abs(),
            "∂/∂θ[{i}]: backward {} vs finite differences {fd}",
            grad[i]
        );
    }
    // The network's outputs against its input: the input VJP of the first conv layer.
    let layers = spec.layers();
    let mut delta = vec![0.0; 0];
    {
        // Cotangent at the output layer, then down to the first layer's output.
        let mut d = cot.clone();
        for l in (1..layers.len()).rev() {
            d = layer_backward(&layers[l], &params, &d, &fwd.z[l - 1], layers[l - 1].act, 1);
        }
        let zeros = vec![0.0; inputs.len()];
        delta.extend(layer_backward(
            &layers[0],
            &params,
            &d,
            &zeros,
            Activation::Identity,
            1,
        ));
    }
    for i in (0..inputs.len()).step_by(7) {
        let mut plus = inputs.clone();
        let mut minus = inputs.clone();
        plus[i] += h;
        minus[i] -= h;
        let fd = (objective(&spec, &params, &plus, &cot) - objective(&spec, &params, &minus, &cot))
            / (2.0 * h);
        assert!(
            (fd - delta[i]).abs() <= 1e-6 + 1e-5 * fd.abs(),
            "∂/∂x[{i}]: input VJP {} vs finite differences {fd}",
            delta[i]
        );
    }
    // The one-sided Σ-Jacobian Ĵ[j,k] = (2/S) Σ_b w_b u_j ∂u_k/∂θ.
    let w: Vec<f64> = (0..s).map(|_| rng.random_range(0.5..1.5)).collect();
    let sens = sensitivities(&spec, &params, &fwd, s);
    let jac = sigma_jacobian(&spec, &inputs, &fwd, &sens, &w);
    for i in (0..p).step_by(step * 3) {
        let mut plus = params.clone();
        let mut minus = params.clone();
        plus[i] += h;
        minus[i] -= h;
        let (up, um) = (
            forward(&spec, &plus, &inputs).u,
            forward(&spec, &minus, &inputs).u,
        );
        for k in 0..n {
            for j in 0..=k {
                let fd: f64 = (0..s)
                    .map(|b| {
                        2.0 / s as f64 * w[b] * fwd.u[b * n + j] * (up[b * n + k] - um[b * n + k])
                            / (2.0 * h)
                    })
                    .sum();
                let got = jac[pair_index(j, k) * p + i];
                assert!(
                    (fd - got).abs() <= 1e-6 + 1e-5 * fd.abs(),
                    "Ĵ[{j},{k},{i}]: {got} vs finite differences {fd}"
                );
            }
        }
    }
}

#[test]
fn separate_conv_networks_touch_one_eigenfunction_each() {
    // Constant first + 2 learned eigenfunctions, conv channels and hidden widths divisible by 2.
    let mut spec = small_net(Activation::Softplus, true, 3);
    spec.conv[1].channels = 4;
    spec.hidden = vec![4];
    let mask = separate_networks_mask(&spec).unwrap();
    let n = spec.outputs;
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let params: Vec<f32> = spec
        .init_params(&mut rng)
        .iter()
        .zip(&mask)
        .map(|(p, m)| p * m)
        .collect();
    let batch = video_batch(&spec, 3, 4, 13);
    let engine = Engine::new(ctx(), &spec, batch.shape, true).unwrap();
    engine.set_params(&params).unwrap();
    engine.set_batch(&batch).unwrap();
    engine.statistics().unwrap();
    let zero = vec![0.0; n * n];
    engine.gradient(&zero, &zero, 1.0).unwrap();
    let jbar = engine.read_jbar().unwrap();
    let p = params.len();
    let first = spec.layers()[0].len();
    let mut owned = 0;
    for i in first..p {
        if mask[i] == 0.0 {
            continue;
        }
        let moved: Vec<usize> = (0..n)
            .filter(|&k| (0..=k).any(|j| jbar[pair_index(j, k) * p + i].abs() > 1e-7))
            .collect();
        assert!(
            moved.len() <= 1,
            "parameter {i} moves eigenfunctions {moved:?}"
        );
        assert!(!moved.contains(&0), "parameter {i} moves the constant");
        owned += !moved.is_empty() as usize;
    }
    assert!(owned > 0, "no parameter moved any eigenfunction");
}

#[test]
fn block_sparse_conv_masks_whole_feature_maps() {
    let mut spec = small_net(Activation::Relu, false, 4);
    spec.conv[1].channels = 8;
    let mask = spectral_inference::nn::block_sparse_mask(&spec, 2).unwrap();
    let layers = spec.layers();
    let conv = layers[1];
    let g = conv.conv().unwrap();
    let mut zeros = 0;
    for ci in 0..g.in_c {
        for co in 0..g.out_c {
            let first = mask[conv.w(ci, co)];
            for tap in 0..g.kernel * g.kernel {
                assert_eq!(mask[conv.w(tap * g.in_c + ci, co)], first, "map {ci}→{co}");
            }
            zeros += (first == 0.0) as usize;
        }
    }
    assert!(zeros > 0, "the second conv layer should be block-sparse");
    // The dense layer after the flatten: whole input maps, at every position.
    let dense = layers[2];
    for i in 0..dense.inputs {
        for o in 0..dense.outputs {
            assert_eq!(
                mask[dense.w(i, o)],
                mask[dense.w(i % dense.units(), o)],
                "flattened input {i}"
            );
        }
    }
}

#[test]
fn constant_first_eigenfunction_is_one_and_frozen() {
    let spec = small_net(Activation::Relu, true, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let params: Vec<f64> = spec
        .init_params(&mut rng)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let inputs = random(5 * spec.input_dim, &mut rng);
    let fwd = forward(&spec, &params, &inputs);
    for b in 0..5 {
        assert_eq!(fwd.u[b * 3], 1.0);
    }
    let mask = spec.structural_mask().unwrap();
    let out = *spec.layers().last().unwrap();
    assert_eq!(mask[out.b(0)], 0.0);
    assert_eq!(mask.iter().filter(|&&m| m == 0.0).count(), out.inputs + 1);
    let sens = sensitivities(&spec, &params, &fwd, 5);
    assert!(sens.iter().all(|s| s
        .chunks(s.len() / 15)
        .step_by(3)
        .all(|c| c.iter().all(|&v| v == 0.0))));
}
