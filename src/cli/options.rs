//! Option groups shared by several commands, defined once and flattened into each. A command
//! states its own defaults in the help text with `mut_arg` (they differ between commands and
//! presets); the runner resolves what was not given from the command's configuration.

use std::path::PathBuf;

use anyhow::{Context, Result};

use spectral_inference::spin::{Objective, OptimizerConfig, OptimizerKind, Schedule};

/// The optimiser and its learning-rate schedule.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct OptimiserArgs {
    /// Optimiser: rmsprop, adam or sgd.
    #[arg(long)]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule: constant, cosine or inverse (η/t).
    #[arg(long)]
    pub schedule: Option<Schedule>,
    /// Clip the gradient's norm at this multiple of its running mean, from the 100th step on
    /// (against the gradient spikes of minibatches with a nearly singular Σ̂; 0: off).
    #[arg(long, value_name = "K")]
    pub clip_grad: Option<f64>,
    /// The divergence guard: when the held-out curve's sum of eigenvalue estimates rises more
    /// than this many times their spread above its best, go back to the last held-out point
    /// that was not, and halve the learning rate for the rest of the run (at most 3 times;
    /// armed from the fourth held-out point; needs --heldout-every; 0: off).
    #[arg(long, value_name = "TOL")]
    pub guard: Option<f64>,
}

impl OptimiserArgs {
    /// Applies what was given to `opt`: another optimiser starts from its own defaults but
    /// keeps the schedule, warm-up, clipping and guard; then the rate, the schedule, the
    /// clipping and the guard.
    pub fn apply(&self, opt: &mut OptimizerConfig) {
        if let Some(kind) = self.optimizer {
            let (schedule, warmup, clip, guard) = (opt.schedule, opt.warmup, opt.clip, opt.guard);
            *opt = OptimizerConfig::new(kind, opt.lr);
            opt.schedule = schedule;
            opt.warmup = warmup;
            opt.clip = clip;
            opt.guard = guard;
        }
        if let Some(k) = self.clip_grad {
            opt.clip = k;
        }
        if let Some(g) = self.guard {
            opt.guard = g;
        }
        if let Some(lr) = self.lr {
            opt.lr = lr;
        }
        if let Some(s) = self.schedule {
            opt.schedule = s;
        }
    }
}

/// How long a run trains and the SpIN step's own settings.
#[derive(clap::Args, Debug, Default, Clone)]
#[command(allow_negative_numbers = true)]
pub struct TrainingArgs {
    /// Training steps (the run stops at this step).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Stop training after this many seconds (a resumed run counts its earlier ones), then
    /// evaluate; a cosine schedule anneals within it.
    #[arg(long)]
    pub time_limit: Option<f64>,
    /// Moving-average rate β of Σ̄ and J̄ (1 = no moving averages).
    #[arg(long)]
    pub beta: Option<f64>,
    /// Shift margin for β < 1: the gradient is taken for K − cI, c = max(0, λ_max + this ×
    /// spread), which keeps Σ̄'s lag from collapsing features (0: off).
    #[arg(long)]
    pub shift: Option<f64>,
    /// Weight ρ of the gauge term, which holds Σ̂ near I along the directions tr Λ cannot
    /// see (each feature's scale and the mixing of earlier features into later ones), in
    /// units of the eigenvalue estimates' spread; it never moves the optimum (0: off, the
    /// reference's semantics) [default: 0, off: measured, it did not help; see
    /// docs/results/robustness.md].
    #[arg(long, value_name = "ρ")]
    pub gauge: Option<f64>,
    /// Rate ρ of the read-out's whitening: after every step the outputs become L⁻¹u, L the
    /// Cholesky factor of (1 − ρ) I + ρ Σ̂ — lower triangular, so no minibatch's Λ changes — which
    /// relaxes the features' scale and mixing toward Σ = I instead of letting them drift (maths
    /// §17); SpIN at β = 1 outside the tail, a dense read-out, no constant output; 0: off.
    #[arg(long, value_name = "ρ")]
    pub whiten_readout: Option<f64>,
    /// What is minimised: spin (tr Λ with the masked gradient, the paper's), nested (the
    /// sequentially nested low-rank objective of NeuralSVD: each feature's scale fixed, no
    /// Cholesky in the gradient), nested-joint (the same nest with every feature descending the
    /// sum over all ranks, NeuralSVD's joint nesting) or neuralef (NeuralEF: each feature
    /// normalised over the batch, its Rayleigh quotient up and its overlap with earlier features
    /// down). Side by side with today's defaults, 4 seeds each (docs/results/objectives.md), spin
    /// wins on the worst seed after the read-out refit in every case measured: 2D hydrogen N = 9
    /// at spin hydrogen's length 0.05 % (nested 0.08 %, neuralef 0.17 %), N = 16 in 10
    /// minutes 0.12 % (nested 0.20 %, neuralef 0.47 %), a 2D double well 0.10 % (neuralef 0.11 %,
    /// nested 0.35 %, nested-joint 0.78 %), 3 balls 32×32 in 15 minutes 0.66× linear SFA
    /// (neuralef 0.79×, nested 0.90×). Choose nested when the trained network itself is the
    /// product on hydrogen-like spectra (no refit: spin eval at new points, more than 3
    /// coordinates): its network alone is 3–4× closer than spin's at N = 16 (0.42 % against
    /// 1.8 % on the worst seed; at N = 9 about the same, 0.095 % against 0.105 %; not so on the
    /// double well), and
    /// it trains without spin's β < 1 tail; neuralef and nested-joint are there to compare
    /// [default: spin].
    #[arg(long)]
    pub objective: Option<Objective>,
    /// Share of the run, at its end, trained with the moving averages Σ̄ and J̄ at --tail-beta
    /// (SpIN at β = 1 on sampled minibatches): β = 1's minibatch gradient vanishes O(1/batch)
    /// away from the eigenfunctions, the averaged one does not — the trained network's error
    /// falls ≈ 5× (docs/results/robustness.md); 0: off. The tail's steps take the Σ-Jacobian
    /// path (≈ 3× slower on 2D hydrogen).
    #[arg(long, value_name = "FRACTION")]
    pub tail: Option<f64>,
    /// The moving averages' rate β in the tail (they start as a running mean, then decay at this
    /// rate). Smaller removes more of the bias but lags the features more: at 0.01 runs of
    /// 8 000–16 000 steps on 2D hydrogen ended 5–10× worse than without a tail, at 0.1 better on
    /// every length measured (docs/results/robustness.md) [default: 0.1].
    #[arg(long, value_name = "β")]
    pub tail_beta: Option<f64>,
    /// Random seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train seeds --seed, --seed + 1, … one after another, each into OUT/seed-S, then write
    /// OUT/seeds.json and OUT/seeds.md: every seed's numbers and their median and worst (a new
    /// run only) [default: 1].
    #[arg(long, value_name = "K")]
    pub seeds: Option<u64>,
}

impl TrainingArgs {
    /// `--time-limit` sets the limit; given without `--steps`, the limit alone ends the run.
    pub fn apply_time_limit(&self, time_limit: &mut Option<f64>, steps: &mut u64) {
        if self.time_limit.is_some() {
            *time_limit = self.time_limit;
            if self.steps.is_none() {
                *steps = spectral_inference::experiments::training::UNTIL_TIME_LIMIT;
            }
        }
    }
}

/// Where a run writes, and resuming one.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct OutputArgs {
    /// Output folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write a checkpoint every this many steps (0: only at the end).
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Continue the run saved in this folder from its checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

impl OutputArgs {
    /// The configuration, output folder and trainer state of a run: with `--resume DIR`, the
    /// `kind` configuration saved there with `on_resume` applied (the flags a resumed run may
    /// change) and DIR as the default output; otherwise `new()` in `default_out`.
    pub fn resume_or_new<C: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        default_out: &str,
        on_resume: impl FnOnce(&mut C),
        new: impl FnOnce() -> Result<C>,
    ) -> Result<(
        C,
        PathBuf,
        Option<spectral_inference::spin::checkpoint::TrainerState>,
    )> {
        match &self.resume {
            Some(dir) => {
                let (state, run) = spectral_inference::spin::checkpoint::load(dir)?;
                let mut cfg: C =
                    serde_json::from_value(run["config"].clone()).with_context(|| {
                        format!(
                            "{}: the checkpoint holds no {kind} configuration",
                            dir.display()
                        )
                    })?;
                on_resume(&mut cfg);
                let out = self.out.clone().unwrap_or_else(|| dir.clone());
                Ok((cfg, out, Some(state)))
            }
            None => {
                let out = self
                    .out
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(default_out));
                Ok((new()?, out, None))
            }
        }
    }
}

/// The network's layers beyond what the command fixes.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct NetworkArgs {
    /// Hidden layer widths, e.g. 64,64,64, or `none`.
    #[arg(long)]
    pub hidden: Option<Widths>,
    /// Block-sparse layers with K blocks (paper appendix C.1–C.2; 0: dense).
    #[arg(long)]
    pub blocks: Option<usize>,
}

/// Layer widths: `64,64,64`, or `none` for no layers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Widths(pub Vec<usize>);

impl std::str::FromStr for Widths {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "" | "none" => Ok(Widths(Vec::new())),
            list => list
                .split(',')
                .map(|t| t.trim().parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(Widths)
                .with_context(|| format!("`{s}`: widths separated by commas, or none")),
        }
    }
}

/// Sets `$field` to `$arg` when it was given.
macro_rules! set {
    ($field:expr, $arg:expr) => {
        if let Some(v) = $arg.clone() {
            $field = v;
        }
    };
}
pub(crate) use set;

/// Appends `text` (a command's own default, or a sentence of its own) to a shared option's help.
pub fn note(arg: clap::Arg, text: &str) -> clap::Arg {
    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
    let help = help.trim_end_matches('.');
    // A sentence of its own keeps the full stop before it.
    let stop = if text.starts_with(char::is_uppercase) {
        "."
    } else {
        ""
    };
    arg.help(format!("{help}{stop} {text}"))
}
