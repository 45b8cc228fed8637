//! Deep slow feature analysis on video (paper §5.2, C.2, C.3; SPEC §9): a conv net trained by
//! SpIN with the slowness operator on clips of stacked frames, evaluated on held-out clips
//! against linear SFA and PCA on pixels.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::sfa::{delta_values, linear_sfa, pca_features, pca_whitening, LinearFeatures};
use crate::data::video::{input_at, split_episodes, ClipSource, Video};
use crate::error::{Result, SpinError};
use crate::gpu::GpuContext;
use crate::nn::{Activation, Conv2dSpec, ImageShape, NetworkSpec, Padding};
use crate::operators::samplers::Sampler;
use crate::operators::Operator;
use crate::spin::{OptimizerConfig, OptimizerKind, Problem, Schedule, TrainConfig, Trainer};

/// Everything a `spin video` run is made of.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VideoConfig {
    /// Training video (.npz or PNG folder).
    pub data: PathBuf,
    /// Held-out video; `None`: the last `heldout_fraction` of every episode of `data`.
    pub test: Option<PathBuf>,
    /// Fraction of every episode held out when there is no test video.
    pub heldout_fraction: f64,
    /// Frames stacked per input (k).
    pub frames_per_input: usize,
    /// Clips per batch (C).
    pub clips: usize,
    /// Inputs per clip (L).
    pub clip_len: usize,
    /// Learned eigenfunctions N (the constant one not counted).
    pub neig: usize,
    /// A constant first eigenfunction (paper C.2): the learned ones are zero-mean.
    pub constant_first: bool,
    /// Conv channels per layer.
    pub conv: Vec<usize>,
    /// Conv kernel size.
    pub kernel: usize,
    /// Conv stride.
    pub stride: usize,
    /// Conv padding per layer (one value: all layers).
    pub padding: Vec<Padding>,
    /// Dense hidden widths after the flatten (or after the whitening).
    pub hidden: Vec<usize>,
    /// When positive, the network reads the inputs' `whiten` leading principal coordinates,
    /// whitened (a fixed linear first layer fitted on the training inputs, like linear SFA's),
    /// and has no conv layers; 0: the network reads the pixels.
    #[serde(default)]
    pub whiten: usize,
    /// Hidden activation.
    pub activation: Activation,
    /// Block-sparse layers between feature maps (0: dense).
    pub blocks: usize,
    /// Training hyper-parameters (batch = clips × clip_len).
    pub train: TrainConfig,
    /// Stop after this many seconds of training.
    pub time_limit: Option<f64>,
    /// Whitened dimensions of the linear-SFA yardstick.
    pub sfa_pca: usize,
    /// Training inputs (at most) that the linear yardsticks are fitted on.
    pub fit_inputs: usize,
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
}

impl VideoConfig {
    /// Our defaults, for `data`.
    pub fn ours(data: PathBuf) -> Self {
        Self {
            data,
            test: None,
            heldout_fraction: 0.1,
            frames_per_input: 2,
            clips: 8,
            clip_len: 10,
            neig: 8,
            constant_first: true,
            conv: vec![16, 16, 16],
            kernel: 5,
            stride: 2,
            padding: vec![Padding::Same],
            hidden: vec![64],
            whiten: 0,
            activation: Activation::Relu,
            blocks: 0,
            train: TrainConfig {
                // Measured on 32×32 balls: β 0.5 (with or without the shift) at lr 1e-3 lets
                // Σ̄'s lag collapse the ReLU features within ≈ 30 steps; β 1 does not.
                beta: 1.0,
                batch: 80,
                steps: 3000,
                seed: 0,
                optimizer: OptimizerConfig {
                    schedule: Schedule::Cosine,
                    ..OptimizerConfig::new(OptimizerKind::Adam, 1e-3)
                },
                eigen_ema: 0.01,
                exhaustive: false,
                shift: 0.05,
            },
            time_limit: None,
            sfa_pca: 256,
            fit_inputs: 4000,
            checkpoint_every: 500,
        }
    }

    /// The paper's C.2 setting: 3 conv layers of 32 5×5 stride-2 SAME, dense 128, 12 + the
    /// constant, 24 clips of 10, RMSProp lr 1e-6 decay 0.999, β 0.01, 10⁶ steps.
    pub fn paper(data: PathBuf) -> Self {
        let mut c = Self::ours(data);
        c.conv = vec![32, 32, 32];
        c.hidden = vec![128];
        c.neig = 12;
        c.clips = 24;
        c.clip_len = 10;
        c.train.beta = 0.01;
        c.train.shift = 0.0;
        c.train.steps = 1_000_000;
        c.train.batch = 240;
        c.train.optimizer = OptimizerConfig::new(OptimizerKind::Rmsprop, 1e-6);
        c
    }

    /// The reference's `examples/atari.py` flags: 4 stacked frames, conv 64/64/64 6×6 stride 2
    /// VALID/SAME/SAME, ReLU, dense 128, N = 5, one clip of 129 inputs, RMSProp lr 1e-3 (decay
    /// 1 − 0.1β; the reference's RMSProp is centred, ours is not), β 0.01, 10⁵ steps.
    pub fn atari_reference(data: PathBuf) -> Self {
        let mut c = Self::ours(data);
        c.frames_per_input = 4;
        c.conv = vec![64, 64, 64];
        c.kernel = 6;
        c.padding = vec![Padding::Valid, Padding::Same, Padding::Same];
        c.hidden = vec![128];
        c.neig = 5;
        c.constant_first = false;
        c.clips = 1;
        c.clip_len = 129;
        c.train.batch = 129;
        c.train.beta = 0.01;
        c.train.shift = 0.0;
        c.train.steps = 100_000;
        let mut opt = OptimizerConfig::new(OptimizerKind::Rmsprop, 1e-3);
        opt.rho = 1.0 - 0.1 * 0.01;
        c.train.optimizer = opt;
        c
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        let bad = |m: String| Err(SpinError::Config(m));
        if self.frames_per_input == 0 || self.clips == 0 || self.clip_len < 2 {
            return bad(
                "--frames-per-input and --clips must be positive and --clip-length at least 2"
                    .into(),
            );
        }
        if self.neig == 0 {
            return bad("--neig must be positive".into());
        }
        if self.whiten > 0 && !self.conv.is_empty() {
            return bad(format!(
                "--whiten {} feeds principal coordinates to a dense network: give --conv none, \
                 or --whiten 0 for a conv net on the pixels",
                self.whiten
            ));
        }
        if self.whiten > 0 && self.whiten < self.neig {
            return bad(format!(
                "--whiten {} keeps fewer coordinates than the {} eigenfunctions asked for",
                self.whiten, self.neig
            ));
        }
        if !(self.heldout_fraction > 0.0 && self.heldout_fraction < 1.0) {
            return bad(format!(
                "the held-out fraction must be in (0, 1), got {}",
                self.heldout_fraction
            ));
        }
        if self.padding.len() != 1 && self.padding.len() != self.conv.len() {
            return bad(format!(
                "--padding needs one value or one per conv layer ({}), got {}",
                self.conv.len(),
                self.padding.len()
            ));
        }
        if self.train.batch != self.clips * self.clip_len {
            return bad(format!(
                "the batch is clips × clip length = {}, got {}",
                self.clips * self.clip_len,
                self.train.batch
            ));
        }
        Ok(())
    }

    /// The network for frames of `height × width`; with `whitened = Some(m)`, a dense network
    /// on `m` whitened principal coordinates.
    pub fn spec(&self, height: usize, width: usize, whitened: Option<usize>) -> NetworkSpec {
        let k = self.frames_per_input;
        if let Some(m) = whitened {
            return NetworkSpec {
                input_dim: m,
                hidden: self.hidden.clone(),
                outputs: self.neig + self.constant_first as usize,
                activation: self.activation,
                constant_first: self.constant_first,
                ..Default::default()
            };
        }
        NetworkSpec {
            input_dim: height * width * k,
            hidden: self.hidden.clone(),
            outputs: self.neig + self.constant_first as usize,
            image: Some(ImageShape {
                height,
                width,
                channels: k,
            }),
            conv: self
                .conv
                .iter()
                .enumerate()
                .map(|(i, &c)| Conv2dSpec {
                    channels: c,
                    kernel: self.kernel,
                    stride: self.stride,
                    padding: self.padding[i.min(self.padding.len() - 1)],
                })
                .collect(),
            activation: self.activation,
            constant_first: self.constant_first,
            ..Default::default()
        }
    }
}

/// Draws whole clips of stacked-frame inputs from a video.
pub struct ClipSampler {
    video: Arc<Video>,
    source: ClipSource,
    dim: usize,
    /// Whitened inputs, one row of `dim` per input start frame, when the network reads those.
    table: Option<Vec<f32>>,
}

impl ClipSampler {
    /// Clips of `source` from `video`.
    pub fn new(video: Arc<Video>, source: ClipSource) -> Self {
        let dim = video.pixels() * source.frames_per_input;
        Self {
            video,
            source,
            dim,
            table: None,
        }
    }

    /// Clips of `source` from `video`, each input replaced by its whitened coordinates under
    /// `whitening` (computed once here for every input start of the video).
    pub fn whitened(video: Arc<Video>, source: ClipSource, whitening: &LinearFeatures) -> Self {
        let k = source.frames_per_input;
        let starts: Vec<usize> = (0..(video.len() + 1).saturating_sub(k)).collect();
        let table = project(&video, &starts, k, whitening)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        Self {
            dim: whitening.output_dim(),
            video,
            source,
            table: Some(table),
        }
    }
}

impl Sampler for ClipSampler {
    fn dim(&self) -> usize {
        self.dim
    }
    /// `count` inputs (a whole number of clips, clip-major) and unit weights.
    fn sample(&self, rng: &mut dyn rand::RngCore, count: usize) -> (Vec<f64>, Vec<f64>) {
        let clips = count / self.source.clip_len;
        let mut out = Vec::with_capacity(count * self.dim);
        for s in self.source.sample_starts(rng, clips) {
            for i in 0..self.source.clip_len {
                match &self.table {
                    Some(table) => out.extend(
                        table[(s + i) * self.dim..(s + i + 1) * self.dim]
                            .iter()
                            .map(|&v| v as f64),
                    ),
                    None => input_at(&self.video, s + i, self.source.frames_per_input, &mut out),
                }
            }
        }
        (out, vec![1.0; count])
    }
}

/// `whitening` applied to the inputs starting at `starts` (rows × its output dimension), in
/// chunks on all cores.
fn project(video: &Video, starts: &[usize], k: usize, whitening: &LinearFeatures) -> Vec<f64> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = starts.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = starts
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(part.len() * whitening.output_dim());
                    for chunk in part.chunks(256) {
                        let mut x = Vec::with_capacity(chunk.len() * video.pixels() * k);
                        for &t in chunk {
                            input_at(video, t, k, &mut x);
                        }
                        out.extend(whitening.apply(&x));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a projection thread panicked"))
            .collect()
    })
}

/// A trained video network: the trainer and, when it reads whitened inputs, the whitening.
pub struct VideoModel {
    /// The SpIN trainer (network, statistics, optimiser).
    pub trainer: Trainer,
    /// The fixed first layer (`--whiten`), if any.
    pub whitening: Option<LinearFeatures>,
}

impl VideoModel {
    /// The network's outputs (rows × outputs) for raw inputs (rows × pixels·k).
    pub fn outputs(&self, inputs: &[f64]) -> Result<Vec<f64>> {
        match &self.whitening {
            Some(w) => self.trainer.outputs(&w.apply(inputs)),
            None => self.trainer.outputs(inputs),
        }
    }
}

/// The inputs of `ranges` in order, as (input start frames, segments of consecutive inputs).
fn sequence_inputs(ranges: &[Range<usize>], k: usize) -> (Vec<usize>, Vec<Range<usize>>) {
    let mut starts = Vec::new();
    let mut segments = Vec::new();
    for r in ranges {
        let first = starts.len();
        starts.extend(r.start..(r.end + 1).saturating_sub(k).max(r.start));
        if starts.len() > first {
            segments.push(first..starts.len());
        }
    }
    (starts, segments)
}

/// Features of the inputs starting at `starts`, in chunks: (rows × m).
fn features_of(
    video: &Video,
    starts: &[usize],
    k: usize,
    mut f: impl FnMut(&[f64]) -> Result<Vec<f64>>,
) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for chunk in starts.chunks(512) {
        let mut x = Vec::with_capacity(chunk.len() * video.pixels() * k);
        for &t in chunk {
            input_at(video, t, k, &mut x);
        }
        out.extend(f(&x)?);
    }
    Ok(out)
}

/// The held-out evaluation of a run.
#[derive(Clone, Debug, Serialize)]
pub struct VideoEvaluation {
    /// Held-out inputs.
    pub inputs: usize,
    /// Δ-values of the learned features (the constant one left out), ascending.
    pub delta_values: Vec<f64>,
    /// The same for linear SFA fitted on the training inputs; empty when skipped.
    pub linear_sfa_delta_values: Vec<f64>,
    /// The same for the N leading principal components of the training inputs.
    pub pca_delta_values: Vec<f64>,
    /// Why a yardstick was skipped, if one was.
    pub note: Option<String>,
    /// First frames of the held-out inputs.
    #[serde(skip)]
    pub starts: Vec<usize>,
    /// The learned features of the held-out inputs (inputs × N).
    #[serde(skip)]
    pub features: Vec<f64>,
    /// The PCA features of the held-out inputs (inputs × N), when fitted.
    #[serde(skip)]
    pub pca_features: Vec<f64>,
}

/// Values (inputs × dimension) the linear yardsticks are fitted on at most: 240 MB of f64.
const MAX_FIT_VALUES: usize = 30_000_000;

/// The inputs the linear yardsticks (and the whitening) are fitted on: evenly spaced pairs
/// (t, t + 1) of consecutive training inputs, as (inputs rows × D, rows that start a pair, D).
fn fit_set(cfg: &VideoConfig, train: (&Video, &[Range<usize>])) -> (Vec<f64>, Vec<usize>, usize) {
    let k = cfg.frames_per_input;
    let d = train.0.pixels() * k;
    let (all, segs) = sequence_inputs(train.1, k);
    let pairs_all: Vec<usize> = segs
        .iter()
        .flat_map(|s| s.start..s.end.saturating_sub(1))
        .collect();
    let fit_pairs = (cfg.fit_inputs.min(MAX_FIT_VALUES / d) / 2).max(2);
    let stride = pairs_all.len().div_ceil(fit_pairs).max(1);
    let chosen: Vec<usize> = pairs_all.iter().step_by(stride).copied().collect();
    let mut x = Vec::with_capacity(2 * chosen.len() * d);
    for &i in &chosen {
        input_at(train.0, all[i], k, &mut x);
        input_at(train.0, all[i + 1], k, &mut x);
    }
    let pair_rows: Vec<usize> = (0..chosen.len()).map(|i| 2 * i).collect();
    (x, pair_rows, d)
}

/// Evaluates a trained network on `test` ranges against linear SFA and PCA fitted on `train`.
pub fn evaluate(
    model: &VideoModel,
    cfg: &VideoConfig,
    train: (&Video, &[Range<usize>]),
    test: (&Video, &[Range<usize>]),
) -> Result<VideoEvaluation> {
    let k = cfg.frames_per_input;
    let n_out = model.trainer.problem().spec.outputs;
    let skip = cfg.constant_first as usize;
    let (starts, segments) = sequence_inputs(test.1, k);
    if starts.len() < 2 {
        return Err(SpinError::Config(
            "the held-out part holds fewer than 2 inputs".into(),
        ));
    }
    let u = features_of(test.0, &starts, k, |x| model.outputs(x))?;
    let learned: Vec<f64> = u
        .chunks(n_out)
        .flat_map(|row| row[skip..].to_vec())
        .collect();
    let delta = delta_values(&learned, cfg.neig, &segments)?;
    let mut note = None;
    let (x, pair_rows, d) = fit_set(cfg, train);
    let held = |lf: &LinearFeatures| features_of(test.0, &starts, k, |x| Ok(lf.apply(x)));
    let sfa = match linear_sfa(&x, d, &pair_rows, cfg.sfa_pca.min(d), cfg.neig) {
        Ok(lf) => delta_values(&held(&lf)?, cfg.neig, &segments)?,
        Err(e) => {
            note = Some(format!("linear SFA skipped: {e}"));
            Vec::new()
        }
    };
    let pca_f = held(&pca_features(&x, d, cfg.neig)?)?;
    let pca = delta_values(&pca_f, cfg.neig, &segments)?;
    Ok(VideoEvaluation {
        inputs: starts.len(),
        delta_values: delta,
        linear_sfa_delta_values: sfa,
        pca_delta_values: pca,
        note,
        starts,
        features: learned,
        pca_features: pca_f,
    })
}

/// The training and held-out (video, ranges) of a configuration.
pub type Split = (Arc<Video>, Vec<Range<usize>>, Arc<Video>, Vec<Range<usize>>);

/// Loads the data and splits it.
pub fn load_split(cfg: &VideoConfig) -> Result<Split> {
    let video = Arc::new(Video::load(&cfg.data)?);
    match &cfg.test {
        Some(t) => {
            let test = Arc::new(Video::load(t)?);
            if (test.height, test.width) != (video.height, video.width) {
                return Err(SpinError::Config(format!(
                    "the test video's frames are {}×{}, the training video's {}×{}",
                    test.width, test.height, video.width, video.height
                )));
            }
            let (tr, te) = (video.episodes(), test.episodes());
            Ok((video, tr, test, te))
        }
        None => {
            let (tr, te) = split_episodes(&video, cfg.heldout_fraction);
            Ok((video.clone(), tr, video, te))
        }
    }
}

/// A model for `cfg` on its training split: with `--whiten`, the whitening is fitted on the
/// training inputs first (deterministically, so a resumed run or `spin eval` refits the same).
pub fn model(ctx: Arc<GpuContext>, cfg: &VideoConfig, split: &Split) -> Result<VideoModel> {
    cfg.validate()?;
    let (video, train, _, _) = split;
    let source = ClipSource::new(train.clone(), cfg.frames_per_input, cfg.clip_len)?;
    let (sampler, whitening) = if cfg.whiten > 0 {
        let (x, _, d) = fit_set(cfg, (video, train));
        let w = pca_whitening(&x, d, cfg.whiten.min(d))?;
        if w.output_dim() < cfg.neig {
            return Err(SpinError::Config(format!(
                "--whiten: the training inputs span only {} dimensions, fewer than the {} \
                 eigenfunctions asked for",
                w.output_dim(),
                cfg.neig
            )));
        }
        (ClipSampler::whitened(video.clone(), source, &w), Some(w))
    } else {
        (ClipSampler::new(video.clone(), source), None)
    };
    let spec = cfg.spec(
        video.height,
        video.width,
        whitening.as_ref().map(|w| w.output_dim()),
    );
    let problem = Problem {
        sampler: Box::new(sampler),
        spec,
        operator: Operator::slowness(cfg.clip_len)?,
    };
    let mut t = Trainer::new(ctx, problem, cfg.train.clone())?;
    if cfg.blocks > 0 {
        let mask = crate::nn::block_sparse_mask(&t.problem().spec, cfg.blocks)?;
        t.set_mask(mask)?;
    }
    Ok(VideoModel {
        trainer: t,
        whitening,
    })
}

/// Trains (or resumes) and evaluates; writes metrics.json, eigenvalues.csv, curves.png,
/// heatmaps.png (when positions are known) and the checkpoint into `out`.
pub fn run(
    ctx: Arc<GpuContext>,
    cfg: &VideoConfig,
    out: &Path,
    resume: Option<crate::spin::checkpoint::TrainerState>,
) -> Result<serde_json::Value> {
    use crate::spin::checkpoint;
    use std::io::Write;
    let io_err = |path: &Path| {
        let p = path.display().to_string();
        move |source| SpinError::Io {
            path: p.clone(),
            source,
        }
    };
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let split = load_split(cfg)?;
    let mut model = model(ctx.clone(), cfg, &split)?;
    let n = model.trainer.problem().spec.outputs;
    let csv_path = out.join("eigenvalues.csv");
    let mut kept = String::new();
    if let Some(state) = &resume {
        model.trainer.restore(state)?;
        // Keep the CSV rows up to the checkpoint.
        if let Ok(text) = std::fs::read_to_string(&csv_path) {
            for line in text.lines().skip(1) {
                let step: u64 = line
                    .split(',')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u64::MAX);
                if step <= model.trainer.step {
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
        }
    }
    let header = {
        let mut h = vec!["step".to_string(), "loss".to_string()];
        h.extend((0..n).map(|k| format!("lambda_{k}")));
        h.extend((0..n).map(|k| format!("lambda_ema_{k}")));
        h.join(",")
    };
    crate::io::write_atomic(&csv_path, format!("{header}\n{kept}").as_bytes())?;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&csv_path)
        .map_err(io_err(&csv_path))?;
    let mut csv = std::io::BufWriter::new(file);
    let run_json = serde_json::json!({ "kind": "video", "config": cfg });
    let bar = indicatif::ProgressBar::new(cfg.train.steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(model.trainer.step);
    // Training seconds of the invocations before this one: `--time-limit` counts them too.
    let earlier = resume.as_ref().map_or(0.0, |s| s.train_seconds);
    let start = std::time::Instant::now();
    let trained_for = || earlier + start.elapsed().as_secs_f64();
    let state_now = |model: &VideoModel| -> Result<crate::spin::checkpoint::TrainerState> {
        let mut state = model.trainer.state()?;
        state.train_seconds = trained_for();
        Ok(state)
    };
    let first_step = model.trainer.step;
    let mut failure = None;
    let mut stopped_by_time = false;
    while model.trainer.step < cfg.train.steps {
        if cfg.time_limit.is_some_and(|t| trained_for() >= t) {
            stopped_by_time = true;
            break;
        }
        // The schedule anneals over --time-limit when that ends the run first.
        if let Some(t) = cfg.time_limit {
            model.trainer.set_schedule_progress(trained_for() / t);
        }
        match model.trainer.step() {
            Ok(r) => {
                let mut row = vec![r.step.to_string(), format!("{:.6e}", r.loss)];
                row.extend(r.eigenvalues.iter().map(|v| format!("{v:.6e}")));
                row.extend(r.eigenvalues_ema.iter().map(|v| format!("{v:.6e}")));
                writeln!(csv, "{}", row.join(",")).map_err(io_err(&csv_path))?;
                bar.set_position(r.step);
                if r.step % 50 == 0 {
                    let ema = &r.eigenvalues_ema[cfg.constant_first as usize..];
                    bar.set_message(format!("slowest λ {:.4}", ema.first().unwrap_or(&0.0)));
                }
                if r.step % cfg.checkpoint_every.max(1) == 0 {
                    csv.flush().map_err(io_err(&csv_path))?;
                    checkpoint::save(out, &state_now(&model)?, &run_json)?;
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    bar.finish_and_clear();
    csv.flush().map_err(io_err(&csv_path))?;
    checkpoint::save(out, &state_now(&model)?, &run_json)?;
    let wall = start.elapsed().as_secs_f64();
    let steps_run = model.trainer.step - first_step;
    let (video, train, test_video, test) = &split;
    let eval = evaluate(&model, cfg, (video, train), (test_video, test))?;
    // Curves (Fig. 3) from the CSV.
    let text = std::fs::read_to_string(&csv_path).map_err(io_err(&csv_path))?;
    let mut steps = Vec::new();
    let mut curves = vec![Vec::new(); n];
    for line in text.lines().skip(1) {
        let cells: Vec<f64> = line.split(',').filter_map(|c| c.parse().ok()).collect();
        if cells.len() == 2 + 2 * n {
            steps.push(cells[0] as u64);
            for (k, c) in curves.iter_mut().enumerate() {
                c.push(cells[2 + n + k]);
            }
        }
    }
    let learned: Vec<Vec<f64>> = curves
        .into_iter()
        .skip(cfg.constant_first as usize)
        .collect();
    super::plot::eigenvalue_curves(
        &out.join("curves.png"),
        &steps,
        &learned,
        None,
        "slowness eigenvalues (EMA of diag Λ)",
    )?;
    if video.positions.is_some() {
        heatmaps(&model, cfg, test_video, test, &out.join("heatmaps.png"))?;
    }
    extremes(test_video, cfg, &eval, &out.join("extremes.png"))?;
    eigenpurposes(test_video, cfg, &eval, &out.join("eigenpurposes.png"))?;
    let metrics = serde_json::json!({
        "config": cfg,
        "heldout_inputs": eval.inputs,
        "delta_values": eval.delta_values,
        "linear_sfa_delta_values": eval.linear_sfa_delta_values,
        "pca_delta_values": eval.pca_delta_values,
        "delta_sum": eval.delta_values.iter().sum::<f64>(),
        "linear_sfa_delta_sum": eval.linear_sfa_delta_values.iter().sum::<f64>(),
        "pca_delta_sum": eval.pca_delta_values.iter().sum::<f64>(),
        "note": eval.note,
        "steps": model.trainer.step,
        "wall_seconds": wall,
        "steps_per_second": steps_run as f64 / wall.max(1e-9),
        "stopped_by_time_limit": stopped_by_time,
        "adapter": ctx.adapter().name,
    });
    crate::io::write_json(&out.join("metrics.json"), &metrics)?;
    match failure {
        Some(e) => Err(e),
        None => Ok(metrics),
    }
}

/// Fig. 2a: per learned eigenfunction, its mean held-out activation when a ball is in each cell
/// of a 16 × 16 grid over the box (red positive, blue negative; the sign is arbitrary).
fn heatmaps(
    model: &VideoModel,
    cfg: &VideoConfig,
    video: &Video,
    ranges: &[Range<usize>],
    path: &Path,
) -> Result<()> {
    let Some((balls, pos)) = &video.positions else {
        return Ok(());
    };
    let g = 16;
    let k = cfg.frames_per_input;
    let n_out = model.trainer.problem().spec.outputs;
    let skip = cfg.constant_first as usize;
    let (starts, _) = sequence_inputs(ranges, k);
    let u = features_of(video, &starts, k, |x| model.outputs(x))?;
    let mut sums = vec![vec![0.0; g * g]; cfg.neig];
    let mut counts = vec![0usize; g * g];
    for (i, &t) in starts.iter().enumerate() {
        // The ball positions at the input's last frame.
        let f = t + k - 1;
        for b in 0..*balls {
            let x = pos[(f * balls + b) * 2] as f64;
            let y = pos[(f * balls + b) * 2 + 1] as f64;
            let cell =
                ((y * g as f64) as usize).min(g - 1) * g + ((x * g as f64) as usize).min(g - 1);
            counts[cell] += 1;
            for (j, s) in sums.iter_mut().enumerate() {
                s[cell] += u[i * n_out + skip + j];
            }
        }
    }
    let values: Vec<Vec<f64>> = sums
        .into_iter()
        .map(|s| {
            let mean: Vec<f64> = s
                .iter()
                .zip(&counts)
                .map(|(v, &c)| if c > 0 { v / c as f64 } else { 0.0 })
                .collect();
            // Centre over the visited cells so that the colour shows where it is high or low.
            let visited: Vec<f64> = mean
                .iter()
                .zip(&counts)
                .filter(|(_, &c)| c > 0)
                .map(|(v, _)| *v)
                .collect();
            let mid = visited.iter().sum::<f64>() / visited.len().max(1) as f64;
            mean.iter()
                .zip(&counts)
                .map(|(v, &c)| if c > 0 { v - mid } else { 0.0 })
                .collect()
        })
        .collect();
    let labels: Vec<String> = (0..cfg.neig)
        .map(|j| format!("eigenfunction {}", j + 1))
        .collect();
    super::plot::eigenfunction_panels(path, &values, g, 1.0, &labels)
}

/// Pixels per frame pixel in the figures (at least 2, frames drawn about 96 pixels wide).
fn zoom(video: &Video) -> u32 {
    (96 / video.width.max(1)).max(2) as u32
}

/// Fig. 2b: per learned eigenfunction (rows), the held-out inputs that most (left) and least
/// (right) activate it, the input's first frame in red and its last in blue (black where both).
fn extremes(video: &Video, cfg: &VideoConfig, eval: &VideoEvaluation, path: &Path) -> Result<()> {
    let n = cfg.neig;
    if eval.starts.is_empty() {
        return Ok(());
    }
    let z = zoom(video);
    let (w, h) = (video.width as u32 * z, video.height as u32 * z);
    let gap = 4;
    let mut img = image::RgbImage::from_pixel(
        2 * w + 3 * gap,
        n as u32 * (h + gap) + gap,
        image::Rgb([255, 255, 255]),
    );
    let px = video.pixels();
    let k = cfg.frames_per_input;
    for j in 0..n {
        let col = |i: usize| eval.features[i * n + j];
        let idx: Vec<usize> = (0..eval.starts.len()).collect();
        let hi = *idx
            .iter()
            .max_by(|&&a, &&b| col(a).total_cmp(&col(b)))
            .unwrap_or(&0);
        let lo = *idx
            .iter()
            .min_by(|&&a, &&b| col(a).total_cmp(&col(b)))
            .unwrap_or(&0);
        for (c, &i) in [hi, lo].iter().enumerate() {
            let t = eval.starts[i];
            let (first, last) = (
                &video.frames[t * px..(t + 1) * px],
                &video.frames[(t + k - 1) * px..(t + k) * px],
            );
            let (x0, y0) = (gap + c as u32 * (w + gap), gap + j as u32 * (h + gap));
            for y in 0..h {
                for x in 0..w {
                    let p = (y / z) as usize * video.width + (x / z) as usize;
                    let (r, b) = (first[p], last[p]);
                    // White paper: the first frame's ink red, the last frame's blue.
                    img.put_pixel(
                        x0 + x,
                        y0 + y,
                        image::Rgb([255 - b, 255 - r.max(b), 255 - r]),
                    );
                }
            }
        }
    }
    img.save(path).map_err(|e| SpinError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Fig. 4 (C.3): per eigenfunction (columns), the mean of the 100 held-out inputs with the
/// largest positive (top row) and largest negative (second row) activation, frames averaged;
/// below, the same for the leading principal components of the pixels.
fn eigenpurposes(
    video: &Video,
    cfg: &VideoConfig,
    eval: &VideoEvaluation,
    path: &Path,
) -> Result<()> {
    let n = cfg.neig;
    let count = eval.starts.len();
    if count == 0 {
        return Ok(());
    }
    let z = zoom(video);
    let (w, h) = (video.width as u32 * z, video.height as u32 * z);
    let gap = 4;
    let sets: Vec<&Vec<f64>> = if eval.pca_features.is_empty() {
        vec![&eval.features]
    } else {
        vec![&eval.features, &eval.pca_features]
    };
    let rows = 2 * sets.len() as u32;
    let mut img = image::GrayImage::from_pixel(
        n as u32 * (w + gap) + gap,
        rows * (h + gap) + gap + (sets.len() as u32 - 1) * 2 * gap,
        image::Luma([255]),
    );
    let px = video.pixels();
    let k = cfg.frames_per_input;
    let top = 100.min(count);
    for (si, f) in sets.iter().enumerate() {
        for j in 0..n {
            let mut order: Vec<usize> = (0..count).collect();
            order.sort_by(|&a, &b| f[b * n + j].total_cmp(&f[a * n + j]));
            for (ri, pick) in [&order[..top], &order[count - top..]].iter().enumerate() {
                let mut mean = vec![0.0f64; px];
                for &i in pick.iter() {
                    let t = eval.starts[i];
                    for c in 0..k {
                        for (m, &v) in mean
                            .iter_mut()
                            .zip(&video.frames[(t + c) * px..(t + c + 1) * px])
                        {
                            *m += v as f64;
                        }
                    }
                }
                let scale = 1.0 / (pick.len() * k) as f64;
                let (x0, y0) = (
                    gap + j as u32 * (w + gap),
                    gap + (2 * si as u32 + ri as u32) * (h + gap) + si as u32 * 2 * gap,
                );
                for y in 0..h {
                    for x in 0..w {
                        let p = (y / z) as usize * video.width + (x / z) as usize;
                        img.put_pixel(
                            x0 + x,
                            y0 + y,
                            image::Luma([(mean[p] * scale).round().clamp(0.0, 255.0) as u8]),
                        );
                    }
                }
            }
        }
    }
    img.save(path).map_err(|e| SpinError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })
}
