//! Bad input gets a clear error and loses nothing.

use super::common;

use std::process::Command;
use std::sync::Arc;

use common::ctx;
use nalgebra::DMatrix;
use spectral_inference::experiments::schrodinger::FdBox;
use spectral_inference::spin::host::{cholesky, step_matrices};
use spectral_inference::spin::{OptimizerConfig, OptimizerKind, TrainConfig, Trainer};
use spectral_inference::SpinError;

fn spin(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spin"))
        .args(args)
        .output()
        .expect("running spin");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "spin panicked: {stderr}");
    (out.status.success(), stderr)
}

fn temp_file(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("spin-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn matrix_file_errors_are_clear() {
    let cases = [
        ("nonsquare.csv", "1,2,3\n4,5,6\n", "not square"),
        ("ragged.csv", "1,2\n3\n", "not square"),
        ("asym.csv", "1,2\n3,4\n", "not symmetric"),
        (
            "text.csv",
            "1,abc\nabc,1\n",
            "line 1, column 2: `abc` is not a finite number",
        ),
        ("nan.csv", "1,NaN\nNaN,1\n", "not a finite number"),
        ("empty.csv", "\n", "no matrix"),
    ];
    for (name, text, want) in cases {
        let path = temp_file(name, text);
        let (ok, err) = spin(&[
            "matrix",
            "--file",
            &path,
            "--neig",
            "1",
            "--out",
            "/tmp/spin-errors-out",
        ]);
        assert!(!ok, "{name} was accepted");
        assert!(err.contains(want), "{name}: expected `{want}` in: {err}");
        assert!(
            err.contains(name),
            "{name}: the message should name the file: {err}"
        );
    }
    let (ok, err) = spin(&["matrix", "--file", "/nonexistent/m.csv"]);
    assert!(!ok);
    assert!(
        err.contains("/nonexistent/m.csv") && err.contains("No such file"),
        "{err}"
    );
    assert_eq!(
        err.matches("No such file").count(),
        1,
        "the OS error once, not once per cause: {err}"
    );
}

#[test]
fn bad_cli_values_are_rejected() {
    let path = temp_file(
        "ok.csv",
        "2,1,0,0,0\n1,2,0,0,0\n0,0,1,0,0\n0,0,0,1,0\n0,0,0,0,1\n",
    );
    for (args, want) in [
        (vec!["--neig", "6"], "--neig must be between 1 and 5"),
        (vec!["--optimizer", "lbfgs"], "unknown optimizer"),
        (vec!["--schedule", "sawtooth"], "unknown schedule"),
        (vec!["--beta", "0"], "β must be in (0, 1]"),
        (vec!["--lr=-1"], "lr -1 must be > 0"),
        (vec!["--batch", "7"], "--batch must be even"),
        (vec!["--backend", "glide"], "unknown backend"),
    ] {
        let mut all = vec!["matrix", "--file", path.as_str()];
        all.extend(&args);
        let (ok, err) = spin(&all);
        assert!(!ok, "{args:?} was accepted");
        assert!(err.contains(want), "{args:?}: expected `{want}` in: {err}");
    }
}

#[test]
fn collapsed_sigma_names_the_feature() {
    // Feature 2 is a copy of feature 0: Σ is singular from its third row on.
    let s = DMatrix::from_row_slice(3, 3, &[1.0, 0.2, 1.0, 0.2, 1.0, 0.2, 1.0, 0.2, 1.0]);
    match cholesky(&s) {
        Err(SpinError::Cholesky { feature, .. }) => assert_eq!(feature, 2),
        other => panic!("expected a Cholesky error, got {other:?}"),
    }
    let msg = step_matrices(&s, &DMatrix::identity(3, 3))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("feature 2"), "{msg}");
}

#[test]
fn non_finite_loss_stops_and_keeps_the_last_good_state() {
    let fd = FdBox {
        dim: 1,
        kinetic: 1.0,
        eps: 0.1,
        half_width: 2.0,
        hidden: vec![8],
        neig: 2,
        envelope: true,
    };
    // A potential that turns NaN for x > 1.5: some batch will hit it.
    let problem = fd
        .problem(Arc::new(
            |x: &[f64]| if x[0] > 1.5 { f64::NAN } else { x[0] * x[0] },
        ))
        .unwrap();
    let config = TrainConfig {
        beta: 0.5,
        batch: 64,
        steps: 10,
        seed: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Adam, 1e-3),
        eigen_ema: 0.01,
        exhaustive: false,
        shift: 0.0,
        gauge: 0.0,
        objective: Default::default(),
        tail: Default::default(),
        whiten_readout: 0.0,
    };
    let mut trainer = Trainer::new(ctx(), problem, config).unwrap();
    let before = trainer.params.clone();
    let err = trainer.step().unwrap_err();
    assert!(matches!(err, SpinError::NonFinite { step: 1, .. }), "{err}");
    assert!(err.to_string().contains("non-finite"), "{err}");
    assert_eq!(
        trainer.params, before,
        "parameters changed on a failed step"
    );
    assert_eq!(trainer.step, 0);
    assert_eq!(trainer.sigma_avg, DMatrix::identity(2, 2));
}

#[test]
fn bad_schrodinger_values_are_rejected() {
    for (args, want) in [
        (
            vec!["--laplacian", "weak", "--envelope", "false"],
            "--laplacian weak needs the boundary envelope",
        ),
        (vec!["--laplacian", "spectral"], "unknown Laplacian"),
        (
            vec!["--proposal-scales", "1,-2"],
            "--proposal-scales must be positive",
        ),
        (vec!["--radial", "maybe"], "invalid value"),
        (
            vec!["--separate", "true", "--blocks", "2"],
            "choose one of --blocks and --separate",
        ),
        (vec!["--box", "-3"], "--box must be positive, got -3"),
        (
            vec!["--kinetic", "-1.5"],
            "--kinetic must be positive, got -1.5",
        ),
        (
            vec!["--dim", "1", "--radial", "true", "--laplacian", "exact"],
            "Δ|x| = 2δ(x)",
        ),
        (
            vec!["--tail", "1.5"],
            "the tail's share of the run must be in [0, 1), got 1.5",
        ),
        (vec!["--tail-beta", "0"], "the tail's β must be in (0, 1]"),
        (vec!["--guard", "-0.5"], "guard -0.5 ≥ 0"),
        (
            vec!["--whiten-readout", "1.5"],
            "the read-out's whitening rate must be in [0, 1], got 1.5",
        ),
        (
            vec![
                "--particles",
                "2",
                "--dim",
                "1",
                "--potential",
                "dot(x, x)",
                "--exchange",
                "symmetric",
                "--tail",
                "0.1",
            ],
            "no bias-correcting tail",
        ),
    ] {
        let mut all = vec!["schrodinger", "--steps", "1", "--out"];
        let dir = std::env::temp_dir().join("spin-bad-schrodinger");
        let dir = dir.to_str().unwrap().to_string();
        all.push(&dir);
        all.extend(&args);
        let (ok, err) = spin(&all);
        assert!(!ok, "{args:?} was accepted");
        assert!(err.contains(want), "{args:?}: expected `{want}` in: {err}");
    }
}

#[test]
fn a_rejected_gradient_leaves_jbar_as_it_was() {
    let fd = FdBox {
        dim: 2,
        kinetic: 1.0,
        eps: 0.1,
        half_width: 3.0,
        hidden: vec![8],
        neig: 2,
        envelope: true,
    };
    let problem = fd
        .problem(Arc::new(|x: &[f64]| x.iter().map(|v| v * v).sum()))
        .unwrap();
    let config = TrainConfig {
        beta: 0.5,
        batch: 32,
        steps: 10,
        seed: 3,
        optimizer: OptimizerConfig::new(OptimizerKind::Adam, 1e-3),
        eigen_ema: 0.01,
        exhaustive: false,
        shift: 0.0,
        gauge: 0.0,
        objective: Default::default(),
        tail: Default::default(),
        whiten_readout: 0.0,
    };
    let mut trainer = Trainer::new(ctx(), problem, config).unwrap();
    trainer.step().unwrap();
    let engine = trainer.engine();
    engine.statistics().unwrap();
    let before = engine.read_jbar().unwrap();
    let nan = vec![f64::NAN; 4];
    let grad = engine.gradient(&nan, &[0.0; 4], 0.5).unwrap();
    assert!(grad.iter().any(|g| !g.is_finite()));
    let advanced = engine.read_jbar().unwrap();
    assert_ne!(advanced, before, "the step should have moved J̄");
    engine.undo_jbar_update().unwrap();
    assert_eq!(engine.read_jbar().unwrap(), before);
}
