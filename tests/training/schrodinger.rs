//! The Schrödinger front end: closed forms, potentials as WGSL expressions, importance
//! sampling, the 2D harmonic oscillator, block-sparse and separate networks, the read-out refit
//! (checkpoints, resuming and `spin eval`: resume.rs).

use super::common;

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

/// A 2D oscillator on a 16×16 net with importance sampling at β 0.1: steps of milliseconds.
pub(crate) fn small_config(out_steps: u64) -> SchrodingerConfig {
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

/// `small_config(60)` at β = 1 without the tail (the outputs neither white nor in order yet), and
/// its trainer after those 60 steps.
fn oscillator_after_60_steps(
    ctx: &Arc<spectral_inference::gpu::GpuContext>,
) -> (SchrodingerConfig, Trainer) {
    let mut cfg = small_config(60);
    cfg.train.beta = 1.0;
    cfg.train.tail.fraction = 0.0;
    let mut t = Trainer::new(ctx.clone(), cfg.problem(ctx).unwrap(), cfg.train.clone()).unwrap();
    for _ in 0..60 {
        t.step().unwrap();
    }
    (cfg, t)
}

/// Σ (n×n, row-major) is the identity to 10⁻⁴ — after `what`, on its own sample.
fn assert_white(sigma: &[f64], n: usize, what: &str) {
    for i in 0..n {
        for j in 0..n {
            let want = if i == j { 1.0 } else { 0.0 };
            assert!(
                (sigma[i * n + j] - want).abs() < 1e-4,
                "Σ after {what}, on its own sample: {sigma:?}"
            );
        }
    }
}

/// The same sample's Ritz values before and after a change of the read-out's basis: the span
/// did not move.
fn assert_same_span(
    before: &spectral_inference::spin::Evaluation,
    after: &spectral_inference::spin::Evaluation,
) {
    for (a, b) in before.eigenvalues.iter().zip(&after.eigenvalues) {
        assert!(
            (a - b).abs() < 1e-4 * a.abs().max(1.0),
            "the span moved: Ritz values {:?} → {:?}",
            before.eigenvalues,
            after.eigenvalues
        );
    }
}

#[test]
fn the_readout_rotation_keeps_the_span_and_whitens_and_orders_the_outputs() {
    // A 2D oscillator after 60 steps at β = 1 (outputs neither white nor in order): rotated on
    // a sample, the same sample then gives Σ = I and a diagonal Λ in ascending order, and an
    // independent sample gives the same Ritz values as before (the span did not move).
    let ctx = ctx();
    let (mut cfg, mut t) = oscillator_after_60_steps(&ctx);
    let before = t.evaluate(8192, 4096, 99).unwrap();
    let values = t
        .rotate_readout(8192, 4096, 7)
        .unwrap()
        .expect("applies at β = 1");
    let own = t.evaluate(8192, 4096, 7).unwrap();
    let n = 3;
    assert_white(&own.sigma, n, "the rotation");
    for i in 0..n {
        assert!(
            (own.lambda_diag[i] - values[i]).abs() < 1e-4 * values[i].abs().max(1.0),
            "diag Λ {:?} against the Ritz values {values:?}",
            own.lambda_diag
        );
    }
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    assert_same_span(&before, &t.evaluate(8192, 4096, 99).unwrap());
    assert_eq!(t.lambda_ema, values);
    // Not at β < 1, where Σ̄ and J̄ hold the old basis.
    cfg.train.beta = 0.1;
    let mut u = Trainer::new(ctx.clone(), cfg.problem(&ctx).unwrap(), cfg.train.clone()).unwrap();
    u.step().unwrap();
    assert!(u.rotate_readout(1024, 1024, 1).unwrap().is_none());
}

#[test]
fn whitening_the_readout_leaves_lambda_and_whitens_sigma_on_the_same_sample() {
    // A 2D oscillator after 60 steps at β = 1: whitened at rate 1 with Σ of a sample (maths
    // §17), the same sample then gives Σ = I and the same Λ — every entry, the masked order
    // included — since the move is lower triangular; an independent sample the same Ritz values.
    let ctx = ctx();
    let (_, mut t) = oscillator_after_60_steps(&ctx);
    let n = 3;
    let before = t.evaluate(8192, 4096, 7).unwrap();
    let other = t.evaluate(8192, 4096, 99).unwrap();
    let sigma = nalgebra::DMatrix::from_row_slice(n, n, &before.sigma);
    assert!(
        spectral_inference::spin::host::condition(&sigma) > 1.5,
        "60 steps leave Σ away from I: {:?}",
        before.sigma
    );
    assert!(t.whiten_readout(&sigma, 1.0));
    let own = t.evaluate(8192, 4096, 7).unwrap();
    let lambda = |e: &spectral_inference::spin::Evaluation| {
        let s = nalgebra::DMatrix::from_row_slice(n, n, &e.sigma);
        let p = nalgebra::DMatrix::from_row_slice(n, n, &e.pi);
        let l_inv = spectral_inference::spin::host::cholesky(&s)
            .unwrap()
            .try_inverse()
            .unwrap();
        &l_inv * ((&p + p.transpose()) * 0.5) * l_inv.transpose()
    };
    let (l0, l1) = (lambda(&before), lambda(&own));
    let scale = l0.amax();
    assert_white(&own.sigma, n, "the whitening");
    for i in 0..n {
        for j in 0..n {
            assert!(
                (l0[(i, j)] - l1[(i, j)]).abs() < 1e-4 * scale,
                "Λ moved: {l0} → {l1}"
            );
        }
    }
    assert_same_span(&other, &t.evaluate(8192, 4096, 99).unwrap());
}

#[test]
fn an_expression_potential_gets_the_grid_s_extrapolated_reference_when_it_converges() {
    let ctx = ctx();
    // −d²/dx² + x⁴ (the quartic oscillator; its levels to 10 digits: 1.0603620904,
    // 3.7996730298, 7.4556979380).
    let mut c = SchrodingerConfig::generic();
    c.dim = 1;
    c.set_potential("x * x * x * x");
    c.half_width = 5.0;
    c.neig = 3;
    assert!(
        c.exact_eigenvalues().is_none(),
        "nothing before the grid ran"
    );
    assert_eq!(c.prepare_expression_reference(&ctx).unwrap(), Some(true));
    let e = c.exact_eigenvalues().unwrap();
    for (got, want) in e.iter().zip([1.0603620904, 3.7996730298, 7.4556979380]) {
        assert!((got - want).abs() < 1e-5 * want, "{e:?}");
    }
    // A cusp converges more slowly than h²: the Richardson step moves the levels by more than
    // the tolerance, and the run gets no reference.
    c.set_potential("-4.0 / (abs(x) + 0.02)");
    assert_eq!(c.prepare_expression_reference(&ctx).unwrap(), Some(false));
    assert!(c.exact_eigenvalues().is_none());
    // Without the envelope the network has no zero boundary, which the grid's reference has.
    c.set_potential("x * x * x * x");
    c.envelope = false;
    assert_eq!(c.prepare_expression_reference(&ctx).unwrap(), None);
    assert!(c.exact_eigenvalues().is_none());
    c.envelope = true;
    // A closed form needs no grid.
    c.set_potential("harmonic");
    assert_eq!(c.prepare_expression_reference(&ctx).unwrap(), None);
}
