//! `mpirun -n 2 spin …` end to end (cargo feature `mpi`; `.ci/run` installs Open MPI): the
//! ranks learn what one process learns, end with bit-identical θ, refuse a batch that does not
//! split, and a killed 2-rank run resumes from its checkpoint to the parameters of an
//! uninterrupted one.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "common/ranks.rs"]
mod ranks;
use ranks::assert_same_theta;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spin-mpi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `mpirun -n 2 spin ARGS` with one lavapipe thread per rank.
fn mpirun(args: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-n", "2"])
        .arg(env!("CARGO_BIN_EXE_spin"))
        .args(args)
        .env("LP_NUM_THREADS", "1")
        .env("NODEVICE_SELECT", "1");
    c
}

fn run(args: &[&str]) -> Output {
    mpirun(args)
        .output()
        .expect("running mpirun (install openmpi-bin)")
}

fn metrics(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("metrics.json")).expect("metrics.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn check_parallel_block(m: &serde_json::Value) {
    let p = &m["parallel"];
    assert_eq!(p["ranks"], 2, "{p}");
    assert_eq!(p["transport"], "MPI", "{p}");
    assert!(p["allreduce_bytes_per_step"].as_f64().unwrap() > 0.0, "{p}");
    assert!(
        p["allreduce_seconds_per_step"].as_f64().unwrap() > 0.0,
        "{p}"
    );
}

#[test]
fn matrix_over_two_ranks_is_within_one_percent() {
    let out = dir("matrix");
    let o = run(&["matrix", "--quiet", "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "mpirun spin matrix failed:\n{stderr}");
    assert_same_theta(&stderr);
    let m = metrics(&out);
    check_parallel_block(&m);
    let errors: Vec<f64> = serde_json::from_value(m["relative_errors"].clone()).unwrap();
    assert_eq!(errors.len(), 4);
    for (k, e) in errors.iter().enumerate() {
        assert!(
            *e < 0.01,
            "eigenvalue {k}: relative error {e} (all: {errors:?})"
        );
    }
    // Rank 1 printed no table of its own.
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.matches("rel. error").count(), 1, "{stdout}");
}

const OSCILLATOR: &[&str] = &[
    "schrodinger",
    "--potential",
    "harmonic",
    "--box",
    "6",
    "--neig",
    "4",
    "--batch",
    "128",
    "--eval-samples",
    "65536",
    "--eval-target",
    "0",
    "--readout-refit",
    "false",
    "--heldout-every",
    "0",
    "--quiet",
];

#[test]
fn oscillator_over_two_ranks_is_within_two_percent() {
    let out = dir("oscillator");
    let mut args = OSCILLATOR.to_vec();
    args.extend(["--steps", "1500", "--out", out.to_str().unwrap()]);
    let o = run(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "mpirun spin schrodinger failed:\n{stderr}"
    );
    assert_same_theta(&stderr);
    let m = metrics(&out);
    check_parallel_block(&m);
    let learned: Vec<f64> = serde_json::from_value(m["eigenvalues"].clone()).unwrap();
    // The 2D oscillator −∇² + |x|²: 2, 4, 4, 6.
    for (k, (l, e)) in learned.iter().zip([2.0, 4.0, 4.0, 6.0]).enumerate() {
        let rel = (l - e).abs() / e;
        assert!(
            rel < 0.02,
            "level {k}: {l} against {e} ({rel:.4}); all {learned:?}"
        );
    }
}

#[test]
fn a_batch_that_does_not_split_over_the_ranks_is_refused() {
    let out = dir("odd");
    let o = run(&["matrix", "--batch", "1022", "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("2 equal shares"), "{stderr}");
    assert!(!out.join("metrics.json").exists());
}

fn checkpoint_step(out: &Path) -> u64 {
    std::fs::read_to_string(out.join("checkpoint.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["step"].as_u64())
        .unwrap_or(0)
}

fn params(out: &Path) -> (u64, Vec<f32>) {
    let (state, _) = spectral_inference::spin::checkpoint::load(out).expect("checkpoint");
    (state.step, state.params)
}

/// β < 1 (J̄ saved as the ranks' mean) and β = 1 (no J̄): a 2-rank run killed after a
/// checkpoint, then resumed, ends where an uninterrupted 2-rank run ends.
#[test]
fn a_killed_two_rank_run_resumes_to_the_same_parameters() {
    for beta in ["1", "0.5"] {
        let mut args = OSCILLATOR.to_vec();
        args.extend([
            "--steps",
            "600",
            "--checkpoint-every",
            "100",
            "--beta",
            beta,
            "--shift",
            "0",
        ]);
        let whole = dir(&format!("whole-{beta}"));
        let mut a = args.clone();
        a.extend(["--out", whole.to_str().unwrap()]);
        let o = run(&a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

        let killed = dir(&format!("killed-{beta}"));
        let mut a = args.clone();
        a.extend(["--out", killed.to_str().unwrap()]);
        let mut child = mpirun(&a)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mpirun");
        let start = std::time::Instant::now();
        while checkpoint_step(&killed) < 200 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before it was killed"
            );
            assert!(start.elapsed().as_secs() < 300, "no checkpoint at step 200");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // SIGTERM: mpirun passes it on to both ranks and exits.
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap();
        let (at, _) = params(&killed);
        assert!((200..600).contains(&at), "killed at step {at}");

        let o = run(&[
            "schrodinger",
            "--resume",
            killed.to_str().unwrap(),
            "--quiet",
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "resume failed:\n{stderr}");
        assert_same_theta(&stderr);
        let (s1, p1) = params(&whole);
        let (s2, p2) = params(&killed);
        assert_eq!((s1, s2), (600, 600));
        let scale = p1.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
        let diff = p1
            .iter()
            .zip(&p2)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "β = {beta}: killed at step {at}, resumed: max |Δθ| {diff:.3e} (scale {scale:.3e})"
        );
        if beta == "1" {
            // No J̄: the resumed run takes exactly the same steps.
            assert_eq!(p1, p2, "β = 1: the resumed θ differs");
        } else {
            // J̄ resumes as the ranks' mean: the same to rounding.
            assert!(
                diff <= 1e-3 * scale,
                "β = {beta}: max |Δθ| {diff} of {scale}"
            );
        }
    }
}
