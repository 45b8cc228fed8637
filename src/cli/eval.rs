//! `spin eval`: a trained run's eigenfunctions at new points (Schrödinger runs) or the learned
//! features of every input of a video (video runs).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::Cli;
use spectral_inference::data::video::Video;
use spectral_inference::experiments::schrodinger::{self, SchrodingerConfig};
use spectral_inference::experiments::video::{self, VideoConfig};
use spectral_inference::spin::checkpoint;

/// `spin eval`'s flags.
#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct EvalArgs {
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
    /// How v is scaled: `sampling` (SpIN's own: E_p\[v²\] = 1 under the uniform density p on the
    /// box [−D, D]^d, so ∫v² dx = (2D)^d) or `unit` (∫v² dx = 1, quantum mechanics'
    /// convention: v divided by (2D)^{d/2}).
    #[arg(long, default_value = "sampling", value_parser = ["sampling", "unit"])]
    normalize: String,
}

/// Writes `bytes` to `--out`, or prints them.
fn emit(args: &EvalArgs, bytes: &[u8]) -> Result<()> {
    match &args.out {
        Some(path) => spectral_inference::io::write_atomic(path, bytes)?,
        None => print!("{}", String::from_utf8_lossy(bytes)),
    }
    Ok(())
}

/// Evaluates the run in `--checkpoint`.
pub fn run(cli: &Cli, args: &EvalArgs) -> Result<()> {
    let (state, run) = checkpoint::load(&args.checkpoint)?;
    if run["kind"] == "video" {
        return run_video(cli, args, &state, &run);
    }
    if run["kind"] == "graph" {
        return run_graph(cli, args, &state, &run);
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
    let points = schrodinger::read_points(points_path, cfg.dim)?;
    let ctx = super::context(cli)?;
    let v = schrodinger::eigenfunctions_at(ctx, &cfg, &state, &points, args.normalize == "unit")
        .with_context(|| args.checkpoint.display().to_string())?;
    emit(
        args,
        schrodinger::points_csv(&points, &v, cfg.dim, cfg.neig).as_bytes(),
    )
}

fn run_video(
    cli: &Cli,
    args: &EvalArgs,
    state: &checkpoint::TrainerState,
    run: &serde_json::Value,
) -> Result<()> {
    let cfg: VideoConfig = serde_json::from_value(run["config"].clone())
        .with_context(|| format!("{}: no video configuration", args.checkpoint.display()))?;
    let Some(data) = &args.data else {
        bail!("{} is a video run: give --data", args.checkpoint.display());
    };
    let target = Video::load(data)?;
    let ctx = super::context(cli)?;
    let (starts, features) =
        video::features(ctx, &cfg, state, &target).with_context(|| data.display().to_string())?;
    let bytes = match &args.out {
        Some(path) if path.extension().is_some_and(|e| e == "npy") => {
            video::features_npy(&features, cfg.neig)?
        }
        _ => video::features_csv(&starts, &features, cfg.neig).into_bytes(),
    };
    emit(args, &bytes)?;
    if args.out.is_some() {
        eprintln!("{} inputs × {} features", starts.len(), cfg.neig);
    }
    Ok(())
}

/// A `spin graph` run's ordered eigenfunctions at new nodes (`--points`: rows of node features).
fn run_graph(
    cli: &Cli,
    args: &EvalArgs,
    state: &checkpoint::TrainerState,
    run: &serde_json::Value,
) -> Result<()> {
    let Some(path) = &args.points else {
        bail!(
            "{} is a graph run: give --points (rows of node features)",
            args.checkpoint.display()
        );
    };
    let table = spectral_inference::data::graph::read_nodes(path)?;
    let ctx = super::context(cli)?;
    let f =
        spectral_inference::experiments::graph::eigenfunctions_at(ctx, run, state, &table.values)
            .with_context(|| args.checkpoint.display().to_string())?;
    let n = f.len() / table.rows.max(1);
    let mut text = (0..table.cols)
        .map(|i| format!("x{i}"))
        .chain((0..n).map(|k| format!("v{k}")))
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for (x, v) in table.values.chunks(table.cols).zip(f.chunks(n)) {
        let cells: Vec<String> = x.iter().chain(v).map(|v| format!("{v:.7e}")).collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    emit(args, text.as_bytes())
}
