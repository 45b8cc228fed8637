//! End-to-end learning: the 1D harmonic oscillator H = −∇² + x² on the box [−5, 5] with the
//! finite-difference Laplacian and the boundary envelope; its 3 lowest eigenvalues are 1, 3, 5.

use super::common;

use common::ctx;
use spectral_inference::experiments::schrodinger::{
    harmonic_eigenvalues, harmonic_potential, FdBox,
};
use spectral_inference::spin::{OptimizerConfig, OptimizerKind, Schedule, TrainConfig, Trainer};

#[test]
fn harmonic_oscillator_1d_three_lowest_levels() {
    let problem = FdBox {
        dim: 1,
        kinetic: 1.0,
        eps: 0.05,
        half_width: 5.0,
        hidden: vec![32, 32],
        neig: 3,
        envelope: true,
    }
    .problem(harmonic_potential())
    .unwrap();
    let steps = 5000;
    let mut opt = OptimizerConfig::new(OptimizerKind::Adam, 3e-3);
    opt.schedule = Schedule::Cosine;
    let config = TrainConfig {
        beta: 0.5,
        batch: 256,
        steps,
        seed: 3,
        optimizer: opt,
        eigen_ema: 0.01,
        exhaustive: false,
        shift: 0.0,
        gauge: 0.0,
        objective: Default::default(),
        tail: Default::default(),
        whiten_readout: 0.0,
    };
    let mut trainer = Trainer::new(ctx(), problem, config).unwrap();
    for _ in 0..steps {
        trainer.step().unwrap();
    }
    let eval = trainer.evaluate(65_536, 8192, 99).unwrap();
    let exact = harmonic_eigenvalues(1, 1.0, 3);
    assert_eq!(exact, vec![1.0, 3.0, 5.0]);
    for (k, (a, b)) in eval.lambda_diag.iter().zip(&exact).enumerate() {
        assert!(
            (a - b).abs() / b < 0.02,
            "level {k}: learned {a} vs exact {b} (all {:?})",
            eval.lambda_diag
        );
    }
}
