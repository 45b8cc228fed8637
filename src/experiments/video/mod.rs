//! Deep slow feature analysis on video (paper §5.2, C.2, C.3; maths §9): a conv net trained by
//! SpIN with the slowness operator on clips of stacked frames, evaluated on held-out clips
//! against linear SFA and PCA on pixels. The configuration and presets are here; the clip
//! sampler in `sampler`, the held-out evaluation in `evaluate`, the run in `run` and the
//! figures (Fig. 2–4) in `figures`.

mod evaluate;
mod features;
mod figures;
mod refit;
mod run;
mod sampler;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SpinError};
use crate::nn::{Activation, Conv2dSpec, ImageShape, NetworkSpec, Padding};
use crate::spin::{OptimizerConfig, OptimizerKind, Schedule, TrainConfig};

pub use evaluate::{evaluate, VideoEvaluation};

/// Discount of the successor-feature yardstick (the paper's C.3 comparison).
pub const SUCCESSOR_GAMMA: f64 = 0.99;
pub use evaluate::{yardsticks, Yardsticks};
pub use features::{features, features_csv, features_npy};
pub use refit::{
    fit_readout, fit_validation, paired_jackknife_se, Refit, RefitCandidate, RefitReport,
    TrainingCoordinates, VideoReadout, JACKKNIFE_UNIT, REFIT_REL_TOL, VALIDATION_BLOCK,
    VALIDATION_MARGIN_SE,
};
pub use run::{load_split, model, run, Split, VideoModel};
pub use sampler::ClipSampler;

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
    /// After training, Rayleigh–Ritz of the slowness on the span of the last hidden layer and
    /// linear SFA's whitened coordinates, over every training input; kept when it is slower on
    /// a validation split ([`fit_readout`]).
    #[serde(default)]
    pub readout_refit: bool,
    /// The held-out curve: Δ-values of the trained network on a fixed stretch of held-out
    /// inputs, every this many steps (0: none).
    #[serde(default = "default_heldout_every")]
    pub heldout_every: u64,
}

fn default_heldout_every() -> u64 {
    250
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
                gauge: crate::spin::trainer::DEFAULT_GAUGE,
                objective: Default::default(),
                tail: Default::default(),
                whiten_readout: 0.0,
            },
            time_limit: None,
            sfa_pca: 256,
            fit_inputs: 4000,
            checkpoint_every: 500,
            readout_refit: true,
            heldout_every: default_heldout_every(),
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
        c.train.gauge = 0.0;
        c.train.steps = 1_000_000;
        c.train.batch = 240;
        c.train.optimizer = OptimizerConfig::new(OptimizerKind::Rmsprop, 1e-6);
        c.readout_refit = false;
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
        c.train.gauge = 0.0;
        c.train.steps = 100_000;
        let mut opt = OptimizerConfig::new(OptimizerKind::Rmsprop, 1e-3);
        opt.rho = 1.0 - 0.1 * 0.01;
        c.train.optimizer = opt;
        c.readout_refit = false;
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
        let ranks = crate::spin::parallel::world().size();
        if !self.clips.is_multiple_of(ranks) {
            return bad(format!(
                "--clips {} (the global batch) does not split into whole clips over {ranks} ranks: give a multiple of {ranks}",
                self.clips
            ));
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
