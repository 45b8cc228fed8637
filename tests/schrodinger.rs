//! The Schrödinger front end: closed forms, potentials as WGSL expressions, importance
//! sampling, checkpoints and resuming, the 2D harmonic oscillator, `spin eval`.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::ctx;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spectral_inference::experiments::schrodinger::{
    harmonic_eigenvalues, hydrogen_eigenvalues, LaplacianKind, SamplerKind, SchrodingerConfig,
};
use spectral_inference::operators::samplers::{AdaptiveBox, ImportanceBox, Sampler, UniformBox};
use spectral_inference::operators::wgsl_field::WgslField;
use spectral_inference::operators::Field;
use spectral_inference::spin::checkpoint;
use spectral_inference::spin::{OptimizerConfig, OptimizerKind, Schedule, Trainer};
use spectral_inference::SpinError;

#[test]
fn closed_forms() {
    let h2 = hydrogen_eigenvalues(2, 1.0, 1.0, 9).unwrap();
    let want = [
        -1.0,
        -1.0 / 9.0,
        -1.0 / 9.0,
        -1.0 / 9.0,
        -0.04,
        -0.04,
        -0.04,
        -0.04,
        -0.04,
    ];
    for (a, b) in h2.iter().zip(want) {
        assert!((a - b).abs() < 1e-15, "{h2:?}");
    }
    // E_n = −Z²/(4c(n+½)²): Z = 2, c = 0.5 scales by Z²/c = 8.
    let scaled = hydrogen_eigenvalues(2, 2.0, 0.5, 4).unwrap();
    assert!(
        (scaled[0] + 8.0).abs() < 1e-12 && (scaled[3] + 8.0 / 9.0).abs() < 1e-12,
        "{scaled:?}"
    );
    let h3 = hydrogen_eigenvalues(3, 1.0, 1.0, 5).unwrap();
    assert!(
        (h3[0] + 0.25).abs() < 1e-15 && h3[1..5].iter().all(|e| (e + 1.0 / 16.0).abs() < 1e-15),
        "{h3:?}"
    );
    assert!(hydrogen_eigenvalues(1, 1.0, 1.0, 3).is_none());
    assert_eq!(
        harmonic_eigenvalues(2, 1.0, 6),
        vec![2.0, 4.0, 4.0, 6.0, 6.0, 6.0]
    );
    assert_eq!(harmonic_eigenvalues(1, 4.0, 3), vec![2.0, 6.0, 10.0]);
    assert_eq!(harmonic_eigenvalues(3, 1.0, 4), vec![3.0, 5.0, 5.0, 5.0]);
}

#[test]
fn wgsl_potential_matches_host() {
    let ctx = ctx();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (d, expr, host) in [
        (
            2,
            "-1.0 / length(x)",
            Box::new(|x: &[f64]| -1.0 / x.iter().map(|v| v * v).sum::<f64>().sqrt())
                as Box<dyn Fn(&[f64]) -> f64>,
        ),
        (
            3,
            "dot(x, x)",
            Box::new(|x: &[f64]| x.iter().map(|v| v * v).sum::<f64>()),
        ),
        (
            1,
            "0.5 * x * x + sin(x)",
            Box::new(|x: &[f64]| 0.5 * x[0] * x[0] + x[0].sin()),
        ),
    ] {
        let field = WgslField::new(ctx.clone(), expr, d).unwrap();
        let (pts, _) = UniformBox {
            dim: d,
            half_width: 3.0,
        }
        .sample(&mut rng, 77);
        let gpu = field.values(&pts, d).unwrap();
        for (i, p) in pts.chunks(d).enumerate() {
            let want = host(p);
            assert!(
                (gpu[i] - want).abs() < 1e-5 * (1.0 + want.abs()),
                "{expr} at {p:?}: gpu {} vs host {want}",
                gpu[i]
            );
        }
    }
}

#[test]
fn invalid_expression_is_a_clear_error() {
    let ctx = ctx();
    for (expr, want) in [
        ("-1.0 / lenth(x)", "lenth"),
        ("dot(x)", "dot"),
        ("x +", "expected"),
        ("1.0; }", "one WGSL expression"),
        ("vec2<f32>(1.0)", ""),
    ] {
        match WgslField::new(ctx.clone(), expr, 2) {
            Err(SpinError::Shader { kernel, message }) => {
                assert!(
                    kernel.contains(expr),
                    "the error should quote `{expr}`: {kernel}"
                );
                assert!(
                    message.contains(want),
                    "`{expr}`: expected `{want}` in {message}"
                );
            }
            Err(e) => panic!("`{expr}`: unexpected error {e}"),
            Ok(_) => panic!("`{expr}` was accepted"),
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_spin"))
        .args([
            "schrodinger",
            "--potential",
            "-1.0 / lenth(x)",
            "--steps",
            "5",
            "--out",
        ])
        .arg(std::env::temp_dir().join("spin-bad-expr"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("-1.0 / lenth(x)") && err.contains("lenth") && !err.contains("panicked"),
        "{err}"
    );
}

/// 400 000 draws of a 2D proposal for p uniform on [−D, D]²: E_q[w] = 1 and E_q[w x₀²] = D²/3.
fn assert_unbiased(q: &dyn Sampler, d: f64, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (pts, w) = q.sample(&mut rng, 400_000);
    let n = w.len() as f64;
    let mean_w = w.iter().sum::<f64>() / n;
    let mean_f = pts
        .chunks(2)
        .zip(&w)
        .map(|(p, w)| w * p[0] * p[0])
        .sum::<f64>()
        / n;
    assert!((mean_w - 1.0).abs() < 0.02, "E_q[w] = {mean_w}");
    let want = d * d / 3.0;
    assert!((mean_f - want).abs() / want < 0.03, "E_q[w x²] = {mean_f}");
    (pts, w)
}

#[test]
fn importance_weights_are_unbiased() {
    let q = ImportanceBox::new(2, 10.0, vec![0.5, 2.0], 0.1).unwrap();
    let (pts, w) = assert_unbiased(&q, 10.0, 5);
    let n = w.len() as f64;
    // Most draws land where the radial components put them.
    let near = pts.chunks(2).filter(|p| p[0].hypot(p[1]) < 4.0).count() as f64 / n;
    assert!(near > 0.7, "{near}");
}

#[test]
fn adaptive_proposal_is_unbiased_and_follows_its_fit() {
    let base = ImportanceBox::new(2, 4.0, vec![0.2, 0.8], 0.1).unwrap();
    let mut q = AdaptiveBox::new(base.clone(), 16, 0.7, 0.1).unwrap();
    // Fit to a bump around (2, −1), away from the origin the fixed part favours.
    let centres = q.cell_centres();
    assert_eq!(centres.len(), 2 * 256);
    let density: Vec<f64> = centres
        .chunks(2)
        .map(|c| (-((c[0] - 2.0).powi(2) + (c[1] + 1.0).powi(2))).exp())
        .collect();
    q.fit(&density).unwrap();
    // The grid part of q integrates to 1 over the box (midpoint rule on a fine grid).
    let m = 400;
    let h = 8.0 / m as f64;
    let mut integral = 0.0;
    for i in 0..m {
        for j in 0..m {
            let x = [-4.0 + (i as f64 + 0.5) * h, -4.0 + (j as f64 + 0.5) * h];
            integral += (q.density(&x) - 0.3 * base.density(&x)) / 0.7 * h * h;
        }
    }
    assert!((integral - 1.0).abs() < 1e-9, "∫q_grid = {integral}");
    let (pts, w) = assert_unbiased(&q, 4.0, 9);
    let n = w.len() as f64;
    // Weights are bounded by the floors, and the fitted bump gets the draws.
    let max_w = w.iter().cloned().fold(0.0, f64::max);
    assert!(
        max_w <= 1.0 / (0.3 * 0.1 + 0.7 * 0.1) + 1e-9,
        "max w {max_w}"
    );
    let near = pts
        .chunks(2)
        .filter(|p| (p[0] - 2.0).hypot(p[1] + 1.0) < 1.5)
        .count() as f64
        / n;
    assert!(near > 0.5, "{near}");
    assert!(q.fit(&[1.0; 3]).is_err());
}

fn small_config(out_steps: u64) -> SchrodingerConfig {
    let mut c = SchrodingerConfig::generic();
    c.dim = 2;
    c.set_potential("harmonic");
    c.half_width = 5.0;
    c.hidden = vec![16, 16];
    c.neig = 3;
    c.laplacian = LaplacianKind::Exact;
    c.sampler = SamplerKind::Importance;
    c.proposal_scales = vec![1.0];
    c.train.batch = 64;
    c.train.steps = out_steps;
    c.train.beta = 0.1;
    c.train.optimizer = OptimizerConfig::new(OptimizerKind::Adam, 1e-3);
    c.eval_samples = 4096;
    c.plot_extent = 4.0;
    c
}

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

fn spin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spin"))
        .args(args)
        .output()
        .unwrap()
}

/// Whether the run in `dir` says in its `metrics.json` that its time limit ended it.
fn stopped_by_time_limit(dir: &std::path::Path) -> bool {
    let text = std::fs::read_to_string(dir.join("metrics.json")).unwrap();
    let metrics: serde_json::Value = serde_json::from_str(&text).unwrap();
    metrics["stopped_by_time_limit"] == true
}

fn final_params(dir: &std::path::Path) -> Vec<f32> {
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
    let out = spin(&[&common[..], &["--out", full.to_str().unwrap()]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Start the same run, kill it once a checkpoint exists, resume it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_spin"))
        .args(&common)
        .args(["--out", killed.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !killed.join("checkpoint.json").exists() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at = checkpoint::load(&killed).unwrap().0.step;
    assert!(at >= 25, "killed before the first checkpoint? step {at}");
    let out = spin(&["schrodinger", "--resume", killed.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        final_params(&killed),
        final_params(&full),
        "killed at step {at} and resumed: parameters differ"
    );
    // The CSV has every step once.
    let csv = std::fs::read_to_string(killed.join("eigenvalues.csv")).unwrap();
    let steps: Vec<u64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps, (1..=400).collect::<Vec<_>>());
    // eval at new points.
    let pts = base.join("points.csv");
    std::fs::write(&pts, "0.0\n1.5\n-2.25\n").unwrap();
    let out = spin(&[
        "eval",
        "--checkpoint",
        full.to_str().unwrap(),
        "--points",
        pts.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "x0,v0,v1");
    assert_eq!(lines.len(), 4);
    for l in &lines[1..] {
        let v: Vec<f64> = l.split(',').map(|t| t.parse().unwrap()).collect();
        assert!(v.iter().all(|x| x.is_finite()) && v.len() == 3);
    }
    // Its own output (with the header) reads back, and --normalize unit gives ∫v² dx = 1.
    let grid: String = (0..=1000)
        .map(|i| format!("{}\n", -5.0 + 0.01 * i as f64))
        .collect();
    std::fs::write(&pts, format!("x0\n{grid}")).unwrap();
    let read = |normalize: &str| -> Vec<Vec<f64>> {
        let out_csv = base.join(format!("v-{normalize}.csv"));
        let out = spin(&[
            "eval",
            "--checkpoint",
            full.to_str().unwrap(),
            "--points",
            pts.to_str().unwrap(),
            "--normalize",
            normalize,
            "--out",
            out_csv.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let again = spin(&[
            "eval",
            "--checkpoint",
            full.to_str().unwrap(),
            "--points",
            out_csv.to_str().unwrap(),
        ]);
        assert!(
            again.status.success(),
            "output not readable as input: {}",
            String::from_utf8_lossy(&again.stderr)
        );
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
    for f in [
        "metrics.json",
        "eigenvalues.png",
        "eigenfunctions.png",
        "checkpoint.safetensors",
    ] {
        assert!(full.join(f).exists(), "{f} missing");
    }
    // The read-out refit (on by default): the checkpoint keeps the trained θ to resume from
    // and, when the refit was kept, the refitted θ that `spin eval` above used.
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("metrics.json")).unwrap()).unwrap();
    let kept = metrics["readout_refit"]["kept"].as_bool().unwrap();
    let state = checkpoint::load(&full).unwrap().0;
    assert_eq!(!state.final_params.is_empty(), kept);
    if kept {
        assert_eq!(state.final_params.len(), state.params.len());
        assert_ne!(state.final_params, state.params);
    }
    assert!(metrics["trained_network"]["eigenvalues"].is_array());
}

#[test]
fn harmonic_oscillator_2d_three_lowest_levels() {
    let ctx = ctx();
    let mut c = SchrodingerConfig::generic();
    c.set_potential("harmonic");
    c.half_width = 5.0;
    c.hidden = vec![32, 32];
    c.neig = 3;
    c.laplacian = LaplacianKind::Exact;
    c.sampler = SamplerKind::Uniform;
    c.train.batch = 256;
    c.train.steps = 4000;
    c.train.beta = 0.5;
    c.train.optimizer = OptimizerConfig::new(OptimizerKind::Adam, 3e-3);
    c.train.optimizer.schedule = Schedule::Cosine;
    let mut t = Trainer::new(ctx.clone(), c.problem(&ctx).unwrap(), c.train.clone()).unwrap();
    for _ in 0..c.train.steps {
        t.step().unwrap();
    }
    let eval = t.evaluate(65_536, 8192, 1).unwrap();
    let exact = c.exact_eigenvalues().unwrap();
    assert_eq!(exact, vec![2.0, 4.0, 4.0]);
    for (k, (a, b)) in eval.lambda_diag.iter().zip(&exact).enumerate() {
        assert!(
            (a - b).abs() / b < 0.02,
            "level {k}: {a} vs {b} ({:?})",
            eval.lambda_diag
        );
    }
    let _ = Arc::clone(&ctx);
}

#[test]
fn grid_eigensolver_matches_a_dense_solve() {
    use spectral_inference::experiments::grid::{solve, GridConfig};
    use spectral_inference::experiments::schrodinger::hydrogen_potential;
    // Hydrogen on a 2D grid of 784 unknowns (above the dense cut-off: the Krylov–Schur path):
    // exactly degenerate pairs by the square's symmetry.
    let cfg = GridConfig {
        dim: 2,
        n: 28,
        half_width: 6.0,
        kinetic: 1.0,
        neig: 7,
    };
    let v = hydrogen_potential(1.0);
    let r = solve(&cfg, &v).unwrap();
    let pts = cfg.points();
    let pot = v.values(&pts, 2).unwrap();
    let n = cfg.n;
    let total = n * n;
    let c = cfg.kinetic / cfg.spacing().powi(2);
    let h = nalgebra::DMatrix::from_fn(total, total, |i, j| {
        let (xi, yi, xj, yj) = (i % n, i / n, j % n, j / n);
        if i == j {
            4.0 * c + pot[i]
        } else if (xi == xj && yi.abs_diff(yj) == 1) || (yi == yj && xi.abs_diff(xj) == 1) {
            -c
        } else {
            0.0
        }
    });
    let mut dense: Vec<f64> = h.symmetric_eigenvalues().iter().copied().collect();
    dense.sort_by(f64::total_cmp);
    for k in 0..cfg.neig {
        assert!(
            (r.eigenvalues[k] - dense[k]).abs() < 1e-7,
            "eigenvalue {k}: {} vs dense {} (all {:?} vs {:?})",
            r.eigenvalues[k],
            dense[k],
            r.eigenvalues,
            &dense[..cfg.neig]
        );
    }
    // And the 2D oscillator converges to its closed form as the grid refines.
    let fine = solve(
        &GridConfig {
            dim: 2,
            n: 80,
            half_width: 6.0,
            kinetic: 1.0,
            neig: 3,
        },
        &spectral_inference::experiments::schrodinger::harmonic_potential(),
    )
    .unwrap();
    for (a, b) in fine.eigenvalues.iter().zip([2.0, 4.0, 4.0]) {
        assert!((a - b).abs() / b < 0.005, "{:?}", fine.eigenvalues);
    }
}

#[test]
fn block_sparse_layers_keep_their_zeros() {
    use spectral_inference::nn::{block_sparse_mask, NetworkSpec};
    let spec = NetworkSpec {
        input_dim: 2,
        hidden: vec![12, 12, 12],
        outputs: 4,
        envelope: Some(5.0),
        radial: false,
        ..Default::default()
    };
    let mask = block_sparse_mask(&spec, 4).unwrap();
    let layers = spec.layers();
    // First layer dense.
    assert!((0..layers[0].len()).all(|p| mask[layers[0].offset + p] == 1.0));
    // Deeper layers thinner; the output layer gives each eigenfunction its own inputs.
    let dense_frac = |l: usize| {
        let ly = layers[l];
        (0..ly.inputs)
            .flat_map(|i| (0..ly.outputs).map(move |o| (i, o)))
            .filter(|&(i, o)| mask[ly.w(i, o)] == 1.0)
            .count() as f64
            / (ly.inputs * ly.outputs) as f64
    };
    assert!(
        dense_frac(1) < 1.0 && dense_frac(2) < dense_frac(1) + 1e-9,
        "{} {}",
        dense_frac(1),
        dense_frac(2)
    );
    let out = layers[3];
    let seen: Vec<Vec<usize>> = (0..4)
        .map(|o| {
            (0..out.inputs)
                .filter(|&i| mask[out.w(i, o)] == 1.0)
                .collect()
        })
        .collect();
    assert!(seen.iter().all(|s| !s.is_empty()));
    assert_ne!(
        seen[0], seen[3],
        "eigenfunctions 0 and 3 should see different blocks"
    );
    assert!(block_sparse_mask(&spec, 1).is_err());
    // Training keeps the masked weights at zero.
    let ctx = ctx();
    let mut c = small_config(30);
    c.hidden = vec![12, 12, 12];
    c.neig = 4;
    let problem = c.problem(&ctx).unwrap();
    let mut t = Trainer::new(ctx.clone(), problem, c.train.clone()).unwrap();
    t.set_mask(mask.clone()).unwrap();
    for _ in 0..30 {
        t.step().unwrap();
    }
    for (p, m) in t.params.iter().zip(&mask) {
        if *m == 0.0 {
            assert_eq!(*p, 0.0);
        }
    }
    assert!(t
        .params
        .iter()
        .zip(&mask)
        .any(|(p, m)| *m == 1.0 && *p != 0.0));
}

#[test]
fn separate_networks_do_not_share_parameters() {
    use spectral_inference::nn::oracle::forward;
    use spectral_inference::nn::{separate_networks_mask, NetworkSpec};
    let spec = NetworkSpec {
        input_dim: 2,
        hidden: vec![6, 9],
        outputs: 3,
        envelope: Some(5.0),
        radial: false,
        ..Default::default()
    };
    let mask = separate_networks_mask(&spec).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let theta: Vec<f64> = spec
        .init_params(&mut rng)
        .iter()
        .zip(&mask)
        .map(|(&p, &m)| (p * m) as f64)
        .collect();
    let x = [0.3, -1.2, 2.0, 0.7];
    let base = forward(&spec, &theta, &x).u;
    // Moving any parameter changes at most one output (biases of the first layer's block j and
    // everything after belong to output j; the first layer's weights too).
    let mut owners = vec![0usize; spec.outputs];
    for p in 0..theta.len() {
        let mut t = theta.clone();
        t[p] += 0.5 * mask[p] as f64;
        let u = forward(&spec, &t, &x).u;
        let moved: Vec<usize> = (0..spec.outputs)
            .filter(|&k| (0..2).any(|b| (u[b * 3 + k] - base[b * 3 + k]).abs() > 1e-12))
            .collect();
        assert!(moved.len() <= 1, "parameter {p} moves outputs {moved:?}");
        if let Some(&k) = moved.first() {
            owners[k] += 1;
        }
    }
    assert!(owners.iter().all(|&c| c > 0), "{owners:?}");
    // Widths that do not split into N networks are an error.
    let bad = NetworkSpec {
        hidden: vec![7],
        ..spec
    };
    assert!(separate_networks_mask(&bad).is_err());
}

#[test]
fn readout_refit_lowers_the_ritz_values_of_its_sample_and_writes_them_into_the_network() {
    // The trained network's N outputs are a read-out of its last hidden layer, so the Ritz
    // values of that layer's whole span (and the constant) can only be lower on the same
    // sample; and the network it writes back has exactly those Ritz values there. The fit's
    // moments are the host's f64 sums, the evaluations the GPU's f32 reductions: the same
    // numbers within f32 rounding.
    let ctx = ctx();
    let mut cfg = small_config(60);
    cfg.laplacian = LaplacianKind::Weak;
    let mut t = Trainer::new(ctx.clone(), cfg.problem(&ctx).unwrap(), cfg.train.clone()).unwrap();
    for _ in 0..60 {
        t.step().unwrap();
    }
    let op = || cfg.operator(&ctx, LaplacianKind::Weak).unwrap();
    let (samples, chunk, seed) = (8192, 2048, 11);
    let before = t.evaluate_with(op(), samples, chunk, seed).unwrap();
    let hidden_before = t.params[..t.params.len() - 17 * 3].to_vec();
    // A cut-off that leaves fewer than N directions: an error, and the network as it was.
    let trained = t.params.clone();
    assert!(t.refit_readout(op(), samples, chunk, seed, 2.0).is_err());
    assert_eq!(t.params, trained);
    let fit = t.refit_readout(op(), samples, chunk, seed, 1e-6).unwrap();
    assert_eq!(
        &t.params[..hidden_before.len()],
        &hidden_before[..],
        "only the output layer may change"
    );
    let after = t.evaluate_with(op(), samples, chunk, seed).unwrap();
    for (k, f) in fit.iter().enumerate() {
        let (b, a) = (before.eigenvalues[k], after.eigenvalues[k]);
        let scale = b.abs().max(1.0);
        assert!(
            *f <= b + 1e-5 * scale,
            "λ_{k}: refit {f} above the trained network's {b}"
        );
        assert!(
            (a - f).abs() < 1e-4 * scale,
            "λ_{k}: the written network gives {a} on the fitting sample, the fit {f}"
        );
    }
    // The span is wider: the refit is strictly better somewhere after 60 steps.
    let gain: f64 = before
        .eigenvalues
        .iter()
        .zip(&fit)
        .map(|(b, f)| b - f)
        .sum();
    assert!(gain > 1e-3, "refit gained only {gain}");
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
    let out = spin(&first);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = checkpoint::load(&dir).unwrap().0;
    assert_eq!(state.step, 30);
    assert!(state.train_seconds > 0.0, "{}", state.train_seconds);
    // A limit below the time already trained: the resumed run takes no further step.
    let limit = format!("{}", state.train_seconds / 2.0);
    let out = spin(&[
        "schrodinger",
        "--resume",
        d,
        "--steps",
        "60",
        "--time-limit",
        &limit,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = checkpoint::load(&dir).unwrap().0;
    assert_eq!(again.step, 30, "trained on past a time limit already spent");
    assert!(again.train_seconds >= state.train_seconds);
    assert!(stopped_by_time_limit(&dir));
    // A time limit without --steps: the limit alone ends the run, past the 30 steps it was
    // configured with.
    let limit = format!("{}", again.train_seconds + 1.0);
    let out = spin(&["schrodinger", "--resume", d, "--time-limit", &limit]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = checkpoint::load(&dir).unwrap().0;
    assert!(last.step > 30, "stopped at step {}", last.step);
    assert!(last.train_seconds >= again.train_seconds + 1.0);
    assert!(stopped_by_time_limit(&dir));
}
