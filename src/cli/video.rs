//! `spin video`: deep slow feature analysis on a video.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::options::{note, set, NetworkArgs, OptimiserArgs, OutputArgs, TrainingArgs};
use super::Cli;
use spectral_inference::experiments::video::{self, VideoConfig};
use spectral_inference::nn::{Activation, Padding};

/// `spin video`'s flags; unset ones come from the preset.
#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
#[command(mut_arg("steps", |a| note(a, "[default: 3000; paper 10⁶; atari-reference 10⁵]")))]
#[command(mut_arg("time_limit", |a| note(a, "Given without --steps, the time limit alone ends the run [default: no limit]")))]
#[command(mut_arg("beta", |a| note(a, "[default: 1; paper, atari-reference 0.01]")))]
#[command(mut_arg("shift", |a| note(a, "[default: 0.05; paper, atari-reference 0]")))]
#[command(mut_arg("tail", |a| note(a, "[default: 0: not measured on video, where the Σ-Jacobian path costs 5.5–5.9× a fused step]")))]
#[command(mut_arg("whiten_readout", |a| note(a, "[default: 0: video runs have a constant first output, where it does not apply]")))]
#[command(mut_arg("seed", |a| note(a, "[default: 0]")))]
#[command(mut_arg("optimizer", |a| note(a, "[default: adam; paper, atari-reference rmsprop]")))]
#[command(mut_arg("lr", |a| note(a, "[default: 1e-3; paper 1e-6; atari-reference 1e-3]")))]
#[command(mut_arg("schedule", |a| note(a, "[default: cosine; presets constant]")))]
#[command(mut_arg("clip_grad", |a| note(a, "[default: 0, off]")))]
#[command(mut_arg("guard", |a| note(a, "[default: 0, off: not measured on video]")))]
#[command(mut_arg("out", |a| note(a, "[default: runs/video]")))]
#[command(mut_arg("checkpoint_every", |a| note(a, "[default: 500]")))]
#[command(mut_arg("resume", |a| note(a, "(--steps, --time-limit, --beta, --readout-refit, --heldout-every may change) [default: a new run]")))]
#[command(mut_arg("hidden", |a| note(a, "after the conv layers or the whitening (`none`: a linear last layer only) [default: 64; paper and atari-reference 128]")))]
#[command(mut_arg("blocks", |a| note(a, "between feature maps [default: 0]")))]
pub struct VideoArgs {
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
    conv: Option<super::options::Widths>,
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
    /// Hidden activation: relu, softplus [default: relu].
    #[arg(long)]
    activation: Option<String>,
    #[command(flatten)]
    network: NetworkArgs,
    #[command(flatten)]
    training: TrainingArgs,
    #[command(flatten)]
    optimiser: OptimiserArgs,
    /// Whitened PCA dimensions of the linear-SFA yardstick (and of the read-out refit's basis)
    /// [default: 256].
    #[arg(long)]
    sfa_pca: Option<usize>,
    /// After training, refit the read-out by Rayleigh–Ritz of the slowness on the span of the
    /// last hidden layer and the leading 256, 64, 16 or 0 whitened principal coordinates, or on
    /// the coordinates alone, over the training inputs; the one slowest on a validation split
    /// (every 10th block of 200 inputs) replaces the trained read-out if it is slower there by
    /// more than one standard error of the difference (jackknife over runs of 50 validation
    /// inputs), refitted on every training input (all reported): true or false [default: true;
    /// paper, atari-reference false].
    #[arg(long)]
    readout_refit: Option<bool>,
    /// Evaluate the held-out curve (the trained network's Δ-values on the first 1000 held-out
    /// inputs) every this many steps; 0: none [default: 250].
    #[arg(long)]
    heldout_every: Option<u64>,
    #[command(flatten)]
    output: OutputArgs,
}

/// The configuration of a new run: the preset with the flags given.
fn new_config(a: &VideoArgs) -> Result<VideoConfig> {
    let data = a
        .data
        .clone()
        .context("--data is needed (an .npz video or a folder of PNG frames)")?;
    let mut cfg = match a.preset.as_str() {
        "paper" => VideoConfig::paper(data),
        "atari-reference" => VideoConfig::atari_reference(data),
        _ => VideoConfig::ours(data),
    };
    cfg.test = a.test.clone();
    set!(cfg.frames_per_input, a.frames_per_input);
    set!(cfg.clips, a.clips);
    set!(cfg.clip_len, a.clip_length);
    set!(cfg.neig, a.neig);
    set!(cfg.constant_first, a.constant);
    if let Some(c) = &a.conv {
        cfg.conv = c.0.clone();
    }
    if let Some(h) = &a.network.hidden {
        cfg.hidden = h.0.clone();
    }
    set!(cfg.whiten, a.whiten);
    set!(cfg.kernel, a.kernel);
    set!(cfg.stride, a.stride);
    set!(cfg.blocks, a.network.blocks);
    set!(cfg.train.steps, a.training.steps);
    set!(cfg.train.beta, a.training.beta);
    set!(cfg.train.shift, a.training.shift);
    set!(cfg.train.gauge, a.training.gauge);
    set!(cfg.train.whiten_readout, a.training.whiten_readout);
    set!(cfg.train.tail.fraction, a.training.tail);
    set!(cfg.train.tail.beta, a.training.tail_beta);
    set!(cfg.train.objective, a.training.objective);
    set!(cfg.train.seed, a.training.seed);
    set!(cfg.sfa_pca, a.sfa_pca);
    set!(cfg.readout_refit, a.readout_refit);
    set!(cfg.heldout_every, a.heldout_every);
    set!(cfg.checkpoint_every, a.output.checkpoint_every);
    if let Some(p) = &a.padding {
        cfg.padding = p
            .iter()
            .map(|s| Padding::parse(s))
            .collect::<std::result::Result<_, _>>()?;
    }
    if let Some(act) = &a.activation {
        cfg.activation = Activation::parse(act)?;
    }
    a.optimiser.apply(&mut cfg.train.optimizer);
    cfg.train.batch = cfg.clips * cfg.clip_len;
    a.training
        .apply_time_limit(&mut cfg.time_limit, &mut cfg.train.steps);
    Ok(cfg)
}

/// Trains (or resumes) and prints the held-out Δ-values beside the yardsticks'.
pub fn run(cli: &Cli, a: &VideoArgs) -> Result<()> {
    let (cfg, out, state) = a.output.resume_or_new(
        "video",
        "runs/video",
        |cfg: &mut VideoConfig| {
            set!(cfg.train.steps, a.training.steps);
            set!(cfg.train.beta, a.training.beta);
            set!(cfg.readout_refit, a.readout_refit);
            set!(cfg.heldout_every, a.heldout_every);
            a.training
                .apply_time_limit(&mut cfg.time_limit, &mut cfg.train.steps);
        },
        || new_config(a),
    )?;
    cfg.validate()?;
    let ctx = super::context(cli)?;
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
    super::seeds::run(
        a.training.seeds,
        &cfg,
        |c| &mut c.train.seed,
        super::seeds::VIDEO,
        &out,
        state,
        |c, dir, state| {
            let m = video::run(ctx.clone(), c, dir, state)?;
            print_results(&m, dir);
            super::report(dir)?;
            Ok(m)
        },
    )
}

/// The held-out Δ-values of the learned features, linear SFA, linear successor features and PCA.
fn print_results(m: &serde_json::Value, out: &std::path::Path) {
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
    let refit = m["trained_network"].is_object();
    for (name, key) in [
        (if refit { "SpIN+refit" } else { "SpIN      " }, "delta"),
        ("linear SFA", "linear_sfa_delta"),
        ("linear SF ", "successor_features_delta"),
        ("PCA       ", "pca_delta"),
    ] {
        if m[format!("{key}_values")]
            .as_array()
            .is_none_or(|v| v.is_empty())
        {
            continue;
        }
        println!(
            "  {name}  {}   (sum {:.4})",
            show(&format!("{key}_values")),
            m[format!("{key}_sum")].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(t) = m["trained_network"].as_object() {
        let d: Vec<String> = t["delta_values"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_f64())
                    .map(|x| format!("{x:.4}"))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "  (trained network before the refit: {}   sum {:.4})",
            d.join(" "),
            t["delta_sum"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(note) = m["note"].as_str() {
        println!("  ({note})");
    }
    println!(
        "{} steps in {:.1} s ({}); wrote {}",
        m["steps"],
        m["wall_seconds"].as_f64().unwrap_or(0.0),
        super::rate(m, 2),
        out.display()
    );
}
