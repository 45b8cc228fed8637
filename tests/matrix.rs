//! The reference's small-matrix test: the 3 lowest eigenpairs of a 5×5 M = AᵀA.

mod common;

use common::ctx;
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use spectral_inference::experiments::matrix::learn_matrix;
use spectral_inference::spin::{OptimizerConfig, OptimizerKind, TrainConfig};

fn test_matrix() -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(2019);
    let a: DMatrix<f64> = DMatrix::from_fn(5, 5, |_, _| StandardNormal.sample(&mut rng));
    a.transpose() * a
}

#[test]
fn deterministic_all_pairs_gradient_descent() {
    let m = test_matrix();
    let config = TrainConfig {
        beta: 1.0,
        batch: 0,
        steps: 3000,
        seed: 1,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd, 1.0),
        eigen_ema: 0.01,
        exhaustive: true,
        shift: 0.0,
    };
    let r = learn_matrix(ctx(), &m, 3, config, |_| {}).expect("training");
    for (k, (a, b)) in r.eigenvalues.iter().zip(&r.exact_eigenvalues).enumerate() {
        assert!(
            (a - b).abs() < 1e-4,
            "eigenvalue {k}: learned {a} vs exact {b} (all {:?} vs {:?})",
            r.eigenvalues,
            r.exact_eigenvalues
        );
    }
    for (k, (a, b)) in r.lambda_diag.iter().zip(&r.exact_eigenvalues).enumerate() {
        assert!(
            (a - b).abs() < 1e-4,
            "ordered eigenvalue {k}: diag Λ {a} vs exact {b}"
        );
    }
}

#[test]
fn stochastic_minibatch_with_moving_averages() {
    let m = test_matrix();
    // The reference test's settings as its code executes them: decay 0.9 is β = 0.1 (decay 0 is
    // β = 1), and its learning rate `1.0 / global_step` stays 1 because global_step is
    // incremented once, before the loop.
    let opt = OptimizerConfig::new(OptimizerKind::Sgd, 1.0);
    let config = TrainConfig {
        beta: 0.1,
        batch: 1000,
        steps: 2000,
        seed: 2,
        optimizer: opt,
        eigen_ema: 0.01,
        exhaustive: false,
        shift: 0.0,
    };
    let r = learn_matrix(ctx(), &m, 3, config, |_| {}).expect("training");
    for (k, (a, b)) in r.lambda_diag.iter().zip(&r.exact_eigenvalues).enumerate() {
        assert!(
            (a - b).abs() < 0.1,
            "eigenvalue {k}: learned {a} vs exact {b} ({:?} vs {:?})",
            r.lambda_diag,
            r.exact_eigenvalues
        );
    }
    for (k, v) in r.eigenvectors.iter().enumerate() {
        for (j, e) in r.exact_eigenvectors.iter().enumerate() {
            if j != k {
                let dot: f64 = v.iter().zip(e).map(|(a, b)| a * b).sum();
                assert!(
                    dot.abs() < 0.1,
                    "learned eigenvector {k} overlaps exact eigenvector {j}: {dot}"
                );
            }
        }
    }
}
