//! Command-line interface.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use spectral_inference::experiments::{bench, matrix};
use spectral_inference::gpu::{list_adapters, AdapterRequest, BackendChoice, GpuContext};
use spectral_inference::io::write_json;
use spectral_inference::spin::{OptimizerConfig, OptimizerKind, Schedule, TrainConfig};

/// Spectral Inference Networks on wgpu: learn eigenfunctions of linear operators with neural
/// networks, with hand-written WGSL compute kernels.
#[derive(Parser, Debug)]
#[command(name = "spin", version, about, long_about = None)]
struct Cli {
    /// Use the adapter whose name contains this (case-insensitive); see `spin info`.
    #[arg(long, global = true, value_name = "SUBSTRING")]
    adapter: Option<String>,
    /// Graphics backend: vulkan, metal, dx12 or gl (default: all; honours WGPU_BACKEND).
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
    /// Steps per second of whole training steps for the named configurations.
    Bench(BenchArgs),
}

#[derive(clap::Args, Debug)]
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
struct BenchArgs {
    /// One JSON object per configuration on stdout.
    #[arg(long)]
    json: bool,
    /// Only configurations whose name contains this.
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
    }
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
                "{:<20} {:>9.1} steps/s  {:>8.2} ms/step  ({} steps)",
                r.name, r.steps_per_second, r.ms_per_step, r.steps
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
