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
    /// Random seed of every case (the first, with --seeds).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seeds per case (seed, seed + 1, …): each seed's run folders go into OUT/seed-S and
    /// suite.md starts with each case's median and worst over the seeds.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Output folder: one run folder per case, suite.json, suite.md.
    #[arg(long, default_value = "runs/suite")]
    out: PathBuf,
    /// Ablation: every case with this moving-average rate β [default: spin schrodinger's, 1].
    #[arg(long)]
    beta: Option<f64>,
    /// Ablation: every case with this shift margin [default: spin schrodinger's, 0.05].
    #[arg(long)]
    shift: Option<f64>,
    /// Ablation: every case with this gauge weight ρ [default: spin schrodinger's].
    #[arg(long)]
    gauge: Option<f64>,
    /// Ablation: every case with this objective, spin, nested, nested-joint or neuralef [default: spin
    /// schrodinger's].
    #[arg(long)]
    objective: Option<spectral_inference::spin::Objective>,
    /// Ablation: every case with this share of its run in the bias-correcting tail (0: none)
    /// [default: spin schrodinger's, 0.1].
    #[arg(long, value_name = "FRACTION")]
    tail: Option<f64>,
    /// Ablation: every case with this divergence-guard tolerance (0: off) [default: spin
    /// schrodinger's, 0].
    #[arg(long, value_name = "TOL")]
    guard: Option<f64>,
    /// Ablation: every case with this read-out whitening rate (0: off) [default: spin
    /// schrodinger's, 0.1].
    #[arg(long, value_name = "ρ")]
    whiten_readout: Option<f64>,
}

/// Runs the selected cases and prints the table.
pub fn run(cli: &Cli, args: &SuiteArgs) -> Result<()> {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        bail!("--seconds must be positive, got {}", args.seconds);
    }
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
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
        seeds: args.seeds,
        beta: args.beta,
        shift: args.shift,
        gauge: args.gauge,
        whiten_readout: args.whiten_readout,
        objective: args.objective,
        tail: args.tail,
        guard: args.guard,
        out: args.out.clone(),
    };
    let results = suite::run_all(&ctx, &cases, &opts, |case, result| match result {
        None => eprintln!(
            "== {} ({}D, V = {}, box {}, N = {})",
            case.name, case.dim, case.potential, case.half_width, case.neig
        ),
        Some(r) => eprintln!(
            "   seed {}: mean {:.3} %, max {:.3} % after {} steps",
            r.seed,
            100.0 * r.mean_relative_error,
            100.0 * r.max_relative_error,
            r.steps
        ),
    })?;
    for r in &results {
        let out = if args.seeds > 1 {
            args.out.join(format!("seed-{}", r.seed))
        } else {
            args.out.clone()
        };
        super::report(&out.join(&r.name))?;
    }
    let seeds = if args.seeds > 1 {
        format!(
            "{}\nEvery seed:\n\n",
            suite::seeds_table(&suite::over_seeds(&results))
        )
    } else {
        String::new()
    };
    println!(
        "adapter: {}\n{seeds}{}",
        ctx.adapter().name,
        suite::table(&results)
    );
    Ok(())
}
