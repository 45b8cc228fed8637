//! `spin … --workers W`: the data split over worker processes of this machine that the
//! launcher connects by sockets (`src/spin/parallel/local.rs`) — the same checks as the MPI
//! tests (`tests/mpi.rs`), without MPI: the workers learn what one process learns and end with
//! bit-identical θ, bad counts are refused, and a killed launcher's run (its workers die with
//! it) resumes to the parameters of an uninterrupted one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::ranks::assert_same_theta;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spin-workers-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn spin(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spin"));
    c.args(args);
    c
}

fn run(args: &[&str]) -> Output {
    spin(args).output().expect("running spin")
}

fn metrics(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn matrix_over_two_worker_processes_is_within_one_percent() {
    let out = dir("matrix");
    let o = run(&[
        "matrix",
        "--workers",
        "2",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "spin matrix --workers 2 failed:\n{stderr}"
    );
    assert_same_theta(&stderr);
    let m = metrics(&out);
    let p = &m["parallel"];
    assert_eq!(p["ranks"], 2, "{p}");
    assert_eq!(p["transport"], "local-process", "{p}");
    assert!(p["allreduce_bytes_per_step"].as_f64().unwrap() > 0.0, "{p}");
    let errors: Vec<f64> = serde_json::from_value(m["relative_errors"].clone()).unwrap();
    assert_eq!(errors.len(), 4);
    for (k, e) in errors.iter().enumerate() {
        assert!(
            *e < 0.01,
            "eigenvalue {k}: relative error {e} (all: {errors:?})"
        );
    }
    // Worker 1 printed no table of its own.
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.matches("rel. error").count(), 1, "{stdout}");
}

#[test]
fn bad_worker_counts_are_refused_clearly() {
    let o = run(&["matrix", "--workers", "0"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("a count ≥ 1"), "{stderr}");

    let o = run(&["info", "--workers", "2"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("only the commands that train"), "{stderr}");

    // A batch that does not split: every worker says so, nothing is written.
    let out = dir("odd");
    let o = run(&[
        "matrix",
        "--workers",
        "3",
        "--batch",
        "1022",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("3 equal shares"), "{stderr}");
    assert!(!out.join("metrics.json").exists());
}

fn checkpoint(out: &Path) -> Option<(u64, Vec<f32>)> {
    let (state, _) = spectral_inference::spin::checkpoint::load(out).ok()?;
    Some((state.step, state.params))
}

/// β = 1: a 2-worker run whose launcher is killed after a checkpoint (its workers die with
/// it), then resumed, ends exactly where an uninterrupted 2-worker run ends.
#[test]
fn a_killed_two_worker_run_resumes_to_the_same_parameters() {
    let args = [
        "schrodinger",
        "--workers",
        "2",
        "--potential",
        "harmonic",
        "--box",
        "6",
        "--neig",
        "4",
        "--batch",
        "128",
        "--eval-samples",
        "16384",
        "--eval-target",
        "0",
        "--readout-refit",
        "false",
        "--heldout-every",
        "0",
        "--quiet",
        "--steps",
        "600",
        "--checkpoint-every",
        "100",
        "--beta",
        "1",
        "--shift",
        "0",
    ];
    let whole = dir("whole");
    let mut a = args.to_vec();
    a.extend(["--out", whole.to_str().unwrap()]);
    let o = run(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_theta(&String::from_utf8_lossy(&o.stderr));

    let killed = dir("killed");
    let mut a = args.to_vec();
    a.extend(["--out", killed.to_str().unwrap()]);
    let mut child = spin(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spin");
    let start = std::time::Instant::now();
    while checkpoint(&killed).is_none_or(|(s, _)| s < 200) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        assert!(start.elapsed().as_secs() < 300, "no checkpoint at step 200");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The workers die with their launcher: the checkpoint stops moving.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (at, _) = checkpoint(&killed).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        checkpoint(&killed).unwrap().0,
        at,
        "a worker outlived its launcher"
    );
    assert!((200..600).contains(&at), "killed at step {at}");

    let o = run(&[
        "schrodinger",
        "--workers",
        "2",
        "--resume",
        killed.to_str().unwrap(),
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "resume failed:\n{stderr}");
    assert_same_theta(&stderr);
    let (s1, p1) = checkpoint(&whole).unwrap();
    let (s2, p2) = checkpoint(&killed).unwrap();
    assert_eq!((s1, s2), (600, 600));
    assert_eq!(p1, p2, "β = 1: the resumed θ differs");
}
