//! The held-out evaluation: Δ-values of the learned features beside linear SFA and PCA fitted on
//! the training inputs.

use std::ops::Range;

use serde::Serialize;

use super::super::sfa::{delta_values, linear_sfa, pca_features, LinearFeatures};
use super::{VideoConfig, VideoModel};
use crate::data::video::{input_at, Video};
use crate::error::{Result, SpinError};

/// The inputs of `ranges` in order, as (input start frames, segments of consecutive inputs).
pub(super) fn sequence_inputs(
    ranges: &[Range<usize>],
    k: usize,
) -> (Vec<usize>, Vec<Range<usize>>) {
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
pub(super) fn features_of(
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
pub(super) fn fit_set(
    cfg: &VideoConfig,
    train: (&Video, &[Range<usize>]),
) -> (Vec<f64>, Vec<usize>, usize) {
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
