//! `spin bench`: whole training steps per second for the named configurations.

use anyhow::{bail, Result};

use super::Cli;
use spectral_inference::experiments::bench;

/// `spin bench`'s flags.
#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct BenchArgs {
    /// One JSON object per configuration on stdout.
    #[arg(long)]
    json: bool,
    /// Only configurations whose name contains this [default: all].
    #[arg(long)]
    config: Option<String>,
    /// Seconds to time each configuration (after warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Form the Σ term from J̄ even at β = 1 (the Σ-Jacobian stage instead of the fused
    /// gradient: the A/B baseline of the β = 1 configurations).
    #[arg(long)]
    jbar: bool,
}

/// The configurations `--config` selects.
pub fn selected(args: &BenchArgs) -> Vec<bench::BenchConfig> {
    bench::configs()
        .into_iter()
        .filter(|c| {
            args.config
                .as_ref()
                .is_none_or(|f| c.name.contains(f.as_str()))
        })
        .collect()
}

/// Times every configuration that `--config` selects and prints (or emits as JSON Lines) the
/// result with its per-kernel breakdown.
pub fn run(cli: &Cli, args: &BenchArgs) -> Result<()> {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        bail!("--seconds must be positive, got {}", args.seconds);
    }
    let configs = selected(args);
    if configs.is_empty() {
        let names: Vec<_> = bench::configs().iter().map(|c| c.name).collect();
        bail!(
            "no benchmark configuration matches; available: {}",
            names.join(", ")
        );
    }
    let ctx = super::context(cli)?;
    if !args.json {
        println!("adapter: {}", ctx.adapter().name);
    }
    for config in &configs {
        let r = bench::run(ctx.clone(), config, 10, 20, args.seconds, args.jbar)?;
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
            continue;
        }
        println!(
            "{:<26} {:>7.2} steps/s  {:>9.2} ms/step  ({} steps)  GPU memory {:.1} MiB  {:.3} GFLOP/step  {:.2} GFLOP/s  Σ term: {}",
            r.name,
            r.steps_per_second,
            r.ms_per_step,
            r.steps,
            r.gpu_memory_bytes as f64 / (1u64 << 20) as f64,
            r.flops_per_step * 1e-9,
            r.gflops,
            if r.fused { "fused" } else { "J̄" }
        );
        println!(
            "    {} parameters; a data-parallel step all-reduces {} bytes per rank (2N² f64 + P f32)",
            r.parameters, r.allreduce_payload_bytes
        );
        if r.ranks > 1 {
            println!(
                "    {} ranks: {:.0} samples/s; all-reduces {:.0} bytes and {:.3} ms per step ({:.1} % of the step)",
                r.ranks,
                r.samples_per_second,
                r.allreduce_bytes_per_step,
                r.allreduce_ms_per_step,
                100.0 * r.allreduce_ms_per_step / r.ms_per_step
            );
        }
        println!("    wall time per step by phase:");
        for t in &r.phases {
            println!("    {:<34} {:>8.3} ms", t.label, t.ms);
        }
        match &r.kernels {
            Some(k) => {
                println!(
                    "    per-kernel GPU time of one step (timestamp queries, one pass per kernel):"
                );
                for t in k {
                    println!("    {:<24} {:>8.3} ms", t.label, t.ms);
                }
            }
            None => println!("    (no timestamp queries on this adapter: no per-kernel breakdown)"),
        }
    }
    Ok(())
}
