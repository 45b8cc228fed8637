//! Command-line interface.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use spectral_inference::experiments::schrodinger::{
    self, LaplacianKind, Preset, SamplerKind, SchrodingerConfig, UNTIL_TIME_LIMIT,
};
use spectral_inference::experiments::{bench, matrix};
use spectral_inference::gpu::{list_adapters, AdapterRequest, BackendChoice, GpuContext};
use spectral_inference::io::write_json;
use spectral_inference::spin::{OptimizerConfig, OptimizerKind, Schedule, TrainConfig};

/// Spectral Inference Networks on wgpu: learn eigenfunctions of linear operators with neural
/// networks, with hand-written WGSL compute kernels.
#[derive(Parser, Debug)]
#[command(name = "spin", version, about, long_about = None)]
struct Cli {
    /// Use the adapter whose name contains this (case-insensitive); see `spin info` [default:
    /// the first one wgpu offers].
    #[arg(long, global = true, value_name = "SUBSTRING")]
    adapter: Option<String>,
    /// Graphics backend: vulkan, metal, dx12 or gl [default: all; honours WGPU_BACKEND].
    #[arg(long, global = true, value_name = "BACKEND")]
    backend: Option<BackendChoice>,
    /// Force the software (CPU) adapter, e.g. Mesa lavapipe.
    #[arg(long, global = true)]
    software: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the adapters and the limits that matter.
    Info,
    /// Learn the K lowest eigenpairs of a symmetric matrix given as CSV (the reference's
    /// sanity check: one-hot inputs, a linear network and the kernel operator on pairs).
    Matrix(MatrixArgs),
    /// Learn the lowest eigenfunctions of H = −c∇² + V (any potential, 1–3 dimensions).
    Schrodinger(SchrodingerArgs),
    /// The 2D hydrogen atom (N = 9) with our best defaults, or `--preset reference`.
    Hydrogen(HydrogenArgs),
    /// Eigenfunction values v = L⁻¹u of a trained run at new points (CSV in, CSV out), with L
    /// = chol Σ on 65 536 fresh samples: E_p[v_j v_k] = δ_jk under the uniform density p on the
    /// box (`--normalize sampling`, the default; ∫v² dx = (2D)^d), or ∫v² dx = 1 (`unit`).
    Eval(EvalArgs),
    /// The exact baseline: the finite-difference Hamiltonian on an n^d grid and its lowest
    /// eigenpairs (faer's Krylov–Schur solver); eigenvalues to JSON and a picture.
    Grid(GridArgs),
    /// Steps per second of whole training steps for the named configurations.
    Bench(BenchArgs),
    /// The accuracy suite: `spin schrodinger`'s defaults on oscillators (1–3D), hydrogen (2D,
    /// 3D), a particle in a box, a Pöschl–Teller well and double wells, against closed forms or
    /// an extrapolated grid; a Markdown table and suite.json.
    Suite(SuiteArgs),
    /// The paper's bouncing-balls video (§5.2) as an .npz: frames (uint8 T×S×S),
    /// episode_starts and the balls' positions (float32 T×B×2 in [0, 1]).
    Balls(BallsArgs),
    /// An Atari-like video without ROMs: a Breakout-style game (84×84, walls, bricks, paddle,
    /// ball) played by a random agent with sticky actions, in the reference's Atari .npz format
    /// (frames, episode_starts; positions of paddle and ball).
    Arcade(ArcadeArgs),
    /// Deep slow feature analysis on a video (.npz or PNG folders): SpIN with the slowness
    /// operator on clips of stacked frames, held-out Δ-values against linear SFA and PCA.
    Video(VideoArgs),
}

#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
struct VideoArgs {
    /// Training video: an .npz with `frames` (uint8 T×H×W) and `episode_starts`, or a folder of
    /// PNG frames (or of such folders, one per episode) [default: none; needed unless --resume].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Held-out video [default: the last 10 % of every episode of --data, never trained on].
    #[arg(long)]
    test: Option<PathBuf>,
    /// Settings: ours (default), paper (C.2) or atari-reference (the reference's atari.py).
    #[arg(long, default_value = "ours", value_parser = ["ours", "paper", "atari-reference"])]
    preset: String,
    /// Frames stacked per input [default: 2; atari-reference 4].
    #[arg(long)]
    frames_per_input: Option<usize>,
    /// Clips per batch [default: 8; paper 24; atari-reference 1].
    #[arg(long)]
    clips: Option<usize>,
    /// Consecutive inputs per clip [default: 10; atari-reference 129].
    #[arg(long)]
    clip_length: Option<usize>,
    /// Learned eigenfunctions N [default: 8; paper 12; atari-reference 5].
    #[arg(long)]
    neig: Option<usize>,
    /// A constant first eigenfunction in front of the N learned ones: true or false [default: true;
    /// atari-reference false].
    #[arg(long)]
    constant: Option<bool>,
    /// Conv channels per layer, or `none` [default: 16,16,16; paper 32,32,32; atari-reference
    /// 64,64,64].
    #[arg(long)]
    conv: Option<String>,
    /// The network reads the inputs' M leading principal coordinates, whitened (a fixed first
    /// layer fitted on the training inputs, as linear SFA's), and needs `--conv none`; 0: it
    /// reads the pixels [default: 0].
    #[arg(long)]
    whiten: Option<usize>,
    /// Conv kernel size [default: 5; atari-reference 6].
    #[arg(long)]
    kernel: Option<usize>,
    /// Conv stride [default: 2].
    #[arg(long)]
    stride: Option<usize>,
    /// Conv padding, one value or one per layer: same or valid [default: same; atari-reference
    /// valid,same,same].
    #[arg(long, value_delimiter = ',')]
    padding: Option<Vec<String>>,
    /// Dense hidden widths after the conv layers or the whitening, or `none` (a linear last
    /// layer only) [default: 64; paper and atari-reference 128].
    #[arg(long)]
    hidden: Option<String>,
    /// Hidden activation: relu, softplus [default: relu].
    #[arg(long)]
    activation: Option<String>,
    /// Block-sparse layers between feature maps with K blocks (paper C.1–C.2; 0: dense) [default: 0].
    #[arg(long)]
    blocks: Option<usize>,
    /// Training steps [default: 3000; paper 10⁶; atari-reference 10⁵].
    #[arg(long)]
    steps: Option<u64>,
    /// Stop training after this many seconds (a resumed run counts its earlier ones), then
    /// evaluate; a cosine schedule anneals over this limit when it ends the run before --steps
    /// [default: no limit].
    #[arg(long)]
    time_limit: Option<f64>,
    /// Optimiser: rmsprop, adam or sgd [default: adam; paper, atari-reference rmsprop].
    #[arg(long)]
    optimizer: Option<OptimizerKind>,
    /// Learning rate [default: 1e-3; paper 1e-6; atari-reference 1e-3].
    #[arg(long)]
    lr: Option<f64>,
    /// Schedule: constant, cosine or inverse [default: cosine; presets constant].
    #[arg(long)]
    schedule: Option<Schedule>,
    /// Moving-average rate β (1 = no moving averages) [default: 1; paper, atari-reference
    /// 0.01].
    #[arg(long)]
    beta: Option<f64>,
    /// Shift margin for β < 1: the gradient is taken for K − cI, c = max(0, λ_max + this ×
    /// spread), which keeps Σ̄'s lag from collapsing features (0: off) [default: 0.05; paper,
    /// atari-reference 0].
    #[arg(long)]
    shift: Option<f64>,
    /// Random seed [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Whitened PCA dimensions of the linear-SFA yardstick [default: 256].
    #[arg(long)]
    sfa_pca: Option<usize>,
    /// Output folder [default: runs/video].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write a checkpoint every this many steps [default: 500].
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Continue the run in this folder from its checkpoint (--steps, --time-limit may change)
    /// [default: a new run].
    #[arg(long)]
    resume: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
struct BallsArgs {
    /// Frames T.
    #[arg(long, default_value_t = 200_000)]
    frames: usize,
    /// Image side S in pixels.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Number of balls B.
    #[arg(long, default_value_t = 3)]
    balls: usize,
    /// Ball radius, in units of the box side.
    #[arg(long, default_value_t = 0.1)]
    radius: f64,
    /// Speed, box sides per frame.
    #[arg(long, default_value_t = 0.03)]
    speed: f64,
    /// Random seed (initial places and directions).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file.
    #[arg(long, default_value = "runs/balls.npz")]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
struct ArcadeArgs {
    /// Frames T.
    #[arg(long, default_value_t = 50_000)]
    frames: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 84)]
    size: usize,
    /// Random seed (the agent's actions and the launch angles).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file.
    #[arg(long, default_value = "runs/arcade.npz")]
    out: PathBuf,
}

/// Settings of a Schrödinger run; unset ones come from the preset.
#[derive(clap::Args, Debug, Default)]
#[command(allow_negative_numbers = true)]
struct SchrodingerArgs {
    /// Dimension: 1, 2 or 3 [default: 2].
    #[arg(long)]
    dim: Option<usize>,
    /// `hydrogen`, `harmonic` or a WGSL expression in `x` (vecD<f32>, f32 in 1D), e.g. `dot(x, x)`
    /// [default: hydrogen].
    #[arg(long, allow_hyphen_values = true)]
    potential: Option<String>,
    /// Nuclear charge Z of the hydrogen potential −Z/‖x‖ [default: 1].
    #[arg(long)]
    charge: Option<f64>,
    /// Kinetic coefficient c in H = −c∇² + V [default: 1].
    #[arg(long)]
    kinetic: Option<f64>,
    /// Half-width D of the box [−D, D]^d [default: 50; for --potential hydrogen twice the
    /// turning radius Z/|E_N| of the highest level learned if that is more: 98 for N = 16 in 2D].
    #[arg(long = "box")]
    half_width: Option<f64>,
    /// Multiply the network by the box envelope: true or false [default: true].
    #[arg(long)]
    envelope: Option<bool>,
    /// Laplacian: fd (finite differences, see --eps), exact (forward mode) or weak (⟨∇u, c∇u⟩)
    /// [default: weak; --preset reference: exact].
    #[arg(long)]
    laplacian: Option<LaplacianKind>,
    /// Finite-difference step ε [default: 0.1].
    #[arg(long)]
    eps: Option<f64>,
    /// Sampler: uniform (the reference), importance (fixed, around the origin) or adaptive (the
    /// importance proposal mixed with a grid refitted to the learned eigenfunctions)
    /// [default: adaptive; --preset reference: uniform].
    #[arg(long)]
    sampler: Option<SamplerKind>,
    /// Hidden layer widths [default: 64,64,64; with the read-out refit the last one grows to 7
    /// units per eigenfunction, a multiple of 32 from 64 to 224: 128 for N = 16].
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Number of eigenfunctions N [default: 9].
    #[arg(long)]
    neig: Option<usize>,
    /// Samples per step [default: 128].
    #[arg(long)]
    batch: Option<usize>,
    /// Training steps (the run stops at this step) [default: 20000; spin hydrogen: 60000;
    /// --preset reference: 1000000].
    #[arg(long)]
    steps: Option<u64>,
    /// Stop training after this many seconds (a resumed run counts its earlier ones), then
    /// evaluate and write outputs; a cosine schedule anneals within it. Given without --steps,
    /// the time limit alone ends the run (the preset's step count no longer applies) [default:
    /// no limit; spin hydrogen: 1800].
    #[arg(long)]
    time_limit: Option<f64>,
    /// Optimiser: rmsprop, adam or sgd [default: adam; --preset reference: rmsprop].
    #[arg(long)]
    optimizer: Option<OptimizerKind>,
    /// Learning rate, reached after a linear warm-up of --warmup steps [default: 3e-3;
    /// --preset reference: 1e-5].
    #[arg(long)]
    lr: Option<f64>,
    /// Schedule: constant, cosine or inverse [default: cosine; --preset reference: constant].
    #[arg(long)]
    schedule: Option<Schedule>,
    /// Linear learning-rate warm-up over this many first steps [default: 500; --preset
    /// reference: 0].
    #[arg(long)]
    warmup: Option<u64>,
    /// Moving-average rate β (1 = no moving averages, the paper's ablation) [default: 1;
    /// --preset reference: 0.01].
    #[arg(long)]
    beta: Option<f64>,
    /// Shift margin for β < 1: the gradient is taken for K − cI, c = max(0, λ_max + this ×
    /// spread), which keeps Σ̄'s lag from collapsing features with positive eigenvalues (0:
    /// off) [default: 0.05; --preset reference: 0].
    #[arg(long)]
    shift: Option<f64>,
    /// Random seed [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Output folder [default: runs/schrodinger; spin hydrogen: runs/hydrogen].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write a checkpoint every this many steps (0: only at the end) [default: 1000].
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Points in the final evaluation's first pass [default: 1048576].
    #[arg(long)]
    eval_samples: Option<usize>,
    /// Grow the evaluation until every eigenvalue's standard error is below this fraction of
    /// its value (0: one pass) [default: 0.0005].
    #[arg(long)]
    eval_target: Option<f64>,
    /// The evaluation's largest sample [default: 4194304].
    #[arg(long)]
    eval_max_samples: Option<usize>,
    /// The evaluation's Laplacian: fd, exact or weak (the same integral, other estimators)
    /// [default: exact, whose variance vanishes at an eigenfunction; the training's in 1D with
    /// --radial true].
    #[arg(long)]
    eval_laplacian: Option<LaplacianKind>,
    /// Half-width of the eigenfunction plots [default: D/2, at least 25 and at most D].
    #[arg(long)]
    plot_extent: Option<f64>,
    /// Input length scale: the first layer's initial weights are divided by it; 0: min(1, D/4),
    /// or D/50 above D = 50 [default: 0, i.e. from the box (1 for spin hydrogen's box of 50)].
    #[arg(long)]
    input_scale: Option<f64>,
    /// Block-sparse layers with K blocks (paper appendix C.1; 0: dense) [default: 0].
    #[arg(long)]
    blocks: Option<usize>,
    /// Give the network the radial feature ‖x‖ as an extra input: true or false [default: true
    /// for --potential hydrogen, false otherwise; --preset reference: false].
    #[arg(long)]
    radial: Option<bool>,
    /// One network per eigenfunction, each with the --hidden widths: true or false
    /// [default: false].
    #[arg(long)]
    separate: Option<bool>,
    /// Length scales of the importance proposal's radial components, e.g. 0.5,1.5,3,6,12
    /// [default: the box half-width D × 0.01,0.03,0.06,0.12,0.24].
    #[arg(long, value_delimiter = ',')]
    proposal_scales: Option<Vec<f64>>,
    /// Refit the adaptive proposal to the current eigenfunctions every this many steps
    /// [default: 250].
    #[arg(long)]
    adapt_every: Option<u64>,
    /// After training, refit the output layer by Rayleigh–Ritz on the span of the last hidden
    /// layer's units (fitted on --eval-samples points of its own; both networks are evaluated
    /// and reported): true or false [default: true; --preset reference: false].
    #[arg(long)]
    readout_refit: Option<bool>,
    /// Continue the run saved in this folder (its configuration; --steps, --time-limit, the
    /// --eval-* settings, --readout-refit, --plot-extent and --checkpoint-every may be changed)
    /// [default: a new run].
    #[arg(long)]
    resume: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
struct HydrogenArgs {
    /// best (spin schrodinger's defaults — weak form, radial input feature, adaptive proposal,
    /// Adam 3e-3 with warm-up and cosine schedule, β 1 — for 60 000 steps or 30 minutes, then the
    /// read-out refit) or reference (the reference code's flag defaults: exact Laplacian,
    /// uniform sampling, RMSProp 1e-5, β 0.01, 10⁶ steps, no refit).
    #[arg(long, default_value = "best")]
    preset: Preset,
    #[command(flatten)]
    run: SchrodingerArgs,
}

#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
struct GridArgs {
    /// Dimension: 1, 2 or 3.
    #[arg(long, default_value_t = 2)]
    dim: usize,
    /// `hydrogen`, `harmonic` or a WGSL expression in `x`.
    #[arg(long, default_value = "hydrogen", allow_hyphen_values = true)]
    potential: String,
    /// Nuclear charge Z.
    #[arg(long, default_value_t = 1.0)]
    charge: f64,
    /// Kinetic coefficient c.
    #[arg(long, default_value_t = 1.0)]
    kinetic: f64,
    /// Box half-width D.
    #[arg(long = "box", default_value_t = 50.0)]
    half_width: f64,
    /// Interior grid points per axis.
    #[arg(long, default_value_t = 128)]
    n: usize,
    /// Eigenpairs.
    #[arg(long, default_value_t = 9)]
    neig: usize,
    /// Output folder.
    #[arg(long, default_value = "runs/grid")]
    out: PathBuf,
    /// Half-width of the picture [default: the box].
    #[arg(long)]
    plot_extent: Option<f64>,
}

#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
struct EvalArgs {
    /// A run's output folder (with checkpoint.safetensors).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Points, one per line, d coordinates separated by commas; an optional header line (with
    /// columns x0 … x{d−1} picked by name, so this command's own output reads back).
    /// Schrödinger runs [default: none; one of --points and --data is needed].
    #[arg(long, required_unless_present = "data")]
    points: Option<PathBuf>,
    /// A video (.npz or PNG folders) for a `spin video` run: the learned features of every
    /// input in frame order (inputs that would cross an episode start left out), float32
    /// [default: none].
    #[arg(long, conflicts_with = "points")]
    data: Option<PathBuf>,
    /// Output CSV, or .npy for video features [default: CSV on stdout].
    #[arg(long)]
    out: Option<PathBuf>,
    /// How v is scaled: `sampling` (SpIN's own: E_p[v²] = 1 under the uniform density p on the
    /// box [−D, D]^d, so ∫v² dx = (2D)^d) or `unit` (∫v² dx = 1, quantum mechanics'
    /// convention: v divided by (2D)^{d/2}).
    #[arg(long, default_value = "sampling", value_parser = ["sampling", "unit"])]
    normalize: String,
}

#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
struct MatrixArgs {
    /// The matrix: n rows of n numbers separated by commas or spaces.
    #[arg(long, default_value = "assets/random-symmetric-20.csv")]
    file: PathBuf,
    /// Number of eigenpairs K (the lowest).
    #[arg(long, default_value_t = 4)]
    neig: usize,
    /// Output folder for metrics.json.
    #[arg(long, default_value = "runs/matrix")]
    out: PathBuf,
    /// Training steps.
    #[arg(long, default_value_t = 3000)]
    steps: u64,
    /// Samples per step (halves form the pairs of the kernel); 0: all n² pairs every step (exact).
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Moving-average rate β of Σ̄ and J̄ (1: none).
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// Learning rate.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// Optimiser: rmsprop, adam or sgd.
    #[arg(long, default_value = "adam")]
    optimizer: OptimizerKind,
    /// Learning-rate schedule: constant, cosine or inverse (η/t).
    #[arg(long, default_value = "cosine")]
    schedule: Schedule,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
struct SuiteArgs {
    /// Training seconds per case (then evaluation).
    #[arg(long, default_value_t = 300.0)]
    seconds: f64,
    /// Only the cases whose name contains this [default: all].
    #[arg(long)]
    only: Option<String>,
    /// Random seed of every case.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder: one run folder per case, suite.json, suite.md.
    #[arg(long, default_value = "runs/suite")]
    out: PathBuf,
    /// Ablation: every case with this moving-average rate β [default: spin schrodinger's, 1].
    #[arg(long)]
    beta: Option<f64>,
    /// Ablation: every case with this shift margin [default: spin schrodinger's, 0.05].
    #[arg(long)]
    shift: Option<f64>,
}

#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
struct BenchArgs {
    /// One JSON object per configuration on stdout.
    #[arg(long)]
    json: bool,
    /// Only configurations whose name contains this [default: all].
    #[arg(long)]
    config: Option<String>,
    /// Seconds to time each configuration (after warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

fn context(cli: &Cli) -> Result<Arc<GpuContext>> {
    let req = AdapterRequest {
        name_contains: cli.adapter.clone(),
        backend: cli.backend,
        software: cli.software,
    };
    Ok(Arc::new(GpuContext::new(&req)?))
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Info => info(&cli),
        Command::Matrix(args) => run_matrix(&cli, args),
        Command::Bench(args) => run_bench(&cli, args),
        Command::Suite(args) => run_suite(&cli, args),
        Command::Schrodinger(args) => {
            run_schrodinger(&cli, SchrodingerConfig::generic(), args, "runs/schrodinger")
        }
        Command::Hydrogen(args) => run_schrodinger(
            &cli,
            SchrodingerConfig::hydrogen(args.preset),
            &args.run,
            match args.preset {
                Preset::Best => "runs/hydrogen",
                Preset::Reference => "runs/hydrogen-reference",
            },
        ),
        Command::Eval(args) => run_eval(&cli, args),
        Command::Grid(args) => run_grid(&cli, args),
        Command::Balls(args) => run_balls(args),
        Command::Arcade(args) => run_arcade(args),
        Command::Video(args) => run_video(&cli, args),
    }
}

fn run_suite(cli: &Cli, args: &SuiteArgs) -> Result<()> {
    use spectral_inference::experiments::suite;
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        bail!("--seconds must be positive, got {}", args.seconds);
    }
    let cases: Vec<_> = suite::cases()
        .into_iter()
        .filter(|c| {
            args.only
                .as_ref()
                .is_none_or(|o| c.name.contains(o.as_str()))
        })
        .collect();
    if cases.is_empty() {
        bail!("no suite case matches --only {:?}", args.only);
    }
    let ctx = context(cli)?;
    eprintln!("adapter: {}", ctx.adapter().name);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut results = Vec::new();
    for case in &cases {
        eprintln!(
            "== {} ({}D, V = {}, box {}, N = {})",
            case.name, case.dim, case.potential, case.half_width, case.neig
        );
        let mut cfg = suite::config(case, args.seconds, args.seed);
        if let Some(b) = args.beta {
            cfg.train.beta = b;
        }
        if let Some(m) = args.shift {
            cfg.train.shift = m;
        }
        let r = suite::run_case(&ctx, case, &cfg, &args.out)
            .with_context(|| format!("suite case {}", case.name))?;
        eprintln!(
            "   mean {:.3} %, max {:.3} % after {} steps",
            100.0 * r.mean_relative_error,
            100.0 * r.max_relative_error,
            r.steps
        );
        results.push(r);
        let table = suite::table(&results);
        write_json(
            &args.out.join("suite.json"),
            &serde_json::json!({
                "adapter": ctx.adapter().name,
                "seconds_per_case": args.seconds,
                "beta": args.beta,
                "shift": args.shift,
                "cases": results,
            }),
        )?;
        std::fs::write(args.out.join("suite.md"), &table)
            .with_context(|| format!("writing {}", args.out.join("suite.md").display()))?;
    }
    println!(
        "adapter: {}\n{}",
        ctx.adapter().name,
        suite::table(&results)
    );
    Ok(())
}

fn run_grid(cli: &Cli, args: &GridArgs) -> Result<()> {
    use spectral_inference::experiments::{grid, plot};
    let mut sc = SchrodingerConfig::generic();
    sc.dim = args.dim;
    sc.potential = args.potential.clone();
    sc.charge = args.charge;
    sc.kinetic = args.kinetic;
    sc.half_width = args.half_width;
    sc.neig = args.neig;
    sc.validate()?;
    let cfg = grid::GridConfig {
        dim: args.dim,
        n: args.n,
        half_width: args.half_width,
        kinetic: args.kinetic,
        neig: args.neig,
    };
    // Built-in potentials need no GPU; expressions are evaluated on it.
    let field = match sc.builtin_potential() {
        Some(v) => v,
        None => sc.potential_field(&context(cli)?)?,
    };
    let start = Instant::now();
    let r = grid::solve(&cfg, &field)?;
    let wall = start.elapsed().as_secs_f64();
    let exact = sc.exact_eigenvalues();
    let mut m = serde_json::json!({
        "command": "grid",
        "config": cfg,
        "potential": args.potential,
        "eigenvalues": r.eigenvalues,
        "spacing": r.spacing,
        "unknowns": r.unknowns,
        "wall_seconds": wall,
    });
    if let Some(e) = &exact {
        m["exact_eigenvalues"] = serde_json::json!(e);
        m["relative_errors"] = serde_json::json!(schrodinger::relative_errors(&r.eigenvalues, e));
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    write_json(&args.out.join("grid.json"), &m)?;
    let n = args.n;
    let labels: Vec<String> = r
        .eigenvalues
        .iter()
        .enumerate()
        .map(|(k, e)| format!("grid {k}  E = {e:.4}"))
        .collect();
    if args.dim == 1 {
        let xs: Vec<f64> = cfg.points();
        plot::eigenfunction_lines(&args.out.join("grid.png"), &xs, &r.eigenvectors, &labels)?;
    } else {
        // The z = 0 slice (middle plane in 3D), flipped so that y points up.
        let mid = if args.dim == 3 { n / 2 } else { 0 };
        let panels: Vec<Vec<f64>> = r
            .eigenvectors
            .iter()
            .map(|v| {
                (0..n * n)
                    .map(|idx| v[mid * n * n + (n - 1 - idx / n) * n + idx % n])
                    .collect()
            })
            .collect();
        let extent = args.plot_extent.unwrap_or(args.half_width);
        // Crop the picture to the plot extent by sampling the nearest grid point.
        let h = cfg.spacing();
        let m_px = 96;
        let cropped: Vec<Vec<f64>> = panels
            .iter()
            .map(|p| {
                (0..m_px * m_px)
                    .map(|idx| {
                        let (i, j) = (idx / m_px, idx % m_px);
                        let x = -extent + (j as f64 + 0.5) * 2.0 * extent / m_px as f64;
                        let y = extent - (i as f64 + 0.5) * 2.0 * extent / m_px as f64;
                        let gj = (((x + args.half_width) / h).round() as usize).clamp(1, n) - 1;
                        let gi = (((args.half_width - y) / h).round() as usize).clamp(1, n) - 1;
                        p[gi * n + gj]
                    })
                    .collect()
            })
            .collect();
        plot::eigenfunction_panels(&args.out.join("grid.png"), &cropped, m_px, extent, &labels)?;
    }
    println!(
        "{:>4}  {:>12}  {:>12}  {:>10}",
        "k", "grid", "exact", "rel. error"
    );
    for (k, g) in r.eigenvalues.iter().enumerate() {
        match exact.as_ref().and_then(|e| e.get(k)) {
            Some(e) => println!(
                "{k:>4}  {g:>12.6}  {e:>12.6}  {:>9.3}%",
                100.0 * (g - e).abs() / e.abs()
            ),
            None => println!("{k:>4}  {g:>12.6}"),
        }
    }
    println!(
        "{} unknowns, spacing {:.4}, {:.1} s; wrote {}",
        r.unknowns,
        r.spacing,
        wall,
        args.out.display()
    );
    Ok(())
}

/// `--time-limit`, if given; without `--steps` the time limit alone ends the run.
fn set_time_limit(cfg: &mut SchrodingerConfig, a: &SchrodingerArgs) {
    if a.time_limit.is_some() {
        cfg.time_limit = a.time_limit;
        if a.steps.is_none() {
            cfg.train.steps = UNTIL_TIME_LIMIT;
        }
    }
}

fn apply(cfg: &mut SchrodingerConfig, a: &SchrodingerArgs) {
    macro_rules! set {
        ($field:expr, $arg:expr) => {
            if let Some(v) = $arg.clone() {
                $field = v;
            }
        };
    }
    set!(cfg.dim, a.dim);
    if let Some(p) = &a.potential {
        cfg.set_potential(p);
    }
    set!(cfg.charge, a.charge);
    set!(cfg.kinetic, a.kinetic);
    set!(cfg.half_width, a.half_width);
    set!(cfg.envelope, a.envelope);
    set!(cfg.laplacian, a.laplacian);
    set!(cfg.eps, a.eps);
    set!(cfg.sampler, a.sampler);
    set!(cfg.hidden, a.hidden);
    set!(cfg.neig, a.neig);
    set!(cfg.train.batch, a.batch);
    set!(cfg.train.steps, a.steps);
    set!(cfg.train.optimizer.lr, a.lr);
    set!(cfg.train.optimizer.schedule, a.schedule);
    set!(cfg.train.beta, a.beta);
    set!(cfg.train.shift, a.shift);
    set!(cfg.train.seed, a.seed);
    set!(cfg.checkpoint_every, a.checkpoint_every);
    set!(cfg.eval_samples, a.eval_samples);
    set!(cfg.plot_extent, a.plot_extent);
    set!(cfg.input_scale, a.input_scale);
    set!(cfg.blocks, a.blocks);
    set!(cfg.radial, a.radial);
    set!(cfg.separate, a.separate);
    set!(cfg.proposal_scales, a.proposal_scales);
    set!(cfg.adapt_every, a.adapt_every);
    set!(cfg.eval_target, a.eval_target);
    set!(cfg.eval_max_samples, a.eval_max_samples);
    set!(cfg.readout_refit, a.readout_refit);
    if a.eval_laplacian.is_some() {
        cfg.eval_laplacian = a.eval_laplacian;
    }
    if let Some(kind) = a.optimizer {
        let lr = a.lr.unwrap_or(cfg.train.optimizer.lr);
        let (schedule, warmup) = (cfg.train.optimizer.schedule, cfg.train.optimizer.warmup);
        cfg.train.optimizer = OptimizerConfig::new(kind, lr);
        cfg.train.optimizer.schedule = schedule;
        cfg.train.optimizer.warmup = warmup;
    }
    set!(cfg.train.optimizer.warmup, a.warmup);
    set_time_limit(cfg, a);
    // Settings that follow from the others unless given.
    if a.hidden.is_none() {
        cfg.widen_for_refit();
    }
    if a.half_width.is_none() {
        if let Some(d) = cfg.coulomb_box() {
            cfg.half_width = d;
        }
    }
    if a.plot_extent.is_none() {
        cfg.plot_extent = (cfg.half_width / 2.0).max(25.0).min(cfg.half_width);
    }
}

fn run_schrodinger(
    cli: &Cli,
    base: SchrodingerConfig,
    args: &SchrodingerArgs,
    default_out: &str,
) -> Result<()> {
    let (cfg, out, state) = match &args.resume {
        Some(dir) => {
            let (state, run) = spectral_inference::spin::checkpoint::load(dir)?;
            let mut cfg: SchrodingerConfig = serde_json::from_value(run["config"].clone())
                .with_context(|| {
                    format!(
                        "{}: the checkpoint holds no Schrödinger configuration",
                        dir.display()
                    )
                })?;
            if let Some(s) = args.steps {
                cfg.train.steps = s;
            }
            set_time_limit(&mut cfg, args);
            // Settings that do not change the training trajectory.
            cfg.eval_samples = args.eval_samples.unwrap_or(cfg.eval_samples);
            cfg.eval_target = args.eval_target.unwrap_or(cfg.eval_target);
            cfg.eval_max_samples = args.eval_max_samples.unwrap_or(cfg.eval_max_samples);
            if args.eval_laplacian.is_some() {
                cfg.eval_laplacian = args.eval_laplacian;
            }
            cfg.readout_refit = args.readout_refit.unwrap_or(cfg.readout_refit);
            cfg.plot_extent = args.plot_extent.unwrap_or(cfg.plot_extent);
            cfg.checkpoint_every = args.checkpoint_every.unwrap_or(cfg.checkpoint_every);
            (
                cfg,
                args.out.clone().unwrap_or_else(|| dir.clone()),
                Some(state),
            )
        }
        None => {
            let mut cfg = base;
            apply(&mut cfg, args);
            (
                cfg,
                args.out
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(default_out)),
                None,
            )
        }
    };
    cfg.validate()?;
    let ctx = context(cli)?;
    eprintln!("adapter: {}", ctx.adapter().name);
    eprintln!(
        "{} in {}D, box {}, N = {}, MLP {:?}, {:?} Laplacian, {:?} sampling, batch {}, {:?} lr {}, β {}{}",
        cfg.potential,
        cfg.dim,
        cfg.half_width,
        cfg.neig,
        cfg.hidden,
        cfg.laplacian,
        cfg.sampler,
        cfg.train.batch,
        cfg.train.optimizer.kind,
        cfg.train.optimizer.lr,
        cfg.train.beta,
        state
            .as_ref()
            .map(|s| format!(", resuming at step {}", s.step))
            .unwrap_or_default()
    );
    let m = schrodinger::run(ctx, &cfg, &out, state)?;
    let learned: Vec<f64> = serde_json::from_value(m["eigenvalues"].clone())?;
    let exact: Option<Vec<f64>> = serde_json::from_value(m["exact_eigenvalues"].clone()).ok();
    let std_err: Vec<f64> =
        serde_json::from_value(m["eigenvalue_std_errors"].clone()).unwrap_or_default();
    println!(
        "{:>4}  {:>12}  {:>10}  {:>12}  {:>10}",
        "k", "learned", "± (MC)", "exact", "rel. error"
    );
    for (k, l) in learned.iter().enumerate() {
        let se = std_err
            .get(k)
            .map(|v| format!("{v:.6}"))
            .unwrap_or_default();
        match exact.as_ref().and_then(|e| e.get(k)) {
            Some(e) => println!(
                "{k:>4}  {l:>12.6}  {se:>10}  {e:>12.6}  {:>9.3}%",
                100.0 * (l - e).abs() / e.abs()
            ),
            None => println!("{k:>4}  {l:>12.6}  {se:>10}"),
        }
    }
    if let Some(mre) = m["mean_relative_error"].as_f64() {
        println!("mean relative error {:.3}%", 100.0 * mre);
    }
    if let Some(low) = m["below_exact_by_2_std_errors"].as_array() {
        if !low.is_empty() {
            println!(
                "warning: eigenvalue(s) {low:?} lie more than 2 standard errors below the exact \
                 value (a variational estimate cannot): Monte Carlo error; raise --eval-samples"
            );
        }
    }
    match m["eval_max_relative_std_error"].as_f64() {
        Some(se) if se.is_finite() => println!(
            "evaluation: {} points, largest standard error {:.4}% of its eigenvalue",
            m["eval_samples"],
            100.0 * se
        ),
        _ => println!(
            "evaluation: {} points (one chunk: no standard errors; raise --eval-samples)",
            m["eval_samples"]
        ),
    }
    println!(
        "{} steps in {:.1} s ({:.1} steps/s); wrote {}",
        m["steps"],
        m["wall_seconds"].as_f64().unwrap_or(0.0),
        m["steps_per_second"].as_f64().unwrap_or(0.0),
        out.display()
    );
    Ok(())
}

fn run_eval(cli: &Cli, args: &EvalArgs) -> Result<()> {
    let (state, run) = spectral_inference::spin::checkpoint::load(&args.checkpoint)?;
    if run["kind"] == "video" {
        return run_eval_video(cli, args, &state, &run);
    }
    let Some(points_path) = &args.points else {
        bail!(
            "{} is a Schrödinger run: give --points",
            args.checkpoint.display()
        );
    };
    let cfg: SchrodingerConfig =
        serde_json::from_value(run["config"].clone()).with_context(|| {
            format!(
                "{}: the checkpoint holds no Schrödinger configuration",
                args.checkpoint.display()
            )
        })?;
    let table = spectral_inference::io::read_numbers_csv(points_path)?;
    // With a header that names x0 … x{d−1} (as this command writes), take those columns: its
    // own output reads back as input.
    let columns: Option<Vec<usize>> = table.header.as_ref().and_then(|h| {
        (0..cfg.dim)
            .map(|i| h.iter().position(|c| c == &format!("x{i}")))
            .collect()
    });
    let mut points = Vec::new();
    for (row, line) in table.rows.iter().zip(&table.lines) {
        if let Some(cols) = &columns {
            if let Some(&c) = cols.iter().find(|&&c| c >= row.len()) {
                bail!(
                    "{}: line {line}: no value in column {} (`x{}` of the header)",
                    points_path.display(),
                    c + 1,
                    cols.iter().position(|&x| x == c).unwrap_or(0)
                );
            }
            points.extend(cols.iter().map(|&c| row[c]));
            continue;
        }
        if row.len() != cfg.dim {
            bail!(
                "{}: line {line}: {} coordinates, the run is {}-dimensional",
                points_path.display(),
                row.len(),
                cfg.dim
            );
        }
        points.extend(row);
    }
    if points.is_empty() {
        bail!("{}: no points", points_path.display());
    }
    let ctx = context(cli)?;
    let problem = cfg.problem(&ctx)?;
    let mut trainer = spectral_inference::spin::Trainer::new(ctx, problem, cfg.train.clone())?;
    trainer.restore(&state)?;
    if !state.final_params.is_empty() {
        if state.final_params.len() != trainer.params.len() {
            bail!(
                "{}: the checkpoint's final parameters do not match its network",
                args.checkpoint.display()
            );
        }
        // The network the run evaluated last (its read-out refit).
        trainer.params = state.final_params.clone();
    }
    // L from Σ of a fresh sample of p (not the moving average Σ̄, which lags a short run), so
    // that the v are orthonormal under p: E_p[v_j v_k] = δ_jk up to Monte Carlo error.
    let sigma = trainer
        .evaluate(1 << 16, 8192, cfg.train.seed ^ 0xE7A1)?
        .sigma;
    let mut v = trainer.eigenfunctions(&points, &sigma)?;
    if args.normalize == "unit" {
        // p is uniform on [−D, D]^d with density (2D)^−d: ∫v² dx = (2D)^d E_p[v²].
        let scale = (2.0 * cfg.half_width).powf(-(cfg.dim as f64) / 2.0);
        for x in &mut v {
            *x *= scale;
        }
    }
    let n = cfg.neig;
    let mut out = String::new();
    let coords: Vec<String> = (0..cfg.dim).map(|i| format!("x{i}")).collect();
    let funcs: Vec<String> = (0..n).map(|k| format!("v{k}")).collect();
    out.push_str(&format!("{},{}\n", coords.join(","), funcs.join(",")));
    for (p, row) in points.chunks(cfg.dim).zip(v.chunks(n)) {
        let cells: Vec<String> = p.iter().chain(row).map(|x| format!("{x}")).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    match &args.out {
        Some(path) => spectral_inference::io::write_atomic(path, out.as_bytes())?,
        None => print!("{out}"),
    }
    Ok(())
}

fn info(cli: &Cli) -> Result<()> {
    let adapters = list_adapters(&AdapterRequest {
        name_contains: cli.adapter.clone(),
        backend: cli.backend,
        software: cli.software,
    });
    if adapters.is_empty() {
        bail!(spectral_inference::SpinError::NoAdapter(String::new()));
    }
    for (i, a) in adapters.iter().enumerate() {
        println!(
            "[{i}] {}{}",
            a.name,
            if i == 0 { "   (default)" } else { "" }
        );
        println!(
            "    backend {}, type {}, driver {}",
            a.backend, a.device_type, a.driver
        );
        println!(
            "    max storage binding {} MiB, max buffer {} MiB, {} storage buffers/stage",
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_storage_buffers_per_shader_stage
        );
        println!(
            "    {} invocations/workgroup, {} workgroups/dimension, timestamp queries: {}",
            a.max_compute_invocations_per_workgroup,
            a.max_compute_workgroups_per_dimension,
            if a.timestamp_queries { "yes" } else { "no" }
        );
    }
    Ok(())
}

fn run_matrix(cli: &Cli, args: &MatrixArgs) -> Result<()> {
    let m = matrix::read_matrix_csv(&args.file)?;
    let n = m.nrows();
    if args.neig == 0 || args.neig > n {
        bail!(
            "--neig must be between 1 and {n} (the matrix is {n}×{n}), got {}",
            args.neig
        );
    }
    if args.batch == 1 || !args.batch.is_multiple_of(2) {
        bail!(
            "--batch must be even (its halves form the pairs), or 0 for all pairs; got {}",
            args.batch
        );
    }
    let mut optimizer = OptimizerConfig::new(args.optimizer, args.lr);
    optimizer.schedule = args.schedule;
    let config = TrainConfig {
        beta: args.beta,
        batch: args.batch,
        steps: args.steps,
        seed: args.seed,
        optimizer,
        eigen_ema: 0.01,
        exhaustive: args.batch == 0,
        shift: 0.0,
    };
    config.validate()?;
    let ctx = context(cli)?;
    eprintln!("adapter: {}", ctx.adapter().name);
    eprintln!(
        "matrix {n}×{n} from {}, {} lowest eigenpairs, {} steps",
        args.file.display(),
        args.neig,
        args.steps
    );
    let start = Instant::now();
    let every = (args.steps / 20).max(1);
    let result = matrix::learn_matrix(ctx, &m, args.neig, config.clone(), |r| {
        if r.step % every == 0 || r.step == args.steps {
            let rate = r.step as f64 / start.elapsed().as_secs_f64().max(1e-9);
            let eig: Vec<String> = r
                .eigenvalues_ema
                .iter()
                .map(|v| format!("{v:.4}"))
                .collect();
            eprintln!(
                "step {:>7}  {rate:>7.1} steps/s  loss {:>10.5}  λ [{}]",
                r.step,
                r.loss,
                eig.join(", ")
            );
        }
    })?;
    let metrics = serde_json::json!({
        "command": "matrix",
        "file": args.file.display().to_string(),
        "n": n,
        "neig": args.neig,
        "config": config,
        "eigenvalues": result.eigenvalues,
        "lambda_diag": result.lambda_diag,
        "exact_eigenvalues": result.exact_eigenvalues,
        "relative_errors": result.relative_errors,
        "eigenvector_overlaps": result
            .eigenvectors
            .iter()
            .zip(&result.exact_eigenvectors)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>().abs())
            .collect::<Vec<_>>(),
        "steps": result.steps,
        "wall_seconds": result.wall_seconds,
        "steps_per_second": result.steps_per_second,
        "adapter": result.adapter,
    });
    let path = args.out.join("metrics.json");
    write_json(&path, &metrics).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "{:>4}  {:>14}  {:>14}  {:>10}",
        "k", "learned", "exact", "rel. error"
    );
    for k in 0..args.neig {
        println!(
            "{k:>4}  {:>14.6}  {:>14.6}  {:>9.3}%",
            result.eigenvalues[k],
            result.exact_eigenvalues[k],
            100.0 * result.relative_errors[k]
        );
    }
    println!(
        "{} steps in {:.1} s ({:.1} steps/s); wrote {}",
        result.steps,
        result.wall_seconds,
        result.steps_per_second,
        path.display()
    );
    Ok(())
}

fn run_bench(cli: &Cli, args: &BenchArgs) -> Result<()> {
    let ctx = context(cli)?;
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        bail!("--seconds must be positive, got {}", args.seconds);
    }
    let configs: Vec<_> = bench::configs()
        .into_iter()
        .filter(|c| {
            args.config
                .as_ref()
                .is_none_or(|f| c.name.contains(f.as_str()))
        })
        .collect();
    if configs.is_empty() {
        let names: Vec<_> = bench::configs().iter().map(|c| c.name).collect();
        bail!(
            "no benchmark configuration matches; available: {}",
            names.join(", ")
        );
    }
    if !args.json {
        println!("adapter: {}", ctx.adapter().name);
    }
    for config in &configs {
        let r = bench::run(ctx.clone(), config, 10, 20, args.seconds)?;
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "{:<26} {:>7.2} steps/s  {:>9.2} ms/step  ({} steps)  GPU memory {:.1} MiB  {:.3} GFLOP/step  {:.2} GFLOP/s",
                r.name,
                r.steps_per_second,
                r.ms_per_step,
                r.steps,
                r.gpu_memory_bytes as f64 / (1u64 << 20) as f64,
                r.flops_per_step * 1e-9,
                r.gflops
            );
            match &r.kernels {
                Some(k) => {
                    println!("    per-kernel GPU time of one step (timestamp queries, one pass per kernel):");
                    for t in k {
                        println!("    {:<24} {:>8.3} ms", t.label, t.ms);
                    }
                }
                None => {
                    println!("    (no timestamp queries on this adapter: no per-kernel breakdown)")
                }
            }
        }
    }
    Ok(())
}

fn run_balls(args: &BallsArgs) -> Result<()> {
    use rand::SeedableRng;
    use spectral_inference::data::balls::{simulate, Balls};
    if args.frames == 0 || args.size < 4 || args.balls == 0 {
        bail!("--frames and --balls must be positive and --size at least 4");
    }
    if !(args.radius > 0.0 && args.radius < 0.5) {
        bail!("--radius must be in (0, 0.5), got {}", args.radius);
    }
    if !(args.speed.is_finite() && args.speed >= 0.0 && args.speed < 0.5) {
        bail!(
            "--speed must be in [0, 0.5) box sides per frame, got {}",
            args.speed
        );
    }
    // Random placement must find room: the balls may cover at most about half the box.
    let cover = args.balls as f64 * std::f64::consts::PI * args.radius * args.radius;
    if cover > 0.5 {
        bail!(
            "{} balls of radius {} cover {:.0} % of the box; use fewer or smaller balls",
            args.balls,
            args.radius,
            cover * 100.0
        );
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let mut balls = Balls::random(&mut rng, args.balls, args.radius, args.speed);
    let bar = indicatif::ProgressBar::new(args.frames as u64);
    let start = std::time::Instant::now();
    let (frames, positions) = simulate(&mut balls, args.frames, args.size, |t| {
        bar.set_position(t as u64)
    });
    bar.finish_and_clear();
    let mut starts = vec![false; args.frames];
    starts[0] = true;
    let video = spectral_inference::data::video::Video {
        height: args.size,
        width: args.size,
        frames,
        episode_starts: starts,
        positions: Some((args.balls, positions)),
    };
    video.save_npz(&args.out)?;
    println!(
        "{} frames of {}×{} with {} balls in {:.1} s → {}",
        args.frames,
        args.size,
        args.size,
        args.balls,
        start.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

fn run_arcade(args: &ArcadeArgs) -> Result<()> {
    use rand::SeedableRng;
    if args.frames == 0 || args.size < 16 {
        bail!("--frames must be positive and --size at least 16");
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let bar = indicatif::ProgressBar::new(args.frames as u64);
    let start = std::time::Instant::now();
    let (frames, starts, positions) =
        spectral_inference::data::arcade::play(&mut rng, args.frames, args.size, |t| {
            bar.set_position(t as u64)
        });
    bar.finish_and_clear();
    let episodes = starts.iter().filter(|&&s| s).count();
    let video = spectral_inference::data::video::Video {
        height: args.size,
        width: args.size,
        frames,
        episode_starts: starts,
        positions: Some((2, positions)),
    };
    video.save_npz(&args.out)?;
    println!(
        "{} frames of {}×{} in {} episodes in {:.1} s → {}",
        args.frames,
        args.size,
        args.size,
        episodes,
        start.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

fn run_video(cli: &Cli, a: &VideoArgs) -> Result<()> {
    use spectral_inference::experiments::video::{self, VideoConfig};
    use spectral_inference::nn::{Activation, Padding};
    let (cfg, out, state) = match &a.resume {
        Some(dir) => {
            let (state, run) = spectral_inference::spin::checkpoint::load(dir)?;
            let mut cfg: VideoConfig =
                serde_json::from_value(run["config"].clone()).with_context(|| {
                    format!(
                        "{}: the checkpoint holds no video configuration",
                        dir.display()
                    )
                })?;
            if let Some(s) = a.steps {
                cfg.train.steps = s;
            }
            if a.time_limit.is_some() {
                cfg.time_limit = a.time_limit;
            }
            (
                cfg,
                a.out.clone().unwrap_or_else(|| dir.clone()),
                Some(state),
            )
        }
        None => {
            let data = a
                .data
                .clone()
                .context("--data is needed (an .npz video or a folder of PNG frames)")?;
            let mut cfg = match a.preset.as_str() {
                "paper" => VideoConfig::paper(data),
                "atari-reference" => VideoConfig::atari_reference(data),
                _ => VideoConfig::ours(data),
            };
            macro_rules! set {
                ($field:expr, $arg:expr) => {
                    if let Some(v) = $arg.clone() {
                        $field = v;
                    }
                };
            }
            cfg.test = a.test.clone();
            set!(cfg.frames_per_input, a.frames_per_input);
            set!(cfg.clips, a.clips);
            set!(cfg.clip_len, a.clip_length);
            set!(cfg.neig, a.neig);
            set!(cfg.constant_first, a.constant);
            let widths = |flag: &str, c: &str| -> Result<Vec<usize>> {
                match c.trim() {
                    "" | "none" => Ok(Vec::new()),
                    list => list
                        .split(',')
                        .map(|t| t.trim().parse::<usize>())
                        .collect::<std::result::Result<_, _>>()
                        .with_context(|| {
                            format!("{flag} `{c}`: widths separated by commas, or none")
                        }),
                }
            };
            if let Some(c) = &a.conv {
                cfg.conv = widths("--conv", c)?;
            }
            if let Some(h) = &a.hidden {
                cfg.hidden = widths("--hidden", h)?;
            }
            set!(cfg.whiten, a.whiten);
            set!(cfg.kernel, a.kernel);
            set!(cfg.stride, a.stride);
            set!(cfg.blocks, a.blocks);
            set!(cfg.train.steps, a.steps);
            set!(cfg.train.beta, a.beta);
            set!(cfg.train.shift, a.shift);
            set!(cfg.train.seed, a.seed);
            set!(cfg.sfa_pca, a.sfa_pca);
            set!(cfg.checkpoint_every, a.checkpoint_every);
            if let Some(p) = &a.padding {
                cfg.padding = p
                    .iter()
                    .map(|s| Padding::parse(s))
                    .collect::<std::result::Result<_, _>>()?;
            }
            if let Some(act) = &a.activation {
                cfg.activation = Activation::parse(act)?;
            }
            if let Some(kind) = a.optimizer {
                let schedule = cfg.train.optimizer.schedule;
                cfg.train.optimizer = OptimizerConfig::new(kind, cfg.train.optimizer.lr);
                cfg.train.optimizer.schedule = schedule;
            }
            set!(cfg.train.optimizer.lr, a.lr);
            set!(cfg.train.optimizer.schedule, a.schedule);
            cfg.train.batch = cfg.clips * cfg.clip_len;
            if a.time_limit.is_some() {
                cfg.time_limit = a.time_limit;
            }
            (
                cfg,
                a.out.clone().unwrap_or_else(|| PathBuf::from("runs/video")),
                None,
            )
        }
    };
    cfg.validate()?;
    let ctx = context(cli)?;
    eprintln!("adapter: {}", ctx.adapter().name);
    eprintln!(
        "{}: {} clips × {} inputs of {} frames, N = {}{}, {}, dense {:?}, {:?} lr {}, β {}",
        cfg.data.display(),
        cfg.clips,
        cfg.clip_len,
        cfg.frames_per_input,
        cfg.neig,
        if cfg.constant_first {
            " + constant"
        } else {
            ""
        },
        if cfg.whiten > 0 {
            format!("{} whitened principal coordinates", cfg.whiten)
        } else {
            format!("conv {:?} k{} s{}", cfg.conv, cfg.kernel, cfg.stride)
        },
        cfg.hidden,
        cfg.train.optimizer.kind,
        cfg.train.optimizer.lr,
        cfg.train.beta
    );
    let m = video::run(ctx, &cfg, &out, state)?;
    let show = |key: &str| -> String {
        m[key]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_f64())
                    .map(|x| format!("{x:.4}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    println!("held-out Δ-values (lower is slower):");
    println!(
        "  SpIN        {}   (sum {:.4})",
        show("delta_values"),
        m["delta_sum"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  linear SFA  {}   (sum {:.4})",
        show("linear_sfa_delta_values"),
        m["linear_sfa_delta_sum"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  PCA         {}   (sum {:.4})",
        show("pca_delta_values"),
        m["pca_delta_sum"].as_f64().unwrap_or(0.0)
    );
    if let Some(note) = m["note"].as_str() {
        println!("  ({note})");
    }
    println!(
        "{} steps in {:.1} s ({:.2} steps/s); wrote {}",
        m["steps"],
        m["wall_seconds"].as_f64().unwrap_or(0.0),
        m["steps_per_second"].as_f64().unwrap_or(0.0),
        out.display()
    );
    Ok(())
}

fn run_eval_video(
    cli: &Cli,
    args: &EvalArgs,
    state: &spectral_inference::spin::checkpoint::TrainerState,
    run: &serde_json::Value,
) -> Result<()> {
    use spectral_inference::data::npy::{NpyArray, NpyData};
    use spectral_inference::data::video::{input_at, Video};
    use spectral_inference::experiments::video::{self, VideoConfig};
    let cfg: VideoConfig = serde_json::from_value(run["config"].clone())
        .with_context(|| format!("{}: no video configuration", args.checkpoint.display()))?;
    let Some(data) = &args.data else {
        bail!("{} is a video run: give --data", args.checkpoint.display());
    };
    let target = Video::load(data)?;
    let split = video::load_split(&cfg)?;
    if (target.height, target.width) != (split.0.height, split.0.width) {
        bail!(
            "{}: frames of {}×{}, the run was trained on {}×{}",
            data.display(),
            target.width,
            target.height,
            split.0.width,
            split.0.height
        );
    }
    let ctx = context(cli)?;
    let mut model = video::model(ctx, &cfg, &split)?;
    model.trainer.restore(state)?;
    let k = cfg.frames_per_input;
    let starts: Vec<usize> = target
        .episodes()
        .iter()
        .flat_map(|e| e.start..(e.end + 1).saturating_sub(k).max(e.start))
        .collect();
    let n_out = model.trainer.problem().spec.outputs;
    let skip = cfg.constant_first as usize;
    let mut features: Vec<f32> = Vec::with_capacity(starts.len() * cfg.neig);
    for chunk in starts.chunks(512) {
        let mut x = Vec::new();
        for &t in chunk {
            input_at(&target, t, k, &mut x);
        }
        let u = model.outputs(&x)?;
        for row in u.chunks(n_out) {
            features.extend(row[skip..].iter().map(|&v| v as f32));
        }
    }
    let rows = starts.len();
    match &args.out {
        Some(path) if path.extension().is_some_and(|e| e == "npy") => {
            let a = NpyArray::new(vec![rows, cfg.neig], NpyData::F32(features))?;
            spectral_inference::io::write_atomic(path, &a.to_bytes())?;
        }
        other => {
            let mut out = String::from("frame,");
            out.push_str(
                &(0..cfg.neig)
                    .map(|j| format!("f{j}"))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            out.push('\n');
            for (t, row) in starts.iter().zip(features.chunks(cfg.neig)) {
                let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
                out.push_str(&format!("{t},{}\n", cells.join(",")));
            }
            match other {
                Some(path) => spectral_inference::io::write_atomic(path, out.as_bytes())?,
                None => print!("{out}"),
            }
        }
    }
    if args.out.is_some() {
        eprintln!("{rows} inputs × {} features", cfg.neig);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every option of every command shows its default in `--help`: clap's own `[default: …]`
    /// or one written in the help text (for settings that come from a preset).
    #[test]
    fn every_option_shows_its_default() {
        let root = super::Cli::command();
        let mut missing = Vec::new();
        let mut check = |cmd: &clap::Command, name: &str| {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                let takes_value = matches!(
                    arg.get_action(),
                    clap::ArgAction::Set | clap::ArgAction::Append
                );
                if !takes_value || arg.is_required_set() || id == "help" || id == "version" {
                    continue;
                }
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                let has_default = !arg.get_default_values().is_empty();
                if has_default == help.contains("default:") {
                    // None, or clap's and the text's both (shown twice).
                    missing.push(format!("spin {name} --{id}"));
                }
            }
        };
        check(&root, "");
        for sub in root.get_subcommands() {
            check(sub, sub.get_name());
        }
        assert!(
            missing.is_empty(),
            "options whose default is shown not exactly once: {missing:?}"
        );
    }

    /// Parses `argv` (`spin hydrogen …` or `spin schrodinger …`) into the configuration of a
    /// new run.
    fn new_run_config(argv: &[&str]) -> super::SchrodingerConfig {
        use clap::Parser;
        let cli = super::Cli::try_parse_from(argv).unwrap();
        let (mut cfg, a) = match &cli.command {
            super::Command::Hydrogen(h) => (super::SchrodingerConfig::hydrogen(h.preset), &h.run),
            super::Command::Schrodinger(a) => (super::SchrodingerConfig::generic(), a),
            other => panic!("{other:?}"),
        };
        super::apply(&mut cfg, a);
        cfg
    }

    /// The last hidden layer grows with N for the read-out refit unless --hidden is given.
    #[test]
    fn the_last_hidden_layer_follows_n_unless_given() {
        let hidden = |argv: &[&str]| new_run_config(argv).hidden;
        assert_eq!(hidden(&["spin", "hydrogen"]), [64, 64, 64]);
        assert_eq!(hidden(&["spin", "hydrogen", "--neig", "16"]), [64, 64, 128]);
        let given = ["spin", "hydrogen", "--neig", "16", "--hidden", "64,64,64"];
        assert_eq!(hidden(&given), [64, 64, 64]);
        let no_refit = [
            "spin",
            "hydrogen",
            "--neig",
            "16",
            "--readout-refit",
            "false",
        ];
        assert_eq!(hidden(&no_refit), [64, 64, 64]);
        let reference = ["spin", "hydrogen", "--neig", "16", "--preset", "reference"];
        assert_eq!(hidden(&reference), [64, 64, 64]);
        let three_d = ["spin", "schrodinger", "--dim", "3", "--neig", "14"];
        assert_eq!(hidden(&three_d), [64, 64, 128]);
    }

    /// `--time-limit` without `--steps` lets the time limit alone end the run.
    #[test]
    fn a_time_limit_alone_lifts_the_step_count() {
        let steps = |argv: &[&str]| new_run_config(argv).train.steps;
        assert_eq!(steps(&["spin", "hydrogen"]), 60_000);
        assert_eq!(
            steps(&["spin", "hydrogen", "--time-limit", "3600"]),
            super::UNTIL_TIME_LIMIT
        );
        assert_eq!(
            steps(&["spin", "hydrogen", "--time-limit", "60", "--steps", "100"]),
            100
        );
        assert_eq!(steps(&["spin", "schrodinger"]), 20_000);
    }

    /// The box follows N for the Coulomb potential unless given, and the plots follow the box.
    #[test]
    fn the_box_and_the_plots_follow_n_unless_given() {
        let config = |argv: &[&str]| {
            let cfg = new_run_config(argv);
            (cfg.half_width, cfg.plot_extent)
        };
        assert_eq!(config(&["spin", "hydrogen"]), (50.0, 25.0));
        assert_eq!(config(&["spin", "hydrogen", "--neig", "16"]), (98.0, 49.0));
        assert_eq!(
            config(&["spin", "hydrogen", "--neig", "16", "--box", "60"]),
            (60.0, 30.0)
        );
        assert_eq!(
            config(&["spin", "hydrogen", "--neig", "16", "--plot-extent", "40"]),
            (98.0, 40.0)
        );
        assert_eq!(
            config(&["spin", "schrodinger", "--dim", "3", "--neig", "14"]),
            (72.0, 36.0)
        );
        let osc = [
            "spin",
            "schrodinger",
            "--potential",
            "dot(x, x)",
            "--box",
            "6",
        ];
        assert_eq!(config(&osc), (6.0, 6.0));
        let osc = [
            "spin",
            "schrodinger",
            "--potential",
            "dot(x, x)",
            "--neig",
            "16",
        ];
        assert_eq!(config(&osc), (50.0, 25.0));
    }

    /// Negative numbers reach the range checks instead of being taken for flags.
    #[test]
    fn negative_numbers_parse_as_values() {
        use clap::Parser;
        let cli = super::Cli::try_parse_from(["spin", "schrodinger", "--box", "-3"]).unwrap();
        match cli.command {
            super::Command::Schrodinger(a) => assert_eq!(a.half_width, Some(-3.0)),
            other => panic!("{other:?}"),
        }
        assert!(super::Cli::try_parse_from(["spin", "hydrogen", "--beta", "-0.5"]).is_ok());
        assert!(super::Cli::try_parse_from(["spin", "grid", "--box", "-1"]).is_ok());
    }
}
