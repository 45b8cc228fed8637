//! Data-parallel SpIN (maths §10) with W = 2 workers on threads of this process, summing through
//! memory ([`InMemory`]): one step of theirs equals one worker's on the whole global batch, for
//! every batch layout (independent rows, a kernel's two halves, clips) and for dense and conv
//! networks; the evaluation's split moments equal one worker's.

use super::common;

use std::sync::Arc;

use common::ctx;
use nalgebra::DMatrix;
use rand::Rng;
use spectral_inference::experiments::schrodinger::{harmonic_potential, FdBox};
use spectral_inference::nn::Activation;
use spectral_inference::operators::samplers::Sampler;
use spectral_inference::operators::Operator;
use spectral_inference::spin::parallel::{Collective, InMemory, Solo};
use spectral_inference::spin::{
    OptimizerConfig, OptimizerKind, Problem, StepTrace, TrainConfig, Trainer,
};

/// Random clips of images whose pixels drift slowly within a clip.
struct Clips {
    dim: usize,
    len: usize,
}

impl Sampler for Clips {
    fn dim(&self) -> usize {
        self.dim
    }
    fn sample(&self, rng: &mut dyn rand::RngCore, count: usize) -> (Vec<f64>, Vec<f64>) {
        let mut out = Vec::with_capacity(count * self.dim);
        for _ in 0..count / self.len {
            let base: Vec<f64> = (0..self.dim).map(|_| rng.random_range(0.0..1.0)).collect();
            for t in 0..self.len {
                out.extend(base.iter().map(|b| b + 0.05 * t as f64 * b * b));
            }
        }
        (out, vec![1.0; count])
    }
}

fn config(beta: f64, batch: usize) -> TrainConfig {
    TrainConfig {
        beta,
        batch,
        steps: 100,
        seed: 11,
        // SGD: the second step's θ differs between W = 1 and W = 2 only by rounding (Adam's
        // first step would amplify rounding in near-zero gradient entries to ±lr).
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd, 1e-3),
        eigen_ema: 0.01,
        exhaustive: false,
        shift: 0.0,
        gauge: 0.0,
        objective: Default::default(),
        tail: Default::default(),
        whiten_readout: 0.0,
    }
}

fn oscillator() -> Problem {
    FdBox {
        dim: 2,
        kinetic: 1.0,
        eps: 0.5,
        half_width: 4.0,
        hidden: vec![16, 16],
        neig: 3,
        envelope: true,
    }
    .problem(harmonic_potential())
    .unwrap()
}

fn kernel_matrix() -> Problem {
    let n = 12;
    let m = DMatrix::from_fn(n, n, |i, j| {
        let d = (i as f64 - j as f64).abs();
        if i == j {
            2.0 + 0.1 * i as f64
        } else {
            -1.0 / (1.0 + d * d)
        }
    });
    spectral_inference::experiments::matrix::matrix_problem(&m, 3).unwrap()
}

fn conv_video() -> Problem {
    let spec = common::small_net(Activation::Softplus, false, 3);
    let dim = spec.input_dim;
    Problem {
        spec,
        operator: Operator::Slowness {
            clip_len: 4,
            scale: 1.0,
        },
        sampler: Box::new(Clips { dim, len: 4 }),
    }
}

/// What a worker saw after `steps` steps: the last step's pooled Σ̂, Π̂, gradient, and the
/// workers' mean J̄.
struct Seen {
    trace: StepTrace,
    jbar: Vec<f32>,
    params: Vec<f32>,
}

fn run(problem: fn() -> Problem, cfg: &TrainConfig, steps: usize, c: Arc<dyn Collective>) -> Seen {
    let mut t = Trainer::with_workers(ctx(), problem(), cfg.clone(), c).unwrap();
    for _ in 0..steps {
        t.step().unwrap();
    }
    let jbar = t.state().unwrap().jbar;
    Seen {
        trace: t.last_step.clone().unwrap(),
        jbar,
        params: t.params.clone(),
    }
}

/// W workers on threads, each running `steps` steps.
fn run_workers(problem: fn() -> Problem, cfg: &TrainConfig, steps: usize, w: usize) -> Vec<Seen> {
    let handles: Vec<_> = InMemory::group(w)
        .into_iter()
        .map(|member| {
            let cfg = cfg.clone();
            std::thread::spawn(move || run(problem, &cfg, steps, Arc::new(member)))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// max |a − b| ≤ tol · max |b|.
fn assert_rel<A: Copy + Into<f64>, B: Copy + Into<f64>>(what: &str, a: &[A], b: &[B], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    assert!(!a.is_empty(), "{what}: empty");
    let scale = b.iter().map(|&v| v.into().abs()).fold(0.0, f64::max);
    let diff = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x.into() - y.into()).abs())
        .fold(0.0, f64::max);
    assert!(scale > 0.0, "{what}: all zero");
    eprintln!("{what}: relative difference {:.2e}", diff / scale);
    assert!(
        diff <= tol * scale,
        "{what}: max difference {diff:.3e} against scale {scale:.3e} (relative {:.2e} > {tol:.0e})",
        diff / scale
    );
}

fn check_split(name: &str, problem: fn() -> Problem, cfg: TrainConfig) {
    // Two steps: the second step's gradient uses the J̄ that the first one left (β < 1).
    let one = run(problem, &cfg, 2, Arc::new(Solo));
    let two = run_workers(problem, &cfg, 2, 2);
    for (r, seen) in two.iter().enumerate() {
        let w = format!("{name}, rank {r}");
        assert_rel(
            &format!("{w}: Σ̂"),
            &seen.trace.sigma,
            &one.trace.sigma,
            1e-5,
        );
        assert_rel(&format!("{w}: Π̂"), &seen.trace.pi, &one.trace.pi, 1e-5);
        assert_rel(
            &format!("{w}: gradient"),
            &seen.trace.gradient,
            &one.trace.gradient,
            1e-5,
        );
        if cfg.beta < 1.0 {
            assert_rel(&format!("{w}: mean J̄"), &seen.jbar, &one.jbar, 1e-5);
        } else {
            assert!(seen.jbar.is_empty() && one.jbar.is_empty());
        }
    }
    // The workers agree bit for bit.
    assert_eq!(
        two[0].params, two[1].params,
        "{name}: θ differs between ranks"
    );
    assert_eq!(two[0].trace.gradient, two[1].trace.gradient);
}

#[test]
fn two_workers_step_like_one_on_a_stencil_operator() {
    check_split("oscillator, β = 0.5", oscillator, config(0.5, 64));
    check_split("oscillator, β = 1 (fused)", oscillator, config(1.0, 64));
}

#[test]
fn two_workers_step_like_one_on_a_kernel_s_two_halves() {
    check_split("matrix kernel", kernel_matrix, config(0.5, 128));
}

#[test]
fn two_workers_step_like_one_on_conv_clips() {
    check_split("conv net on clips", conv_video, config(0.5, 32));
}

#[test]
fn a_batch_that_does_not_split_is_refused_before_training() {
    let mut members = InMemory::group(3).into_iter();
    let m: Arc<dyn Collective> = Arc::new(members.next().unwrap());
    // 32 inputs are 8 clips of 4: not a multiple of 3 clips.
    let err = Trainer::with_workers(ctx(), conv_video(), config(0.5, 32), m)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("3 equal shares"), "{err}");
    let m: Arc<dyn Collective> = Arc::new(members.next().unwrap());
    let err = Trainer::with_workers(ctx(), kernel_matrix(), config(0.5, 100), m)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("multiple of 6"), "{err}");
}

#[test]
fn two_workers_evaluate_like_one() {
    let cfg = config(1.0, 64);
    let mut one = Trainer::with_workers(ctx(), oscillator(), cfg.clone(), Arc::new(Solo)).unwrap();
    one.step().unwrap();
    let params = one.params.clone();
    let e1 = one.evaluate(5 * 512, 512, 3).unwrap();
    let handles: Vec<_> = InMemory::group(2)
        .into_iter()
        .map(|member| {
            let (cfg, params) = (cfg.clone(), params.clone());
            std::thread::spawn(move || {
                let mut t =
                    Trainer::with_workers(ctx(), oscillator(), cfg, Arc::new(member)).unwrap();
                t.params = params;
                t.evaluate(5 * 512, 512, 3).unwrap()
            })
        })
        .collect();
    for h in handles {
        let e2 = h.join().unwrap();
        assert_eq!(e2.samples, e1.samples);
        assert_rel("Σ", &e2.sigma, &e1.sigma, 1e-9);
        assert_rel("Π", &e2.pi, &e1.pi, 1e-9);
        assert_rel("eigenvalues", &e2.eigenvalues, &e1.eigenvalues, 1e-9);
        assert_eq!(
            e2.eigenvalue_std_errors.len(),
            e1.eigenvalue_std_errors.len()
        );
        assert_rel(
            "standard errors",
            &e2.eigenvalue_std_errors,
            &e1.eigenvalue_std_errors,
            1e-6,
        );
    }
}
