//! Checkpoints and resuming: a checkpoint's round trip, the adaptive proposal inside it, a
//! killed `spin schrodinger` resumed to the parameters of an uninterrupted run, the training time
//! a resumed run counts against `--time-limit`, and `spin eval` on the run's checkpoint.

use super::common;
use super::schrodinger::small_config;

use std::path::Path;

use common::{ctx, kill_after_first_checkpoint, logged_steps, spin_ok};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spectral_inference::experiments::schrodinger::SamplerKind;
use spectral_inference::spin::{checkpoint, Trainer};

#[test]
fn checkpoint_round_trip_and_resume_is_exact() {
    let ctx = ctx();
    let cfg = small_config(40);
    let dir = std::env::temp_dir().join(format!("spin-ckpt-{}", std::process::id()));
    // Uninterrupted.
    let mut a = Trainer::new(ctx.clone(), cfg.problem(&ctx).unwrap(), cfg.train.clone()).unwrap();
    for _ in 0..40 {
        a.step().unwrap();
    }
    // Interrupted at 17, saved, loaded into a fresh trainer, continued.
    let mut b = Trainer::new(ctx.clone(), cfg.problem(&ctx).unwrap(), cfg.train.clone()).unwrap();
    for _ in 0..17 {
        b.step().unwrap();
    }
    let state = b.state().unwrap();
    let run = serde_json::json!({ "config": cfg });
    checkpoint::save(&dir, &state, &run).unwrap();
    drop(b);
    let (loaded, run_back) = checkpoint::load(&dir).unwrap();
    assert_eq!(loaded, state, "checkpoint round trip changed the state");
    // The evaluated network's θ travels beside the trained one.
    let mut refitted = state.clone();
    refitted.final_params = state.params.iter().map(|p| p * 0.5).collect();
    refitted.train_seconds = 12.5;
    let side = dir.join("refitted");
    checkpoint::save(&side, &refitted, &run).unwrap();
    assert_eq!(checkpoint::load(&side).unwrap().0, refitted);
    assert_eq!(run_back, run);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(json["step"], 17);
    let mut c = Trainer::new(ctx.clone(), cfg.problem(&ctx).unwrap(), cfg.train.clone()).unwrap();
    c.restore(&loaded).unwrap();
    assert_eq!(c.state().unwrap(), state);
    for _ in 17..40 {
        c.step().unwrap();
    }
    assert_eq!(
        c.params, a.params,
        "resumed run ended with different parameters"
    );
    assert_eq!(c.sigma_avg, a.sigma_avg);
    // A file that is not a checkpoint is a clear error.
    std::fs::write(dir.join("checkpoint.safetensors"), b"not a checkpoint").unwrap();
    assert!(checkpoint::load(&dir)
        .unwrap_err()
        .to_string()
        .contains("checkpoint.safetensors"));
}

#[test]
fn a_run_killed_in_its_tail_resumes_there_exactly() {
    // 40 steps with the last half on the moving averages: the tail starts after step 20 on the
    // Σ-Jacobian path; a run saved at step 27 resumes inside it (J̄, the running mean's
    // position) and ends with the uninterrupted run's θ, Σ̄ and J̄ bit for bit.
    let ctx = ctx();
    let mut cfg = small_config(40);
    cfg.train.beta = 1.0;
    cfg.train.tail = spectral_inference::spin::trainer::Tail {
        fraction: 0.5,
        beta: 0.1,
    };
    let dir = std::env::temp_dir().join(format!("spin-tail-{}", std::process::id()));
    let new = || Trainer::new(ctx.clone(), cfg.problem(&ctx).unwrap(), cfg.train.clone()).unwrap();
    let mut a = new();
    assert!(a.has_tail() && a.engine().is_fused());
    for step in 1..=40 {
        a.step().unwrap();
        assert_eq!(a.tail_start().is_some(), step > 20, "after step {step}");
    }
    assert_eq!(a.tail_start(), Some(20));
    assert!(
        !a.engine().is_fused(),
        "the tail runs on the Σ-Jacobian path"
    );
    let mut b = new();
    for _ in 0..27 {
        b.step().unwrap();
    }
    let state = b.state().unwrap();
    assert_eq!(state.tail_start, Some(20));
    assert!(!state.jbar.is_empty(), "the tail's J̄ is saved");
    checkpoint::save(&dir, &state, &serde_json::json!({ "config": cfg })).unwrap();
    drop(b);
    let (loaded, _) = checkpoint::load(&dir).unwrap();
    assert_eq!(loaded, state);
    let mut c = new();
    c.restore(&loaded).unwrap();
    assert_eq!(c.tail_start(), Some(20));
    for _ in 27..40 {
        c.step().unwrap();
    }
    assert_eq!(
        c.params, a.params,
        "resumed in the tail, different parameters"
    );
    assert_eq!(c.sigma_avg, a.sigma_avg);
    assert_eq!(c.state().unwrap().jbar, a.state().unwrap().jbar);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn adaptive_proposal_travels_in_the_checkpoint() {
    use spectral_inference::experiments::schrodinger::refit_proposal;
    let ctx = ctx();
    let mut cfg = small_config(60);
    cfg.sampler = SamplerKind::Adaptive;
    let dir = std::env::temp_dir().join(format!("spin-adaptive-{}", std::process::id()));
    let mut a = Trainer::new(ctx.clone(), cfg.problem(&ctx).unwrap(), cfg.train.clone()).unwrap();
    for _ in 0..20 {
        a.step().unwrap();
    }
    refit_proposal(&mut a, &cfg).unwrap();
    let state = a.state().unwrap();
    assert_eq!(state.sampler.len(), 64 * 64);
    let (lo, hi) = state
        .sampler
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), p| (l.min(*p), h.max(*p)));
    assert!(hi > 3.0 * lo, "the fit should not be uniform: {lo} … {hi}");
    checkpoint::save(&dir, &state, &serde_json::json!({})).unwrap();
    let (loaded, _) = checkpoint::load(&dir).unwrap();
    assert_eq!(loaded, state);
    let mut b = Trainer::new(ctx.clone(), cfg.problem(&ctx).unwrap(), cfg.train.clone()).unwrap();
    b.restore(&loaded).unwrap();
    for _ in 0..10 {
        a.step().unwrap();
        b.step().unwrap();
    }
    assert_eq!(
        a.params, b.params,
        "the restored proposal drew other points"
    );
    // The fitted proposal still estimates E_p: the mean weight is 1.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (_, w) = b.problem().sampler.sample(&mut rng, 200_000);
    let mean = w.iter().sum::<f64>() / w.len() as f64;
    assert!((mean - 1.0).abs() < 0.02, "E_q[w] = {mean}");
}

/// Whether the run in `dir` says in its `metrics.json` that its time limit ended it.
fn stopped_by_time_limit(dir: &Path) -> bool {
    metrics(dir)["stopped_by_time_limit"] == true
}

fn metrics(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

fn final_params(dir: &Path) -> Vec<f32> {
    checkpoint::load(dir).unwrap().0.params
}

/// `spin schrodinger` on the 1D oscillator in a box of 5 with N = 2: a run of seconds.
const TINY_1D: [&str; 9] = [
    "schrodinger",
    "--dim",
    "1",
    "--potential",
    "harmonic",
    "--box",
    "5",
    "--neig",
    "2",
];

#[test]
fn killed_run_resumes_to_the_same_parameters() {
    let base = std::env::temp_dir().join(format!("spin-kill-{}", std::process::id()));
    let (full, killed) = (base.join("full"), base.join("killed"));
    let common = [
        &TINY_1D[..],
        &[
            "--hidden",
            "16,16",
            "--batch",
            "64",
            "--steps",
            "400",
            "--checkpoint-every",
            "25",
            "--eval-samples",
            "2048",
            "--seed",
            "7",
            // The default adaptive proposal, refitted often: its fit travels in the checkpoint.
            "--adapt-every",
            "60",
        ],
    ]
    .concat();
    spin_ok([&common[..], &["--out", full.to_str().unwrap()]].concat());
    // Start the same run, kill it once a checkpoint exists, resume it.
    let at = kill_after_first_checkpoint(
        [&common[..], &["--out", killed.to_str().unwrap()]].concat(),
        &killed,
    );
    assert!(at >= 25, "killed before the first checkpoint? step {at}");
    spin_ok(["schrodinger", "--resume", killed.to_str().unwrap()]);
    assert_eq!(
        final_params(&killed),
        final_params(&full),
        "killed at step {at} and resumed: parameters differ"
    );
    // The CSV has every step once.
    assert_eq!(logged_steps(&killed), (1..=400).collect::<Vec<_>>());
    spin_eval_at_new_points(&full, &base);
    spin_eval_reads_its_own_output(&full, &base);
    the_run_folder_keeps_both_parameter_sets(&full);
}

/// `spin eval` at three new points: a header line and finite values of both states.
fn spin_eval_at_new_points(run: &Path, base: &Path) {
    let pts = base.join("points.csv");
    std::fs::write(&pts, "0.0\n1.5\n-2.25\n").unwrap();
    let out = spin_ok([
        "eval",
        "--checkpoint",
        run.to_str().unwrap(),
        "--points",
        pts.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "x0,v0,v1");
    assert_eq!(lines.len(), 4);
    for l in &lines[1..] {
        let v: Vec<f64> = l.split(',').map(|t| t.parse().unwrap()).collect();
        assert!(v.iter().all(|x| x.is_finite()) && v.len() == 3);
    }
}

/// `spin eval`'s output (with its header) reads back as its input, and `--normalize unit`
/// gives ∫v² dx = 1 (`sampling`: the box's density, 1/10, so √10 times smaller).
fn spin_eval_reads_its_own_output(run: &Path, base: &Path) {
    let pts = base.join("grid.csv");
    let grid: String = (0..=1000)
        .map(|i| format!("{}\n", -5.0 + 0.01 * i as f64))
        .collect();
    std::fs::write(&pts, format!("x0\n{grid}")).unwrap();
    let read = |normalize: &str| -> Vec<Vec<f64>> {
        let out_csv = base.join(format!("v-{normalize}.csv"));
        spin_ok([
            "eval",
            "--checkpoint",
            run.to_str().unwrap(),
            "--points",
            pts.to_str().unwrap(),
            "--normalize",
            normalize,
            "--out",
            out_csv.to_str().unwrap(),
        ]);
        spin_ok([
            "eval",
            "--checkpoint",
            run.to_str().unwrap(),
            "--points",
            out_csv.to_str().unwrap(),
        ]);
        std::fs::read_to_string(&out_csv)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(|t| t.parse().unwrap()).collect())
            .collect()
    };
    let (sampling, unit) = (read("sampling"), read("unit"));
    for k in 1..=2 {
        let norm: f64 = unit.iter().map(|r| r[k] * r[k] * 0.01).sum();
        assert!((norm - 1.0).abs() < 0.1, "∫v{}² dx = {norm}", k - 1);
        let ratio = sampling[500][k] / unit[500][k];
        assert!((ratio - 10f64.sqrt()).abs() < 1e-3, "ratio {ratio}");
    }
}

/// The run folder's files; the read-out refit (on by default): the checkpoint keeps the trained
/// θ to resume from and, when the refit was kept, the refitted θ that `spin eval` used.
fn the_run_folder_keeps_both_parameter_sets(run: &Path) {
    for f in [
        "metrics.json",
        "eigenvalues.png",
        "eigenfunctions.png",
        "checkpoint.safetensors",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let metrics = metrics(run);
    let kept = metrics["readout_refit"]["kept"].as_bool().unwrap();
    let state = checkpoint::load(run).unwrap().0;
    assert_eq!(!state.final_params.is_empty(), kept);
    if kept {
        assert_eq!(state.final_params.len(), state.params.len());
        assert_ne!(state.final_params, state.params);
    }
    assert!(metrics["trained_network"]["eigenvalues"].is_array());
}

#[test]
fn a_resumed_run_counts_its_earlier_training_time() {
    let dir = std::env::temp_dir().join(format!("spin-time-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let first = [
        &TINY_1D[..],
        &[
            "--hidden",
            "8",
            "--batch",
            "32",
            "--steps",
            "30",
            "--eval-samples",
            "2048",
            "--readout-refit",
            "false",
            "--out",
            d,
        ],
    ]
    .concat();
    spin_ok(&first);
    let state = checkpoint::load(&dir).unwrap().0;
    assert_eq!(state.step, 30);
    assert!(state.train_seconds > 0.0, "{}", state.train_seconds);
    // A limit below the time already trained: the resumed run takes no further step.
    let limit = format!("{}", state.train_seconds / 2.0);
    spin_ok([
        "schrodinger",
        "--resume",
        d,
        "--steps",
        "60",
        "--time-limit",
        &limit,
    ]);
    let again = checkpoint::load(&dir).unwrap().0;
    assert_eq!(again.step, 30, "trained on past a time limit already spent");
    assert!(again.train_seconds >= state.train_seconds);
    assert!(stopped_by_time_limit(&dir));
    // An invocation that took no step has no rate (not 0 steps/s).
    let metrics = |dir: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
    };
    assert!(
        metrics(&dir)["steps_per_second"].is_null(),
        "{}",
        metrics(&dir)["steps_per_second"]
    );
    // A time limit without --steps: the limit alone ends the run, past the 30 steps it was
    // configured with.
    let limit = format!("{}", again.train_seconds + 1.0);
    spin_ok(["schrodinger", "--resume", d, "--time-limit", &limit]);
    let last = checkpoint::load(&dir).unwrap().0;
    assert!(last.step > 30, "stopped at step {}", last.step);
    assert!(last.train_seconds >= again.train_seconds + 1.0);
    assert!(stopped_by_time_limit(&dir));
    assert!(metrics(&dir)["steps_per_second"].as_f64().unwrap() > 0.0);
}
