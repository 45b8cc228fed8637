//! `spin matrix` end to end: a random symmetric 20×20 matrix, its 4 lowest eigenpairs within 1 %.

use std::process::Command;

#[test]
fn spin_matrix_random_symmetric_20() {
    let out_dir = std::env::temp_dir().join(format!("spin-cli-matrix-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_spin"))
        .args([
            "matrix",
            "--file",
            "assets/random-symmetric-20.csv",
            "--neig",
            "4",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .expect("running spin");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "spin matrix failed: {stderr}");
    let text = std::fs::read_to_string(out_dir.join("metrics.json")).expect("metrics.json");
    let m: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    for key in [
        "eigenvalues",
        "exact_eigenvalues",
        "relative_errors",
        "steps",
        "wall_seconds",
        "steps_per_second",
        "adapter",
    ] {
        assert!(m.get(key).is_some(), "metrics.json lacks `{key}`");
    }
    let learned: Vec<f64> = serde_json::from_value(m["eigenvalues"].clone()).unwrap();
    let exact: Vec<f64> = serde_json::from_value(m["exact_eigenvalues"].clone()).unwrap();
    assert_eq!(learned.len(), 4);
    assert!(
        exact.windows(2).all(|w| w[0] <= w[1]),
        "exact eigenvalues not ascending: {exact:?}"
    );
    assert!(
        learned.windows(2).all(|w| w[0] <= w[1]),
        "learned eigenvalues not ascending: {learned:?}"
    );
    for (k, (a, b)) in learned.iter().zip(&exact).enumerate() {
        assert!((a - b).abs() / b.abs() < 0.01, "eigenvalue {k}: {a} vs {b}");
    }
}
