#![allow(dead_code)]
use std::sync::{Arc, OnceLock};

use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spectral_inference::gpu::{context::request_from_env, GpuContext};
use spectral_inference::nn::NetworkSpec;
use spectral_inference::operators::Batch;
use spectral_inference::spin::{oracle, Engine, EngineOptions, Probe};

/// The shared GPU context. Fails loudly when there is no adapter: CI installs lavapipe.
pub fn ctx() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new(&request_from_env()) {
        Ok(c) => Arc::new(c),
        Err(e) => panic!("GPU tests need an adapter: {e}"),
    })
    .clone()
}

/// |gpu − cpu| ≤ atol + rtol·|cpu|, printing the first failing index and both values.
pub fn assert_close(name: &str, gpu: &[f32], cpu: &[f64], rtol: f64, atol: f64) {
    assert_eq!(
        gpu.len(),
        cpu.len(),
        "{name}: length {} vs {}",
        gpu.len(),
        cpu.len()
    );
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let err = (g as f64 - c).abs();
        let allowed = atol + rtol * c.abs();
        assert!(
            err <= allowed,
            "{name}[{i}]: gpu {g} vs cpu {c} (|diff| {err:.3e} > {allowed:.3e})"
        );
        if err > worst.1 {
            worst = (i, err);
        }
    }
}

/// Largest magnitude, to scale absolute tolerances of long reductions.
pub fn scale(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30)
}

pub fn random_spd(n: usize, rng: &mut ChaCha8Rng) -> DMatrix<f64> {
    let a = DMatrix::from_fn(n, n, |_, _| rng.random_range(-0.5..0.5));
    &a * a.transpose() + DMatrix::identity(n, n)
}

/// One whole SpIN step of `spec` on `batch` on the GPU engine against the CPU f64 oracle step:
/// every forward buffer, Σ̂, Π̂, J̄ (unless the engine is fused) and the gradient.
pub fn check_engine(
    spec: &NetworkSpec,
    batch: &Batch,
    beta: f64,
    seed: u64,
    options: EngineOptions,
) {
    let ctx = ctx();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let params32 = spec.init_params(&mut rng);
    let params: Vec<f64> = params32.iter().map(|&v| v as f64).collect();
    let n = spec.outputs;
    let p = spec.num_params();
    let jbar0: Vec<f64> = (0..n * (n + 1) / 2 * p)
        .map(|_| rng.random_range(-0.1..0.1))
        .collect();
    let sigma_avg = random_spd(n, &mut rng);
    let want = oracle::step(spec, &params, batch, &sigma_avg, &jbar0, beta).expect("oracle step");

    let engine =
        Engine::with_options(Arc::clone(&ctx), spec, batch.shape, true, options).expect("engine");
    engine.set_params(&params32).unwrap();
    engine.set_batch(batch).unwrap();
    engine
        .write_jbar(&jbar0.iter().map(|&v| v as f32).collect::<Vec<_>>())
        .unwrap();
    let (sigma, pi) = engine.statistics().unwrap();

    for (l, z) in want.forward.z.iter().enumerate() {
        assert_close(
            &format!("z[{l}]"),
            &engine.read(Probe::Z(l)).unwrap(),
            z,
            1e-4,
            1e-4 * scale(z),
        );
        let a = &want.forward.a[l];
        assert_close(
            &format!("a[{l}]"),
            &engine.read(Probe::A(l)).unwrap(),
            a,
            1e-4,
            1e-4 * scale(a),
        );
    }
    assert_close(
        "envelope",
        &engine.read(Probe::Envelope).unwrap(),
        &want.forward.env,
        1e-5,
        1e-6,
    );
    let u = &want.forward.u;
    assert_close(
        "u",
        &engine.read(Probe::U).unwrap(),
        u,
        1e-4,
        1e-4 * scale(u),
    );
    assert_close(
        "X",
        &engine.read(Probe::X).unwrap(),
        &want.xs,
        1e-3,
        1e-4 * scale(&want.xs),
    );
    assert_close(
        "Y",
        &engine.read(Probe::Y).unwrap(),
        &want.ys,
        1e-3,
        1e-3 * scale(&want.ys),
    );
    assert_close(
        "sigma",
        &sigma,
        &want.sigma,
        1e-3,
        1e-4 * scale(&want.sigma),
    );
    assert_close("pi", &pi, &want.pi, 1e-3, 1e-3 * scale(&want.pi));

    let m = &want.matrices;
    let flat = spectral_inference::spin::host::flat;
    let grad = engine
        .gradient(&flat(&m.g_pi), &flat(&m.g_sigma), beta)
        .unwrap();
    if !engine.is_fused() {
        let jbar = engine.read_jbar().unwrap();
        assert_close("jbar", &jbar, &want.jbar, 1e-3, 1e-4 * scale(&want.jbar));
    }
    assert_close("grad", &grad, &want.grad, 2e-3, 2e-3 * scale(&want.grad));
}

/// A small conv net: conv (stride 2, SAME) → conv (stride 1, VALID) → flatten → dense → N.
pub fn small_net(
    act: spectral_inference::nn::Activation,
    constant_first: bool,
    outputs: usize,
) -> spectral_inference::nn::NetworkSpec {
    let (h, w, c) = (9, 8, 2);
    spectral_inference::nn::NetworkSpec {
        input_dim: h * w * c,
        image: Some(spectral_inference::nn::ImageShape {
            height: h,
            width: w,
            channels: c,
        }),
        conv: vec![
            spectral_inference::nn::Conv2dSpec {
                channels: 4,
                kernel: 3,
                stride: 2,
                padding: spectral_inference::nn::Padding::Same,
            },
            spectral_inference::nn::Conv2dSpec {
                channels: 6,
                kernel: 3,
                stride: 1,
                padding: spectral_inference::nn::Padding::Valid,
            },
        ],
        hidden: vec![6],
        outputs,
        activation: act,
        constant_first,
        ..Default::default()
    }
}

/// Inputs for channel-major tangent rows: values, unit vectors, zeros.
pub fn tangent_inputs(x: &[f64], d: usize) -> Vec<f64> {
    let s = x.len() / d;
    let mut inputs = x.to_vec();
    for i in 0..d {
        for _ in 0..s {
            inputs.extend((0..d).map(|j| if i == j { 1.0 } else { 0.0 }));
        }
    }
    inputs.extend(std::iter::repeat_n(0.0, s * d));
    inputs
}

/// Runs the `spin` binary with `args`; panics with its stderr when it fails.
pub fn spin_ok<I, S>(args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spin"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Starts `spin args`, kills it once `run_dir` holds a checkpoint, and returns the step that
/// checkpoint saved.
pub fn kill_after_first_checkpoint<I, S>(args: I, run_dir: &std::path::Path) -> u64
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_spin"))
        .args(args)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !run_dir.join("checkpoint.json").exists() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    spectral_inference::spin::checkpoint::load(run_dir)
        .unwrap()
        .0
        .step
}

/// The step column of a run folder's `eigenvalues.csv`.
pub fn logged_steps(run_dir: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(run_dir.join("eigenvalues.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

/// Checks a `--seeds` run in `dir`: seeds.json lists `seeds` in order, each OUT/seed-S ran with
/// its seed, and the summary of `key` is the median and the largest of the seeds' values (which
/// each must have); seeds.md has the two summary rows. Returns the seeds' values of `key`.
pub fn check_seeds_summary(dir: &std::path::Path, seeds: &[u64], key: &str) -> Vec<f64> {
    let read = |p: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}")))
            .unwrap()
    };
    let s = read(dir.join("seeds.json"));
    let rows = s["seeds"].as_array().unwrap();
    let got: Vec<u64> = rows.iter().map(|r| r["seed"].as_u64().unwrap()).collect();
    assert_eq!(got, seeds);
    for seed in seeds {
        let m = read(dir.join(format!("seed-{seed}/metrics.json")));
        assert_eq!(m["config"]["train"]["seed"].as_u64(), Some(*seed));
    }
    let values: Vec<f64> = rows
        .iter()
        .map(|r| r[key].as_f64().unwrap_or_else(|| panic!("no {key} in {r}")))
        .collect();
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    };
    // serde_json parses floats to within an ulp, not always exactly.
    let close = |got: &serde_json::Value, want: f64| {
        let g = got.as_f64().unwrap_or_else(|| panic!("{key}: {s}"));
        assert!(
            (g - want).abs() <= 1e-12 * want.abs(),
            "{key}: {g} vs {want}"
        );
    };
    close(&s[key]["median"], median);
    close(&s[key]["worst"], sorted[n - 1]);
    let md = std::fs::read_to_string(dir.join("seeds.md")).unwrap();
    assert!(
        md.contains("**median**") && md.contains("**worst**"),
        "{md}"
    );
    values
}
