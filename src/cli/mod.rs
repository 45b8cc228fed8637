//! Command-line interface: one file per command (its arguments, their defaults and its runner,
//! which builds a configuration and calls the experiment), option groups shared between
//! commands in [`options`].

mod bench;
mod data;
mod eval;
mod graph;
mod grid;
mod info;
mod matrix;
mod options;
mod schrodinger;
mod seeds;
mod suite;
mod video;
mod workers;

use std::sync::Arc;

use anyhow::Result;
use clap::{Parser, Subcommand};

use spectral_inference::experiments::schrodinger::{Preset, SchrodingerConfig};
use spectral_inference::gpu::{AdapterRequest, BackendChoice, GpuContext};

/// Spectral Inference Networks on wgpu: learn eigenfunctions of linear operators with neural
/// networks, with hand-written WGSL compute kernels.
#[derive(Parser, Debug)]
#[command(name = "spin", version, about, long_about = None)]
pub struct Cli {
    /// Use the adapter whose name contains this (case-insensitive); see `spin info` [default:
    /// the first one wgpu offers]. Under `mpirun` the ranks on a node take the matching adapters
    /// in turn (by local rank), or give one substring per local rank separated by commas.
    #[arg(long, global = true, value_name = "SUBSTRING")]
    adapter: Option<String>,
    /// Graphics backend: vulkan, metal, dx12 or gl [default: all; honours WGPU_BACKEND].
    #[arg(long, global = true, value_name = "BACKEND")]
    backend: Option<BackendChoice>,
    /// Force the software (CPU) adapter, e.g. Mesa lavapipe.
    #[arg(long, global = true)]
    software: bool,
    /// No progress bar or progress lines.
    #[arg(long, global = true)]
    quiet: bool,
    /// Data-parallel worker processes on this machine, each with an equal share of every
    /// batch (the result is the one-process run's, up to rounding): a count, or `auto` — on a
    /// CPU adapter (Mesa lavapipe) one per core (at most 8, dividing the batch) for
    /// `schrodinger`, `hydrogen` and `bench`, each with lavapipe on its own thread (1.3–1.7×
    /// the steps/s of one process on 2 cores); one process on a GPU and for other commands
    /// [default: auto].
    #[arg(long, global = true, value_name = "N|auto")]
    workers: Option<workers::Workers>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the adapters and the limits that matter.
    Info,
    /// Learn the K lowest eigenpairs of a symmetric matrix given as CSV (the reference's
    /// sanity check: one-hot inputs, a linear network and the kernel operator on pairs).
    Matrix(matrix::MatrixArgs),
    /// Learn the lowest eigenfunctions of H = −c∇² + V (any potential, 1–3 dimensions).
    Schrodinger(schrodinger::SchrodingerArgs),
    /// The 2D hydrogen atom (N = 9) with our best defaults, or `--preset reference`.
    Hydrogen(schrodinger::HydrogenArgs),
    /// Eigenfunction values v = L⁻¹u of a trained run at new points (CSV in, CSV out), with L
    /// = chol Σ on 65 536 fresh samples: E_p[v_j v_k] = δ_jk under the uniform density p on the
    /// box (`--normalize sampling`, the default; ∫v² dx = (2D)^d), or ∫v² dx = 1 (`unit`).
    Eval(eval::EvalArgs),
    /// The exact baseline: the finite-difference Hamiltonian on an n^d grid and its lowest
    /// eigenpairs (faer's Krylov–Schur solver, shift-and-invert); eigenvalues to JSON and a picture.
    Grid(grid::GridArgs),
    /// Steps per second of whole training steps for the named configurations.
    Bench(bench::BenchArgs),
    /// The accuracy suite: `spin schrodinger`'s defaults on oscillators (1–3D), hydrogen (2D,
    /// 3D), a particle in a box, a Pöschl–Teller well and double wells, against closed forms or
    /// an extrapolated grid; a Markdown table and suite.json.
    Suite(suite::SuiteArgs),
    /// The paper's bouncing-balls video (§5.2) as an .npz: frames (uint8 T×S×S),
    /// episode_starts and the balls' positions (float32 T×B×2 in [0, 1]).
    Balls(data::BallsArgs),
    /// An Atari-like video without ROMs: a Breakout-style game (84×84, walls, bricks, paddle,
    /// ball) played by a random agent with sticky actions, in the reference's Atari .npz format
    /// (frames, episode_starts; positions of paddle and ball).
    Arcade(data::ArcadeArgs),
    /// Deep slow feature analysis on a video (.npz or PNG folders): SpIN with the slowness
    /// operator on clips of stacked frames, held-out Δ-values against linear SFA, linear
    /// successor features and PCA.
    Video(video::VideoArgs),
    /// Laplacian eigenfunctions of your own graph (edges, the kNN graph of a point cloud, or
    /// the path graph of a time series) over its node features; exact evaluation over the
    /// whole graph, a sparse eigensolver's reference, the linear yardstick (linear Laplacian
    /// eigenmaps; linear SFA for a time series), out-of-sample values.
    Graph(graph::GraphArgs),
    /// (Re)writes report.html for a run folder from its metrics.json and figures (every run
    /// writes one at its end; this is for folders of older runs).
    Report(ReportArgs),
}

/// `spin report`'s flags.
#[derive(clap::Args, Debug)]
struct ReportArgs {
    /// The run folder.
    #[arg(long)]
    dir: std::path::PathBuf,
}

/// The command line as typed (arguments with spaces or quotes quoted), for reports.
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A run's `steps_per_second` for the closing line: "N steps/s", or that this invocation took no
/// step (a finished run resumed only to be evaluated again).
fn rate(m: &serde_json::Value, decimals: usize) -> String {
    match m["steps_per_second"].as_f64() {
        Some(r) => format!("{r:.decimals$} steps/s"),
        None => "no training step in this invocation".into(),
    }
}

/// Writes `report.html` into a run folder and says where.
fn report(dir: &std::path::Path) -> Result<()> {
    let path = spectral_inference::experiments::report::write(dir, &command_line())?;
    eprintln!("report: {}", path.display());
    Ok(())
}

/// The GPU context the global options ask for.
fn context(cli: &Cli) -> Result<Arc<GpuContext>> {
    let ctx = Arc::new(GpuContext::new(&adapter_request(cli))?);
    let world = spectral_inference::spin::parallel::world();
    if world.size() > 1 {
        spectral_inference::spin::parallel::note(&format!(
            "{} worker on adapter {}",
            world.transport(),
            ctx.adapter().name
        ));
    }
    Ok(ctx)
}

/// This process's rank among the ranks of its node (Open MPI's local rank; 0 outside mpirun).
fn local_rank() -> usize {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
    .unwrap_or(0)
}

fn adapter_request(cli: &Cli) -> AdapterRequest {
    let local = if spectral_inference::spin::parallel::world().size() > 1 {
        local_rank()
    } else {
        0
    };
    // `--adapter a,b`: one substring per local rank, in turn.
    let (name_contains, index) = match &cli.adapter {
        Some(list) if list.contains(',') => {
            let names: Vec<&str> = list.split(',').map(str::trim).collect();
            (Some(names[local % names.len()].to_string()), 0)
        }
        other => (other.clone(), local),
    };
    AdapterRequest {
        name_contains,
        backend: cli.backend,
        software: cli.software,
        index,
    }
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    let launch = workers::resolve(&cli)?;
    if launch > 1 {
        #[cfg(unix)]
        std::process::exit(workers::launch(launch)?);
        #[cfg(not(unix))]
        anyhow::bail!("--workers {launch}: worker processes need a Unix system; use mpirun");
    }
    // Rank 0 of a data-parallel run reports; the others only compute.
    spectral_inference::experiments::progress::set_quiet(
        cli.quiet || !spectral_inference::spin::parallel::is_writer(),
    );
    match &cli.command {
        Command::Info => info::run(&cli),
        Command::Matrix(args) => matrix::run(&cli, args),
        Command::Bench(args) => bench::run(&cli, args),
        Command::Suite(args) => suite::run(&cli, args),
        Command::Schrodinger(args) => {
            schrodinger::run(&cli, SchrodingerConfig::generic(), args, "runs/schrodinger")
        }
        Command::Hydrogen(args) => schrodinger::run(
            &cli,
            SchrodingerConfig::hydrogen(args.preset),
            &args.run,
            match args.preset {
                Preset::Best => "runs/hydrogen",
                Preset::Reference => "runs/hydrogen-reference",
            },
        ),
        Command::Eval(args) => eval::run(&cli, args),
        Command::Grid(args) => grid::run(&cli, args),
        Command::Balls(args) => data::run_balls(args),
        Command::Arcade(args) => data::run_arcade(args),
        Command::Video(args) => video::run(&cli, args),
        Command::Graph(args) => graph::run(&cli, args),
        Command::Report(args) => {
            let path = spectral_inference::experiments::report::write(
                &args.dir,
                "(not recorded: this report was written afterwards by `spin report`)",
            )?;
            println!("{}", path.display());
            Ok(())
        }
    }
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
}
