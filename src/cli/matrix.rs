//! `spin matrix`: the K lowest eigenpairs of a symmetric matrix (the reference's sanity check).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::options::{note, OptimiserArgs};
use super::Cli;
use spectral_inference::experiments::matrix;
use spectral_inference::experiments::progress::Progress;
use spectral_inference::io::write_json;
use spectral_inference::spin::{OptimizerConfig, OptimizerKind, Schedule, TrainConfig};

/// `spin matrix`'s flags.
#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
#[command(mut_arg("optimizer", |a| note(a, "[default: adam]")))]
#[command(mut_arg("lr", |a| note(a, "[default: 0.01]")))]
#[command(mut_arg("schedule", |a| note(a, "[default: cosine]")))]
#[command(mut_arg("clip_grad", |a| note(a, "[default: 0, off]")))]
#[command(mut_arg("guard", |a| note(a, "[default: 0, off; spin matrix has no held-out curve, so it never acts]")))]
pub struct MatrixArgs {
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
    /// Samples per step (halves form the pairs of the kernel); 0: all n² pairs every step (exact)
    /// [default: 0 when n² ≤ 1024 — every pair costs no more than a sampled batch and leaves no
    /// sampling noise (the 20×20 example: 0.000 % against 0.009–0.052 % sampled, and faster) —
    /// else 1024].
    #[arg(long)]
    batch: Option<usize>,
    /// Moving-average rate β of Σ̄ and J̄ (1: none).
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// Weight ρ of the gauge term that holds Σ̂ near I without moving the optimum (0: off; see
    /// `spin schrodinger --help`).
    #[arg(long, value_name = "ρ", default_value_t = spectral_inference::spin::trainer::DEFAULT_GAUGE)]
    gauge: f64,
    /// What is minimised: spin, nested, nested-joint or neuralef (see `spin schrodinger --help`).
    #[arg(long, default_value = "spin")]
    objective: spectral_inference::spin::Objective,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    optimiser: OptimiserArgs,
}

/// Sampled samples per step on a matrix too large for every pair.
const SAMPLED_BATCH: usize = 1024;

/// `--batch`'s default for an n×n matrix: every pair (0) when there are no more of them than a
/// sampled batch has samples, else a sampled batch.
fn default_batch(n: usize) -> usize {
    if n * n <= SAMPLED_BATCH {
        0
    } else {
        SAMPLED_BATCH
    }
}

/// Learns the eigenpairs, writes `metrics.json` and prints the table.
pub fn run(cli: &Cli, args: &MatrixArgs) -> Result<()> {
    let m = matrix::read_matrix_csv(&args.file)?;
    let n = m.nrows();
    if args.neig == 0 || args.neig > n {
        bail!(
            "--neig must be between 1 and {n} (the matrix is {n}×{n}), got {}",
            args.neig
        );
    }
    let batch = args.batch.unwrap_or(default_batch(n));
    if batch == 1 || !batch.is_multiple_of(2) {
        bail!("--batch must be even (its halves form the pairs), or 0 for all pairs; got {batch}");
    }
    let mut optimizer = OptimizerConfig::new(OptimizerKind::Adam, 0.01);
    optimizer.schedule = Schedule::Cosine;
    args.optimiser.apply(&mut optimizer);
    let config = TrainConfig {
        beta: args.beta,
        batch,
        steps: args.steps,
        seed: args.seed,
        optimizer,
        eigen_ema: 0.01,
        exhaustive: batch == 0,
        shift: 0.0,
        gauge: args.gauge,
        objective: args.objective,
        tail: Default::default(),
        whiten_readout: 0.0,
    };
    config.validate()?;
    let ctx = super::context(cli)?;
    eprintln!("adapter: {}", ctx.adapter().name);
    eprintln!(
        "matrix {n}×{n} from {}, {} lowest eigenpairs, {} steps, {}",
        args.file.display(),
        args.neig,
        args.steps,
        if batch == 0 {
            format!("all {} pairs each step", n * n)
        } else {
            format!("{batch} samples ({} pairs) a step", batch / 2)
        }
    );
    let start = std::time::Instant::now();
    let mut progress = Progress::new(Some(args.steps), None, 0);
    let result = matrix::learn_matrix(ctx, &m, args.neig, config.clone(), |r| {
        progress.update(r.step, start.elapsed().as_secs_f64(), || {
            let eig: Vec<String> = r
                .eigenvalues_ema
                .iter()
                .map(|v| format!("{v:.4}"))
                .collect();
            format!("loss {:.5}  λ [{}]", r.loss, eig.join(", "))
        });
    })?;
    progress.finish();
    let path = args.out.join("metrics.json");
    write_json(
        &path,
        &matrix::metrics(&result, &args.file, args.neig, &config),
    )
    .with_context(|| format!("writing {}", path.display()))?;
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
    super::report(&args.out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn small_matrices_take_every_pair_by_default() {
        assert_eq!(super::default_batch(20), 0);
        assert_eq!(super::default_batch(32), 0);
        assert_eq!(super::default_batch(33), 1024);
    }
}
