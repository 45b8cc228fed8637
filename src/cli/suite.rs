//! `spin suite`: the accuracy suite.

use std::path::PathBuf;

use anyhow::{bail, Result};

use super::Cli;
use spectral_inference::experiments::suite::{self, SuiteOptions};

/// `spin suite`'s flags.
#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct SuiteArgs {
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

/// Runs the selected cases and prints the table.
pub fn run(cli: &Cli, args: &SuiteArgs) -> Result<()> {
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
    let ctx = super::context(cli)?;
    eprintln!("adapter: {}", ctx.adapter().name);
    let opts = SuiteOptions {
        seconds: args.seconds,
        seed: args.seed,
        beta: args.beta,
        shift: args.shift,
        out: args.out.clone(),
    };
    let results = suite::run_all(&ctx, &cases, &opts, |case, result| match result {
        None => eprintln!(
            "== {} ({}D, V = {}, box {}, N = {})",
            case.name, case.dim, case.potential, case.half_width, case.neig
        ),
        Some(r) => eprintln!(
            "   mean {:.3} %, max {:.3} % after {} steps",
            100.0 * r.mean_relative_error,
            100.0 * r.max_relative_error,
            r.steps
        ),
    })?;
    for case in &cases {
        super::report(&args.out.join(case.name))?;
    }
    println!(
        "adapter: {}\n{}",
        ctx.adapter().name,
        suite::table(&results)
    );
    Ok(())
}
