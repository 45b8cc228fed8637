//! `spin matrix` end to end: a random symmetric 20×20 matrix, its 4 lowest eigenpairs — with
//! every pair each step (the default up to 32×32) to 10⁻⁴, with a sampled batch within 1 %.

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
    // A 20×20 matrix has 400 pairs, fewer than a sampled batch's 1024 samples: every pair each
    // step, no sampling noise, so the learned values are the exact ones.
    assert_eq!(m["config"]["exhaustive"], true, "{}", m["config"]);
    for (k, (a, b)) in learned.iter().zip(&exact).enumerate() {
        assert!((a - b).abs() / b.abs() < 1e-4, "eigenvalue {k}: {a} vs {b}");
    }
    // A sampled batch, asked for: within 1 %.
    let sampled = out_dir.join("sampled");
    let out = Command::new(env!("CARGO_BIN_EXE_spin"))
        .args([
            "matrix",
            "--file",
            "assets/random-symmetric-20.csv",
            "--batch",
            "1024",
            "--quiet",
            "--out",
        ])
        .arg(&sampled)
        .output()
        .expect("running spin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sampled.join("metrics.json")).unwrap())
            .unwrap();
    assert_eq!(m["config"]["exhaustive"], false);
    let learned: Vec<f64> = serde_json::from_value(m["eigenvalues"].clone()).unwrap();
    for (k, (a, b)) in learned.iter().zip(&exact).enumerate() {
        assert!((a - b).abs() / b.abs() < 0.01, "eigenvalue {k}: {a} vs {b}");
    }
}
